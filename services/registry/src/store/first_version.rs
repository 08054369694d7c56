//! RecordFollowUp's writes of a first follow-up version: in one round trip when the episode
//! accepts it as it stands, else after a read that decided to write (`follow_ups.rs`).
//!
//! The common case (a pending or lost-to-follow-up episode with an injection, no current
//! follow-up, a date the window accepts, a fresh idempotency key) is one autocommit statement
//! that checks all of that and writes everything, or writes nothing. Only when it wrote nothing
//! does RecordFollowUp read and decide, which is where every precise error (NOT_FOUND,
//! FAILED_PRECONDITION, ALREADY_EXISTS, INVALID_ARGUMENT) and the idempotent replay come from.
//! So that statement must never write what the read would refuse, and must write exactly what
//! the read's write would: the tests in `first_version/tests.rs` hold its SQL to
//! `FollowUpWindow::place`.

use std::sync::LazyLock;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use uuid::Uuid;

use super::follow_ups::{LabeledFollowUp, RECORD_METHOD};
use super::snapshots::{LABEL_RULES_JSON, label_rules_from_json};
use super::{AUDIT_SERVICE, EventKind, Store, current_actor, idempotency, stored_u8, stored_u32};
use crate::domain::label::{FollowUpFacts, LabelInput};
use crate::domain::records::{FollowUp, FollowUpContent};
use crate::domain::types::{EpisodeStatus, OutcomeStatus};
use crate::domain::validation::WindowPlacement;
use crate::error::{Error, Result};

/// Who the registry names when it completes an episode because a follow-up arrived.
const REGISTRY_ACTOR: &str = "registry";

/// The status history's note when a follow-up completes an episode.
const COMPLETION_NOTE: &str = "follow-up recorded";

/// The unique keys that hold one version 1 and one current version per episode (migration 0300).
const ONE_VERSION_ONE_KEY: &str = "follow_ups_episode_id_version_key";
const ONE_CURRENT_KEY: &str = "follow_ups_one_current_idx";

/// The rows both statements write once they have decided to, as CTEs that follow theirs:
/// the follow-up from `go` (`episode_id`, `days`, `in_window`), the history row from
/// `completed` (the episodes this statement completed), an event per row, an audit record per
/// event. Parameters $1 to $24, bound by [`bind_first_version`].
const FIRST_VERSION_ROWS: &str = "
    follow_up AS (
        INSERT INTO registry.follow_ups (follow_up_id, episode_id, version, is_current, follow_up_date,
            days_since_injection, in_window, out_of_window_accepted, leg_nrs, back_nrs, pgic, analgesic_change,
            repeat_injection, surgery, adverse_events, adverse_event_note, method, entered_by, recorded_at)
        SELECT $1, episode_id, 1, true, $3, days, in_window, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now()
        FROM go
        RETURNING follow_up_id, recorded_at),
    history AS (
        INSERT INTO registry.outcome_status_history (episode_id, outcome_status, note, changed_by)
        SELECT episode_id, $15, $16, $17 FROM completed
        RETURNING change_id),
    events AS (
        INSERT INTO registry.events (episode_id, kind, subject)
        SELECT $2, kind, subject FROM (
            SELECT 1 AS position, $18 AS kind, follow_up_id::text AS subject FROM follow_up
            UNION ALL
            SELECT 2, $19, change_id::text FROM history) AS written
        ORDER BY position
        RETURNING kind),
    audited AS (
        INSERT INTO audit.log (at, service, actor, role, action, target, outcome)
        SELECT $20, $21, $22, $23, kind, $24, 'ok' FROM events)";

/// Binds $1 to $28 of both statements: the follow-up, what completing the episode writes, the
/// audit records' actor and target, RecordFollowUp's name, and the idempotency key's answer,
/// key and request hash ($26 to $28, NULL without a key).
fn bind_first_version<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    follow_up: &'q FollowUp,
    answer: Option<serde_json::Value>,
    keyed: Option<&'q idempotency::Keyed>,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    let content = &follow_up.content;
    let adverse_events: Vec<&str> = content.adverse_events.iter().map(|event| event.as_str()).collect();
    let actor = current_actor();
    query
        .bind(follow_up.follow_up_id)
        .bind(follow_up.episode_id)
        .bind(content.follow_up_date)
        .bind(content.accept_out_of_window)
        .bind(i16::from(content.leg_nrs.get()))
        .bind(content.back_nrs.map(|score| i16::from(score.get())))
        .bind(content.pgic.map(|rating| i16::from(rating.get())))
        .bind(content.analgesic_change.map(|change| change.as_str()))
        .bind(content.repeat_injection)
        .bind(content.surgery)
        .bind(adverse_events)
        .bind(&content.adverse_event_note)
        .bind(content.method.as_str())
        .bind(&content.entered_by)
        .bind(EpisodeStatus::Completed.status().as_str())
        .bind(COMPLETION_NOTE)
        .bind(REGISTRY_ACTOR)
        .bind(EventKind::FollowUpRecorded.as_str())
        .bind(EventKind::StatusChanged.as_str())
        .bind(Utc::now().trunc_subsecs(6))
        .bind(AUDIT_SERVICE)
        .bind(actor.subject)
        .bind(actor.role)
        .bind(format!("episode:{}", follow_up.episode_id))
        .bind(RECORD_METHOD)
        .bind(answer)
        .bind(keyed.map(|keyed| keyed.key.as_str()))
        .bind(keyed.map(|keyed| keyed.hash.as_slice()))
}

