//! How registry records look on the command line: the values people type (levels, sides,
//! scores, dates) and the JSON and table views of episodes, follow-ups, labels, predictions and
//! episode events, shared by `tfesi episode`, `tfesi followup` and `tfesi snapshot`.
//!
//! Enum values print as lower-case snake_case words without their proto prefix
//! (`lost_to_follow_up`, `due_today`, as CLINICAL.md names them); levels print as `L4-L5`.
//! Optional values absent from a record are JSON `null`, never a made-up default.

use chrono::{DateTime, NaiveDate, Utc};
use clap::ValueEnum;
use serde_json::{Value, json};
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as registry;

/// Generates `fn name(value: i32) -> String` for a proto enum: the value's name without
/// `prefix`, lower-cased (`unknown(7)` for a number this build does not know).
macro_rules! enum_names {
    ($($(#[$doc:meta])* $name:ident: $type:ty, $prefix:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name(value: i32) -> String {
            <$type>::try_from(value).map_or_else(
                |_| format!("unknown({value})"),
                |known| known.as_str_name().trim_start_matches($prefix).to_ascii_lowercase(),
            )
        }
    )*};
}

enum_names! {
    /// `herniated_disc`, `spinal_stenosis`.
    indication_name: common::Indication, "INDICATION_";
    /// `left`, `right`, `bilateral`.
    side_name: common::Side, "SIDE_";
    /// `female`, `male`, `other`, `unspecified`.
    sex_name: common::Sex, "SEX_";
    /// `champion`, `shadow`, `explicit`.
    role_name: common::ModelRole, "MODEL_ROLE_";
    /// `cpu`, `cuda`.
    provider_name: common::ExecutionProvider, "EXECUTION_PROVIDER_";
    /// `pending`, `completed`, `lost_to_follow_up`, `withdrawn`, `excluded`.
    status_name: registry::OutcomeStatus, "OUTCOME_STATUS_";
    /// `repeat_injection`, `surgery`, ...
    exclusion_name: registry::ExclusionReason, "EXCLUSION_REASON_";
    /// `subpedicular`, `retrodiscal`.
    approach_name: registry::Approach, "APPROACH_";
    /// `fluoroscopy`, `ct`.
    guidance_name: registry::Guidance, "GUIDANCE_";
    /// `clinic`, `phone`, `message`.
    method_name: registry::FollowUpMethod, "FOLLOW_UP_METHOD_";
    /// `none`, `decreased`, `unchanged`, `increased`, `stopped`.
    analgesic_name: registry::AnalgesicChange, "ANALGESIC_CHANGE_";
    /// `headache`, `vasovagal`, ...
    adverse_event_name: registry::AdverseEvent, "ADVERSE_EVENT_";
    /// `upcoming`, `in_window`, `due_today`, `overdue`.
    due_state_name: registry::DueState, "DUE_STATE_";
    /// `no_follow_up`, `baseline_below_minimum`, ...
    unlabelable_name: registry::UnlabelableReason, "UNLABELABLE_REASON_";
    /// `train`, `validation`, `test`.
    split_name: registry::Split, "SPLIT_";
}

/// `good` or `poor`; `None` when unlabeled.
pub fn label_name(value: i32) -> Option<String> {
    match common::OutcomeLabel::try_from(value) {
        Ok(common::OutcomeLabel::Good) => Some("good".to_owned()),
        Ok(common::OutcomeLabel::Poor) => Some("poor".to_owned()),
        Ok(common::OutcomeLabel::Unspecified) => None,
        Err(_) => Some(format!("unknown({value})")),
    }
}

/// A foramen as clinicians write it: `L4-L5`, `L5-S1`, `S1`.
pub fn level_name(value: i32) -> String {
    common::SpinalLevel::try_from(value).map_or_else(
        |_| format!("unknown({value})"),
        |level| level.as_str_name().trim_start_matches("SPINAL_LEVEL_").replace('_', "-"),
    )
}

