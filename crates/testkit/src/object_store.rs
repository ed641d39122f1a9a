//! ObjectStore fake and contract (being written).
