//! Tests through a real tonic client against `run` on an ephemeral loopback port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tfesi_inference::Config;
use tfesi_inference::config::{BatchConfig, ProviderKind};
use tfesi_inference::repository::sha256_hex;
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as pb;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{self, FEATURES};

struct App {
    address: std::net::SocketAddr,
    client: InferenceClient<Channel>,
    channel: Channel,
    trigger: Option<tfesi_platform::ShutdownTrigger>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl App {
    async fn stop(mut self) {
        if let Some(trigger) = self.trigger.take() {
            trigger.trigger();
        }
        if let Some(task) = self.task.take() {
            let finished = tokio::time::timeout(Duration::from_secs(10), task).await;
            finished.expect("server stops").expect("server task").expect("server ran");
        }
    }

    async fn channel_to_same_server(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    async fn health(&self) -> ServingStatus {
        let mut health = HealthClient::new(self.channel.clone());
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let response = health.check(request).await.expect("health");
        ServingStatus::try_from(response.into_inner().status).expect("status")
    }
}

async fn spawn_app(mut config: Config) -> App {
    config.server.drain_timeout_ms = 2_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (trigger, shutdown) = tfesi_platform::Shutdown::new();
    let task = tokio::spawn(tfesi_inference::run(config, listener, shutdown));
    let endpoint = Channel::from_shared(format!("http://{address}")).expect("uri");
    let started = Instant::now();
    let channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(error) if started.elapsed() < Duration::from_secs(20) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("server did not come up: {error}"),
        }
    };
    let client = InferenceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    App { address, client, channel, trigger: Some(trigger), task: Some(task) }
}

fn tensor(values: &[f32]) -> common::Tensor {
    common::Tensor {
        shape: support::DIMS.iter().map(|dim| u32::try_from(*dim).expect("dim")).collect(),
        dtype: common::DType::Float32.into(),
        data: values.iter().flat_map(|value| value.to_le_bytes()).collect(),
    }
}

fn pb_row(row_id: &str, seed: u64) -> pb::PredictRow {
    let input = support::row(seed);
    pb::PredictRow {
        row_id: row_id.to_owned(),
        image: Some(tensor(&input.image)),
        clinical: input
            .clinical
            .iter()
            .map(|(name, value)| common::ClinicalFeature { name: name.clone(), value: *value })
            .collect(),
        spec_version: support::SPEC.to_owned(),
        ..Default::default()
    }
}

fn predict(rows: Vec<pb::PredictRow>) -> pb::PredictRequest {
    pb::PredictRequest { rows, model: None, skip_shadow: false }
}

fn model_ref(version: &str) -> common::ModelRef {
    common::ModelRef { name: "tfesi-test".to_owned(), version: version.to_owned() }
}

fn register_stream(card_json: String, onnx: &[u8], declared_sha: String) -> Vec<pb::RegisterModelRequest> {
    let header = pb::RegisterModelHeader {
        model: Some(model_ref("2")),
        card_json,
        sha256: declared_sha,
        size_bytes: onnx.len() as u64,
        set_as_shadow: false,
    };
    let mut messages =
        vec![pb::RegisterModelRequest { part: Some(pb::register_model_request::Part::Header(header)) }];
    for chunk in onnx.chunks(1000) {
        messages.push(pb::RegisterModelRequest {
            part: Some(pb::register_model_request::Part::Chunk(chunk.to_vec())),
        });
    }
    messages
}

