//! The follow-up entry form without HTTP: the choices it offers, reading what was submitted,
//! checking it with messages for each field, and turning it into the registry's
//! `FollowUpInput` (and back, to pre-fill an amendment).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use tfesi_proto::common::v1 as common;
use tfesi_proto::registry::v1 as registry;

/// A submitted form's fields in order (repeated names kept, e.g. checkboxes).
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.trim())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == name).map(|(_, value)| value.trim().to_owned()).collect()
    }
}

/// Messages by form field; the empty key holds messages about the whole form.
pub type FieldErrors = BTreeMap<String, String>;

/// How the score was obtained: (form value, registry value, label).
pub const METHODS: [(&str, registry::FollowUpMethod, &str); 3] = [
    ("phone", registry::FollowUpMethod::Phone, "By telephone"),
    ("clinic", registry::FollowUpMethod::Clinic, "In clinic"),
    ("message", registry::FollowUpMethod::Message, "By message (SMS, portal)"),
];

/// Analgesic change choices: (form value, registry value, label).
pub const ANALGESICS: [(&str, registry::AnalgesicChange, &str); 5] = [
    ("none", registry::AnalgesicChange::None, "No analgesics before or after"),
    ("decreased", registry::AnalgesicChange::Decreased, "Decreased"),
    ("unchanged", registry::AnalgesicChange::Unchanged, "Unchanged"),
    ("increased", registry::AnalgesicChange::Increased, "Increased"),
    ("stopped", registry::AnalgesicChange::Stopped, "Stopped"),
];

/// Adverse events: (form value, registry value, label).
pub const ADVERSE_EVENTS: [(&str, registry::AdverseEvent, &str); 8] = [
    ("increased_pain", registry::AdverseEvent::IncreasedPain, "Transient increase in pain"),
    ("headache", registry::AdverseEvent::Headache, "Headache"),
    ("steroid_effect", registry::AdverseEvent::SteroidEffect, "Facial flushing or other steroid effect"),
    ("vasovagal", registry::AdverseEvent::Vasovagal, "Vasovagal reaction"),
    (
        "transient_neurological",
        registry::AdverseEvent::TransientNeurological,
        "Transient numbness or weakness",
    ),
    (
        "persistent_neurological",
        registry::AdverseEvent::PersistentNeurological,
        "Persistent neurological deficit",
    ),
    ("infection", registry::AdverseEvent::Infection, "Infection"),
    ("other", registry::AdverseEvent::Other, "Other (describe below)"),
];

/// Patient Global Impression of Change, 1 to 7.
pub const PGIC: [&str; 7] = [
    "Very much improved",
    "Much improved",
    "Minimally improved",
    "No change",
    "Minimally worse",
    "Much worse",
    "Very much worse",
];

/// Names of the form's fields (a registry message about any other field goes above the form).
pub const FORM_FIELDS: [&str; 12] = [
    "follow_up_date",
    "leg_nrs",
    "back_nrs",
    "pgic",
    "analgesic_change",
    "repeat_injection",
    "surgery",
    "adverse_events",
    "adverse_event_note",
    "method",
    "out_of_window",
    "reason",
];

/// Longest adverse-event note and amendment reason, characters (the registry's limits).
pub const MAX_TEXT: usize = 500;

/// What the form holds, as submitted (strings, so that a rejected form shows what was chosen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUpForm {
    /// `YYYY-MM-DD`.
    pub follow_up_date: String,
    /// `0`..`10`, empty when not chosen.
    pub leg_nrs: String,
    /// `0`..`10`, empty when not asked.
    pub back_nrs: String,
    /// `1`..`7`, empty when not asked.
    pub pgic: String,
    /// A value of [`ANALGESICS`], empty when not asked.
    pub analgesic_change: String,
    /// `yes`, `no`, empty when not asked.
    pub repeat_injection: String,
    /// `yes`, `no`, empty when not asked.
    pub surgery: String,
    /// Values of [`ADVERSE_EVENTS`].
    pub adverse_events: Vec<String>,
    /// Free text about adverse events.
    pub adverse_event_note: String,
    /// A value of [`METHODS`], empty when not chosen.
    pub method: String,
    /// The nurse confirmed that the date is outside the window.
    pub out_of_window: bool,
    /// Why an amendment is made (amendments only).
    pub reason: String,
}

