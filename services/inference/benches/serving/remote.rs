//! Calling a `tfesi.inference.v1.Inference/Predict` server over gRPC on 127.0.0.1: one caller
//! in sequence, or many callers at once sharing one channel (HTTP/2 streams on one connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tfesi_inference::config::ProviderKind;
use tfesi_proto::inference::v1 as pb;
use tfesi_proto::inference::v1::inference_client::InferenceClient;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::inputs::Inputs;
use crate::stats::Run;

/// Longest a single Predict may take before the bench gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected client of one server.
#[derive(Clone)]
pub struct Remote {
    client: InferenceClient<Channel>,
    authorization: Option<MetadataValue<Ascii>>,
}

/// How one call ended: answered (with the first row's probability and the execution provider
/// the server says it ran on) or refused for load.
enum Outcome {
    Answered(f64, i32),
    Refused,
}

/// The `tfesi.common.v1.ExecutionProvider` code a server reports for `provider`.
pub fn provider_code(provider: ProviderKind) -> i32 {
    tfesi_inference::convert::provider(provider) as i32
}

impl Remote {
    /// Connects to `address`; with `token`, every call carries `authorization: Bearer <token>`.
    pub async fn connect(address: SocketAddr, token: Option<&str>) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
        let authorization = token.map(|token| format!("Bearer {token}").parse().expect("a token is ascii"));
        Self { client: InferenceClient::new(channel), authorization }
    }

    async fn call(&self, body: pb::PredictRequest) -> Outcome {
        let mut request = tonic::Request::new(body);
        request.set_timeout(CALL_TIMEOUT);
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        match self.client.clone().predict(request).await {
            Ok(answer) => {
                let results = answer.into_inner().results;
                assert_eq!(results.len(), 1, "one result per row");
                let prediction = results[0].prediction.as_ref().expect("a prediction");
                Outcome::Answered(prediction.probability, prediction.execution_provider)
            }
            Err(status) if status.code() == Code::ResourceExhausted => Outcome::Refused,
            Err(status) => panic!("Predict failed: {status}"),
        }
    }

    /// Sends `body`: true when answered, false when refused for load.
    pub async fn answer(&self, body: pb::PredictRequest) -> bool {
        matches!(self.call(body).await, Outcome::Answered(..))
    }

    /// The probability predicted for `row` (for the agreement check).
    pub async fn predict(&self, inputs: &Inputs, row: usize) -> (f64, i32) {
        match self.call(inputs.requests[row].clone()).await {
            Outcome::Answered(probability, provider) => (probability, provider),
            Outcome::Refused => panic!("Predict was refused while idle"),
        }
    }

    /// `count` single-row requests, each sent when the previous one is answered. The request is
    /// copied from the prepared ones before the clock starts.
    pub async fn sequential(&self, inputs: &Inputs, count: usize) -> Run {
        let mut latencies_us = Vec::with_capacity(count);
        let mut refused = 0;
        let started = Instant::now();
        for index in 0..count {
            let body = inputs.requests[index % inputs.len()].clone();
            let sent = Instant::now();
            match self.call(body).await {
                Outcome::Answered(..) => latencies_us.push(sent.elapsed().as_secs_f64() * 1e6),
                Outcome::Refused => refused += 1,
            }
        }
        Run { latencies_us, wall: started.elapsed(), refused }
    }

    /// `count` single-row requests from `callers` concurrent callers, each sending its next
    /// request as soon as its previous one is answered.
    pub async fn concurrent(&self, inputs: &Arc<Inputs>, count: usize, callers: usize) -> Run {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..callers {
            let (remote, inputs, next) = (self.clone(), Arc::clone(inputs), Arc::clone(&next));
            tasks.spawn(async move {
                let mut latencies_us = Vec::new();
                let mut refused = 0;
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break (latencies_us, refused);
                    }
                    let body = inputs.requests[index % inputs.len()].clone();
                    let sent = Instant::now();
                    match remote.call(body).await {
                        Outcome::Answered(..) => latencies_us.push(sent.elapsed().as_secs_f64() * 1e6),
                        Outcome::Refused => refused += 1,
                    }
                }
            });
        }
        let mut run = Run { latencies_us: Vec::with_capacity(count), wall: Duration::ZERO, refused: 0 };
        while let Some(joined) = tasks.join_next().await {
            let (latencies_us, refused) = joined.expect("a caller task");
            run.latencies_us.extend(latencies_us);
            run.refused += refused;
        }
        run.wall = started.elapsed();
        run
    }
}
