//! Conversions of label rules, snapshots and metrics to and from protobuf.

use chrono::{DateTime, Utc};
use tfesi_proto::registry::v1 as pb;

use super::convert::{
    date, indication, levels, timestamp, to_date, to_indication, to_label, to_levels, to_sex, to_side,
};
use crate::domain::label::LabelRule;
use crate::domain::metrics::BinaryMetrics;
use crate::domain::snapshot::{SnapshotEntry, SnapshotFilters};
use crate::domain::split::SplitFractions;
use crate::domain::types::{ScoreSite, Split};
use crate::error::{Error, Result};
use crate::store::SnapshotSummary;

pub fn to_rule(rule: &LabelRule, default_version: &str) -> pb::LabelRule {
    pb::LabelRule {
        version: rule.version.clone(),
        description: String::new(),
        score: match rule.score_site {
            ScoreSite::Leg => pb::LabelScore::Leg as i32,
            ScoreSite::Back => pb::LabelScore::Back as i32,
        },
        min_baseline: i32::from(rule.min_baseline_nrs),
        min_reduction: f64::from(rule.min_reduction_pct) / 100.0,
        window_start_day: i32::try_from(rule.window_start_day).unwrap_or(i32::MAX),
        due_day: i32::try_from(rule.due_day).unwrap_or(i32::MAX),
        window_end_day: i32::try_from(rule.window_end_day).unwrap_or(i32::MAX),
        include_out_of_window: rule.include_out_of_window,
        exclude_confounded: rule.exclude_repeat_injection && rule.exclude_surgery,
        is_default: rule.version == default_version,
    }
}

pub fn snapshot_filter(filter: Option<pb::SnapshotFilter>) -> Result<SnapshotFilters> {
    let filter = filter.unwrap_or_default();
    let indications = filter
        .indications
        .iter()
        .map(|value| indication("filter.indications", *value))
        .collect::<Result<Vec<_>>>()?;
    Ok(SnapshotFilters {
        indications,
        injected_from: filter
            .injected_from
            .as_ref()
            .map(|d| date("filter.injected_from", Some(d)))
            .transpose()?,
        injected_to: filter.injected_to.as_ref().map(|d| date("filter.injected_to", Some(d))).transpose()?,
        levels: levels("filter.levels", &filter.levels)?,
        require_study: filter.require_study,
        include_unlabeled: filter.include_unlabeled,
    })
}

pub fn split_fractions(fractions: Option<pb::SplitFractions>) -> Result<SplitFractions> {
    match fractions {
        None => Ok(SplitFractions::default()),
        Some(f) => SplitFractions::from_fractions(f.train, f.validation, f.test),
    }
}

pub(super) fn to_split(split: Split) -> i32 {
    (match split {
        Split::Train => pb::Split::Train,
        Split::Validation => pb::Split::Validation,
        Split::Test => pb::Split::Test,
    }) as i32
}

pub fn split(value: i32) -> Result<Option<Split>> {
    match pb::Split::try_from(value) {
        Ok(pb::Split::Unspecified) => Ok(None),
        Ok(pb::Split::Train) => Ok(Some(Split::Train)),
        Ok(pb::Split::Validation) => Ok(Some(Split::Validation)),
        Ok(pb::Split::Test) => Ok(Some(Split::Test)),
        Err(_) => Err(Error::invalid("split", "unknown split")),
    }
}

