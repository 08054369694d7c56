//! Responder labels: a pure, versioned rule applied to raw scores, recomputable at any time.

use serde::{Deserialize, Serialize};

use super::records::{EpisodeView, FollowUp};
use super::types::{EpisodeStatus, ScoreSite};
use super::validation::Nrs;

/// Version of the default rule (the paper's 50% reduction at 2 months, baseline >= 4).
pub const DEFAULT_RULE_VERSION: &str = "nrs50-v1";

/// A responder rule as stored in `registry.label_rules` (immutable once written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRule {
    pub version: String,
    pub score_site: ScoreSite,
    /// Baselines below this cannot be labeled (a baseline of 0 never can: the rule keeps >= 1).
    pub min_baseline_nrs: u8,
    /// Responder when `100 * (baseline - follow_up) >= min_reduction_pct * baseline`.
    pub min_reduction_pct: u8,
    pub window_start_day: u32,
    pub due_day: u32,
    pub window_end_day: u32,
    pub include_out_of_window: bool,
    pub exclude_repeat_injection: bool,
    pub exclude_surgery: bool,
}

impl LabelRule {
    /// The default rule `nrs50-v1`, identical to the row seeded by migration 0300.
    pub fn nrs50_v1() -> Self {
        LabelRule {
            version: DEFAULT_RULE_VERSION.to_owned(),
            score_site: ScoreSite::Leg,
            min_baseline_nrs: 4,
            min_reduction_pct: 50,
            window_start_day: 46,
            due_day: 60,
            window_end_day: 74,
            include_out_of_window: false,
            exclude_repeat_injection: true,
            exclude_surgery: true,
        }
    }
}

/// The facts of an episode that a label depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelInput {
    pub status: EpisodeStatus,
    pub baseline_leg_nrs: u8,
    pub baseline_back_nrs: Option<u8>,
    pub follow_up: Option<FollowUpFacts>,
}

impl LabelInput {
    /// The facts of an episode as read whole: its status, baselines and current follow-up.
    pub fn of_view(view: &EpisodeView) -> Self {
        LabelInput {
            status: view.episode.status,
            baseline_leg_nrs: view.episode.details.baseline_leg_nrs.get(),
            baseline_back_nrs: view.episode.details.baseline_back_nrs.map(Nrs::get),
            follow_up: view.follow_ups.iter().find(|follow_up| follow_up.is_current).map(FollowUpFacts::of),
        }
    }
}

/// The current follow-up version's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpFacts {
    pub days_since_injection: u32,
    pub leg_nrs: u8,
    pub back_nrs: Option<u8>,
    pub repeat_injection: bool,
    pub surgery: bool,
}

impl FollowUpFacts {
    /// The facts of a follow-up version that a label reads.
    pub fn of(follow_up: &FollowUp) -> Self {
        FollowUpFacts {
            days_since_injection: follow_up.days_since_injection,
            leg_nrs: follow_up.content.leg_nrs.get(),
            back_nrs: follow_up.content.back_nrs.map(Nrs::get),
            repeat_injection: follow_up.content.repeat_injection == Some(true),
            surgery: follow_up.content.surgery == Some(true),
        }
    }
}

/// Why an episode has no label under a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlabeled {
    /// Still waiting for the follow-up (status pending).
    NoFollowUp,
    /// The outcome status is lost to follow-up, withdrawn or excluded.
    Status,
    /// A baseline of 0: the percentage is undefined.
    BaselineZero,
    /// The baseline is below the rule's minimum.
    BaselineBelowMinimum,
    OutOfWindow,
    RepeatInjection,
    Surgery,
    /// The rule compares back pain but a back-pain score is missing.
    ScoreMissing,
}

impl Unlabeled {
    /// A stable name for counts and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Unlabeled::NoFollowUp => "no_follow_up",
            Unlabeled::Status => "status",
            Unlabeled::BaselineZero => "baseline_zero",
            Unlabeled::BaselineBelowMinimum => "baseline_below_minimum",
            Unlabeled::OutOfWindow => "out_of_window",
            Unlabeled::RepeatInjection => "repeat_injection",
            Unlabeled::Surgery => "surgery",
            Unlabeled::ScoreMissing => "score_missing",
        }
    }
}

