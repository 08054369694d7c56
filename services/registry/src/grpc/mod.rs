//! The `tfesi.registry.v1.Registry` gRPC service: thin handlers over [`Store`].

mod convert;
mod dataset;
mod watch;

use std::sync::Arc;

use tfesi_proto::registry::v1 as pb;
use tfesi_proto::registry::v1::registry_server::Registry;
use tonic::{Request, Response, Status};

use crate::domain::performance::ModelKey;
use crate::domain::records::{PredictionJob, SeriesRefs};
use crate::domain::types::{EpisodeStatus, OutcomeStatus};
use crate::error::Error;
use crate::store::events::EventHub;
use crate::store::{Actor, EpisodeFilter, SnapshotRequest, Store, as_actor};
use convert::*;

/// The follow-up with `entered_by` defaulted to the caller's subject (the proto's rule: empty
/// means the token's subject).
fn with_author(input: Option<pb::FollowUpInput>, actor: &Actor) -> Option<pb::FollowUpInput> {
    input.map(|mut input| {
        if input.entered_by.trim().is_empty() {
            input.entered_by.clone_from(&actor.subject);
        }
        input
    })
}

/// The verified caller of `request` (the auth layer put it there), as the audit names it.
fn actor<T>(request: &Request<T>) -> Actor {
    let caller = tfesi_auth::Caller::of(request);
    Actor { subject: caller.subject.clone(), role: caller.audit_role().to_owned() }
}

/// The Registry service.
#[derive(Clone)]
pub struct RegistryService {
    store: Store,
    hub: Arc<EventHub>,
}

impl RegistryService {
    /// A service over `store`, announcing changes through `hub`.
    pub fn new(store: Store, hub: Arc<EventHub>) -> Self {
        RegistryService { store, hub }
    }

    async fn episode_message(&self, episode_id: uuid::Uuid) -> Result<pb::Episode, Error> {
        let view = self.store.get_episode(episode_id).await?;
        let rules = self.store.label_rules().await?;
        Ok(to_episode(&view, &rules, self.store.config().follow_up_window, true))
    }

    async fn episode_labels(&self, episode_id: uuid::Uuid) -> Result<Vec<pb::Label>, Error> {
        let view = self.store.get_episode(episode_id).await?;
        let rules = self.store.label_rules().await?;
        Ok(labels(&view, &rules))
    }
}

/// A required idempotency key of 1 to 128 characters.
fn key(text: &str) -> Result<&str, Error> {
    if text.is_empty() || text.chars().count() > 128 {
        return Err(Error::invalid("idempotency_key", "must be 1 to 128 characters"));
    }
    Ok(text)
}

