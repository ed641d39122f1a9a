//! MediaStore fake and contract (being written).
