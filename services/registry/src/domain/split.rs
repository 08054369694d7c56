//! Patient-level train/validation/test assignment, deterministic in (seed, patient id).
//!
//! Each patient's partition depends only on the seed and the patient's surrogate id, so every
//! episode of a patient lands in the same partition, and adding patients never moves others.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::types::Split;
use crate::error::{Error, Result};

/// Partition sizes in basis points (parts per 10,000); they sum to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitFractions {
    pub train_bps: u16,
    pub validation_bps: u16,
    pub test_bps: u16,
}

impl Default for SplitFractions {
    /// 70% train, 15% validation, 15% test.
    fn default() -> Self {
        SplitFractions { train_bps: 7000, validation_bps: 1500, test_bps: 1500 }
    }
}

impl SplitFractions {
    /// Converts fractions of 1 (each rounded to a basis point); they must add up to 1.
    pub fn from_fractions(train: f64, validation: f64, test: f64) -> Result<Self> {
        let to_bps = |field: &'static str, fraction: f64| {
            if fraction.is_finite() && (0.0..=1.0).contains(&fraction) {
                Ok((fraction * 10_000.0).round() as u16)
            } else {
                Err(Error::invalid(field, "must be a fraction from 0 to 1"))
            }
        };
        SplitFractions {
            train_bps: to_bps("fractions.train", train)?,
            validation_bps: to_bps("fractions.validation", validation)?,
            test_bps: to_bps("fractions.test", test)?,
        }
        .validate()
    }

    /// Refuses fractions that do not add up to 100%.
    pub fn validate(self) -> Result<Self> {
        let total = u32::from(self.train_bps) + u32::from(self.validation_bps) + u32::from(self.test_bps);
        if total == 10_000 {
            Ok(self)
        } else {
            Err(Error::invalid(
                "fractions",
                format!("fractions must add up to 10000 basis points, got {total}"),
            ))
        }
    }
}

/// The partition of `patient_id` under `seed`: the first 8 bytes of
/// `sha256("tfesi-split-v1" || seed as little-endian u64 || patient uuid bytes)`, modulo 10,000,
/// compared with the cumulative fractions.
pub fn assign(seed: u64, patient_id: Uuid, fractions: SplitFractions) -> Split {
    let mut hasher = Sha256::new();
    hasher.update(b"tfesi-split-v1");
    hasher.update(seed.to_le_bytes());
    hasher.update(patient_id.as_bytes());
    let digest = hasher.finalize();
    let mut head = [0_u8; 8];
    head.copy_from_slice(&digest[..8]);
    let bucket = u64::from_le_bytes(head) % 10_000;
    let train_end = u64::from(fractions.train_bps);
    let validation_end = train_end + u64::from(fractions.validation_bps);
    if bucket < train_end {
        Split::Train
    } else if bucket < validation_end {
        Split::Validation
    } else {
        Split::Test
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patients(count: u128) -> Vec<Uuid> {
        (1..=count).map(|n| Uuid::from_u128(n * 0x9E37_79B9_7F4A_7C15)).collect()
    }

    #[test]
    fn same_seed_same_patient_same_split() {
        let fractions = SplitFractions::default();
        for patient in patients(50) {
            assert_eq!(assign(7, patient, fractions), assign(7, patient, fractions));
        }
    }

    #[test]
    fn proportions_are_close_to_the_fractions_and_seeds_differ() {
        let fractions = SplitFractions::default();
        let cohort = patients(10_000);
        let train = cohort.iter().filter(|p| assign(1, **p, fractions) == Split::Train).count();
        assert!((6_800..=7_200).contains(&train), "train count {train}");
        let moved = cohort.iter().filter(|p| assign(1, **p, fractions) != assign(2, **p, fractions)).count();
        assert!(moved > 3_000, "a different seed should reshuffle, moved {moved}");
    }

    #[test]
    fn fractions_must_sum_to_one() {
        let bad = SplitFractions { train_bps: 8000, validation_bps: 1500, test_bps: 1500 };
        assert!(bad.validate().is_err());
        assert!(SplitFractions::default().validate().is_ok());
        let all_train = SplitFractions { train_bps: 10_000, validation_bps: 0, test_bps: 0 };
        assert!(patients(20).iter().all(|p| assign(3, *p, all_train) == Split::Train));
    }
}
