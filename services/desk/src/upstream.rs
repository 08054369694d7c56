//! The registry and ingest clients, each call carrying the nurse's bearer token, and the
//! translation of a failed call into plain words placed next to a form field or above the form.

use std::time::Duration;

use tfesi_platform::client::lazy_channel;
use tfesi_proto::ingest::v1::ingest_client::IngestClient;
use tfesi_proto::registry::v1::registry_client::RegistryClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::config::UpstreamConfig;

/// Clients of the services the desk calls (cheap to clone; nothing connects until the first
/// call, so the desk starts while a service is still coming up).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// tfesi-registry.
    pub registry: RegistryClient<Channel>,
    /// tfesi-ingest.
    pub ingest: IngestClient<Channel>,
    call_timeout: Duration,
}

impl Upstream {
    /// Clients for the configured endpoints.
    pub fn new(config: &UpstreamConfig, call_timeout: Duration) -> anyhow::Result<Self> {
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        Ok(Self {
            registry: RegistryClient::new(lazy_channel(
                &config.registry,
                config.tls.as_ref(),
                connect_timeout,
            )?),
            ingest: IngestClient::new(lazy_channel(&config.ingest, config.tls.as_ref(), connect_timeout)?),
            call_timeout,
        })
    }

    /// `message` as a request with the nurse's token, a deadline and the trace context.
    pub fn request<T>(&self, token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.call_timeout);
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
            request.metadata_mut().insert("authorization", value);
        }
        tfesi_platform::telemetry::inject_current_context(&mut request);
        request
    }
}

/// A failed call as the nurse reads it: which form field it concerns (`None`: the whole form)
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Form field the message belongs next to.
    pub field: Option<String>,
    /// Plain-language message.
    pub message: String,
    /// The sign-in is no longer accepted: the nurse must sign in again.
    pub sign_in_again: bool,
}

impl Problem {
    fn top(message: impl Into<String>) -> Self {
        Self { field: None, message: message.into(), sign_in_again: false }
    }

    fn at(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), message: message.into(), sign_in_again: false }
    }
}

/// `google.rpc.Status`, as sent in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<AnyDetail>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct AnyDetail {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.BadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    field_violations: Vec<FieldViolation>,
}

/// `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, PartialEq, prost::Message)]
struct FieldViolation {
    #[prost(string, tag = "1")]
    field: String,
    #[prost(string, tag = "2")]
    description: String,
}

/// The field violations in a status' details, when the service sent any.
fn field_violations(status: &Status) -> Vec<(String, String)> {
    use prost::Message as _;
    let Ok(decoded) = RpcStatus::decode(status.details()) else {
        return Vec::new();
    };
    decoded
        .details
        .iter()
        .filter(|detail| detail.type_url.ends_with("google.rpc.BadRequest"))
        .filter_map(|detail| BadRequest::decode(detail.value.as_slice()).ok())
        .flat_map(|bad| bad.field_violations)
        .map(|violation| (violation.field, violation.description))
        .collect()
}

/// The desk's form field for a request field path such as `follow_up.leg_nrs`.
fn form_field(path: &str) -> String {
    path.trim_start_matches("follow_up.").to_owned()
}

