//! Process shutdown: a cloneable signal that SIGTERM, SIGINT or a test can trigger.

use tokio::sync::watch;

/// Fires the [`Shutdown`] signals made from it. Dropping it fires them too, so a forgotten
/// trigger cannot leave servers running forever.
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

impl ShutdownTrigger {
    /// Asks every holder of the matching [`Shutdown`] to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.sender.send_replace(true);
    }
}

/// A signal that resolves once shutdown was requested.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// A new signal and the trigger that fires it.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownTrigger { sender }, Shutdown { receiver })
    }

    /// Whether shutdown was already requested.
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves when shutdown is requested (at once if it already was).
    pub async fn wait(self) {
        let mut receiver = self.receiver;
        // An error means the trigger is gone, which also means stop.
        let _ = receiver.wait_for(|requested| *requested).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut terminate), Ok(mut interrupt)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_resolves_after_trigger_and_for_late_waiters() {
        let (trigger, shutdown) = Shutdown::new();
        let early = tokio::spawn(shutdown.clone().wait());
        assert!(!shutdown.is_requested());
        trigger.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(1), early)
            .await
            .expect("early waiter resolves")
            .expect("task ran");
        tokio::time::timeout(std::time::Duration::from_secs(1), shutdown.wait())
            .await
            .expect("late waiter resolves at once");
    }

    #[tokio::test]
    async fn dropping_the_trigger_requests_shutdown() {
        let (trigger, shutdown) = Shutdown::new();
        drop(trigger);
        tokio::time::timeout(std::time::Duration::from_secs(1), shutdown.wait())
            .await
            .expect("resolves when the trigger is dropped");
    }
}
