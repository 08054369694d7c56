//! `tfesi token`: mints a bearer token with a development HS256 secret, for trying RPCs with
//! a given role (`grpcurl -H "authorization: Bearer $(tfesi token --role nurse)"`) and for the
//! Python client's tests. Production tokens come from the identity provider, never from here.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use tfesi_auth::{AuthConfig, Role};

use crate::endpoints::{DEFAULT_DATA_DIR, DEV_SECRET};

/// Options of `tfesi token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Role the token carries (repeat for several): app, nurse, mlops, admin, service.
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    /// Subject (`sub`): the account or service the token stands for.
    #[arg(long, default_value = "dev-user")]
    subject: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    ttl_s: u64,
    /// The HS256 secret the services accept (default: the one `tfesi dev` writes).
    #[arg(long, env = "TFESI_AUTH_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// Issuer claim; must match the services' auth.issuer.
    #[arg(long, default_value = "tfesi")]
    issuer: String,
    /// Audience claim; must match the services' auth.audience.
    #[arg(long, default_value = "tfesi")]
    audience: String,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
        format!("unknown role '{text}': one of {}", names.join(", "))
    })
}

/// Prints the token on stdout.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let secret_file =
        args.secret_file.clone().unwrap_or_else(|| Path::new(DEFAULT_DATA_DIR).join(DEV_SECRET));
    let secret = std::fs::read(&secret_file).with_context(|| {
        format!(
            "cannot read the secret {}: start `tfesi dev` once to create it, or pass --secret-file",
            secret_file.display()
        )
    })?;
    let config =
        AuthConfig { issuer: args.issuer.clone(), audience: args.audience.clone(), ..AuthConfig::default() };
    let token = tfesi_auth::mint_hs256(&secret, &config, &args.subject, &args.roles, args.ttl_s)?;
    println!("{token}");
    Ok(())
}
