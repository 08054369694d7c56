//! Fuzz target: preprocess's series-to-tensor, the work `Prepare` and the pipeline worker do
//! (`tfesi_preprocess::service::prepare_blocking`: `decode_instance` on each instance, then
//! `prepare_series` under the current spec) with the production limits, on 1-4 instances split
//! out of the input (format: `tfesi_fuzz::SeriesInput`). It runs on a thread with a 2 MiB stack,
//! tokio's default for the blocking pool that runs it in the service.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfesi_fuzz::SeriesInput;
use tfesi_preprocess::decode::{DecodeLimits, DecodedInstance, decode_instance};
use tfesi_preprocess::prepare::prepare_series;
use tfesi_preprocess::spec;

const BLOCKING_POOL_STACK: usize = 2 * 1024 * 1024;

fn run(input: &SeriesInput<'_>) {
    let spec = spec::CURRENT;
    let limits = DecodeLimits::default();
    // prepare_blocking, inlined so the decoded instances can be reused below.
    let Ok(decoded) =
        input.instances.iter().map(|bytes| decode_instance(bytes, &limits)).collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let _ = prepare_series(&decoded, &spec);
    if !input.replicate {
        return;
    }
    // A series of spec.slices frames built from the first instance's first frame, stepped along
    // its plane normal: the fuzzed pixels, rescale and geometry reach every stage.
    let Some(first) = decoded.first() else { return };
    let Ok(geometry) = &first.geometry else { return };
    let (Some(&plane), Some(&rescale)) = (geometry.first(), first.rescale.first()) else { return };
    if first.frames() == 0 {
        return;
    }
    let stored = first.stored.slice(ndarray::s![0..1, .., .., ..]).to_owned();
    let r = plane.row_direction;
    let c = plane.column_direction;
    let normal = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]];
    let series: Vec<DecodedInstance> = (0..spec.slices)
        .map(|k| {
            let mut slice = plane;
            for axis in 0..3 {
                slice.position[axis] += normal[axis] * input.spacing_mm * k as f64;
            }
            DecodedInstance {
                transfer_syntax_uid: first.transfer_syntax_uid.clone(),
                transfer_syntax_name: first.transfer_syntax_name.clone(),
                sop_instance_uid: None,
                stored: stored.clone(),
                rescale: vec![rescale],
                geometry: Ok(vec![slice]),
            }
        })
        .collect();
    let _ = prepare_series(&series, &spec);
}

fuzz_target!(
    init: { tfesi_fuzz::install_panic_policy(); },
    |data: &[u8]| {
        let Some(input) = SeriesInput::split(data) else { return };
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("series-tensor".into())
                .stack_size(BLOCKING_POOL_STACK)
                .spawn_scoped(scope, || run(&input))
                .expect("cannot start the worker thread");
            // A panic in the worker is an uncaught panic in the service: re-raise it here.
            if let Err(payload) = worker.join() {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                eprintln!("fuzz: uncaught panic in series-to-tensor: {message}");
                std::panic::resume_unwind(payload);
            }
        });
    }
);
