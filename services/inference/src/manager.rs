//! The model manager: one champion and at most one shadow, how a version goes live (load,
//! self-test, persist, swap), and predictions against the live models.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::card::ModelCard;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{LoadedModel, PredictInput};
use crate::repository::{DeploymentState, ModelKey, Registration, Repository, StoredModel, sha256_hex};
use crate::runtime::Runtime;
use crate::session::{ProviderInUse, SelfTestReport};

/// Role of a model for a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The champion: its output is the answer.
    Champion,
    /// The shadow: run beside the champion and recorded, never the answer.
    Shadow,
    /// Named explicitly by the caller.
    Explicit,
}

/// One model's output for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The model.
    pub model: ModelKey,
    /// P(good outcome).
    pub probability: f32,
    /// The card's decision threshold.
    pub threshold: f32,
    /// Provider that ran it.
    pub provider: ProviderInUse,
    /// Role of the model.
    pub role: Role,
    /// Preprocessing spec version of the input.
    pub spec_version: String,
    /// Rows in the batch it ran in.
    pub batch_size: usize,
    /// Enqueue to result.
    pub latency: Duration,
}

/// The answer for one row and, when a shadow is set, what became of the shadow.
#[derive(Debug, Clone, PartialEq)]
pub struct RowOutcome {
    /// The answer.
    pub prediction: Prediction,
    /// The shadow's prediction, when it ran.
    pub shadow: Option<Prediction>,
    /// Why the shadow did not run or failed (empty when it ran or no shadow is set).
    pub shadow_error: String,
}

/// A prediction request: rows, an optional explicit model, and whether to skip the shadow.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictRequest {
    /// Rows, validated all or nothing.
    pub rows: Vec<PredictInput>,
    /// Explicit model; `None` for the champion.
    pub model: Option<ModelKey>,
    /// Do not run the shadow.
    pub skip_shadow: bool,
}

/// One version with its serving state.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The model.
    pub key: ModelKey,
    /// The card.
    pub card: ModelCard,
    /// The card file verbatim.
    pub card_json: String,
    /// Champion, shadow or neither.
    pub role: Option<Role>,
    /// Registration record (absent for bundled models).
    pub registration: Option<Registration>,
    /// When it was registered (the card's mtime for bundled models).
    pub registered_at: SystemTime,
    /// The loaded model, when live.
    pub live: Option<Arc<LoadedModel>>,
}

/// Result of a registration.
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    /// The stored version.
    pub info: ModelInfo,
    /// The self-test that admitted it.
    pub self_test: SelfTestReport,
    /// False when the same bytes were already registered.
    pub created: bool,
}

/// What a registration uploads besides the bytes.
#[derive(Debug, Clone)]
pub struct RegisterHeader {
    /// Name and version.
    pub key: ModelKey,
    /// The card JSON.
    pub card_json: String,
    /// Declared SHA-256 of the ONNX bytes.
    pub sha256: String,
    /// Declared size of the ONNX bytes.
    pub size_bytes: u64,
    /// Also make it the shadow.
    pub set_as_shadow: bool,
    /// Token subject of the caller.
    pub registered_by: String,
}

#[derive(Debug, Clone, Default)]
struct Live {
    champion: Option<Arc<LoadedModel>>,
    shadow: Option<Arc<LoadedModel>>,
}

/// Explicitly named models kept loaded beside champion and shadow.
const EXPLICIT_CACHE: usize = 2;

/// Owns the repository, the persisted deployment state and the live models.
#[derive(Debug)]
pub struct ModelManager {
    runtime: Arc<Runtime>,
    config: Config,
    repository: Repository,
    state: tokio::sync::Mutex<DeploymentState>,
    live: RwLock<Live>,
    explicit: std::sync::Mutex<HashMap<ModelKey, Arc<LoadedModel>>>,
}

/// Orders versions with numeric parts compared as numbers ("1.10" after "1.9").
pub fn compare_versions(left: &str, right: &str) -> Ordering {
    let key = |text: &str| -> Vec<(u64, String)> {
        text.split(['.', '-', '_'])
            .map(|part| (part.parse::<u64>().unwrap_or(u64::MAX), part.to_owned()))
            .collect()
    };
    key(left).cmp(&key(right))
}

