//! [`ProtocolError`] ⇄ gRPC [`Status`].
//!
//! The server answers every refused call with the gRPC code of the error's kind
//! and, in the status details, an `ErrorStatus` (wire-compatible with
//! `google.rpc.Status`) holding one `ProtocolErrorDetail`: the client rebuilds
//! the exact error from it, [`ClosedReason`](activity_core::ClosedReason) included.
//!
//! A status without those details did not come from [`ActivityService`](crate::ActivityService)'s
//! handlers: it came from the transport (connection refused or reset, deadline,
//! a server restarting), from tonic's own checks (message size limits) or from
//! the auth interceptor. Those map by code (see [`from_status`]).

use activity_core::protocol::ProtocolError;
use prost::Message;
use tonic::{Code, Status};

use crate::{proto as pb, wire};

const DETAIL_TYPE_URL: &str = "type.googleapis.com/activity.v1.ProtocolErrorDetail";

/// The gRPC code of each error kind.
pub(crate) fn code_of(error: &ProtocolError) -> Code {
    match error {
        ProtocolError::InvalidOptions(_)
        | ProtocolError::InvalidArgument { .. }
        | ProtocolError::PayloadTooLarge { .. }
        | ProtocolError::InvalidToken { .. } => Code::InvalidArgument,
        ProtocolError::NotFound { .. } => Code::NotFound,
        ProtocolError::AlreadyExists { .. } => Code::AlreadyExists,
        ProtocolError::AlreadyClosed { .. } | ProtocolError::FailedPrecondition { .. } => {
            Code::FailedPrecondition
        }
        ProtocolError::Unavailable { .. } => Code::Unavailable,
        ProtocolError::Unsupported { .. } => Code::Unimplemented,
        _ => Code::Internal,
    }
}

/// The most bytes of an error's text a status carries: the message and the
/// details travel in HTTP/2 headers, which the client refuses past its header
/// list limit (16 KiB by default), failing the whole connection.
const MAX_ERROR_TEXT: usize = 2 * 1024;

/// `text`, cut to [`MAX_ERROR_TEXT`] bytes (on a character boundary) with a mark.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// What a client's message says when the transport failed (see [`from_status`]).
const TRANSPORT_FAILED: &str = "failed in transport";
/// What a client's message says when a node did not answer in time.
pub(crate) const NO_ANSWER: &str = "had no answer within";

/// Whether `error` is this client's report that a server could not be reached
/// or stopped answering (connection refused or reset, no answer in time), as
/// opposed to an `Unavailable` the engine answered (its store busy, no worker
/// answering a query …), which names its own cause.
///
/// ```
/// use activity_core::protocol::ProtocolError;
///
/// let busy = ProtocolError::Unavailable { message: "no worker answered".into() };
/// assert!(!activity_remote::is_transport_failure(&busy));
/// ```
pub fn is_transport_failure(error: &ProtocolError) -> bool {
    matches!(error, ProtocolError::Unavailable { message }
        if message.contains(TRANSPORT_FAILED) || message.contains(NO_ANSWER))
}

/// The status a refused call answers.
pub(crate) fn to_status(error: &ProtocolError) -> Status {
    let full = error.to_string();
    if full.len() > MAX_ERROR_TEXT {
        // The error as text only, cut; an invalid argument keeps its field.
        let cut = match error {
            ProtocolError::InvalidArgument { field, message } => {
                ProtocolError::invalid_argument(field.clone(), bounded(message))
            }
            _ => return Status::new(code_of(error), bounded(&full)),
        };
        return with_details(&cut, cut.to_string());
    }
    with_details(error, full)
}

/// The status of `error`, with `message` and the error as details.
fn with_details(error: &ProtocolError, message: String) -> Status {
    let code = code_of(error);
    // The error as model bytes; a (never seen) failure to encode it leaves the
    // code and message, which every client maps on its own.
    let details = match wire::encode(error) {
        Ok(error) => {
            let detail = pb::ProtocolErrorDetail { error };
            let status = pb::ErrorStatus {
                code: code as i32,
                message: message.clone(),
                details: vec![prost_types::Any {
                    type_url: DETAIL_TYPE_URL.to_owned(),
                    value: detail.encode_to_vec(),
                }],
            };
            status.encode_to_vec().into()
        }
        Err(_) => bytes::Bytes::new(),
    };
    Status::with_details(code, message, details)
}

