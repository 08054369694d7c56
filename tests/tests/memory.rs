//! Memory growth (RELIABILITY.md): the real `tfesi-inference` serves many predictions with mixed
//! batch sizes (1 to 8 rows, concurrent callers, so the server's batching mixes them too), and
//! its resident set (VmRSS of the process) must not keep growing: growth over the last two
//! thirds of the run under 50 MB.
//!
//! `TFESI_MEMORY_ROWS` sets the number of rows predicted (default 10,000, the promise's count;
//! about a minute here): `cargo nextest run --workspace -E 'binary(memory)' --no-capture`.

use std::time::{Duration, Instant};

use tfesi_e2e::inference::{Inference, clinical_features, predict_request, row};
use tfesi_proto::inference::v1 as pb;

const CALLERS: usize = 4;
const LIMIT_MB: f64 = 50.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_flat_over_many_mixed_batches() {
    let rows: usize = std::env::var("TFESI_MEMORY_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let inference = Inference::start(&[]).await;

    let clinical = clinical_features();
    // The same few rows are reused: the client's own memory stays out of the picture.
    let templates: std::sync::Arc<Vec<pb::PredictRow>> =
        std::sync::Arc::new((0..5).map(|seed| row(seed, &clinical)).collect());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut samples: Vec<(usize, f64)> = vec![(0, inference.rss_mb())];
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let mut client = inference.client();
        let (templates, done, token) = (templates.clone(), done.clone(), inference.token.clone());
        callers.spawn(async move {
            let mut batch = caller;
            while done.load(std::sync::atomic::Ordering::Relaxed) < rows {
                // 1 to 5 rows: 5 rows of 11x256x256 float32 are 14.4 MB, under the 16 MiB message limit.
                let size = 1 + batch % 5;
                batch += CALLERS;
                let request = predict_request(&token, templates[..size].to_vec());
                let answer = client.predict(request).await.expect("predict");
                assert_eq!(answer.into_inner().results.len(), size);
                done.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let mut next_sample = rows / 30;
    while !callers.is_empty() {
        tokio::select! {
            joined = callers.join_next() => {
                if let Some(Err(error)) = joined {
                    panic!("a caller failed: {error}; inference log:\n{}", inference.process.log());
                }
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let predicted = done.load(std::sync::atomic::Ordering::Relaxed);
        if predicted >= next_sample {
            samples.push((predicted, inference.rss_mb()));
            next_sample += rows / 30;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "too slow: {predicted} rows in 10 minutes");
    }
    samples.push((done.load(std::sync::atomic::Ordering::Relaxed), inference.rss_mb()));
    let third =
        samples.iter().find(|(predicted, _)| *predicted >= rows / 3).expect("a sample at one third").1;
    let last = samples.last().expect("samples").1;
    let peak = samples.iter().map(|(_, mb)| *mb).fold(0.0, f64::max);
    println!(
        "memory: {rows} rows in {:.1} s; RSS at start {:.1} MB, at one third {third:.1} MB, at the end {last:.1} MB, \
         peak {peak:.1} MB; growth over the last two thirds {:.1} MB (limit {LIMIT_MB} MB)",
        started.elapsed().as_secs_f64(),
        samples[0].1,
        last - third
    );
    assert!(last - third < LIMIT_MB, "RSS grew {:.1} MB over the last two thirds: {samples:?}", last - third);
}
