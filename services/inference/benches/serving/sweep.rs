//! Latency against offered load: batch-1 Predict calls sent open loop (on a clock, whatever the
//! answers) at each offered rate, to our service and to the Python server in turn.
//!
//! Latency counts from the moment a request was due, not from when it was sent, so a client or
//! server that falls behind shows it (no coordinated omission). At most `MAX_IN_FLIGHT` calls are
//! outstanding; a call due while that many wait is not sent and is counted as such: the offered
//! load was then more than the system under test (or this load generator, which clones and
//! encodes a 2.9 MB request per call on the same cores) could take.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::inputs::Inputs;
use crate::remote::Remote;
use crate::report::System;
use crate::stats::percentile;

/// Calls outstanding at once, at most.
const MAX_IN_FLIGHT: usize = 256;

/// One system at one offered rate.
pub struct Point {
    pub system: System,
    pub offered_per_s: f64,
    pub due: usize,
    pub answered: usize,
    pub refused: usize,
    pub not_sent: usize,
    pub achieved_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Point {
    pub fn to_json(&self) -> Value {
        json!({
            "system": self.system.key(),
            "label": self.system.label(),
            "offered_per_s": self.offered_per_s,
            "due": self.due,
            "answered": self.answered,
            "refused": self.refused,
            "not_sent": self.not_sent,
            "achieved_per_s": self.achieved_per_s,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        })
    }
}

/// `rate` calls per second for `window`, open loop; waits for every answer before returning.
pub async fn offer(
    remote: &Remote,
    inputs: &Arc<Inputs>,
    system: System,
    rate: f64,
    window: Duration,
) -> Point {
    let due = ((rate * window.as_secs_f64()).round() as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut not_sent = 0;
    let started = Instant::now();
    for index in 0..due {
        let due_at = started + interval.mul_f64(index as f64);
        tokio::time::sleep_until(due_at.into()).await;
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            not_sent += 1;
            continue;
        };
        let (remote, inputs) = (remote.clone(), Arc::clone(inputs));
        tasks.spawn(async move {
            let answered = remote.answer(inputs.requests[index % inputs.len()].clone()).await;
            drop(permit);
            answered.then(|| due_at.elapsed().as_secs_f64() * 1e3)
        });
    }
    let (mut latencies_ms, mut refused) = (Vec::with_capacity(due), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("a call task") {
            Some(latency) => latencies_ms.push(latency),
            None => refused += 1,
        }
    }
    let wall = started.elapsed().as_secs_f64();
    Point {
        system,
        offered_per_s: rate,
        due,
        answered: latencies_ms.len(),
        refused,
        not_sent,
        achieved_per_s: latencies_ms.len() as f64 / wall.max(1e-9),
        p50_ms: percentile(&latencies_ms, 0.50),
        p99_ms: percentile(&latencies_ms, 0.99),
    }
}

/// Prints the sweep as a table.
pub fn print(points: &[Point], window: Duration) {
    println!(
        "\nLatency against offered load (batch 1, open loop, {:.0} s per rate, at most {MAX_IN_FLIGHT} in flight):",
        window.as_secs_f64()
    );
    println!("| system | offered/s | answered | refused | not sent | achieved/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for point in points {
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.1} | {:.2} | {:.2} |",
            point.system.label(),
            point.offered_per_s,
            point.answered,
            point.refused,
            point.not_sent,
            point.achieved_per_s,
            point.p50_ms,
            point.p99_ms
        );
    }
}

/// The sweep's part of the results file.
pub fn to_json(points: &[Point], window: Duration) -> Value {
    json!({
        "window_s": window.as_secs_f64(),
        "max_in_flight": MAX_IN_FLIGHT,
        "latency_from": "the time each request was due (open loop)",
        "points": points.iter().map(Point::to_json).collect::<Vec<_>>(),
    })
}