/// The structured error carried by `status`, if it carries one.
fn detail_of(status: &Status) -> Option<ProtocolError> {
    if status.details().is_empty() {
        return None;
    }
    let wire = pb::ErrorStatus::decode(status.details()).ok()?;
    wire.details
        .into_iter()
        .filter(|any| any.type_url == DETAIL_TYPE_URL)
        .find_map(|any| {
            let detail = pb::ProtocolErrorDetail::decode(any.value.as_slice()).ok()?;
            wire::decode(&detail.error, "error").ok()
        })
}

/// Parses tonic's "found N bytes, the limit is: M bytes" message.
fn size_limit(message: &str) -> Option<(usize, usize)> {
    let number_after = |marker: &str| -> Option<usize> {
        let rest = &message[message.find(marker)? + marker.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((number_after("found")?, number_after("limit is:")?))
}

/// Rebuilds the error of a failed call to `rpc` on `endpoint`.
///
/// With the service's details: the exact [`ProtocolError`]. Without, by code:
/// - `UNAVAILABLE`, `UNKNOWN`, `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`,
///   `RESOURCE_EXHAUSTED` and a detail-less `INTERNAL` (the transport: connection
///   refused or reset, a server going away, a timeout) → [`ProtocolError::Unavailable`],
///   retryable;
/// - `OUT_OF_RANGE` from a message size limit → [`ProtocolError::PayloadTooLarge`];
/// - `UNAUTHENTICATED` / `PERMISSION_DENIED` → [`ProtocolError::InvalidArgument`]
///   on field `authorization` (not retryable: the token must be fixed);
/// - `UNIMPLEMENTED` (a server without this rpc) → [`ProtocolError::Unsupported`];
/// - anything else → [`ProtocolError::Internal`].
pub(crate) fn from_status(status: &Status, rpc: &str, endpoint: &str) -> ProtocolError {
    if let Some(error) = detail_of(status) {
        return error;
    }
    let message = status.message();
    match status.code() {
        Code::Unavailable
        | Code::Unknown
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Internal => ProtocolError::Unavailable {
            message: format!(
                "`{rpc}` to {endpoint} {TRANSPORT_FAILED} ({:?}): {}",
                status.code(),
                with_tls_hint(with_sources(status))
            ),
        },
        Code::OutOfRange => match size_limit(message) {
            Some((size, limit)) => ProtocolError::PayloadTooLarge {
                what: format!(
                    "the gRPC message of `{rpc}` (raise the receiver's max message size, or send less)"
                ),
                size,
                limit,
            },
            None => ProtocolError::invalid_argument("request", message),
        },
        Code::Unauthenticated | Code::PermissionDenied => {
            ProtocolError::invalid_argument("authorization", message)
        }
        Code::InvalidArgument | Code::FailedPrecondition => {
            ProtocolError::invalid_argument("request", message)
        }
        Code::NotFound => ProtocolError::NotFound {
            what: message.to_owned(),
        },
        Code::AlreadyExists => ProtocolError::AlreadyExists {
            what: message.to_owned(),
        },
        // An older server without this rpc.
        Code::Unimplemented => ProtocolError::Unsupported {
            operation: format!("{rpc} (on the server at {endpoint})"),
        },
        code => ProtocolError::Internal {
            message: format!("`{rpc}` to {endpoint} answered {code:?}: {message}"),
        },
    }
}

/// `reason` (a transport failure), with what to check when TLS caused it.
pub(crate) fn with_tls_hint(reason: String) -> String {
    let lower = reason.to_ascii_lowercase();
    let hint = if lower.contains("certificaterequired") || lower.contains("certificate required") {
        "the server requires a client certificate: give one (RemoteConfig::with_tls_identity, \
         `--tls-cert` and `--tls-key`)"
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        "the server's certificate is not trusted: give the CA that signed it \
         (RemoteConfig::with_tls_ca, `--tls-ca`), and check the name it was issued for \
         (RemoteConfig::with_tls_domain)"
    } else if lower.contains("corrupt message")
        || lower.contains("invalidcontenttype")
        || lower.contains("invalid content type")
    {
        "the server does not answer in TLS: is it a plain-text server (use `http://`)?"
    } else {
        return reason;
    };
    format!("{reason} (TLS: {hint})")
}

/// The status message followed by its error sources (tonic keeps the transport
/// error, e.g. "Connection refused", in the sources).
fn with_sources(status: &Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use activity_core::{
        failure::TimeoutKind,
        options::ActivityOptions,
        protocol::{ClosedReason, ExecutionState},
    };

    use super::*;

    fn round_trip(error: ProtocolError) {
        let status = to_status(&error);
        assert_eq!(status.code(), code_of(&error), "{error}");
        assert_eq!(status.message(), error.to_string());
        assert_eq!(from_status(&status, "Rpc", "http://x"), error);
    }

    #[test]
    fn every_variant_round_trips_with_its_code() {
        let options = ActivityOptions::new()
            .validate(Some("q"))
            .expect_err("no close timeout");
        round_trip(ProtocolError::InvalidOptions(options));
        round_trip(ProtocolError::invalid_argument(
            "task_queue",
            "must not be empty",
        ));
        round_trip(ProtocolError::PayloadTooLarge {
            what: "the result".into(),
            size: 10,
            limit: 5,
        });
        round_trip(ProtocolError::InvalidToken {
            reason: "bad mac".into(),
        });
        round_trip(ProtocolError::NotFound { what: "x".into() });
        round_trip(ProtocolError::AlreadyExists { what: "x".into() });
        for reason in [
            ClosedReason::AttemptTimedOut(TimeoutKind::Heartbeat),
            ClosedReason::AttemptTimedOut(TimeoutKind::StartToClose),
            ClosedReason::AttemptSuperseded,
            ClosedReason::ExecutionClosed(ExecutionState::TimedOut),
            ClosedReason::ExecutionClosed(ExecutionState::Completed),
            ClosedReason::WorkflowClosed(activity_core::workflow::WorkflowState::Terminated),
        ] {
            round_trip(ProtocolError::AlreadyClosed {
                what: "x".into(),
                reason,
            });
        }
        round_trip(ProtocolError::Unavailable {
            message: "down".into(),
        });
        round_trip(ProtocolError::Internal {
            message: "corrupt".into(),
        });
        round_trip(ProtocolError::Unsupported {
            operation: "start_workflow".into(),
        });
    }

    #[test]
    fn an_error_with_a_long_text_is_cut_to_fit_in_the_headers() {
        let long = ProtocolError::invalid_argument("result", "x".repeat(200_000));
        let status = to_status(&long);
        assert!(
            status.message().len() < 2 * MAX_ERROR_TEXT,
            "{}",
            status.message().len()
        );
        assert!(
            status.details().len() < 3 * MAX_ERROR_TEXT,
            "{}",
            status.details().len()
        );
        match from_status(&status, "CompleteActivity", "e") {
            ProtocolError::InvalidArgument { field, message } => {
                assert_eq!(field, "result");
                assert!(message.ends_with("… (200000 bytes in all)"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let internal = ProtocolError::Internal {
            message: "é".repeat(100_000),
        };
        let status = to_status(&internal);
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().len() < 2 * MAX_ERROR_TEXT);
    }

    #[test]
    fn statuses_without_details_map_by_code() {
        let refused = Status::unavailable("tcp connect error");
        assert!(from_status(&refused, "Rpc", "http://x").is_retryable());
        assert!(is_transport_failure(&from_status(
            &refused, "Rpc", "http://x"
        )));
        let answered = to_status(&ProtocolError::Unavailable {
            message: "no worker polls queue `q`".into(),
        });
        assert!(!is_transport_failure(&from_status(
            &answered, "Rpc", "http://x"
        )));
        assert!(from_status(&Status::unknown("Service was not ready"), "Rpc", "e").is_retryable());
        let too_big = Status::out_of_range(
            "Error, decoded message length too large: found 5000 bytes, the limit is: 1024 bytes",
        );
        assert!(matches!(
            from_status(&too_big, "ScheduleActivity", "e"),
            ProtocolError::PayloadTooLarge {
                size: 5000,
                limit: 1024,
                ..
            }
        ));
        assert!(matches!(
            from_status(&Status::unauthenticated("set a token"), "Rpc", "e"),
            ProtocolError::InvalidArgument { field, .. } if field == "authorization"
        ));
        // A garbled details blob is ignored, not trusted.
        let garbled = Status::with_details(Code::NotFound, "gone", vec![1, 2, 3].into());
        assert_eq!(
            from_status(&garbled, "Rpc", "e"),
            ProtocolError::NotFound {
                what: "gone".into()
            }
        );
    }
}
