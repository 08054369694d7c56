//! Builders shared by the integration tests.

use chrono::{Days, NaiveDate};
use sqlx::PgPool;
use tfesi_registry::domain::records::{FollowUpContent, NewEpisode, NewInjection};
use tfesi_registry::domain::types::{Approach, FollowUpMethod, Guidance, Indication, Level, Sex, Side};
use tfesi_registry::domain::validation::Nrs;
use tfesi_registry::{RegistryConfig, Store};
use uuid::Uuid;

pub fn store(pool: PgPool) -> Store {
    Store::new(pool, RegistryConfig::default()).expect("default config is valid")
}

pub fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("test date")
}

pub fn day_after(start: NaiveDate, days: u64) -> NaiveDate {
    start + Days::new(days)
}

pub fn nrs(value: i64) -> Nrs {
    Nrs::new("test", value).expect("test score in range")
}

pub fn new_episode(patient_id: Uuid, baseline_leg: i64) -> NewEpisode {
    NewEpisode {
        patient_id,
        study_id: None,
        indication: Indication::HerniatedDisc,
        planned_levels: vec![Level::L4L5],
        planned_side: Side::Left,
        baseline_leg_nrs: nrs(baseline_leg),
        baseline_back_nrs: Some(nrs(5)),
        symptom_duration_days: 56,
        age_years: 54,
        sex: Sex::Female,
        baseline_date: None,
    }
}

pub fn new_injection(episode_id: Uuid, injection_date: NaiveDate) -> NewInjection {
    NewInjection {
        episode_id,
        injection_date,
        levels: vec![Level::L4L5],
        side: Side::Left,
        approach: Approach::Subpedicular,
        guidance: Guidance::Fluoroscopy,
        contrast_used: true,
        drug_code: "dexamethasone".into(),
        drug_text: "dexamethasone 10 mg + lidocaine 1% 2 mL".into(),
        dose_mg: 10.0,
        local_anaesthetic: "lidocaine 1% 2 mL".into(),
        recorded_by: "dr-test".into(),
    }
}

pub fn follow_up(follow_up_date: NaiveDate, leg: i64) -> FollowUpContent {
    FollowUpContent {
        follow_up_date,
        leg_nrs: nrs(leg),
        back_nrs: Some(nrs(3)),
        pgic: None,
        analgesic_change: None,
        repeat_injection: Some(false),
        surgery: None,
        adverse_events: Vec::new(),
        adverse_event_note: String::new(),
        method: FollowUpMethod::Phone,
        entered_by: "nurse-1".into(),
        accept_out_of_window: false,
    }
}

/// Creates a patient, an episode with baseline leg NRS `baseline_leg`, and its injection.
pub async fn injected_episode(store: &Store, baseline_leg: i64, injection_date: NaiveDate) -> Uuid {
    let episode =
        store.create_episode(None, new_episode(Uuid::new_v4(), baseline_leg)).await.expect("episode");
    store.record_injection(None, new_injection(episode.episode_id, injection_date)).await.expect("injection");
    episode.episode_id
}

/// Rows in `registry.<table>`; `table` is always a literal from the tests.
pub async fn count(pool: &PgPool, table: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM registry.{table}")))
        .fetch_one(pool)
        .await
        .expect("count")
}
