//! The platform's audit log (`audit.log`, migration 0400): who did what to which record, in
//! which role, when, and how it ended, for every RPC that reads PHI or writes clinical data.
//!
//! Records are inserted in the caller's transaction ([`append`]), so a request whose audit
//! record cannot be written fails as a whole, and a record exists exactly when the work it
//! records was committed. They are chained after the commit ([`chain_pending`], which every
//! service writing the log runs in the background through [`run_chainer`], and which
//! `tfesi audit verify` runs first): under a transaction-scoped advisory lock each committed,
//! unchained record gets a row in `audit.chain` (migration 0402) with its chain position `seq`,
//! the previous record's hash and its own, SHA-256 over that and its fields. Records are never
//! updated: the chainer finds what to chain by the transaction that wrote each record (`tx`),
//! taking every record whose transaction ended after that of the last record chained and before
//! the oldest transaction still running. [`verify`] recomputes the chain in `seq` order and names
//! the first record that does not match.
//!
//! Why after the commit: chaining inside the request's transaction held the lock until commit,
//! so every auditable request of every service committed one at a time, one WAL flush each
//! (migration 0401 gives the figures). The price is a short window (the chainer's interval,
//! [`CHAIN_INTERVAL`], or longer while a transaction that wrote a record is still open) in
//! which a committed record is not yet protected by the chain; the append-only triggers of both
//! tables refuse any update, delete or truncation all the same.
//! Targets name surrogate ids only (`episode:<uuid>`), never a hospital identifier.

use chrono::{DateTime, SubsecRound as _, Utc};
use futures::TryStreamExt as _;
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, PgPool, Row as _};

/// Key of the advisory lock that serializes chaining (arbitrary, fixed: "tfesiaud").
const CHAIN_LOCK: i64 = 0x7466_6573_6961_7564;
/// How often [`run_chainer`] chains what was committed since its last pass.
pub const CHAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);
/// Most records one chaining transaction takes (the rest wait for the next one).
const CHAIN_BATCH: i64 = 2_000;
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
    /// Insertion order.
    pub id: i64,
    /// Position in the chain (`audit.chain`); `None` until the record is chained (shortly
    /// after its commit).
    pub seq: Option<i64>,
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
    /// Hash of the previous record (hex), once chained.
    pub prev_hash: Option<String>,
    /// This record's hash (hex), once chained.
    pub hash: Option<String>,
}

impl StoredRecord {
    /// The fields the hash covers.
    pub fn fields(&self) -> AuditRecord<'_> {
        AuditRecord {
            service: &self.service,
            actor: &self.actor,
            role: &self.role,
            action: &self.action,
            target: &self.target,
            outcome: &self.outcome,
            purpose: self.purpose.as_deref(),
        }
    }
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

/// Inserts `record`, unchained, in the transaction of `conn` and returns its id. One statement
/// and no lock: concurrent requests commit (and share WAL flushes) as they would without an
/// audit log. The record is chained once the transaction has committed ([`chain_pending`]).
pub async fn append(conn: &mut PgConnection, record: &AuditRecord<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO audit.log (at, service, actor, role, action, target, outcome, purpose) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(Utc::now().trunc_subsecs(6))
    .bind(record.service)
    .bind(record.actor)
    .bind(record.role)
    .bind(record.action)
    .bind(record.target)
    .bind(record.outcome)
    .bind(record.purpose)
    .fetch_one(&mut *conn)
    .await
}

/// Chains every committed, unchained record (in id order, a batch of at most a few thousand
/// per transaction) and returns how many it chained. Safe to run anywhere at any time: the
/// advisory lock lets one chainer work at a time, and a record still uncommitted when it looks
/// is chained by a later pass.
pub async fn chain_pending(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut chained = 0;
    loop {
        let batch = chain_batch(pool).await?;
        chained += batch;
        if batch < CHAIN_BATCH as u64 {
            return Ok(chained);
        }
    }
}

