//! Training snapshots: a manifest built by a pure function, identified by the sha256 of its
//! canonical serialisation.
//!
//! Canonical serialisation: compact JSON (serde_json) of [`SnapshotManifest`], whose fields are
//! written in declaration order, whose maps are `BTreeMap`s (sorted keys), and whose entries are
//! sorted by episode id. The as-of time is not part of the content: two requests that freeze the
//! same data under the same rule, seed and filters are the same snapshot.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::label::{LabelInput, LabelRule, Unlabeled, derive_label};
use super::records::SeriesRefs;
use super::split::{SplitFractions, assign};
use super::types::{Indication, Level, Sex, Side, Split};
use crate::error::Result;

/// Format tag written into every manifest; bump it when the layout changes.
pub const MANIFEST_FORMAT: &str = "tfesi-registry-snapshot-v1";

/// Which episodes a snapshot considers (all of them when every field is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFilters {
    /// Only these indications (empty: all).
    pub indications: Vec<Indication>,
    /// Only injections on or after this date.
    pub injected_from: Option<NaiveDate>,
    /// Only injections on or before this date.
    pub injected_to: Option<NaiveDate>,
    /// Only episodes injected at one of these levels (empty: all).
    pub levels: Vec<Level>,
    /// Only episodes linked to a study.
    pub require_study: bool,
    /// Also export episodes without a label (with the reason); they never get a split label.
    pub include_unlabeled: bool,
}

impl SnapshotFilters {
    /// Whether an episode passes the filters.
    pub fn accepts(&self, candidate: &SnapshotCandidate) -> bool {
        let indication_ok =
            self.indications.is_empty() || self.indications.contains(&candidate.features.indication);
        let from_ok = self.injected_from.is_none_or(|from| candidate.injection_date >= from);
        let to_ok = self.injected_to.is_none_or(|to| candidate.injection_date <= to);
        let level_ok = self.levels.is_empty()
            || candidate.features.injection_levels.iter().any(|level| self.levels.contains(level));
        let study_ok = !self.require_study || candidate.study_id.is_some();
        indication_ok && from_ok && to_ok && level_ok && study_ok
    }

    /// Sorts and deduplicates, so that equal filters serialise identically.
    pub fn normalised(mut self) -> Self {
        self.indications.sort();
        self.indications.dedup();
        self.levels.sort();
        self.levels.dedup();
        self
    }
}

/// Clinical features of an episode, as a model's `clinical` input names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicalFeatures {
    pub indication: Indication,
    pub injection_levels: Vec<Level>,
    pub injection_side: Side,
    pub baseline_leg_nrs: u8,
    pub baseline_back_nrs: Option<u8>,
    pub symptom_duration_days: u32,
    pub age_years: u8,
    pub sex: Sex,
}

/// Everything known about one episode as of the snapshot time (built by the store).
#[derive(Debug, Clone)]
pub struct SnapshotCandidate {
    pub episode_id: Uuid,
    pub patient_id: Uuid,
    pub study_id: Option<Uuid>,
    /// Series of the latest champion prediction of the study, if any.
    pub series_id: Option<Uuid>,
    /// What that prediction's tensor was prepared from (empty when not reported).
    pub series_refs: SeriesRefs,
    pub injection_date: NaiveDate,
    pub features: ClinicalFeatures,
    pub label_input: LabelInput,
    /// Current follow-up version as of the snapshot time.
    pub follow_up: Option<(Uuid, u32)>,
}

/// One labeled example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub episode_id: Uuid,
    pub patient_id: Uuid,
    pub split: Split,
    pub study_id: Option<Uuid>,
    pub series_id: Option<Uuid>,
    /// Series content hash of `series_id` as its prediction reported it. Left out of the
    /// canonical JSON when empty, so that manifests frozen before the field existed keep their
    /// hash (and the same inputs still give the same hash).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub series_content_sha256: String,
    /// Content addresses of the series' stored instances, in the job's order; left out when
    /// empty, like `series_content_sha256`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_sha256: Vec<String>,
    pub features: ClinicalFeatures,
    /// Responder under the snapshot's rule, or why there is no label.
    pub label: Result<bool, Unlabeled>,
    pub follow_up_id: Option<Uuid>,
    pub follow_up_version: Option<u32>,
    pub follow_up_leg_nrs: Option<u8>,
    pub follow_up_back_nrs: Option<u8>,
    pub days_to_follow_up: Option<u32>,
}

