//! Server-side sessions: a random id in an HttpOnly, SameSite=Strict cookie points to the
//! nurse's minted token, the form (CSRF) token and what the desk remembers between pages.
//!
//! Sessions live in this process' memory: a restart signs every nurse out, which is safe (the
//! registry holds every record; nothing in a session is truth).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use tfesi_proto::ingest::v1 as ingest;
use tfesi_proto::registry::v1 as registry;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "desk_session";
/// Name of the cookie that carries the sign-in form's CSRF token before a session exists.
pub const SIGN_IN_COOKIE: &str = "desk_sign_in";
/// Most sessions held at once; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 10_000;
/// Most episodes remembered per session as "recorded in this session".
const MAX_RECENT: usize = 50;

/// 32 random bytes as hex, from the system's secure generator.
pub fn random_token() -> Option<String> {
    let mut bytes = [0_u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    left.len() == right.len() && left.iter().zip(right).fold(0_u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The value of cookie `name` in a `Cookie` request header.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, `Secure` when asked.
pub fn set_cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// An episode as the desk knows it from the worklist or from its own writes.
#[derive(Debug, Clone)]
pub struct KnownEpisode {
    /// Surrogate patient id.
    pub patient_id: String,
    /// Schedule, when known (the worklist gives it).
    pub window: Option<registry::FollowUpWindow>,
    /// Injected levels.
    pub levels: Vec<i32>,
    /// Injected side.
    pub side: i32,
    /// What this session did to it last, e.g. "follow-up recorded".
    pub last_action: Option<String>,
}

/// What a signed-in nurse carries from page to page.
#[derive(Debug, Clone)]
pub struct Session {
    /// Sign-in name (the token subject).
    pub username: String,
    /// Name shown on the pages.
    pub display_name: String,
    /// The bearer token sent on every gRPC call.
    pub token: String,
    /// Required in every form.
    pub csrf: String,
    /// Episodes seen on the worklist or written in this session, by episode id.
    pub episodes: HashMap<String, KnownEpisode>,
    /// Episode ids written in this session, newest first.
    pub recent: Vec<String>,
    /// Identities already resolved (audited once per session), by surrogate patient id.
    pub identities: HashMap<String, ingest::PatientIdentity>,
    expires_at: Instant,
}

impl Session {
    /// A new session for `username`.
    pub fn new(username: String, display_name: String, token: String, csrf: String, ttl: Duration) -> Self {
        Self {
            username,
            display_name,
            token,
            csrf,
            episodes: HashMap::new(),
            recent: Vec::new(),
            identities: HashMap::new(),
            expires_at: Instant::now() + ttl,
        }
    }

    /// Remembers that this session wrote to `episode_id`.
    pub fn note_written(&mut self, episode_id: &str, action: &str) {
        if let Some(known) = self.episodes.get_mut(episode_id) {
            known.last_action = Some(action.to_owned());
        }
        self.recent.retain(|id| id != episode_id);
        self.recent.insert(0, episode_id.to_owned());
        self.recent.truncate(MAX_RECENT);
    }
}

/// Every live session, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave a session half-written in a way that
        // matters (each update replaces whole fields), so a poisoned lock is still usable.
        self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `session` under a new random id and returns the id.
    pub fn create(&self, session: Session) -> Option<String> {
        let id = random_token()?;
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, existing| existing.expires_at > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) =
                sessions.iter().min_by_key(|(_, existing)| existing.expires_at).map(|(key, _)| key.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), session);
        Some(id)
    }

    /// A copy of the live session `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.lock();
        let live = sessions.get(id).is_some_and(|session| session.expires_at > Instant::now());
        if !live {
            sessions.remove(id);
            return None;
        }
        sessions.get(id).cloned()
    }

    /// Applies `change` to the live session `id`.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) {
        if let Some(session) = self.lock().get_mut(id) {
            change(session);
        }
    }

    /// Ends session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; desk_session=abc; b=2".parse().expect("header"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_and_strict() {
        let value = set_cookie(SESSION_COOKIE, "id", 60, true);
        assert!(value.contains("HttpOnly") && value.contains("SameSite=Strict") && value.contains("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "id", 60, false).contains("Secure"));
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::default();
        let expired = Session::new("a".into(), "A".into(), "t".into(), "c".into(), Duration::ZERO);
        let id = sessions.create(expired).expect("random id");
        assert!(sessions.get(&id).is_none());
        let live = Session::new("a".into(), "A".into(), "t".into(), "c".into(), Duration::from_secs(60));
        let id = sessions.create(live).expect("random id");
        assert_eq!(sessions.get(&id).map(|s| s.username), Some("a".to_owned()));
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
