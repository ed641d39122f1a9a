//! Multipart uploads, shared by both modes: the part plan a declared size fixes, the
//! checks of a batch of part numbers to sign, and the check of a client's part list
//! against what storage holds before anything is completed.
//!
//! The bytes never pass through filegate: a client uploads each part with a presigned
//! `UploadPart` URL signed with the part's exact `Content-Length`, so storage itself
//! refuses a part of another size.

use crate::domain::ObjectKey;
use crate::error::{Error, FieldError};
use crate::ports::{CompletedPart, StoredPart};
use crate::storage::SignedPart;
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// 1 MiB.
const MIB: u64 = 1024 * 1024;
/// The smallest part S3 and R2 accept (all but the last part).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The largest part S3 and R2 accept.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// The most parts one upload may have.
pub const MAX_PARTS: u64 = 10_000;
/// The part size used when the client asks for none (raised for large files).
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// The most part numbers one sign-parts call may name.
pub const MAX_PARTS_PER_SIGN: usize = 1000;

/// A started multipart upload: its row and its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartStarted {
    /// The row's id (`med_…` or `obj_…`).
    pub id: String,
    /// Storage's upload id.
    pub upload_id: String,
    /// The object key the upload writes.
    pub key: ObjectKey,
    /// The size of every part but the last.
    pub part_size: u64,
    /// How many parts the upload has.
    pub part_count: u32,
    /// When the upload is abandoned (its row purged, the upload aborted).
    pub expires_at: OffsetDateTime,
}

/// A batch of presigned part URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts {
    /// One URL per part asked for, in request order.
    pub parts: Vec<SignedPart>,
    /// When the URLs stop working.
    pub expires_at: OffsetDateTime,
}

/// How a declared size is cut into parts: every part but the last has exactly
/// `part_size` bytes, the last has the rest (R2 requires equal parts but the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    size: u64,
    part_size: u64,
    part_count: u32,
}

impl PartPlan {
    /// The plan of an upload of `size` bytes, with `part_size` when the client chose one.
    /// Without one: 8 MiB, raised to a whole number of MiB until there are at most 10 000
    /// parts. The size limit itself (413) is the caller's check.
    ///
    /// # Errors
    /// [`Error::Validation`] on `size` when 0; on `partSize` when under 5 MiB, over 5 GiB,
    /// or so small that the upload would need more than 10 000 parts.
    pub fn new(size: u64, part_size: Option<u64>) -> Result<Self, Error> {
        if size == 0 {
            return Err(Error::invalid("size", "must be at least 1 byte"));
        }
        let part_size = match part_size {
            Some(p) if p < MIN_PART_SIZE => {
                return Err(Error::invalid(
                    "partSize",
                    "must be at least 5242880 bytes (5 MiB)",
                ));
            }
            Some(p) if p > MAX_PART_SIZE => {
                return Err(Error::invalid(
                    "partSize",
                    "must be at most 5368709120 bytes (5 GiB)",
                ));
            }
            Some(p) if size.div_ceil(p) > MAX_PARTS => {
                return Err(Error::invalid(
                    "partSize",
                    format!(
                        "is too small for {size} bytes: at most 10000 parts; use at least {}",
                        size.div_ceil(MAX_PARTS)
                    ),
                ));
            }
            Some(p) => p,
            None => {
                let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
                needed.max(DEFAULT_PART_SIZE)
            }
        };
        if part_size > MAX_PART_SIZE {
            return Err(Error::invalid(
                "size",
                "is too large for 10000 parts of at most 5 GiB",
            ));
        }
        let part_count = u32::try_from(size.div_ceil(part_size))
            .map_err(|_| Error::invalid("partSize", "makes too many parts"))?;
        Ok(Self {
            size,
            part_size,
            part_count,
        })
    }

    /// A plan recorded earlier (the row's declared size and the part size it implies).
    /// Replays [`PartPlan::new`] without a chosen part size, so a row only needs the size
    /// and part size it was created with.
    ///
    /// # Errors
    /// As [`PartPlan::new`].
    pub fn of(size: u64, part_size: u64) -> Result<Self, Error> {
        Self::new(size, Some(part_size))
    }

    /// The declared total size in bytes.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size of every part but the last.
    #[must_use]
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// How many parts the upload has.
    #[must_use]
    pub fn part_count(&self) -> u32 {
        self.part_count
    }