/// Chains what is committed, as [`chain_pending`] does, and waits up to `patience` for records
/// that an older transaction still writing holds back (in any database of the server: the
/// chainer takes a record only once every transaction that began writing before it has ended).
/// Returns how many records it chained; what is still unchained is left to the services'
/// chainers, and [`verify`] counts it. For checks (`tfesi audit verify`), not for the services:
/// each wait scans the whole log.
pub async fn chain_committed(pool: &PgPool, patience: std::time::Duration) -> Result<u64, sqlx::Error> {
    let deadline = std::time::Instant::now() + patience;
    let mut chained = chain_pending(pool).await?;
    loop {
        let unchained: i64 = sqlx::query_scalar(UNCHAINED_COUNT).fetch_one(pool).await?;
        if unchained == 0 || std::time::Instant::now() >= deadline {
            return Ok(chained);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        chained += chain_pending(pool).await?;
    }
}

async fn chain_batch(pool: &PgPool) -> Result<u64, sqlx::Error> {
    // The idle case, every interval of every writer: one probe of the chain's head and one of
    // the log's `tx` index, no transaction, no lock.
    let probe = format!("SELECT EXISTS (SELECT 1 FROM audit.log WHERE {AFTER_HEAD})");
    let waiting: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(probe)).fetch_one(pool).await?;
    if !waiting {
        return Ok(0);
    }
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut *transaction).await?;
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit.chain ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *transaction)
            .await?;
    let (mut seq, mut prev) = head.unwrap_or((0, GENESIS.to_vec()));
    // One statement, so one snapshot: its xmin is the oldest transaction still running, and
    // every record of a transaction below it that this snapshot sees was committed. The batch
    // ends with a whole transaction (all the records of the last one taken), so the next pass
    // can start after the last chained record's transaction.
    let query = format!(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
         first AS (
             SELECT tx FROM audit.log, horizon WHERE {AFTER_HEAD} AND tx < horizon.xmin
             ORDER BY tx, id LIMIT $1)
         SELECT {RECORD_COLUMNS} FROM audit.log
         WHERE {AFTER_HEAD} AND tx <= (SELECT max(tx) FROM first)
         ORDER BY tx, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(query)).bind(CHAIN_BATCH).fetch_all(&mut *transaction).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (mut ids, mut seqs, mut prevs, mut hashes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        let record = unchained(row)?;
        let hash = chain_hash(&prev, record.id, record.at, &record.fields());
        seq += 1;
        ids.push(record.id);
        seqs.push(seq);
        prevs.push(std::mem::replace(&mut prev, hash.to_vec()));
        hashes.push(hash.to_vec());
    }
    sqlx::query(
        "INSERT INTO audit.chain (seq, id, prev_hash, hash) \
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])",
    )
    .bind(&seqs)
    .bind(&ids)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(rows.len() as u64)
}

/// Chains committed records every [`CHAIN_INTERVAL`] until `shutdown`, then once more. Errors
/// (Postgres away) are logged and retried at the next interval: records wait, unchained but
/// stored, and nothing is lost.
pub async fn run_chainer(pool: PgPool, shutdown: crate::Shutdown) {
    let mut ticks = tokio::time::interval(CHAIN_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => break,
        }
        if let Err(error) = chain_pending(&pool).await {
            tracing::warn!(%error, "cannot chain audit records yet; retrying");
        }
    }
    if let Err(error) = chain_pending(&pool).await {
        tracing::warn!(%error, "cannot chain the last audit records; the next chainer will");
    }
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
    /// The first record that breaks the chain (its id) and why; `None` when the chain holds.
    pub broken: Option<(i64, String)>,
    /// Records committed but not chained yet when the check ended.
    pub unchained: u64,
}

fn stored(row: &sqlx::postgres::PgRow) -> Result<StoredRecord, sqlx::Error> {
    let hex_of = |column: &str| -> Result<Option<String>, sqlx::Error> {
        Ok(row.try_get::<Option<Vec<u8>>, _>(column)?.map(hex::encode))
    };
    Ok(StoredRecord {
        seq: row.try_get("seq")?,
        prev_hash: hex_of("prev_hash")?,
        hash: hex_of("hash")?,
        ..unchained(row)?
    })
}

