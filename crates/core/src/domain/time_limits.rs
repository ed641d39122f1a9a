use crate::error::Error;
use std::time::Duration;

/// How long a presigned URL stays valid: 1 s to 7 days (R2's limit), 600 s by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry(u32);

impl Expiry {
    /// The shortest accepted expiry, in seconds.
    pub const MIN_SECS: u64 = 1;
    /// The longest accepted expiry, in seconds (7 days).
    pub const MAX_SECS: u64 = 604_800;
    /// The expiry used when a request gives none.
    pub const DEFAULT: Self = Self(600);
    /// The longest expiry, as a value.
    pub const MAX: Self = Self(604_800);

    /// An expiry of `secs` seconds.
    ///
    /// # Errors
    /// [`Error::Validation`] on field `expiresIn` outside 1..=604800.
    pub fn from_secs(secs: u64) -> Result<Self, Error> {
        if (Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            // In range, so it fits u32.
            Ok(Self(u32::try_from(secs).unwrap_or(u32::MAX)))
        } else {
            Err(Error::invalid(
                "expiresIn",
                "must be between 1 and 604800 seconds",
            ))
        }
    }

    /// In seconds.
    #[must_use]
    pub fn secs(self) -> u64 {
        u64::from(self.0)
    }

    /// As a [`Duration`].
    #[must_use]
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.secs())
    }
}

impl Default for Expiry {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A number of bytes, with a readable rendering for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// One mebibyte, in bytes.
    pub const MIB: u64 = 1024 * 1024;

    /// `n` mebibytes.
    #[must_use]
    pub fn mib(n: u64) -> Self {
        Self(n * Self::MIB)
    }

    /// In bytes.
    #[must_use]
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 >= Self::MIB && self.0.is_multiple_of(Self::MIB) {
            write!(f, "{} MiB", self.0 / Self::MIB)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_expiry_is_ten_minutes() {
        assert_eq!(Expiry::default().secs(), 600);
    }

    proptest! {
        #[test]
        fn expiry_accepts_exactly_one_second_to_seven_days(secs in 0u64..2_000_000) {
            let r = Expiry::from_secs(secs);
            prop_assert_eq!(r.is_ok(), (1..=604_800).contains(&secs));
            if let Ok(e) = r { prop_assert_eq!(e.secs(), secs); }
        }
    }

    #[test]
    fn byte_size_renders_whole_mebibytes() {
        assert_eq!(ByteSize::mib(100).to_string(), "100 MiB");
        assert_eq!(ByteSize(1500).to_string(), "1500 bytes");
    }
}
