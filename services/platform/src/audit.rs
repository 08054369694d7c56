//! The platform's audit log (`audit.log`, migration 0400): who did what to which record, in
//! which role, when, and how it ended, for every RPC that reads PHI or writes clinical data.
//!
//! Records are appended in the caller's transaction, so a request whose audit record cannot
//! be written fails as a whole, and a record exists exactly when the work it records was
//! committed. Each record carries the SHA-256 of the previous record's hash and its own
//! fields; [`verify`] recomputes the chain and names the first record that does not match.
//! A transaction-scoped advisory lock serializes appends, so the chain order is the id order.
//! Targets name surrogate ids only (`episode:<uuid>`), never a hospital identifier.

use chrono::{DateTime, SubsecRound as _, Utc};
use futures::TryStreamExt as _;
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, PgPool, Row as _};

/// Key of the advisory lock that serializes appends (arbitrary, fixed: "tfesiaud").
const CHAIN_LOCK: i64 = 0x7466_6573_6961_7564;
/// The `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord<'a> {
    /// The service writing it (`registry`, `ingest`, ...).
    pub service: &'a str,
    /// The caller's subject.
    pub actor: &'a str,
    /// The role that allowed the call (`unauthenticated` when authentication is off).
    pub role: &'a str,
    /// What was done: the RPC in snake case, e.g. `record_follow_up`.
    pub action: &'a str,
    /// On what: surrogate ids only, e.g. `episode:<uuid>`.
    pub target: &'a str,
    /// How it ended: `ok`, `invalid_argument`, `permission_denied`, ...
    pub outcome: &'a str,
    /// Why, where the caller must say (re-identification).
    pub purpose: Option<&'a str>,
}

/// A stored record with its chain fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredRecord {
    /// Position in the chain.
    pub id: i64,
    /// When it was appended (microsecond precision).
    pub at: DateTime<Utc>,
    /// Writer service.
    pub service: String,
    /// Caller subject.
    pub actor: String,
    /// Caller role.
    pub role: String,
    /// Action.
    pub action: String,
    /// Target.
    pub target: String,
    /// Outcome.
    pub outcome: String,
    /// Purpose.
    pub purpose: Option<String>,
    /// Hash of the previous record (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

fn put(hasher: &mut Sha256, field: &[u8]) {
    hasher.update((field.len() as u64).to_be_bytes());
    hasher.update(field);
}

/// The hash of a record: SHA-256 over the previous hash, then id, time (µs since the epoch)
/// and each text field, every field length-prefixed (an absent purpose differs from "").
pub fn chain_hash(prev: &[u8], id: i64, at: DateTime<Utc>, record: &AuditRecord<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    put(&mut hasher, prev);
    hasher.update(id.to_be_bytes());
    hasher.update(at.timestamp_micros().to_be_bytes());
    for field in [record.service, record.actor, record.role, record.action, record.target, record.outcome] {
        put(&mut hasher, field.as_bytes());
    }
    match record.purpose {
        Some(purpose) => {
            hasher.update([1]);
            put(&mut hasher, purpose.as_bytes());
        }
        None => hasher.update([0]),
    }
    hasher.finalize().into()
}

