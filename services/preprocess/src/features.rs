//! Clinical features of a treatment episode, encoded as model cards name them: one table of
//! feature name, meaning and encoder.
//!
//! The levels and side come from the recorded injection when there is one, otherwise from the
//! plan (the pipeline usually runs before the injection).

use tfesi_proto::common::v1::{ClinicalFeature, Indication, Sex, Side, SpinalLevel};
use tfesi_proto::registry::v1::Episode;

/// What the encoders read from an episode: the baseline facts and the (planned or recorded)
/// procedure.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeFacts {
    pub baseline_leg_nrs: i32,
    pub age_years: i32,
    pub symptom_duration_days: i32,
    pub indication: Indication,
    pub sex: Sex,
    pub levels: Vec<SpinalLevel>,
    pub side: Side,
}

/// Why an episode could not be encoded for a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    /// The model names a feature this service has no encoder for.
    #[error("clinical feature `{0}` has no encoder in tfesi-preprocess")]
    Unknown(String),
    /// The episode lacks its baseline details.
    #[error("episode {0} has no baseline details")]
    MissingDetails(String),
}

/// Symptoms shorter than this many days count as "under 3 months" (13 weeks, as the synthetic
/// cohort and the literature it follows define it).
pub const SHORT_SYMPTOM_DAYS: i32 = 91;

type Encoder = fn(&EpisodeFacts) -> f32;

fn flag(condition: bool) -> f32 {
    if condition { 1.0 } else { 0.0 }
}

/// Every feature this service can encode: name, encoding (as the model card words it), encoder.
pub const FEATURES: &[(&str, &str, Encoder)] = &[
    ("baseline_leg_nrs", "leg pain NRS-11 before the injection, 0 to 10, divided by 10", |facts| {
        facts.baseline_leg_nrs as f32 / 10.0
    }),
    ("age_years", "age at injection in years, divided by 100", |facts| facts.age_years as f32 / 100.0),
    ("level_l4_l5", "1 if the injected foramen is L4-L5, else 0", |facts| {
        flag(facts.levels.contains(&SpinalLevel::L4L5))
    }),
    ("level_l5_s1", "1 if the injected foramen is L5-S1, else 0", |facts| {
        flag(facts.levels.contains(&SpinalLevel::L5S1))
    }),
    ("side_left", "1 if injected on the left only, else 0", |facts| flag(facts.side == Side::Left)),
    ("indication_stenosis", "1 for spinal stenosis, 0 for herniated disc", |facts| {
        flag(facts.indication == Indication::SpinalStenosis)
    }),
    ("sex_female", "1 if female, else 0", |facts| flag(facts.sex == Sex::Female)),
    ("symptom_duration_lt_3_months", "1 if symptoms lasted under 3 months, else 0", |facts| {
        flag(facts.symptom_duration_days < SHORT_SYMPTOM_DAYS)
    }),
];

impl EpisodeFacts {
    /// The facts of a registry episode.
    pub fn from_episode(episode: &Episode) -> Result<Self, FeatureError> {
        let details = episode
            .details
            .as_ref()
            .ok_or_else(|| FeatureError::MissingDetails(episode.episode_id.clone()))?;
        let injected = episode.injection.as_ref().and_then(|injection| injection.details.as_ref());
        let (levels, side) = match injected {
            Some(injection) => (injection.levels.clone(), injection.side),
            None => (details.planned_levels.clone(), details.planned_side),
        };
        Ok(Self {
            baseline_leg_nrs: details.baseline_leg_nrs,
            age_years: details.age_years,
            symptom_duration_days: details.symptom_duration_days,
            indication: Indication::try_from(details.indication).unwrap_or(Indication::Unspecified),
            sex: Sex::try_from(details.sex).unwrap_or(Sex::Unspecified),
            levels: levels.into_iter().filter_map(|level| SpinalLevel::try_from(level).ok()).collect(),
            side: Side::try_from(side).unwrap_or(Side::Unspecified),
        })
    }
}

/// Encodes `names` (a model card's clinical features, in order) from the facts.
pub fn encode(names: &[String], facts: &EpisodeFacts) -> Result<Vec<ClinicalFeature>, FeatureError> {
    names
        .iter()
        .map(|name| {
            let (_, _, encoder) = FEATURES
                .iter()
                .find(|(known, _, _)| known == name)
                .ok_or_else(|| FeatureError::Unknown(name.clone()))?;
            Ok(ClinicalFeature { name: name.clone(), value: encoder(facts) })
        })
        .collect()
}

/// The first name no encoder exists for, if any.
pub fn first_unknown(names: &[String]) -> Option<&String> {
    names.iter().find(|name| !FEATURES.iter().any(|(known, _, _)| known == name))
}

