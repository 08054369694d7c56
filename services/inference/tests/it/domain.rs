//! Domain tests on a real ONNX Runtime (run scripts/setup-onnxruntime.sh first).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tfesi_inference::config::{BatchConfig, ProviderKind};
use tfesi_inference::manager::{PredictRequest, RegisterHeader, Role};
use tfesi_inference::model::LoadedModel;
use tfesi_inference::repository::{Repository, sha256_hex};
use tfesi_inference::{Error, ModelManager};

use crate::support::{self, key, row};

fn request(rows: Vec<tfesi_inference::model::PredictInput>) -> PredictRequest {
    PredictRequest { rows, model: None, skip_shadow: false }
}

async fn probability(manager: &ModelManager, seed: u64) -> f32 {
    let outcome = manager.predict(&request(vec![row(seed)]), None).await.expect("predict");
    outcome[0].prediction.probability
}

#[tokio::test]
async fn bundled_model_reproduces_the_training_framework_outputs() {
    let dir = support::repository_with(&["1"]);
    let manager = ModelManager::open(support::config(dir.path(), support::solo())).await.expect("open");
    let champion = manager.champion().expect("champion live");
    let report = champion.self_test();
    assert!(report.passed, "{report:?}");
    assert_eq!(report.vectors, 3);
    assert!(report.max_abs_error <= report.tolerance, "{report:?}");
    assert_eq!(champion.provider().kind, ProviderKind::Cpu);
    assert!(champion.provider().fallback_reason.is_none());
    let (serving, detail) = manager.health();
    assert!(serving, "{detail}");
    assert!(detail.contains("cpu"), "{detail}");
}

#[tokio::test]
async fn batched_rows_are_bit_identical_to_solo_runs() {
    let solo_dir = support::repository_with(&["1"]);
    let solo =
        ModelManager::open(support::config(solo_dir.path(), support::solo())).await.expect("open solo");
    let batch_dir = support::repository_with(&["1"]);
    let batched = ModelManager::open(support::config(batch_dir.path(), support::gathering()))
        .await
        .expect("open batched");

    let rows: Vec<_> = (0..8).map(row).collect();
    let outcomes = batched.predict(&request(rows.clone()), None).await.expect("batched predict");
    assert!(outcomes.iter().any(|outcome| outcome.prediction.batch_size > 1), "no batch formed");
    for (seed, outcome) in (0..8).zip(&outcomes) {
        let alone = solo.predict(&request(vec![rows[seed as usize].clone()]), None).await.expect("solo");
        assert_eq!(alone[0].prediction.batch_size, 1);
        assert_eq!(
            outcome.prediction.probability.to_bits(),
            alone[0].prediction.probability.to_bits(),
            "row {seed} differs between batch of {} and a solo run",
            outcome.prediction.batch_size
        );
    }
    let distinct: std::collections::BTreeSet<u32> =
        outcomes.iter().map(|o| o.prediction.probability.to_bits()).collect();
    assert!(distinct.len() > 1, "every row got the same output");
}