/// The label of one episode under one rule: responder (`Ok(true)`), non-responder
/// (`Ok(false)`), or the reason it cannot be labeled.
pub type Label = Result<bool, Unlabeled>;

/// Derives the label. Checks run in a fixed order, so the reason reported is the first that
/// applies: status, follow-up present, baseline, repeat injection, surgery, window, score.
pub fn derive_label(rule: &LabelRule, input: &LabelInput) -> Label {
    match input.status {
        EpisodeStatus::Pending => return Err(Unlabeled::NoFollowUp),
        EpisodeStatus::LostToFollowUp | EpisodeStatus::Withdrawn | EpisodeStatus::Excluded(_) => {
            return Err(Unlabeled::Status);
        }
        EpisodeStatus::Completed => {}
    }
    let Some(follow_up) = input.follow_up else {
        return Err(Unlabeled::NoFollowUp);
    };
    let baseline = match rule.score_site {
        ScoreSite::Leg => input.baseline_leg_nrs,
        ScoreSite::Back => input.baseline_back_nrs.ok_or(Unlabeled::ScoreMissing)?,
    };
    debug_assert!(rule.min_baseline_nrs >= 1, "a baseline of 0 makes the reduction undefined");
    if baseline == 0 {
        return Err(Unlabeled::BaselineZero);
    }
    if baseline < rule.min_baseline_nrs {
        return Err(Unlabeled::BaselineBelowMinimum);
    }
    if rule.exclude_repeat_injection && follow_up.repeat_injection {
        return Err(Unlabeled::RepeatInjection);
    }
    if rule.exclude_surgery && follow_up.surgery {
        return Err(Unlabeled::Surgery);
    }
    let in_window = (rule.window_start_day..=rule.window_end_day).contains(&follow_up.days_since_injection);
    if !in_window && !rule.include_out_of_window {
        return Err(Unlabeled::OutOfWindow);
    }
    let score = match rule.score_site {
        ScoreSite::Leg => follow_up.leg_nrs,
        ScoreSite::Back => follow_up.back_nrs.ok_or(Unlabeled::ScoreMissing)?,
    };
    // Integer arithmetic: no rounding at the 50% boundary; a worse score is a negative reduction.
    let reduction = i32::from(baseline) - i32::from(score);
    Ok(100 * reduction >= i32::from(rule.min_reduction_pct) * i32::from(baseline))
}

