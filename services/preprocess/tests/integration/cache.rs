//! The Redis tensor cache against the local Redis (unique key prefix per test, cleaned up).

use std::time::Duration;

use redis::AsyncCommands;
use tfesi_preprocess::cache::{CacheSettings, TensorCache};
use tfesi_preprocess::decode::{DecodeLimits, decode_instance};
use tfesi_preprocess::prepare::{SeriesTensor, prepare_series, series_content_hash};
use tfesi_preprocess::spec::SPEC_V1;

use crate::series::{SeriesParams, render_series};

async fn cache(max_entry_bytes: usize) -> (TensorCache, redis::aio::ConnectionManager, String) {
    let client = redis::Client::open("redis://127.0.0.1:6379/").unwrap();
    let connection = redis::aio::ConnectionManager::new(client).await.expect("redis at 127.0.0.1:6379");
    let prefix = format!("test:preprocess:{}:", std::process::id() as u64 * 1000 + u64::from(rand_suffix()));
    let settings = CacheSettings { prefix: prefix.clone(), ttl: Duration::from_secs(60), max_entry_bytes };
    (TensorCache::new(connection.clone(), settings), connection, prefix)
}

fn rand_suffix() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos % 1000) as u16
}

async fn cleanup(connection: &mut redis::aio::ConnectionManager, prefix: &str) {
    let keys: Vec<String> = connection.keys(format!("{prefix}*")).await.unwrap();
    for key in keys {
        let _: () = connection.del(key).await.unwrap();
    }
}

fn tensor_and_hash() -> (SeriesTensor, String) {
    let files = render_series(&SeriesParams {
        rows: 128,
        columns: 128,
        pixel_spacing_mm: 2.0,
        ..SeriesParams::default()
    });
    let instances: Vec<_> =
        files.iter().map(|f| decode_instance(f, &DecodeLimits::default()).unwrap()).collect();
    let hash = series_content_hash(files.iter().map(Vec::as_slice));
    (prepare_series(&instances, &SPEC_V1).unwrap(), hash)
}

#[tokio::test]
async fn a_cached_tensor_comes_back_identical_with_a_ttl_and_a_loss_is_only_a_miss() {
    let (cache, mut connection, prefix) = cache(64 * 1024 * 1024).await;
    let (tensor, hash) = tensor_and_hash();
    assert!(cache.get(&hash, SPEC_V1.version).await.unwrap().is_none());
    assert!(cache.put(&hash, &tensor).await.unwrap());
    let cached = cache.get(&hash, SPEC_V1.version).await.unwrap().unwrap();
    assert_eq!(cached.data, tensor.data);
    assert_eq!(cached.meta, tensor.meta);
    let ttl: i64 = connection.ttl(cache.key(&hash, SPEC_V1.version)).await.unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    cleanup(&mut connection, &prefix).await;
    assert!(cache.get(&hash, SPEC_V1.version).await.unwrap().is_none());
}

#[tokio::test]
async fn entries_over_the_size_cap_are_not_stored_and_corrupt_ones_are_dropped() {
    let (cache, mut connection, prefix) = cache(1024).await;
    let (tensor, hash) = tensor_and_hash();
    assert!(!cache.put(&hash, &tensor).await.unwrap());
    assert!(cache.get(&hash, SPEC_V1.version).await.unwrap().is_none());
    let key = cache.key(&hash, SPEC_V1.version);
    let _: () = connection.set(&key, b"TFT1garbage".to_vec()).await.unwrap();
    assert!(cache.get(&hash, SPEC_V1.version).await.is_err());
    let exists: bool = connection.exists(&key).await.unwrap();
    assert!(!exists, "a corrupt entry must be removed");
    cleanup(&mut connection, &prefix).await;
}

#[test]
fn the_content_hash_does_not_depend_on_instance_order() {
    let files = render_series(&SeriesParams { rows: 32, columns: 32, ..SeriesParams::default() });
    let forward = series_content_hash(files.iter().map(Vec::as_slice));
    let backward = series_content_hash(files.iter().rev().map(Vec::as_slice));
    assert_eq!(forward, backward);
    let fewer = series_content_hash(files.iter().skip(1).map(Vec::as_slice));
    assert_ne!(forward, fewer);
}

#[tokio::test]
async fn prepare_instances_computes_once_then_serves_from_the_cache() {
    use tfesi_preprocess::service::prepare_instances;
    let (cache, mut connection, prefix) = cache(64 * 1024 * 1024).await;
    let files = render_series(&SeriesParams {
        rows: 128,
        columns: 128,
        pixel_spacing_mm: 2.0,
        ..SeriesParams::default()
    });
    let first =
        prepare_instances(files.clone(), SPEC_V1, DecodeLimits::default(), Some(&cache)).await.unwrap();
    assert!(!first.cache_hit);
    let reversed: Vec<Vec<u8>> = files.into_iter().rev().collect();
    let second = prepare_instances(reversed, SPEC_V1, DecodeLimits::default(), Some(&cache)).await.unwrap();
    assert!(second.cache_hit, "same instances in another order must hit the cache");
    assert_eq!(second.compute_time, Duration::ZERO);
    assert_eq!(first.tensor.data, second.tensor.data);
    cleanup(&mut connection, &prefix).await;
}

#[tokio::test]
async fn a_corrupt_instance_is_a_permanent_error_not_a_tensor() {
    use tfesi_preprocess::service::prepare_instances;
    let mut files = render_series(&SeriesParams { rows: 64, columns: 64, ..SeriesParams::default() });
    let last = files[3].len();
    files[3].truncate(last - 100);
    let error = prepare_instances(files, SPEC_V1, DecodeLimits::default(), None).await.unwrap_err();
    assert!(error.is_permanent(), "{error}");
}
