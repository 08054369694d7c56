//! Sign-in and sign-out. A failed sign-in says only that it failed, never which part was wrong.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{Nurse, see_other};
use crate::AppState;
use crate::error::{Error, Result};
use crate::followup::Fields;
use crate::html::{esc, page};
use crate::session::{
    SESSION_COOKIE, SIGN_IN_COOKIE, Session, cookie, random_token, same_secret, set_cookie,
};

/// How long a sign-in form stays usable, seconds.
const SIGN_IN_FORM_TTL_S: u64 = 1800;

fn sign_in_html(form_token: &str, username: &str, problem: Option<&str>) -> String {
    let problem = problem
        .map(|message| {
            format!(r#"<div class="problems" id="problems" role="alert"><p>{}</p></div>"#, esc(message))
        })
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>{problem}
<form method="post" action="/sign-in">
<input type="hidden" name="csrf" value="{form_token}">
<p><label for="username">Username</label><br>
<input type="text" id="username" name="username" value="{username}" autocomplete="username" autocapitalize="none" required></p>
<p><label for="password">Password</label><br>
<input type="password" id="password" name="password" autocomplete="current-password" required></p>
<p><button type="submit" id="sign-in">Sign in</button></p>
</form>"#,
        form_token = esc(form_token),
        username = esc(username),
    );
    page("Sign in", None, &body)
}

/// A sign-in page with a fresh form token, set as a cookie too (double submit: another site
/// can neither read the cookie nor, with SameSite=Strict, send it).
fn sign_in_response(
    state: &AppState,
    status: StatusCode,
    username: &str,
    problem: Option<&str>,
) -> Result<Response> {
    let form_token =
        random_token().ok_or_else(|| Error::Internal("no randomness for a form token".into()))?;
    let cookie_value =
        set_cookie(SIGN_IN_COOKIE, &form_token, SIGN_IN_FORM_TTL_S, state.config.desk.secure_cookies);
    let html = sign_in_html(&form_token, username, problem);
    Ok((status, [(header::SET_COOKIE, cookie_value)], Html(html)).into_response())
}

/// `GET /sign-in`.
pub async fn sign_in_page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let signed_in = cookie(&headers, SESSION_COOKIE).and_then(|id| state.sessions.get(id)).is_some();
    if signed_in {
        return Ok(see_other("/worklist"));
    }
    sign_in_response(&state, StatusCode::OK, "", None)
}

/// `POST /sign-in`.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let fields = Fields::parse(&body);
    let username = fields.get("username").to_owned();
    let form_token_matches =
        cookie(&headers, SIGN_IN_COOKIE).is_some_and(|expected| same_secret(fields.get("csrf"), expected));
    if !form_token_matches {
        return sign_in_response(
            &state,
            StatusCode::FORBIDDEN,
            &username,
            Some("The sign-in form expired. Enter your username and password again."),
        );
    }
    // The password is taken from the parsed form (not trimmed: spaces may be part of it).
    let password = form_urlencoded::parse(&body)
        .find(|(key, _)| key == "password")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let accounts = state.accounts.clone();
    let candidate = username.clone();
    // PBKDF2 takes a noticeable fraction of a second: off the async threads.
    let account = tokio::task::spawn_blocking(move || accounts.sign_in(&candidate, &password))
        .await
        .map_err(|error| Error::Internal(format!("sign-in check failed: {error}")))?;
    let Some(account) = account else {
        tracing::info!(outcome = "refused", "desk sign-in");
        return sign_in_response(
            &state,
            StatusCode::UNAUTHORIZED,
            &username,
            Some("Sign-in failed. Check your username and password and try again."),
        );
    };
    let token =
        state.mint_nurse_token(&account.username).map_err(|error| Error::Internal(error.to_string()))?;
    let csrf = random_token().ok_or_else(|| Error::Internal("no randomness for a form token".into()))?;
    let ttl = state.config.desk.session_ttl_s;
    let session =
        Session::new(account.username.clone(), account.display_name, token, csrf, Duration::from_secs(ttl));
    let session_id = state
        .sessions
        .create(session)
        .ok_or_else(|| Error::Internal("no randomness for a session id".into()))?;
    tracing::info!(outcome = "signed in", user = %account.username, "desk sign-in");
    let secure = state.config.desk.secure_cookies;
    let mut response = see_other("/worklist");
    for value in
        [set_cookie(SESSION_COOKIE, &session_id, ttl, secure), set_cookie(SIGN_IN_COOKIE, "", 0, secure)]
    {
        let value = HeaderValue::from_str(&value).map_err(|error| Error::Internal(error.to_string()))?;
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /sign-out`.
pub async fn sign_out(State(state): State<AppState>, nurse: Nurse, body: Bytes) -> Result<Response> {
    nurse.form(&body)?;
    state.sessions.remove(&nurse.session_id);
    tracing::info!(user = %nurse.session.username, "desk sign-out");
    let mut response = see_other("/sign-in");
    let expired = set_cookie(SESSION_COOKIE, "", 0, state.config.desk.secure_cookies);
    let value = HeaderValue::from_str(&expired).map_err(|error| Error::Internal(error.to_string()))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(response)
}
