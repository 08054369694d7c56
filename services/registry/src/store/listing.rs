//! Episode listing (newest first, keyset pages) and an episode's stored events.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::episodes::fetch_episode;
use super::{EventKind, Store};
use crate::domain::records::Episode;
use crate::domain::types::{Indication, OutcomeStatus};
use crate::error::{Error, Result};

/// Filters of ListEpisodes, combined with AND (`None`: no filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpisodeFilter {
    pub patient_id: Option<Uuid>,
    pub study_id: Option<Uuid>,
    pub status: Option<OutcomeStatus>,
    pub indication: Option<Indication>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// One stored event of an episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: i64,
    pub kind: EventKind,
    pub subject: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Episodes matching `filter`, newest first (created_at, then episode id, descending).
    pub async fn list_episodes(
        &self,
        filter: &EpisodeFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Episode>, String)> {
        let page_size = page_size.clamp(1, self.config.max_page_size.max(1));
        let before = parse_token(page_token)?;
        let rows = sqlx::query!(
            "SELECT episode_id, created_at FROM registry.episodes
             WHERE ($1::uuid IS NULL OR patient_id = $1)
               AND ($2::uuid IS NULL OR study_id = $2)
               AND ($3::text IS NULL OR outcome_status = $3)
               AND ($4::text IS NULL OR indication = $4)
               AND ($5::timestamptz IS NULL OR created_at >= $5)
               AND ($6::timestamptz IS NULL OR created_at < $6)
               AND ($7::timestamptz IS NULL OR (created_at, episode_id) < ($7, $8))
             ORDER BY created_at DESC, episode_id DESC
             LIMIT $9",
            filter.patient_id,
            filter.study_id,
            filter.status.map(|status| status.as_str()),
            filter.indication.map(|indication| indication.as_str()),
            filter.created_after,
            filter.created_before,
            before.map(|(at, _)| at),
            before.map_or(Uuid::nil(), |(_, id)| id),
            i64::from(page_size) + 1
        )
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() > page_size as usize;
        let mut conn = self.pool.acquire().await?;
        let mut episodes = Vec::with_capacity(rows.len());
        for row in rows.iter().take(page_size as usize) {
            episodes.push(fetch_episode(&mut conn, row.episode_id).await?);
        }
        let next = match episodes.last() {
            Some(last) if has_more => format!("{}/{}", last.created_at.timestamp_micros(), last.episode_id),
            _ => String::new(),
        };
        Ok((episodes, next))
    }

    /// Events of an episode after `after_event_id`, oldest first.
    pub async fn episode_events(&self, episode_id: Uuid, after_event_id: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query!(
            "SELECT event_id, kind, subject, created_at FROM registry.events
             WHERE episode_id = $1 AND event_id > $2 ORDER BY event_id",
            episode_id,
            after_event_id
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                EventKind::parse(&row.kind).map(|kind| StoredEvent {
                    event_id: row.event_id,
                    kind,
                    subject: row.subject,
                    created_at: row.created_at,
                })
            })
            .collect())
    }
}

/// Parses `"<created_at micros>/<episode id>"`; empty is the first page.
fn parse_token(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page.page_token", "not a token returned by ListEpisodes");
    let (micros, id) = token.split_once('/').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| invalid())?)))
}
