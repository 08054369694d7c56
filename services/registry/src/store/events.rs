//! Fan-out of committed registry events: one poller per process, many in-process watchers.
//!
//! Events are read from `registry.events` by the transactions that wrote them (migration 0302
//! says why this replaced LISTEN/NOTIFY: a notifying transaction commits alone). Each poll reads,
//! under one snapshot:
//!
//! - the events of transactions that have ended since the last poll: transaction ids from the
//!   last poll's horizon up to this snapshot's xmin (every transaction below it has committed or
//!   aborted, so its rows are visible or gone for good); and
//! - early, any visible event newer than the newest seen, so that one long transaction
//!   elsewhere in the cluster (it holds the xmin back) does not delay everyone's events.
//!
//! An event read early is remembered until the horizon passes its transaction, so every
//! committed event is delivered exactly once, whatever the order of commits; a poll that fails
//! is retried from the same place, so a lost connection delays events but loses none.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::EventKind;
use crate::error::Result;

/// How often the hub looks for newly committed events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Events read per query; a full batch is followed by another query at once.
const BATCH: i64 = 1_000;

/// Buffered messages per watcher before it lags (and then resynchronises).
const BUFFER: usize = 4096;

/// Wait before retrying a failed poll.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// One committed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryEvent {
    pub event_id: i64,
    pub episode_id: Uuid,
    pub kind: EventKind,
}

/// Owns the polling task; dropping the hub stops it.
#[derive(Debug)]
pub struct EventHub {
    sender: broadcast::Sender<RegistryEvent>,
    task: JoinHandle<()>,
}

/// Where the poller stands.
#[derive(Debug, Default)]
struct Cursor {
    /// Events of transactions at or above this id (an xmin) may still be unread.
    from: i64,
    /// When a full batch stopped part-way: the horizon it was read under, kept for the next one.
    until: Option<i64>,
    /// When a full batch stopped part-way: the last event id it read.
    after: i64,
    /// The newest event id delivered.
    newest: i64,
    /// Events delivered early (their transaction was at or above the horizon), by id, with
    /// their transaction id: skipped when the horizon pass reads them again.
    early: HashMap<i64, i64>,
}

/// One row of a poll: the horizon it was taken under, and an event if there was one.
#[derive(sqlx::FromRow)]
struct PolledRow {
    horizon: i64,
    event_id: Option<i64>,
    episode_id: Option<Uuid>,
    kind: Option<String>,
    tx: Option<i64>,
}

impl EventHub {
    /// Starts polling from now: events committed before this call are not announced.
    pub async fn start(pool: &PgPool) -> Result<Self> {
        let mut cursor = starting_cursor(pool).await?;
        let (sender, _) = broadcast::channel(BUFFER);
        let forward = sender.clone();
        let pool = pool.clone();
        let task = tokio::spawn(async move {
            loop {
                match poll(&pool, &mut cursor, &forward).await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(POLL_INTERVAL).await,
                    Err(error) => {
                        tracing::warn!(%error, "reading registry events failed; retrying from the same place");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        });
        Ok(EventHub { sender, task })
    }

    /// A new receiver of every message from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.sender.subscribe()
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The cursor of a hub starting now: the current horizon, the newest event, and the events
/// already visible above the horizon counted as delivered.
async fn starting_cursor(pool: &PgPool) -> Result<Cursor> {
    let rows: Vec<(i64, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin::text::bigint, (SELECT coalesce(max(event_id), 0) FROM registry.events),
             e.event_id, e.tx::text::bigint
         FROM horizon h LEFT JOIN registry.events e ON e.tx >= h.xmin",
    )
    .fetch_all(pool)
    .await?;
    let mut cursor = Cursor::default();
    for (horizon, newest, event_id, tx) in rows {
        cursor.from = horizon;
        cursor.newest = newest;
        if let (Some(event_id), Some(tx)) = (event_id, tx) {
            cursor.early.insert(event_id, tx);
        }
    }
    Ok(cursor)
}

/// Reads and forwards one batch of newly committed events; true when the batch was full (more
/// may be waiting).
async fn poll(
    pool: &PgPool,
    cursor: &mut Cursor,
    forward: &broadcast::Sender<RegistryEvent>,
) -> Result<bool> {
    // Under one snapshot: its xmin (or the pinned horizon), the events of ended transactions
    // below it, and visible events newer than the newest delivered. The LEFT JOIN keeps one row
    // (the horizon) when there is no event.
    let rows: Vec<PolledRow> = sqlx::query_as(
        "WITH horizon AS (
             SELECT coalesce($4, pg_snapshot_xmin(pg_current_snapshot())::text::bigint) AS xmin)
         SELECT h.xmin AS horizon, e.event_id, e.episode_id, e.kind, e.tx::text::bigint AS tx
         FROM horizon h
         LEFT JOIN LATERAL (
             SELECT event_id, episode_id, kind, tx FROM registry.events
             WHERE tx >= $1::text::xid8 AND event_id > $2
               AND (tx < h.xmin::text::xid8 OR event_id > $5)
             ORDER BY event_id
             LIMIT $3) e ON true
         ORDER BY e.event_id",
    )
    .bind(cursor.from)
    .bind(cursor.after)
    .bind(BATCH)
    .bind(cursor.until)
    .bind(cursor.newest)
    .fetch_all(pool)
    .await?;
    let Some(horizon) = rows.first().map(|row| row.horizon) else {
        return Ok(false);
    };
    let mut read = 0_i64;
    for row in rows {
        let (Some(event_id), Some(episode_id), Some(kind), Some(tx)) =
            (row.event_id, row.episode_id, row.kind, row.tx)
        else {
            continue;
        };
        read += 1;
        cursor.after = event_id;
        let delivered = if tx < horizon {
            cursor.early.remove(&event_id).is_some()
        } else {
            cursor.early.insert(event_id, tx).is_some()
        };
        if delivered {
            continue;
        }
        cursor.newest = cursor.newest.max(event_id);
        match EventKind::parse(&kind) {
            // No receiver is fine: nobody is watching right now.
            Some(kind) => drop(forward.send(RegistryEvent { event_id, episode_id, kind })),
            None => tracing::warn!(event_id, kind, "ignoring a registry event of an unknown kind"),
        }
    }
    if read == BATCH {
        // Stay below the same horizon and go on after the last event read.
        cursor.until = Some(horizon);
        return Ok(true);
    }
    cursor.from = horizon;
    cursor.until = None;
    cursor.after = 0;
    cursor.early.retain(|_, tx| *tx >= horizon);
    Ok(false)
}