/// What the check of a form knows about the episode and the day.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Today, the hospital's local date.
    pub today: NaiveDate,
    /// Injection date, when known.
    pub injection_date: Option<NaiveDate>,
    /// First and last accepted date, when known.
    pub window: Option<(NaiveDate, NaiveDate)>,
    /// An amendment needs a reason.
    pub amending: bool,
}

/// A protobuf date as a calendar date.
pub fn to_naive(date: Option<&common::Date>) -> Option<NaiveDate> {
    let date = date?;
    NaiveDate::from_ymd_opt(date.year, u32::try_from(date.month).ok()?, u32::try_from(date.day).ok()?)
}

/// A calendar date as a protobuf date.
pub fn to_proto(date: NaiveDate) -> common::Date {
    use chrono::Datelike as _;
    common::Date { year: date.year(), month: date.month() as i32, day: date.day() as i32 }
}

fn yes_no(value: Option<bool>) -> String {
    match value {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => String::new(),
    }
}

fn parse_yes_no(field: &str, value: &str, errors: &mut FieldErrors) -> Option<bool> {
    match value {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        _ => {
            errors.insert(field.to_owned(), "Choose yes, no or not asked.".to_owned());
            None
        }
    }
}

fn parse_score(value: &str, range: std::ops::RangeInclusive<i32>) -> Option<i32> {
    value.parse::<i32>().ok().filter(|score| range.contains(score))
}

impl FollowUpForm {
    /// The form as submitted.
    pub fn from_fields(fields: &Fields) -> Self {
        Self {
            follow_up_date: fields.get("follow_up_date").to_owned(),
            leg_nrs: fields.get("leg_nrs").to_owned(),
            back_nrs: fields.get("back_nrs").to_owned(),
            pgic: fields.get("pgic").to_owned(),
            analgesic_change: fields.get("analgesic_change").to_owned(),
            repeat_injection: fields.get("repeat_injection").to_owned(),
            surgery: fields.get("surgery").to_owned(),
            adverse_events: fields
                .all("adverse_events")
                .into_iter()
                .filter(|value| !value.is_empty())
                .collect(),
            adverse_event_note: fields.get("adverse_event_note").to_owned(),
            method: fields.get("method").to_owned(),
            out_of_window: fields.get("out_of_window") == "yes",
            reason: fields.get("reason").to_owned(),
        }
    }

    /// The form pre-filled with a stored follow-up (to amend it).
    pub fn from_input(input: &registry::FollowUpInput) -> Self {
        let analgesic = ANALGESICS.iter().find(|(_, value, _)| *value as i32 == input.analgesic_change);
        let method = METHODS.iter().find(|(_, value, _)| *value as i32 == input.method);
        Self {
            follow_up_date: to_naive(input.follow_up_date.as_ref())
                .map(|d| d.to_string())
                .unwrap_or_default(),
            leg_nrs: input.leg_nrs.to_string(),
            back_nrs: input.back_nrs.map(|score| score.to_string()).unwrap_or_default(),
            pgic: input.pgic.map(|score| score.to_string()).unwrap_or_default(),
            analgesic_change: analgesic.map(|(form, _, _)| (*form).to_owned()).unwrap_or_default(),
            repeat_injection: yes_no(input.repeat_injection),
            surgery: yes_no(input.surgery),
            adverse_events: ADVERSE_EVENTS
                .iter()
                .filter(|(_, value, _)| input.adverse_events.contains(&(*value as i32)))
                .map(|(form, _, _)| (*form).to_owned())
                .collect(),
            adverse_event_note: input.adverse_event_note.clone(),
            method: method.map(|(form, _, _)| (*form).to_owned()).unwrap_or_default(),
            out_of_window: input.out_of_window,
            reason: String::new(),
        }
    }

