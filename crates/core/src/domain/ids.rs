use crate::error::Error;
use serde::{Serialize, Serializer};
use std::fmt;

/// Id of a media row: `med_` followed by 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(String);

impl MediaId {
    pub const PREFIX: &'static str = "med_";

    /// A fresh random id.
    #[must_use]
    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, uuid::Uuid::new_v4().simple()))
    }

    /// # Errors
    /// [`Error::Validation`] on field `id` when it is not of the form above.
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
            Err(Error::invalid("id", "must be a media id like 'med_…'"))
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MediaId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = MediaId::generate();
        assert_eq!(MediaId::parse(id.as_str()).unwrap(), id);
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
