//! Follow-ups: the first recording, amendments as new versions, and the due list.

use std::sync::LazyLock;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::first_version;
use super::rows::FollowUpRow;
use super::snapshots::{LABEL_RULES_JSON, label_rules_from_json};
use super::{EventKind, Store, append_event, idempotency, lock_episode};
use crate::domain::label::{LabelInput, LabelRule};
use crate::domain::records::{FollowUp, FollowUpContent, required_text};
use crate::domain::types::{EpisodeStatus, Level, Side, parse_levels};
use crate::error::{Error, Result};

/// How many times RecordFollowUp reads and tries to write before answering ABORTED (each
/// retry follows a concurrent change of the same episode).
const WRITE_ATTEMPTS: usize = 5;

/// RecordFollowUp's name in `registry.idempotency_keys`.
pub(super) const RECORD_METHOD: &str = "RecordFollowUp";

/// The request hashed for RecordFollowUp's idempotency key.
#[derive(Serialize)]
struct RecordRequest<'a> {
    episode_id: Uuid,
    content: &'a FollowUpContent,
}

/// The request hashed for AmendFollowUp's idempotency key.
#[derive(Serialize)]
struct AmendRequest<'a> {
    episode_id: Uuid,
    expected_version: Option<u32>,
    reason: &'a str,
    content: &'a FollowUpContent,
}

/// Where an episode awaiting its follow-up stands on the list's date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DueState {
    /// The window is open but the due day has not come.
    InWindow,
    /// The due day has come and the window is still open.
    Due,
    /// The window has closed without a score.
    Overdue,
}

/// One episode awaiting its follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueFollowUp {
    pub episode_id: Uuid,
    pub patient_id: Uuid,
    pub injection_date: NaiveDate,
    pub window_opens: NaiveDate,
    pub due_date: NaiveDate,
    pub window_closes: NaiveDate,
    pub state: DueState,
    /// Injected levels, so the nurse can name the injection on the call.
    pub levels: Vec<Level>,
    /// Injected side.
    pub side: Side,
}

/// One page of the due list; `next_page_token` is empty on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePage {
    pub items: Vec<DueFollowUp>,
    pub next_page_token: String,
}

impl Store {
    /// Records an episode's follow-up (version 1), idempotent on `idempotency_key`; completes
    /// a pending or lost-to-follow-up episode.
    pub async fn record_follow_up(
        &self,
        idempotency_key: Option<&str>,
        episode_id: Uuid,
        content: FollowUpContent,
    ) -> Result<FollowUp> {
        Ok(self.record_follow_up_labeled(idempotency_key, episode_id, content).await?.follow_up)
    }

    /// [`Store::record_follow_up`], also returning what the episode's labels are derived from
    /// right after the write and the label rules, so that the caller can answer with labels
    /// without reading again.
    ///
    /// The hot path of the follow-up desk. Usually one round trip to Postgres and one commit:
    /// one statement that checks what the episode must be (pending or lost to follow-up,
    /// injected, without a current follow-up, the date accepted by the window, the key free) and
    /// writes everything (`first_version.rs`: the idempotency key with its answer, the
    /// follow-up, the episode's completion, its history row, both events, an audit record per
    /// event). When it wrote nothing, one read (the episode, its injection date, whether it has
    /// a current follow-up, the idempotency key's stored request and answer, the label rules)
    /// decides: the precise error, the stored answer of a replay, or a write that happens only
    /// if the episode is still as read. When the episode changed in between, or a concurrent
    /// request took the key, nothing is written and the decision is made again from a fresh
    /// read.
    pub async fn record_follow_up_labeled(
        &self,
        idempotency_key: Option<&str>,
        episode_id: Uuid,
        content: FollowUpContent,
    ) -> Result<LabeledFollowUp> {
        let content = content.validate()?;
        let keyed = idempotency::keyed(
            idempotency_key,
            RECORD_METHOD,
            &RecordRequest { episode_id, content: &content },
        )?;
        if let Some(labeled) = self.record_first_version_at_once(episode_id, &content, keyed.as_ref()).await?
        {
            return Ok(labeled);
        }
        for _ in 0..WRITE_ATTEMPTS {
            let context = record_context(&self.pool, episode_id, keyed.as_ref()).await?;
            if let (Some(keyed), Some(stored_hash)) = (&keyed, &context.key_hash) {
                idempotency::same_request(keyed, stored_hash)?;
                let follow_up: FollowUp = idempotency::committed_answer(context.key_response.clone())?;
                let view = self.get_episode(episode_id).await?;
                let rules = label_rules_from_json(context.rules)?;
                return Ok(LabeledFollowUp { follow_up, label_input: LabelInput::of_view(&view), rules });
            }
            let (Some(outcome_status), Some(baseline_leg_nrs)) =
                (&context.outcome_status, context.baseline_leg_nrs)
            else {
                return Err(Error::not_found("episode", episode_id));
            };
            let status = EpisodeStatus::from_columns(outcome_status, context.outcome_reason.as_deref())?;
            if matches!(status, EpisodeStatus::Withdrawn | EpisodeStatus::Excluded(_)) {
                return Err(Error::StatusConflict {
                    episode_id,
                    status: status.status().to_string(),
                    reason: "no follow-up can be recorded",
                });
            }
            if context.current_exists {
                return Err(Error::FollowUpExists { episode_id });
            }
            let injection_date = context.injection_date.ok_or(Error::NoInjection { episode_id })?;
            let placement = self.config.follow_up_window.place(
                injection_date,
                content.follow_up_date,
                content.accept_out_of_window,
            )?;
            let mut follow_up = first_version::unrecorded_first_version(episode_id, &content, placement);
            let Some(recorded_at) =
                first_version::write_first_version(&self.pool, &follow_up, status, keyed.as_ref()).await?
            else {
                continue;
            };
            follow_up.recorded_at = recorded_at;
            let label_input = first_version::completed_label_input(
                &follow_up,
                baseline_leg_nrs,
                context.baseline_back_nrs,
            )?;
            return Ok(LabeledFollowUp {
                follow_up,
                label_input,
                rules: label_rules_from_json(context.rules)?,
            });
        }
        Err(Error::Contended { episode_id })
    }

