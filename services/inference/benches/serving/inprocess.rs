//! The limit: the same ONNX file run directly with the `ort` crate in the bench process, with the
//! service's default session settings (one intra-op thread, one session per core).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ort::session::Session;
use ort::value::TensorRef;

use tfesi_inference::config::{ProviderKind, RuntimeConfig};
use tfesi_inference::session::build_session;

use crate::inputs::{CLINICAL_WIDTH, IMAGE_DIMS, Inputs};
use crate::stats::Run;

/// One session per worker thread, as the service's batcher has.
pub struct InProcess {
    sessions: Vec<Session>,
}

impl InProcess {
    /// Loads ONNX Runtime the way the service does (configured path, `ORT_DYLIB_PATH`, then the
    /// setup script's cache) and builds `config.sessions_per_model` sessions of `onnx_file`.
    pub fn new(onnx_file: &Path, config: &RuntimeConfig) -> Self {
        let runtime = tfesi_inference::runtime::init(None).expect("onnx runtime (run scripts/setup.sh)");
        let onnx = std::fs::read(onnx_file).expect("read the model");
        let use_cuda = config.provider == ProviderKind::Cuda;
        let sessions = (0..config.sessions_per_model)
            .map(|_| {
                // The service's own session settings; on CUDA with `error_on_failure`, so the
                // limit never silently runs on the CPU.
                build_session(&runtime, config, &onnx, use_cuda).unwrap_or_else(|error| {
                    panic!("an onnx runtime session of the model on {}: {error:?}", config.provider.as_str())
                })
            })
            .collect();
        Self { sessions }
    }

    /// Predicts one row.
    pub fn predict(session: &mut Session, inputs: &Inputs, row: usize) -> f32 {
        let [slices, height, width] = IMAGE_DIMS;
        let image = TensorRef::from_array_view(([1, slices, height, width], inputs.images[row].as_slice()))
            .expect("image tensor");
        let clinical = TensorRef::from_array_view(([1, CLINICAL_WIDTH], inputs.clinical[row].as_slice()))
            .expect("clinical tensor");
        let outputs = session.run(ort::inputs!["image" => image, "clinical" => clinical]).expect("run");
        let (_, values) = outputs["p_good_outcome"].try_extract_tensor::<f32>().expect("output tensor");
        values[0]
    }

    /// `count` single-row predictions, one after the other, on the first session.
    pub fn sequential(&mut self, inputs: &Inputs, count: usize) -> Run {
        let session = &mut self.sessions[0];
        let mut latencies_us = Vec::with_capacity(count);
        let started = Instant::now();
        for index in 0..count {
            let sent = Instant::now();
            std::hint::black_box(Self::predict(session, inputs, index % inputs.len()));
            latencies_us.push(sent.elapsed().as_secs_f64() * 1e6);
        }
        Run { latencies_us, wall: started.elapsed(), refused: 0 }
    }

    /// `count` single-row predictions shared by one thread per session, each thread taking the
    /// next row as soon as its previous one is done.
    pub fn concurrent(&mut self, inputs: &Inputs, count: usize) -> Run {
        let next = AtomicUsize::new(0);
        let started = Instant::now();
        let per_thread: Vec<Vec<f64>> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .sessions
                .iter_mut()
                .map(|session| {
                    let next = &next;
                    scope.spawn(move || {
                        let mut latencies_us = Vec::new();
                        loop {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            if index >= count {
                                break latencies_us;
                            }
                            let sent = Instant::now();
                            std::hint::black_box(Self::predict(session, inputs, index % inputs.len()));
                            latencies_us.push(sent.elapsed().as_secs_f64() * 1e6);
                        }
                    })
                })
                .collect();
            workers.into_iter().map(|worker| worker.join().expect("in-process worker")).collect()
        });
        let wall = started.elapsed();
        Run { latencies_us: per_thread.concat(), wall, refused: 0 }
    }

    /// The session the sequential runs use.
    pub fn first_session(&mut self) -> &mut Session {
        &mut self.sessions[0]
    }

    /// Sessions (threads) used under concurrent load.
    pub fn threads(&self) -> usize {
        self.sessions.len()
    }
}
