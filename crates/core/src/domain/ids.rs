//! Prefixed ids: `<prefix>` followed by 32 lowercase hex digits. One macro writes every id
//! type (media rows here, FILES_DB rows in [`crate::managed`]).
//!
//! New ids are UUIDv7: 48 bits of Unix milliseconds, then 74 random bits. Ids of one
//! process sort in creation order, so a row's primary-key entry lands on the B-tree's
//! last page instead of a random one: with random ids every insert dirtied its own leaf
//! page, and the WAL carried about 8 KiB per sign-upload. The random bits still make an
//! id unguessable; access never rests on that anyway.

/// Declares an id type `$name` with `PREFIX`, `generate`, `parse`, `as_str` and `Display`;
/// `$what` names it in the validation message ("must be a media id like …").
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("What every id of this type starts with: `", $prefix, "`.")]
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, after every id this process made before.
            #[must_use]
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, uuid::Uuid::now_v7().simple()))
            }

            /// Reads an id back from its text form.
            ///
            /// # Errors
            /// [`Error::Validation`](crate::error::Error::Validation) on field `id` unless it is the prefix and 32 lowercase
            /// hex digits.
            pub fn parse(raw: &str) -> Result<Self, $crate::error::Error> {
                let ok = raw.strip_prefix(Self::PREFIX).is_some_and(|hex| {
                    hex.len() == 32
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                });
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err($crate::error::Error::invalid(
                        "id",
                        concat!("must be ", $what, " id like '", $prefix, "…'"),
                    ))
                }
            }

            /// The id as text, prefix included.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use prefixed_id;

prefixed_id!(
    /// Id of a media row: `med_` followed by 32 lowercase hex digits.
    MediaId,
    "med_",
    "a media"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = MediaId::generate();
        assert_eq!(MediaId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<MediaId> = (0..2_000).map(|_| MediaId::generate()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "appended, not scattered"
        );
    }

    #[test]
    fn foreign_ids_are_rejected() {
        for bad in [
            "",
            "med_",
            "obj_0123456789abcdef0123456789abcdef",
            "med_0123456789ABCDEF0123456789ABCDEF",
            "med_../../etc",
        ] {
            assert!(MediaId::parse(bad).is_err(), "{bad}");
        }
    }
}
