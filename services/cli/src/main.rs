//! `tfesi`: the operator command. `tfesi dev` runs the whole stack in one process,
//! `tfesi synth` writes a synthetic cohort, `tfesi status` reports every service's health.

mod dev;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The TFESI outcome platform's operator command.
#[derive(Debug, Parser)]
#[command(name = "tfesi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run all four services in one process (each on its own gRPC port) against the local
    /// Postgres and Redis, with a filesystem object store and the bundled model.
    Dev(dev::DevArgs),
    /// Write a synthetic cohort: DICOM studies, the cohort table, and its outcome model's figures.
    Synth(tfesi_synth::SynthArgs),
    /// Health of every service (grpc.health.v1).
    Status(status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Synth(args) => {
            tfesi_synth::run(&args).map(|summary| println!("{summary}")).map_err(anyhow::Error::from)
        }
        Command::Status(args) => status::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tfesi: {error:#}");
            ExitCode::FAILURE
        }
    }
}