/// Load failures during Promote, SetShadow and Rollback are FAILED_PRECONDITION ("cannot be
/// loaded on this server"); NOT_FOUND and repository errors stay as they are.
fn as_precondition(error: Error) -> Error {
    match error {
        Error::ModelRefused { .. } | Error::SelfTestFailed { .. } | Error::ProviderUnavailable { .. } => {
            Error::FailedPrecondition(error.to_string())
        }
        other => other,
    }
}

fn prefix_row(index: usize, error: Error) -> Error {
    match error {
        Error::InvalidArgument { field, reason } => {
            Error::InvalidArgument { field: format!("rows[{index}].{field}"), reason }
        }
        other => other,
    }
}

impl ModelManager {
    /// Loads ONNX Runtime and the repository and brings the champion and shadow live. Without a
    /// persisted champion, the highest version of the default model is champion. A champion that
    /// fails to load is reported and earlier champions are tried in turn.
    pub async fn open(config: Config) -> Result<Arc<Self>> {
        let library = config.runtime.library_path.clone();
        let runtime = tokio::task::spawn_blocking(move || crate::runtime::init(library.as_deref()))
            .await
            .map_err(|join| Error::Inference(format!("runtime start-up task failed: {join}")))??;
        let repository = Repository::open(&config.repository_dir)?;
        let mut state = repository.load_state()?;
        if state.champion.is_none() && state.history.is_empty() {
            state.champion = repository
                .list()?
                .into_iter()
                .filter(|(name, _)| *name == config.default_model)
                .max_by(|left, right| compare_versions(&left.1, &right.1))
                .map(|(name, version)| ModelKey::new(name, version));
        }
        let manager = Arc::new(Self {
            runtime,
            config,
            repository,
            state: tokio::sync::Mutex::new(state.clone()),
            live: RwLock::new(Live::default()),
            explicit: std::sync::Mutex::new(HashMap::new()),
        });
        manager.bring_up(&state).await;
        Ok(manager)
    }

    async fn bring_up(&self, state: &DeploymentState) {
        let mut candidates: Vec<&ModelKey> = state.champion.iter().collect();
        candidates.extend(state.history.iter().rev());
        let mut live = Live::default();
        for key in candidates {
            match self.load(key).await {
                Ok(model) => {
                    live.champion = Some(model);
                    break;
                }
                Err(error) => {
                    tracing::error!(model = %key, error = %error, "champion candidate did not go live")
                }
            }
        }
        if let Some(key) = &state.shadow {
            match self.load(key).await {
                Ok(model) => live.shadow = Some(model),
                Err(error) => tracing::error!(model = %key, error = %error, "shadow did not go live"),
            }
        }
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = live;
    }

    async fn load(&self, key: &ModelKey) -> Result<Arc<LoadedModel>> {
        let stored = self.repository.read(&key.name, &key.version)?;
        self.load_stored(stored).await
    }

    async fn load_stored(&self, stored: StoredModel) -> Result<Arc<LoadedModel>> {
        let runtime = Arc::clone(&self.runtime);
        let runtime_config = self.config.runtime.clone();
        let batching = self.config.batching_for(&stored.card.name);
        let model = tokio::task::spawn_blocking(move || {
            LoadedModel::load(&runtime, &runtime_config, batching, stored)
        })
        .await
        .map_err(|join| Error::Inference(format!("model load task failed: {join}")))??;
        Ok(Arc::new(model))
    }

    /// The service configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The repository served from.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    fn live(&self) -> Live {
        self.live.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The live champion.
    pub fn champion(&self) -> Option<Arc<LoadedModel>> {
        self.live().champion
    }

    /// The live shadow.
    pub fn shadow(&self) -> Option<Arc<LoadedModel>> {
        self.live().shadow
    }

    fn is_loaded(live: &Live, key: &ModelKey) -> Option<Arc<LoadedModel>> {
        [&live.champion, &live.shadow].into_iter().flatten().find(|model| model.key() == *key).cloned()
    }

