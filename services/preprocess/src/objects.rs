//! Reads a series' instances from ingest's content-addressed object store, checking that each
//! object's bytes still hash to its name.

use sha2::{Digest, Sha256};
use tfesi_platform::objects::ObjectStore;

/// Why the instances of a series could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The name is not a lowercase hex SHA-256 (never turned into a path).
    #[error("object name `{0}` is not a sha256")]
    BadName(String),
    /// No object under that name.
    #[error("stored instance {0} is missing from the object store")]
    Missing(String),
    /// The bytes do not hash to the name.
    #[error("stored instance {sha256} does not match its hash (found {actual})")]
    HashMismatch { sha256: String, actual: String },
    /// The store could not be read (permissions, disk); retrying may help.
    #[error("object store read of {sha256} failed: {source}")]
    Io { sha256: String, source: std::io::Error },
    /// The blocking task failed.
    #[error("object store task failed: {0}")]
    Task(String),
}

impl LoadError {
    /// Whether reading again can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Task(_))
    }
}

fn is_sha256(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Reads and verifies every object, in order. Blocking.
pub fn load_blocking(store: &ObjectStore, names: &[String]) -> Result<Vec<Vec<u8>>, LoadError> {
    names
        .iter()
        .map(|name| {
            if !is_sha256(name) {
                return Err(LoadError::BadName(name.clone()));
            }
            let bytes = store.get(name).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    LoadError::Missing(name.clone())
                } else {
                    LoadError::Io { sha256: name.clone(), source }
                }
            })?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != *name {
                return Err(LoadError::HashMismatch { sha256: name.clone(), actual });
            }
            Ok(bytes)
        })
        .collect()
}

/// [`load_blocking`] on the blocking pool.
pub async fn load(store: ObjectStore, names: Vec<String>) -> Result<Vec<Vec<u8>>, LoadError> {
    tokio::task::spawn_blocking(move || load_blocking(&store, &names))
        .await
        .map_err(|error| LoadError::Task(error.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_verified_against_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let stored = store.put(b"instance bytes").unwrap();
        let loaded = load_blocking(&store, std::slice::from_ref(&stored.sha256)).unwrap();
        assert_eq!(loaded, vec![b"instance bytes".to_vec()]);

        std::fs::write(store.path_of(&stored.sha256), b"tampered").unwrap();
        let tampered = load_blocking(&store, std::slice::from_ref(&stored.sha256));
        assert!(matches!(tampered, Err(LoadError::HashMismatch { .. })), "{tampered:?}");

        let absent = "ab".repeat(32);
        assert!(matches!(load_blocking(&store, &[absent]), Err(LoadError::Missing(_))));
        let traversal = "../../etc/passwd".to_owned();
        assert!(matches!(load_blocking(&store, &[traversal]), Err(LoadError::BadName(_))));
    }
}
