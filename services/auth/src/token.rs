//! Bearer tokens: configuration, verification and (for development and tests) minting.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Caller, Role};

/// Whether tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every RPC needs a valid token (the default).
    #[default]
    Jwt,
    /// Development only: no token needed; announced at start.
    Disabled,
}

/// The `auth` section of every service's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `jwt` (default) or `disabled` (development only).
    pub mode: AuthMode,
    /// File holding the HS256 shared secret (development; at least 32 bytes).
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM file with an RS256 or ES256 public key (production).
    pub public_key_file: Option<PathBuf>,
    /// JWKS document (JSON) with RS256/ES256 public keys, chosen by `kid` (production).
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim.
    pub issuer: String,
    /// Required `aud` claim.
    pub audience: String,
    /// Clock skew tolerated on `exp`/`nbf`, seconds.
    pub leeway_s: u64,
    /// File holding this service's own bearer token for the calls it makes to other services
    /// (production: issued by the identity provider with the `service` role, re-read when the
    /// file changes). Without it a service that has `hs256_secret_file` mints its own.
    pub service_token_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Jwt,
            hs256_secret_file: None,
            public_key_file: None,
            jwks_file: None,
            issuer: "tfesi".to_owned(),
            audience: "tfesi".to_owned(),
            leeway_s: 30,
            service_token_file: None,
        }
    }
}

impl AuthConfig {
    /// Authentication switched off (development and in-process tests only).
    pub fn disabled() -> Self {
        Self { mode: AuthMode::Disabled, ..Self::default() }
    }

    /// Tokens signed with the HS256 secret in `secret_file` (development stacks and tests).
    pub fn hs256(secret_file: impl Into<PathBuf>) -> Self {
        Self { hs256_secret_file: Some(secret_file.into()), ..Self::default() }
    }
}

/// Claims of a tfesi token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Subject: account or service name.
    pub sub: String,
    /// Roles, e.g. `["nurse"]`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
}

/// Why the configuration or a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A key file could not be read or parsed.
    #[error("auth.{key}: {message}")]
    Config {
        /// The configuration key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The token was refused.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn config_error(key: &'static str, message: impl Into<String>) -> TokenError {
    TokenError::Config { key, message: message.into() }
}

enum Keys {
    Disabled,
    Fixed(Vec<(Algorithm, DecodingKey)>),
    Jwks(JwkSet),
}

/// Verifies tokens against the configured keys.
pub struct Authenticator {
    keys: Keys,
    config: AuthConfig,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("mode", &self.config.mode).finish_non_exhaustive()
    }
}

pub(crate) fn read(key: &'static str, path: &PathBuf) -> Result<Vec<u8>, TokenError> {
    std::fs::read(path).map_err(|error| config_error(key, format!("cannot read {}: {error}", path.display())))
}

impl Authenticator {
    /// Loads the keys the configuration names. With `mode = jwt` at least one key source is
    /// required.
    pub fn from_config(config: &AuthConfig) -> Result<Self, TokenError> {
        if config.mode == AuthMode::Disabled {
            return Ok(Self { keys: Keys::Disabled, config: config.clone() });
        }
        if let Some(path) = &config.jwks_file {
            let text = read("jwks_file", path)?;
            let set: JwkSet = serde_json::from_slice(&text).map_err(|error| {
                config_error("jwks_file", format!("{} is not a JWKS document: {error}", path.display()))
            })?;
            if set.keys.is_empty() {
                return Err(config_error("jwks_file", format!("{} holds no keys", path.display())));
            }
            return Ok(Self { keys: Keys::Jwks(set), config: config.clone() });
        }
        let mut keys = Vec::new();
        if let Some(path) = &config.public_key_file {
            let pem = read("public_key_file", path)?;
            if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                keys.push((Algorithm::RS256, key));
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                keys.push((Algorithm::ES256, key));
            } else {
                return Err(config_error(
                    "public_key_file",
                    format!("{} is neither an RSA nor an EC (P-256) public key in PEM", path.display()),
                ));
            }
        }
        if let Some(path) = &config.hs256_secret_file {
            let secret = read("hs256_secret_file", path)?;
            let secret = secret.trim_ascii();
            if secret.len() < 32 {
                return Err(config_error("hs256_secret_file", "the secret must be at least 32 bytes"));
            }
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret)));
        }
        if keys.is_empty() {
            return Err(config_error(
                "mode",
                "is \"jwt\" but no key is configured: set auth.hs256_secret_file (development), \
                 auth.public_key_file or auth.jwks_file, or auth.mode = \"disabled\" for local development",
            ));
        }
        Ok(Self { keys: Keys::Fixed(keys), config: config.clone() })
    }

    /// Whether tokens are checked at all.
    pub fn enabled(&self) -> bool {
        !matches!(self.keys, Keys::Disabled)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway_s;
        validation
    }

    /// Verifies a token (without the `Bearer ` prefix) and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| TokenError::Invalid(format!("the bearer token is not a JWT: {error}")))?;
        let claims = match &self.keys {
            Keys::Disabled => return Ok(Caller::anonymous()),
            Keys::Fixed(keys) => {
                let (algorithm, key) =
                    keys.iter().find(|(algorithm, _)| *algorithm == header.alg).ok_or_else(|| {
                        TokenError::Invalid(format!(
                            "tokens signed with {:?} are not accepted here",
                            header.alg
                        ))
                    })?;
                decode(token, key, &self.validation(*algorithm))?
            }
            Keys::Jwks(set) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| TokenError::Invalid("the token has no kid".into()))?;
                let jwk =
                    set.find(kid).ok_or_else(|| TokenError::Invalid(format!("unknown key id '{kid}'")))?;
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|error| TokenError::Invalid(format!("key '{kid}' is unusable: {error}")))?;
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(TokenError::Invalid(format!(
                        "tokens signed with {:?} are not accepted here",
                        header.alg
                    )));
                }
                decode(token, &key, &self.validation(header.alg))?
            }
        };
        let roles = claims.roles.iter().filter_map(|role| Role::parse(role)).collect();
        Ok(Caller { subject: claims.sub, roles, acting_role: None })
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, TokenError> {
    jsonwebtoken::decode::<Claims>(token, key, validation).map(|data| data.claims).map_err(|error| {
        use jsonwebtoken::errors::ErrorKind;
        TokenError::Invalid(match error.kind() {
            ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
            ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
            ErrorKind::InvalidIssuer => "the token's issuer is not accepted".to_owned(),
            ErrorKind::InvalidAudience => "the token's audience is not accepted".to_owned(),
            ErrorKind::MissingRequiredClaim(claim) => format!("the token lacks the '{claim}' claim"),
            _ => format!("the token is invalid: {error}"),
        })
    })
}

