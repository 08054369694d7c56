//! Redis tensor cache keyed by series content hash and spec version, with a TTL and a per-entry
//! size cap. Redis holds nothing that cannot be rebuilt: a miss or a Redis error costs only time.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::prepare::{SeriesTensor, TensorMeta};
use crate::spec;

const MAGIC: &[u8; 4] = b"TFT1";

/// Why a cache operation failed; callers treat every failure as a miss and log it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cached entry is corrupt: {0}")]
    Corrupt(String),
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Key prefix, e.g. `tfesi:preprocess:` (tests use a unique one).
    pub prefix: String,
    /// Time to live of an entry.
    pub ttl: Duration,
    /// Entries larger than this (encoded bytes) are not cached.
    pub max_entry_bytes: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            prefix: "tfesi:preprocess:".into(),
            ttl: Duration::from_secs(24 * 3600),
            max_entry_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    spec_version: String,
    shape: [usize; 3],
    meta: TensorMeta,
}

/// Encode a tensor: `TFT1`, u32 LE header length, JSON header, then f32 LE data.
pub fn encode(tensor: &SeriesTensor) -> Result<Vec<u8>, CacheError> {
    let header = serde_json::to_vec(&Header {
        spec_version: tensor.spec_version.to_string(),
        shape: tensor.shape,
        meta: tensor.meta.clone(),
    })
    .map_err(|error| CacheError::Corrupt(error.to_string()))?;
    let header_len =
        u32::try_from(header.len()).map_err(|_| CacheError::Corrupt("header too large".into()))?;
    let mut bytes = Vec::with_capacity(8 + header.len() + tensor.data.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(&header);
    for value in &tensor.data {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    Ok(bytes)
}

/// Decode what [`encode`] wrote; the spec version must be one this build knows.
pub fn decode(bytes: &[u8]) -> Result<SeriesTensor, CacheError> {
    let corrupt = |reason: &str| CacheError::Corrupt(reason.to_string());
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(corrupt("bad magic"));
    }
    let header_len = bytes
        .get(4..8)
        .and_then(|raw| raw.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("short header length"))? as usize;
    let header_end = 8usize.checked_add(header_len).ok_or_else(|| corrupt("header length overflow"))?;
    let header: Header =
        serde_json::from_slice(bytes.get(8..header_end).ok_or_else(|| corrupt("short header"))?)
            .map_err(|error| CacheError::Corrupt(error.to_string()))?;
    let known = spec::by_version(&header.spec_version).ok_or_else(|| corrupt("unknown spec version"))?;
    let payload = &bytes[header_end..];
    let expected = header.shape.iter().product::<usize>() * 4;
    if payload.len() != expected {
        return Err(corrupt("data length does not match the shape"));
    }
    let data = payload
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect();
    Ok(SeriesTensor { spec_version: known.version, shape: header.shape, data, meta: header.meta })
}

/// The tensor cache over a shared Redis connection manager.
#[derive(Clone)]
pub struct TensorCache {
    connection: ConnectionManager,
    settings: CacheSettings,
}

impl TensorCache {
    pub fn new(connection: ConnectionManager, settings: CacheSettings) -> Self {
        Self { connection, settings }
    }

    /// `<prefix>tensor:<spec version>:<series content hash>`.
    pub fn key(&self, content_hash: &str, spec_version: &str) -> String {
        format!("{}tensor:{spec_version}:{content_hash}", self.settings.prefix)
    }

    /// The cached tensor, or `None` on a miss. A corrupt entry is deleted and reported.
    pub async fn get(
        &self,
        content_hash: &str,
        spec_version: &str,
    ) -> Result<Option<SeriesTensor>, CacheError> {
        let key = self.key(content_hash, spec_version);
        let mut connection = self.connection.clone();
        let bytes: Option<Vec<u8>> = connection.get(&key).await?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        match decode(&bytes) {
            Ok(tensor) if tensor.spec_version == spec_version => Ok(Some(tensor)),
            Ok(_) => Err(CacheError::Corrupt("entry holds another spec version".into())),
            Err(error) => {
                let _: () = connection.del(&key).await?;
                Err(error)
            }
        }
    }

    /// Store a tensor with the TTL; returns false (and stores nothing) over the size cap.
    pub async fn put(&self, content_hash: &str, tensor: &SeriesTensor) -> Result<bool, CacheError> {
        let bytes = encode(tensor)?;
        if bytes.len() > self.settings.max_entry_bytes {
            return Ok(false);
        }
        let key = self.key(content_hash, tensor.spec_version);
        let mut connection = self.connection.clone();
        let _: () = connection.set_ex(&key, bytes, self.settings.ttl.as_secs().max(1)).await?;
        Ok(true)
    }
}