/// What the one-statement write answers when it wrote: what the follow-up's answer and its
/// labels need.
#[derive(sqlx::FromRow)]
struct WrittenAtOnce {
    recorded_at: DateTime<Utc>,
    days_since_injection: i32,
    in_window: bool,
    baseline_leg_nrs: i16,
    baseline_back_nrs: Option<i16>,
    /// Every label rule, as [`LABEL_RULES_JSON`] selects them.
    rules: serde_json::Value,
}

/// The statement of [`Store::record_first_version_at_once`] (built once).
///
/// `completed` is the gate and the lock at once: it completes the episode only when every check
/// holds, so the row is locked by the update itself (no `FOR UPDATE` before it), and everything
/// else is written from its output. A concurrent write to the same episode makes it wait;
/// Postgres then re-checks the conditions on the episode's new version, and a follow-up
/// recorded meanwhile has completed the episode, so nothing is written. The idempotency key is
/// a plain insert: a key already taken (or taken by the concurrent request it waited for) fails
/// the whole statement with a unique violation, which the caller treats as "nothing written".
/// The window, as `FollowUpWindow::place` decides it: the day count is the follow-up date minus
/// the injection date; negative is refused; from $29 to $30 (the window's first and last days)
/// is in the window; outside it is accepted only when the caller accepts it ($4). $31: the
/// statuses that a follow-up completes.
static WRITE_AT_ONCE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH completed AS (
             UPDATE registry.episodes e SET outcome_status = $15, outcome_reason = NULL, updated_at = now()
             FROM registry.injections i
             WHERE e.episode_id = $2 AND i.episode_id = e.episode_id
               AND e.outcome_status = ANY($31)
               AND $3::date - i.injection_date >= 0
               AND ($3::date - i.injection_date BETWEEN $29 AND $30 OR $4)
               AND NOT EXISTS (
                   SELECT 1 FROM registry.follow_ups f WHERE f.episode_id = e.episode_id AND f.is_current)
             RETURNING e.episode_id, e.baseline_leg_nrs, e.baseline_back_nrs,
                 $3::date - i.injection_date AS days,
                 $3::date - i.injection_date BETWEEN $29 AND $30 AS in_window),
         go AS (SELECT episode_id, days, in_window FROM completed),
         claim AS (
             INSERT INTO registry.idempotency_keys (idempotency_key, method, request_hash, response)
             SELECT $27, $25, $28, $26 || jsonb_build_object(
                     'recorded_at', now(), 'days_since_injection', days, 'in_window', in_window)
             FROM completed WHERE $27::text IS NOT NULL),
         {FIRST_VERSION_ROWS}
         SELECT f.recorded_at, c.days AS days_since_injection, c.in_window, c.baseline_leg_nrs,
             c.baseline_back_nrs, {LABEL_RULES_JSON} AS rules
         FROM follow_up f CROSS JOIN completed c"
    )
});

/// The statement of [`write_first_version`] (built once).
static WRITE_AS_READ: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH episode AS (
             SELECT episode_id FROM registry.episodes
             WHERE episode_id = $2 AND outcome_status = $32 AND outcome_reason IS NOT DISTINCT FROM $33
             FOR UPDATE),
         claim AS (
             INSERT INTO registry.idempotency_keys (idempotency_key, method, request_hash, response)
             SELECT $27, $25, $28, jsonb_set($26, '{{recorded_at}}', to_jsonb(now()))
             FROM episode WHERE $27::text IS NOT NULL
             ON CONFLICT (method, idempotency_key) DO NOTHING
             RETURNING 1),
         go AS (
             SELECT episode_id, $29::integer AS days, $30::boolean AS in_window FROM episode
             WHERE $27::text IS NULL OR EXISTS (SELECT 1 FROM claim)),
         completed AS (
             UPDATE registry.episodes SET outcome_status = $15, outcome_reason = NULL, updated_at = now()
             WHERE episode_id IN (SELECT episode_id FROM go) AND $31
             RETURNING episode_id),
         {FIRST_VERSION_ROWS}
         SELECT (SELECT recorded_at FROM follow_up)"
    )
});