    /// The form's fields as (name, value) pairs, to carry through the confirmation page.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("follow_up_date", self.follow_up_date.clone()),
            ("leg_nrs", self.leg_nrs.clone()),
            ("back_nrs", self.back_nrs.clone()),
            ("pgic", self.pgic.clone()),
            ("analgesic_change", self.analgesic_change.clone()),
            ("repeat_injection", self.repeat_injection.clone()),
            ("surgery", self.surgery.clone()),
            ("adverse_event_note", self.adverse_event_note.clone()),
            ("method", self.method.clone()),
            ("out_of_window", if self.out_of_window { "yes" } else { "" }.to_owned()),
            ("reason", self.reason.clone()),
        ];
        pairs.extend(self.adverse_events.iter().map(|event| ("adverse_events", event.clone())));
        pairs
    }

    /// Checks the form; the registry's input when everything is acceptable, otherwise a message
    /// for each field that is not.
    pub fn check(&self, context: &Context) -> Result<registry::FollowUpInput, FieldErrors> {
        let mut errors = FieldErrors::new();
        let date = self.check_date(context, &mut errors);
        let leg_nrs = if self.leg_nrs.is_empty() {
            errors.insert("leg_nrs".into(), "Choose the leg pain score (0 to 10).".into());
            None
        } else {
            let score = parse_score(&self.leg_nrs, 0..=10);
            if score.is_none() {
                errors.insert("leg_nrs".into(), "The leg pain score is a whole number from 0 to 10.".into());
            }
            score
        };
        let back_nrs = match self.back_nrs.as_str() {
            "" => None,
            text => parse_score(text, 0..=10).or_else(|| {
                errors
                    .insert("back_nrs".into(), "The back pain score is a whole number from 0 to 10.".into());
                None
            }),
        };
        let pgic = match self.pgic.as_str() {
            "" => None,
            text => parse_score(text, 1..=7).or_else(|| {
                errors.insert("pgic".into(), "Choose one of the seven impressions of change.".into());
                None
            }),
        };
        let analgesic_change = match self.analgesic_change.as_str() {
            "" => registry::AnalgesicChange::Unspecified,
            text => ANALGESICS.iter().find(|(form, _, _)| *form == text).map_or_else(
                || {
                    errors.insert("analgesic_change".into(), "Choose one of the listed changes.".into());
                    registry::AnalgesicChange::Unspecified
                },
                |(_, value, _)| *value,
            ),
        };
        let repeat_injection = parse_yes_no("repeat_injection", &self.repeat_injection, &mut errors);
        let surgery = parse_yes_no("surgery", &self.surgery, &mut errors);
        let mut adverse_events = Vec::new();
        for event in &self.adverse_events {
            match ADVERSE_EVENTS.iter().find(|(form, _, _)| form == event) {
                Some((_, value, _)) => adverse_events.push(*value as i32),
                None => {
                    errors.insert("adverse_events".into(), "Tick only the listed adverse events.".into());
                }
            }
        }
        let other = adverse_events.contains(&(registry::AdverseEvent::Other as i32));
        if other && self.adverse_event_note.is_empty() {
            errors.insert("adverse_event_note".into(), "Describe the other adverse event.".into());
        }
        if self.adverse_event_note.chars().count() > MAX_TEXT {
            errors.insert("adverse_event_note".into(), format!("Keep the note to {MAX_TEXT} characters."));
        }
        let method = METHODS.iter().find(|(form, _, _)| *form == self.method).map(|(_, value, _)| *value);
        if method.is_none() {
            errors.insert("method".into(), "Choose how the score was obtained.".into());
        }
        if context.amending {
            if self.reason.is_empty() {
                errors.insert("reason".into(), "Say why the follow-up is corrected.".into());
            } else if self.reason.chars().count() > MAX_TEXT {
                errors.insert("reason".into(), format!("Keep the reason to {MAX_TEXT} characters."));
            }
        }
        match (date, leg_nrs, method) {
            (Some(date), Some(leg_nrs), Some(method)) if errors.is_empty() => Ok(registry::FollowUpInput {
                follow_up_date: Some(to_proto(date)),
                leg_nrs,
                back_nrs,
                pgic,
                analgesic_change: analgesic_change as i32,
                repeat_injection,
                surgery,
                adverse_events,
                adverse_event_note: self.adverse_event_note.clone(),
                method: method as i32,
                // Empty: the registry records the token's subject, the signed-in nurse.
                entered_by: String::new(),
                out_of_window: self.out_of_window,
            }),
            _ => Err(errors),
        }
    }

    fn check_date(&self, context: &Context, errors: &mut FieldErrors) -> Option<NaiveDate> {
        let field = "follow_up_date".to_owned();
        if self.follow_up_date.is_empty() {
            errors.insert(field, "Enter the date the score was obtained.".into());
            return None;
        }
        let Ok(date) = NaiveDate::parse_from_str(&self.follow_up_date, "%Y-%m-%d") else {
            errors.insert(field, "Enter the date as year-month-day, e.g. 2026-03-05.".into());
            return None;
        };
        if date > context.today {
            errors.insert(field, "The date cannot be in the future.".into());
            return None;
        }
        if let Some(injection) = context.injection_date {
            if date < injection {
                errors.insert(field, format!("The date is before the injection ({injection})."));
                return None;
            }
            if let Some((start, end)) = context.window
                && (date < start || date > end)
                && !self.out_of_window
            {
                let day = (date - injection).num_days();
                errors.insert(
                    field,
                    format!(
                        "Day {day} after the injection is outside the follow-up window ({start} to {end}). \
                         Tick \"Outside the window\" to record it anyway (it will not count towards the outcome), \
                         or correct the date."
                    ),
                );
                return None;
            }
        }
        Some(date)
    }

    /// Human-readable (label, value) rows, for the confirmation page.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let not_asked = || "Not asked".to_owned();
        let label_of = |table: &[(&str, &str)], value: &str| {
            table
                .iter()
                .find(|(form, _)| *form == value)
                .map_or_else(not_asked, |(_, label)| (*label).to_owned())
        };
        let methods: Vec<(&str, &str)> = METHODS.iter().map(|(form, _, label)| (*form, *label)).collect();
        let analgesics: Vec<(&str, &str)> =
            ANALGESICS.iter().map(|(form, _, label)| (*form, *label)).collect();
        let yes_no = [("yes", "Yes"), ("no", "No")];
        let pgic = parse_score(&self.pgic, 1..=7)
            .and_then(|score| PGIC.get(usize::try_from(score - 1).ok()?))
            .map_or_else(not_asked, |label| format!("{} ({label})", self.pgic));
        let events: Vec<&str> = ADVERSE_EVENTS
            .iter()
            .filter(|(form, _, _)| self.adverse_events.iter().any(|event| event == form))
            .map(|(_, _, label)| *label)
            .collect();
        let mut rows = vec![
            ("Date obtained", self.follow_up_date.clone()),
            ("Leg pain (0 to 10)", self.leg_nrs.clone()),
            (
                "Back pain (0 to 10)",
                if self.back_nrs.is_empty() { not_asked() } else { self.back_nrs.clone() },
            ),
            ("Impression of change", pgic),
            ("Analgesic change", label_of(&analgesics, &self.analgesic_change)),
            ("Repeat injection since", label_of(&yes_no, &self.repeat_injection)),
            ("Surgery since", label_of(&yes_no, &self.surgery)),
            ("Adverse events", if events.is_empty() { "None".to_owned() } else { events.join("; ") }),
            ("How obtained", label_of(&methods, &self.method)),
        ];
        if !self.adverse_event_note.is_empty() {
            rows.push(("Adverse event note", self.adverse_event_note.clone()));
        }
        if self.out_of_window {
            rows.push(("Outside the window", "Yes: recorded, not counted towards the outcome".to_owned()));
        }
        if !self.reason.is_empty() {
            rows.push(("Reason for the amendment", self.reason.clone()));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn context() -> Context {
        Context {
            today: day("2026-03-10"),
            injection_date: Some(day("2026-01-05")),
            window: Some((day("2026-02-20"), day("2026-03-20"))),
            amending: false,
        }
    }

    fn filled() -> FollowUpForm {
        FollowUpForm {
            follow_up_date: "2026-03-06".into(),
            leg_nrs: "3".into(),
            method: "phone".into(),
            ..FollowUpForm::default()
        }
    }

    #[test]
    fn a_complete_form_becomes_the_registry_input() {
        let mut form = filled();
        form.back_nrs = "5".into();
        form.pgic = "2".into();
        form.adverse_events = vec!["headache".into()];
        form.surgery = "no".into();
        let input = form.check(&context()).expect("valid");
        assert_eq!(input.leg_nrs, 3);
        assert_eq!(input.back_nrs, Some(5));
        assert_eq!(input.pgic, Some(2));
        assert_eq!(input.surgery, Some(false));
        assert_eq!(input.repeat_injection, None);
        assert_eq!(input.adverse_events, vec![registry::AdverseEvent::Headache as i32]);
        assert_eq!(input.method, registry::FollowUpMethod::Phone as i32);
        assert_eq!(FollowUpForm::from_input(&input), form, "an amendment starts from what was stored");
    }

    #[test]
    fn missing_choices_are_named_next_to_their_fields() {
        let form = FollowUpForm { follow_up_date: "2026-03-06".into(), ..FollowUpForm::default() };
        let errors = form.check(&context()).expect_err("incomplete");
        assert!(errors["leg_nrs"].contains("Choose the leg pain score"));
        assert!(errors["method"].contains("how the score was obtained"));
    }

    #[test]
    fn scores_outside_their_scale_are_refused() {
        let mut form = filled();
        form.leg_nrs = "11".into();
        form.back_nrs = "-1".into();
        form.pgic = "8".into();
        let errors = form.check(&context()).expect_err("out of range");
        assert!(
            errors.contains_key("leg_nrs") && errors.contains_key("back_nrs") && errors.contains_key("pgic")
        );
    }

    #[test]
    fn future_dates_and_dates_before_the_injection_are_refused() {
        let mut form = filled();
        form.follow_up_date = "2026-03-11".into();
        assert!(form.check(&context()).expect_err("future")["follow_up_date"].contains("future"));
        form.follow_up_date = "2026-01-04".into();
        assert!(
            form.check(&context()).expect_err("before")["follow_up_date"].contains("before the injection")
        );
    }

    #[test]
    fn an_out_of_window_date_needs_the_explicit_flag() {
        let mut form = filled();
        form.follow_up_date = "2026-02-10".into();
        let errors = form.check(&context()).expect_err("outside");
        assert!(errors["follow_up_date"].contains("Day 36"), "{errors:?}");
        form.out_of_window = true;
        assert!(form.check(&context()).expect("flagged").out_of_window);
    }

    #[test]
    fn an_amendment_needs_a_reason_and_other_needs_a_note() {
        let mut form = filled();
        form.adverse_events = vec!["other".into()];
        let amending = Context { amending: true, ..context() };
        let errors = form.check(&amending).expect_err("reason and note");
        assert!(errors.contains_key("reason") && errors.contains_key("adverse_event_note"));
    }

    #[test]
    fn submitted_fields_keep_repeated_checkboxes() {
        let fields =
            Fields::parse(b"adverse_events=headache&adverse_events=infection&leg_nrs=4&reason=typo+fixed");
        let form = FollowUpForm::from_fields(&fields);
        assert_eq!(form.adverse_events, vec!["headache".to_owned(), "infection".to_owned()]);
        assert_eq!(form.leg_nrs, "4");
        assert_eq!(form.reason, "typo fixed");
    }
}
