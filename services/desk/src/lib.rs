//! tfesi-desk: the nurse follow-up desk. A server-rendered web application (no JavaScript
//! needed, sized for a ward tablet) over the registry and ingest gRPC APIs: sign-in with a
//! nurse account, the worklist of follow-ups due, the entry form with a confirmation page,
//! amendments with a reason, and marking loss to follow-up.
//!
//! The desk keeps no clinical data: every read and write is a gRPC call made with the signed-in
//! nurse's own token (role `nurse`), so the services' role checks and audit records name the
//! nurse. It never shows a prediction (the outcome must not be influenced by the model's guess):
//! it uses only RPCs that carry none.

pub mod accounts;
pub mod config;
pub mod error;
pub mod followup;
pub mod html;
pub mod pages;
pub mod session;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tfesi_platform::Shutdown;
use tokio::net::TcpListener;

pub use config::Config;

use crate::accounts::Accounts;
use crate::session::Sessions;
use crate::upstream::Upstream;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// Nurse accounts.
    pub accounts: Arc<Accounts>,
    /// Live sessions.
    pub sessions: Arc<Sessions>,
    /// gRPC clients.
    pub upstream: Upstream,
    /// The key the nurse's token is signed with.
    signer: Arc<tfesi_auth::Signer>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("accounts", &self.accounts.len()).finish_non_exhaustive()
    }
}

impl AppState {
    /// Reads the accounts file and the token secret, and makes the gRPC clients.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let accounts_path = config.desk.accounts_file.clone().context("desk.accounts_file is not set")?;
        let accounts = Accounts::load(&accounts_path)?;
        if accounts.is_empty() {
            tracing::warn!(file = %accounts_path.display(), "the accounts file holds no account; nobody can sign in");
        }
        let signer = match (&config.desk.signing_key_file, &config.auth.hs256_secret_file) {
            (Some(key), _) => tfesi_auth::Signer::es256_from_file(
                "desk.signing_key_file",
                key,
                config.desk.signing_key_id.clone(),
            )?,
            (None, Some(secret)) => tfesi_auth::Signer::hs256_from_file(secret)?,
            (None, None) => anyhow::bail!("set desk.signing_key_file or auth.hs256_secret_file"),
        };
        let upstream = Upstream::new(&config.upstream, Duration::from_millis(config.desk.call_timeout_ms))?;
        Ok(Self {
            config: Arc::new(config),
            accounts: Arc::new(accounts),
            sessions: Arc::new(Sessions::default()),
            upstream,
            signer: Arc::new(signer),
        })
    }

    /// A token for `username` with the nurse role, valid as long as a session.
    pub fn mint_nurse_token(&self, username: &str) -> Result<String, tfesi_auth::TokenError> {
        self.signer.mint(
            &self.config.auth,
            username,
            &[tfesi_auth::Role::Nurse],
            self.config.desk.session_ttl_s,
        )
    }
}

/// Serves the desk on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let state = AppState::new(config)?;
    let address = listener.local_addr().context("reading the listener's address")?;
    tracing::info!(%address, accounts = state.accounts.len(), "desk listening");
    axum::serve(listener, pages::router(state))
        .with_graceful_shutdown(shutdown.wait())
        .await
        .context("serving the desk")
}
