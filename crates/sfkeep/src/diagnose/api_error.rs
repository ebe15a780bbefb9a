//! API answers that are errors: which ones mean the session is dead, which of those a refresh
//! fixes and which it never will (see `docs/salesforce-wire.md`, sections on REST errors, SOAP
//! faults and Bulk 1.0), and [`ApiError`], the error the client returns for them.

use std::time::Duration;

use serde_json::Value;

use super::Cause;
pub use super::soap_fault::{SoapFault, soap_fault_code, soap_operation_not_available};
use crate::redact::redacted_snippet;

/// The API that answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// REST and Bulk 2.0 (JSON error arrays).
    Rest,
    /// SOAP (faults).
    Soap,
    /// Bulk 1.0 (XML `exceptionCode`).
    Bulk1,
}

impl Api {
    /// `rest`, `soap` or `bulk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Rest => "rest",
            Api::Soap => "soap",
            Api::Bulk1 => "bulk",
        }
    }

    /// The API a path on the instance belongs to: SOAP for `/services/Soap/…`, Bulk 1.0 for
    /// `/services/async/…`, REST for the rest (REST, Bulk 2.0, Apex REST).
    pub fn for_path(path: &str) -> Api {
        if path.starts_with("/services/Soap/") {
            Api::Soap
        } else if path.starts_with("/services/async/") {
            Api::Bulk1
        } else {
            Api::Rest
        }
    }
}

/// What a response says about the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionVerdict {
    /// Not an authentication failure.
    Alive,
    /// The session is dead and a new token fixes it: invalidate, refresh once, replay once.
    Dead,
    /// An authentication failure a refresh cannot fix: fail with this cause, no token request.
    Unfixable(Cause),
}

/// Reads a response's status and body.
pub fn session_verdict(api: Api, status: u16, body: &[u8]) -> SessionVerdict {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    match api {
        Api::Rest => {
            if status == 401 {
                if text.contains("This session is not valid for use with the REST API")
                    || text.contains("Connected app is not attached to Agent")
                {
                    SessionVerdict::Unfixable(Cause::SessionNotValidForApi)
                } else if text.contains("INVALID_AUTH_HEADER") {
                    SessionVerdict::Unfixable(Cause::Unknown)
                } else {
                    // Any other 401 (INVALID_SESSION_ID, or a body we cannot read) means the
                    // call did not run and the token is not accepted: one refresh is safe.
                    SessionVerdict::Dead
                }
            } else if status == 403 && text.trim() == "Bad_OAuth_Token" {
                SessionVerdict::Dead
            } else {
                SessionVerdict::Alive
            }
        }
        Api::Soap => {
            if status == 500 && soap_fault_code(&text).is_some_and(|c| c == "INVALID_SESSION_ID") {
                SessionVerdict::Dead
            } else {
                SessionVerdict::Alive
            }
        }
        Api::Bulk1 => {
            if status == 400 && text.contains("InvalidSessionId") {
                SessionVerdict::Dead
            } else {
                SessionVerdict::Alive
            }
        }
    }
}

/// The message Salesforce sends with `REQUEST_LIMIT_EXCEEDED` when too many requests run at
/// once (the concurrent API or long-transaction limit) rather than when the daily allowance is
/// spent: `ConcurrentRequests (Concurrent API Requests) Limit exceeded.`,
/// `ConcurrentPerOrgLongTxn Limit exceeded`. The code is the same for both; only the message
/// tells them apart.
fn is_concurrency_message(message: &str) -> bool {
    message.contains("Concurrent")
}

/// A Salesforce API error: the first element of the error array, the SOAP fault or the Bulk
/// 1.0 error (or the status alone).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Salesforce API error {status} {error_code}: {message}")]
#[non_exhaustive]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `errorCode` (or the fault / exception code), e.g. `INVALID_FIELD`; empty when the body
    /// was not an error Salesforce formats.
    pub error_code: String,
    /// `message` (or a redacted snippet of a body that is not an error array or fault).
    pub message: String,
    /// `fields`, when sent.
    pub fields: Vec<String>,
    /// `Sforce-Limit-Info` usage (used, max), when sent.
    pub api_usage: Option<(u64, u64)>,
    /// `Retry-After`, when sent with a 429 or 503.
    pub retry_after: Option<Duration>,
    /// What the answer means for the session and for retrying, read once from the status, the
    /// code and the body when the error was made: `SessionExpired` for a dead session,
    /// `SessionNotValidForApi` for a 401 a refresh cannot fix, `RequestLimitExceeded` for the
    /// daily limit, `Transient` for 429, 502, 503, 504 and a concurrency limit; `None` for a
    /// request error (a bad field, a malformed query).
    pub cause: Option<Cause>,
}