/// Appends `record` in the transaction of `conn` and returns its id. Call it inside the
/// transaction of the work it records, as late as possible (the chain lock is held until
/// commit).
pub async fn append(conn: &mut PgConnection, record: &AuditRecord<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut *conn).await?;
    let prev: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit.log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let prev = prev.unwrap_or_else(|| GENESIS.to_vec());
    let id: i64 = sqlx::query_scalar("SELECT nextval('audit.log_id_seq')").fetch_one(&mut *conn).await?;
    let at = Utc::now().trunc_subsecs(6);
    let hash = chain_hash(&prev, id, at, record);
    sqlx::query(
        "INSERT INTO audit.log (id, at, service, actor, role, action, target, outcome, purpose, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(at)
    .bind(record.service)
    .bind(record.actor)
    .bind(record.role)
    .bind(record.action)
    .bind(record.target)
    .bind(record.outcome)
    .bind(record.purpose)
    .bind(&prev)
    .bind(hash.as_slice())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Writes every refusal of an authenticated caller (a valid token without a role the policy
/// allows for the RPC) as an audit record: actor the token's subject, role `none`, action the
/// method in snake case, target `rpc:<service>/<Method>`, outcome `permission_denied`, and the
/// roles the token carried as the purpose. Callers without a valid token are refused with
/// UNAUTHENTICATED and only logged: anyone can send those, and they must not fill the log.
#[derive(Debug, Clone)]
pub struct RefusalAudit {
    service: &'static str,
    pool: PgPool,
}

impl RefusalAudit {
    /// Refusals of `service` (e.g. `registry`) go to the audit log in `pool`'s database.
    pub fn new(service: &'static str, pool: PgPool) -> Self {
        Self { service, pool }
    }

    async fn write(&self, refusal: &tfesi_auth::Refusal) -> Result<i64, sqlx::Error> {
        let method = refusal.path.rsplit('/').next().unwrap_or_default();
        let service = refusal.path.trim_start_matches('/').split('/').next().unwrap_or_default();
        let held: Vec<&str> = refusal.caller.roles.iter().map(|role| role.as_str()).collect();
        let purpose = format!("token roles [{}]", held.join(", "));
        let target = format!("rpc:{service}/{method}");
        let action = snake_case(method);
        let mut transaction = self.pool.begin().await?;
        let id = append(
            &mut transaction,
            &AuditRecord {
                service: self.service,
                actor: &refusal.caller.subject,
                role: "none",
                action: &action,
                target: &target,
                outcome: "permission_denied",
                purpose: Some(&purpose),
            },
        )
        .await?;
        transaction.commit().await?;
        Ok(id)
    }
}

impl tfesi_auth::RefusalSink for RefusalAudit {
    fn refused(
        &self,
        refusal: tfesi_auth::Refusal,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let sink = self.clone();
        Box::pin(async move {
            if let Err(error) = sink.write(&refusal).await {
                tracing::error!(%error, path = refusal.path, "cannot write the audit record of a refused request");
            }
        })
    }
}

/// `ExportSnapshot` -> `export_snapshot`.
pub fn snake_case(method: &str) -> String {
    let mut out = String::with_capacity(method.len() + 4);
    for (index, character) in method.chars().enumerate() {
        if character.is_ascii_uppercase() {
            if index > 0 {
                out.push('_');
            }
            out.push(character.to_ascii_lowercase());
        } else {
            out.push(character);
        }
    }
    out
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// Hash of the last record (hex), the value to keep elsewhere to detect truncation.
    pub head: Option<String>,
    /// The first record that breaks the chain and why; `None` when the chain holds.
    pub broken: Option<(i64, String)>,
}

fn stored(row: &sqlx::postgres::PgRow) -> Result<StoredRecord, sqlx::Error> {
    Ok(StoredRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        service: row.try_get("service")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        purpose: row.try_get("purpose")?,
        prev_hash: hex::encode(row.try_get::<Vec<u8>, _>("prev_hash")?),
        hash: hex::encode(row.try_get::<Vec<u8>, _>("hash")?),
    })
}

const COLUMNS: &str = "id, at, service, actor, role, action, target, outcome, purpose, prev_hash, hash";

/// Recomputes the whole chain in id order, streaming.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let query = format!("SELECT {COLUMNS} FROM audit.log ORDER BY id");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(query)).fetch(pool);
    let mut expected_prev = GENESIS.to_vec();
    let mut records = 0_u64;
    let mut head = None;
    while let Some(row) = rows.try_next().await? {
        let record = stored(&row)?;
        records += 1;
        let prev: Vec<u8> = row.try_get("prev_hash")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        if prev != expected_prev {
            let reason = "its prev_hash is not the previous record's hash (a record was removed or inserted)";
            return Ok(Verification { records, head, broken: Some((record.id, reason.to_owned())) });
        }
        let fields = AuditRecord {
            service: &record.service,
            actor: &record.actor,
            role: &record.role,
            action: &record.action,
            target: &record.target,
            outcome: &record.outcome,
            purpose: record.purpose.as_deref(),
        };
        if chain_hash(&prev, record.id, record.at, &fields).as_slice() != hash.as_slice() {
            let reason = "its hash does not match its fields (the record was altered)";
            return Ok(Verification { records, head, broken: Some((record.id, reason.to_owned())) });
        }
        head = Some(record.hash);
        expected_prev = hash;
    }
    Ok(Verification { records, head, broken: None })
}

/// Filters of [`query`]; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only targets starting with this (e.g. `episode:` or one `episode:<uuid>`).
    pub target_prefix: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many records, newest first.
    pub limit: i64,
}

/// Records matching `filter`, newest first (for admins: `tfesi audit list`).
pub async fn query(pool: &PgPool, filter: &AuditQuery) -> Result<Vec<StoredRecord>, sqlx::Error> {
    let query = format!(
        "SELECT {COLUMNS} FROM audit.log \
         WHERE ($1::text IS NULL OR actor = $1) \
           AND ($2::text IS NULL OR starts_with(target, $2)) \
           AND ($3::text IS NULL OR action = $3) \
           AND ($4::timestamptz IS NULL OR at >= $4) \
         ORDER BY id DESC LIMIT $5"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(query))
        .bind(&filter.actor)
        .bind(&filter.target_prefix)
        .bind(&filter.action)
        .bind(filter.since)
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(pool)
        .await?;
    rows.iter().map(stored).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: &str, purpose: Option<&'static str>) -> AuditRecord<'static> {
        let outcome: &'static str = Box::leak(outcome.to_owned().into_boxed_str());
        AuditRecord {
            service: "registry",
            actor: "nurse-1",
            role: "nurse",
            action: "record_follow_up",
            target: "episode:1",
            outcome,
            purpose,
        }
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_hash() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time");
        let base = chain_hash(&GENESIS, 1, at, &record("ok", None));
        assert_ne!(base, chain_hash(&[1; 32], 1, at, &record("ok", None)), "previous hash");
        assert_ne!(base, chain_hash(&GENESIS, 2, at, &record("ok", None)), "id");
        let later = DateTime::from_timestamp_micros(1_700_000_000_123_457).expect("valid time");
        assert_ne!(base, chain_hash(&GENESIS, 1, later, &record("ok", None)), "time");
        assert_ne!(base, chain_hash(&GENESIS, 1, at, &record("error", None)), "outcome");
        assert_ne!(base, chain_hash(&GENESIS, 1, at, &record("ok", Some(""))), "absent vs empty purpose");
        assert_eq!(base, chain_hash(&GENESIS, 1, at, &record("ok", None)), "deterministic");
    }

    #[test]
    fn method_names_become_snake_case_actions() {
        assert_eq!(snake_case("ExportSnapshot"), "export_snapshot");
        assert_eq!(snake_case("Predict"), "predict");
        assert_eq!(snake_case(""), "");
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let at = DateTime::from_timestamp_micros(0).expect("valid time");
        let a = AuditRecord { actor: "ab", role: "c", ..record("ok", None) };
        let b = AuditRecord { actor: "a", role: "bc", ..record("ok", None) };
        assert_ne!(chain_hash(&GENESIS, 1, at, &a), chain_hash(&GENESIS, 1, at, &b));
    }
}