    async fn explicit_model(&self, key: &ModelKey) -> Result<Arc<LoadedModel>> {
        if let Some(model) = Self::is_loaded(&self.live(), key) {
            return Ok(model);
        }
        let cached = self.explicit.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned();
        if let Some(model) = cached {
            return Ok(model);
        }
        if !self.repository.contains(&key.name, &key.version) {
            return Err(Error::NotFound(format!("model {key} is not registered")));
        }
        let model = self.load(key).await.map_err(as_precondition)?;
        let mut cache = self.explicit.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= EXPLICIT_CACHE {
            cache.clear();
        }
        cache.insert(key.clone(), Arc::clone(&model));
        Ok(model)
    }

    /// Validates every row, then runs them on the champion (or the explicit model) and, beside
    /// it, the shadow. Only the answering model's failure fails the request.
    pub async fn predict(
        &self,
        request: &PredictRequest,
        deadline: Option<Instant>,
    ) -> Result<Vec<RowOutcome>> {
        let live = self.live();
        let (answering, role, shadow) = match &request.model {
            Some(key) => {
                let model = self.explicit_model(key).await?;
                let role = if live.champion.as_ref().is_some_and(|champion| champion.key() == *key) {
                    Role::Champion
                } else {
                    Role::Explicit
                };
                (model, role, None)
            }
            None => {
                let champion = live
                    .champion
                    .clone()
                    .ok_or_else(|| Error::FailedPrecondition("no champion model is live yet".to_owned()))?;
                let shadow = if request.skip_shadow { None } else { live.shadow.clone() };
                (champion, Role::Champion, shadow)
            }
        };
        let prepared = request
            .rows
            .iter()
            .enumerate()
            .map(|(index, row)| answering.prepare(row).map_err(|error| prefix_row(index, error)))
            .collect::<Result<Vec<_>>>()?;
        let shadow_rows: Option<Vec<Result<_>>> =
            shadow.as_ref().map(|shadow| request.rows.iter().map(|row| shadow.prepare(row)).collect());

        let answers =
            futures::future::join_all(prepared.into_iter().map(|rows| answering.infer(rows, deadline)));
        let shadow_answers = async {
            match (&shadow, shadow_rows) {
                (Some(shadow), Some(rows)) => Some(
                    futures::future::join_all(rows.into_iter().map(|prepared| async move {
                        match prepared {
                            Ok(rows) => shadow.infer(rows, deadline).await,
                            Err(error) => Err(error),
                        }
                    }))
                    .await,
                ),
                _ => None,
            }
        };
        let (answers, shadow_answers) = tokio::join!(answers, shadow_answers);
        let mut outcomes = Vec::with_capacity(answers.len());
        for (index, answer) in answers.into_iter().enumerate() {
            let output = answer?;
            let spec_version = request.rows[index].spec_version.clone();
            let prediction = answering.prediction(&output, role, spec_version.clone());
            let (shadow_prediction, shadow_error) =
                match (&shadow, shadow_answers.as_ref().map(|all| &all[index])) {
                    (Some(model), Some(Ok(output))) => {
                        (Some(model.prediction(output, Role::Shadow, spec_version)), String::new())
                    }
                    (Some(model), Some(Err(error))) => {
                        tracing::warn!(model = %model.key(), error = %error, "shadow prediction failed");
                        (None, error.to_string())
                    }
                    _ if request.skip_shadow && request.model.is_none() && live.shadow.is_some() => {
                        (None, "shadow skipped on request".to_owned())
                    }
                    _ => (None, String::new()),
                };
            outcomes.push(RowOutcome { prediction, shadow: shadow_prediction, shadow_error });
        }
        Ok(outcomes)
    }