impl ApiError {
    /// Parses a REST / Bulk 2.0 error response (a JSON error array, or anything else).
    pub fn from_response(status: u16, body: &[u8], api_usage: Option<(u64, u64)>) -> Self {
        Self::read(Api::Rest, status, body, api_usage)
    }

    /// Parses an error response of `api`: a REST error array, a SOAP fault or a Bulk 1.0 error.
    pub fn read(api: Api, status: u16, body: &[u8], api_usage: Option<(u64, u64)>) -> Self {
        let (error_code, message, fields) = match api {
            Api::Rest => rest_error(body),
            Api::Soap | Api::Bulk1 => fault_error(body),
        };
        let cause = cause_of(api, status, &error_code, &message, body);
        ApiError {
            status,
            error_code,
            message,
            fields,
            api_usage,
            retry_after: None,
            cause,
        }
    }

    /// The same error with the server's `Retry-After`.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Retrying later, unchanged, may succeed: 429, 502, 503, 504, or a concurrency limit.
    pub fn is_transient(&self) -> bool {
        self.cause == Some(Cause::Transient)
    }

    /// `REQUEST_LIMIT_EXCEEDED` because too many requests run at once (the org's concurrent
    /// API or long-transaction limit), not because the daily allowance is spent.
    pub fn is_concurrency_limit(&self) -> bool {
        self.error_code == "REQUEST_LIMIT_EXCEEDED" && self.is_transient()
    }
}

/// `(errorCode, message, fields)` of the first element of a REST error array; a redacted
/// snippet of anything else.
fn rest_error(body: &[u8]) -> (String, String, Vec<String>) {
    let first = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_array().and_then(|a| a.first().cloned()));
    match first {
        Some(e) => (
            e["errorCode"].as_str().unwrap_or_default().to_owned(),
            e["message"].as_str().unwrap_or_default().to_owned(),
            e["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        None => (String::new(), redacted_snippet(body), Vec::new()),
    }
}

/// `(code, message, [])` of a SOAP fault or Bulk 1.0 error; a redacted snippet of anything else.
fn fault_error(body: &[u8]) -> (String, String, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let fault = SoapFault::read(&text);
    let code = fault.and_then(|f| f.code()).unwrap_or_default().to_owned();
    let message = fault
        .and_then(|f| f.message())
        .map(|m| redacted_snippet(m.as_bytes()))
        .unwrap_or_else(|| redacted_snippet(body));
    (code, message, Vec::new())
}

/// See [`ApiError::cause`].
fn cause_of(api: Api, status: u16, code: &str, message: &str, body: &[u8]) -> Option<Cause> {
    match session_verdict(api, status, body) {
        SessionVerdict::Unfixable(c) if c != Cause::Unknown => return Some(c),
        SessionVerdict::Dead => return Some(Cause::SessionExpired),
        _ => {}
    }
    if code == "REQUEST_LIMIT_EXCEEDED" {
        return Some(if is_concurrency_message(message) {
            Cause::Transient
        } else {
            Cause::RequestLimitExceeded
        });
    }
    match status {
        401 => Some(Cause::SessionExpired),
        429 | 502 | 503 | 504 => Some(Cause::Transient),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_401s_are_told_apart() {
        let dead =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(session_verdict(Api::Rest, 401, dead), SessionVerdict::Dead);
        let policy = br#"[{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(
            session_verdict(Api::Rest, 401, policy),
            SessionVerdict::Unfixable(Cause::SessionNotValidForApi)
        );
        assert_eq!(
            session_verdict(Api::Rest, 403, b"Bad_OAuth_Token"),
            SessionVerdict::Dead
        );
        assert_eq!(
            session_verdict(Api::Rest, 403, br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#),
            SessionVerdict::Alive
        );
    }

    #[test]
    fn soap_and_bulk_faults() {
        let fault = "<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>x</faultstring></soapenv:Fault>";
        assert_eq!(
            session_verdict(Api::Soap, 500, fault.as_bytes()),
            SessionVerdict::Dead
        );
        let login = "<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode></soapenv:Fault>";
        assert_eq!(
            session_verdict(Api::Soap, 500, login.as_bytes()),
            SessionVerdict::Alive
        );
        let bulk = "<error><exceptionCode>InvalidSessionId</exceptionCode></error>";
        assert_eq!(
            session_verdict(Api::Bulk1, 400, bulk.as_bytes()),
            SessionVerdict::Dead
        );
    }
}
