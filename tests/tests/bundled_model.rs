//! The model the platform ships (`models/tfesi-cnn/<version>`, trained by
//! scripts/train-default-model.sh on a synthetic cohort): its files say what it is and where it
//! came from, and the inference service, configured with nothing but its defaults and a copy of
//! `models/`, makes it the champion after its self-test and answers predictions with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use tfesi_e2e::inference::Inference;
use tfesi_e2e::stack::bundled_models;
use tfesi_proto::inference::v1 as pb;

/// The shipped model's name: `tfesi_inference::Config::default().default_model`.
const NAME: &str = "tfesi-cnn";
/// The model file's size limit (issue 8).
const MAX_MODEL_BYTES: u64 = 20 * 1024 * 1024;

/// The one version of the shipped model in `models/tfesi-cnn/`.
fn shipped() -> PathBuf {
    let versions: Vec<PathBuf> = std::fs::read_dir(bundled_models().join(NAME))
        .expect("models/tfesi-cnn exists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(versions.len(), 1, "exactly one shipped version: {versions:?}");
    versions.into_iter().next().expect("one version")
}

fn json(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn the_shipped_model_is_the_default_and_says_what_it_is_and_where_it_came_from() {
    assert_eq!(tfesi_inference::Config::default().default_model, NAME);
    let dir = shipped();
    let version = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let card = json(dir.join("model.json"));
    assert_eq!((card["name"].as_str(), card["version"].as_str()), (Some(NAME), Some(version.as_str())));
    let description = card["description"].as_str().expect("description");
    assert!(
        description.lines().next().unwrap_or_default().starts_with("TRAINED ON SYNTHETIC DATA ONLY"),
        "the card's first line says it is synthetic: {description}"
    );
    assert_eq!(card["synthetic"], true);

    let onnx = std::fs::read(dir.join("model.onnx")).expect("model.onnx");
    assert!((onnx.len() as u64) < MAX_MODEL_BYTES, "model file {} bytes", onnx.len());
    assert_eq!(card["model_sha256"].as_str(), Some(hex::encode(Sha256::digest(&onnx)).as_str()));

    // Provenance: the command, both cohorts' seeds and snapshot ids (the snapshot id is the
    // SHA-256 of its manifest), never the same cohort for training and evaluation.
    let provenance = json(dir.join("provenance.json"));
    assert_eq!(provenance["synthetic"], true);
    assert_eq!(provenance["command"], "scripts/train-default-model.sh");
    let train = &provenance["training_cohort"];
    let eval = &provenance["evaluation_cohort"];
    assert!(train["patients"].as_u64().unwrap() >= 1500, "{provenance:#}");
    assert_ne!(train["seed"], eval["seed"], "{provenance:#}");
    for cohort in [train, eval] {
        let snapshot = cohort["snapshot_id"].as_str().unwrap();
        assert!(snapshot.len() == 64 && snapshot.bytes().all(|b| b.is_ascii_hexdigit()), "{snapshot}");
    }
    assert_eq!(card["training_snapshot_id"], train["snapshot_id"], "{card:#}");

    // The evaluation on the independent cohort, as the README and card report it.
    let evaluation = json(dir.join("evaluation.json"));
    assert_eq!(evaluation["evaluation_cohort"]["snapshot_id"], eval["snapshot_id"]);
    assert_eq!(evaluation["training_cohort"]["snapshot_id"], train["snapshot_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_with_its_defaults_serves_the_shipped_model_as_champion() {
    // No default model named: the configuration's default applies.
    let inference = Inference::start_default().await;
    let mut client = inference.client();
    let token = inference.token.clone();
    let mut list = tonic::Request::new(pb::ListModelsRequest::default());
    list.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let listed = client.list_models(list).await.unwrap().into_inner();
    let champion = listed.champion.expect("a champion");
    let version = shipped().file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!((champion.name.as_str(), champion.version.as_str()), (NAME, version.as_str()));
    let info = listed
        .models
        .iter()
        .find(|model| {
            model.card.as_ref().and_then(|card| card.model.as_ref()).is_some_and(|model| model.name == NAME)
        })
        .expect("the shipped model is listed");
    let self_test = info.self_test.as_ref().expect("self-test result");
    assert!(self_test.passed, "{self_test:?}");

    let card = json(shipped().join("model.json"));
    let features: Vec<String> = card["clinical_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|feature| feature["name"].as_str().unwrap().to_owned())
        .collect();
    let rows = (0..3).map(|seed| tfesi_e2e::inference::row(seed, &features)).collect();
    let answered =
        client.predict(tfesi_e2e::inference::predict_request(&token, rows)).await.unwrap().into_inner();
    assert_eq!(answered.results.len(), 3);
    for result in &answered.results {
        let champion = result.prediction.as_ref().expect("the champion's prediction");
        let model = champion.model.as_ref().expect("model");
        assert_eq!((model.name.as_str(), model.version.as_str()), (NAME, version.as_str()));
        assert!((0.0..=1.0).contains(&champion.probability), "{champion:?}");
    }
}
