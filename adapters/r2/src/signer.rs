//! Fast SigV4 presigner (being written).
