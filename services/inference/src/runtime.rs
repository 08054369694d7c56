//! Finds and loads the ONNX Runtime library (ort feature `load-dynamic`) once per process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result, cause_chain};

/// ONNX Runtime version that `scripts/setup-onnxruntime.sh` installs and ort rc.15 expects.
pub const ORT_VERSION: &str = "1.31.1";

/// Environment variable naming the library file explicitly (also read by ort itself).
pub const ORT_DYLIB_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// The process-wide ONNX Runtime: the library it came from and its environment.
#[derive(Debug)]
pub struct Runtime {
    library_path: PathBuf,
    environment: ort::environment::Environment,
}

impl Runtime {
    /// The library file that was loaded.
    pub fn library_path(&self) -> &Path {
        &self.library_path
    }

    /// The ONNX Runtime environment sessions are built from.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }
}

/// Where `scripts/setup-onnxruntime.sh` puts the library:
/// `${TFESI_CACHE_DIR:-$HOME/.cache/tfesi}/onnxruntime/1.31.1/libonnxruntime.so.1.31.1`.
pub fn cache_library_path() -> PathBuf {
    let cache_dir = match std::env::var_os("TFESI_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache").join("tfesi")
        }
    };
    cache_dir.join("onnxruntime").join(ORT_VERSION).join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

/// Picks the library file: the configured path, else `ORT_DYLIB_PATH`, else the cache path.
/// Fails with a one-line error naming the path and the fix when the file is not there.
pub fn resolve_library_path(configured: Option<&Path>) -> Result<PathBuf> {
    let from_env = std::env::var_os(ORT_DYLIB_PATH_ENV).filter(|value| !value.is_empty()).map(PathBuf::from);
    let path = configured.map(Path::to_path_buf).or(from_env).unwrap_or_else(cache_library_path);
    if path.is_file() { Ok(path) } else { Err(Error::RuntimeMissing { path }) }
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// Loads ONNX Runtime and builds its environment, once per process; later calls return the same
/// runtime (the library cannot be swapped inside a running process).
pub fn init(configured: Option<&Path>) -> Result<Arc<Runtime>> {
    let mut slot = RUNTIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(runtime) = slot.as_ref() {
        return Ok(Arc::clone(runtime));
    }
    let library_path = resolve_library_path(configured)?;
    let builder = ort::init_from(&library_path)
        .map_err(|error| Error::RuntimeInit { path: library_path.clone(), chain: cause_chain(&error) })?;
    let environment = builder
        .with_name("tfesi-inference")
        .with_telemetry(false)
        .build()
        .map_err(|error| Error::RuntimeInit { path: library_path.clone(), chain: cause_chain(&error) })?;
    tracing::info!(path = %library_path.display(), version = ORT_VERSION, "onnx runtime loaded");
    let runtime = Arc::new(Runtime { library_path, environment });
    *slot = Some(Arc::clone(&runtime));
    Ok(runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_configured_library_names_the_path_and_the_fix() {
        let missing = Path::new("/nonexistent/libonnxruntime.so.1.31.1");
        let Err(error) = resolve_library_path(Some(missing)) else {
            panic!("a missing library must be an error");
        };
        let message = error.to_string();
        assert!(message.contains("/nonexistent/libonnxruntime.so.1.31.1"), "{message}");
        assert!(message.contains("scripts/setup-onnxruntime.sh"), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn cache_path_ends_with_the_pinned_version() {
        let path = cache_library_path();
        assert!(path.ends_with("onnxruntime/1.31.1/libonnxruntime.so.1.31.1"), "{}", path.display());
    }
}