    /// The exact size of part `n` (1-based), `None` outside 1..=part count.
    #[must_use]
    pub fn part_len(&self, n: u32) -> Option<u64> {
        if n == 0 || n > self.part_count {
            return None;
        }
        if n == self.part_count {
            Some(self.size - u64::from(self.part_count - 1) * self.part_size)
        } else {
            Some(self.part_size)
        }
    }

    /// Checks a batch of part numbers to sign: 1 to 1000 of them, each in
    /// 1..=part count, no duplicates. Returns each with its exact size, in request order.
    ///
    /// # Errors
    /// [`Error::Validation`] on `partNumbers` (or `partNumbers[i]` for one bad number).
    pub fn check_batch(&self, numbers: &[u32]) -> Result<Vec<(u32, u64)>, Error> {
        if numbers.is_empty() || numbers.len() > MAX_PARTS_PER_SIGN {
            return Err(Error::invalid(
                "partNumbers",
                "must name between 1 and 1000 parts",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(numbers.len());
        for (i, &n) in numbers.iter().enumerate() {
            let Some(len) = self.part_len(n) else {
                return Err(Error::invalid(
                    format!("partNumbers[{i}]"),
                    format!("must be between 1 and {}", self.part_count),
                ));
            };
            if !seen.insert(n) {
                return Err(Error::invalid(
                    format!("partNumbers[{i}]"),
                    format!("part {n} is named twice"),
                ));
            }
            out.push((n, len));
        }
        Ok(out)
    }

    /// Checks the client's part list against the parts storage holds before completing:
    /// every part 1..=part count named once, in order, each with the ETag storage has and
    /// the size the plan gives it, so the parts add up to the declared size. Returns the
    /// list to send to storage.
    ///
    /// # Errors
    /// [`Error::Validation`] naming the field: `parts` (empty, not ascending, a gap or a
    /// part storage lacks), `parts[i].etag` (another ETag than storage's), `size` (a part
    /// of another size than planned, so the total is not the declared size).
    pub fn check_completion(
        &self,
        client: &[CompletedPart],
        stored: &[StoredPart],
    ) -> Result<Vec<CompletedPart>, Error> {
        let count = self.part_count as usize;
        if client.len() != count {
            return Err(Error::invalid(
                "parts",
                format!(
                    "must list all {count} parts of the upload; {} were given",
                    client.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(count);
        for (i, part) in client.iter().enumerate() {
            let expected = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if part.part_number != expected {
                return Err(Error::invalid(
                    "parts",
                    format!(
                        "must list parts 1 to {count} in ascending order; part {expected} is missing"
                    ),
                ));
            }
            let Some(held) = stored.iter().find(|s| s.part_number == expected) else {
                return Err(Error::invalid(
                    "parts",
                    format!("part {expected} has not been uploaded"),
                ));
            };
            if unquoted(&part.etag) != unquoted(&held.etag) {
                return Err(Error::Validation(vec![FieldError::new(
                    format!("parts[{i}].etag"),
                    format!("is not the ETag storage holds for part {expected}"),
                )]));
            }
            let planned = self.part_len(expected).unwrap_or(0);
            if held.size != planned {
                return Err(Error::invalid(
                    "size",
                    format!(
                        "part {expected} holds {} bytes; {planned} were planned, so the parts do not add up to the declared {} bytes",
                        held.size, self.size
                    ),
                ));
            }
            out.push(CompletedPart {
                part_number: expected,
                etag: held.etag.clone(),
            });
        }
        Ok(out)
    }
}

fn unquoted(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(err: &Error) -> &str {
        match err {
            Error::Validation(f) => &f[0].field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn the_default_part_size_is_8_mib_raised_in_whole_mib() {
        let p = PartPlan::new(64 * MIB, None).unwrap();
        assert_eq!((p.part_size(), p.part_count()), (8 * MIB, 8));
        let big = PartPlan::new(100 * 1024 * MIB, None).unwrap();
        assert_eq!(big.part_size() % MIB, 0);
        assert!(u64::from(big.part_count()) <= MAX_PARTS);
        assert_eq!(big.part_size(), 11 * MIB);
        let tiny = PartPlan::new(1, None).unwrap();
        assert_eq!((tiny.part_count(), tiny.part_len(1)), (1, Some(1)));
    }

    #[test]
    fn bad_sizes_name_their_field() {
        assert_eq!(field(&PartPlan::new(0, None).unwrap_err()), "size");
        assert_eq!(
            field(&PartPlan::new(10, Some(MIN_PART_SIZE - 1)).unwrap_err()),
            "partSize"
        );
        assert_eq!(
            field(&PartPlan::new(10, Some(MAX_PART_SIZE + 1)).unwrap_err()),
            "partSize"
        );
        assert_eq!(
            field(&PartPlan::new(MAX_PARTS * MIN_PART_SIZE + 1, Some(MIN_PART_SIZE)).unwrap_err()),
            "partSize"
        );
        assert_eq!(
            field(&PartPlan::new(MAX_PARTS * MAX_PART_SIZE + 1, None).unwrap_err()),
            "size"
        );
    }

    #[test]
    fn batches_are_checked() {
        let p = PartPlan::new(20 * MIB + 3, Some(5 * MIB)).unwrap();
        assert_eq!(p.part_count(), 5);
        assert_eq!(p.check_batch(&[5, 1]).unwrap(), vec![(5, 3), (1, 5 * MIB)]);
        assert_eq!(field(&p.check_batch(&[]).unwrap_err()), "partNumbers");
        assert_eq!(
            field(&p.check_batch(&[1, 6]).unwrap_err()),
            "partNumbers[1]"
        );
        assert_eq!(field(&p.check_batch(&[0]).unwrap_err()), "partNumbers[0]");
        assert_eq!(
            field(&p.check_batch(&[2, 2]).unwrap_err()),
            "partNumbers[1]"
        );
        assert_eq!(
            field(&p.check_batch(&[1; 1001]).unwrap_err()),
            "partNumbers"
        );
    }

    fn stored(p: &PartPlan) -> Vec<StoredPart> {
        (1..=p.part_count())
            .map(|n| StoredPart {
                part_number: n,
                size: p.part_len(n).unwrap(),
                etag: format!("etag-{n}"),
            })
            .collect()
    }

    fn client(p: &PartPlan) -> Vec<CompletedPart> {
        (1..=p.part_count())
            .map(|n| CompletedPart {
                part_number: n,
                etag: format!("\"etag-{n}\""),
            })
            .collect()
    }

    #[test]
    fn completion_checks_gaps_etags_and_sizes() {
        let p = PartPlan::new(12 * MIB, Some(5 * MIB)).unwrap();
        let ok = p.check_completion(&client(&p), &stored(&p)).unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[0].etag, "etag-1");

        let mut missing = client(&p);
        missing.remove(1);
        assert_eq!(
            field(&p.check_completion(&missing, &stored(&p)).unwrap_err()),
            "parts"
        );
        let mut wrong = client(&p);
        wrong[2].etag = "nope".into();
        assert_eq!(
            field(&p.check_completion(&wrong, &stored(&p)).unwrap_err()),
            "parts[2].etag"
        );
        let mut short = stored(&p);
        short[2].size -= 1;
        assert_eq!(
            field(&p.check_completion(&client(&p), &short).unwrap_err()),
            "size"
        );
        let mut absent = stored(&p);
        absent.remove(0);
        assert_eq!(
            field(&p.check_completion(&client(&p), &absent).unwrap_err()),
            "parts"
        );
        let mut swapped = client(&p);
        swapped.swap(0, 1);
        assert_eq!(
            field(&p.check_completion(&swapped, &stored(&p)).unwrap_err()),
            "parts"
        );
    }

    proptest! {
        #[test]
        fn every_plan_keeps_the_storage_rules(
            size in 1u64..=(MAX_PARTS * MAX_PART_SIZE),
            chosen in prop::option::of(MIN_PART_SIZE..=MAX_PART_SIZE),
        ) {
            let Ok(p) = PartPlan::new(size, chosen) else {
                // Only a chosen part size too small for 10 000 parts is refused.
                let chosen = chosen.unwrap_or(0);
                prop_assert!(chosen > 0 && size.div_ceil(chosen) > MAX_PARTS);
                return Ok(());
            };
            prop_assert!(u64::from(p.part_count()) <= MAX_PARTS);
            prop_assert!(p.part_count() >= 1);
            prop_assert!(p.part_size() >= MIN_PART_SIZE && p.part_size() <= MAX_PART_SIZE);
            if chosen.is_none() {
                prop_assert_eq!(p.part_size() % MIB, 0);
            }
            let mut sum = 0u64;
            for n in 1..=p.part_count() {
                let len = p.part_len(n).unwrap();
                prop_assert!(len >= 1);
                if n < p.part_count() {
                    prop_assert_eq!(len, p.part_size());
                } else {
                    prop_assert!(len <= p.part_size());
                }
                sum += len;
            }
            prop_assert_eq!(sum, size);
            prop_assert_eq!(p.part_len(0), None);
            prop_assert_eq!(p.part_len(p.part_count() + 1), None);
        }
    }
}
