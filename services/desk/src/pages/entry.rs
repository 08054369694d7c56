//! The entry form (a new follow-up, or an amendment with its reason), its confirmation page and
//! the save. A rejected form comes back with each message next to its field and nothing stored.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use tfesi_proto::registry::v1 as registry;

use super::episode::{EpisodeData, identity_block, load_episode, schedule_block};
use super::{Nurse, see_other, today};
use crate::AppState;
use crate::error::{Error, Result};
use crate::followup::{
    ADVERSE_EVENTS, ANALGESICS, Context, FORM_FIELDS, FieldErrors, FollowUpForm, MAX_TEXT, METHODS, PGIC,
    to_naive,
};
use crate::html::{Choices, esc, field_error, form_problems, hidden, page};
use crate::upstream::explain;

/// Which of the two entry flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// RecordFollowUp.
    New,
    /// AmendFollowUp.
    Amend,
}

impl Mode {
    fn path(self) -> &'static str {
        match self {
            Mode::New => "follow-up",
            Mode::Amend => "amend",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Mode::New => "Record the follow-up",
            Mode::Amend => "Amend the follow-up",
        }
    }
}

fn with_not_asked(options: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    std::iter::once((String::new(), "Not asked".to_owned())).chain(options).collect()
}

fn scores(range: std::ops::RangeInclusive<i32>) -> Vec<(String, String)> {
    range.map(|score| (score.to_string(), score.to_string())).collect()
}

fn yes_no() -> Vec<(String, String)> {
    with_not_asked([("no".to_owned(), "No".to_owned()), ("yes".to_owned(), "Yes".to_owned())])
}

/// The checks' view of the episode: injection date and window when known.
fn context(data: &EpisodeData, mode: Mode) -> Context {
    let window = data.known.as_ref().and_then(|known| known.window);
    let injection_date = window.as_ref().and_then(|w| to_naive(w.injection_date.as_ref())).or_else(|| {
        // A completed episode may not be on the worklist: its injection date is the stored
        // follow-up's date minus its day count.
        let current = data.current()?;
        let date = to_naive(current.input.as_ref()?.follow_up_date.as_ref())?;
        date.checked_sub_days(chrono::Days::new(u64::try_from(current.days_since_injection).ok()?))
    });
    let bounds = window
        .as_ref()
        .and_then(|w| Some((to_naive(w.window_start.as_ref())?, to_naive(w.window_end.as_ref())?)));
    Context { today: today(), injection_date, window: bounds, amending: mode == Mode::Amend }
}