    /// Registers a version: size and checksum, card, load and self-test; stored only when all
    /// pass. The same name, version and bytes again return the stored result (`created` false).
    pub async fn register(&self, header: RegisterHeader, onnx: Vec<u8>) -> Result<RegisterOutcome> {
        let key = header.key.clone();
        if onnx.len() as u64 != header.size_bytes {
            return Err(Error::DataLoss(format!(
                "received {} bytes, the header declared {}",
                onnx.len(),
                header.size_bytes
            )));
        }
        let actual = sha256_hex(&onnx);
        if !header.sha256.eq_ignore_ascii_case(&actual) {
            return Err(Error::DataLoss(format!(
                "received bytes have sha256 {actual}, the header declared {}",
                header.sha256
            )));
        }
        let card = ModelCard::from_json(header.card_json.as_bytes())
            .map_err(|error| Error::invalid("header.card_json", error.to_string()))?;
        card.validate().map_err(|reason| Error::invalid("header.card_json", reason))?;
        if card.name != key.name || card.version != key.version {
            return Err(Error::invalid(
                "header.card_json",
                format!("the card names {}/{}, the header {key}", card.name, card.version),
            ));
        }
        if card.model_sha256 != actual {
            return Err(Error::invalid(
                "header.card_json",
                format!("model_sha256 is {}, the uploaded model has {actual}", card.model_sha256),
            ));
        }
        let mut state = self.state.lock().await;
        if self.repository.contains(&key.name, &key.version) {
            let stored = self.repository.read(&key.name, &key.version)?;
            if stored.card.model_sha256 != actual {
                return Err(Error::AlreadyExists { name: key.name, version: key.version });
            }
            if header.set_as_shadow {
                self.set_shadow_locked(&mut state, Some(&key)).await?;
            }
            let info = self.get(&key)?;
            let self_test = info.registration.as_ref().map(|record| record.self_test.clone());
            let self_test = match self_test {
                Some(report) => report,
                None => self.load(&key).await?.self_test().clone(),
            };
            return Ok(RegisterOutcome { info, self_test, created: false });
        }
        let stored = StoredModel { card, onnx };
        let model = self.load_stored(stored.clone()).await.map_err(|error| match error {
            Error::ModelRefused { reason, .. } => Error::invalid("model", reason),
            other => other,
        })?;
        let registered_at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        let registration = Registration {
            registered_at_unix_ms,
            registered_by: header.registered_by.clone(),
            self_test: model.self_test().clone(),
        };
        self.repository.install(&stored, &registration)?;
        tracing::info!(model = %key, "model registered");
        if header.set_as_shadow {
            self.set_shadow_locked(&mut state, Some(&key)).await?;
        }
        drop(state);
        Ok(RegisterOutcome { info: self.get(&key)?, self_test: registration.self_test, created: true })
    }

    async fn ready(&self, key: &ModelKey) -> Result<Arc<LoadedModel>> {
        if !self.repository.contains(&key.name, &key.version) {
            return Err(Error::NotFound(format!("model {key} is not registered")));
        }
        match Self::is_loaded(&self.live(), key) {
            Some(model) => Ok(model),
            None => self.load(key).await.map_err(as_precondition),
        }
    }

    fn expect_champion(state: &DeploymentState, expected: Option<&ModelKey>) -> Result<()> {
        match expected {
            Some(expected) if state.champion.as_ref() != Some(expected) => Err(Error::Aborted(format!(
                "the champion is {}, not {expected}",
                state.champion.as_ref().map_or_else(|| "unset".to_owned(), ToString::to_string)
            ))),
            _ => Ok(()),
        }
    }

    /// Makes `key` the champion once it loaded and passed its self-test; returns the previous
    /// champion. Requests in flight finish on the model they started on.
    pub async fn promote(
        &self,
        key: &ModelKey,
        expected_champion: Option<&ModelKey>,
    ) -> Result<(Option<ModelKey>, DeploymentState)> {
        let mut state = self.state.lock().await;
        Self::expect_champion(&state, expected_champion)?;
        let model = self.ready(key).await?;
        if state.champion.as_ref() == Some(key) {
            return Ok((None, state.clone()));
        }
        let mut next = state.clone();
        let previous = next.champion.replace(key.clone());
        next.history.extend(previous.clone());
        let mut live = self.live();
        if next.shadow.as_ref() == Some(key) {
            next.shadow = None;
            live.shadow = None;
        }
        live.champion = Some(model);
        self.commit(&mut state, next, live)?;
        tracing::info!(model = %key, "promoted to champion");
        Ok((previous, state.clone()))
    }

    /// Sets (or with `None` clears) the shadow; returns the previous shadow.
    pub async fn set_shadow(&self, key: Option<&ModelKey>) -> Result<(Option<ModelKey>, DeploymentState)> {
        let mut state = self.state.lock().await;
        let previous = self.set_shadow_locked(&mut state, key).await?;
        Ok((previous, state.clone()))
    }

