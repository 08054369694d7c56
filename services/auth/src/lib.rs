//! tfesi-auth: who is calling, and may they.
//!
//! Every RPC carries `authorization: Bearer <JWT>`. The token is verified (signature, expiry,
//! issuer, audience) with an HS256 secret (development), or RS256/ES256 public keys from a PEM
//! file or a JWKS document (production). Its `roles` claim lists [`Role`]s; [`policy::POLICY`]
//! is the one table of which roles may call which RPC. Missing or invalid token:
//! UNAUTHENTICATED; valid token without an allowed role (or an RPC absent from the table):
//! PERMISSION_DENIED. Health and reflection are public.
//!
//! [`AuthLayer`] enforces this in front of a tonic server and puts the verified [`Caller`] in
//! the request's extensions, where handlers read it (for audit records) with
//! [`Caller::of`]. Refusals of callers with a valid token go to a [`RefusalSink`] (the
//! platform's audit log). Authentication is off only with `auth.mode = "disabled"`, which the
//! service announces with an error-level log line at start and on every unauthenticated call
//! it lets through is recorded as the caller `anonymous` with every role.

pub mod client;
pub mod layer;
pub mod policy;
pub mod token;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use client::{BearerInterceptor, TokenSource};
pub use layer::{AuthLayer, AuthService, Refusal, RefusalSink};
pub use token::{AuthConfig, AuthMode, Authenticator, Claims, Signer, TokenError, mint_hs256};

/// A role a token may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Internal applications.
    App,
    /// Follow-up nurses.
    Nurse,
    /// Retraining jobs.
    Mlops,
    /// Operators.
    Admin,
    /// The platform's own services.
    Service,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [Role::App, Role::Nurse, Role::Mlops, Role::Admin, Role::Service];

    /// The claim value, e.g. `nurse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::App => "app",
            Role::Nurse => "nurse",
            Role::Mlops => "mlops",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }

    /// Parses a claim value.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject (`sub`), e.g. a nurse's account or a service name.
    pub subject: String,
    /// The roles the token carries (unknown role names are ignored).
    pub roles: Vec<Role>,
    /// The role that allowed this call (the first of the caller's roles the policy allows).
    pub acting_role: Option<Role>,
}

impl Caller {
    /// The caller recorded when authentication is disabled by configuration.
    pub fn anonymous() -> Self {
        Self { subject: "anonymous".to_owned(), roles: Role::ALL.to_vec(), acting_role: None }
    }

    /// The caller the auth layer put into a request, or [`Caller::anonymous`] when the server
    /// runs without the layer (development with `auth.mode = "disabled"`, in-process tests).
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::anonymous)
    }

    /// The role to write in audit records.
    pub fn audit_role(&self) -> &'static str {
        self.acting_role.map_or("unauthenticated", Role::as_str)
    }
}

/// Decides whether `caller` may call `path` (a full gRPC method path).
pub fn authorize(path: &str, caller: &Caller) -> Result<Role, tonic::Status> {
    let Some(allowed) = policy::allowed_roles(path) else {
        return Err(tonic::Status::permission_denied(format!("{path} is not open to any role")));
    };
    caller.roles.iter().copied().find(|role| allowed.contains(role)).ok_or_else(|| {
        let allowed: Vec<&str> = allowed.iter().map(|role| role.as_str()).collect();
        let held: Vec<&str> = caller.roles.iter().map(|role| role.as_str()).collect();
        tonic::Status::permission_denied(format!(
            "{path} needs one of the roles [{}]; the token of '{}' carries [{}]",
            allowed.join(", "),
            caller.subject,
            held.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests;
