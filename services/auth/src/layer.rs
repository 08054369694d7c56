//! The tower layer that authenticates and authorizes every gRPC request before it reaches a
//! handler, and reports the refusals of authenticated callers (a valid token used for an RPC
//! its roles do not allow) to a [`RefusalSink`], which the platform writes to the audit log.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::{Authenticator, Caller, authorize, policy};

/// A request refused to a caller whose token was valid: who tried which RPC.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The full gRPC method path, e.g. `/tfesi.registry.v1.Registry/ExportSnapshot`.
    pub path: String,
    /// The verified caller (its `acting_role` is `None`: no role allowed the call).
    pub caller: Caller,
    /// The status answered (PERMISSION_DENIED).
    pub status: tonic::Status,
}

/// Where refusals go. The future completes before the refusal is answered, so a sink that
/// writes a record has written it by the time the caller sees PERMISSION_DENIED; a sink that
/// fails logs its error (the request is refused either way).
pub trait RefusalSink: Send + Sync + fmt::Debug {
    /// Records `refusal`.
    fn refused(&self, refusal: Refusal) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Wraps a tonic server's routes: health and reflection pass; everything else needs a valid
/// bearer token whose roles the policy allows for the method.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
    refusals: Option<Arc<dyn RefusalSink>>,
}

impl AuthLayer {
    /// A layer verifying with `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator, refusals: None }
    }

    /// Reports refused authenticated callers to `sink`.
    #[must_use]
    pub fn with_refusals(mut self, sink: Arc<dyn RefusalSink>) -> Self {
        self.refusals = Some(sink);
        self
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authenticator: self.authenticator.clone(), refusals: self.refusals.clone() }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
    refusals: Option<Arc<dyn RefusalSink>>,
}

/// Decides a request from its method path and `authorization` header value.
pub fn check(
    authenticator: &Authenticator,
    path: &str,
    authorization: Option<&str>,
) -> Result<Caller, tonic::Status> {
    decide(authenticator, path, authorization).map_err(|(status, _)| status)
}

/// [`check`], with the verified caller beside a refusal when the token itself was valid.
fn decide(
    authenticator: &Authenticator,
    path: &str,
    authorization: Option<&str>,
) -> Result<Caller, (tonic::Status, Option<Caller>)> {
    if policy::is_public(path) || !authenticator.enabled() {
        return Ok(Caller::anonymous());
    }
    let unauthenticated = |status: tonic::Status| (status, None);
    let header = authorization
        .ok_or_else(|| {
            tonic::Status::unauthenticated(format!("{path} needs an `authorization: Bearer <token>` header"))
        })
        .map_err(unauthenticated)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| tonic::Status::unauthenticated("the authorization header must be `Bearer <token>`"))
        .map_err(unauthenticated)?;
    let mut caller = authenticator
        .verify(token.trim())
        .map_err(|error| tonic::Status::unauthenticated(error.to_string()))
        .map_err(unauthenticated)?;
    match authorize(path, &caller) {
        Ok(role) => {
            caller.acting_role = Some(role);
            Ok(caller)
        }
        Err(status) => Err((status, Some(caller))),
    }
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let authorization =
            request.headers().get(http::header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        match decide(&self.authenticator, request.uri().path(), authorization) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                // The readied service handles this request; a fresh clone takes its place.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { ready.call(request).await })
            }
            Err((status, caller)) => {
                let path = request.uri().path().to_owned();
                tracing::info!(path, code = ?status.code(), reason = status.message(), "request refused");
                let sink = self.refusals.clone();
                Box::pin(async move {
                    if let (Some(sink), Some(caller)) = (sink, caller) {
                        sink.refused(Refusal { path, caller, status: status.clone() }).await;
                    }
                    Ok(status.into_http())
                })
            }
        }
    }
}
