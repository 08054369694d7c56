//! Series bytes to a tensor for async callers: cache lookup, CPU work off the runtime
//! (spawn_blocking), cache fill, and the chunking used to stream the tensor.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cache::TensorCache;
use crate::decode::{DecodeLimits, decode_instance};
use crate::error::{Error, Result};
use crate::prepare::{SeriesTensor, prepare_series, series_content_hash};
use crate::spec::PrepSpec;

/// A tensor with how it was obtained.
#[derive(Debug, Clone)]
pub struct PreparedTensor {
    pub tensor: SeriesTensor,
    /// Series content hash (with the spec version, the cache key).
    pub content_hash: String,
    pub cache_hit: bool,
    /// Time spent decoding and resampling (zero on a cache hit).
    pub compute_time: Duration,
}

/// Decode and prepare on the calling thread (blocking).
pub fn prepare_blocking(
    instances: &[Vec<u8>],
    spec: &PrepSpec,
    limits: &DecodeLimits,
) -> Result<SeriesTensor> {
    let decoded = instances.iter().map(|bytes| decode_instance(bytes, limits)).collect::<Result<Vec<_>>>()?;
    prepare_series(&decoded, spec)
}

/// The tensor of a series given as its instance files: from the cache when present, otherwise
/// computed on the blocking pool and cached. Cache failures are logged and cost only time.
pub async fn prepare_instances(
    instances: Vec<Vec<u8>>,
    spec: PrepSpec,
    limits: DecodeLimits,
    cache: Option<&TensorCache>,
) -> Result<PreparedTensor> {
    let content_hash = series_content_hash(instances.iter().map(Vec::as_slice));
    if let Some(cache) = cache {
        match cache.get(&content_hash, spec.version).await {
            Ok(Some(tensor)) => {
                return Ok(PreparedTensor {
                    tensor,
                    content_hash,
                    cache_hit: true,
                    compute_time: Duration::ZERO,
                });
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, series_content_sha256 = %content_hash, "tensor cache read failed")
            }
        }
    }
    let started = Instant::now();
    let tensor = tokio::task::spawn_blocking(move || prepare_blocking(&instances, &spec, &limits))
        .await
        .map_err(|error| Error::Internal(format!("preprocessing task failed: {error}")))??;
    let compute_time = started.elapsed();
    if let Some(cache) = cache
        && let Err(error) = cache.put(&content_hash, &tensor).await
    {
        tracing::warn!(%error, series_content_sha256 = %content_hash, "tensor cache write failed");
    }
    Ok(PreparedTensor { tensor, content_hash, cache_hit: false, compute_time })
}

/// SHA-256 (hex) of the packed little-endian f32 tensor data.
pub fn tensor_sha256(data: &[f32]) -> String {
    let mut hasher = Sha256::new();
    for value in data {
        hasher.update(value.to_le_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Split the packed little-endian tensor into chunks of at most `max_chunk_bytes` (rounded down
/// to whole floats, at least one float), each with its byte offset.
pub fn chunks(data: &[f32], max_chunk_bytes: usize) -> impl Iterator<Item = (u64, Vec<u8>)> + '_ {
    let floats_per_chunk = (max_chunk_bytes / 4).max(1);
    data.chunks(floats_per_chunk).enumerate().map(move |(index, chunk)| {
        let offset = (index * floats_per_chunk * 4) as u64;
        let bytes = chunk.iter().flat_map(|value| value.to_le_bytes()).collect();
        (offset, bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_to_the_tensor_with_correct_offsets() {
        let data: Vec<f32> = (0..1001).map(|i| i as f32 * 0.5).collect();
        let mut joined = Vec::new();
        for (offset, bytes) in chunks(&data, 64) {
            assert_eq!(offset as usize, joined.len());
            assert!(bytes.len() <= 64 && bytes.len() % 4 == 0);
            joined.extend(bytes);
        }
        let packed: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(joined, packed);
        let mut hasher = Sha256::new();
        hasher.update(&packed);
        assert_eq!(tensor_sha256(&data), hex::encode(hasher.finalize()));
    }
}
