//! The nurse desk of the development stack: served by `tfesi dev` (and `tfesi demo`'s embedded
//! stack) beside the four services, with a development account.
//!
//! On first use a `nurse` account with a random password is written to
//! `<data dir>/desk/accounts`, and the password to `<data dir>/desk/nurse-password` (mode 0600),
//! so the desk can be tried at once; add real accounts with `tfesi-desk hash-password`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tfesi_platform::Shutdown;

/// Default address of the development desk (`TFESI_DESK__DESK__LISTEN` overrides it).
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The running development desk.
pub struct DevDesk {
    /// Where it listens (plain HTTP, loopback).
    pub listen: SocketAddr,
    /// The file holding the development nurse's password.
    pub password_file: PathBuf,
    /// The server task.
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Writes the development account unless an accounts file exists; returns the accounts file and
/// the password file.
fn development_account(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = data_dir.join("desk");
    let accounts = dir.join("accounts");
    let password_file = dir.join("nurse-password");
    if accounts.is_file() {
        return Ok((accounts, password_file));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let password = hex::encode(rand::random::<[u8; 12]>());
    let line = tfesi_desk::accounts::account_line("nurse", "Development Nurse", &password)
        .map_err(|error| anyhow::anyhow!("cannot hash the development password: {error}"))?;
    let write = |path: &Path, text: &str| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        Ok(())
    };
    write(&password_file, &format!("{password}\n"))?;
    write(&accounts, &format!("# development account (tfesi dev); password in nurse-password\n{line}\n"))?;
    Ok((accounts, password_file))
}

/// Starts the desk against the stack's registry and ingest, minting nurse tokens with the
/// stack's development secret.
pub async fn start(
    data_dir: &Path,
    secret: &Path,
    registry: SocketAddr,
    ingest: SocketAddr,
    shutdown: Shutdown,
) -> anyhow::Result<DevDesk> {
    let (accounts, password_file) = development_account(data_dir)?;
    let listen: SocketAddr = std::env::var("TFESI_DESK__DESK__LISTEN")
        .unwrap_or_else(|_| DEFAULT_LISTEN.to_owned())
        .parse()
        .context("TFESI_DESK__DESK__LISTEN is not an address like 127.0.0.1:8080")?;
    let mut config = tfesi_desk::Config::default();
    config.desk.listen = listen;
    config.desk.accounts_file = Some(accounts);
    config.desk.secure_cookies = false;
    config.auth.hs256_secret_file = Some(secret.to_path_buf());
    config.upstream.registry = format!("http://{registry}");
    config.upstream.ingest = format!("http://{ingest}");
    let listener = tfesi_platform::server::bind(listen, "TFESI_DESK__DESK__LISTEN").await?;
    let listen = listener.local_addr()?;
    let task = tokio::spawn(tfesi_desk::run(config, listener, shutdown));
    Ok(DevDesk { listen, password_file, task })
}
