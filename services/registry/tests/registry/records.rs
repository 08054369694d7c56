//! Episodes, injections, follow-ups and status against a real Postgres.

use sqlx::PgPool;
use tfesi_registry::Error;
use tfesi_registry::domain::types::{EpisodeStatus, ExclusionReason, Level, Side};
use tfesi_registry::store::DueState;
use uuid::Uuid;

use crate::common::*;

#[sqlx::test(migrations = "../../migrations")]
async fn create_episode_with_the_same_key_and_payload_returns_the_same_episode(pool: PgPool) {
    let store = store(pool.clone());
    let request = new_episode(Uuid::new_v4(), 7);
    let first = store.create_episode(Some("key-1"), request.clone()).await.unwrap();
    let second = store.create_episode(Some("key-1"), request).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(count(&pool, "episodes").await, 1);
    assert_eq!(count(&pool, "patients").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_same_key_with_a_different_payload_is_refused_and_writes_nothing(pool: PgPool) {
    let store = store(pool.clone());
    let patient = Uuid::new_v4();
    store.create_episode(Some("key-1"), new_episode(patient, 7)).await.unwrap();
    let result = store.create_episode(Some("key-1"), new_episode(patient, 8)).await;
    assert!(matches!(result, Err(Error::IdempotencyKeyReused)), "{result:?}");
    assert_eq!(count(&pool, "episodes").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn keys_are_scoped_per_rpc(pool: PgPool) {
    let store = store(pool.clone());
    let episode = store.create_episode(Some("shared"), new_episode(Uuid::new_v4(), 7)).await.unwrap();
    store
        .record_injection(Some("shared"), new_injection(episode.episode_id, date("2026-01-05")))
        .await
        .unwrap();
    assert_eq!(count(&pool, "injections").await, 1);
    assert_eq!(count(&pool, "idempotency_keys").await, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn unknown_episode_is_not_found_everywhere(pool: PgPool) {
    let store = store(pool.clone());
    let unknown = Uuid::new_v4();
    assert!(matches!(store.get_episode(unknown).await, Err(Error::NotFound { entity: "episode", .. })));
    let injection = store.record_injection(None, new_injection(unknown, date("2026-01-05"))).await;
    assert!(matches!(injection, Err(Error::NotFound { .. })));
    let follow = store.record_follow_up(Some("k"), unknown, follow_up(date("2026-03-01"), 2)).await;
    assert!(matches!(follow, Err(Error::NotFound { .. })));
    let amend = store.amend_follow_up(None, unknown, None, "typo", follow_up(date("2026-03-01"), 2)).await;
    assert!(matches!(amend, Err(Error::NotFound { .. })));
    // The failed RecordFollowUp did not keep its idempotency key.
    assert_eq!(count(&pool, "idempotency_keys").await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_second_injection_is_refused(pool: PgPool) {
    let store = store(pool.clone());
    let episode_id = injected_episode(&store, 7, date("2026-01-05")).await;
    let result = store.record_injection(None, new_injection(episode_id, date("2026-01-06"))).await;
    assert!(matches!(result, Err(Error::InjectionExists { .. })), "{result:?}");
    assert_eq!(count(&pool, "injections").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn follow_up_before_injection_date_is_rejected(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 7, injected).await;
    let mut content = follow_up(date("2026-01-04"), 2);
    content.accept_out_of_window = true;
    let result = store.record_follow_up(None, episode_id, content).await;
    assert!(matches!(result, Err(Error::FollowUpBeforeInjection { .. })), "{result:?}");
    assert_eq!(count(&pool, "follow_ups").await, 0);
}

#[sqlx::test(migrations = "../../migrations")]
async fn follow_up_without_an_injection_is_refused(pool: PgPool) {
    let store = store(pool.clone());
    let episode = store.create_episode(None, new_episode(Uuid::new_v4(), 7)).await.unwrap();
    let result = store.record_follow_up(None, episode.episode_id, follow_up(date("2026-03-01"), 2)).await;
    assert!(matches!(result, Err(Error::NoInjection { .. })), "{result:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn out_of_window_follow_up_is_refused_unless_flagged(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    let late = follow_up(day_after(injected, 80), 2);
    let refused = store.record_follow_up(Some("late"), episode_id, late.clone()).await;
    assert!(matches!(refused, Err(Error::OutsideWindow { days: 80, .. })), "{refused:?}");
    assert_eq!(count(&pool, "follow_ups").await, 0);
    // The refused attempt left no key behind: the corrected request may reuse it.
    let flagged = store
        .record_follow_up(
            Some("late"),
            episode_id,
            tfesi_registry::domain::records::FollowUpContent { accept_out_of_window: true, ..late },
        )
        .await
        .unwrap();
    assert!(!flagged.in_window);
    assert_eq!(flagged.days_since_injection, 80);
    // Stored and completed, but excluded from the default rule's labels.
    let counts = store.label_counts(None).await.unwrap();
    assert_eq!(counts.labeled, 0);
    assert_eq!(counts.unlabeled.get("out_of_window"), Some(&1));
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_second_follow_up_without_amend_is_already_exists(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    store.record_follow_up(Some("a"), episode_id, follow_up(day_after(injected, 60), 2)).await.unwrap();
    let second = store.record_follow_up(Some("b"), episode_id, follow_up(day_after(injected, 61), 3)).await;
    assert!(matches!(second, Err(Error::FollowUpExists { .. })), "{second:?}");
    assert_eq!(count(&pool, "follow_ups").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn record_follow_up_is_idempotent_on_its_key(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    let content = follow_up(day_after(injected, 60), 2);
    let first = store.record_follow_up(Some("fu-1"), episode_id, content.clone()).await.unwrap();
    let retry = store.record_follow_up(Some("fu-1"), episode_id, content.clone()).await.unwrap();
    assert_eq!(first, retry);
    let changed =
        store.record_follow_up(Some("fu-1"), episode_id, follow_up(day_after(injected, 60), 3)).await;
    assert!(matches!(changed, Err(Error::IdempotencyKeyReused)), "{changed:?}");
    assert_eq!(count(&pool, "follow_ups").await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn amendments_are_new_versions_and_history_is_kept(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    let nothing =
        store.amend_follow_up(None, episode_id, None, "typo", follow_up(day_after(injected, 60), 2)).await;
    assert!(matches!(nothing, Err(Error::NothingToAmend { .. })), "{nothing:?}");
    store.record_follow_up(None, episode_id, follow_up(day_after(injected, 60), 5)).await.unwrap();
    let no_reason =
        store.amend_follow_up(None, episode_id, None, "  ", follow_up(day_after(injected, 60), 2)).await;
    assert!(matches!(no_reason, Err(Error::InvalidArgument { field: "reason", .. })), "{no_reason:?}");
    let stale =
        store.amend_follow_up(None, episode_id, Some(2), "late", follow_up(day_after(injected, 60), 2)).await;
    assert!(matches!(stale, Err(Error::VersionMismatch { expected: 2, current: 1 })), "{stale:?}");
    let reason = "nurse misheard 5 for 2";
    let amended = store
        .amend_follow_up(Some("amend-1"), episode_id, Some(1), reason, follow_up(day_after(injected, 60), 2))
        .await
        .unwrap();
    assert_eq!(amended.version, 2);
    let retried = store
        .amend_follow_up(Some("amend-1"), episode_id, Some(1), reason, follow_up(day_after(injected, 60), 2))
        .await
        .unwrap();
    assert_eq!(retried, amended);
    let view = store.get_episode(episode_id).await.unwrap();
    let versions: Vec<_> =
        view.follow_ups.iter().map(|f| (f.version, f.is_current, f.content.leg_nrs.get())).collect();
    assert_eq!(versions, vec![(1, false, 5), (2, true, 2)]);
    assert_eq!(view.follow_ups[1].amendment_reason.as_deref(), Some("nurse misheard 5 for 2"));
    // The label follows the current version: 8 -> 2 is a responder.
    assert_eq!(store.label_counts(None).await.unwrap().responders, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn stored_versions_cannot_be_rewritten_in_sql(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    store.record_follow_up(None, episode_id, follow_up(day_after(injected, 60), 5)).await.unwrap();
    let rewrite = sqlx::query("UPDATE registry.follow_ups SET leg_nrs = 1").execute(&pool).await;
    assert!(rewrite.is_err());
    let delete = sqlx::query("DELETE FROM registry.follow_ups").execute(&pool).await;
    assert!(delete.is_err());
    let out_of_range = sqlx::query("UPDATE registry.episodes SET baseline_leg_nrs = 11").execute(&pool).await;
    assert!(out_of_range.is_err());
}

#[sqlx::test(migrations = "../../migrations")]
async fn outcome_status_rules_are_enforced(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    let completed = store.set_outcome_status(episode_id, EpisodeStatus::Completed, "", "nurse-1").await;
    assert!(matches!(completed, Err(Error::StatusConflict { .. })), "{completed:?}");
    let lost = store
        .set_outcome_status(episode_id, EpisodeStatus::LostToFollowUp, "3 calls", "nurse-1")
        .await
        .unwrap();
    assert_eq!(lost.status, EpisodeStatus::LostToFollowUp);
    // A late score still completes a lost episode.
    store.record_follow_up(None, episode_id, follow_up(day_after(injected, 70), 2)).await.unwrap();
    let view = store.get_episode(episode_id).await.unwrap();
    assert_eq!(view.episode.status, EpisodeStatus::Completed);
    let deceased = EpisodeStatus::Excluded(ExclusionReason::Deceased);
    store.set_outcome_status(episode_id, deceased, "", "nurse-1").await.unwrap();
    assert_eq!(store.label_counts(None).await.unwrap().unlabeled.get("status"), Some(&1));
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM registry.outcome_status_history")
        .fetch_one(&pool)
        .await
        .unwrap();
    // pending, lost_to_follow_up, completed, excluded
    assert_eq!(history, 4);
}

#[sqlx::test(migrations = "../../migrations")]
async fn withdrawn_episode_takes_no_follow_up(pool: PgPool) {
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    store
        .set_outcome_status(episode_id, EpisodeStatus::Withdrawn, "consent withdrawn", "nurse-1")
        .await
        .unwrap();
    let result = store.record_follow_up(None, episode_id, follow_up(day_after(injected, 60), 2)).await;
    assert!(matches!(result, Err(Error::StatusConflict { .. })), "{result:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_completed_episode_without_a_follow_up_takes_one_without_being_completed_again(pool: PgPool) {
    // Not reachable through the RPCs (completion comes with a follow-up), but the schema allows
    // it: the one-statement write leaves it to the read-and-decide path, which records the
    // follow-up and writes no second completion.
    let store = store(pool.clone());
    let injected = date("2026-01-05");
    let episode_id = injected_episode(&store, 8, injected).await;
    sqlx::query("UPDATE registry.episodes SET outcome_status = 'completed' WHERE episode_id = $1")
        .bind(episode_id)
        .execute(&pool)
        .await
        .unwrap();
    let content = follow_up(day_after(injected, 60), 2);
    let recorded = store.record_follow_up(Some("completed-1"), episode_id, content.clone()).await.unwrap();
    assert_eq!((recorded.days_since_injection, recorded.in_window), (60, true));
    let replayed = store.record_follow_up(Some("completed-1"), episode_id, content).await.unwrap();
    assert_eq!(replayed, recorded);
    let view = store.get_episode(episode_id).await.unwrap();
    assert_eq!(view.episode.status, EpisodeStatus::Completed);
    assert_eq!(view.follow_ups, vec![recorded]);
    assert_eq!(count(&pool, "outcome_status_history").await, 1, "only the pending row of its creation");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM registry.events ORDER BY event_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["episode_created", "injection_recorded", "follow_up_recorded"]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn due_list_is_sorted_paginated_and_stateful(pool: PgPool) {
    let store = store(pool.clone());
    let as_of = date("2026-06-01");
    // Injected 80, 65, 50 and 30 days before as_of: overdue, due, in window, not yet open.
    let overdue = injected_episode(&store, 7, date("2026-03-13")).await;
    let due = injected_episode(&store, 7, date("2026-03-28")).await;
    let in_window = injected_episode(&store, 7, date("2026-04-12")).await;
    let _upcoming = injected_episode(&store, 7, date("2026-05-02")).await;
    let done = injected_episode(&store, 7, date("2026-03-20")).await;
    store.record_follow_up(None, done, follow_up(date("2026-05-19"), 3)).await.unwrap();
    let first = store.list_due_follow_ups(as_of, 2, "").await.unwrap();
    let ids: Vec<_> = first.items.iter().map(|item| (item.episode_id, item.state)).collect();
    assert_eq!(ids, vec![(overdue, DueState::Overdue), (due, DueState::Due)]);
    assert!(!first.next_page_token.is_empty());
    let second = store.list_due_follow_ups(as_of, 2, &first.next_page_token).await.unwrap();
    let ids: Vec<_> = second.items.iter().map(|item| (item.episode_id, item.state)).collect();
    assert_eq!(ids, vec![(in_window, DueState::InWindow)]);
    assert!(second.next_page_token.is_empty());
    assert_eq!(second.items[0].due_date, date("2026-06-11"));
    // The nurse sees what was injected, to name it on the call.
    assert_eq!(second.items[0].levels, vec![Level::L4L5]);
    assert_eq!(second.items[0].side, Side::Left);
    let bad = store.list_due_follow_ups(as_of, 2, "garbage").await;
    assert!(matches!(bad, Err(Error::InvalidArgument { field: "page_token", .. })));
}
