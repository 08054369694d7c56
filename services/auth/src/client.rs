//! The caller's side: where a service or a command gets the bearer token it sends, and the
//! tonic interceptor that sends it.
//!
//! A service calling another service presents a token with the `service` role. In production
//! the identity provider issues it and the service reads it from `auth.service_token_file`
//! (re-read whenever the file changes, so a sidecar can rotate it). In development, where every
//! service shares `auth.hs256_secret_file`, the service mints its own short-lived token and
//! renews it before it expires.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tonic::metadata::MetadataValue;

use crate::token::{config_error, read};
use crate::{AuthConfig, AuthMode, Role, TokenError, mint_hs256};

/// Lifetime of a minted service token.
const MINTED_TTL_S: u64 = 3600;
/// A minted token is renewed when less than this is left.
const RENEW_BEFORE: Duration = Duration::from_secs(600);
/// How often a token file's modification time is looked at.
const FILE_CHECK_EVERY: Duration = Duration::from_secs(10);

enum Source {
    /// No token is sent (authentication disabled everywhere).
    None,
    /// A fixed token (a command's `--token`).
    Fixed(String),
    /// Minted with the shared development secret.
    Minted { secret: Vec<u8>, config: Box<AuthConfig>, subject: String, roles: Vec<Role> },
    /// Read from a file that another process keeps fresh.
    File(PathBuf),
}

struct Cached {
    value: Option<MetadataValue<tonic::metadata::Ascii>>,
    renew_at: Instant,
    file_modified: Option<SystemTime>,
}

/// Produces the `authorization` value for outgoing calls.
pub struct TokenSource {
    source: Source,
    cached: Mutex<Cached>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.source {
            Source::None => "none",
            Source::Fixed(_) => "fixed",
            Source::Minted { .. } => "minted",
            Source::File(_) => "file",
        };
        f.debug_struct("TokenSource").field("source", &kind).finish_non_exhaustive()
    }
}

impl TokenSource {
    fn with(source: Source) -> Arc<Self> {
        let cached = Cached { value: None, renew_at: Instant::now(), file_modified: None };
        Arc::new(Self { source, cached: Mutex::new(cached) })
    }

    /// Sends nothing.
    pub fn none() -> Arc<Self> {
        Self::with(Source::None)
    }

    /// Always sends `token`.
    pub fn fixed(token: impl Into<String>) -> Arc<Self> {
        Self::with(Source::Fixed(token.into()))
    }

    /// The token a service named `service` presents to the others, from its `auth` section:
    /// `service_token_file` when set, else minted with `hs256_secret_file`, else (only with
    /// `mode = "disabled"`) none.
    pub fn for_service(config: &AuthConfig, service: &str) -> Result<Arc<Self>, TokenError> {
        if let Some(path) = &config.service_token_file {
            let source = Self::with(Source::File(path.clone()));
            source.header()?;
            return Ok(source);
        }
        if let Some(path) = &config.hs256_secret_file {
            let secret = read("hs256_secret_file", path)?;
            let source = Self::with(Source::Minted {
                secret: secret.trim_ascii().to_vec(),
                config: Box::new(config.clone()),
                subject: format!("tfesi-{service}"),
                roles: vec![Role::Service],
            });
            source.header()?;
            return Ok(source);
        }
        if config.mode == AuthMode::Disabled {
            return Ok(Self::none());
        }
        Err(config_error(
            "service_token_file",
            format!(
                "{service} calls other services and needs a token with the service role: set \
                 auth.service_token_file, or auth.hs256_secret_file in development"
            ),
        ))
    }

    /// A token for `subject` with `roles`, minted with an HS256 secret (tools and tests).
    pub fn minted(secret: &[u8], config: &AuthConfig, subject: &str, roles: &[Role]) -> Arc<Self> {
        Self::with(Source::Minted {
            secret: secret.trim_ascii().to_vec(),
            config: Box::new(config.clone()),
            subject: subject.to_owned(),
            roles: roles.to_vec(),
        })
    }

    /// The `authorization` header value to send now, `None` when no token is sent.
    pub fn header(&self) -> Result<Option<MetadataValue<tonic::metadata::Ascii>>, TokenError> {
        let mut cached = self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if cached.value.is_some() && now < cached.renew_at {
            return Ok(cached.value.clone());
        }
        let token = match &self.source {
            Source::None => return Ok(None),
            Source::Fixed(token) => {
                cached.renew_at = now + Duration::from_secs(365 * 24 * 3600);
                token.trim().to_owned()
            }
            Source::Minted { secret, config, subject, roles } => {
                cached.renew_at = now + Duration::from_secs(MINTED_TTL_S) - RENEW_BEFORE;
                mint_hs256(secret, config, subject, roles, MINTED_TTL_S)?
            }
            Source::File(path) => {
                let modified = std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
                cached.renew_at = now + FILE_CHECK_EVERY;
                if cached.value.is_some() && modified == cached.file_modified {
                    return Ok(cached.value.clone());
                }
                cached.file_modified = modified;
                let text = read("service_token_file", path)?;
                String::from_utf8_lossy(&text).trim().to_owned()
            }
        };
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| TokenError::Invalid("the token holds characters not allowed in a header".into()))?;
        cached.value = Some(value);
        Ok(cached.value.clone())
    }
}

/// Adds `authorization: Bearer <token>` to every outgoing request.
#[derive(Clone, Debug)]
pub struct BearerInterceptor {
    source: Arc<TokenSource>,
}

impl BearerInterceptor {
    /// An interceptor sending the tokens of `source`.
    pub fn new(source: Arc<TokenSource>) -> Self {
        Self { source }
    }

    /// Adds the header to `request`.
    pub fn apply<T>(&self, request: &mut tonic::Request<T>) -> Result<(), tonic::Status> {
        let header = self
            .source
            .header()
            .map_err(|error| tonic::Status::unauthenticated(format!("no token to send: {error}")))?;
        if let Some(value) = header {
            request.metadata_mut().insert("authorization", value);
        }
        Ok(())
    }
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.apply(&mut request)?;
        Ok(request)
    }
}