#[tokio::test]
async fn invalid_request_never_disturbs_a_good_one_beside_it() {
    let dir = support::repository_with(&["1"]);
    let manager = ModelManager::open(support::config(dir.path(), support::gathering())).await.expect("open");
    let expected = {
        let solo_dir = support::repository_with(&["1"]);
        let solo =
            ModelManager::open(support::config(solo_dir.path(), support::solo())).await.expect("open solo");
        probability(&solo, 42).await
    };
    let mut bad = row(7);
    Arc::make_mut(&mut bad.image)[1234] = f32::NAN;
    let good_request = request(vec![row(42)]);
    let bad_request = request(vec![row(1), bad]);
    let (good_result, bad_result) =
        tokio::join!(manager.predict(&good_request, None), manager.predict(&bad_request, None));
    let good = good_result.expect("good request");
    assert_eq!(good[0].prediction.probability.to_bits(), expected.to_bits());
    match bad_result {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "rows[1].image.data"),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_rows_are_refused_naming_the_field() {
    let dir = support::repository_with(&["1"]);
    let manager = ModelManager::open(support::config(dir.path(), support::solo())).await.expect("open");
    let mut cases = Vec::new();
    let mut wrong_shape = row(1);
    wrong_shape.image_shape = vec![8, 256, 256];
    cases.push((wrong_shape, "rows[0].image.shape"));
    let mut wrong_spec = row(1);
    wrong_spec.spec_version = "t2sag-v0".to_owned();
    cases.push((wrong_spec, "rows[0].spec_version"));
    let mut missing = row(1);
    missing.clinical.retain(|(name, _)| name != "age_years");
    cases.push((missing, "rows[0].clinical[age_years]"));
    let mut unknown = row(1);
    unknown.clinical.push(("shoe_size".to_owned(), 1.0));
    cases.push((unknown, "rows[0].clinical[shoe_size]"));
    let mut infinite = row(1);
    infinite.clinical[0].1 = f32::INFINITY;
    cases.push((infinite, "rows[0].clinical[baseline_leg_nrs]"));
    let mut short = row(1);
    Arc::make_mut(&mut short.image).pop();
    cases.push((short, "rows[0].image.data"));
    for (input, expected_field) in cases {
        match manager.predict(&request(vec![input]), None).await {
            Err(Error::InvalidArgument { field, reason }) => assert_eq!(field, expected_field, "{reason}"),
            other => panic!("{expected_field}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn full_queue_answers_resource_exhausted_and_recovers() {
    let dir = support::repository_with(&["1"]);
    let mut config = support::config(
        dir.path(),
        BatchConfig { max_batch_size: 1, max_delay_us: 0, queue_capacity: 2, max_queue_wait_ms: 0 },
    );
    config.runtime.sessions_per_model = 1;
    let manager = ModelManager::open(config).await.expect("open");
    let input = row(3);
    let one = request(vec![input.clone()]);
    // The burst races the session's thread, which drains the queue while the calls are polled
    // (each copies a 2.9 MB row first): 40 calls once left the 2-slot queue never full in CI.
    const CALLS: usize = 400;
    let calls = (0..CALLS).map(|_| manager.predict(&one, None));
    let results = futures::future::join_all(calls).await;
    let full = results.iter().filter(|result| matches!(result, Err(Error::QueueFull { .. }))).count();
    let ok = results.iter().filter(|result| result.is_ok()).count();
    assert!(full > 0, "no request was refused");
    assert_eq!(full + ok, CALLS, "only successes and RESOURCE_EXHAUSTED expected");
    assert!(manager.champion().expect("champion").metrics().queue_full >= full as u64);
    manager.predict(&request(vec![input]), None).await.expect("serves again after the burst");
}

#[tokio::test]
async fn queued_work_over_the_limit_is_refused_at_once_and_what_is_admitted_starts_in_time() {
    let dir = support::repository_with(&["1"]);
    let limit_ms = 20;
    let batching =
        BatchConfig { max_batch_size: 1, max_delay_us: 0, queue_capacity: 4096, max_queue_wait_ms: limit_ms };
    let mut config = support::config(dir.path(), batching);
    config.runtime.sessions_per_model = 1;
    let manager = ModelManager::open(config).await.expect("open");
    // A few rows run first, so the batcher has measured what a row costs.
    for seed in 0..5 {
        manager.predict(&request(vec![row(seed)]), None).await.expect("warm-up");
    }
    let requests: Vec<_> = (0..2_000).map(|seed| request(vec![row(seed)])).collect();
    let flood = requests.iter().map(|each| async {
        let started = Instant::now();
        let result = manager.predict(each, None).await;
        (result, started.elapsed())
    });
    let results = futures::future::join_all(flood).await;
    let refused: Vec<Duration> = results
        .iter()
        .filter(|(result, _)| matches!(result, Err(Error::Overloaded { limit_ms: 20, .. })))
        .map(|(_, took)| *took)
        .collect();
    let admitted = results.iter().filter(|(result, _)| result.is_ok()).count();
    assert!(!refused.is_empty(), "2,000 rows at once were all admitted under a {limit_ms} ms limit");
    assert!(admitted >= 5, "too few admitted: {admitted}");
    assert_eq!(refused.len() + admitted, results.len(), "only outputs and Overloaded expected");
    // The refusal is decided before queueing: it never waits for the work ahead of it.
    let slowest_refusal = refused.iter().max().copied().unwrap_or_default();
    assert!(slowest_refusal < Duration::from_secs(1), "a refusal took {slowest_refusal:?}");
    let status = tonic::Status::from(Error::Overloaded { model: "m/1".to_owned(), queued_ms: 30, limit_ms });
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("retry with backoff"), "{}", status.message());
    manager.predict(&request(vec![row(7)]), None).await.expect("serves again after the flood");
}

#[tokio::test]
async fn batch_buffers_are_kept_while_batches_run_and_freed_after_a_second_idle() {
    let dir = support::repository_with(&["1"]);
    let batching =
        BatchConfig { max_batch_size: 8, max_delay_us: 20_000, queue_capacity: 64, max_queue_wait_ms: 0 };
    let mut config = support::config(dir.path(), batching);
    config.runtime.sessions_per_model = 1;
    let manager = ModelManager::open(config).await.expect("open");
    let champion = manager.champion().expect("champion");
    // Rows sent together, and often enough that the batcher waits for company: some batches
    // hold several requests, and those are concatenated into a kept buffer.
    let requests: Vec<_> = (0..32).map(|seed| request(vec![row(seed)])).collect();
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let outputs =
            futures::future::join_all(requests.iter().map(|each| manager.predict(each, None))).await;
        let bits: Vec<u32> = outputs
            .into_iter()
            .map(|output| output.expect("every row is answered")[0].prediction.probability.to_bits())
            .collect();
        rounds.push(bits);
    }
    // Later rounds run in the kept buffer, refilled: each caller still gets its own row's answer.
    assert_eq!(rounds[0], rounds[1]);
    assert_eq!(rounds[0], rounds[2]);
    let busy = champion.metrics();
    assert!(busy.batches < busy.rows, "no batch held several rows: {busy:?}");
    let row_bytes = (11 * 256 * 256 * 4) as u64;
    assert!(busy.batch_buffer_bytes >= 2 * row_bytes, "no batch buffer after batches: {busy:?}");
    // Freed one second after the last batch; a loaded CI machine may take longer to get there.
    let idle_since = Instant::now();
    while champion.metrics().batch_buffer_bytes > 0 && idle_since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let freed_after = idle_since.elapsed();
    assert_eq!(champion.metrics().batch_buffer_bytes, 0, "the kept buffer was not freed after 10 s idle");
    assert!(
        freed_after >= Duration::from_millis(500),
        "freed after {freed_after:?}, well before a second of idling"
    );
    manager.predict(&request(vec![row(1)]), None).await.expect("serves after the buffers were freed");
}

#[tokio::test]
async fn sessions_warmed_up_at_every_batch_size_answer_as_cold_ones_do() {
    let cold_dir = support::repository_with(&["1"]);
    let cold =
        ModelManager::open(support::config(cold_dir.path(), support::gathering())).await.expect("open cold");
    assert_eq!(cold.champion().expect("champion").warm_up(), None, "warm-up is off by default");
    let warm_dir = support::repository_with(&["1"]);
    let mut config = support::config(warm_dir.path(), support::gathering());
    config.runtime.warm_up_batch_sizes = true;
    config.runtime.sessions_per_model = 2;
    let warm = ModelManager::open(config).await.expect("open warmed up");
    let champion = warm.champion().expect("champion");
    assert!(champion.warm_up().is_some(), "the warm-up did not run");
    // The warm-up ran outside the batcher: it is not counted as served work.
    assert_eq!(champion.metrics().rows, 0);
    let rows: Vec<_> = (0..4).map(row).collect();
    let warm_answers = warm.predict(&request(rows.clone()), None).await.expect("warm predict");
    let cold_answers = cold.predict(&request(rows), None).await.expect("cold predict");
    for (seed, (warm, cold)) in warm_answers.iter().zip(&cold_answers).enumerate() {
        assert_eq!(
            warm.prediction.probability.to_bits(),
            cold.prediction.probability.to_bits(),
            "row {seed}: a warm-up batch of zeros changed what the session answers"
        );
    }
}

#[tokio::test]
async fn expired_deadline_is_not_run() {
    let dir = support::repository_with(&["1"]);
    let manager = ModelManager::open(support::config(dir.path(), support::solo())).await.expect("open");
    let champion = manager.champion().expect("champion");
    let before = champion.metrics();
    let past = Instant::now().checked_sub(Duration::from_millis(1));
    let result = manager.predict(&request(vec![row(1)]), past).await;
    assert!(matches!(result, Err(Error::DeadlineExceeded)), "{result:?}");
    let after = champion.metrics();
    assert_eq!(after.rows, before.rows, "an expired request was run");
    assert_eq!(after.deadline_expired, before.deadline_expired + 1);

    // A deadline that passes while the request waits behind others: answered in time, not run late.
    let started = Instant::now();
    let deadline = Some(started + Duration::from_millis(30));
    let requests: Vec<_> = (0..60).map(|seed| request(vec![row(seed)])).collect();
    let flood = requests.iter().map(|each| manager.predict(each, deadline));
    let results = futures::future::join_all(flood).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    for result in &results {
        assert!(
            matches!(result, Ok(_) | Err(Error::DeadlineExceeded | Error::QueueFull { .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn promote_shadow_and_rollback_under_load_fail_no_request_and_survive_a_restart() {
    let dir = support::repository_with(&["1"]);
    let manager = ModelManager::open(support::config(dir.path(), support::gathering())).await.expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let mut loaders = Vec::new();
    for worker in 0..4u64 {
        let (manager, stop, failures, successes) =
            (Arc::clone(&manager), Arc::clone(&stop), Arc::clone(&failures), Arc::clone(&successes));
        loaders.push(tokio::spawn(async move {
            let input = row(worker);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match manager.predict(&request(vec![input.clone()]), None).await {
                    Ok(outcome) => {
                        successes.fetch_add(1, Ordering::Relaxed);
                        seen.insert(outcome[0].prediction.model.version.clone());
                    }
                    Err(error) => {
                        eprintln!("request failed: {error}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        }));
    }
    let v2 = support::source_dir("2");
    let onnx = std::fs::read(v2.join("model.onnx")).expect("onnx");
    let header = RegisterHeader {
        key: key("2"),
        card_json: std::fs::read_to_string(v2.join("model.json")).expect("card"),
        sha256: sha256_hex(&onnx),
        size_bytes: onnx.len() as u64,
        set_as_shadow: false,
        registered_by: "test".to_owned(),
    };
    let registered = manager.register(header, onnx).await.expect("register v2");
    assert!(registered.created && registered.self_test.passed);
    tokio::time::sleep(Duration::from_millis(100)).await;

    manager.set_shadow(Some(&key("2"))).await.expect("shadow v2");
    let with_shadow = manager.predict(&request(vec![row(9)]), None).await.expect("predict");
    let shadow = with_shadow[0].shadow.as_ref().expect("shadow ran");
    assert_eq!((shadow.model.version.as_str(), shadow.role), ("2", Role::Shadow));
    assert_eq!(with_shadow[0].prediction.model.version, "1", "the shadow must never answer");
    assert_ne!(shadow.probability.to_bits(), with_shadow[0].prediction.probability.to_bits());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (previous, state) = manager.promote(&key("2"), Some(&key("1"))).await.expect("promote v2");
    assert_eq!(previous, Some(key("1")));
    assert_eq!(state.shadow, None, "promoting the shadow empties the shadow slot");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(manager.promote(&key("1"), Some(&key("1"))).await, Err(Error::Aborted(_))));

    manager.set_shadow(Some(&key("1"))).await.expect("old champion as shadow");
    assert!(matches!(manager.set_shadow(Some(&key("2"))).await, Err(Error::FailedPrecondition(_))));
    let (now, rolled_back) = manager.rollback(Some(&key("2"))).await.expect("rollback");
    assert_eq!((now, rolled_back), (key("1"), key("2")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        matches!(manager.rollback(None).await, Err(Error::FailedPrecondition(_))),
        "nothing left to roll back to"
    );
    manager.set_shadow(Some(&key("2"))).await.expect("v2 as shadow again");

    stop.store(true, Ordering::Relaxed);
    let mut versions_seen = std::collections::BTreeSet::new();
    for loader in loaders {
        versions_seen.extend(loader.await.expect("loader"));
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during model changes");
    assert!(successes.load(Ordering::Relaxed) > 20);
    assert_eq!(versions_seen.into_iter().collect::<Vec<_>>(), vec!["1".to_owned(), "2".to_owned()]);

    let state = manager.state().await;
    drop(manager);
    let reopened = ModelManager::open(support::config(dir.path(), support::solo())).await.expect("reopen");
    assert_eq!(reopened.state().await, state);
    assert_eq!(reopened.champion().expect("champion").key(), key("1"));
    assert_eq!(reopened.shadow().expect("shadow").key(), key("2"));
}

fn header_for(card_json: String, onnx: &[u8]) -> RegisterHeader {
    RegisterHeader {
        key: key("2"),
        card_json,
        sha256: sha256_hex(onnx),
        size_bytes: onnx.len() as u64,
        set_as_shadow: false,
        registered_by: "test".to_owned(),
    }
}

#[tokio::test]
async fn corrupt_or_mismatched_models_are_refused_while_the_champion_serves() {
    let dir = support::repository_with(&["1"]);
    let manager = ModelManager::open(support::config(dir.path(), support::solo())).await.expect("open");
    let before = probability(&manager, 5).await;
    let v2 = support::source_dir("2");
    let onnx = std::fs::read(v2.join("model.onnx")).expect("onnx");
    let card_json = std::fs::read_to_string(v2.join("model.json")).expect("card");
    let mut card: serde_json::Value = serde_json::from_str(&card_json).expect("json");

    // Bytes damaged in transit: the declared checksum does not match.
    let mut damaged = onnx.clone();
    damaged[200] ^= 0x55;
    let mut header = header_for(card_json.clone(), &onnx);
    let result = manager.register(header.clone(), damaged.clone()).await;
    assert!(matches!(result, Err(Error::DataLoss(_))), "{result:?}");

    // Damaged bytes declared as such: the card's checksum does not match.
    header.sha256 = sha256_hex(&damaged);
    let result = manager.register(header, damaged).await;
    assert!(
        matches!(&result, Err(Error::InvalidArgument { field, .. }) if field == "header.card_json"),
        "{result:?}"
    );

    // Not an ONNX file at all, with a card that claims it.
    let garbage = b"definitely not onnx".to_vec();
    card["model_sha256"] = serde_json::Value::String(sha256_hex(&garbage));
    let result = manager.register(header_for(card.to_string(), &garbage), garbage).await;
    assert!(matches!(&result, Err(Error::InvalidArgument { field, .. }) if field == "model"), "{result:?}");

    // A loadable model whose outputs differ from its card's self-test vectors.
    card["model_sha256"] = serde_json::Value::String(sha256_hex(&onnx));
    card["self_test"]["vectors"][0]["expected"][0] = serde_json::json!(0.123);
    let result = manager.register(header_for(card.to_string(), &onnx), onnx.clone()).await;
    assert!(
        matches!(&result, Err(Error::SelfTestFailed { reason, .. }) if reason.contains("one_row")),
        "{result:?}"
    );

    // A card naming other inputs than the graph has.
    card["self_test"]["vectors"][0]["expected"][0] = serde_json::json!(0.5);
    card["inputs"][1]["shape"] = serde_json::json!([null, 7]);
    card["clinical_features"].as_array_mut().expect("features").pop();
    let result = manager.register(header_for(card.to_string(), &onnx), onnx.clone()).await;
    assert!(result.is_err(), "a card that disagrees with the graph must be refused");

    assert!(!manager.repository().contains("tfesi-test", "2"), "nothing refused may be stored");
    assert_eq!(manager.champion().expect("champion").key(), key("1"));
    assert_eq!(probability(&manager, 5).await.to_bits(), before.to_bits());

    // The genuine model registers; again with the same bytes is idempotent, other bytes conflict.
    let first = manager.register(header_for(card_json.clone(), &onnx), onnx.clone()).await.expect("register");
    assert!(first.created);
    let again =
        manager.register(header_for(card_json.clone(), &onnx), onnx.clone()).await.expect("idempotent");
    assert!(!again.created);
    let v1_onnx = std::fs::read(support::source_dir("1").join("model.onnx")).expect("v1");
    let mut other: serde_json::Value = serde_json::from_str(&card_json).expect("json");
    other["model_sha256"] = serde_json::Value::String(sha256_hex(&v1_onnx));
    let conflict = manager.register(header_for(other.to_string(), &v1_onnx), v1_onnx).await;
    assert!(matches!(conflict, Err(Error::AlreadyExists { .. })), "{conflict:?}");
}

#[tokio::test]
async fn champion_corrupted_on_disk_gives_way_to_the_previous_one_at_start() {
    let dir = support::repository_with(&["1", "2"]);
    let repository = Repository::open(dir.path()).expect("repo");
    repository
        .save_state(&tfesi_inference::repository::DeploymentState {
            champion: Some(key("2")),
            shadow: None,
            history: vec![key("1")],
        })
        .expect("state");
    let onnx_path = dir.path().join("tfesi-test/2/model.onnx");
    let mut bytes = std::fs::read(&onnx_path).expect("read");
    bytes[300] ^= 0xff;
    std::fs::write(&onnx_path, bytes).expect("write");
    let manager = ModelManager::open(support::config(dir.path(), support::solo())).await.expect("open");
    assert_eq!(manager.champion().expect("a champion serves").key(), key("1"));
    assert!(matches!(manager.promote(&key("2"), None).await, Err(Error::FailedPrecondition(_))));
    assert_eq!(manager.champion().expect("still serving").key(), key("1"));
}

#[tokio::test]
async fn cuda_without_a_gpu_is_a_clear_error_or_a_reported_fallback() {
    let runtime = tfesi_inference::runtime::init(None).expect("runtime");
    let repository = Repository::open(support::source_dir("1").join("../..")).expect("repo");
    let stored = repository.read("tfesi-test", "1").expect("model");
    let mut config = support::config(std::path::Path::new("."), support::solo()).runtime;
    config.provider = ProviderKind::Cuda;
    config.sessions_per_model = 1;

    config.allow_cpu_fallback = false;
    match LoadedModel::load(&runtime, &config, support::solo(), stored.clone()) {
        Err(Error::ProviderUnavailable { requested, chain }) => {
            assert_eq!(requested, "cuda");
            assert!(!chain.is_empty());
            eprintln!("cuda refused as expected: {chain}");
        }
        Ok(model) if model.provider().kind == ProviderKind::Cuda => {
            eprintln!("a GPU is present: cuda in use")
        }
        other => panic!("expected a clear provider error, got {other:?}"),
    }

    config.allow_cpu_fallback = true;
    let model = LoadedModel::load(&runtime, &config, support::solo(), stored).expect("fallback loads");
    if model.provider().kind == ProviderKind::Cpu {
        let reason = model.provider().fallback_reason.clone().expect("the fallback is reported");
        assert!(!reason.is_empty());
        assert!(model.provider().to_string().starts_with("cpu (fallback: "), "{}", model.provider());
    }
}
