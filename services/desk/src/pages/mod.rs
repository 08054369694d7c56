//! The desk's pages: the router, the security headers every response carries, the signed-in
//! nurse extractor and small helpers shared by the page modules.

mod auth;
mod entry;
mod episode;
mod worklist;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use tfesi_proto::common::v1 as common;

use crate::AppState;
use crate::error::{Error, Result};
use crate::followup::Fields;
use crate::html::STYLESHEET;
use crate::session::{SESSION_COOKIE, Session, cookie, same_secret};

/// Every route of the desk.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/worklist") }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/desk.css", get(stylesheet))
        .route("/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/worklist", get(worklist::worklist))
        .route("/recent", get(worklist::recent))
        .route("/episodes/{episode_id}", get(episode::episode))
        .route("/episodes/{episode_id}/lost", get(episode::lost_page).post(episode::mark_lost))
        .route("/episodes/{episode_id}/follow-up", get(entry::new_form).post(entry::review_new))
        .route("/episodes/{episode_id}/follow-up/save", post(entry::save_new))
        .route("/episodes/{episode_id}/amend", get(entry::amend_form).post(entry::review_amend))
        .route("/episodes/{episode_id}/amend/save", post(entry::save_amend))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET).into_response()
}

/// Pages hold patient identities: never cached, never framed, no inline script or style.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The signed-in nurse of a request (pages that need one take it as an argument; without a live
/// session the request is redirected to the sign-in page).
pub struct Nurse {
    /// Session id (the cookie's value).
    pub session_id: String,
    /// A copy of the session.
    pub session: Session,
}

impl FromRequestParts<AppState> for Nurse {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let session_id = cookie(&parts.headers, SESSION_COOKIE).ok_or(Error::SignInRequired)?.to_owned();
        let session = state.sessions.get(&session_id).ok_or(Error::SignInRequired)?;
        Ok(Self { session_id, session })
    }
}

impl Nurse {
    /// (display name, CSRF token) for the page header.
    pub fn header(&self) -> Option<(&str, &str)> {
        Some((self.session.display_name.as_str(), self.session.csrf.as_str()))
    }

    /// Parses a form body and checks its CSRF token against the session's.
    pub fn form(&self, body: &[u8]) -> Result<Fields> {
        let fields = Fields::parse(body);
        if !same_secret(fields.get("csrf"), &self.session.csrf) {
            return Err(Error::FormExpired);
        }
        Ok(fields)
    }
}

/// Today, the hospital's local date (the machine's time zone).
pub fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// Checks that the path's episode id is a UUID (the registry's ids) before any call.
pub fn episode_id(text: &str) -> Result<String> {
    uuid::Uuid::parse_str(text)
        .map(|id| id.to_string())
        .map_err(|_| Error::NotFound(format!("episode with the id '{text}'")))
}

/// A 303 redirect (after a POST, so that reloading does not resubmit).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => Error::Internal(format!("redirect to an invalid location {location:?}")).into_response(),
    }
}

/// `SPINAL_LEVEL_L4_L5` as `L4-L5`.
pub fn level_name(value: i32) -> String {
    common::SpinalLevel::try_from(value)
        .ok()
        .filter(|level| *level != common::SpinalLevel::Unspecified)
        .map_or_else(
            || "?".to_owned(),
            |level| level.as_str_name().trim_start_matches("SPINAL_LEVEL_").replace('_', "-"),
        )
}

/// The injected levels and side, e.g. `L4-L5, L5-S1 left`.
pub fn injected(levels: &[i32], side: i32) -> String {
    let levels: Vec<String> = levels.iter().map(|level| level_name(*level)).collect();
    let side = common::Side::try_from(side)
        .ok()
        .filter(|side| *side != common::Side::Unspecified)
        .map_or_else(String::new, |side| side.as_str_name().trim_start_matches("SIDE_").to_ascii_lowercase());
    format!("{} {side}", levels.join(", ")).trim().to_owned()
}

/// A protobuf date as `YYYY-MM-DD`, or `-`.
pub fn show_date(date: Option<&common::Date>) -> String {
    crate::followup::to_naive(date).map_or_else(|| "-".to_owned(), |date| date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_sides_read_as_on_the_procedure_note() {
        let levels = [common::SpinalLevel::L4L5 as i32, common::SpinalLevel::S1 as i32];
        assert_eq!(injected(&levels, common::Side::Left as i32), "L4-L5, S1 left");
        assert_eq!(injected(&[], common::Side::Unspecified as i32), "");
    }

    #[test]
    fn only_uuids_are_episode_ids() {
        assert!(episode_id("not-a-uuid").is_err());
        assert!(episode_id("6f1c4a0e-3b7e-4c55-9d59-6a8f4a1b2c3d").is_ok());
    }
}
