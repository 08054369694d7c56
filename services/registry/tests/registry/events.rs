//! Committed writes reach watchers through the event hub, which polls `registry.events` by the
//! transactions that wrote them: exactly once, whatever the order of commits, none from a
//! transaction that rolled back, and more than one batch at a time.

use std::time::Duration;

use sqlx::{Connection as _, PgPool};
use tfesi_registry::store::EventKind;
use tfesi_registry::store::events::{EventHub, RegistryEvent};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::common::*;

#[sqlx::test(migrations = "../../migrations")]
async fn watchers_see_a_follow_up_after_it_commits(pool: PgPool) {
    let store = store(pool.clone());
    let hub = EventHub::start(&pool).await.unwrap();
    let mut receiver = hub.subscribe();
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    store.record_follow_up(None, episode_id, follow_up(day_after(injected, 60), 2)).await.unwrap();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !kinds.contains(&EventKind::StatusChanged) {
        let event = tokio::time::timeout_at(deadline, receiver.recv()).await.expect("event in time").unwrap();
        assert_eq!(event.episode_id, episode_id);
        kinds.push(event.kind);
    }
    assert_eq!(
        kinds,
        vec![
            EventKind::EpisodeCreated,
            EventKind::InjectionRecorded,
            EventKind::FollowUpRecorded,
            EventKind::StatusChanged
        ]
    );
}

/// The events received within `wait` (stops early once `until` has arrived).
async fn received(
    receiver: &mut broadcast::Receiver<RegistryEvent>,
    wait: Duration,
    until: impl Fn(&[i64]) -> bool,
) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut ids = Vec::new();
    while !until(&ids) {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Ok(event)) => ids.push(event.event_id),
            Ok(Err(error)) => panic!("receiver: {error}"),
            Err(_) => break,
        }
    }
    ids
}

async fn insert_event(connection: &mut sqlx::PgConnection, episode_id: Uuid) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO registry.events (episode_id, kind, subject) VALUES ($1, 'status_changed', 'test') \
         RETURNING event_id",
    )
    .bind(episode_id)
    .fetch_one(connection)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn an_event_committed_after_a_later_one_is_still_delivered_once(pool: PgPool) {
    let store = store(pool.clone());
    let episode_id = injected_episode(&store, 8, date("2026-01-05")).await;
    let hub = EventHub::start(&pool).await.unwrap();
    let mut receiver = hub.subscribe();
    let options = pool.connect_options();
    let mut slow = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let mut fast = sqlx::PgConnection::connect_with(&options).await.unwrap();
    // The slow transaction takes the lower event id and commits last; one that rolls back
    // takes an id too and must never be delivered.
    sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
    let early = insert_event(&mut slow, episode_id).await;
    let mut aborted = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut aborted).await.unwrap();
    insert_event(&mut aborted, episode_id).await;
    let late = insert_event(&mut fast, episode_id).await;
    assert!(early < late);
    // The committed event arrives while the older transaction is still open (it holds the
    // horizon back, but visible events newer than the newest delivered go out early).
    let first = received(&mut receiver, Duration::from_secs(10), |ids| !ids.is_empty()).await;
    assert_eq!(first, vec![late]);
    sqlx::query("ROLLBACK").execute(&mut aborted).await.unwrap();
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    // The older one arrives once its transaction has ended; nothing else ever does (the late
    // one not twice, the rolled-back one never).
    let mut ids = received(&mut receiver, Duration::from_secs(10), |ids| !ids.is_empty()).await;
    ids.extend(received(&mut receiver, Duration::from_millis(500), |_| false).await);
    assert_eq!(ids, vec![early]);
    // A later write still arrives: the horizon moved on.
    let after = insert_event(&mut fast, episode_id).await;
    assert_eq!(received(&mut receiver, Duration::from_secs(10), |ids| !ids.is_empty()).await, vec![after]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn more_events_than_one_batch_all_arrive_in_order(pool: PgPool) {
    let store = store(pool.clone());
    let episode_id = injected_episode(&store, 8, date("2026-01-05")).await;
    let hub = EventHub::start(&pool).await.unwrap();
    let mut receiver = hub.subscribe();
    let total = 2_500;
    let written: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO registry.events (episode_id, kind, subject) \
         SELECT $1, 'status_changed', n::text FROM generate_series(1, $2) AS n RETURNING event_id",
    )
    .bind(episode_id)
    .bind(total)
    .fetch_all(&pool)
    .await
    .unwrap();
    let ids = received(&mut receiver, Duration::from_secs(20), |ids| ids.len() >= written.len()).await;
    let mut expected = written;
    expected.sort_unstable();
    assert_eq!(ids, expected);
}

#[sqlx::test(migrations = "../../migrations")]
async fn events_written_while_the_hub_is_cut_off_arrive_after_it_reconnects(pool: PgPool) {
    let store = store(pool.clone());
    let episode_id = injected_episode(&store, 8, date("2026-01-05")).await;
    let hub = EventHub::start(&pool).await.unwrap();
    let mut receiver = hub.subscribe();
    let options = pool.connect_options();
    let mut writer = sqlx::PgConnection::connect_with(&options).await.unwrap();
    let before = insert_event(&mut writer, episode_id).await;
    assert_eq!(received(&mut receiver, Duration::from_secs(10), |ids| !ids.is_empty()).await, vec![before]);
    // Cut every other connection to this database (the hub's among them), then write.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    let during: Vec<i64> =
        vec![insert_event(&mut writer, episode_id).await, insert_event(&mut writer, episode_id).await];
    let ids = received(&mut receiver, Duration::from_secs(20), |ids| ids.len() >= 2).await;
    assert_eq!(ids, during, "each event written while cut off arrives once, in order");
}
