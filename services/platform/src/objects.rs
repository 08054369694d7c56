//! Content-addressed store of de-identified instances on the local filesystem: sha256 names, written to a temporary file, fsynced, renamed, directory fsynced. Ingest writes it; preprocess reads it.
//!
//! object_store 0.14's `LocalFileSystem::put` stages and renames but does not fsync the file or
//! the directory, which breaks "acknowledged means written, fsynced and renamed"; this module
//! therefore writes with std::fs itself. The layout (`<root>/<aa>/<sha256>.dcm`) is readable by
//! an object_store `LocalFileSystem` rooted at the same directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The `storage` section of the services that use the object store: ingest writes it,
/// preprocess reads the same directory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Root directory of the content-addressed store (ingest's and preprocess's must be the same).
    pub root: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { root: PathBuf::from("data/objects") }
    }
}

/// A content-addressed directory of objects.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

/// Result of a put: the object's name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl ObjectStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    /// Where the object with this hash lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("00");
        self.root.join(prefix).join(format!("{sha256}.dcm"))
    }

    /// Stores bytes under their sha256; idempotent. No partial file is ever visible under the
    /// final name. Blocking: call from `spawn_blocking` in async code.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<StoredObject> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let size = bytes.len() as u64;
        let final_path = self.path_of(&sha256);
        if final_path.exists() {
            return Ok(StoredObject { sha256, size });
        }
        let dir = final_path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&dir)?;
        let temp_path =
            self.root.join("tmp").join(format!("{sha256}.{}.{}.partial", writer_tag(), uuid::Uuid::new_v4()));
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&temp_path)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp_path, &final_path)?;
            File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ignored = fs::remove_file(&temp_path);
        }
        result.map(|()| StoredObject { sha256, size })
    }

    /// Removes partial files a crashed writer left in `tmp/`: those of a process of this host
    /// that no longer runs, and any older than `max_age` (a writer on another host that died).
    /// Partial files are never visible under an object's name, so this only reclaims space.
    /// Returns how many were removed.
    pub fn sweep_stale_partials(&self, max_age: std::time::Duration) -> std::io::Result<usize> {
        let (host, own_pid) = (hostname(), std::process::id());
        let mut removed = 0;
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".partial") else { continue };
            // <sha256>.<host>-<pid>.<uuid>
            let writer = stem.split('.').nth(1).unwrap_or_default();
            let dead_here = writer
                .rsplit_once('-')
                .filter(|(writer_host, _)| *writer_host == host)
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != own_pid && !Path::new(&format!("/proc/{pid}")).exists());
            let too_old = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if (dead_here || too_old) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Reads an object back.
    pub fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        fs::read(self.path_of(sha256))
    }
}

/// This host's name, as partial file names record it (`-` replaced so the pid stays last).
fn hostname() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".to_owned());
    name.trim().replace(['-', '.', '/'], "_")
}

/// Who writes a partial file: host and process id.
fn writer_tag() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_idempotent_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::open(dir.path()).expect("open");
        let a = store.put(b"hello").expect("put");
        let b = store.put(b"hello").expect("put again");
        assert_eq!(a, b);
        assert_eq!(store.get(&a.sha256).expect("get"), b"hello");
        let leftovers = fs::read_dir(dir.path().join("tmp")).expect("tmp").count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn partials_of_dead_writers_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ObjectStore::open(dir.path()).expect("open");
        let tmp = dir.path().join("tmp");
        let sha = "ab".repeat(32);
        // A pid that is not running (beyond the kernel's pid range) on this host, and this process.
        let dead = tmp.join(format!("{sha}.{}-4194305.{}.partial", hostname(), uuid::Uuid::new_v4()));
        let live = tmp.join(format!("{sha}.{}.{}.partial", writer_tag(), uuid::Uuid::new_v4()));
        let elsewhere = tmp.join(format!("{sha}.otherhost-1.{}.partial", uuid::Uuid::new_v4()));
        for path in [&dead, &live, &elsewhere] {
            fs::write(path, b"half").expect("write");
        }
        let removed = store.sweep_stale_partials(std::time::Duration::from_secs(3600)).expect("sweep");
        assert_eq!(removed, 1);
        assert!(!dead.exists() && live.exists() && elsewhere.exists());
        let removed = store.sweep_stale_partials(std::time::Duration::ZERO).expect("sweep");
        assert_eq!(removed, 2, "anything older than the age limit goes");
    }
}
