//! Server streams: an episode's changes (WatchEpisode) and label counts (WatchLabels).

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tfesi_proto::registry::v1 as pb;
use tfesi_proto::registry::v1::episode_event::Event as EventBody;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use uuid::Uuid;

use super::convert::{
    labels as episode_labels, timestamp, to_episode, to_follow_up, to_prediction, to_status_info,
};
use crate::error::{Error, Result};
use crate::store::events::EventHub;
use crate::store::{EventKind, LabelCounts, Store, StoredEvent};

/// A boxed server stream.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Messages buffered per stream before the sender waits for the client.
const STREAM_BUFFER: usize = 64;

/// Streams an episode's events; see `WatchEpisode` in registry.proto.
pub async fn episode(
    store: Store,
    hub: &EventHub,
    episode_id: Uuid,
    send_initial: bool,
    after_revision: i64,
) -> Result<EventStream<pb::EpisodeEvent>> {
    // Subscribe before reading, so nothing committed in between is missed.
    let mut receiver = hub.subscribe();
    let view = store.get_episode(episode_id).await?;
    let (sender, stream) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut last = if after_revision > 0 { after_revision } else { view.revision };
        if send_initial {
            let rules = store.label_rules().await.unwrap_or_default();
            let snapshot = pb::EpisodeEvent {
                episode_id: episode_id.to_string(),
                revision: view.revision,
                occurred_at: Some(timestamp(chrono::Utc::now())),
                event: Some(EventBody::Snapshot(to_episode(
                    &view,
                    &rules,
                    store.config().follow_up_window,
                    true,
                ))),
            };
            if sender.send(Ok(snapshot)).await.is_err() {
                return;
            }
        }
        loop {
            match send_events_after(&store, &sender, episode_id, &mut last).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                    return;
                }
            }
            loop {
                match receiver.recv().await {
                    Ok(event) if event.episode_id == episode_id && event.event_id > last => {
                        break;
                    }
                    Ok(_) => {}
                    // Missed events (this watcher lagged): re-read the state.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(stream)))
}

/// Sends every stored event after `last`; `Ok(false)` when the client has gone.
async fn send_events_after(
    store: &Store,
    sender: &mpsc::Sender<Result<pb::EpisodeEvent, Status>>,
    episode_id: Uuid,
    last: &mut i64,
) -> Result<bool> {
    let events = store.episode_events(episode_id, *last).await?;
    if events.is_empty() {
        return Ok(true);
    }
    let view = store.get_episode(episode_id).await?;
    let rules = store.label_rules().await?;
    for event in events {
        for body in bodies(&event, &view, &rules, store) {
            let message = pb::EpisodeEvent {
                episode_id: episode_id.to_string(),
                revision: event.event_id,
                occurred_at: Some(timestamp(event.created_at)),
                event: Some(body),
            };
            if sender.send(Ok(message)).await.is_err() {
                return Ok(false);
            }
        }
        *last = event.event_id;
    }
    Ok(true)
}

/// The messages of one stored event (a follow-up or status change also reports the labels).
fn bodies(
    event: &StoredEvent,
    view: &crate::domain::records::EpisodeView,
    rules: &[crate::domain::label::LabelRule],
    store: &Store,
) -> Vec<EventBody> {
    let with_labels = |body: EventBody| {
        let mut all = vec![body];
        all.extend(episode_labels(view, rules).into_iter().map(EventBody::LabelChanged));
        all
    };
    match event.kind {
        EventKind::EpisodeCreated | EventKind::StudyLinked => {
            vec![EventBody::Snapshot(to_episode(view, rules, store.config().follow_up_window, true))]
        }
        EventKind::InjectionRecorded => match view.injection.as_ref() {
            Some(_) => {
                vec![EventBody::Snapshot(to_episode(view, rules, store.config().follow_up_window, true))]
            }
            None => Vec::new(),
        },
        EventKind::PredictionRecorded => view
            .predictions
            .iter()
            .filter(|p| p.prediction_id.to_string() == event.subject)
            .map(|p| EventBody::PredictionRecorded(to_prediction(p)))
            .collect(),
        EventKind::FollowUpRecorded | EventKind::FollowUpAmended => {
            let Some(follow_up) =
                view.follow_ups.iter().find(|f| f.follow_up_id.to_string() == event.subject)
            else {
                return Vec::new();
            };
            let message = to_follow_up(follow_up);
            if event.kind == EventKind::FollowUpRecorded {
                with_labels(EventBody::FollowUpRecorded(message))
            } else {
                with_labels(EventBody::FollowUpAmended(message))
            }
        }
        EventKind::StatusChanged => with_labels(EventBody::StatusChanged(to_status_info(&view.episode))),
    }
}

fn to_counts(counts: &LabelCounts) -> pb::LabelCounts {
    let pending = counts.unlabeled.get("no_follow_up").copied().unwrap_or(0);
    let unlabelable: u64 = counts.unlabeled.values().sum::<u64>() - pending;
    pb::LabelCounts {
        rule_version: counts.rule_version.clone(),
        good: counts.responders,
        poor: counts.non_responders,
        labeled: counts.labeled,
        unlabelable,
        pending,
        as_of: Some(timestamp(counts.as_of)),
    }
}

async fn all_counts(store: &Store, versions: &[String]) -> Result<Vec<pb::LabelCounts>> {
    let mut all = Vec::with_capacity(versions.len());
    for version in versions {
        all.push(to_counts(&store.label_counts(Some(version)).await?));
    }
    Ok(all)
}

/// Streams label counts; see `WatchLabels` in registry.proto.
pub async fn labels(
    store: Store,
    hub: &EventHub,
    rule_versions: Vec<String>,
    min_interval_ms: u32,
) -> Result<EventStream<pb::WatchLabelsResponse>> {
    let mut receiver = hub.subscribe();
    let versions = if rule_versions.is_empty() {
        store.label_rules().await?.into_iter().map(|rule| rule.version).collect()
    } else {
        for version in &rule_versions {
            store.label_rule(version).await.map_err(|error| match error {
                Error::NotFound { .. } => {
                    Error::invalid("rule_versions", format!("unknown label rule {version}"))
                }
                other => other,
            })?;
        }
        rule_versions
    };
    let interval =
        Duration::from_millis(u64::from(if min_interval_ms == 0 { 1000 } else { min_interval_ms }));
    let first = all_counts(&store, &versions).await?;
    let (sender, stream) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut sent = first.clone();
        if sender.send(Ok(pb::WatchLabelsResponse { counts: first })).await.is_err() {
            return;
        }
        loop {
            // Wait for something that can change a label, then at most one update per interval.
            loop {
                match receiver.recv().await {
                    Ok(event) if event.kind.affects_labels() => break,
                    Ok(_) => {}
                    // Missed events (this watcher lagged): re-read the state.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = sender.closed() => return,
            }
            while receiver.try_recv().is_ok() {}
            let counts = match all_counts(&store, &versions).await {
                Ok(counts) => counts,
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                    return;
                }
            };
            let changed = counts.iter().zip(&sent).any(|(now, before)| {
                (now.good, now.poor, now.unlabelable, now.pending)
                    != (before.good, before.poor, before.unlabelable, before.pending)
            });
            if changed {
                sent = counts.clone();
                if sender.send(Ok(pb::WatchLabelsResponse { counts })).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(stream)))
}