/// A key that signs tokens, for the platform's own issuers (the nurse desk): the shared HS256
/// secret in development, an ES256 private key (PEM, PKCS#8) in production, whose public half
/// the services verify with `auth.public_key_file` or `auth.jwks_file`.
pub enum Signer {
    /// HMAC-SHA256 with the shared secret.
    Hs256(Vec<u8>),
    /// ECDSA P-256 with a private key, and the key id put in the header when set.
    Es256 {
        /// The private key.
        key: Box<EncodingKey>,
        /// `kid` of the JWKS entry that holds the public half.
        kid: Option<String>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Hs256(_) => f.write_str("Signer::Hs256"),
            Signer::Es256 { kid, .. } => {
                f.debug_struct("Signer::Es256").field("kid", kid).finish_non_exhaustive()
            }
        }
    }
}

impl Signer {
    /// An ES256 signer from a PEM private key file (`key` names the setting in errors).
    pub fn es256_from_file(
        key: &'static str,
        path: &PathBuf,
        kid: Option<String>,
    ) -> Result<Self, TokenError> {
        let pem = read(key, path)?;
        let encoding = EncodingKey::from_ec_pem(&pem).map_err(|error| {
            config_error(key, format!("{} is not an EC (P-256) private key in PEM: {error}", path.display()))
        })?;
        Ok(Signer::Es256 { key: Box::new(encoding), kid })
    }

    /// An HS256 signer from the secret file of `auth.hs256_secret_file`.
    pub fn hs256_from_file(path: &PathBuf) -> Result<Self, TokenError> {
        let secret = read("hs256_secret_file", path)?;
        if secret.trim_ascii().len() < 32 {
            return Err(config_error("hs256_secret_file", "the secret must be at least 32 bytes"));
        }
        Ok(Signer::Hs256(secret.trim_ascii().to_vec()))
    }

    /// A token for `subject` with `roles`, valid `ttl_s` seconds, for the configured issuer
    /// and audience.
    pub fn mint(
        &self,
        config: &AuthConfig,
        subject: &str,
        roles: &[Role],
        ttl_s: u64,
    ) -> Result<String, TokenError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims = Claims {
            sub: subject.to_owned(),
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            exp: now + ttl_s,
            iat: now,
        };
        let (header, key) = match self {
            Signer::Hs256(secret) => (Header::new(Algorithm::HS256), EncodingKey::from_secret(secret)),
            Signer::Es256 { key, kid } => {
                let mut header = Header::new(Algorithm::ES256);
                header.kid.clone_from(kid);
                (header, (**key).clone())
            }
        };
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|error| TokenError::Invalid(format!("cannot sign a token: {error}")))
    }
}

/// Mints an HS256 token (development, tests, `tfesi token`): `subject` with `roles`, valid for
/// `ttl_s` seconds, for the configured issuer and audience.
pub fn mint_hs256(
    secret: &[u8],
    config: &AuthConfig,
    subject: &str,
    roles: &[Role],
    ttl_s: u64,
) -> Result<String, TokenError> {
    Signer::Hs256(secret.trim_ascii().to_vec()).mint(config, subject, roles, ttl_s)
}
