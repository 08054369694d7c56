//! The on-disk model repository: `<name>/<version>/{model.onnx,model.json}` plus `state.json`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::card::{ModelCard, valid_identifier};
use crate::error::{Error, Result};
use crate::session::SelfTestReport;

/// File name of the ONNX graph inside a version directory.
pub const MODEL_FILE: &str = "model.onnx";
/// File name of the card inside a version directory.
pub const CARD_FILE: &str = "model.json";
/// File name of the registration record inside a version directory (optional).
pub const REGISTRATION_FILE: &str = "registration.json";
/// File name of the deployment state at the repository root.
pub const STATE_FILE: &str = "state.json";

/// One model version as read from disk, checked against its card's checksum.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// The parsed card.
    pub card: ModelCard,
    /// The ONNX bytes.
    pub onnx: Vec<u8>,
}

/// Names one model version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
}

impl ModelKey {
    /// A key from its parts.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self { name: name.into(), version: version.into() }
    }
}

impl std::fmt::Display for ModelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

/// Which versions serve: one champion, at most one shadow, and the earlier champions for
/// Rollback (most recent last). Persisted in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentState {
    /// The version whose output is the answer.
    pub champion: Option<ModelKey>,
    /// The version run beside it and recorded, never returned.
    pub shadow: Option<ModelKey>,
    /// Earlier champions, most recent last.
    #[serde(default)]
    pub history: Vec<ModelKey>,
}

/// How and when a version entered the repository (`registration.json` beside the card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Milliseconds since the Unix epoch.
    pub registered_at_unix_ms: u64,
    /// Token subject of who registered it; empty when bundled.
    pub registered_by: String,
    /// The self-test that admitted it.
    pub self_test: SelfTestReport,
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A directory-backed model repository.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| Error::io(path, source))
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().map_or_else(|| "file".into(), |name| name.to_string_lossy());
    let tmp_path = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut file = fs::File::create(&tmp_path).map_err(|source| Error::io(&tmp_path, source))?;
    file.write_all(bytes).map_err(|source| Error::io(&tmp_path, source))?;
    file.sync_all().map_err(|source| Error::io(&tmp_path, source))?;
    drop(file);
    fs::rename(&tmp_path, path).map_err(|source| Error::io(path, source))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|handle| handle.sync_all()).map_err(|source| Error::io(dir, source))
}