/// A row's record fields, without its chain fields.
fn unchained(row: &sqlx::postgres::PgRow) -> Result<StoredRecord, sqlx::Error> {
    Ok(StoredRecord {
        id: row.try_get("id")?,
        seq: None,
        at: row.try_get("at")?,
        service: row.try_get("service")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        purpose: row.try_get("purpose")?,
        prev_hash: None,
        hash: None,
    })
}

/// The columns a record's hash covers, with its id.
const RECORD_COLUMNS: &str = "id, at, service, actor, role, action, target, outcome, purpose";
/// A record with its chain row (`l` the log, `c` the chain).
const COLUMNS: &str = "l.id, c.seq, l.at, l.service, l.actor, l.role, l.action, l.target, l.outcome, l.purpose, c.prev_hash, c.hash";
/// Counts the records not chained yet (a scan of the whole log: for checks, not for the chainer).
pub const UNCHAINED_COUNT: &str =
    "SELECT count(*) FROM audit.log l WHERE NOT EXISTS (SELECT 1 FROM audit.chain c WHERE c.id = l.id)";
/// The log's unchained records after the transaction of the last record chained: those waiting
/// to be chained, and those of transactions still running.
///
/// Records chained before migration 0402 have no `tx`; where the head is such a record, every
/// unchained record with a `tx` matches. So do they all where the newest chained records carry
/// transaction ids this server has not reached yet (`pg_snapshot_xmax`): a log restored from a
/// dump into another server keeps the old server's ids, and the new server's records, with
/// smaller ones, would otherwise wait forever. Such a head is passed over until the first record
/// written on this server is chained.
const AFTER_HEAD: &str = "tx > coalesce(
        (SELECT l.tx FROM audit.chain c JOIN audit.log l USING (id)
         WHERE l.tx < pg_snapshot_xmax(pg_current_snapshot()) ORDER BY c.seq DESC LIMIT 1), '0'::xid8)
    AND NOT EXISTS (SELECT 1 FROM audit.chain chained WHERE chained.id = audit.log.id)";

