//! The worklist (follow-ups in window, due today and overdue, by due date, each with the
//! patient's identity from ingest's audited ResolvePatient) and the session's recent entries.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Html;
use tfesi_proto::common::v1 as common;
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::registry::v1 as registry;

use super::{Nurse, injected, show_date, today};
use crate::AppState;
use crate::error::{Error, Result};
use crate::followup::{to_naive, to_proto};
use crate::html::{esc, page};
use crate::session::KnownEpisode;
use crate::upstream::{Problem, explain};

/// Worklist entries fetched per call.
const PAGE_SIZE: i32 = 200;
/// Most pages read for one worklist (2,000 entries).
const MAX_PAGES: usize = 10;

/// The worklist as of `as_of` in `states` (empty: in window, due today, overdue), sorted by due
/// date then episode id. Remembers each entry in the session, for the episode pages.
pub(super) async fn load_worklist(
    state: &AppState,
    nurse: &Nurse,
    states: Vec<i32>,
) -> Result<(Vec<registry::DueFollowUp>, bool)> {
    let mut client = state.upstream.registry.clone();
    let mut entries = Vec::new();
    let mut page_token = String::new();
    let mut truncated = false;
    for page_number in 0..MAX_PAGES {
        let request = registry::ListDueFollowUpsRequest {
            as_of: Some(to_proto(today())),
            states: states.clone(),
            page: Some(common::PageRequest { page_size: PAGE_SIZE, page_token: page_token.clone() }),
        };
        let response = client
            .list_due_follow_ups(state.upstream.request(&nurse.session.token, request))
            .await
            .map_err(|status| Error::Upstream(explain("loading the worklist", &status)))?
            .into_inner();
        entries.extend(response.entries);
        page_token = response.page.map(|page| page.next_page_token).unwrap_or_default();
        if page_token.is_empty() {
            break;
        }
        truncated = page_number + 1 == MAX_PAGES;
    }
    entries.sort_by(|a, b| {
        let due =
            |entry: &registry::DueFollowUp| to_naive(entry.window.as_ref().and_then(|w| w.due_date.as_ref()));
        due(a).cmp(&due(b)).then_with(|| a.episode_id.cmp(&b.episode_id))
    });
    state.sessions.update(&nurse.session_id, |session| {
        for entry in &entries {
            let last_action =
                session.episodes.get(&entry.episode_id).and_then(|known| known.last_action.clone());
            session.episodes.insert(
                entry.episode_id.clone(),
                KnownEpisode {
                    patient_id: entry.patient_id.clone(),
                    window: entry.window,
                    levels: entry.levels.clone(),
                    side: entry.side,
                    last_action,
                },
            );
        }
    });
    Ok((entries, truncated))
}

/// The identity of `patient_id` through ingest's ResolvePatient (audited with `purpose`); a
/// patient already resolved in this session is not looked up again.
pub(super) async fn resolve_identity(
    state: &AppState,
    nurse: &Nurse,
    patient_id: &str,
    purpose: &str,
) -> std::result::Result<ingest::PatientIdentity, Problem> {
    if let Some(identity) =
        state.sessions.get(&nurse.session_id).and_then(|s| s.identities.get(patient_id).cloned())
    {
        return Ok(identity);
    }
    let request =
        ingest::ResolvePatientRequest { patient_id: patient_id.to_owned(), purpose: purpose.to_owned() };
    let identity = state
        .upstream
        .ingest
        .clone()
        .resolve_patient(state.upstream.request(&nurse.session.token, request))
        .await
        .map_err(|status| explain("looking up the patient's identity", &status))?
        .into_inner()
        .identity
        .unwrap_or_default();
    state.sessions.update(&nurse.session_id, |session| {
        session.identities.insert(patient_id.to_owned(), identity.clone());
    });
    Ok(identity)
}

/// "Family, Given" and the MRN, for lists.
pub(super) fn identity_line(identity: &ingest::PatientIdentity) -> String {
    let name = match (identity.family_name.is_empty(), identity.given_name.is_empty()) {
        (false, false) => format!("{}, {}", identity.family_name, identity.given_name),
        (false, true) => identity.family_name.clone(),
        (true, false) => identity.given_name.clone(),
        (true, true) => "(no name recorded)".to_owned(),
    };
    format!("{name} · MRN {}", identity.mrn)
}