    async fn set_shadow_locked(
        &self,
        state: &mut DeploymentState,
        key: Option<&ModelKey>,
    ) -> Result<Option<ModelKey>> {
        if let Some(key) = key
            && state.champion.as_ref() == Some(key)
        {
            return Err(Error::FailedPrecondition(format!("{key} is the champion")));
        }
        let model = match key {
            Some(key) => Some(self.ready(key).await?),
            None => None,
        };
        let mut next = state.clone();
        let previous = std::mem::replace(&mut next.shadow, key.cloned());
        let mut live = self.live();
        live.shadow = model;
        self.commit(state, next, live)?;
        tracing::info!(shadow = ?key.map(ToString::to_string), "shadow set");
        Ok(previous)
    }

    /// Restores the previous champion; returns (champion now, rolled back).
    pub async fn rollback(&self, expected_champion: Option<&ModelKey>) -> Result<(ModelKey, ModelKey)> {
        let mut state = self.state.lock().await;
        Self::expect_champion(&state, expected_champion)?;
        let mut next = state.clone();
        let previous = next.history.pop().ok_or_else(|| {
            Error::FailedPrecondition("there is no previous champion to roll back to".to_owned())
        })?;
        let rolled_back = next
            .champion
            .replace(previous.clone())
            .ok_or_else(|| Error::FailedPrecondition("there is no champion to roll back".to_owned()))?;
        let model = self.ready(&previous).await?;
        let mut live = self.live();
        if next.shadow.as_ref() == Some(&previous) {
            next.shadow = None;
            live.shadow = None;
        }
        live.champion = Some(model);
        self.commit(&mut state, next, live)?;
        tracing::info!(champion = %previous, rolled_back = %rolled_back, "rolled back");
        Ok((previous, rolled_back))
    }

    /// Persists `next`, then makes `live` current (in that order: a crash never serves what
    /// the state file does not say).
    fn commit(&self, state: &mut DeploymentState, next: DeploymentState, live: Live) -> Result<()> {
        self.repository.save_state(&next)?;
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = live;
        *state = next;
        Ok(())
    }

    /// The deployment state.
    pub async fn state(&self) -> DeploymentState {
        self.state.lock().await.clone()
    }

    /// Every version (optionally of one name), newest registration first.
    pub fn list(&self, name: Option<&str>) -> Result<Vec<ModelInfo>> {
        let mut infos = self
            .repository
            .list()?
            .into_iter()
            .filter(|(model_name, _)| name.is_none_or(|wanted| wanted == model_name))
            .map(|(model_name, version)| self.get(&ModelKey::new(model_name, version)))
            .collect::<Result<Vec<_>>>()?;
        infos.sort_by(|left, right| {
            right.registered_at.cmp(&left.registered_at).then_with(|| left.key.cmp(&right.key))
        });
        Ok(infos)
    }

    /// One version with its serving state.
    pub fn get(&self, key: &ModelKey) -> Result<ModelInfo> {
        let card = self.repository.read_card(&key.name, &key.version)?;
        let card_json = serde_json::to_string_pretty(&card)
            .map_err(|source| Error::Json { path: key.to_string().into(), source })?;
        let registration = self.repository.read_registration(&key.name, &key.version)?;
        let registered_at = match &registration {
            Some(record) => UNIX_EPOCH + Duration::from_millis(record.registered_at_unix_ms),
            None => self.repository.card_modified(&key.name, &key.version).unwrap_or(UNIX_EPOCH),
        };
        let live = self.live();
        let is =
            |model: &Option<Arc<LoadedModel>>| model.as_ref().filter(|model| model.key() == *key).cloned();
        let (role, live_model) = match (is(&live.champion), is(&live.shadow)) {
            (Some(model), _) => (Some(Role::Champion), Some(model)),
            (None, Some(model)) => (Some(Role::Shadow), Some(model)),
            (None, None) => (None, None),
        };
        Ok(ModelInfo {
            key: key.clone(),
            card,
            card_json,
            role,
            registration,
            registered_at,
            live: live_model,
        })
    }

    /// Whether a champion is live, and a one-line description for health details.
    pub fn health(&self) -> (bool, String) {
        match self.champion() {
            Some(model) => (true, format!("champion {} on {}", model.key(), model.provider())),
            None => (false, "no champion model is live".to_owned()),
        }
    }
}