#[tokio::test]
async fn predict_over_grpc_matches_the_training_framework_self_test_outputs() {
    let dir = support::repository_with(&["1"]);
    let app = spawn_app(support::config(dir.path(), support::solo())).await;
    assert_eq!(app.health().await, ServingStatus::Serving);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(support::source_dir("1").join("model.json")).expect("card"))
            .expect("json");
    let vector = &card["self_test"]["vectors"][0];
    let parsed: tfesi_inference::card::SelfTestVector =
        serde_json::from_value(vector.clone()).expect("vector");
    let image = parsed.inputs["image"].materialize().expect("image");
    let clinical = parsed.inputs["clinical"].materialize().expect("clinical");
    let row = pb::PredictRow {
        row_id: "r1".to_owned(),
        image: Some(tensor(&image)),
        clinical: FEATURES
            .iter()
            .zip(&clinical)
            .map(|(name, value)| common::ClinicalFeature { name: (*name).to_owned(), value: *value })
            .collect(),
        spec_version: support::SPEC.to_owned(),
        ..Default::default()
    };
    let mut client = app.client.clone();
    let response = client.predict(predict(vec![row])).await.expect("predict").into_inner();
    let result = &response.results[0];
    assert_eq!(result.row_id, "r1");
    let prediction = result.prediction.as_ref().expect("prediction");
    #[allow(clippy::cast_possible_truncation)]
    let probability = prediction.probability as f32;
    assert_eq!(
        probability.to_bits(),
        parsed.expected[0].to_bits(),
        "got {probability}, onnxruntime in Python gave {}",
        parsed.expected[0]
    );
    assert_eq!(prediction.execution_provider, i32::from(common::ExecutionProvider::Cpu));
    assert_eq!(prediction.role, i32::from(common::ModelRole::Champion));
    assert_eq!(prediction.model, Some(model_ref("1")));
    let expected_label = if prediction.probability >= prediction.threshold {
        common::OutcomeLabel::Good
    } else {
        common::OutcomeLabel::Poor
    };
    assert_eq!(prediction.predicted_label, i32::from(expected_label));
    assert!(result.shadow.is_none() && result.shadow_error.is_empty());

    let mut wrong = pb_row("r2", 1);
    if let Some(image) = wrong.image.as_mut() {
        image.dtype = common::DType::Unspecified.into();
    }
    let status = client.predict(predict(vec![pb_row("ok", 2), wrong])).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("rows[1].image.dtype"), "{}", status.message());
    app.stop().await;
}