fn state_label(state: i32) -> (&'static str, &'static str) {
    match registry::DueState::try_from(state) {
        Ok(registry::DueState::Overdue) => ("overdue", "Overdue"),
        Ok(registry::DueState::DueToday) => ("due_today", "Due today"),
        Ok(registry::DueState::InWindow) => ("in_window", "In window"),
        Ok(registry::DueState::Upcoming) => ("upcoming", "Upcoming"),
        _ => ("unknown", "-"),
    }
}

/// `GET /worklist`.
pub async fn worklist(State(state): State<AppState>, nurse: Nurse) -> Result<Html<String>> {
    let (entries, truncated) = load_worklist(&state, &nurse, Vec::new()).await?;
    let today = today();
    let mut rows = String::new();
    for entry in &entries {
        let who = match resolve_identity(&state, &nurse, &entry.patient_id, "follow-up worklist").await {
            Ok(identity) => esc(&identity_line(&identity)),
            Err(problem) if problem.sign_in_again => return Err(Error::Upstream(problem)),
            Err(problem) => {
                format!(r#"<span class="error">Identity unavailable: {}</span>"#, esc(&problem.message))
            }
        };
        let window = entry.window.unwrap_or_default();
        let (class, label) = state_label(entry.state);
        let _ = write!(
            rows,
            r#"<tr class="entry" data-episode="{id}"><td>{due}</td><td class="state-{class}">{label}</td><td>{who}</td>
<td>{days}</td><td>{start} to {end}</td><td>{injected}</td>
<td><a class="button" id="open-{id}" href="/episodes/{id}">Open</a></td></tr>"#,
            id = esc(&entry.episode_id),
            due = show_date(window.due_date.as_ref()),
            days = entry.days_since_injection,
            start = show_date(window.window_start.as_ref()),
            end = show_date(window.window_end.as_ref()),
            injected = match injected(&entry.levels, entry.side) {
                text if text.is_empty() => "-".to_owned(),
                text => esc(&text),
            },
        );
    }
    let table = if entries.is_empty() {
        r#"<p class="notice" id="empty">No follow-up is in its window, due or overdue today.</p>"#.to_owned()
    } else {
        format!(
            r#"<table id="worklist"><thead><tr><th>Due</th><th>State</th><th>Patient</th><th>Days since injection</th>
<th>Window</th><th>Injected</th><th></th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let truncated =
        if truncated { r#"<p class="problems">Only the first 2,000 follow-ups are shown.</p>"# } else { "" };
    let body = format!(
        r#"<h1>Follow-ups for {today}</h1><p class="hint">{count} follow-up{s} in the window, due today or overdue, earliest due first.
Opening the worklist looks up each patient's identity; every look-up is recorded.</p>{truncated}{table}"#,
        count = entries.len(),
        s = if entries.len() == 1 { "" } else { "s" },
    );
    Ok(Html(page("Worklist", nurse.header(), &body)))
}

/// `GET /recent`: episodes written in this session (a recorded follow-up leaves the worklist;
/// this is where the nurse finds it again to amend it).
pub async fn recent(State(state): State<AppState>, nurse: Nurse) -> Result<Html<String>> {
    let mut rows = String::new();
    for episode_id in &nurse.session.recent {
        let known = nurse.session.episodes.get(episode_id);
        let who = match known {
            Some(known) => {
                match resolve_identity(&state, &nurse, &known.patient_id, "follow-up call").await {
                    Ok(identity) => esc(&identity_line(&identity)),
                    Err(problem) => format!(r#"<span class="error">{}</span>"#, esc(&problem.message)),
                }
            }
            None => "-".to_owned(),
        };
        let action = known.and_then(|known| known.last_action.clone()).unwrap_or_default();
        let _ = write!(
            rows,
            r#"<tr><td>{who}</td><td>{action}</td><td><a class="button" href="/episodes/{id}">Open</a></td></tr>"#,
            action = esc(&action),
            id = esc(episode_id),
        );
    }
    let body = if rows.is_empty() {
        r#"<h1>Recorded this session</h1><p class="notice">Nothing recorded yet in this session.</p>"#
            .to_owned()
    } else {
        format!(
            r#"<h1>Recorded this session</h1><table id="recent"><thead><tr><th>Patient</th><th>Last action</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>"#
        )
    };
    Ok(Html(page("Recorded this session", nurse.header(), &body)))
}