/// Several levels joined with `, ` (for tables).
pub fn levels_text(levels: &[i32]) -> String {
    if levels.is_empty() {
        "-".to_owned()
    } else {
        levels.iter().map(|&l| level_name(l)).collect::<Vec<_>>().join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// Values typed on the command line

/// An injected or planned foramen (`--level`; case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// L1-L2.
    #[value(name = "L1-L2")]
    L1L2,
    /// L2-L3.
    #[value(name = "L2-L3")]
    L2L3,
    /// L3-L4.
    #[value(name = "L3-L4")]
    L3L4,
    /// L4-L5.
    #[value(name = "L4-L5")]
    L4L5,
    /// L5-S1.
    #[value(name = "L5-S1")]
    L5S1,
    /// S1.
    #[value(name = "S1")]
    S1,
}

impl From<Level> for common::SpinalLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::L1L2 => Self::L1L2,
            Level::L2L3 => Self::L2L3,
            Level::L3L4 => Self::L3L4,
            Level::L4L5 => Self::L4L5,
            Level::L5S1 => Self::L5S1,
            Level::S1 => Self::S1,
        }
    }
}

/// The proto numbers of typed levels.
pub fn level_numbers(levels: &[Level]) -> Vec<i32> {
    levels.iter().map(|&level| common::SpinalLevel::from(level) as i32).collect()
}

/// Side of an injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// Left.
    Left,
    /// Right.
    Right,
    /// Both sides.
    Bilateral,
}

impl From<Side> for common::Side {
    fn from(side: Side) -> Self {
        match side {
            Side::Left => Self::Left,
            Side::Right => Self::Right,
            Side::Bilateral => Self::Bilateral,
        }
    }
}

/// Indication of the injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Indication {
    /// Herniated lumbar disc.
    HerniatedDisc,
    /// Lumbar spinal stenosis.
    SpinalStenosis,
}

impl From<Indication> for common::Indication {
    fn from(indication: Indication) -> Self {
        match indication {
            Indication::HerniatedDisc => Self::HerniatedDisc,
            Indication::SpinalStenosis => Self::SpinalStenosis,
        }
    }
}

/// Sex recorded at baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Not recorded.
    Unspecified,
}

impl From<Sex> for common::Sex {
    fn from(sex: Sex) -> Self {
        match sex {
            Sex::Female => Self::Female,
            Sex::Male => Self::Male,
            Sex::Other => Self::Other,
            Sex::Unspecified => Self::Unspecified,
        }
    }
}

/// How a follow-up score was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// In clinic.
    Clinic,
    /// By telephone.
    Phone,
    /// By message (SMS, portal).
    Message,
}

impl From<Method> for registry::FollowUpMethod {
    fn from(method: Method) -> Self {
        match method {
            Method::Clinic => Self::Clinic,
            Method::Phone => Self::Phone,
            Method::Message => Self::Message,
        }
    }
}

/// Change in analgesic use since the injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Analgesic {
    /// No analgesics before or after.
    None,
    /// Decreased.
    Decreased,
    /// Unchanged.
    Unchanged,
    /// Increased.
    Increased,
    /// Stopped.
    Stopped,
}

impl From<Analgesic> for registry::AnalgesicChange {
    fn from(change: Analgesic) -> Self {
        match change {
            Analgesic::None => Self::None,
            Analgesic::Decreased => Self::Decreased,
            Analgesic::Unchanged => Self::Unchanged,
            Analgesic::Increased => Self::Increased,
            Analgesic::Stopped => Self::Stopped,
        }
    }
}

/// Coded adverse event after the injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Adverse {
    /// Transient increase in pain.
    IncreasedPain,
    /// Headache (including post-dural puncture).
    Headache,
    /// Facial flushing or another steroid effect.
    SteroidEffect,
    /// Vasovagal reaction.
    Vasovagal,
    /// Transient numbness or weakness.
    TransientNeurological,
    /// Persistent neurological deficit.
    PersistentNeurological,
    /// Infection.
    Infection,
    /// Other (describe it with --adverse-event-note).
    Other,
}

