//! Prefixed random ids of FILES_DB rows, like [`MediaId`](crate::domain::MediaId).

use crate::domain::ids::prefixed_id;

prefixed_id!(
    /// Id of a managed bucket: `bkt_` followed by 32 lowercase hex digits.
    BucketId,
    "bkt_",
    "a bucket"
);

prefixed_id!(
    /// Id of a managed object row: `obj_` followed by 32 lowercase hex digits.
    ObjectId,
    "obj_",
    "an object"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_carry_their_prefix() {
        let b = BucketId::generate();
        assert!(b.as_str().starts_with("bkt_") && b.as_str().len() == 36);
        assert_eq!(BucketId::parse(b.as_str()).unwrap(), b);
        let o = ObjectId::generate();
        assert!(o.as_str().starts_with("obj_"));
        assert_eq!(ObjectId::parse(o.as_str()).unwrap(), o);
    }

    #[test]
    fn foreign_and_malformed_ids_are_rejected() {
        for bad in [
            "",
            "bkt_",
            "obj_0123456789abcdef0123456789abcdef",
            "bkt_0123456789ABCDEF0123456789ABCDEF",
            "bkt_0123456789abcdef0123456789abcde",
            "avatars",
        ] {
            assert!(BucketId::parse(bad).is_err(), "{bad}");
        }
        assert!(ObjectId::parse("bkt_0123456789abcdef0123456789abcdef").is_err());
    }
}
