//! Waiting for the pipeline's predictions of the demo's studies, and saying why when they do
//! not come (the pipeline's dead letters).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tfesi_proto::common::v1 as common;
use tfesi_proto::preprocess::v1 as preprocess;
use tfesi_proto::registry::v1 as registry;

use super::{Clients, Patient, bar};
use crate::endpoints::{call_failed, describe};

/// Polls every episode until it holds a prediction; on timeout, says which studies have none
/// and lists the pipeline's dead letters.
pub(super) async fn wait_for_predictions(
    clients: &mut Clients,
    patients: &[Patient],
    within: Duration,
) -> anyhow::Result<Vec<registry::PredictionRecord>> {
    let progress = bar(patients.len() as u64, "waiting for predictions");
    let started = Instant::now();
    let mut last_check = Instant::now();
    let mut found: BTreeMap<&str, Vec<registry::PredictionRecord>> = BTreeMap::new();
    loop {
        for patient in patients {
            if found.contains_key(patient.episode_id.as_str()) {
                continue;
            }
            let episode = clients
                .registry
                .get_episode(registry::GetEpisodeRequest { episode_id: patient.episode_id.clone() })
                .await
                .map_err(call_failed("Registry.GetEpisode"))?
                .into_inner()
                .episode
                .unwrap_or_default();
            if !episode.predictions.is_empty() {
                found.insert(&patient.episode_id, episode.predictions);
                progress.inc(1);
            }
        }
        if found.len() == patients.len() {
            break;
        }
        if last_check.elapsed() > Duration::from_secs(5) {
            last_check = Instant::now();
            let ours: Vec<&str> = patients
                .iter()
                .filter(|patient| !found.contains_key(patient.episode_id.as_str()))
                .map(|patient| patient.study_id.as_str())
                .collect();
            if let Some(reasons) = our_dead_letters(clients, &ours).await? {
                progress.finish_and_clear();
                anyhow::bail!("the pipeline gave up on studies of the demo: {reasons}");
            }
        }
        if started.elapsed() > within {
            progress.finish_and_clear();
            let missing: Vec<&str> = patients
                .iter()
                .filter(|patient| !found.contains_key(patient.episode_id.as_str()))
                .map(|patient| patient.study_id.as_str())
                .collect();
            let dead = dead_letters(clients).await;
            anyhow::bail!(
                "{} of {} studies have no prediction after {within:?} (studies {}); {dead}",
                missing.len(),
                patients.len(),
                missing.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress.finish_and_clear();
    Ok(found.into_values().flatten().collect())
}

/// The dead letters of `studies` as one line, `None` when there are none.
async fn our_dead_letters(clients: &mut Clients, studies: &[&str]) -> anyhow::Result<Option<String>> {
    let letters = clients
        .preprocess
        .list_dead_letters(preprocess::ListDeadLettersRequest {
            page: Some(common::PageRequest { page_size: 200, page_token: String::new() }),
        })
        .await
        .map_err(call_failed("Preprocess.ListDeadLetters"))?
        .into_inner()
        .dead_letters;
    let reasons: Vec<String> = letters
        .iter()
        .filter(|letter| studies.contains(&letter.study_id.as_str()))
        .map(|letter| format!("study {}: {}: {}", letter.study_id, letter.reason_code, letter.message))
        .collect();
    Ok((!reasons.is_empty()).then(|| format!("{} (`tfesi jobs dead`)", reasons.join("; "))))
}

/// The pipeline's dead letters as one line (for a failure message).
async fn dead_letters(clients: &mut Clients) -> String {
    let listed = clients
        .preprocess
        .list_dead_letters(preprocess::ListDeadLettersRequest {
            page: Some(common::PageRequest { page_size: 20, page_token: String::new() }),
        })
        .await;
    match listed {
        Ok(response) => {
            let letters = response.into_inner().dead_letters;
            if letters.is_empty() {
                "no dead letters: the jobs are still queued or running (`tfesi jobs status`)".to_owned()
            } else {
                let reasons: Vec<String> = letters
                    .iter()
                    .map(|letter| {
                        format!("study {}: {}: {}", letter.study_id, letter.reason_code, letter.message)
                    })
                    .collect();
                format!("dead letters (`tfesi jobs dead`): {}", reasons.join("; "))
            }
        }
        Err(status) => format!("Preprocess.ListDeadLetters failed too: {}", describe(&status)),
    }
}