#[cfg(test)]
mod tests {
    use tfesi_proto::registry::v1::{EpisodeDetails, Injection, InjectionDetails};

    use super::*;

    fn episode(with_injection: bool) -> Episode {
        Episode {
            episode_id: "e1".into(),
            details: Some(EpisodeDetails {
                patient_id: "p".into(),
                study_id: "s".into(),
                indication: Indication::SpinalStenosis as i32,
                planned_levels: vec![SpinalLevel::L4L5 as i32],
                planned_side: Side::Left as i32,
                baseline_leg_nrs: 7,
                baseline_back_nrs: Some(3),
                symptom_duration_days: 60,
                age_years: 54,
                sex: Sex::Female as i32,
                baseline_date: None,
            }),
            injection: with_injection.then(|| Injection {
                injection_id: "i".into(),
                details: Some(InjectionDetails {
                    levels: vec![SpinalLevel::L5S1 as i32],
                    side: Side::Bilateral as i32,
                    ..InjectionDetails::default()
                }),
                recorded_at: None,
            }),
            ..Episode::default()
        }
    }

    fn card_names() -> Vec<String> {
        FEATURES.iter().map(|(name, _, _)| (*name).to_owned()).collect()
    }

    fn values(features: &[ClinicalFeature]) -> Vec<(String, f32)> {
        features.iter().map(|feature| (feature.name.clone(), feature.value)).collect()
    }

    #[test]
    fn planned_procedure_is_encoded_when_no_injection_is_recorded() {
        let facts = EpisodeFacts::from_episode(&episode(false)).unwrap();
        let encoded = encode(&card_names(), &facts).unwrap();
        let expected = [
            ("baseline_leg_nrs", 0.7),
            ("age_years", 0.54),
            ("level_l4_l5", 1.0),
            ("level_l5_s1", 0.0),
            ("side_left", 1.0),
            ("indication_stenosis", 1.0),
            ("sex_female", 1.0),
            ("symptom_duration_lt_3_months", 1.0),
        ];
        for ((name, value), (expected_name, expected_value)) in values(&encoded).iter().zip(expected) {
            assert_eq!(name, expected_name);
            assert!((value - expected_value).abs() < 1e-6, "{name}: {value}");
        }
    }

    #[test]
    fn recorded_injection_overrides_the_plan() {
        let facts = EpisodeFacts::from_episode(&episode(true)).unwrap();
        let encoded = values(&encode(&card_names(), &facts).unwrap());
        let get = |wanted: &str| encoded.iter().find(|(name, _)| name == wanted).map(|(_, value)| *value);
        assert_eq!(get("level_l4_l5"), Some(0.0));
        assert_eq!(get("level_l5_s1"), Some(1.0));
        assert_eq!(get("side_left"), Some(0.0), "bilateral is not left only");
    }

    #[test]
    fn order_follows_the_card_and_unknown_names_are_refused() {
        let facts = EpisodeFacts::from_episode(&episode(false)).unwrap();
        let names = vec!["sex_female".to_owned(), "baseline_leg_nrs".to_owned()];
        assert_eq!(
            values(&encode(&names, &facts).unwrap()),
            vec![("sex_female".to_owned(), 1.0), ("baseline_leg_nrs".to_owned(), 0.7)]
        );
        let unknown = vec!["bmi".to_owned()];
        assert_eq!(encode(&unknown, &facts), Err(FeatureError::Unknown("bmi".into())));
        assert_eq!(first_unknown(&unknown), Some(&"bmi".to_owned()));
        assert_eq!(first_unknown(&names), None);
    }

    #[test]
    fn symptom_duration_threshold_is_thirteen_weeks() {
        let mut facts = EpisodeFacts::from_episode(&episode(false)).unwrap();
        let names = vec!["symptom_duration_lt_3_months".to_owned()];
        facts.symptom_duration_days = 90;
        assert_eq!(encode(&names, &facts).unwrap()[0].value, 1.0);
        facts.symptom_duration_days = 91;
        assert_eq!(encode(&names, &facts).unwrap()[0].value, 0.0);
    }

    #[test]
    fn the_bundled_test_model_card_is_fully_covered() {
        let card: serde_json::Value =
            serde_json::from_str(include_str!("../../../models/tfesi-test/1/model.json")).unwrap();
        let names: Vec<String> = card["clinical_features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|feature| feature["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 8);
        assert_eq!(first_unknown(&names), None);
        for (name, encoding, _) in FEATURES {
            let card_encoding = card["clinical_features"]
                .as_array()
                .unwrap()
                .iter()
                .find(|feature| feature["name"] == *name)
                .map(|feature| feature["encoding"].as_str().unwrap().to_owned());
            assert_eq!(card_encoding.as_deref(), Some(*encoding), "{name}");
        }
    }
}
