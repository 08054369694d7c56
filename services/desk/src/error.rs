//! What can go wrong while serving a page, and the page (or redirect) each case becomes.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::html::{esc, page};
use crate::upstream::Problem;

/// A request that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No live session: the nurse is sent to the sign-in page.
    #[error("sign-in required")]
    SignInRequired,
    /// A form arrived without this session's form token (an old tab, or another site).
    #[error("the form token does not match the session")]
    FormExpired,
    /// The address names no episode the desk can show.
    #[error("not found: {0}")]
    NotFound(String),
    /// A call to the registry or ingest failed.
    #[error("upstream call failed: {}", .0.message)]
    Upstream(Problem),
    /// The desk itself failed (e.g. no randomness); the cause is logged.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for handler results.
pub type Result<T> = std::result::Result<T, Error>;

fn error_page(status: StatusCode, title: &str, message: &str, link: (&str, &str)) -> Response {
    let body = format!(
        r#"<h1>{}</h1><div class="problems" role="alert"><p>{}</p></div><p><a class="button" href="{}">{}</a></p>"#,
        esc(title),
        esc(message),
        esc(link.0),
        esc(link.1)
    );
    (status, Html(page(title, None, &body))).into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::SignInRequired => {
                (StatusCode::SEE_OTHER, [(header::LOCATION, "/sign-in")]).into_response()
            }
            Error::FormExpired => error_page(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was opened in an earlier sign-in or did not come from the desk. Nothing was saved. \
                 Open the page again and re-enter the values.",
                ("/worklist", "Back to the worklist"),
            ),
            Error::NotFound(what) => error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("The desk has no {what}."),
                ("/worklist", "Back to the worklist"),
            ),
            Error::Upstream(problem) if problem.sign_in_again => error_page(
                StatusCode::UNAUTHORIZED,
                "Sign in again",
                &problem.message,
                ("/sign-in", "Sign in"),
            ),
            Error::Upstream(problem) => error_page(
                StatusCode::BAD_GATEWAY,
                "The desk could not complete this",
                &problem.message,
                ("/worklist", "Back to the worklist"),
            ),
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "desk internal error");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The desk failed to serve this page. Nothing was saved. Try again; if it persists, call support.",
                    ("/worklist", "Back to the worklist"),
                )
            }
        }
    }
}