/// Makes `text` a sentence: capital first letter, final period.
fn sentence(text: &str) -> String {
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    let first: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

/// Explains a failed call of `what` (e.g. "saving the follow-up") in plain words.
pub fn explain(what: &str, status: &Status) -> Problem {
    let message = status.message();
    match status.code() {
        Code::InvalidArgument => {
            let named = field_violations(status).into_iter().next().or_else(|| {
                // The registry writes "invalid <field>: <reason>".
                let (field, reason) = message.strip_prefix("invalid ")?.split_once(": ")?;
                Some((field.to_owned(), reason.to_owned()))
            });
            if let Some((field, reason)) = named {
                let field = form_field(&field);
                if crate::followup::FORM_FIELDS.contains(&field.as_str()) {
                    return Problem::at(&field, sentence(&reason));
                }
                return Problem::top(format!(
                    "The registry refused {what}: {field} {}",
                    reason.trim_end_matches('.')
                ));
            }
            Problem::top(format!("The registry refused {what}: {}", sentence(message)))
        }
        Code::FailedPrecondition if message.contains("outside the window") => Problem::at(
            "follow_up_date",
            "This date is outside the follow-up window. Tick \"Outside the window\" to record it anyway \
             (it will not count towards the outcome), or correct the date.",
        ),
        Code::FailedPrecondition if message.contains("before the injection") => {
            Problem::at("follow_up_date", "This date is before the injection. Check the date.")
        }
        Code::FailedPrecondition if message.contains("idempotency key") => Problem::top(
            "This form was already submitted with other values. Open the episode again and re-enter the follow-up.",
        ),
        Code::FailedPrecondition => {
            Problem::top(format!("The registry cannot accept {what} now: {}", sentence(message)))
        }
        Code::AlreadyExists => Problem::top(
            "A follow-up is already recorded for this episode (perhaps by a colleague). Open the episode to see it; \
             correct it with an amendment.",
        ),
        Code::Aborted => Problem::top(
            "Someone amended this follow-up while you were editing. Open the episode again to see the current version.",
        ),
        Code::NotFound => Problem::top(format!("Not found: {}", sentence(message))),
        Code::Unauthenticated => Problem {
            field: None,
            message: "Your sign-in is no longer accepted. Sign in again; nothing was saved.".to_owned(),
            sign_in_again: true,
        },
        Code::PermissionDenied => {
            Problem::top(format!("Your account is not allowed to do this ({what}). Ask an administrator."))
        }
        Code::Unavailable | Code::DeadlineExceeded => Problem::top(format!(
            "The registry did not answer while {what}; nothing is known to be saved. Try again in a minute."
        )),
        _ => Problem::top(format!(
            "Something went wrong while {what}. Try again; if it persists, call support."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_field_message_lands_next_to_the_field() {
        let status = Status::invalid_argument("invalid follow_up.leg_nrs: must be an integer from 0 to 10");
        let problem = explain("saving the follow-up", &status);
        assert_eq!(problem.field.as_deref(), Some("leg_nrs"));
        assert_eq!(problem.message, "Must be an integer from 0 to 10.");
    }

    #[test]
    fn a_message_about_a_field_the_form_lacks_goes_above_the_form() {
        let status = Status::invalid_argument("invalid entered_by: is required");
        let problem = explain("saving the follow-up", &status);
        assert_eq!(problem.field, None);
        assert!(problem.message.contains("entered_by is required"), "{}", problem.message);
    }

    #[test]
    fn field_violations_in_details_win_over_the_message() {
        use prost::Message as _;
        let bad = BadRequest {
            field_violations: vec![FieldViolation {
                field: "follow_up.pgic".to_owned(),
                description: "must be from 1 to 7".to_owned(),
            }],
        };
        let details = RpcStatus {
            code: Code::InvalidArgument as i32,
            message: "bad".to_owned(),
            details: vec![AnyDetail {
                type_url: "type.googleapis.com/google.rpc.BadRequest".to_owned(),
                value: bad.encode_to_vec(),
            }],
        };
        let status = Status::with_details(Code::InvalidArgument, "bad", details.encode_to_vec().into());
        let problem = explain("saving", &status);
        assert_eq!(problem.field.as_deref(), Some("pgic"));
        assert_eq!(problem.message, "Must be from 1 to 7.");
    }

    #[test]
    fn an_out_of_window_date_is_explained_at_the_date() {
        let status = Status::failed_precondition(
            "follow-up on day 90 after the injection is outside the window (day 46 to 74); set accept_out_of_window to record it",
        );
        let problem = explain("saving the follow-up", &status);
        assert_eq!(problem.field.as_deref(), Some("follow_up_date"));
        assert!(problem.message.contains("Outside the window"), "{}", problem.message);
    }

    #[test]
    fn an_expired_token_asks_for_a_new_sign_in() {
        let problem = explain("loading the worklist", &Status::unauthenticated("the token has expired"));
        assert!(problem.sign_in_again);
        assert_eq!(problem.field, None);
    }
}
