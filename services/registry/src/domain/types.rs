//! Closed vocabularies of the registry (indication, level, side, ...) with their stored spellings.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Declares an enum whose variants are stored as fixed lowercase strings (the CHECK lists of
/// migrations/0300_registry.sql), with `as_str` and a `parse` that names the offending field.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in Postgres and written into snapshots.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored spelling; `field` names the request field in the error.
            pub fn parse(field: &'static str, text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::invalid(field, format!("unknown value {other:?}"))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Why the injection is given (the paper's two groups).
    Indication { HerniatedDisc => "herniated_disc", SpinalStenosis => "spinal_stenosis" }
);

text_enum!(
    /// A lumbar intervertebral foramen (or the first sacral foramen).
    Level {
        L1L2 => "L1-L2", L2L3 => "L2-L3", L3L4 => "L3-L4", L4L5 => "L4-L5", L5S1 => "L5-S1", S1 => "S1"
    }
);

text_enum!(
    /// Side of the injection.
    Side { Left => "left", Right => "right", Bilateral => "bilateral" }
);

text_enum!(
    /// Needle approach: subpedicular (safe triangle) or retrodiscal (Kambin's triangle).
    Approach { Subpedicular => "subpedicular", Retrodiscal => "retrodiscal" }
);

text_enum!(
    /// Imaging guidance used for the injection.
    Guidance { Fluoroscopy => "fluoroscopy", Ct => "ct" }
);

text_enum!(
    /// Sex as recorded for the clinical features.
    Sex { Female => "female", Male => "male", Other => "other", Unknown => "unknown" }
);

text_enum!(
    /// How the follow-up score was obtained.
    FollowUpMethod { Clinic => "clinic", Phone => "phone", Message => "message" }
);

text_enum!(
    /// Change in analgesic use since the injection.
    AnalgesicChange {
        None => "none", Decreased => "decreased", Unchanged => "unchanged", Increased => "increased",
        Stopped => "stopped"
    }
);

text_enum!(
    /// Whether a prediction came from the serving model or a model evaluated in its shadow.
    ModelRole { Champion => "champion", Shadow => "shadow", Explicit => "explicit" }
);

text_enum!(
    /// Outcome status of an episode; loss to follow-up is explicit, never a silent drop.
    OutcomeStatus {
        Pending => "pending", Completed => "completed", LostToFollowUp => "lost_to_follow_up",
        Withdrawn => "withdrawn", Excluded => "excluded"
    }
);

text_enum!(
    /// Why an episode is excluded (as a status) or cannot be labeled (under a rule).
    ExclusionReason {
        RepeatInjection => "repeat_injection", Surgery => "surgery",
        BaselineTooLow => "baseline_too_low", OutOfWindow => "out_of_window", Deceased => "deceased",
        Other => "other"
    }
);

text_enum!(
    /// An adverse event reported at follow-up.
    AdverseEvent {
        IncreasedPain => "increased_pain", Headache => "headache", SteroidEffect => "steroid_effect",
        Vasovagal => "vasovagal", TransientNeurological => "transient_neurological",
        PersistentNeurological => "persistent_neurological", Infection => "infection", Other => "other"
    }
);

text_enum!(
    /// Which pain score a label rule compares.
    ScoreSite { Leg => "leg", Back => "back" }
);

text_enum!(
    /// Patient-level partition of a snapshot.
    Split { Train => "train", Validation => "validation", Test => "test" }
);

/// An outcome status together with the exclusion reason that `excluded` always carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeStatus {
    Pending,
    Completed,
    LostToFollowUp,
    Withdrawn,
    Excluded(ExclusionReason),
}

impl EpisodeStatus {
    /// Combines a status and a reason; a reason is required for `excluded` and refused otherwise.
    pub fn from_parts(status: OutcomeStatus, reason: Option<ExclusionReason>) -> Result<Self> {
        match (status, reason) {
            (OutcomeStatus::Excluded, Some(reason)) => Ok(EpisodeStatus::Excluded(reason)),
            (OutcomeStatus::Excluded, None) => Err(Error::invalid("reason", "excluded needs a reason")),
            (_, Some(_)) => Err(Error::invalid("reason", "only excluded takes a reason")),
            (OutcomeStatus::Pending, None) => Ok(EpisodeStatus::Pending),
            (OutcomeStatus::Completed, None) => Ok(EpisodeStatus::Completed),
            (OutcomeStatus::LostToFollowUp, None) => Ok(EpisodeStatus::LostToFollowUp),
            (OutcomeStatus::Withdrawn, None) => Ok(EpisodeStatus::Withdrawn),
        }
    }

    /// Parses the stored columns `outcome_status` and `outcome_reason`.
    pub fn from_columns(status: &str, reason: Option<&str>) -> Result<Self> {
        let status = OutcomeStatus::parse("outcome_status", status)?;
        let reason = reason.map(|text| ExclusionReason::parse("outcome_reason", text)).transpose()?;
        Self::from_parts(status, reason)
    }

    /// The status without its reason.
    pub fn status(self) -> OutcomeStatus {
        match self {
            EpisodeStatus::Pending => OutcomeStatus::Pending,
            EpisodeStatus::Completed => OutcomeStatus::Completed,
            EpisodeStatus::LostToFollowUp => OutcomeStatus::LostToFollowUp,
            EpisodeStatus::Withdrawn => OutcomeStatus::Withdrawn,
            EpisodeStatus::Excluded(_) => OutcomeStatus::Excluded,
        }
    }

    /// The exclusion reason, for `excluded` only.
    pub fn reason(self) -> Option<ExclusionReason> {
        match self {
            EpisodeStatus::Excluded(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Parses a non-empty list of levels without duplicates.
pub fn parse_levels(field: &'static str, texts: &[String]) -> Result<Vec<Level>> {
    if texts.is_empty() {
        return Err(Error::invalid(field, "at least one level is required"));
    }
    let mut levels = Vec::with_capacity(texts.len());
    for text in texts {
        let level = Level::parse(field, text)?;
        if levels.contains(&level) {
            return Err(Error::invalid(field, format!("level {text} is listed twice")));
        }
        levels.push(level);
    }
    Ok(levels)
}

/// Stored spellings of a list of levels.
pub fn level_strings(levels: &[Level]) -> Vec<String> {
    levels.iter().map(|level| level.as_str().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_stored_spelling() {
        for status in OutcomeStatus::ALL {
            assert_eq!(OutcomeStatus::parse("status", status.as_str()).ok(), Some(*status));
        }
        for level in Level::ALL {
            assert_eq!(Level::parse("levels", level.as_str()).ok(), Some(*level));
        }
    }

    #[test]
    fn unknown_spelling_names_the_field() {
        let error = Side::parse("planned_side", "middle").err();
        assert!(matches!(error, Some(Error::InvalidArgument { field: "planned_side", .. })));
    }

    #[test]
    fn duplicate_levels_are_refused() {
        let texts = vec!["L4-L5".to_owned(), "L4-L5".to_owned()];
        assert!(parse_levels("levels", &texts).is_err());
        assert!(parse_levels("levels", &[]).is_err());
    }
}
