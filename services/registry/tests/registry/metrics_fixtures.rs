//! Metrics against scikit-learn's values committed in tests/fixtures/metrics_fixtures.json.

use serde::Deserialize;
use tfesi_registry::domain::metrics::{brier_score, roc_auc, roc_auc_with_ci};

const TOLERANCE: f64 = 1e-9;

#[derive(Deserialize)]
struct Fixtures {
    datasets: Vec<Dataset>,
}

#[derive(Deserialize)]
struct Dataset {
    name: String,
    probabilities: Vec<f64>,
    labels: Vec<u8>,
    roc_auc: f64,
    brier: f64,
    delong_se: Option<f64>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics_fixtures.json");
    let text = std::fs::read_to_string(path).expect("fixture file is committed");
    serde_json::from_str(&text).expect("fixture file parses")
}

#[test]
fn auc_and_brier_equal_scikit_learn_to_1e_9() {
    let fixtures = fixtures();
    assert!(fixtures.datasets.len() >= 5, "expected several datasets");
    for dataset in &fixtures.datasets {
        let labels: Vec<bool> = dataset.labels.iter().map(|label| *label == 1).collect();
        let auc = roc_auc(&dataset.probabilities, &labels).expect("both classes present");
        let brier = brier_score(&dataset.probabilities, &labels).expect("non-empty");
        assert!(
            (auc - dataset.roc_auc).abs() < TOLERANCE,
            "{}: auc {auc} vs sklearn {}",
            dataset.name,
            dataset.roc_auc
        );
        assert!(
            (brier - dataset.brier).abs() < TOLERANCE,
            "{}: brier {brier} vs sklearn {}",
            dataset.name,
            dataset.brier
        );
    }
}

#[test]
fn delong_standard_error_equals_the_pairwise_definition() {
    for dataset in &fixtures().datasets {
        let labels: Vec<bool> = dataset.labels.iter().map(|label| *label == 1).collect();
        let estimate = roc_auc_with_ci(&dataset.probabilities, &labels).expect("both classes present");
        match (estimate.standard_error, dataset.delong_se) {
            (Some(ours), Some(reference)) => {
                assert!((ours - reference).abs() < TOLERANCE, "{}: se {ours} vs {reference}", dataset.name);
                let (low, high) = (estimate.ci_low.unwrap_or(f64::NAN), estimate.ci_high.unwrap_or(f64::NAN));
                assert!(
                    low <= estimate.auc && estimate.auc <= high,
                    "{}: CI must contain the AUC",
                    dataset.name
                );
            }
            (None, None) => {}
            (ours, reference) => panic!("{}: se {ours:?} vs reference {reference:?}", dataset.name),
        }
    }
}
