//! Memory growth (RELIABILITY.md): the real `tfesi-inference` serves many predictions with mixed
//! batch sizes (1 to 8 rows, concurrent callers, so the server's batching mixes them too), and
//! its resident set (VmRSS of the process) must not keep growing: growth over the last two
//! thirds of the run under 50 MB.
//!
//! `TFESI_MEMORY_ROWS` sets the number of rows predicted (default 3,000 here so CI stays short;
//! the 10,000-row figure of the README comes from `TFESI_MEMORY_ROWS=10000 cargo nextest run
//! --workspace -E 'binary(memory)' --no-capture`).

use std::time::{Duration, Instant};

use tfesi_auth::Role;
use tfesi_e2e::process::ServiceProcess;
use tfesi_e2e::stack::{bundled_models, copy_tree};
use tfesi_e2e::wait_for_health;
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as pb;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tonic_health::pb::health_check_response::ServingStatus;

const SLICES: usize = 11;
const SIDE: usize = 256;
const CALLERS: usize = 4;
const LIMIT_MB: f64 = 50.0;

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

/// The clinical feature names of the bundled model, in card order.
fn clinical_features() -> Vec<String> {
    let card = std::fs::read(bundled_models().join("tfesi-test/1/model.json")).expect("the bundled card");
    let card: serde_json::Value = serde_json::from_slice(&card).expect("card JSON");
    card["clinical_features"]
        .as_array()
        .expect("clinical_features")
        .iter()
        .map(|feature| feature["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn row(seed: usize, clinical: &[String]) -> pb::PredictRow {
    let values = SLICES * SIDE * SIDE;
    let data: Vec<u8> = (0..values)
        .flat_map(|i| ((((i * 7919 + seed * 31) % 1009) as f32) * 0.004 - 2.0).to_le_bytes())
        .collect();
    pb::PredictRow {
        row_id: format!("row-{seed}"),
        image: Some(common::Tensor {
            shape: vec![SLICES as u32, SIDE as u32, SIDE as u32],
            dtype: common::DType::Float32.into(),
            data,
        }),
        clinical: clinical
            .iter()
            .enumerate()
            .map(|(i, name)| common::ClinicalFeature {
                name: name.clone(),
                value: ((seed + i) % 11) as f32 / 10.0,
            })
            .collect(),
        spec_version: "tfesi-prep-v1".to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_flat_over_many_mixed_batches() {
    let rows: usize = std::env::var("TFESI_MEMORY_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(3_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    copy_tree(&bundled_models(), &models);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()))
        .expect("secret");
    let env: Vec<(String, String)> = [
        ("TFESI_INFERENCE__REPOSITORY_DIR", models.display().to_string()),
        ("TFESI_INFERENCE__AUTH__HS256_SECRET_FILE", secret.display().to_string()),
        ("TFESI_INFERENCE__TELEMETRY__LOG_FILTER", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let process = ServiceProcess::start("tfesi-inference", "inference", &env);
    let serving =
        wait_for_health(process.address, "", ServingStatus::Serving, Duration::from_secs(120)).await;
    assert_eq!(serving, Some(ServingStatus::Serving), "inference did not start:\n{}", process.log());
    let token = tfesi_auth::mint_hs256(
        &std::fs::read(&secret).expect("secret"),
        &tfesi_auth::AuthConfig::default(),
        "memory-test",
        &[Role::Service],
        3600,
    )
    .expect("token");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", process.address))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");

    let clinical = clinical_features();
    // The same few rows are reused: the client's own memory stays out of the picture.
    let templates: std::sync::Arc<Vec<pb::PredictRow>> =
        std::sync::Arc::new((0..5).map(|seed| row(seed, &clinical)).collect());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut samples: Vec<(usize, f64)> = vec![(0, rss_mb(process.pid()))];
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let mut client = InferenceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
        let (templates, done, token) = (templates.clone(), done.clone(), token.clone());
        callers.spawn(async move {
            let mut batch = caller;
            while done.load(std::sync::atomic::Ordering::Relaxed) < rows {
                // 1 to 5 rows: 5 rows of 11x256x256 float32 are 14.4 MB, under the 16 MiB message limit.
                let size = 1 + batch % 5;
                batch += CALLERS;
                let mut request = tonic::Request::new(pb::PredictRequest {
                    rows: templates[..size].to_vec(),
                    model: None,
                    skip_shadow: false,
                });
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
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
                    panic!("a caller failed: {error}; inference log:\n{}", process.log());
                }
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let predicted = done.load(std::sync::atomic::Ordering::Relaxed);
        if predicted >= next_sample {
            samples.push((predicted, rss_mb(process.pid())));
            next_sample += rows / 30;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "too slow: {predicted} rows in 10 minutes");
    }
    samples.push((done.load(std::sync::atomic::Ordering::Relaxed), rss_mb(process.pid())));
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