impl Store {
    /// Records a first follow-up version in one statement when the episode accepts it as it
    /// stands (see the module's comment); `None` when nothing was written, and the caller must
    /// read and decide.
    pub(super) async fn record_first_version_at_once(
        &self,
        episode_id: Uuid,
        content: &FollowUpContent,
        keyed: Option<&idempotency::Keyed>,
    ) -> Result<Option<LabeledFollowUp>> {
        let window = self.config.follow_up_window;
        // The day count and the window flag are the statement's: the stored answer and this one
        // take them from it.
        let unplaced = WindowPlacement { days_since_injection: 0, in_window: false };
        let mut follow_up = unrecorded_first_version(episode_id, content, unplaced);
        let answer_template = keyed.map(|_| serde_json::to_value(&follow_up)).transpose()?;
        let completing: Vec<&str> =
            [OutcomeStatus::Pending, OutcomeStatus::LostToFollowUp].map(OutcomeStatus::as_str).to_vec();
        let query = sqlx::query_as::<_, WrittenAtOnce>(sqlx::AssertSqlSafe(WRITE_AT_ONCE.as_str()));
        let written = bind_first_version(query, &follow_up, answer_template, keyed)
            .bind(i64::from(window.start_day))
            .bind(i64::from(window.end_day))
            .bind(completing)
            .fetch_optional(&self.pool)
            .await;
        let written = match written {
            Ok(Some(written)) => written,
            Ok(None) => return Ok(None),
            // The key is taken, or a follow-up was committed by a write that did not complete
            // the episode: the statement wrote nothing, and reading decides.
            Err(sqlx::Error::Database(database)) if database.is_unique_violation() => return Ok(None),
            Err(other) => return Err(other.into()),
        };
        follow_up.days_since_injection = stored_u32("days_since_injection", written.days_since_injection)?;
        follow_up.in_window = written.in_window;
        follow_up.recorded_at = written.recorded_at;
        let label_input =
            completed_label_input(&follow_up, written.baseline_leg_nrs, written.baseline_back_nrs)?;
        Ok(Some(LabeledFollowUp { follow_up, label_input, rules: label_rules_from_json(written.rules)? }))
    }
}

/// Version 1 of `content` for `episode_id`, placed as `placement` says, before it is written:
/// its `recorded_at` is replaced by the database's time of the write (the statement's `now()`).
pub(super) fn unrecorded_first_version(
    episode_id: Uuid,
    content: &FollowUpContent,
    placement: WindowPlacement,
) -> FollowUp {
    FollowUp {
        follow_up_id: Uuid::new_v4(),
        episode_id,
        version: 1,
        is_current: true,
        amendment_reason: None,
        days_since_injection: placement.days_since_injection,
        in_window: placement.in_window,
        recorded_at: Utc::now(),
        content: content.clone(),
    }
}

/// What the labels of an episode that `follow_up` has just completed are derived from, with
/// the episode's stored baselines.
pub(super) fn completed_label_input(
    follow_up: &FollowUp,
    baseline_leg_nrs: i16,
    baseline_back_nrs: Option<i16>,
) -> Result<LabelInput> {
    Ok(LabelInput {
        status: EpisodeStatus::Completed,
        baseline_leg_nrs: stored_u8("baseline_leg_nrs", baseline_leg_nrs)?,
        baseline_back_nrs: baseline_back_nrs
            .map(|score| stored_u8("baseline_back_nrs", score))
            .transpose()?,
        follow_up: Some(FollowUpFacts::of(follow_up)),
    })
}

/// Writes a first follow-up version that a read has decided on, in one statement, only if the
/// episode still has the status `read` and the idempotency key (if any) is still free: the key
/// with its answer, the row, its event, the episode's completion (status, history row and its
/// event) unless it is completed already, and an audit record per event under the current
/// actor. Returns the time the row was recorded, or `None` when nothing was written (the
/// episode changed or the key was taken since they were read). A follow-up committed meanwhile
/// by a request that found the episode as this one did is caught by the unique keys and
/// answered [`Error::FollowUpExists`].
pub(super) async fn write_first_version(
    pool: &sqlx::PgPool,
    follow_up: &FollowUp,
    read: EpisodeStatus,
    keyed: Option<&idempotency::Keyed>,
) -> Result<Option<DateTime<Utc>>> {
    let days = i32::try_from(follow_up.days_since_injection)
        .map_err(|_| Error::invalid("follow_up_date", "too far after the injection"))?;
    let answer = keyed.map(|_| serde_json::to_value(follow_up)).transpose()?;
    let query = sqlx::query_as::<_, (Option<DateTime<Utc>>,)>(sqlx::AssertSqlSafe(WRITE_AS_READ.as_str()));
    bind_first_version(query, follow_up, answer, keyed)
        .bind(days)
        .bind(follow_up.in_window)
        .bind(read != EpisodeStatus::Completed)
        .bind(read.status().as_str())
        .bind(read.reason().map(|reason| reason.as_str()))
        .fetch_one(pool)
        .await
        .map(|(recorded_at,)| recorded_at)
        .map_err(|error| match error {
            sqlx::Error::Database(database)
                if database.is_unique_violation()
                    && matches!(database.constraint(), Some(ONE_VERSION_ONE_KEY | ONE_CURRENT_KEY)) =>
            {
                Error::FollowUpExists { episode_id: follow_up.episode_id }
            }
            other => other.into(),
        })
}

#[cfg(test)]
mod tests;
