//! Fan-out of committed registry events: one LISTEN connection, many in-process watchers.

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::EventKind;
use crate::error::Result;

/// Postgres channel that `registry.announce_event()` notifies.
pub const CHANNEL: &str = "registry_events";

/// Buffered messages per watcher before it lags (and then resynchronises).
const BUFFER: usize = 4096;

/// One committed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryEvent {
    pub event_id: i64,
    pub episode_id: Uuid,
    pub kind: EventKind,
}

/// What watchers receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubMessage {
    Event(RegistryEvent),
    /// Notifications may have been missed (listener reconnected): re-read the state.
    Resync,
}

#[derive(Deserialize)]
struct Payload {
    event_id: i64,
    episode_id: Uuid,
    kind: String,
}

/// Owns the listening task; dropping the hub stops it.
#[derive(Debug)]
pub struct EventHub {
    sender: broadcast::Sender<HubMessage>,
    task: JoinHandle<()>,
}

impl EventHub {
    /// Connects a listener on [`CHANNEL`] and starts forwarding notifications.
    pub async fn start(pool: &PgPool) -> Result<Self> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let (sender, _) = broadcast::channel(BUFFER);
        let forward = sender.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => match serde_json::from_str::<Payload>(notification.payload()) {
                        Ok(payload) => {
                            if let Some(kind) = EventKind::parse(&payload.kind) {
                                let event = RegistryEvent {
                                    event_id: payload.event_id,
                                    episode_id: payload.episode_id,
                                    kind,
                                };
                                // No receiver is fine: nobody is watching right now.
                                let _ = forward.send(HubMessage::Event(event));
                            }
                        }
                        Err(error) => tracing::warn!(%error, "ignoring malformed registry event"),
                    },
                    Err(error) => {
                        // PgListener reconnects on the next recv; events in the gap are lost.
                        tracing::warn!(%error, "registry event listener failed; reconnecting");
                        let _ = forward.send(HubMessage::Resync);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(EventHub { sender, task })
    }

    /// A new receiver of every message from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubMessage> {
        self.sender.subscribe()
    }
}

impl Drop for EventHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}