/// The frozen content of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub format: String,
    pub rule: LabelRule,
    pub split_seed: u64,
    pub split: SplitFractions,
    pub filters: SnapshotFilters,
    /// Episodes that passed the filters but have no label, counted by reason.
    pub unlabeled: BTreeMap<String, u64>,
    pub entries: Vec<SnapshotEntry>,
}

impl SnapshotManifest {
    /// Builds the manifest: applies the filters and the rule, assigns the split, sorts entries.
    pub fn build(
        rule: &LabelRule,
        split_seed: u64,
        split: SplitFractions,
        filters: SnapshotFilters,
        candidates: Vec<SnapshotCandidate>,
    ) -> Self {
        let filters = filters.normalised();
        let mut unlabeled: BTreeMap<String, u64> = BTreeMap::new();
        let mut entries = Vec::new();
        for candidate in candidates {
            if !filters.accepts(&candidate) {
                continue;
            }
            let label = derive_label(rule, &candidate.label_input);
            if let Err(reason) = label {
                *unlabeled.entry(reason.as_str().to_owned()).or_default() += 1;
                if !filters.include_unlabeled {
                    continue;
                }
            }
            let facts = candidate.label_input.follow_up;
            entries.push(SnapshotEntry {
                episode_id: candidate.episode_id,
                patient_id: candidate.patient_id,
                split: assign(split_seed, candidate.patient_id, split),
                study_id: candidate.study_id,
                series_id: candidate.series_id,
                series_content_sha256: candidate.series_refs.content_sha256,
                instance_sha256: candidate.series_refs.instance_sha256,
                features: candidate.features,
                label,
                follow_up_id: candidate.follow_up.map(|(id, _)| id),
                follow_up_version: candidate.follow_up.map(|(_, version)| version),
                follow_up_leg_nrs: facts.map(|f| f.leg_nrs),
                follow_up_back_nrs: facts.and_then(|f| f.back_nrs),
                days_to_follow_up: facts.map(|f| f.days_since_injection),
            });
        }
        entries.sort_by_key(|entry| entry.episode_id);
        SnapshotManifest {
            format: MANIFEST_FORMAT.to_owned(),
            rule: rule.clone(),
            split_seed,
            split,
            filters,
            unlabeled,
            entries,
        }
    }

