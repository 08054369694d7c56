//! One episode: who to call, the schedule, the recorded follow-up and its versions, and the
//! actions (record, amend, mark lost to follow-up). No prediction is read or shown.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use serde::Deserialize;
use tfesi_proto::registry::v1 as registry;

use super::worklist::{identity_line, load_worklist, resolve_identity};
use super::{Nurse, episode_id, injected, see_other, show_date, today};
use crate::AppState;
use crate::error::{Error, Result};
use crate::followup::{FollowUpForm, MAX_TEXT, to_naive};
use crate::html::{esc, page};
use crate::session::KnownEpisode;
use crate::upstream::explain;

/// What the desk can know about an episode with the nurse's role.
pub(super) struct EpisodeData {
    /// Episode id.
    pub episode_id: String,
    /// From the worklist (pending episodes) or this session's memory.
    pub known: Option<KnownEpisode>,
    /// Every follow-up version, oldest first.
    pub history: Vec<registry::FollowUp>,
}

impl EpisodeData {
    /// The version in force.
    pub fn current(&self) -> Option<&registry::FollowUp> {
        self.history.iter().find(|version| version.current)
    }
}

/// Loads an episode: the follow-up history from the registry, the schedule from the session or,
/// when the session has not seen it, from the worklist in every state.
pub(super) async fn load_episode(state: &AppState, nurse: &Nurse, raw_id: &str) -> Result<EpisodeData> {
    let episode_id = episode_id(raw_id)?;
    let request = registry::GetFollowUpHistoryRequest { episode_id: episode_id.clone() };
    let history = state
        .upstream
        .registry
        .clone()
        .get_follow_up_history(state.upstream.request(&nurse.session.token, request))
        .await
        .map_err(|status| Error::Upstream(explain("loading the episode's follow-ups", &status)))?
        .into_inner()
        .versions;
    let mut known = nurse.session.episodes.get(&episode_id).cloned();
    if known.is_none() && history.is_empty() {
        let all_states = [
            registry::DueState::Upcoming,
            registry::DueState::InWindow,
            registry::DueState::DueToday,
            registry::DueState::Overdue,
        ];
        load_worklist(state, nurse, all_states.iter().map(|s| *s as i32).collect()).await?;
        known = state
            .sessions
            .get(&nurse.session_id)
            .and_then(|session| session.episodes.get(&episode_id).cloned());
    }
    Ok(EpisodeData { episode_id, known, history })
}

