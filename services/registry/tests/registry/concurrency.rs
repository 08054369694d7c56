//! Many clients recording, retrying and amending at once: no lost or duplicated rows.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tfesi_registry::Error;
use tokio::task::JoinSet;

use crate::common::*;

const EPISODES: usize = 12;
const RECORDERS_PER_EPISODE: usize = 4;
const AMENDERS_PER_EPISODE: usize = 5;

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_recording_and_amending_loses_and_duplicates_nothing(
    _options: PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let pool: PgPool = PgPoolOptions::new().max_connections(16).connect_with(connect).await.unwrap();
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let mut episodes = Vec::new();
    for _ in 0..EPISODES {
        episodes.push(injected_episode(&store, 8, injected).await);
    }

    // Phase 1: per episode, distinct keys race (one wins, the rest are ALREADY_EXISTS), and
    // retries of the winner's key race too (all must return the same row).
    let mut tasks = JoinSet::new();
    for (index, episode_id) in episodes.iter().copied().enumerate() {
        for attempt in 0..RECORDERS_PER_EPISODE {
            let store = store.clone();
            let key =
                if attempt % 2 == 0 { format!("ep-{index}-shared") } else { format!("ep-{index}-{attempt}") };
            let content = follow_up(day_after(injected, 60), if attempt % 2 == 0 { 4 } else { 5 });
            tasks.spawn(async move {
                let result = store.record_follow_up(Some(&key), episode_id, content).await;
                (episode_id, key, result)
            });
        }
    }
    let mut first_ids = std::collections::HashMap::new();
    let results =
        tokio::time::timeout(Duration::from_secs(60), tasks.join_all()).await.expect("phase 1 in time");
    for (episode_id, key, result) in results {
        match result {
            Ok(follow_up) => {
                let previous = first_ids.insert((episode_id, key.clone()), follow_up.follow_up_id);
                assert!(
                    previous.is_none_or(|id| id == follow_up.follow_up_id),
                    "retry of {key} returned another row"
                );
            }
            Err(Error::FollowUpExists { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    let winners: std::collections::HashSet<_> = first_ids.values().collect();
    assert_eq!(winners.len(), EPISODES, "exactly one version 1 per episode");

    // Phase 2: amendments race on every episode; each must become its own version.
    let mut tasks = JoinSet::new();
    for episode_id in episodes.iter().copied() {
        for amendment in 0..AMENDERS_PER_EPISODE {
            let store = store.clone();
            let content = follow_up(day_after(injected, 60), i64::try_from(amendment).unwrap());
            tasks.spawn(async move {
                store
                    .amend_follow_up(None, episode_id, None, &format!("correction {amendment}"), content)
                    .await
            });
        }
    }
    let results =
        tokio::time::timeout(Duration::from_secs(60), tasks.join_all()).await.expect("phase 2 in time");
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let total = count(&pool, "follow_ups").await;
    assert_eq!(total, i64::try_from(EPISODES * (1 + AMENDERS_PER_EPISODE)).unwrap());
    let current: i64 = sqlx::query_scalar("SELECT count(*) FROM registry.follow_ups WHERE is_current")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, i64::try_from(EPISODES).unwrap());
    // Versions are 1..=6 without gaps or repeats on every episode.
    let gapless: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT episode_id FROM registry.follow_ups GROUP BY episode_id
          HAVING count(*) = max(version) AND min(version) = 1 AND count(DISTINCT version) = count(*)) g",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(gapless, i64::try_from(EPISODES).unwrap());
    let completions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM registry.outcome_status_history WHERE outcome_status = 'completed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(completions, i64::try_from(EPISODES).unwrap());
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_key_raced_on_two_episodes_records_one_and_refuses_the_other(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    for round in 0..10 {
        let first = injected_episode(&store, 8, injected).await;
        let second = injected_episode(&store, 8, injected).await;
        let key = format!("shared-key-{round}");
        let mut tasks = JoinSet::new();
        for episode_id in [first, second] {
            let (store, key) = (store.clone(), key.clone());
            let content = follow_up(day_after(injected, 60), 2);
            tasks.spawn(async move { store.record_follow_up(Some(&key), episode_id, content).await });
        }
        let results = tasks.join_all().await;
        let recorded = results.iter().filter(|result| result.is_ok()).count();
        let refused =
            results.iter().filter(|result| matches!(result, Err(Error::IdempotencyKeyReused))).count();
        assert_eq!((recorded, refused), (1, 1), "round {round}: {results:?}");
    }
    assert_eq!(count(&pool, "follow_ups").await, 10);
    // Episodes and injections were created without keys: one key per recorded follow-up.
    assert_eq!(count(&pool, "idempotency_keys").await, 10);
}