/// The relative reduction `(baseline - follow_up) / baseline` under the rule's score, where
/// it is defined (for display; labels use the exact integer comparison).
pub fn reduction(rule: &LabelRule, input: &LabelInput) -> Option<f64> {
    let follow_up = input.follow_up?;
    let (baseline, score) = match rule.score_site {
        ScoreSite::Leg => (input.baseline_leg_nrs, follow_up.leg_nrs),
        ScoreSite::Back => (input.baseline_back_nrs?, follow_up.back_nrs?),
    };
    (baseline > 0).then(|| (f64::from(baseline) - f64::from(score)) / f64::from(baseline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(baseline_leg: u8, leg_nrs: u8, days: u32) -> LabelInput {
        LabelInput {
            status: EpisodeStatus::Completed,
            baseline_leg_nrs: baseline_leg,
            baseline_back_nrs: Some(5),
            follow_up: Some(FollowUpFacts {
                days_since_injection: days,
                leg_nrs,
                back_nrs: None,
                repeat_injection: false,
                surgery: false,
            }),
        }
    }

    #[test]
    fn exactly_fifty_percent_is_a_responder_and_less_is_not() {
        let rule = LabelRule::nrs50_v1();
        assert_eq!(derive_label(&rule, &completed(8, 4, 60)), Ok(true));
        assert_eq!(derive_label(&rule, &completed(8, 5, 60)), Ok(false));
        assert_eq!(derive_label(&rule, &completed(7, 3, 60)), Ok(true));
        assert_eq!(derive_label(&rule, &completed(7, 4, 60)), Ok(false));
        assert_eq!(derive_label(&rule, &completed(5, 0, 60)), Ok(true));
    }

    #[test]
    fn a_worse_score_is_a_poor_outcome() {
        assert_eq!(derive_label(&LabelRule::nrs50_v1(), &completed(6, 9, 60)), Ok(false));
    }

    #[test]
    fn low_or_zero_baseline_is_never_labeled() {
        let rule = LabelRule::nrs50_v1();
        assert_eq!(derive_label(&rule, &completed(3, 0, 60)), Err(Unlabeled::BaselineBelowMinimum));
        assert_eq!(derive_label(&rule, &completed(0, 0, 60)), Err(Unlabeled::BaselineZero));
        let lenient = LabelRule { min_baseline_nrs: 1, ..LabelRule::nrs50_v1() };
        assert_eq!(derive_label(&lenient, &completed(3, 1, 60)), Ok(true));
        assert_eq!(derive_label(&lenient, &completed(0, 0, 60)), Err(Unlabeled::BaselineZero));
    }

    #[test]
    fn out_of_window_is_excluded_unless_the_rule_includes_it() {
        let rule = LabelRule::nrs50_v1();
        let late = completed(8, 2, 90);
        assert_eq!(derive_label(&rule, &late), Err(Unlabeled::OutOfWindow));
        let inclusive = LabelRule { include_out_of_window: true, ..LabelRule::nrs50_v1() };
        assert_eq!(derive_label(&inclusive, &late), Ok(true));
    }

    #[test]
    fn repeat_injection_and_surgery_exclude_by_default() {
        let rule = LabelRule::nrs50_v1();
        let mut input = completed(8, 2, 60);
        if let Some(follow_up) = input.follow_up.as_mut() {
            follow_up.repeat_injection = true;
        }
        assert_eq!(derive_label(&rule, &input), Err(Unlabeled::RepeatInjection));
        if let Some(follow_up) = input.follow_up.as_mut() {
            follow_up.repeat_injection = false;
            follow_up.surgery = true;
        }
        assert_eq!(derive_label(&rule, &input), Err(Unlabeled::Surgery));
        let permissive = LabelRule { exclude_surgery: false, ..LabelRule::nrs50_v1() };
        assert_eq!(derive_label(&permissive, &input), Ok(true));
    }

    #[test]
    fn a_thirty_percent_rule_relabels_the_same_scores_exactly() {
        let rule = LabelRule { version: "nrs30-v1".into(), min_reduction_pct: 30, ..LabelRule::nrs50_v1() };
        // 3 of 10 is exactly 30%: a float comparison (0.3 * 10 = 3.0000000000000004) would miss it.
        assert_eq!(derive_label(&rule, &completed(10, 7, 60)), Ok(true));
        assert_eq!(derive_label(&LabelRule::nrs50_v1(), &completed(10, 7, 60)), Ok(false));
    }

    #[test]
    fn back_pain_rule_uses_back_scores_and_needs_one() {
        let rule = LabelRule { score_site: ScoreSite::Back, ..LabelRule::nrs50_v1() };
        let mut input = completed(8, 8, 60);
        assert_eq!(derive_label(&rule, &input), Err(Unlabeled::ScoreMissing));
        if let Some(follow_up) = input.follow_up.as_mut() {
            follow_up.back_nrs = Some(2);
        }
        assert_eq!(derive_label(&rule, &input), Ok(true));
    }

    #[test]
    fn status_decides_before_scores() {
        let rule = LabelRule::nrs50_v1();
        let mut input = completed(8, 2, 60);
        input.status = EpisodeStatus::Withdrawn;
        assert_eq!(derive_label(&rule, &input), Err(Unlabeled::Status));
        input.status = EpisodeStatus::Excluded(crate::domain::types::ExclusionReason::Deceased);
        assert_eq!(derive_label(&rule, &input), Err(Unlabeled::Status));
        input.status = EpisodeStatus::Pending;
        input.follow_up = None;
        assert_eq!(derive_label(&rule, &input), Err(Unlabeled::NoFollowUp));
    }
}
