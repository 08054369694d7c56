//! Postgres persistence of the registry: one transaction per operation, compile-checked queries.

mod episodes;
pub mod events;
mod first_version;
mod follow_ups;
mod idempotency;
mod listing;
mod performance;
mod predictions;
mod rows;
mod snapshots;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::config::RegistryConfig;
use crate::domain::types::EpisodeStatus;
use crate::error::{Error, Result};

pub use follow_ups::{DueFollowUp, DuePage, DueState, LabeledFollowUp};
pub use listing::{EpisodeFilter, StoredEvent};
pub use performance::{LabelCounts, ModelPerformance};
pub use predictions::RecordedJob;
pub use snapshots::{SnapshotRequest, SnapshotSummary};

/// The registry's name in `audit.log`.
const AUDIT_SERVICE: &str = "registry";

/// Handle to the registry's tables (cheap to clone: the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    config: RegistryConfig,
}

/// Kinds of events written to `registry.events` (read by the event hub, `events.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    EpisodeCreated,
    StudyLinked,
    InjectionRecorded,
    PredictionRecorded,
    FollowUpRecorded,
    FollowUpAmended,
    StatusChanged,
}

impl EventKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::EpisodeCreated => "episode_created",
            EventKind::StudyLinked => "study_linked",
            EventKind::InjectionRecorded => "injection_recorded",
            EventKind::PredictionRecorded => "prediction_recorded",
            EventKind::FollowUpRecorded => "follow_up_recorded",
            EventKind::FollowUpAmended => "follow_up_amended",
            EventKind::StatusChanged => "status_changed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [
            EventKind::EpisodeCreated,
            EventKind::StudyLinked,
            EventKind::InjectionRecorded,
            EventKind::PredictionRecorded,
            EventKind::FollowUpRecorded,
            EventKind::FollowUpAmended,
            EventKind::StatusChanged,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// Whether this event can change a label (and so the label counts).
    pub fn affects_labels(self) -> bool {
        matches!(self, EventKind::FollowUpRecorded | EventKind::FollowUpAmended | EventKind::StatusChanged)
    }
}

impl Store {
    /// Wraps a pool whose database has the migrations applied.
    pub fn new(pool: PgPool, config: RegistryConfig) -> Result<Self> {
        config.follow_up_window.validate()?;
        Ok(Store { pool, config })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The settings in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }
}

/// Who is writing: the verified caller of the RPC being served, recorded in the audit log
/// with every clinical write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's subject.
    pub subject: String,
    /// The role that allowed the call.
    pub role: String,
}

impl Actor {
    /// The registry itself (writes outside any RPC, e.g. tests and maintenance).
    pub fn internal() -> Self {
        Self { subject: "registry".to_owned(), role: "internal".to_owned() }
    }
}

tokio::task_local! {
    static ACTOR: Actor;
}

/// Runs `work` (store calls) on behalf of `actor`: every clinical write it makes is audited
/// under that name.
pub async fn as_actor<F: std::future::Future>(actor: Actor, work: F) -> F::Output {
    ACTOR.scope(actor, work).await
}

/// The actor of the current task.
pub fn current_actor() -> Actor {
    ACTOR.try_with(Clone::clone).unwrap_or_else(|_| Actor::internal())
}

impl Store {
    /// Audits a read of clinical data by the current actor (a snapshot export), in a
    /// transaction of its own; the read must not be served when this fails.
    pub async fn audit_read(&self, action: &str, target: &str) -> Result<()> {
        let actor = current_actor();
        let mut tx = self.pool.begin().await?;
        let record = tfesi_platform::audit::AuditRecord {
            service: AUDIT_SERVICE,
            actor: &actor.subject,
            role: &actor.role,
            action,
            target,
            outcome: "ok",
            purpose: None,
        };
        tfesi_platform::audit::append(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Appends an event in the caller's transaction; it is announced when that transaction commits.
/// Every clinical write passes here, so here it is audited too, in the same transaction (a
/// failed audit write fails the write).
async fn append_event(
    conn: &mut PgConnection,
    episode_id: Uuid,
    kind: EventKind,
    subject: &str,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO registry.events (episode_id, kind, subject) VALUES ($1, $2, $3)",
        episode_id,
        kind.as_str(),
        subject
    )
    .execute(&mut *conn)
    .await?;
    let actor = current_actor();
    let target = format!("episode:{episode_id}");
    let record = tfesi_platform::audit::AuditRecord {
        service: AUDIT_SERVICE,
        actor: &actor.subject,
        role: &actor.role,
        action: kind.as_str(),
        target: &target,
        outcome: "ok",
        purpose: None,
    };
    tfesi_platform::audit::append(conn, &record).await?;
    Ok(())
}

/// Locks an episode row for the rest of the transaction and returns its status, so that writes
/// to one episode (follow-ups, amendments, status changes) are serialised.
async fn lock_episode(conn: &mut PgConnection, episode_id: Uuid) -> Result<EpisodeStatus> {
    let row = sqlx::query!(
        "SELECT outcome_status, outcome_reason FROM registry.episodes WHERE episode_id = $1 FOR UPDATE",
        episode_id
    )
    .fetch_optional(conn)
    .await?;
    let row = row.ok_or_else(|| Error::not_found("episode", episode_id))?;
    EpisodeStatus::from_columns(&row.outcome_status, row.outcome_reason.as_deref())
}

/// Sets the episode's current status and appends it to the history, with an event.
async fn change_status(
    conn: &mut PgConnection,
    episode_id: Uuid,
    status: EpisodeStatus,
    note: &str,
    changed_by: &str,
) -> Result<()> {
    let status_text = status.status().as_str();
    let reason_text = status.reason().map(|reason| reason.as_str());
    sqlx::query!(
        "UPDATE registry.episodes SET outcome_status = $2, outcome_reason = $3, updated_at = now()
         WHERE episode_id = $1",
        episode_id,
        status_text,
        reason_text
    )
    .execute(&mut *conn)
    .await?;
    let change_id = sqlx::query_scalar!(
        "INSERT INTO registry.outcome_status_history (episode_id, outcome_status, outcome_reason, note, changed_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING change_id",
        episode_id,
        status_text,
        reason_text,
        note,
        changed_by
    )
    .fetch_one(&mut *conn)
    .await?;
    append_event(conn, episode_id, EventKind::StatusChanged, &change_id.to_string()).await
}

/// Converts a stored non-negative integer column, reporting corruption instead of panicking.
fn stored_u32(column: &'static str, value: i32) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::Database(sqlx::Error::Decode(format!("negative {column}").into())))
}

/// Converts a stored small integer column (scores, ages) into a u8.
fn stored_u8(column: &'static str, value: i16) -> Result<u8> {
    u8::try_from(value)
        .map_err(|_| Error::Database(sqlx::Error::Decode(format!("out of range {column}").into())))
}
