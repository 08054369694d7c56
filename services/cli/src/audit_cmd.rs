//! `tfesi audit verify|list`: the operators' view of the platform's hash-chained audit log
//! (`audit.log`, see `tfesi_platform::audit`). Both read Postgres directly with the operator's
//! database credentials, not through a service, so a compromised service cannot hide what
//! the log says about it.
//!
//! `verify` exits 0 when the chain holds and 1 naming the first broken record; keep the head
//! hash it prints somewhere else (a ticket, a WORM store) to detect the log being cut short.

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use tfesi_platform::DatabaseConfig;
use tfesi_platform::audit::{self, AuditQuery};

/// The audit log's Postgres.
#[derive(Debug, Args)]
pub struct AuditDatabase {
    /// Postgres URL of the platform's database.
    #[arg(
        long,
        global = true,
        env = "TFESI_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/tfesi"
    )]
    database_url: String,
}

/// `tfesi audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 naming the first record that breaks it.
    Verify(AuditDatabase),
    /// Records, newest first, filtered.
    List {
        #[command(flatten)]
        database: AuditDatabase,
        /// Only this caller (token subject).
        #[arg(long)]
        actor: Option<String>,
        /// Only targets starting with this, e.g. `episode:` or `patient:<uuid>`.
        #[arg(long)]
        target: Option<String>,
        /// Only this action, e.g. `resolve_patient` or `follow_up_recorded`.
        #[arg(long)]
        action: Option<String>,
        /// Only records on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<NaiveDate>,
        /// At most this many records.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

async fn pool(database: &AuditDatabase) -> anyhow::Result<sqlx::PgPool> {
    let config = DatabaseConfig {
        url: database.database_url.clone(),
        max_connections: 2,
        create_if_missing: false,
        run_migrations: false,
        startup_wait_ms: 0,
        ..DatabaseConfig::default()
    };
    tfesi_platform::db::connect(&config).await.context("cannot open the audit database (--database-url)")
}

/// How long `verify` waits for committed records that it cannot chain yet, because a
/// transaction that began writing before them is still open.
const CHAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs an audit command.
pub async fn run(json: bool, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(database) => {
            let pool = pool(&database).await?;
            // Chain what is committed first, so the check covers it (waiting a little for
            // records that an older transaction still writing holds back); a read-only account
            // cannot, and then checks what the services have chained.
            if let Err(error) = audit::chain_committed(&pool, CHAIN_PATIENCE).await {
                eprintln!("note: cannot chain the newest records ({error}); checking what is chained");
            }
            let verification = audit::verify(&pool).await.context("reading audit.log")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&verification)?);
            } else {
                println!("records  {}", verification.records);
                println!("head     {}", verification.head.as_deref().unwrap_or("(empty log)"));
                if verification.unchained > 0 {
                    println!("pending  {} (committed, not chained yet)", verification.unchained);
                }
            }
            if let Some((id, reason)) = verification.broken {
                anyhow::bail!("the audit chain is broken at record {id}: {reason}");
            }
            if !json {
                println!("chain    intact");
            }
            Ok(())
        }
        AuditCommand::List { database, actor, target, action, since, limit } => {
            let pool = pool(&database).await?;
            let since: Option<DateTime<Utc>> =
                since.and_then(|day| day.and_hms_opt(0, 0, 0)).map(|time| time.and_utc());
            let filter = AuditQuery { actor, target_prefix: target, action, since, limit };
            let records = audit::query(&pool, &filter).await.context("reading audit.log")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
                return Ok(());
            }
            println!(
                "{:>7}  {:<24}  {:<9}  {:<20}  {:<8}  {:<22}  {:<40}  outcome",
                "id", "at (UTC)", "service", "actor", "role", "action", "target"
            );
            for record in records {
                println!(
                    "{:>7}  {:<24}  {:<9}  {:<20}  {:<8}  {:<22}  {:<40}  {}{}",
                    record.id,
                    record.at.format("%Y-%m-%d %H:%M:%S%.3f"),
                    record.service,
                    record.actor,
                    record.role,
                    record.action,
                    record.target,
                    record.outcome,
                    record.purpose.map(|purpose| format!(" ({purpose})")).unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