/// The identity block ("who to call"), resolved with the purpose "follow-up call".
pub(super) async fn identity_block(state: &AppState, nurse: &Nurse, data: &EpisodeData) -> Result<String> {
    let Some(known) = &data.known else {
        return Ok(r#"<div class="identity">The patient of this episode is not on today's worklist; the desk cannot show who it is.</div>"#.to_owned());
    };
    match resolve_identity(state, nurse, &known.patient_id, "follow-up call").await {
        Ok(identity) => {
            let birth = identity
                .birth_date
                .as_ref()
                .map(|d| show_date(Some(d)))
                .unwrap_or_else(|| "not recorded".into());
            let phone = identity.phone.clone().unwrap_or_else(|| "not recorded".into());
            Ok(format!(
                r#"<div class="identity" id="identity"><strong>{}</strong><br>Born {} · Telephone {}</div>"#,
                esc(&identity_line(&identity)),
                esc(&birth),
                esc(&phone)
            ))
        }
        Err(problem) if problem.sign_in_again => Err(Error::Upstream(problem)),
        Err(problem) => Ok(format!(
            r#"<div class="identity error">Identity unavailable: {}</div>"#,
            esc(&problem.message)
        )),
    }
}

/// The schedule as a description list.
pub(super) fn schedule_block(data: &EpisodeData) -> String {
    let Some(known) = &data.known else {
        return String::new();
    };
    let window = known.window.unwrap_or_default();
    let levels = match injected(&known.levels, known.side) {
        text if text.is_empty() => String::new(),
        text => format!("<dt>Injected</dt><dd>{}</dd>", esc(&text)),
    };
    let days = to_naive(window.injection_date.as_ref())
        .map(|injection| (today() - injection).num_days().to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        r#"<dl class="summary" id="schedule">{levels}<dt>Injection date</dt><dd>{}</dd><dt>Days since injection</dt><dd>{days}</dd>
<dt>Follow-up window</dt><dd>{} to {} (due {})</dd></dl>"#,
        show_date(window.injection_date.as_ref()),
        show_date(window.window_start.as_ref()),
        show_date(window.window_end.as_ref()),
        show_date(window.due_date.as_ref()),
    )
}

/// `?done=` after a write.
#[derive(Debug, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /episodes/{id}`.
pub async fn episode(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(raw_id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Html<String>> {
    let data = load_episode(&state, &nurse, &raw_id).await?;
    let notice = match done.done.as_deref() {
        Some("recorded") => {
            r#"<div class="notice" id="notice" role="status">The follow-up is saved in the registry.</div>"#
        }
        Some("amended") => {
            r#"<div class="notice" id="notice" role="status">The amendment is saved in the registry.</div>"#
        }
        Some("lost") => {
            r#"<div class="notice" id="notice" role="status">The episode is marked lost to follow-up.</div>"#
        }
        _ => "",
    };
    let mut body = format!(
        "<h1>Follow-up</h1>{notice}{}{}",
        identity_block(&state, &nurse, &data).await?,
        schedule_block(&data)
    );
    let id = esc(&data.episode_id);
    match data.current() {
        Some(current) => {
            let form = current.input.as_ref().map(FollowUpForm::from_input).unwrap_or_default();
            let _ = write!(
                body,
                r#"<h2>Recorded follow-up (version {})</h2><dl class="summary" id="current">"#,
                current.version
            );
            for (label, value) in form.summary() {
                let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", esc(label), esc(&value));
            }
            let _ = write!(
                body,
                r#"<dt>Day after injection</dt><dd>{}{}</dd></dl><p><a class="button" id="amend" href="/episodes/{id}/amend">Amend this follow-up</a></p>"#,
                current.days_since_injection,
                if current.in_window { "" } else { " (outside the window)" },
            );
        }
        None => {
            let _ = write!(
                body,
                r#"<h2>No follow-up recorded yet</h2><p><a class="button" id="record" href="/episodes/{id}/follow-up">Record the follow-up</a>
<a class="button secondary" id="lost" href="/episodes/{id}/lost">Mark lost to follow-up</a></p>"#
            );
        }
    }
    if !data.history.is_empty() {
        body.push_str(r#"<h2>Versions</h2><table id="history"><thead><tr><th>Version</th><th>Recorded</th><th>By</th><th>Leg pain</th><th>Reason for the amendment</th></tr></thead><tbody>"#);
        for version in &data.history {
            let recorded = version
                .recorded_at
                .as_ref()
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default();
            let leg = version.input.as_ref().map(|input| input.leg_nrs.to_string()).unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                version.version,
                if version.current { " (current)" } else { "" },
                esc(&recorded),
                esc(&version.recorded_by),
                esc(&leg),
                esc(&version.amendment_reason),
            );
        }
        body.push_str("</tbody></table>");
    }
    Ok(Html(page("Follow-up", nurse.header(), &body)))
}

fn lost_html(nurse: &Nurse, id: &str, note: &str, problem: Option<&str>) -> String {
    let problem = problem
        .map(|message| format!(r#"<div class="problems" id="problems" role="alert"><p><strong>Nothing was saved.</strong> {}</p></div>"#, esc(message)))
        .unwrap_or_default();
    format!(
        r#"<h1>Mark lost to follow-up</h1>{problem}<p>Use this when the patient could not be reached within the follow-up window.
The episode leaves the worklist and will have no outcome label.</p>
<form method="post" action="/episodes/{id}/lost"><input type="hidden" name="csrf" value="{csrf}">
<p><label for="note">Note (optional, no names or numbers that identify the patient)</label><br>
<textarea id="note" name="note" maxlength="{MAX_TEXT}">{note}</textarea></p>
<p><button type="submit" id="confirm-lost">Mark lost to follow-up</button>
<a class="button secondary" href="/episodes/{id}">Cancel</a></p></form>"#,
        id = esc(id),
        csrf = esc(&nurse.session.csrf),
        note = esc(note),
    )
}

/// `GET /episodes/{id}/lost`.
pub async fn lost_page(nurse: Nurse, Path(raw_id): Path<String>) -> Result<Html<String>> {
    let id = episode_id(&raw_id)?;
    Ok(Html(page("Mark lost to follow-up", nurse.header(), &lost_html(&nurse, &id, "", None))))
}

/// `POST /episodes/{id}/lost`.
pub async fn mark_lost(
    State(state): State<AppState>,
    nurse: Nurse,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let id = episode_id(&raw_id)?;
    let fields = nurse.form(&body)?;
    let note = fields.get("note").to_owned();
    if note.chars().count() > MAX_TEXT {
        let message = format!("Keep the note to {MAX_TEXT} characters.");
        let html =
            page("Mark lost to follow-up", nurse.header(), &lost_html(&nurse, &id, &note, Some(&message)));
        return Ok(axum::response::IntoResponse::into_response(Html(html)));
    }
    let request = registry::SetOutcomeStatusRequest {
        episode_id: id.clone(),
        status: registry::OutcomeStatus::LostToFollowUp as i32,
        exclusion_reason: registry::ExclusionReason::Unspecified as i32,
        note: note.clone(),
    };
    let result = state
        .upstream
        .registry
        .clone()
        .set_outcome_status(state.upstream.request(&nurse.session.token, request))
        .await;
    if let Err(status) = result {
        let problem = explain("marking the episode lost to follow-up", &status);
        if problem.sign_in_again {
            return Err(Error::Upstream(problem));
        }
        let html = page(
            "Mark lost to follow-up",
            nurse.header(),
            &lost_html(&nurse, &id, &note, Some(&problem.message)),
        );
        return Ok(axum::response::IntoResponse::into_response(Html(html)));
    }
    state.sessions.update(&nurse.session_id, |session| session.note_written(&id, "marked lost to follow-up"));
    Ok(see_other(&format!("/episodes/{id}?done=lost")))
}