fn page_size(page: Option<&tfesi_proto::common::v1::PageRequest>) -> Result<(u32, String), Error> {
    let page = page.cloned().unwrap_or_default();
    let size = u32::try_from(page.page_size)
        .map_err(|_| Error::invalid("page.page_size", "must not be negative"))?;
    Ok((if size == 0 { 50 } else { size }, page.page_token))
}

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn create_episode(
        &self,
        request: Request<pb::CreateEpisodeRequest>,
    ) -> Result<Response<pb::CreateEpisodeResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let details = episode_details(request.details)?;
        let episode =
            as_actor(actor, self.store.create_episode(Some(key(&request.idempotency_key)?), details)).await?;
        let episode = self.episode_message(episode.episode_id).await?;
        Ok(Response::new(pb::CreateEpisodeResponse { episode: Some(episode) }))
    }

    async fn link_study(
        &self,
        request: Request<pb::LinkStudyRequest>,
    ) -> Result<Response<pb::LinkStudyResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let episode_id = uuid("episode_id", &request.episode_id)?;
        let study_id = uuid("study_id", &request.study_id)?;
        as_actor(actor, self.store.link_study(episode_id, study_id)).await?;
        Ok(Response::new(pb::LinkStudyResponse { episode: Some(self.episode_message(episode_id).await?) }))
    }

    async fn record_injection(
        &self,
        request: Request<pb::RecordInjectionRequest>,
    ) -> Result<Response<pb::RecordInjectionResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let episode_id = uuid("episode_id", &request.episode_id)?;
        let injection = injection_details(episode_id, request.injection)?;
        as_actor(actor, self.store.record_injection(Some(key(&request.idempotency_key)?), injection)).await?;
        Ok(Response::new(pb::RecordInjectionResponse {
            episode: Some(self.episode_message(episode_id).await?),
        }))
    }

    async fn get_episode(
        &self,
        request: Request<pb::GetEpisodeRequest>,
    ) -> Result<Response<pb::GetEpisodeResponse>, Status> {
        let episode_id = uuid("episode_id", &request.into_inner().episode_id)?;
        Ok(Response::new(pb::GetEpisodeResponse { episode: Some(self.episode_message(episode_id).await?) }))
    }

    async fn list_episodes(
        &self,
        request: Request<pb::ListEpisodesRequest>,
    ) -> Result<Response<pb::ListEpisodesResponse>, Status> {
        let request = request.into_inner();
        let (size, token) = page_size(request.page.as_ref())?;
        let filter = EpisodeFilter {
            patient_id: optional_uuid("patient_id", &request.patient_id)?,
            study_id: optional_uuid("study_id", &request.study_id)?,
            status: if request.status == 0 { None } else { Some(outcome_status(request.status)?) },
            indication: if request.indication == 0 {
                None
            } else {
                Some(indication("indication", request.indication)?)
            },
            created_after: request
                .created_after
                .as_ref()
                .map(|t| from_timestamp("created_after", t))
                .transpose()?,
            created_before: request
                .created_before
                .as_ref()
                .map(|t| from_timestamp("created_before", t))
                .transpose()?,
        };
        let (episodes, next) = self.store.list_episodes(&filter, size, &token).await?;
        let mut messages = Vec::with_capacity(episodes.len());
        for episode in &episodes {
            messages.push(self.episode_message(episode.episode_id).await?);
        }
        Ok(Response::new(pb::ListEpisodesResponse {
            episodes: messages,
            page: Some(tfesi_proto::common::v1::PageResponse { next_page_token: next, total_size: None }),
        }))
    }

    async fn record_prediction(
        &self,
        request: Request<pb::RecordPredictionRequest>,
    ) -> Result<Response<pb::RecordPredictionResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let job = PredictionJob {
            job_id: request.job_id,
            study_id: uuid("study_id", &request.study_id)?,
            series_id: uuid("series_id", &request.series_id)?,
            series: SeriesRefs {
                content_sha256: request.series_content_sha256,
                instance_sha256: request.instance_sha256,
            },
            outputs: request.predictions.into_iter().map(model_output).collect::<Result<Vec<_>, _>>()?,
        };
        let recorded = as_actor(actor, self.store.record_prediction(job)).await?;
        Ok(Response::new(pb::RecordPredictionResponse {
            prediction_ids: recorded.predictions.iter().map(|p| p.prediction_id.to_string()).collect(),
            episode_ids: recorded.episode_ids.iter().map(ToString::to_string).collect(),
            already_recorded: recorded.already_recorded,
        }))
    }

    type WatchEpisodeStream = watch::EventStream<pb::EpisodeEvent>;

    async fn watch_episode(
        &self,
        request: Request<pb::WatchEpisodeRequest>,
    ) -> Result<Response<Self::WatchEpisodeStream>, Status> {
        let request = request.into_inner();
        let episode_id = uuid("episode_id", &request.episode_id)?;
        let stream = watch::episode(
            self.store.clone(),
            &self.hub,
            episode_id,
            request.send_initial,
            request.after_revision,
        )
        .await?;
        Ok(Response::new(stream))
    }

    async fn list_due_follow_ups(
        &self,
        request: Request<pb::ListDueFollowUpsRequest>,
    ) -> Result<Response<pb::ListDueFollowUpsResponse>, Status> {
        let request = request.into_inner();
        let as_of = date("as_of", request.as_of.as_ref())?;
        let (size, token) = page_size(request.page.as_ref())?;
        let wanted: Vec<i32> = request.states.clone();
        if wanted.contains(&(pb::DueState::Upcoming as i32)) {
            return Err(Error::invalid("states", "UPCOMING is not listed in v1 of the registry").into());
        }
        let page = self.store.list_due_follow_ups(as_of, size, &token).await?;
        let entries = page
            .items
            .iter()
            .map(|item| to_due(item, as_of))
            .filter(|entry| wanted.is_empty() || wanted.contains(&entry.state))
            .collect();
        Ok(Response::new(pb::ListDueFollowUpsResponse {
            entries,
            page: Some(tfesi_proto::common::v1::PageResponse {
                next_page_token: page.next_page_token,
                total_size: None,
            }),
        }))
    }

    async fn record_follow_up(
        &self,
        request: Request<pb::RecordFollowUpRequest>,
    ) -> Result<Response<pb::RecordFollowUpResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let episode_id = uuid("episode_id", &request.episode_id)?;
        let content = follow_up_input(with_author(request.follow_up, &actor))?;
        let recorded = as_actor(
            actor,
            self.store.record_follow_up_labeled(Some(key(&request.idempotency_key)?), episode_id, content),
        )
        .await?;
        let follow_up = recorded.follow_up;
        // A follow-up is only recorded for an episode with an injection.
        let labels = labels_of(&recorded.label_input, true, follow_up.version, &recorded.rules);
        Ok(Response::new(pb::RecordFollowUpResponse { follow_up: Some(to_follow_up(&follow_up)), labels }))
    }

    async fn amend_follow_up(
        &self,
        request: Request<pb::AmendFollowUpRequest>,
    ) -> Result<Response<pb::AmendFollowUpResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let episode_id = uuid("episode_id", &request.episode_id)?;
        let content = follow_up_input(with_author(request.follow_up, &actor))?;
        let expected = u32::try_from(request.expected_version).ok().filter(|version| *version > 0);
        let follow_up = as_actor(
            actor,
            self.store.amend_follow_up(
                Some(key(&request.idempotency_key)?),
                episode_id,
                expected,
                &request.reason,
                content,
            ),
        )
        .await?;
        let labels = self.episode_labels(episode_id).await?;
        Ok(Response::new(pb::AmendFollowUpResponse { follow_up: Some(to_follow_up(&follow_up)), labels }))
    }

    async fn get_follow_up_history(
        &self,
        request: Request<pb::GetFollowUpHistoryRequest>,
    ) -> Result<Response<pb::GetFollowUpHistoryResponse>, Status> {
        let episode_id = uuid("episode_id", &request.into_inner().episode_id)?;
        let view = self.store.get_episode(episode_id).await?;
        Ok(Response::new(pb::GetFollowUpHistoryResponse {
            versions: view.follow_ups.iter().map(to_follow_up).collect(),
        }))
    }

    async fn set_outcome_status(
        &self,
        request: Request<pb::SetOutcomeStatusRequest>,
    ) -> Result<Response<pb::SetOutcomeStatusResponse>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let episode_id = uuid("episode_id", &request.episode_id)?;
        let status = outcome_status(request.status)?;
        if status == OutcomeStatus::Completed {
            return Err(Error::invalid("status", "COMPLETED is set by RecordFollowUp").into());
        }
        let status =
            EpisodeStatus::from_parts(status, exclusion_reason(request.exclusion_reason)?).map_err(|_| {
                Error::invalid("exclusion_reason", "is required with EXCLUDED and only with EXCLUDED")
            })?;
        let note = request.note;
        if note.chars().count() > 500 {
            return Err(Error::invalid("note", "must be at most 500 characters").into());
        }
        let author = actor.subject.clone();
        let episode =
            as_actor(actor, self.store.set_outcome_status(episode_id, status, &note, &author)).await?;
        Ok(Response::new(pb::SetOutcomeStatusResponse { status: Some(to_status_info(&episode)) }))
    }

    async fn create_snapshot(
        &self,
        request: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::CreateSnapshotResponse>, Status> {
        let author = actor(&request).subject;
        let request = request.into_inner();
        let as_of = request.as_of.as_ref().ok_or_else(|| Error::invalid("as_of", "is required"))?;
        let snapshot_request = SnapshotRequest {
            as_of: Some(from_timestamp("as_of", as_of)?),
            filters: snapshot_filter(request.filter)?,
            rule_version: Some(request.label_rule_version).filter(|version| !version.is_empty()),
            split_seed: request.split_seed,
            split: split_fractions(request.fractions)?,
            created_by: author,
            description: request.description,
        };
        let summary = self.store.create_snapshot(snapshot_request).await.map_err(|error| match error {
            Error::NotFound { entity: "label rule", .. } => {
                Error::invalid("label_rule_version", error.to_string())
            }
            other => other,
        })?;
        Ok(Response::new(pb::CreateSnapshotResponse {
            snapshot: Some(to_snapshot(&summary)),
            created: summary.created,
        }))
    }

    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::GetSnapshotResponse>, Status> {
        let (summary, _) = self.store.snapshot_manifest(&request.into_inner().snapshot_id).await?;
        Ok(Response::new(pb::GetSnapshotResponse { snapshot: Some(to_snapshot(&summary)) }))
    }

    type ExportSnapshotStream = watch::EventStream<pb::ExportSnapshotResponse>;

    async fn export_snapshot(
        &self,
        request: Request<pb::ExportSnapshotRequest>,
    ) -> Result<Response<Self::ExportSnapshotStream>, Status> {
        let actor = actor(&request);
        let request = request.into_inner();
        let only = split(request.split)?;
        let (summary, manifest) = self.store.snapshot_manifest(&request.snapshot_id).await?;
        // The rows leave the registry: who took them is recorded before the first one is sent.
        let target = format!("snapshot:{}", summary.snapshot_id);
        as_actor(actor, self.store.audit_read("export_snapshot", &target)).await?;
        let mut parts = vec![Ok(pb::ExportSnapshotResponse {
            part: Some(pb::export_snapshot_response::Part::Snapshot(to_snapshot(&summary))),
        })];
        let episode_ids: Vec<uuid::Uuid> = manifest.entries.iter().map(|entry| entry.episode_id).collect();
        let champions = self.store.champion_predictions(&episode_ids, summary.as_of).await?;
        let rows =
            manifest.entries.iter().enumerate().filter(|(_, entry)| only.is_none_or(|s| entry.split == s));
        for (index, entry) in rows {
            let mut row = to_snapshot_row(index as u64, entry, &manifest.rule, summary.as_of);
            row.champion_prediction = champions.get(&entry.episode_id).map(to_prediction);
            parts.push(Ok(pb::ExportSnapshotResponse {
                part: Some(pb::export_snapshot_response::Part::Row(row)),
            }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(parts))))
    }

    async fn get_model_performance(
        &self,
        request: Request<pb::GetModelPerformanceRequest>,
    ) -> Result<Response<pb::GetModelPerformanceResponse>, Status> {
        let request = request.into_inner();
        let model = request.model.ok_or_else(|| Error::invalid("model", "is required"))?;
        if model.name.is_empty() || model.version.is_empty() {
            return Err(Error::invalid("model", "name and version are required").into());
        }
        let as_of = request.as_of.as_ref().map(|t| from_timestamp("as_of", t)).transpose()?;
        let rule = Some(request.label_rule_version.as_str()).filter(|version| !version.is_empty());
        let performance =
            self.store.model_performance(&model.name, &model.version, as_of, rule).await.map_err(
                |error| match error {
                    Error::NotFound { entity: "label rule", .. } => {
                        Error::invalid("label_rule_version", error.to_string())
                    }
                    other => other,
                },
            )?;
        let assessment = &performance.assessment;
        let wanted = request.compare_with.map(|other| ModelKey { name: other.name, version: other.version });
        let comparison = assessment
            .comparisons
            .iter()
            .filter(|c| match &wanted {
                Some(key) => &c.other == key,
                None => c.other_role != assessment.role,
            })
            .max_by_key(|c| c.shared_episodes)
            .map(|c| pb::PairedComparison {
                other_model: Some(tfesi_proto::common::v1::ModelRef {
                    name: c.other.name.clone(),
                    version: c.other.version.clone(),
                }),
                shared_count: c.shared_episodes,
                subject: Some(to_metrics(&c.this_metrics)),
                other: Some(to_metrics(&c.other_metrics)),
                auc_difference: c.auc_difference.map(|d| d.difference),
                auc_difference_ci_lower: c.auc_difference.and_then(|d| d.ci_low),
                auc_difference_ci_upper: c.auc_difference.and_then(|d| d.ci_high),
            });
        Ok(Response::new(pb::GetModelPerformanceResponse {
            model: Some(model),
            as_of: Some(timestamp(performance.as_of)),
            label_rule_version: performance.rule_version.clone(),
            metrics: Some(to_metrics(&assessment.metrics)),
            comparison,
        }))
    }

    type WatchLabelsStream = watch::EventStream<pb::WatchLabelsResponse>;

    async fn watch_labels(
        &self,
        request: Request<pb::WatchLabelsRequest>,
    ) -> Result<Response<Self::WatchLabelsStream>, Status> {
        let request = request.into_inner();
        if request.min_interval_ms > 3_600_000 {
            return Err(Error::invalid("min_interval_ms", "must be at most 3600000").into());
        }
        let stream =
            watch::labels(self.store.clone(), &self.hub, request.rule_versions, request.min_interval_ms)
                .await?;
        Ok(Response::new(stream))
    }

    async fn list_label_rules(
        &self,
        _request: Request<pb::ListLabelRulesRequest>,
    ) -> Result<Response<pb::ListLabelRulesResponse>, Status> {
        let default_version = self.store.config().default_rule_version.clone();
        let mut rules = self.store.label_rules().await?;
        rules.sort_by_key(|rule| rule.version != default_version);
        Ok(Response::new(pb::ListLabelRulesResponse {
            rules: rules.iter().map(|rule| to_rule(rule, &default_version)).collect(),
        }))
    }
}
