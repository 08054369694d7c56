//! Mutation smoke test of series-to-tensor, the work of the `series_tensor` fuzz target
//! (fuzz/fuzz_targets/series_tensor.rs) on stable Rust: `decode_instance` on every corpus file
//! and a fixed number of deterministic mutants of each (ingest's tests/common/mutate.rs), then
//! `prepare_series` under the current spec on series of 1-4 of the latest decoded instances, on a
//! stack of `spec.slices` copies of each decoded instance's first frame (as the target does with
//! `flags & 4`), and on a valid synthetic series with one instance replaced by a mutant of it.
//! Errors are fine; a panic that escapes fails the test. `TFESI_MUTATION_ITERATIONS` sets the
//! mutants per file for longer runs by hand (docs/fuzzing.md).

#[path = "../../ingest/tests/common/mutate.rs"]
mod mutate;
// The valid synthetic series of the integration tests (only `render_series` is used here),
// under the lints of tests/integration/main.rs.
#[allow(dead_code, clippy::unwrap_used)]
#[path = "integration/series.rs"]
mod series;

use tfesi_preprocess::Result;
use tfesi_preprocess::decode::{DecodeLimits, DecodedInstance, decode_instance};
use tfesi_preprocess::prepare::{SeriesTensor, prepare_series};
use tfesi_preprocess::spec;

/// About 10 s in a debug build on a 2-core machine (docs/fuzzing.md).
const MUTANTS_PER_FILE: usize = 60;
/// tokio's default stack for the blocking pool, where the service runs this work.
const BLOCKING_POOL_STACK: usize = 2 * 1024 * 1024;
/// Instances of the synthetic series that are mutated (its slices are all alike).
const SYNTHETIC_SEEDS: [usize; 2] = [0, 5];

#[test]
fn series_to_tensor_survives_mutated_corpus_files() {
    let worker = std::thread::Builder::new()
        .name("series-tensor".into())
        .stack_size(BLOCKING_POOL_STACK)
        .spawn(run)
        .expect("start the worker thread");
    if let Err(payload) = worker.join() {
        std::panic::resume_unwind(payload);
    }
}

fn run() {
    let limits = DecodeLimits::default();
    let params = series::SeriesParams {
        slices: 12,
        rows: 160,
        columns: 160,
        pixel_spacing_mm: 1.875,
        ..Default::default()
    };
    let files = series::render_series(&params);
    let mut synthetic: Vec<DecodedInstance> = files
        .iter()
        .map(|file| decode_instance(file, &limits).expect("the synthetic series decodes"))
        .collect();
    prepare_series(&synthetic, &spec::CURRENT).expect("the synthetic series prepares");
    let extra = SYNTHETIC_SEEDS.iter().map(|&k| (format!("synthetic/slice-{k}"), files[k].clone())).collect();
    let mut recent: Vec<DecodedInstance> = Vec::new();
    mutate::campaign("series_tensor", MUTANTS_PER_FILE, extra, |input, tally| {
        let kind = if input.index.is_some() { "mutants" } else { "seeds" };
        let decoded = match decode_instance(input.bytes, &limits) {
            Ok(decoded) => decoded,
            Err(error) => {
                tally.count(format!("{kind} decode refused ({})", variant(&error)));
                return;
            }
        };
        tally.count(format!("{kind} decoded"));
        let mut rng = input.rng();
        let spacing_mm = rng.below(256) as f64 / 10.0;
        if let Some(stack) = stack_of(&decoded, spec::CURRENT.slices, spacing_mm) {
            count(tally, "stack", prepare_series(&stack, &spec::CURRENT));
        }
        if let Some(k) = input.name.strip_prefix("synthetic/slice-").and_then(|k| k.parse::<usize>().ok()) {
            let original = std::mem::replace(&mut synthetic[k], decoded);
            count(tally, "synthetic series", prepare_series(&synthetic, &spec::CURRENT));
            synthetic[k] = original;
            return;
        }
        recent.push(decoded);
        if recent.len() > 4 {
            recent.remove(0);
        }
        let take = 1 + rng.below(recent.len());
        count(tally, "series", prepare_series(&recent[recent.len() - take..], &spec::CURRENT));
    });
}

fn count(tally: &mut mutate::Tally, what: &str, result: Result<SeriesTensor>) {
    match result {
        Ok(_) => tally.count(format!("{what} prepared")),
        Err(error) => tally.count(format!("{what} refused ({})", variant(&error))),
    }
}

/// The error's variant name, for the counts.
fn variant(error: &tfesi_preprocess::Error) -> String {
    let debug = format!("{error:?}");
    debug.split(['(', ' ', '{']).next().unwrap_or_default().to_string()
}

/// `slices` instances made of `decoded`'s first frame, its rescale and its plane, stepped
/// `spacing_mm` apart along the plane's normal: the mutated pixels and geometry reach every stage
/// of `prepare_series`, which a single corpus file alone (too few slices) does not.
fn stack_of(decoded: &DecodedInstance, slices: usize, spacing_mm: f64) -> Option<Vec<DecodedInstance>> {
    let plane = *decoded.geometry.as_ref().ok()?.first()?;
    let rescale = *decoded.rescale.first()?;
    if decoded.frames() == 0 {
        return None;
    }
    let frame = decoded.stored.slice(ndarray::s![..1, .., .., ..]).to_owned();
    let [r, c] = [plane.row_direction, plane.column_direction];
    let normal = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
    let stack = (0..slices).map(|k| {
        let mut geometry = plane;
        geometry.position = std::array::from_fn(|a| plane.position[a] + normal[a] * spacing_mm * k as f64);
        DecodedInstance {
            transfer_syntax_uid: decoded.transfer_syntax_uid.clone(),
            transfer_syntax_name: decoded.transfer_syntax_name.clone(),
            sop_instance_uid: None,
            stored: frame.clone(),
            rescale: vec![rescale],
            geometry: Ok(vec![geometry]),
        }
    });
    Some(stack.collect())
}