impl Repository {
    /// Opens (and creates if needed) a repository rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| Error::io(&root, source))?;
        Ok(Self { root })
    }

    /// The repository root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn version_dir(&self, name: &str, version: &str) -> Result<PathBuf> {
        if !valid_identifier(name) {
            return Err(Error::invalid("model.name", "must be 1 to 64 characters of [A-Za-z0-9._-]"));
        }
        if !valid_identifier(version) {
            return Err(Error::invalid("model.version", "must be 1 to 64 characters of [A-Za-z0-9._-]"));
        }
        Ok(self.root.join(name).join(version))
    }

    /// Whether `name/version` exists.
    pub fn contains(&self, name: &str, version: &str) -> bool {
        self.version_dir(name, version)
            .is_ok_and(|dir| dir.join(MODEL_FILE).is_file() && dir.join(CARD_FILE).is_file())
    }

    /// Every `(name, version)` present, sorted.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let names = fs::read_dir(&self.root).map_err(|source| Error::io(&self.root, source))?;
        for name_entry in names.flatten() {
            let name = name_entry.file_name().to_string_lossy().into_owned();
            if !valid_identifier(&name) || !name_entry.path().is_dir() {
                continue;
            }
            let Ok(versions) = fs::read_dir(name_entry.path()) else {
                continue;
            };
            for version_entry in versions.flatten() {
                let version = version_entry.file_name().to_string_lossy().into_owned();
                if self.contains(&name, &version) {
                    found.push((name.clone(), version));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Reads the card of `name/version` without the model bytes.
    pub fn read_card(&self, name: &str, version: &str) -> Result<ModelCard> {
        let dir = self.version_dir(name, version)?;
        if !self.contains(name, version) {
            return Err(Error::NotFound(format!("model {name} version {version} is not in the repository")));
        }
        let card_path = dir.join(CARD_FILE);
        let bytes = read_file(&card_path)?;
        ModelCard::from_json(&bytes).map_err(|source| Error::Json { path: card_path, source })
    }

    /// Reads `name/version`, refusing it when the card is invalid, names another model, or its
    /// checksum does not match `model.onnx`.
    pub fn read(&self, name: &str, version: &str) -> Result<StoredModel> {
        let card = self.read_card(name, version)?;
        let refused = |reason: String| Error::ModelRefused {
            name: name.to_owned(),
            version: version.to_owned(),
            reason,
        };
        card.validate().map_err(refused)?;
        if card.name != name || card.version != version {
            return Err(refused(format!("its card names {}/{}", card.name, card.version)));
        }
        let onnx = read_file(&self.version_dir(name, version)?.join(MODEL_FILE))?;
        let actual = sha256_hex(&onnx);
        if actual != card.model_sha256 {
            return Err(refused(format!(
                "model.onnx has sha256 {actual}, the card says {}",
                card.model_sha256
            )));
        }
        Ok(StoredModel { card, onnx })
    }

    /// Adds a new version; the directory appears whole (staged, fsynced, renamed) or not at all.
    pub fn install(&self, model: &StoredModel, registration: &Registration) -> Result<()> {
        let name = &model.card.name;
        let version = &model.card.version;
        let target = self.version_dir(name, version)?;
        if target.exists() {
            return Err(Error::AlreadyExists { name: name.clone(), version: version.clone() });
        }
        let name_dir = self.root.join(name);
        fs::create_dir_all(&name_dir).map_err(|source| Error::io(&name_dir, source))?;
        let staging = name_dir.join(format!(".staging-{version}-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|source| Error::io(&staging, source))?;
        }
        fs::create_dir(&staging).map_err(|source| Error::io(&staging, source))?;
        let card_json = serde_json::to_vec_pretty(&model.card)
            .map_err(|source| Error::Json { path: staging.join(CARD_FILE), source })?;
        write_atomically(&staging.join(MODEL_FILE), &model.onnx)?;
        write_atomically(&staging.join(CARD_FILE), &card_json)?;
        let registration_json = serde_json::to_vec_pretty(registration)
            .map_err(|source| Error::Json { path: staging.join(REGISTRATION_FILE), source })?;
        write_atomically(&staging.join(REGISTRATION_FILE), &registration_json)?;
        fs::rename(&staging, &target).map_err(|source| Error::io(&target, source))?;
        sync_dir(&name_dir)
    }

    /// Reads the registration record of `name/version`; `None` for bundled models without one.
    pub fn read_registration(&self, name: &str, version: &str) -> Result<Option<Registration>> {
        let path = self.version_dir(name, version)?.join(REGISTRATION_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = read_file(&path)?;
        serde_json::from_slice(&bytes).map(Some).map_err(|source| Error::Json { path, source })
    }

    /// Modification time of the card, the registration time of bundled models.
    pub fn card_modified(&self, name: &str, version: &str) -> Option<std::time::SystemTime> {
        let path = self.version_dir(name, version).ok()?.join(CARD_FILE);
        fs::metadata(path).and_then(|meta| meta.modified()).ok()
    }

    /// Reads `state.json`; an absent file is the empty state.
    pub fn load_state(&self) -> Result<DeploymentState> {
        let path = self.root.join(STATE_FILE);
        if !path.exists() {
            return Ok(DeploymentState::default());
        }
        let bytes = read_file(&path)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
    }

    /// Writes `state.json` atomically.
    pub fn save_state(&self, state: &DeploymentState) -> Result<()> {
        let path = self.root.join(STATE_FILE);
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|source| Error::Json { path: path.clone(), source })?;
        write_atomically(&path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_model() -> StoredModel {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        Repository::open(root).expect("open").read("tfesi-test", "1").expect("bundled model reads")
    }

    fn registration() -> Registration {
        Registration {
            registered_at_unix_ms: 1,
            registered_by: "tester".to_owned(),
            self_test: SelfTestReport {
                passed: true,
                vectors: 3,
                max_abs_error: 0.0,
                tolerance: 1e-5,
                provider: crate::config::ProviderKind::Cpu,
                message: String::new(),
            },
        }
    }

    #[test]
    fn installed_model_reads_back_and_cannot_be_installed_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repository = Repository::open(dir.path()).expect("open");
        let model = test_model();
        repository.install(&model, &registration()).expect("install");
        assert_eq!(repository.list().expect("list"), vec![("tfesi-test".to_owned(), "1".to_owned())]);
        assert_eq!(repository.read("tfesi-test", "1").expect("read").onnx, model.onnx);
        assert_eq!(repository.read_registration("tfesi-test", "1").expect("record"), Some(registration()));
        assert!(matches!(repository.install(&model, &registration()), Err(Error::AlreadyExists { .. })));
    }

    #[test]
    fn model_whose_bytes_do_not_match_the_card_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repository = Repository::open(dir.path()).expect("open");
        repository.install(&test_model(), &registration()).expect("install");
        let onnx_path = dir.path().join("tfesi-test/1").join(MODEL_FILE);
        let mut bytes = fs::read(&onnx_path).expect("read");
        bytes[100] ^= 0xff;
        fs::write(&onnx_path, bytes).expect("write");
        let result = repository.read("tfesi-test", "1");
        assert!(matches!(result, Err(Error::ModelRefused { ref reason, .. }) if reason.contains("sha256")));
    }

    #[test]
    fn state_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repository = Repository::open(dir.path()).expect("open");
        assert_eq!(repository.load_state().expect("empty"), DeploymentState::default());
        let state = DeploymentState {
            champion: Some(ModelKey::new("m", "2")),
            shadow: Some(ModelKey::new("m", "3")),
            history: vec![ModelKey::new("m", "1")],
        };
        repository.save_state(&state).expect("save");
        let reopened = Repository::open(dir.path()).expect("reopen");
        assert_eq!(reopened.load_state().expect("load"), state);
    }

    #[test]
    fn path_components_are_refused_as_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repository = Repository::open(dir.path()).expect("open");
        assert!(matches!(repository.read("..", "1"), Err(Error::InvalidArgument { .. })));
    }
}
