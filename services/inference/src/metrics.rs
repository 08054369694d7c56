//! Counters of one loaded model, labelled by model, version and the provider in use.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters updated by the batcher (relaxed atomics: they are statistics).
#[derive(Debug, Default)]
pub struct ModelMetrics {
    /// Requests answered with outputs.
    pub requests_ok: AtomicU64,
    /// Requests answered with an inference error.
    pub requests_failed: AtomicU64,
    /// Requests refused at admission: the queue was full or held more work than the limit.
    pub queue_full: AtomicU64,
    /// Requests not run because their deadline had passed.
    pub deadline_expired: AtomicU64,
    /// Requests dropped because their caller had gone.
    pub cancelled: AtomicU64,
    /// Batches run.
    pub batches: AtomicU64,
    /// Rows run (sum of batch sizes).
    pub rows: AtomicU64,
    /// Requests waiting in the queue right now.
    pub queued: AtomicU64,
    /// Bytes of batch buffers, in use or kept for the next batch (freed after a second idle).
    pub batch_buffer_bytes: AtomicU64,
}

/// A point-in-time copy of [`ModelMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`ModelMetrics::requests_ok`].
    pub requests_ok: u64,
    /// See [`ModelMetrics::requests_failed`].
    pub requests_failed: u64,
    /// See [`ModelMetrics::queue_full`].
    pub queue_full: u64,
    /// See [`ModelMetrics::deadline_expired`].
    pub deadline_expired: u64,
    /// See [`ModelMetrics::cancelled`].
    pub cancelled: u64,
    /// See [`ModelMetrics::batches`].
    pub batches: u64,
    /// See [`ModelMetrics::rows`].
    pub rows: u64,
    /// See [`ModelMetrics::queued`].
    pub queued: u64,
    /// See [`ModelMetrics::batch_buffer_bytes`].
    pub batch_buffer_bytes: u64,
}

impl ModelMetrics {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests_ok: self.requests_ok.load(Ordering::Relaxed),
            requests_failed: self.requests_failed.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            deadline_expired: self.deadline_expired.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            batch_buffer_bytes: self.batch_buffer_bytes.load(Ordering::Relaxed),
        }
    }
}
