//! Committed writes are announced to watchers through LISTEN/NOTIFY.

use std::time::Duration;

use sqlx::PgPool;
use tfesi_registry::store::EventKind;
use tfesi_registry::store::events::{EventHub, HubMessage};

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
        let message =
            tokio::time::timeout_at(deadline, receiver.recv()).await.expect("event in time").unwrap();
        if let HubMessage::Event(event) = message {
            assert_eq!(event.episode_id, episode_id);
            kinds.push(event.kind);
        }
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