impl From<Adverse> for registry::AdverseEvent {
    fn from(event: Adverse) -> Self {
        match event {
            Adverse::IncreasedPain => Self::IncreasedPain,
            Adverse::Headache => Self::Headache,
            Adverse::SteroidEffect => Self::SteroidEffect,
            Adverse::Vasovagal => Self::Vasovagal,
            Adverse::TransientNeurological => Self::TransientNeurological,
            Adverse::PersistentNeurological => Self::PersistentNeurological,
            Adverse::Infection => Self::Infection,
            Adverse::Other => Self::Other,
        }
    }
}

/// Where a pending follow-up stands (`followup due --state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DueState {
    /// Before the window opens.
    Upcoming,
    /// Inside the window, not on the due date.
    InWindow,
    /// On the due date.
    DueToday,
    /// After the window closed, still pending.
    Overdue,
}

impl From<DueState> for registry::DueState {
    fn from(state: DueState) -> Self {
        match state {
            DueState::Upcoming => Self::Upcoming,
            DueState::InWindow => Self::InWindow,
            DueState::DueToday => Self::DueToday,
            DueState::Overdue => Self::Overdue,
        }
    }
}

/// A snapshot split (`snapshot export --split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// Training rows.
    Train,
    /// Validation rows.
    Validation,
    /// Test rows.
    Test,
}

impl From<Split> for registry::Split {
    fn from(split: Split) -> Self {
        match split {
            Split::Train => Self::Train,
            Split::Validation => Self::Validation,
            Split::Test => Self::Test,
        }
    }
}

/// Clap value parser of a surrogate id (UUID), returned in its canonical lower-case form.
pub fn parse_uuid(text: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(text)
        .map(|parsed| parsed.to_string())
        .map_err(|_| format!("'{text}' is not a UUID (e.g. 0f8e2b6a-3c1d-4e5f-9a7b-1c2d3e4f5a6b)"))
}

/// Clap value parser of a calendar date written `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("'{text}' is not a calendar date written YYYY-MM-DD (e.g. 2025-03-07)"))
}

/// Clap value parser of an instant in RFC 3339 (`2025-03-07T12:00:00Z`) or a date (midnight UTC).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text).map(|instant| instant.with_timezone(&Utc)).or_else(|_| {
        parse_date(text).map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc()).map_err(|_| {
            format!("'{text}' is neither an RFC 3339 instant (2025-03-07T12:00:00Z) nor a date (2025-03-07)")
        })
    })
}

/// A chrono date as the proto's.
pub fn proto_date(date: NaiveDate) -> common::Date {
    use chrono::Datelike as _;
    common::Date { year: date.year(), month: date.month() as i32, day: date.day() as i32 }
}

/// A chrono instant as a protobuf timestamp.
pub fn proto_timestamp(instant: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: instant.timestamp(), nanos: instant.timestamp_subsec_nanos() as i32 }
}

/// `YYYY-MM-DD`, or `None` when absent.
pub fn date_text(date: Option<&common::Date>) -> Option<String> {
    date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
}