/// Recomputes the whole chain in `seq` order, streaming, and counts the records not chained
/// yet. Read-only; run [`chain_pending`] first to check everything committed so far.
pub async fn verify(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    let query = format!("SELECT {COLUMNS} FROM audit.chain c JOIN audit.log l USING (id) ORDER BY c.seq");
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
            return Ok(Verification {
                records,
                head,
                broken: Some((record.id, reason.to_owned())),
                unchained: 0,
            });
        }
        if chain_hash(&prev, record.id, record.at, &record.fields()).as_slice() != hash.as_slice() {
            let reason = "its hash does not match its fields (the record was altered)";
            return Ok(Verification {
                records,
                head,
                broken: Some((record.id, reason.to_owned())),
                unchained: 0,
            });
        }
        head = record.hash;
        expected_prev = hash;
    }
    drop(rows);
    let unchained: i64 = sqlx::query_scalar(UNCHAINED_COUNT).fetch_one(pool).await?;
    Ok(Verification { records, head, broken: None, unchained: u64::try_from(unchained).unwrap_or(0) })
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
        "SELECT {COLUMNS} FROM audit.log l LEFT JOIN audit.chain c USING (id) \
         WHERE ($1::text IS NULL OR l.actor = $1) \
           AND ($2::text IS NULL OR starts_with(l.target, $2)) \
           AND ($3::text IS NULL OR l.action = $3) \
           AND ($4::timestamptz IS NULL OR l.at >= $4) \
         ORDER BY l.id DESC LIMIT $5"
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

    async fn append_committed(pool: &PgPool, action: &str) -> i64 {
        let mut transaction = pool.begin().await.expect("begin");
        let id =
            append(&mut transaction, &AuditRecord { action, ..record("ok", None) }).await.expect("append");
        transaction.commit().await.expect("commit");
        id
    }

    /// Chains record `id` (appended with `action`) first, as `sql` writes its chain fields ($1
    /// the id, $2 the genesis hash, $3 its hash); returns its hash.
    async fn chain_first_by(pool: &PgPool, sql: &'static str, id: i64, action: &str) -> [u8; 32] {
        let at: DateTime<Utc> = sqlx::query_scalar("SELECT at FROM audit.log WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("the record's time");
        let hash = chain_hash(&GENESIS, id, at, &AuditRecord { action, ..record("ok", None) });
        sqlx::query(sql)
            .bind(id)
            .bind(GENESIS.to_vec())
            .bind(hash.to_vec())
            .execute(pool)
            .await
            .expect("chain fields written by hand");
        hash
    }

    /// Chains until `expected` records were chained in all: a transaction that writes, open in
    /// any database of the server (another test's), holds chaining back until it ends.
    async fn chain_expecting(pool: &PgPool, expected: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut chained = 0;
        while chained < expected {
            assert!(std::time::Instant::now() < deadline, "chained {chained} of {expected} in 30 s");
            chained += chain_pending(pool).await.expect("chain");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(chained, expected, "chained more than expected");
    }

    /// A record written by a transaction still open when later records commit waits, and so do
    /// the later ones (the chain keeps transaction order); once it commits, both are chained, and
    /// a rolled-back record never is.
    #[sqlx::test(migrations = "../../migrations")]
    async fn records_wait_for_older_open_transactions_and_rolled_back_ones_are_never_chained(pool: PgPool) {
        let first = append_committed(&pool, "first").await;
        chain_expecting(&pool, 1).await;

        let mut open = pool.begin().await.expect("begin");
        let waiting =
            append(&mut open, &AuditRecord { action: "open", ..record("ok", None) }).await.expect("append");
        let later = append_committed(&pool, "later").await;
        assert_eq!(
            chain_pending(&pool).await.expect("chain"),
            0,
            "the open transaction holds back what follows it"
        );
        let unchained: i64 = sqlx::query_scalar(UNCHAINED_COUNT).fetch_one(&pool).await.expect("count");
        assert_eq!(unchained, 1, "the open transaction's record is not visible yet");

        let mut rolled_back = pool.begin().await.expect("begin");
        append(&mut rolled_back, &AuditRecord { action: "rolled-back", ..record("ok", None) })
            .await
            .expect("append");
        rolled_back.rollback().await.expect("rollback");
        open.commit().await.expect("commit");
        chain_expecting(&pool, 2).await;
        assert_eq!(chain_pending(&pool).await.expect("chain"), 0, "each record is chained once");

        let order: Vec<(i64, i64)> = sqlx::query_as("SELECT seq, id FROM audit.chain ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("chain");
        assert_eq!(order, vec![(1, first), (2, waiting), (3, later)], "transaction order, not id order");
        let verification = verify(&pool).await.expect("verify");
        assert_eq!((verification.records, verification.broken, verification.unchained), (3, None, 0));
        let listed = query(&pool, &AuditQuery { limit: 10, ..AuditQuery::default() }).await.expect("query");
        assert_eq!(
            listed.iter().map(|stored| stored.seq).collect::<Vec<_>>(),
            vec![Some(3), Some(2), Some(1)]
        );
        assert_eq!(listed[1].prev_hash, listed[2].hash, "listed with their chain fields");
    }

    /// More records than one batch: every pass ends on a whole transaction, and the chain is
    /// unbroken across passes.
    #[sqlx::test(migrations = "../../migrations")]
    async fn a_transaction_larger_than_a_batch_is_chained_whole(pool: PgPool) {
        let records = usize::try_from(CHAIN_BATCH).expect("small") + 5;
        let mut transaction = pool.begin().await.expect("begin");
        for _ in 0..records {
            append(&mut transaction, &record("ok", None)).await.expect("append");
        }
        transaction.commit().await.expect("commit");
        append_committed(&pool, "after").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut first_pass = 0;
        while first_pass == 0 {
            assert!(std::time::Instant::now() < deadline, "nothing chained in 30 s");
            first_pass = chain_batch(&pool).await.expect("chain");
        }
        assert_eq!(first_pass, records as u64, "the whole transaction in one pass, and nothing after it");
        chain_expecting(&pool, 1).await;
        let verification = verify(&pool).await.expect("verify");
        assert_eq!(
            (verification.records, verification.broken, verification.unchained),
            (records as u64 + 1, None, 0)
        );
    }

    /// A log restored from a dump into another server keeps the old server's transaction ids,
    /// larger than this server's: records written after the restore are chained all the same,
    /// after the restored head, and nothing is chained twice.
    #[sqlx::test(migrations = "../../migrations")]
    async fn records_written_after_a_restore_from_another_server_are_chained(pool: PgPool) {
        // A record "from the other server": a transaction id far ahead of this server's.
        let restored: i64 = sqlx::query_scalar(
            "INSERT INTO audit.log (at, service, actor, role, action, target, outcome, tx) \
             VALUES (now(), 'registry', 'nurse-1', 'nurse', 'restored', 'episode:1', 'ok', \
                     (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000000)::text::xid8) \
             RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .expect("restored record");
        // Its chain row came with the dump; chaining it here would have waited for the far id.
        let sql = "INSERT INTO audit.chain (seq, id, prev_hash, hash) VALUES (1, $1, $2, $3)";
        chain_first_by(&pool, sql, restored, "restored").await;

        let after = append_committed(&pool, "after-restore").await;
        chain_expecting(&pool, 1).await;
        let again = append_committed(&pool, "again").await;
        chain_expecting(&pool, 1).await;
        let order: Vec<(i64, i64)> = sqlx::query_as("SELECT seq, id FROM audit.chain ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("chain");
        assert_eq!(order, vec![(1, restored), (2, after), (3, again)]);
        let verification = verify(&pool).await.expect("verify");
        assert_eq!((verification.records, verification.broken, verification.unchained), (3, None, 0));
    }

    /// Migration 0402 on a log that 0401's chainer chained by update: the chained records keep
    /// their place and hashes, the unchained ones are chained by the new chainer after them.
    #[sqlx::test(migrations = false)]
    async fn migration_0402_keeps_records_chained_by_update_and_chains_the_rest(pool: PgPool) {
        crate::db::MIGRATOR.run_to(401, &pool).await.expect("migrations up to 0401");
        let chained = append_committed(&pool, "chained-by-update").await;
        let waiting = append_committed(&pool, "unchained").await;
        let sql = "UPDATE audit.log SET seq = 1, prev_hash = $2, hash = $3 WHERE id = $1";
        let hash = chain_first_by(&pool, sql, chained, "chained-by-update").await;

        crate::db::MIGRATOR.run(&pool).await.expect("migration 0402");
        let before = verify(&pool).await.expect("verify");
        assert_eq!((before.records, before.broken.clone(), before.unchained), (1, None, 1), "{before:?}");
        assert_eq!(before.head, Some(hex::encode(hash)), "the chained record keeps its hash");
        chain_expecting(&pool, 1).await;
        let order: Vec<(i64, i64)> = sqlx::query_as("SELECT seq, id FROM audit.chain ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("chain");
        assert_eq!(order, vec![(1, chained), (2, waiting)]);
        let after = verify(&pool).await.expect("verify");
        assert_eq!((after.records, after.broken.clone(), after.unchained), (2, None, 0), "{after:?}");
    }

    /// Neither table of the log takes an update or a delete.
    #[sqlx::test(migrations = "../../migrations")]
    async fn the_log_and_its_chain_refuse_changes(pool: PgPool) {
        append_committed(&pool, "kept").await;
        chain_expecting(&pool, 1).await;
        for change in [
            "UPDATE audit.log SET actor = 'someone-else'",
            "DELETE FROM audit.log",
            "UPDATE audit.chain SET hash = prev_hash",
            "DELETE FROM audit.chain",
            "TRUNCATE audit.chain",
        ] {
            let refused = sqlx::query(change).execute(&pool).await.expect_err(change);
            let table = if change.contains("audit.chain") { "audit.chain" } else { "audit.log" };
            let expected = format!("{table} is append-only");
            assert!(refused.to_string().contains(&expected), "{change}: {refused}");
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
