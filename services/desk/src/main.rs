//! The `tfesi-desk` binary: serves the nurse follow-up desk, or (`hash-password`) prints an
//! accounts-file line for a new nurse account.

tfesi_platform::service_allocator!();

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The nurse follow-up desk (web application).
#[derive(Debug, Parser)]
#[command(name = "tfesi-desk", version)]
struct Cli {
    /// TOML configuration file layered over the defaults (also `TFESI_CONFIG`).
    #[arg(long, env = "TFESI_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reads a password from stdin and prints the accounts-file line of a nurse account.
    HashPassword {
        /// Sign-in name (letters, digits, '.', '_', '-', '@').
        #[arg(long)]
        username: String,
        /// Name shown on the desk.
        #[arg(long)]
        display_name: String,
    },
}

fn hash_password(username: &str, display_name: &str) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    println!("{}", tfesi_desk::accounts::account_line(username, display_name, password)?);
    Ok(())
}

async fn serve(config: tfesi_desk::Config) -> anyhow::Result<()> {
    let telemetry = tfesi_platform::telemetry::Telemetry::init("tfesi-desk", &config.telemetry)?;
    let (trigger, shutdown) = tfesi_platform::Shutdown::new();
    let signals = tokio::spawn(async move {
        tfesi_platform::shutdown::os_signal().await;
        trigger.trigger();
    });
    let listener = tfesi_platform::server::bind(config.desk.listen, "TFESI_DESK__DESK__LISTEN").await?;
    let served = tfesi_desk::run(config, listener, shutdown).await;
    signals.abort();
    telemetry.shutdown().await;
    served
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashPassword { username, display_name }) = &cli.command {
        return match hash_password(username, display_name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tfesi-desk: {error:#}");
                ExitCode::from(2)
            }
        };
    }
    let config: tfesi_desk::Config = match tfesi_platform::config::load("desk", cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tfesi-desk: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        return match toml::to_string_pretty(&config) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tfesi-desk: cannot print the configuration: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(serve(config)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tfesi-desk: {error:#}");
            ExitCode::FAILURE
        }
    }
}