#[tokio::test]
async fn register_shadow_promote_and_rollback_over_grpc_under_load_fail_nothing() {
    let dir = support::repository_with(&["1"]);
    let app = spawn_app(support::config(dir.path(), support::gathering())).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let mut loaders = Vec::new();
    for worker in 0..4u64 {
        let (mut client, stop, failures, successes) =
            (app.client.clone(), Arc::clone(&stop), Arc::clone(&failures), Arc::clone(&successes));
        loaders.push(tokio::spawn(async move {
            let request = predict(vec![pb_row("load", worker)]);
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match client.predict(request.clone()).await {
                    Ok(_) => successes.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        eprintln!("request failed: {status}");
                        failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let mut client = app.client.clone();
    let v2 = support::source_dir("2");
    let onnx = std::fs::read(v2.join("model.onnx")).expect("onnx");
    let card_json = std::fs::read_to_string(v2.join("model.json")).expect("card");

    let mut corrupted = onnx.clone();
    corrupted[500] ^= 0x0f;
    let status = client
        .register_model(tokio_stream::iter(register_stream(card_json.clone(), &corrupted, sha256_hex(&onnx))))
        .await
        .expect_err("corrupt");
    assert_eq!(status.code(), Code::DataLoss, "{status}");
    let mut lying: serde_json::Value = serde_json::from_str(&card_json).expect("json");
    lying["self_test"]["vectors"][1]["expected"][2] = serde_json::json!(0.01);
    let status = client
        .register_model(tokio_stream::iter(register_stream(lying.to_string(), &onnx, sha256_hex(&onnx))))
        .await
        .expect_err("self-test");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
    assert!(status.message().contains("three_rows"), "{status}");

    let registered = client
        .register_model(tokio_stream::iter(register_stream(card_json.clone(), &onnx, sha256_hex(&onnx))))
        .await
        .expect("register")
        .into_inner();
    assert!(registered.created && registered.self_test.as_ref().is_some_and(|report| report.passed));
    let again = client
        .register_model(tokio_stream::iter(register_stream(card_json, &onnx, sha256_hex(&onnx))))
        .await
        .expect("again")
        .into_inner();
    assert!(!again.created);

    let shadow = client
        .set_shadow(pb::SetShadowRequest {
            target: Some(pb::set_shadow_request::Target::Model(model_ref("2"))),
            reason: "trial".to_owned(),
        })
        .await
        .expect("shadow")
        .into_inner();
    assert_eq!(shadow.shadow, Some(model_ref("2")));
    let response = client.predict(predict(vec![pb_row("s", 9)])).await.expect("predict").into_inner();
    let result = &response.results[0];
    assert_eq!(result.prediction.as_ref().and_then(|p| p.model.clone()), Some(model_ref("1")));
    assert_eq!(result.shadow.as_ref().map(|p| p.role), Some(i32::from(common::ModelRole::Shadow)));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let status = client
        .promote(pb::PromoteRequest {
            model: Some(model_ref("2")),
            expected_champion: Some(model_ref("2")),
            reason: "go".to_owned(),
        })
        .await
        .expect_err("compare-and-set");
    assert_eq!(status.code(), Code::Aborted);
    let promoted = client
        .promote(pb::PromoteRequest {
            model: Some(model_ref("2")),
            expected_champion: Some(model_ref("1")),
            reason: "go".to_owned(),
        })
        .await
        .expect("promote")
        .into_inner();
    assert_eq!(
        (promoted.champion, promoted.previous_champion, promoted.shadow),
        (Some(model_ref("2")), Some(model_ref("1")), None)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let rolled = client
        .rollback(pb::RollbackRequest {
            expected_champion: Some(model_ref("2")),
            reason: "regression".to_owned(),
        })
        .await
        .expect("rollback")
        .into_inner();
    assert_eq!((rolled.champion, rolled.rolled_back), (Some(model_ref("1")), Some(model_ref("2"))));
    let status = client
        .rollback(pb::RollbackRequest { expected_champion: None, reason: "again".to_owned() })
        .await
        .expect_err("nothing left");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status =
        client.get_model(pb::GetModelRequest { model: Some(model_ref("9")) }).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let listed = client
        .list_models(pb::ListModelsRequest { page: None, name: String::new() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.models.len(), 2);
    assert_eq!(listed.champion, Some(model_ref("1")));
    let first = listed.models[0].card.as_ref().and_then(|card| card.model.clone());
    assert_eq!(first, Some(model_ref("2")), "newest registration first");

    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for loader in loaders {
        loader.await.expect("loader");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during model changes");
    assert!(successes.load(Ordering::Relaxed) > 10);
    app.stop().await;
}

#[tokio::test]
async fn full_queue_is_resource_exhausted_and_expired_deadline_is_deadline_exceeded() {
    let dir = support::repository_with(&["1"]);
    let mut config = support::config(
        dir.path(),
        BatchConfig { max_batch_size: 1, max_delay_us: 0, queue_capacity: 1, max_queue_wait_ms: 0 },
    );
    config.runtime.sessions_per_model = 1;
    let app = spawn_app(config).await;
    let request = predict(vec![pb_row("q", 4)]);
    let burst = predict((0..4).map(|index| pb_row(&format!("b{index}"), index)).collect());
    let calls = (0..24).map(|_| {
        let mut client = app.client.clone();
        let request = burst.clone();
        async move { client.predict(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let exhausted = results
        .iter()
        .filter(|result| matches!(result, Err(status) if status.code() == Code::ResourceExhausted))
        .count();
    let ok = results.iter().filter(|result| result.is_ok()).count();
    assert!(exhausted > 0, "no RESOURCE_EXHAUSTED under a burst");
    assert_eq!(exhausted + ok, 24);

    let mut client = app.client.clone();
    let mut timed = tonic::Request::new(request.clone());
    timed.set_timeout(Duration::from_micros(200));
    let started = Instant::now();
    let status = client.predict(timed).await.expect_err("deadline");
    eprintln!("200 us deadline answered with {status:?}");
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status}");
    assert!(started.elapsed() < Duration::from_millis(250), "answered after {:?}", started.elapsed());
    client.predict(request).await.expect("serves after the burst");
    app.stop().await;
}

#[tokio::test]
async fn health_is_not_serving_without_a_champion_and_serving_after_a_promotion() {
    let dir = support::repository_with(&[]);
    let app = spawn_app(support::config(dir.path(), support::solo())).await;
    assert_eq!(app.health().await, ServingStatus::NotServing);
    let mut client = app.client.clone();
    let status = client.predict(predict(vec![pb_row("x", 1)])).await.expect_err("no champion");
    assert_eq!(status.code(), Code::FailedPrecondition);
    support::copy_version(dir.path(), "2");
    client
        .promote(pb::PromoteRequest {
            model: Some(model_ref("2")),
            expected_champion: None,
            reason: "first".to_owned(),
        })
        .await
        .expect("promote");
    let started = Instant::now();
    while app.health().await != ServingStatus::Serving {
        assert!(started.elapsed() < Duration::from_secs(3), "still NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn cuda_requested_without_a_gpu_is_refused_clearly_over_grpc() {
    let dir = support::repository_with(&["1"]);
    let mut config = support::config(dir.path(), support::solo());
    config.runtime.provider = ProviderKind::Cuda;
    config.runtime.allow_cpu_fallback = false;
    let app = spawn_app(config).await;
    let mut client = app.client.clone();
    let promoted = client
        .promote(pb::PromoteRequest {
            model: Some(model_ref("1")),
            expected_champion: None,
            reason: "gpu".to_owned(),
        })
        .await;
    match promoted {
        Err(status) => {
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert!(status.message().contains("cuda"), "{}", status.message());
            assert_eq!(app.health().await, ServingStatus::NotServing);
        }
        Ok(_) => {
            let response =
                client.predict(predict(vec![pb_row("g", 1)])).await.expect("predict on a GPU").into_inner();
            let provider = response.results[0].prediction.as_ref().map(|p| p.execution_provider);
            assert_eq!(provider, Some(i32::from(common::ExecutionProvider::Cuda)));
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn deadline_passing_in_the_queue_is_answered_within_fifty_milliseconds() {
    let dir = support::repository_with(&["1"]);
    let mut config = support::config(
        dir.path(),
        BatchConfig { max_batch_size: 1, max_delay_us: 0, queue_capacity: 512, max_queue_wait_ms: 0 },
    );
    config.runtime.sessions_per_model = 1;
    let app = spawn_app(config).await;
    // 64 rows queued ahead (about 1 ms each on one session), sent on their own connection.
    let backlog = predict((0..4).map(|index| pb_row(&format!("b{index}"), index)).collect());
    let mut busy_tasks = Vec::new();
    for _ in 0..16 {
        let mut busy = app.client.clone();
        let backlog = backlog.clone();
        busy_tasks.push(tokio::spawn(async move { busy.predict(backlog).await }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let other_connection = app.channel_to_same_server().await;
    let mut client = InferenceClient::new(other_connection);
    let mut timed = tonic::Request::new(predict(vec![pb_row("late", 99)]));
    let deadline = Duration::from_millis(20);
    timed.set_timeout(deadline);
    let started = Instant::now();
    let status = client.predict(timed).await.expect_err("the backlog outlasts the deadline");
    let elapsed = started.elapsed();
    // Our handler answers DEADLINE_EXCEEDED when it sees the deadline pass; the platform's
    // transport timeout (started before the body was decoded) can answer CANCELLED first.
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    assert!(elapsed < deadline + Duration::from_millis(50), "answered after {elapsed:?}");
    for busy_task in busy_tasks {
        busy_task.await.expect("backlog task").expect("the backlog itself succeeds");
    }
    app.stop().await;
}
