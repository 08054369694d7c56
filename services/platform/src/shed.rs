//! Load shedding: a bound on the requests a server holds at once, across all connections.
//!
//! A request over the bound is answered RESOURCE_EXHAUSTED from its headers alone, before its
//! body is read or decoded, so a refusal costs microseconds and memory stays bounded by the
//! bound times `server.max_message_bytes` whatever the offered load. Admitted requests keep the
//! machine's capacity to themselves and finish in their usual time; the service recovers as
//! soon as the load falls, with nothing to reset. Health checks are never refused (probes must
//! see the truth under load) and are not counted.
//!
//! A request holds its slot until its handler has answered: the whole of a unary or
//! client-streaming call (an upload is bounded too), the start of a server stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

/// The [`Layer`] of [`LoadShed`]; its clones share one count.
#[derive(Clone, Debug)]
pub struct LoadShedLayer {
    state: Arc<InFlight>,
}

#[derive(Debug)]
struct InFlight {
    count: AtomicUsize,
    limit: usize,
}

/// Gives a slot back when the request it was taken for is answered (or abandoned).
struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LoadShedLayer {
    /// At most `limit` requests (health checks aside) at once.
    pub fn new(limit: usize) -> Self {
        Self { state: Arc::new(InFlight { count: AtomicUsize::new(0), limit: limit.max(1) }) }
    }

    /// Requests held right now.
    pub fn in_flight(&self) -> usize {
        self.state.count.load(Ordering::Acquire)
    }

    fn try_take(&self) -> Option<Slot> {
        let taken = self.state.count.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot(Arc::clone(&self.state));
        (taken <= self.state.limit).then_some(slot)
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed { inner, shed: self.clone() }
    }
}

/// The service [`LoadShedLayer`] produces.
#[derive(Clone, Debug)]
pub struct LoadShed<S> {
    inner: S,
    shed: LoadShedLayer,
}

fn exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for LoadShed<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RequestBody: Send + 'static,
    ResponseBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let slot = if exempt(request.uri().path()) {
            None
        } else {
            match self.shed.try_take() {
                Some(slot) => Some(slot),
                None => {
                    let status = tonic::Status::resource_exhausted(format!(
                        "the server is at its limit of {} requests in flight (server.max_in_flight_requests); \
                         retry with backoff",
                        self.shed.state.limit
                    ));
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        };
        // The clone that was polled ready is the one that must serve the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let answer = inner.call(request).await;
            drop(slot);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_come_back_when_dropped() {
        let shed = LoadShedLayer::new(2);
        let first = shed.try_take().expect("first");
        let second = shed.try_take().expect("second");
        assert!(shed.try_take().is_none(), "a third request over a limit of 2");
        assert_eq!(shed.in_flight(), 2, "a refusal holds nothing");
        drop(first);
        let third = shed.try_take().expect("a slot came back");
        drop((second, third));
        assert_eq!(shed.in_flight(), 0);
    }

    #[test]
    fn health_checks_are_exempt() {
        assert!(exempt("/grpc.health.v1.Health/Check"));
        assert!(exempt("/grpc.health.v1.Health/Watch"));
        assert!(!exempt("/tfesi.inference.v1.Inference/Predict"));
    }
}
