//! The Redis job stream as the worker sees it: the consumer group (recreated after a flush),
//! reads, reclaiming of idle entries, heartbeats, acknowledgements and confirmations.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamPendingCountReply, StreamReadReply,
};
use tfesi_platform::jobs::{FIELD_JOB_ID, FIELD_PAYLOAD, PipelineJob};

/// Confirmations kept on `<stream>:done` (approximate trim; the relay reads far behind less).
const DONE_MAX_LEN: u64 = 100_000;

/// One stream entry: its id and the two fields of the job contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stream entry id (acknowledged with XACK).
    pub entry_id: String,
    /// The `job_id` field (empty when missing).
    pub job_id: String,
    /// The `payload` field (empty when missing).
    pub payload: String,
}

impl Delivery {
    fn from_stream_id(entry: &StreamId) -> Self {
        Self {
            entry_id: entry.id.clone(),
            job_id: entry.get::<String>(FIELD_JOB_ID).unwrap_or_default(),
            payload: entry.get::<String>(FIELD_PAYLOAD).unwrap_or_default(),
        }
    }
}

/// Figures of the consumer group for GetPipelineStatus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFigures {
    /// Entries not yet delivered to the group.
    pub lag: u64,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    /// Consumers in the group.
    pub consumers: u32,
    /// Idle time of the oldest pending entry.
    pub oldest_pending_idle: Option<Duration>,
}

/// The job stream, its consumer group, and this process's consumer name.
#[derive(Clone)]
pub struct JobStream {
    connection: ConnectionManager,
    key: String,
    group: String,
    consumer: String,
}

fn is_nogroup(error: &redis::RedisError) -> bool {
    error.code() == Some("NOGROUP") || error.to_string().contains("NOGROUP")
}

impl JobStream {
    pub fn new(connection: ConnectionManager, key: String, group: String, consumer: String) -> Self {
        Self { connection, key, group, consumer }
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This process's consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the group (and the stream) if missing, reading from the stream's start so jobs
    /// published before any worker existed are delivered. Idempotent.
    pub async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut connection)
            .await;
        match created {
            Ok(()) => {
                tracing::info!(stream = %self.key, group = %self.group, "consumer group created");
                Ok(())
            }
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Reads up to `count` new entries for this consumer, blocking up to `block` on
    /// `connection` (a dedicated one: a blocking read would stall a shared connection). When
    /// the group is gone (Redis was flushed) it is recreated and nothing is returned.
    pub async fn read_new<C: ConnectionLike + Send>(
        &self,
        connection: &mut C,
        count: usize,
        block: Duration,
    ) -> redis::RedisResult<Vec<Delivery>> {
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(connection)
            .await;
        match reply {
            Ok(reply) => Ok(reply
                .map(|reply| {
                    reply.keys.iter().flat_map(|key| key.ids.iter().map(Delivery::from_stream_id)).collect()
                })
                .unwrap_or_default()),
            Err(error) if is_nogroup(&error) => {
                tracing::warn!(stream = %self.key, group = %self.group, "consumer group missing (redis flushed?); recreating it");
                self.ensure_group().await?;
                Ok(Vec::new())
            }
            Err(error) => Err(error),
        }
    }

    /// Claims up to `count` entries pending longer than `min_idle` for this consumer, starting
    /// at `cursor` ("0-0" for the start); returns the next cursor ("0-0" after a full pass).
    pub async fn autoclaim(
        &self,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> redis::RedisResult<(String, Vec<Delivery>)> {
        let mut connection = self.connection.clone();
        let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
            .arg(cursor)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut connection)
            .await;
        match reply {
            Ok(reply) => {
                let claimed = reply.claimed.iter().map(Delivery::from_stream_id).collect();
                Ok((reply.next_stream_id, claimed))
            }
            Err(error) if is_nogroup(&error) => {
                self.ensure_group().await?;
                Ok(("0-0".to_owned(), Vec::new()))
            }
            Err(error) => Err(error),
        }
    }

    /// Resets the idle time of an entry this consumer is working on, so no other consumer
    /// reclaims it while a slow job or its backoff runs. Does not count as a delivery.
    pub async fn heartbeat(&self, entry_id: &str) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        let _claimed: Vec<String> = redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(entry_id)
            .arg("JUSTID")
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Acknowledges an entry (a no-op when the stream was flushed meanwhile).
    pub async fn ack(&self, entry_id: &str) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        let result: redis::RedisResult<i64> = redis::cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(entry_id)
            .query_async(&mut connection)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_nogroup(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Appends `job_id` to `<stream>:done`, which ingest's relay reads as a confirmation.
    pub async fn confirm_done(&self, job_id: &str) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        let _entry: String = redis::cmd("XADD")
            .arg(PipelineJob::done_key(&self.key))
            .arg("MAXLEN")
            .arg("~")
            .arg(DONE_MAX_LEN)
            .arg("*")
            .arg(FIELD_JOB_ID)
            .arg(job_id)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Adds a job to the stream (an operator's retry of a dead letter).
    pub async fn publish(&self, job_id: &str, payload: &str) -> redis::RedisResult<String> {
        let mut connection = self.connection.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("*")
            .arg(FIELD_JOB_ID)
            .arg(job_id)
            .arg(FIELD_PAYLOAD)
            .arg(payload)
            .query_async(&mut connection)
            .await
    }

    /// Lag, pending count, consumers and the oldest pending entry's idle time; all zero when
    /// the stream or group does not exist (yet, or after a flush).
    pub async fn figures(&self) -> redis::RedisResult<GroupFigures> {
        let mut connection = self.connection.clone();
        let exists: i64 = redis::cmd("EXISTS").arg(&self.key).query_async(&mut connection).await?;
        if exists == 0 {
            return Ok(GroupFigures::default());
        }
        let groups: StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(&self.key).query_async(&mut connection).await?;
        let Some(group) = groups.groups.into_iter().find(|group| group.name == self.group) else {
            let length: u64 = redis::cmd("XLEN").arg(&self.key).query_async(&mut connection).await?;
            return Ok(GroupFigures { lag: length, ..GroupFigures::default() });
        };
        let lag = match group.lag {
            Some(lag) => lag as u64,
            None => {
                // Redis could not compute the lag (entries deleted): count what follows the
                // last delivered id.
                let after: Vec<redis::Value> = redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(format!("({}", group.last_delivered_id))
                    .arg("+")
                    .query_async(&mut connection)
                    .await?;
                after.len() as u64
            }
        };
        let oldest: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(&self.group)
            .arg("-")
            .arg("+")
            .arg(1)
            .query_async(&mut connection)
            .await?;
        Ok(GroupFigures {
            lag,
            pending: group.pending as u64,
            consumers: u32::try_from(group.consumers).unwrap_or(u32::MAX),
            oldest_pending_idle: oldest
                .ids
                .first()
                .map(|pending| Duration::from_millis(pending.last_delivered_ms as u64)),
        })
    }
}
