//! The real `tfesi-inference` binary on its own, with a private copy of the bundled model
//! repository and an HS256 secret, for the tests that load it hard (memory growth, overload).

use std::time::Duration;

use tfesi_auth::Role;
use tfesi_proto::common::v1 as common;
use tfesi_proto::inference::v1 as pb;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::process::ServiceProcess;
use crate::stack::{TEST_MODEL, bundled_models, copy_tree};
use crate::wait_for_health;

/// Slices of the bundled model's image input.
pub const SLICES: usize = 11;
/// Height and width of the bundled model's image input.
pub const SIDE: usize = 256;

/// A running inference service serving the bundled `tfesi-test` model (alone).
pub struct Inference {
    /// The process (killed by PID when dropped).
    pub process: ServiceProcess,
    /// A service-role bearer token for it.
    pub token: String,
    /// A connected channel.
    pub channel: Channel,
    _dir: tempfile::TempDir,
}

impl Inference {
    /// Starts the service with `extra_env` (`TFESI_INFERENCE__...` pairs) and waits until it
    /// serves its model.
    pub async fn start(extra_env: &[(&str, &str)]) -> Self {
        Self::launch(Some(TEST_MODEL), extra_env).await
    }

    /// Starts the service on a copy of the whole bundled repository with its configuration's
    /// default model (the shipped `tfesi-cnn`), and waits until it serves it.
    pub async fn start_default() -> Self {
        Self::launch(None, &[]).await
    }

    /// `only`: copy just this bundled model and make it the default; `None`: copy every bundled
    /// model and keep the configured default.
    async fn launch(only: Option<&str>, extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let models = dir.path().join("models");
        match only {
            Some(name) => copy_tree(&bundled_models().join(name), &models.join(name)),
            None => copy_tree(&bundled_models(), &models),
        }
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()))
            .expect("secret");
        let mut env: Vec<(String, String)> = vec![
            ("TFESI_INFERENCE__REPOSITORY_DIR".to_owned(), models.display().to_string()),
            ("TFESI_INFERENCE__AUTH__HS256_SECRET_FILE".to_owned(), secret.display().to_string()),
            ("TFESI_INFERENCE__TELEMETRY__LOG_FILTER".to_owned(), "warn".to_owned()),
        ];
        if let Some(name) = only {
            env.push(("TFESI_INFERENCE__DEFAULT_MODEL".to_owned(), name.to_owned()));
        }
        env.extend(extra_env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let process = ServiceProcess::start("tfesi-inference", "inference", &env);
        let serving =
            wait_for_health(process.address, "", ServingStatus::Serving, Duration::from_secs(120)).await;
        assert_eq!(serving, Some(ServingStatus::Serving), "inference did not start:\n{}", process.log());
        let token = tfesi_auth::mint_hs256(
            &std::fs::read(&secret).expect("secret"),
            &tfesi_auth::AuthConfig::default(),
            "load-test",
            &[Role::Service],
            3600,
        )
        .expect("token");
        let channel = connect(&process).await;
        Self { process, token, channel, _dir: dir }
    }

    /// Another connection to the service (the server bounds concurrent requests per connection).
    pub async fn connect(&self) -> Channel {
        connect(&self.process).await
    }

    /// A client with a message limit large enough for batches of full-size rows.
    pub fn client(&self) -> InferenceClient<Channel> {
        InferenceClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    /// Resident memory of the service process in MB (VmRSS).
    pub fn rss_mb(&self) -> f64 {
        crate::process::rss_mb(self.process.pid()).expect("VmRSS of the inference process")
    }
}

async fn connect(process: &ServiceProcess) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", process.address))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// `Predict` of `rows` (champion and shadow) carrying `token`.
pub fn predict_request(token: &str, rows: Vec<pb::PredictRow>) -> tonic::Request<pb::PredictRequest> {
    let mut request = tonic::Request::new(pb::PredictRequest { rows, model: None, skip_shadow: false });
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    request
}

/// The clinical feature names of the bundled model, in card order.
pub fn clinical_features() -> Vec<String> {
    let card = std::fs::read(bundled_models().join("tfesi-test/1/model.json")).expect("the bundled card");
    let card: serde_json::Value = serde_json::from_slice(&card).expect("card JSON");
    card["clinical_features"]
        .as_array()
        .expect("clinical_features")
        .iter()
        .map(|feature| feature["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// A full-size row (11 x 256 x 256 float32, 2.9 MB) whose values depend on `seed`.
pub fn row(seed: usize, clinical: &[String]) -> pb::PredictRow {
    let values = SLICES * SIDE * SIDE;
    let data: Vec<u8> = (0..values)
        .flat_map(|i| ((((i * 7919 + seed * 31) % 1009) as f32) * 0.004 - 2.0).to_le_bytes())
        .collect();
    pb::PredictRow {
        row_id: format!("row-{seed}"),
        image: Some(common::Tensor {
            shape: vec![SLICES as u32, SIDE as u32, SIDE as u32],
            dtype: common::DType::Float32.into(),
            data: data.into(),
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
