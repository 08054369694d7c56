//! Idempotency keys: a retried write with the same key and the same request gets the stored
//! answer; the same key with a different request is refused.
//!
//! The key row is inserted in the operation's own transaction. A concurrent retry blocks on the
//! unique index until the first transaction ends: it then sees the committed answer, or, if the
//! first attempt rolled back, performs the work itself.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::domain::records::required_text;
use crate::error::{Error, Result};

/// sha256 over the method name and the compact JSON of the validated request.
pub fn request_hash(method: &str, request: &impl Serialize) -> Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(request)?);
    Ok(hasher.finalize().to_vec())
}

/// A claimed key, to be completed with the answer before the transaction commits.
pub struct Claim {
    method: &'static str,
    key: Option<String>,
}

/// A key and the hash of its request, checked and ready to claim.
pub struct Keyed {
    pub key: String,
    pub hash: Vec<u8>,
}

/// Checks `key` and hashes the request it is given for (`None` without a key).
pub fn keyed(key: Option<&str>, method: &str, request: &impl Serialize) -> Result<Option<Keyed>> {
    key.map(|key| {
        Ok(Keyed { key: required_text("idempotency_key", key, 128)?, hash: request_hash(method, request)? })
    })
    .transpose()
}

/// Claims `key` for this request. `Ok(Err(answer))` is a replay: return the stored answer.
pub async fn claim<T: DeserializeOwned>(
    conn: &mut PgConnection,
    key: Option<&str>,
    method: &'static str,
    request: &impl Serialize,
) -> Result<std::result::Result<Claim, T>> {
    let Some(Keyed { key, hash }) = keyed(key, method, request)? else {
        return Ok(Ok(Claim { method, key: None }));
    };
    let inserted = sqlx::query!(
        "INSERT INTO registry.idempotency_keys (idempotency_key, method, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT (method, idempotency_key) DO NOTHING",
        key,
        method,
        hash
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Ok(Claim { method, key: Some(key) }));
    }
    Ok(Err(stored_answer(conn, method, &Keyed { key, hash }).await?))
}

/// The answer stored under a key claimed by an earlier, committed request; refused when that
/// request differs from this one.
pub async fn stored_answer<T: DeserializeOwned>(
    conn: &mut PgConnection,
    method: &str,
    keyed: &Keyed,
) -> Result<T> {
    let response = stored_request(conn, method, keyed).await?;
    committed_answer(response)
}

/// The answer a committed key holds. The answer is written in the same transaction as the key,
/// so a committed key has one.
pub fn committed_answer<T: DeserializeOwned>(response: Option<serde_json::Value>) -> Result<T> {
    let response = response
        .ok_or_else(|| Error::Database(sqlx::Error::Protocol("idempotency key without a response".into())))?;
    Ok(serde_json::from_value(response)?)
}

/// Refuses a stored key whose request hash differs from this request's.
pub fn same_request(keyed: &Keyed, stored_hash: &[u8]) -> Result<()> {
    if stored_hash == keyed.hash.as_slice() { Ok(()) } else { Err(Error::IdempotencyKeyReused) }
}

/// Refuses when `keyed.key` is stored for a different request; returns the stored answer, if
/// any (none for a key this transaction claimed itself).
pub async fn stored_request(
    conn: &mut PgConnection,
    method: &str,
    keyed: &Keyed,
) -> Result<Option<serde_json::Value>> {
    let stored = sqlx::query!(
        "SELECT request_hash, response FROM registry.idempotency_keys WHERE method = $1 AND idempotency_key = $2",
        method,
        keyed.key
    )
    .fetch_one(&mut *conn)
    .await?;
    same_request(keyed, &stored.request_hash)?;
    Ok(stored.response)
}

impl Claim {
    /// Stores the answer under the key (no-op without a key).
    pub async fn complete(self, conn: &mut PgConnection, answer: &impl Serialize) -> Result<()> {
        let Some(key) = self.key else {
            return Ok(());
        };
        let response = serde_json::to_value(answer)?;
        sqlx::query!(
            "UPDATE registry.idempotency_keys SET response = $3 WHERE method = $1 AND idempotency_key = $2",
            self.method,
            key,
            response
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}
