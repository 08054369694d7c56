//! The tower layer that authenticates and authorizes every gRPC request before it reaches a
//! handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::{Authenticator, Caller, authorize, policy};

/// Wraps a tonic server's routes: health and reflection pass; everything else needs a valid
/// bearer token whose roles the policy allows for the method.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    /// A layer verifying with `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authenticator: self.authenticator.clone() }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

/// Decides a request from its method path and `authorization` header value.
pub fn check(
    authenticator: &Authenticator,
    path: &str,
    authorization: Option<&str>,
) -> Result<Caller, tonic::Status> {
    if policy::is_public(path) {
        return Ok(Caller::anonymous());
    }
    if !authenticator.enabled() {
        return Ok(Caller::anonymous());
    }
    let header = authorization.ok_or_else(|| {
        tonic::Status::unauthenticated(format!("{path} needs an `authorization: Bearer <token>` header"))
    })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| tonic::Status::unauthenticated("the authorization header must be `Bearer <token>`"))?;
    let mut caller = authenticator
        .verify(token.trim())
        .map_err(|error| tonic::Status::unauthenticated(error.to_string()))?;
    caller.acting_role = Some(authorize(path, &caller)?);
    Ok(caller)
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
        match check(&self.authenticator, request.uri().path(), authorization) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                // The readied service handles this request; a fresh clone takes its place.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { ready.call(request).await })
            }
            Err(status) => {
                tracing::info!(path = request.uri().path(), code = ?status.code(), reason = status.message(), "request refused");
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