/// RFC 3339 in UTC (seconds precision), or `None` when absent or out of range.
pub fn time_text(time: Option<&prost_types::Timestamp>) -> Option<String> {
    let time = time?;
    let nanos = u32::try_from(time.nanos).ok()?;
    DateTime::from_timestamp(time.seconds, nanos)
        .map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// RFC 3339 in UTC with every digit of the instant (to pass it back, e.g. to `--as-of`).
pub fn exact_time_text(time: Option<&prost_types::Timestamp>) -> Option<String> {
    let time = time?;
    let nanos = u32::try_from(time.nanos).ok()?;
    DateTime::from_timestamp(time.seconds, nanos)
        .map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// `name:version`, or `-`.
pub fn model_text(model: Option<&common::ModelRef>) -> String {
    model.map_or_else(|| "-".to_owned(), |m| format!("{}:{}", m.name, m.version))
}

/// An empty id as JSON `null`.
fn id(text: &str) -> Value {
    if text.is_empty() { Value::Null } else { Value::from(text) }
}

// ---------------------------------------------------------------------------------------------
// JSON views

/// An episode's baseline facts.
pub fn details_json(details: &registry::EpisodeDetails) -> Value {
    json!({
        "patient_id": id(&details.patient_id),
        "study_id": id(&details.study_id),
        "indication": indication_name(details.indication),
        "planned_levels": details.planned_levels.iter().map(|&l| level_name(l)).collect::<Vec<_>>(),
        "planned_side": side_name(details.planned_side),
        "baseline_leg_nrs": details.baseline_leg_nrs,
        "baseline_back_nrs": details.baseline_back_nrs,
        "symptom_duration_days": details.symptom_duration_days,
        "age_years": details.age_years,
        "sex": sex_name(details.sex),
        "baseline_date": date_text(details.baseline_date.as_ref()),
    })
}

/// A recorded injection.
pub fn injection_json(injection: &registry::Injection) -> Value {
    let details = injection.details.clone().unwrap_or_default();
    json!({
        "injection_id": injection.injection_id,
        "injection_date": date_text(details.injection_date.as_ref()),
        "levels": details.levels.iter().map(|&l| level_name(l)).collect::<Vec<_>>(),
        "side": side_name(details.side),
        "approach": approach_name(details.approach),
        "guidance": guidance_name(details.guidance),
        "contrast_used": details.contrast_used,
        "drug_code": details.drug_code,
        "drug_text": details.drug_text,
        "dose_mg": details.dose_mg,
        "local_anaesthetic": details.local_anaesthetic,
        "recorded_at": time_text(injection.recorded_at.as_ref()),
    })
}

/// A follow-up schedule.
pub fn window_json(window: &registry::FollowUpWindow) -> Value {
    json!({
        "injection_date": date_text(window.injection_date.as_ref()),
        "due_date": date_text(window.due_date.as_ref()),
        "window_start": date_text(window.window_start.as_ref()),
        "window_end": date_text(window.window_end.as_ref()),
    })
}

/// An outcome status.
pub fn status_json(status: &registry::OutcomeStatusInfo) -> Value {
    let reason = (status.exclusion_reason != 0).then(|| exclusion_name(status.exclusion_reason));
    json!({
        "status": status_name(status.status),
        "exclusion_reason": reason,
        "note": status.note,
        "changed_at": time_text(status.changed_at.as_ref()),
        "changed_by": status.changed_by,
    })
}

/// One follow-up version.
pub fn follow_up_json(follow_up: &registry::FollowUp) -> Value {
    let input = follow_up.input.clone().unwrap_or_default();
    json!({
        "follow_up_id": follow_up.follow_up_id,
        "episode_id": follow_up.episode_id,
        "version": follow_up.version,
        "current": follow_up.current,
        "follow_up_date": date_text(input.follow_up_date.as_ref()),
        "leg_nrs": input.leg_nrs,
        "back_nrs": input.back_nrs,
        "pgic": input.pgic,
        "analgesic_change": (input.analgesic_change != 0).then(|| analgesic_name(input.analgesic_change)),
        "repeat_injection": input.repeat_injection,
        "surgery": input.surgery,
        "adverse_events": input.adverse_events.iter().map(|&e| adverse_event_name(e)).collect::<Vec<_>>(),
        "adverse_event_note": input.adverse_event_note,
        "method": method_name(input.method),
        "entered_by": input.entered_by,
        "out_of_window": input.out_of_window,
        "days_since_injection": follow_up.days_since_injection,
        "in_window": follow_up.in_window,
        "amendment_reason": id(&follow_up.amendment_reason),
        "recorded_at": time_text(follow_up.recorded_at.as_ref()),
        "recorded_by": follow_up.recorded_by,
    })
}

/// A label under one rule.
pub fn label_json(label: &registry::Label) -> Value {
    let reason = (label.unlabelable_reason != 0).then(|| unlabelable_name(label.unlabelable_reason));
    json!({
        "rule_version": label.rule_version,
        "label": label_name(label.label),
        "unlabelable_reason": reason,
        "reduction": label.reduction,
        "follow_up_version": label.follow_up_version,
        "computed_at": time_text(label.computed_at.as_ref()),
    })
}

/// A stored prediction.
pub fn prediction_json(prediction: &registry::PredictionRecord) -> Value {
    json!({
        "prediction_id": prediction.prediction_id,
        "job_id": prediction.job_id,
        "study_id": prediction.study_id,
        "series_id": prediction.series_id,
        "model": model_text(prediction.model.as_ref()),
        "role": role_name(prediction.role),
        "spec_version": prediction.spec_version,
        "probability": prediction.probability,
        "threshold": prediction.threshold,
        "predicted_label": label_name(prediction.predicted_label),
        "execution_provider": provider_name(prediction.execution_provider),
        "predicted_at": time_text(prediction.predicted_at.as_ref()),
    })
}

/// A whole episode.
pub fn episode_json(episode: &registry::Episode) -> Value {
    json!({
        "episode_id": episode.episode_id,
        "revision": episode.revision,
        "created_at": time_text(episode.created_at.as_ref()),
        "details": episode.details.as_ref().map(details_json),
        "status": episode.status.as_ref().map(status_json),
        "injection": episode.injection.as_ref().map(injection_json),
        "window": episode.window.as_ref().map(window_json),
        "follow_up": episode.follow_up.as_ref().map(follow_up_json),
        "labels": episode.labels.iter().map(label_json).collect::<Vec<_>>(),
        "predictions": episode.predictions.iter().map(prediction_json).collect::<Vec<_>>(),
    })
}

/// One episode event: `{episode_id, revision, occurred_at, kind, <kind's record>}`.
pub fn event_json(event: &registry::EpisodeEvent) -> Value {
    use registry::episode_event::Event;
    let (kind, key, record) = match &event.event {
        Some(Event::Snapshot(episode)) => ("snapshot", "episode", episode_json(episode)),
        Some(Event::PredictionRecorded(p)) => ("prediction_recorded", "prediction", prediction_json(p)),
        Some(Event::InjectionRecorded(i)) => ("injection_recorded", "injection", injection_json(i)),
        Some(Event::FollowUpRecorded(f)) => ("follow_up_recorded", "follow_up", follow_up_json(f)),
        Some(Event::FollowUpAmended(f)) => ("follow_up_amended", "follow_up", follow_up_json(f)),
        Some(Event::StatusChanged(s)) => ("status_changed", "status", status_json(s)),
        Some(Event::LabelChanged(l)) => ("label_changed", "label", label_json(l)),
        None => ("unknown", "record", Value::Null),
    };
    json!({
        "episode_id": event.episode_id,
        "revision": event.revision,
        "occurred_at": time_text(event.occurred_at.as_ref()),
        "kind": kind,
        key: record,
    })
}

// ---------------------------------------------------------------------------------------------
// Tables

/// `leg 3, back 4` (back omitted when absent).
fn scores_text(leg: i32, back: Option<i32>) -> String {
    back.map_or_else(|| format!("leg {leg}"), |back| format!("leg {leg}, back {back}"))
}

/// One line describing a follow-up version.
pub fn follow_up_line(follow_up: &registry::FollowUp) -> String {
    let input = follow_up.input.clone().unwrap_or_default();
    let mut line = format!(
        "v{} on {} (day {}, {}): {}; {} by {}",
        follow_up.version,
        date_text(input.follow_up_date.as_ref()).unwrap_or_else(|| "-".to_owned()),
        follow_up.days_since_injection,
        if follow_up.in_window { "in window" } else { "OUT OF WINDOW" },
        scores_text(input.leg_nrs, input.back_nrs),
        method_name(input.method),
        if input.entered_by.is_empty() { &follow_up.recorded_by } else { &input.entered_by },
    );
    if let Some(pgic) = input.pgic {
        line.push_str(&format!("; PGIC {pgic}"));
    }
    for (flag, name) in [(input.repeat_injection, "repeat injection"), (input.surgery, "surgery")] {
        if flag == Some(true) {
            line.push_str(&format!("; {name}"));
        }
    }
    if !follow_up.amendment_reason.is_empty() {
        line.push_str(&format!("; amended: {}", follow_up.amendment_reason));
    }
    line
}

/// One line describing a label.
pub fn label_line(label: &registry::Label) -> String {
    match label_name(label.label) {
        Some(name) => format!(
            "{}: {name}{}",
            label.rule_version,
            label.reduction.map(|r| format!(" (reduction {:.0}%)", r * 100.0)).unwrap_or_default()
        ),
        None => {
            format!("{}: not labelable ({})", label.rule_version, unlabelable_name(label.unlabelable_reason))
        }
    }
}

/// One line describing a prediction.
pub fn prediction_line(prediction: &registry::PredictionRecord) -> String {
    format!(
        "{} {} p={:.3} (threshold {:.2}: {}) at {}",
        model_text(prediction.model.as_ref()),
        role_name(prediction.role),
        prediction.probability,
        prediction.threshold,
        label_name(prediction.predicted_label).unwrap_or_else(|| "-".to_owned()),
        time_text(prediction.predicted_at.as_ref()).unwrap_or_default()
    )
}

/// An episode for people.
pub fn print_episode(episode: &registry::Episode) {
    let details = episode.details.clone().unwrap_or_default();
    let dash = || "-".to_owned();
    println!(
        "episode      {} (revision {}, created {})",
        episode.episode_id,
        episode.revision,
        time_text(episode.created_at.as_ref()).unwrap_or_else(dash)
    );
    println!("patient      {}", details.patient_id);
    println!(
        "study        {}",
        if details.study_id.is_empty() { "not linked yet" } else { &details.study_id }
    );
    println!(
        "indication   {}; planned {} {}",
        indication_name(details.indication),
        levels_text(&details.planned_levels),
        side_name(details.planned_side)
    );
    println!(
        "baseline     {}; symptoms {} days; age {}; {}{}",
        scores_text(details.baseline_leg_nrs, details.baseline_back_nrs),
        details.symptom_duration_days,
        details.age_years,
        sex_name(details.sex),
        date_text(details.baseline_date.as_ref()).map(|d| format!("; recorded {d}")).unwrap_or_default()
    );
    match &episode.injection {
        Some(injection) => {
            let d = injection.details.clone().unwrap_or_default();
            println!(
                "injection    {} {} {}, {}, {}{}; {} {} mg{}",
                date_text(d.injection_date.as_ref()).unwrap_or_else(dash),
                levels_text(&d.levels),
                side_name(d.side),
                approach_name(d.approach),
                guidance_name(d.guidance),
                if d.contrast_used { " with contrast" } else { "" },
                d.drug_code,
                d.dose_mg,
                if d.local_anaesthetic.is_empty() {
                    String::new()
                } else {
                    format!(", {}", d.local_anaesthetic)
                }
            );
        }
        None => println!("injection    not recorded yet"),
    }
    if let Some(window) = &episode.window {
        println!(
            "window       due {}, accepted {} to {}",
            date_text(window.due_date.as_ref()).unwrap_or_else(dash),
            date_text(window.window_start.as_ref()).unwrap_or_else(dash),
            date_text(window.window_end.as_ref()).unwrap_or_else(dash)
        );
    }
    let status = episode.status.clone().unwrap_or_default();
    println!(
        "status       {}{}{}",
        status_name(status.status),
        if status.exclusion_reason == 0 {
            String::new()
        } else {
            format!(" ({})", exclusion_name(status.exclusion_reason))
        },
        if status.note.is_empty() { String::new() } else { format!(": {}", status.note) }
    );
    match &episode.follow_up {
        Some(follow_up) => println!("follow-up    {}", follow_up_line(follow_up)),
        None => println!("follow-up    not recorded yet"),
    }
    for (index, label) in episode.labels.iter().enumerate() {
        println!("{}{}", if index == 0 { "labels       " } else { "             " }, label_line(label));
    }
    for (index, prediction) in episode.predictions.iter().enumerate() {
        println!(
            "{}{}",
            if index == 0 { "predictions  " } else { "             " },
            prediction_line(prediction)
        );
    }
}

/// One event for people, on one line.
pub fn event_line(event: &registry::EpisodeEvent) -> String {
    use registry::episode_event::Event;
    let what = match &event.event {
        Some(Event::Snapshot(episode)) => format!(
            "current: {}{}",
            status_name(episode.status.clone().unwrap_or_default().status),
            episode
                .follow_up
                .as_ref()
                .map(|f| format!(", follow-up {}", follow_up_line(f)))
                .unwrap_or_default()
        ),
        Some(Event::PredictionRecorded(p)) => format!("prediction: {}", prediction_line(p)),
        Some(Event::InjectionRecorded(i)) => {
            let d = i.details.clone().unwrap_or_default();
            format!(
                "injection recorded: {} {} {}",
                date_text(d.injection_date.as_ref()).unwrap_or_default(),
                levels_text(&d.levels),
                side_name(d.side)
            )
        }
        Some(Event::FollowUpRecorded(f)) => format!("follow-up recorded: {}", follow_up_line(f)),
        Some(Event::FollowUpAmended(f)) => format!("follow-up amended: {}", follow_up_line(f)),
        Some(Event::StatusChanged(s)) => format!("status: {}", status_name(s.status)),
        Some(Event::LabelChanged(l)) => format!("label: {}", label_line(l)),
        None => "an event this build does not know".to_owned(),
    };
    format!("rev {:<4} {}  {what}", event.revision, time_text(event.occurred_at.as_ref()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_prefix_and_keep_clinical_spelling() {
        assert_eq!(status_name(registry::OutcomeStatus::LostToFollowUp as i32), "lost_to_follow_up");
        assert_eq!(due_state_name(registry::DueState::DueToday as i32), "due_today");
        assert_eq!(level_name(common::SpinalLevel::L5S1 as i32), "L5-S1");
        assert_eq!(level_name(common::SpinalLevel::S1 as i32), "S1");
        assert_eq!(level_name(99), "unknown(99)");
        assert_eq!(label_name(common::OutcomeLabel::Unspecified as i32), None);
        assert_eq!(label_name(common::OutcomeLabel::Good as i32).as_deref(), Some("good"));
    }

    #[test]
    fn dates_parse_only_as_real_calendar_dates() {
        assert_eq!(parse_date("2025-03-07"), Ok(NaiveDate::from_ymd_opt(2025, 3, 7).unwrap()));
        assert!(parse_date("2025-02-30").is_err());
        assert!(parse_date("07/03/2025").is_err());
        assert!(parse_date("2025-03-07T00:00:00Z").is_err());
        let date = proto_date(NaiveDate::from_ymd_opt(2025, 3, 7).unwrap());
        assert_eq!(date_text(Some(&date)).as_deref(), Some("2025-03-07"));
    }

    #[test]
    fn instants_accept_rfc3339_or_a_date() {
        let instant = parse_instant("2025-03-07T12:30:00+02:00").unwrap();
        assert_eq!(instant.to_rfc3339(), "2025-03-07T10:30:00+00:00");
        assert_eq!(parse_instant("2025-03-07").unwrap().to_rfc3339(), "2025-03-07T00:00:00+00:00");
        assert!(parse_instant("tomorrow").is_err());
        let timestamp = proto_timestamp(instant);
        assert_eq!(time_text(Some(&timestamp)).as_deref(), Some("2025-03-07T10:30:00Z"));
    }

    #[test]
    fn events_name_their_kind_and_carry_the_record() {
        let event = registry::EpisodeEvent {
            episode_id: "e".to_owned(),
            revision: 4,
            occurred_at: None,
            event: Some(registry::episode_event::Event::FollowUpAmended(registry::FollowUp {
                version: 2,
                amendment_reason: "typo".to_owned(),
                input: Some(registry::FollowUpInput { leg_nrs: 3, ..Default::default() }),
                ..Default::default()
            })),
        };
        let value = event_json(&event);
        assert_eq!(value["kind"], "follow_up_amended");
        assert_eq!(value["follow_up"]["version"], 2);
        assert_eq!(value["follow_up"]["leg_nrs"], 3);
        assert!(event_line(&event).contains("amended: typo"), "{}", event_line(&event));
    }
}
