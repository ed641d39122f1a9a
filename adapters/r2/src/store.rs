//! aws-sdk-s3 object store (being written).