pub fn to_snapshot(summary: &SnapshotSummary) -> pb::Snapshot {
    let filters = &summary.filters;
    pb::Snapshot {
        snapshot_id: summary.snapshot_id.clone(),
        as_of: Some(timestamp(summary.as_of)),
        filter: Some(pb::SnapshotFilter {
            indications: filters.indications.iter().map(|i| to_indication(*i)).collect(),
            levels: to_levels(&filters.levels),
            injected_from: filters.injected_from.map(to_date),
            injected_to: filters.injected_to.map(to_date),
            require_study: filters.require_study,
            include_unlabeled: filters.include_unlabeled,
        }),
        label_rule_version: summary.rule_version.clone(),
        split_seed: summary.split_seed,
        fractions: Some(pb::SplitFractions {
            train: f64::from(summary.split.train_bps) / 10_000.0,
            validation: f64::from(summary.split.validation_bps) / 10_000.0,
            test: f64::from(summary.split.test_bps) / 10_000.0,
        }),
        row_count: summary.entry_count,
        patient_count: summary.patient_count,
        train_count: summary.train,
        validation_count: summary.validation,
        test_count: summary.test,
        good_count: summary.responders,
        poor_count: summary.non_responders,
        manifest_version: 1,
        created_at: Some(timestamp(summary.created_at)),
        description: summary.description.clone(),
    }
}

pub fn to_snapshot_row(
    index: u64,
    entry: &SnapshotEntry,
    rule: &LabelRule,
    as_of: DateTime<Utc>,
) -> pb::SnapshotRow {
    let features = &entry.features;
    pb::SnapshotRow {
        index,
        episode_id: entry.episode_id.to_string(),
        patient_id: entry.patient_id.to_string(),
        split: to_split(entry.split),
        study_id: entry.study_id.map(|id| id.to_string()).unwrap_or_default(),
        series_id: entry.series_id.map(|id| id.to_string()).unwrap_or_default(),
        series_content_sha256: entry.series_content_sha256.clone(),
        instance_sha256: entry.instance_sha256.clone(),
        details: Some(pb::EpisodeDetails {
            patient_id: entry.patient_id.to_string(),
            study_id: entry.study_id.map(|id| id.to_string()).unwrap_or_default(),
            indication: to_indication(features.indication),
            planned_levels: to_levels(&features.injection_levels),
            planned_side: to_side(features.injection_side),
            baseline_leg_nrs: i32::from(features.baseline_leg_nrs),
            baseline_back_nrs: features.baseline_back_nrs.map(i32::from),
            symptom_duration_days: i32::try_from(features.symptom_duration_days).unwrap_or(i32::MAX),
            age_years: i32::from(features.age_years),
            sex: to_sex(features.sex),
            baseline_date: None,
        }),
        injected_levels: to_levels(&features.injection_levels),
        injected_side: to_side(features.injection_side),
        follow_up_leg_nrs: entry.follow_up_leg_nrs.map(i32::from),
        follow_up_back_nrs: entry.follow_up_back_nrs.map(i32::from),
        days_to_follow_up: entry.days_to_follow_up.and_then(|days| i32::try_from(days).ok()),
        label: Some(to_label(&rule.version, entry.label, None, entry.follow_up_version.unwrap_or(0), as_of)),
        champion_prediction: None,
    }
}

pub fn to_metrics(metrics: &BinaryMetrics) -> pb::MetricSet {
    pb::MetricSet {
        labeled_count: metrics.labeled,
        positive_count: metrics.positives,
        auc: metrics.auc.map(|auc| auc.auc),
        auc_ci_lower: metrics.auc.and_then(|auc| auc.ci_low),
        auc_ci_upper: metrics.auc.and_then(|auc| auc.ci_high),
        brier: metrics.brier,
        calibration: metrics
            .calibration
            .iter()
            .map(|bin| pb::CalibrationBin {
                lower: bin.lower,
                upper: bin.upper,
                count: bin.count,
                mean_predicted: bin.mean_predicted,
                observed_rate: bin.observed_rate,
            })
            .collect(),
        threshold: metrics.threshold,
        sensitivity: metrics.sensitivity,
        specificity: metrics.specificity,
        true_positives: metrics.confusion.true_positives,
        false_positives: metrics.confusion.false_positives,
        true_negatives: metrics.confusion.true_negatives,
        false_negatives: metrics.confusion.false_negatives,
    }
}