    /// Replaces the current follow-up with a new version carrying `reason`; history is kept.
    /// With `expected_version`, refuses unless that version is still the current one.
    pub async fn amend_follow_up(
        &self,
        idempotency_key: Option<&str>,
        episode_id: Uuid,
        expected_version: Option<u32>,
        reason: &str,
        content: FollowUpContent,
    ) -> Result<FollowUp> {
        let reason = required_text("reason", reason, 500)?;
        let content = content.validate()?;
        let mut tx = self.pool.begin().await?;
        let request = AmendRequest { episode_id, expected_version, reason: &reason, content: &content };
        let claim = match idempotency::claim(&mut tx, idempotency_key, "AmendFollowUp", &request).await? {
            Ok(claim) => claim,
            Err(stored) => return Ok(stored),
        };
        lock_episode(&mut tx, episode_id).await?;
        let current = sqlx::query!(
            "SELECT follow_up_id, version FROM registry.follow_ups WHERE episode_id = $1 AND is_current",
            episode_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NothingToAmend { episode_id })?;
        let current_version = u32::try_from(current.version).unwrap_or(0);
        if let Some(expected) = expected_version
            && expected != current_version
        {
            return Err(Error::VersionMismatch { expected, current: current_version });
        }
        sqlx::query!(
            "UPDATE registry.follow_ups SET is_current = false WHERE follow_up_id = $1",
            current.follow_up_id
        )
        .execute(&mut *tx)
        .await?;
        let follow_up =
            self.insert_version(&mut tx, episode_id, current.version + 1, Some(&reason), content).await?;
        append_event(&mut tx, episode_id, EventKind::FollowUpAmended, &follow_up.follow_up_id.to_string())
            .await?;
        claim.complete(&mut tx, &follow_up).await?;
        tx.commit().await?;
        Ok(follow_up)
    }

