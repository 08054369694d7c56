//! `tfesi`: the operator command. `tfesi demo` runs the whole loop on a synthetic cohort,
//! `tfesi dev` runs the whole stack in one process,
//! `tfesi synth` writes a synthetic cohort, `tfesi status` reports every service's health, and
//! `ingest`, `study`, `jobs`, `model`, `episode`, `followup` and `snapshot` operate the running
//! stack over its gRPC APIs.
//!
//! Exit codes scripts can trust: 0 success, 1 failure (the message on stderr says why),
//! 2 bad command line, 3 `tfesi ingest` finished but some instances were rejected.

tfesi_platform::service_allocator!();

mod audit_cmd;
mod clinical;
mod demo;
mod dev;
mod dev_desk;
mod endpoints;
mod ingest_cmd;
mod model_register;
mod ops;
mod records_view;
mod snapshot_cmd;
mod snapshot_file;
mod status;
mod token_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The TFESI outcome platform's operator command.
#[derive(Debug, Parser)]
#[command(name = "tfesi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    endpoints: endpoints::Endpoints,
    /// Print one JSON document instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole loop on a small synthetic cohort: starts the stack unless one runs, sends studies
    /// over DICOM and gRPC, registers episodes, waits for predictions, records the 2-month
    /// follow-ups, snapshots, and prints timings and the champion's prospective AUC.
    Demo(demo::DemoArgs),
    /// Run all four services in one process (each on its own gRPC port) against the local
    /// Postgres and Redis, with a filesystem object store and the bundled model.
    Dev(dev::DevArgs),
    /// Write a synthetic cohort: DICOM studies, the cohort table, and its outcome model's figures.
    Synth(tfesi_synth::SynthArgs),
    /// Health of every service (grpc.health.v1).
    Status,
    /// Upload every file under a directory over gRPC, then complete the studies.
    Ingest(ingest_cmd::IngestArgs),
    /// Studies as ingest catalogued them.
    #[command(subcommand)]
    Study(ops::StudyCommand),
    /// The pipeline's queue and dead letters.
    #[command(subcommand)]
    Jobs(ops::JobsCommand),
    /// Models: register, list, promote, shadow, rollback, prospective performance.
    #[command(subcommand)]
    Model(model_register::ModelCommand),
    /// Treatment episodes: create, record the injection, show, watch changes.
    #[command(subcommand)]
    Episode(clinical::EpisodeCommand),
    /// The 2-month follow-ups: worklist, record, amend, history.
    #[command(subcommand, name = "followup", visible_alias = "follow-up")]
    FollowUp(clinical::FollowUpCommand),
    /// Training snapshots: create, show, export to Parquet or JSON Lines.
    #[command(subcommand)]
    Snapshot(snapshot_cmd::SnapshotCommand),
    /// Mint a development bearer token with given roles (HS256 secret of `tfesi dev`).
    Token(token_cmd::TokenArgs),
    /// The hash-chained audit log: verify the chain, list records (reads Postgres directly).
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
}

/// Runs an async command on a small runtime of its own.
fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(future)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&cli.endpoints, &args, cli.json),
        Command::Dev(args) => dev::run(args),
        Command::Synth(args) => {
            tfesi_synth::run(&args).map(|summary| println!("{summary}")).map_err(anyhow::Error::from)
        }
        Command::Status => status::run(&cli.endpoints, cli.json),
        Command::Token(args) => token_cmd::run(&args),
        Command::Audit(command) => block_on(audit_cmd::run(cli.json, command)),
        Command::Ingest(args) => match block_on(ingest_cmd::ingest_dir(&cli.endpoints, &args)) {
            Ok(report) => {
                let printed = if cli.json {
                    serde_json::to_string_pretty(&report)
                        .map(|text| println!("{text}"))
                        .map_err(anyhow::Error::from)
                } else {
                    ingest_cmd::print_table(&report);
                    Ok(())
                };
                if printed.is_ok() && report.any_rejected() {
                    return ExitCode::from(ingest_cmd::EXIT_SOME_REJECTED);
                }
                printed
            }
            Err(error) => Err(error),
        },
        Command::Study(command) => block_on(ops::study(&cli.endpoints, cli.json, command)),
        Command::Jobs(command) => block_on(ops::jobs(&cli.endpoints, cli.json, command)),
        Command::Model(command) => block_on(model_register::run(&cli.endpoints, cli.json, command)),
        Command::Episode(command) => block_on(clinical::episode(&cli.endpoints, cli.json, command)),
        Command::FollowUp(command) => block_on(clinical::follow_up(&cli.endpoints, cli.json, command)),
        Command::Snapshot(command) => block_on(snapshot_cmd::snapshot(&cli.endpoints, cli.json, command)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tfesi: {error:#}");
            ExitCode::FAILURE
        }
    }
}