/// The entry form page.
async fn form_page(
    state: &AppState,
    nurse: &Nurse,
    data: &EpisodeData,
    mode: Mode,
    form: &FollowUpForm,
    errors: &FieldErrors,
) -> Result<String> {
    let id = esc(&data.episode_id);
    let mut body = format!(
        "<h1>{}</h1>{}{}{}",
        mode.title(),
        identity_block(state, nurse, data).await?,
        schedule_block(data),
        form_problems(errors)
    );
    let _ = write!(
        body,
        r#"<form method="post" action="/episodes/{id}/{path}" novalidate><input type="hidden" name="csrf" value="{csrf}">"#,
        path = mode.path(),
        csrf = esc(&nurse.session.csrf)
    );
    let date_invalid = errors.contains_key("follow_up_date");
    let _ = write!(
        body,
        r#"<fieldset id="follow_up_date-group"{class}><legend>Date the score was obtained</legend>{error}
<input type="date" id="follow_up_date" name="follow_up_date" value="{value}" max="{today}">
<div class="choices"><label for="out_of_window"><input type="checkbox" id="out_of_window" name="out_of_window" value="yes"{checked}>Outside the window: record it anyway</label></div></fieldset>"#,
        class = if date_invalid { r#" class="invalid""# } else { "" },
        error = field_error(errors, "follow_up_date"),
        value = esc(&form.follow_up_date),
        today = today(),
        checked = if form.out_of_window { " checked" } else { "" },
    );
    let groups = [
        Choices {
            name: "leg_nrs",
            legend: "Leg pain now",
            hint: "0 = no pain, 10 = worst pain imaginable. Required.",
            options: scores(0..=10),
            chosen: vec![form.leg_nrs.clone()],
            multiple: false,
            stacked: false,
        },
        Choices {
            name: "back_nrs",
            legend: "Back pain now",
            hint: "0 = no pain, 10 = worst pain imaginable.",
            options: with_not_asked(scores(0..=10)),
            chosen: vec![form.back_nrs.clone()],
            multiple: false,
            stacked: false,
        },
        Choices {
            name: "pgic",
            legend: "Patient's impression of change since the injection",
            hint: "",
            options: with_not_asked(
                PGIC.iter()
                    .enumerate()
                    .map(|(index, label)| ((index + 1).to_string(), format!("{} {label}", index + 1))),
            ),
            chosen: vec![form.pgic.clone()],
            multiple: false,
            stacked: true,
        },
        Choices {
            name: "analgesic_change",
            legend: "Pain medication since the injection",
            hint: "",
            options: with_not_asked(
                ANALGESICS.iter().map(|(value, _, label)| ((*value).to_owned(), (*label).to_owned())),
            ),
            chosen: vec![form.analgesic_change.clone()],
            multiple: false,
            stacked: true,
        },
        Choices {
            name: "repeat_injection",
            legend: "Another spinal injection since this one",
            hint: "",
            options: yes_no(),
            chosen: vec![form.repeat_injection.clone()],
            multiple: false,
            stacked: false,
        },
        Choices {
            name: "surgery",
            legend: "Back surgery since the injection",
            hint: "",
            options: yes_no(),
            chosen: vec![form.surgery.clone()],
            multiple: false,
            stacked: false,
        },
        Choices {
            name: "adverse_events",
            legend: "Adverse events after the injection",
            hint: "Tick every one that applies; none ticked means none.",
            options: ADVERSE_EVENTS
                .iter()
                .map(|(value, _, label)| ((*value).to_owned(), (*label).to_owned()))
                .collect(),
            chosen: form.adverse_events.clone(),
            multiple: true,
            stacked: true,
        },
    ];
    for group in &groups {
        body.push_str(&group.render(errors));
    }
    let _ = write!(
        body,
        r#"<p><label for="adverse_event_note">Note on adverse events (no names or numbers that identify the patient)</label>
{error}<textarea id="adverse_event_note" name="adverse_event_note" maxlength="{MAX_TEXT}">{note}</textarea></p>"#,
        error = field_error(errors, "adverse_event_note"),
        note = esc(&form.adverse_event_note),
    );
    let method = Choices {
        name: "method",
        legend: "How the score was obtained",
        hint: "Required.",
        options: METHODS.iter().map(|(value, _, label)| ((*value).to_owned(), (*label).to_owned())).collect(),
        chosen: vec![form.method.clone()],
        multiple: false,
        stacked: false,
    };
    body.push_str(&method.render(errors));
    if mode == Mode::Amend {
        let _ = write!(
            body,
            r#"<fieldset id="reason-group"{class}><legend>Reason for the amendment</legend>{error}
<p class="hint">Required. What was wrong and where the correct value comes from; no identifiers.</p>
<textarea id="reason" name="reason" maxlength="{MAX_TEXT}">{reason}</textarea></fieldset>"#,
            class = if errors.contains_key("reason") { r#" class="invalid""# } else { "" },
            error = field_error(errors, "reason"),
            reason = esc(&form.reason),
        );
    }
    let _ = write!(
        body,
        r#"<p><button type="submit" id="review">Review before saving</button>
<a class="button secondary" href="/episodes/{id}">Cancel</a></p></form>"#
    );
    Ok(page(mode.title(), nurse.header(), &body))
}

/// The confirmation page: what will be saved, a save button and a way back to change it.
fn review_page(nurse: &Nurse, data: &EpisodeData, mode: Mode, form: &FollowUpForm, key: &str) -> String {
    let id = esc(&data.episode_id);
    let mut body = String::from(
        r#"<h1>Check before saving</h1><p>This is what will be saved in the registry. Read it back to the patient if you can.</p><dl class="summary" id="review-summary">"#,
    );
    for (label, value) in form.summary() {
        let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", esc(label), esc(&value));
    }
    let mut carried = form.pairs();
    carried.push(("csrf", nurse.session.csrf.clone()));
    if let Some(current) = data.current()
        && mode == Mode::Amend
    {
        carried.push(("expected_version", current.version.to_string()));
    }
    let mut with_key = carried.clone();
    with_key.push(("idempotency_key", key.to_owned()));
    let _ = write!(
        body,
        r#"</dl><form method="post" action="/episodes/{id}/{path}/save">{save_fields}
<p><button type="submit" id="save">Save to the registry</button></p></form>
<form method="post" action="/episodes/{id}/{path}">{edit_fields}<input type="hidden" name="edit" value="yes">
<p><button type="submit" class="secondary" id="change">Change the answers</button></p></form>"#,
        path = mode.path(),
        save_fields = hidden(&with_key),
        edit_fields = hidden(&carried),
    );
    page("Check before saving", nurse.header(), &body)
}

async fn show_form(state: &AppState, nurse: Nurse, raw_id: &str, mode: Mode) -> Result<Html<String>> {
    let data = load_episode(state, &nurse, raw_id).await?;
    let form = match (mode, data.current()) {
        (Mode::Amend, Some(current)) => {
            current.input.as_ref().map(FollowUpForm::from_input).unwrap_or_default()
        }
        (Mode::Amend, None) => return Err(Error::NotFound("follow-up to amend on this episode".into())),
        (Mode::New, _) => FollowUpForm { follow_up_date: today().to_string(), ..FollowUpForm::default() },
    };
    Ok(Html(form_page(state, &nurse, &data, mode, &form, &FieldErrors::new()).await?))
}

async fn review(
    state: &AppState,
    nurse: Nurse,
    raw_id: &str,
    mode: Mode,
    body: &[u8],
) -> Result<Html<String>> {
    let fields = nurse.form(body)?;
    let data = load_episode(state, &nurse, raw_id).await?;
    let form = FollowUpForm::from_fields(&fields);
    if fields.get("edit") == "yes" {
        return Ok(Html(form_page(state, &nurse, &data, mode, &form, &FieldErrors::new()).await?));
    }
    match form.check(&context(&data, mode)) {
        Ok(_) => {
            let key = format!("desk-{}", uuid::Uuid::new_v4());
            Ok(Html(review_page(&nurse, &data, mode, &form, &key)))
        }
        Err(errors) => Ok(Html(form_page(state, &nurse, &data, mode, &form, &errors).await?)),
    }
}

async fn save(state: &AppState, nurse: Nurse, raw_id: &str, mode: Mode, body: &[u8]) -> Result<Response> {
    let fields = nurse.form(body)?;
    let data = load_episode(state, &nurse, raw_id).await?;
    let form = FollowUpForm::from_fields(&fields);
    let mut input = match form.check(&context(&data, mode)) {
        Ok(input) => input,
        Err(errors) => {
            return Ok(Html(form_page(state, &nurse, &data, mode, &form, &errors).await?).into_response());
        }
    };
    // The registry records this as who obtained the score (`recorded_by`).
    input.entered_by = nurse.session.username.clone();
    let key = fields.get("idempotency_key");
    if key.is_empty() || key.len() > 128 {
        return Err(Error::FormExpired);
    }
    let mut client = state.upstream.registry.clone();
    let token = &nurse.session.token;
    let episode_id = data.episode_id.clone();
    let result = match mode {
        Mode::New => {
            let request = registry::RecordFollowUpRequest {
                idempotency_key: key.to_owned(),
                episode_id: episode_id.clone(),
                follow_up: Some(input),
            };
            client.record_follow_up(state.upstream.request(token, request)).await.map(|_| ())
        }
        Mode::Amend => {
            let request = registry::AmendFollowUpRequest {
                idempotency_key: key.to_owned(),
                episode_id: episode_id.clone(),
                expected_version: fields.get("expected_version").parse().unwrap_or(0),
                reason: form.reason.clone(),
                follow_up: Some(input),
            };
            client.amend_follow_up(state.upstream.request(token, request)).await.map(|_| ())
        }
    };
    if let Err(status) = result {
        let problem = explain("saving the follow-up", &status);
        if problem.sign_in_again {
            return Err(Error::Upstream(problem));
        }
        tracing::info!(episode_id = %episode_id, code = ?status.code(), "follow-up refused by the registry");
        let mut errors = FieldErrors::new();
        match problem.field.filter(|field| FORM_FIELDS.contains(&field.as_str())) {
            Some(field) => errors.insert(field, problem.message),
            // A field the form does not show (a desk defect): above the form, named.
            None => errors.insert(String::new(), problem.message),
        };
        return Ok(Html(form_page(state, &nurse, &data, mode, &form, &errors).await?).into_response());
    }
    let (action, done) = match mode {
        Mode::New => ("follow-up recorded", "recorded"),
        Mode::Amend => ("follow-up amended", "amended"),
    };
    state.sessions.update(&nurse.session_id, |session| session.note_written(&episode_id, action));
    tracing::info!(episode_id = %episode_id, action, "follow-up saved");
    Ok(see_other(&format!("/episodes/{episode_id}?done={done}")))
}

/// `GET /episodes/{id}/follow-up`.
pub async fn new_form(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    show_form(&state, nurse, &id, Mode::New).await
}

/// `POST /episodes/{id}/follow-up`: check, then the confirmation page (or the form with errors).
pub async fn review_new(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Html<String>> {
    review(&state, nurse, &id, Mode::New, &body).await
}

/// `POST /episodes/{id}/follow-up/save`.
pub async fn save_new(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    save(&state, nurse, &id, Mode::New, &body).await
}

/// `GET /episodes/{id}/amend`.
pub async fn amend_form(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(id): Path<String>,
) -> Result<Html<String>> {
    show_form(&state, nurse, &id, Mode::Amend).await
}

/// `POST /episodes/{id}/amend`.
pub async fn review_amend(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Html<String>> {
    review(&state, nurse, &id, Mode::Amend, &body).await
}

/// `POST /episodes/{id}/amend/save`.
pub async fn save_amend(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    save(&state, nurse, &id, Mode::Amend, &body).await
}