    /// Checks the date against the injection and the window, then inserts a current version.
    async fn insert_version(
        &self,
        conn: &mut PgConnection,
        episode_id: Uuid,
        version: i32,
        reason: Option<&str>,
        content: FollowUpContent,
    ) -> Result<FollowUp> {
        let injection_date = sqlx::query_scalar!(
            "SELECT injection_date FROM registry.injections WHERE episode_id = $1",
            episode_id
        )
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NoInjection { episode_id })?;
        let placement = self.config.follow_up_window.place(
            injection_date,
            content.follow_up_date,
            content.accept_out_of_window,
        )?;
        let adverse_events: Vec<String> =
            content.adverse_events.iter().map(|event| event.as_str().to_owned()).collect();
        let days = i32::try_from(placement.days_since_injection)
            .map_err(|_| Error::invalid("follow_up_date", "too far after the injection"))?;
        let row = sqlx::query_as!(
            FollowUpRow,
            "INSERT INTO registry.follow_ups (follow_up_id, episode_id, version, is_current, amendment_reason,
                 follow_up_date, days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic,
                 analgesic_change, repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by)
             VALUES ($1, $2, $3, true, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             RETURNING follow_up_id, episode_id, version, is_current, amendment_reason, follow_up_date,
                 days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic, analgesic_change,
                 repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by, recorded_at",
            Uuid::new_v4(),
            episode_id,
            version,
            reason,
            content.follow_up_date,
            days,
            placement.in_window,
            content.accept_out_of_window,
            i16::from(content.leg_nrs.get()),
            content.back_nrs.map(|score| i16::from(score.get())),
            content.pgic.map(|rating| i16::from(rating.get())),
            content.analgesic_change.map(|change| change.as_str()),
            content.repeat_injection,
            content.surgery,
            &adverse_events,
            content.adverse_event_note,
            content.method.as_str(),
            content.entered_by
        )
        .fetch_one(conn)
        .await?;
        row.into_record()
    }

    /// Pending episodes whose window has opened by `as_of`, sorted by due date (then episode id),
    /// `page_size` at a time; `page_token` is the previous page's `next_page_token`.
    pub async fn list_due_follow_ups(
        &self,
        as_of: NaiveDate,
        page_size: u32,
        page_token: &str,
    ) -> Result<DuePage> {
        let window = self.config.follow_up_window;
        let page_size = page_size.clamp(1, self.config.max_page_size.max(1));
        let after = parse_page_token(page_token)?;
        let latest_injection = as_of
            .checked_sub_days(Days::new(u64::from(window.start_day)))
            .ok_or_else(|| Error::invalid("as_of", "date too early"))?;
        let rows: Vec<(Uuid, Uuid, NaiveDate, Vec<String>, String)> = sqlx::query_as(
            "SELECT e.episode_id, e.patient_id, i.injection_date, i.levels, i.side
             FROM registry.episodes e JOIN registry.injections i ON i.episode_id = e.episode_id
             WHERE e.outcome_status = 'pending' AND i.injection_date <= $1
               AND ($2::date IS NULL OR (i.injection_date, e.episode_id) > ($2, $3))
             ORDER BY i.injection_date, e.episode_id
             LIMIT $4",
        )
        .bind(latest_injection)
        .bind(after.map(|(date, _)| date))
        .bind(after.map_or(Uuid::nil(), |(_, id)| id))
        .bind(i64::from(page_size) + 1)
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() > page_size as usize;
        let items: Vec<DueFollowUp> = rows
            .into_iter()
            .take(page_size as usize)
            .map(|(episode_id, patient_id, injection_date, levels, side)| {
                let (window_opens, due_date, window_closes) = window.dates(injection_date);
                let state = if as_of > window_closes {
                    DueState::Overdue
                } else if as_of >= due_date {
                    DueState::Due
                } else {
                    DueState::InWindow
                };
                Ok(DueFollowUp {
                    episode_id,
                    patient_id,
                    injection_date,
                    window_opens,
                    due_date,
                    window_closes,
                    state,
                    levels: parse_levels("levels", &levels)?,
                    side: Side::parse("side", &side)?,
                })
            })
            .collect::<Result<_>>()?;
        let next_page_token = match items.last() {
            Some(last) if has_more => format!("{}/{}", last.injection_date, last.episode_id),
            _ => String::new(),
        };
        Ok(DuePage { items, next_page_token })
    }
}

/// A recorded follow-up with what its episode's labels are derived from.
#[derive(Debug, Clone)]
pub struct LabeledFollowUp {
    pub follow_up: FollowUp,
    /// The episode's label facts right after the write.
    pub label_input: LabelInput,
    /// Every label rule, oldest first (as [`Store::label_rules`] gives them).
    pub rules: Vec<LabelRule>,
}

/// What RecordFollowUp decides on, read in one statement (without a lock: the write checks
/// that the episode is still as read).
#[derive(sqlx::FromRow)]
struct RecordContext {
    /// `None` (with every other episode column) when there is no such episode.
    outcome_status: Option<String>,
    outcome_reason: Option<String>,
    baseline_leg_nrs: Option<i16>,
    baseline_back_nrs: Option<i16>,
    injection_date: Option<NaiveDate>,
    current_exists: bool,
    /// The idempotency key's stored request hash and answer, when the key was used before.
    key_hash: Option<Vec<u8>>,
    key_response: Option<serde_json::Value>,
    /// Every label rule, as [`LABEL_RULES_JSON`] selects them.
    rules: serde_json::Value,
}

/// The statement of [`record_context`] (built once: it includes [`LABEL_RULES_JSON`]).
static RECORD_CONTEXT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.outcome_status, e.outcome_reason, e.baseline_leg_nrs, e.baseline_back_nrs, i.injection_date,
             EXISTS (SELECT 1 FROM registry.follow_ups f WHERE f.episode_id = $1 AND f.is_current) AS current_exists,
             k.request_hash AS key_hash, k.response AS key_response,
             {LABEL_RULES_JSON} AS rules
         FROM (SELECT $1::uuid AS episode_id) AS asked
         LEFT JOIN registry.episodes e ON e.episode_id = asked.episode_id
         LEFT JOIN registry.injections i ON i.episode_id = asked.episode_id
         LEFT JOIN registry.idempotency_keys k ON k.method = $3 AND k.idempotency_key = $2"
    )
});

/// Reads what RecordFollowUp decides on (always one row).
async fn record_context(
    pool: &PgPool,
    episode_id: Uuid,
    keyed: Option<&idempotency::Keyed>,
) -> Result<RecordContext> {
    Ok(sqlx::query_as::<_, RecordContext>(sqlx::AssertSqlSafe(RECORD_CONTEXT.as_str()))
        .bind(episode_id)
        .bind(keyed.map(|keyed| keyed.key.as_str()))
        .bind(RECORD_METHOD)
        .fetch_one(pool)
        .await?)
}

/// Parses `"<injection date>/<episode id>"`; an empty token is the first page.
fn parse_page_token(token: &str) -> Result<Option<(NaiveDate, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a token returned by ListDueFollowUps");
    let (date, id) = token.split_once('/').ok_or_else(invalid)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| invalid())?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((date, id)))
}
