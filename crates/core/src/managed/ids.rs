//! Prefixed random ids of FILES_DB rows, like [`MediaId`](crate::domain::MediaId).

use crate::error::Error;
use serde::{Serialize, Serializer};
use std::fmt;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id.
            #[must_use]
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, uuid::Uuid::new_v4().simple()))
            }

            /// # Errors
            /// [`Error::Validation`] on field `id` unless it is the prefix and 32 lowercase
            /// hex digits.
            pub fn parse(raw: &str) -> Result<Self, Error> {
                let ok = raw.strip_prefix(Self::PREFIX).is_some_and(|hex| {
                    hex.len() == 32
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(Error::invalid(
                        "id",
                        concat!("must be ", $what, " id like '", $prefix, "…'"),
                    ))
                }
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

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