    /// The canonical bytes that the content hash covers.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Lowercase hex sha256 of the canonical bytes: the snapshot's identity.
    pub fn content_hash(&self) -> Result<String> {
        Ok(hex::encode(Sha256::digest(self.canonical_bytes()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::label::FollowUpFacts;
    use crate::domain::types::EpisodeStatus;

    fn candidate(n: u128, leg_nrs: Option<u8>) -> SnapshotCandidate {
        let follow_up = leg_nrs.map(|leg_nrs| FollowUpFacts {
            days_since_injection: 60,
            leg_nrs,
            back_nrs: None,
            repeat_injection: false,
            surgery: false,
        });
        SnapshotCandidate {
            episode_id: Uuid::from_u128(n),
            patient_id: Uuid::from_u128(1000 + n),
            study_id: Some(Uuid::from_u128(2000 + n)),
            series_id: Some(Uuid::from_u128(3000 + n)),
            series_refs: SeriesRefs::default(),
            injection_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            features: ClinicalFeatures {
                indication: Indication::HerniatedDisc,
                injection_levels: vec![Level::L4L5],
                injection_side: Side::Left,
                baseline_leg_nrs: 8,
                baseline_back_nrs: Some(5),
                symptom_duration_days: 70,
                age_years: 50,
                sex: Sex::Female,
            },
            label_input: LabelInput {
                status: if follow_up.is_some() { EpisodeStatus::Completed } else { EpisodeStatus::Pending },
                baseline_leg_nrs: 8,
                baseline_back_nrs: Some(5),
                follow_up,
            },
            follow_up: leg_nrs.map(|_| (Uuid::from_u128(5000 + n), 1)),
        }
    }

    fn build(candidates: Vec<SnapshotCandidate>) -> SnapshotManifest {
        SnapshotManifest::build(
            &LabelRule::nrs50_v1(),
            42,
            SplitFractions::default(),
            SnapshotFilters::default(),
            candidates,
        )
    }

    #[test]
    fn same_inputs_in_any_order_give_the_same_hash() {
        let forward = build(vec![candidate(1, Some(2)), candidate(2, Some(7)), candidate(3, None)]);
        let backward = build(vec![candidate(3, None), candidate(2, Some(7)), candidate(1, Some(2))]);
        assert_eq!(forward.content_hash().ok(), backward.content_hash().ok());
        assert_eq!(forward.entries.len(), 2);
        assert_eq!(forward.unlabeled.get("no_follow_up"), Some(&1));
    }

    #[test]
    fn a_new_label_or_another_seed_changes_the_hash() {
        let before = build(vec![candidate(1, Some(2)), candidate(2, None)]).content_hash().ok();
        let after = build(vec![candidate(1, Some(2)), candidate(2, Some(3))]).content_hash().ok();
        assert_ne!(before, after);
        let reseeded = SnapshotManifest::build(
            &LabelRule::nrs50_v1(),
            43,
            SplitFractions::default(),
            SnapshotFilters::default(),
            vec![candidate(1, Some(2)), candidate(2, None)],
        );
        assert_ne!(before, reseeded.content_hash().ok());
    }

    #[test]
    fn series_references_are_frozen_into_the_manifest_and_its_hash() {
        let refs = SeriesRefs { content_sha256: "a".repeat(64), instance_sha256: vec!["b".repeat(64)] };
        let with_refs = SnapshotCandidate { series_refs: refs.clone(), ..candidate(1, Some(2)) };
        let manifest = build(vec![with_refs.clone()]);
        assert_eq!(manifest.entries[0].series_content_sha256, refs.content_sha256);
        assert_eq!(manifest.entries[0].instance_sha256, refs.instance_sha256);
        assert_eq!(manifest.content_hash().ok(), build(vec![with_refs]).content_hash().ok());
        assert_ne!(manifest.content_hash().ok(), build(vec![candidate(1, Some(2))]).content_hash().ok());
        let read_back: SnapshotManifest =
            serde_json::from_slice(&manifest.canonical_bytes().unwrap_or_default()).expect("manifest");
        assert_eq!(read_back, manifest);
    }

    #[test]
    fn a_manifest_frozen_before_series_references_reads_back_to_its_own_hash() {
        let manifest = build(vec![candidate(1, Some(2)), candidate(2, Some(9))]);
        // What an older registry stored: the same fields, none of the two new keys.
        let old_bytes = manifest.canonical_bytes().expect("bytes");
        assert!(!String::from_utf8_lossy(&old_bytes).contains("sha256"));
        let read_back: SnapshotManifest = serde_json::from_slice(&old_bytes).expect("manifest");
        assert_eq!(read_back.canonical_bytes().ok(), Some(old_bytes));
        assert_eq!(read_back.content_hash().ok(), manifest.content_hash().ok());
    }

    #[test]
    fn filters_drop_other_indications() {
        let filters = SnapshotFilters { indications: vec![Indication::SpinalStenosis], ..Default::default() };
        let manifest = SnapshotManifest::build(
            &LabelRule::nrs50_v1(),
            42,
            SplitFractions::default(),
            filters,
            vec![candidate(1, Some(2))],
        );
        assert!(manifest.entries.is_empty());
        assert!(manifest.unlabeled.is_empty());
    }
}
