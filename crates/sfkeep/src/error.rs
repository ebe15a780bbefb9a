//! The error type of the library.
//!
//! Errors carry context (what was being done, where) and answer questions: [`Error::cause`],
//! [`Error::is_retryable`], [`Error::is_reauth_required`]. None of them ever contains a secret:
//! response snippets go through [`redacted_snippet`].

use std::sync::Arc;
use std::time::Duration;

use crate::diagnose::Cause;
use crate::diagnose::api_error::ApiError;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while getting or using a Salesforce token.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The credential is dead and only a person can revive it. Returned at once, without a
    /// request, until the cooldown passes or the stored credential changes.
    #[error("re-authentication required ({cause}): {detail}. Fix: {}", cause.fix())]
    ReauthRequired {
        /// Why.
        cause: Cause,
        /// What the server said, e.g. `invalid_grant: expired access/refresh token`.
        detail: String,
    },
    /// The token endpoint refused the request for a reason that may pass (5xx, a refresh in
    /// flight elsewhere, rate limit).
    #[error("token endpoint failed ({cause}, HTTP {status}): {detail}")]
    TokenEndpoint {
        /// Why, as far as the response tells.
        cause: Cause,
        /// The HTTP status.
        status: u16,
        /// The OAuth error or a redacted snippet of the body.
        detail: String,
    },
    /// The request did not complete (connect, timeout, reset).
    #[error("{what} failed: {message}")]
    Transport {
        /// What was being done, e.g. `token request to http://127.0.0.1:1234/services/oauth2/token`.
        what: String,
        /// The transport's description with its first cause, on one line (never contains the
        /// body or headers).
        message: String,
        /// The request timed out.
        timeout: bool,
        /// The transport's own error, for [`std::error::Error::source`] (shared, so the error
        /// stays `Clone`).
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// A response could not be understood.
    #[error(
        "malformed response from {source_name}: {problem} (HTTP {status}, body starts: {snippet:?})"
    )]
    MalformedResponse {
        /// Which endpoint answered.
        source_name: String,
        /// What is wrong, e.g. `missing field "instance_url"`.
        problem: String,
        /// The HTTP status.
        status: u16,
        /// The first bytes of the body, with anything token-like removed.
        snippet: String,
    },
    /// A response body was larger than sfkeep reads into memory: not a malformed answer, an
    /// answer to a request for too much at once (a query page of wide records, say).
    #[error("response from {source_name}: body larger than {cap} bytes (HTTP {status})")]
    ResponseTooLarge {
        /// Which endpoint answered.
        source_name: String,
        /// The limit, in bytes.
        cap: usize,
        /// The HTTP status.
        status: u16,
    },
    /// The token store failed.
    #[error("token store ({store}) failed: {message}")]
    Store {
        /// Which store.
        store: &'static str,
        /// What happened.
        message: String,
    },
    /// The shared store is unreachable and refreshing without it could reuse a rotated refresh
    /// token, so sfkeep refuses (fails closed).
    #[error(
        "the shared token store is unavailable and the refresh token rotates: refusing to refresh without it"
    )]
    StoreUnavailable,
    /// Waiting for another caller's refresh took too long.
    #[error("gave up waiting for a token refresh after {0:?}")]
    RefreshTimeout(Duration),
    /// The login budget is spent: sfkeep holds the request back to protect the org's limit.
    #[error(
        "login budget of {budget} token requests per hour is spent; next allowed in {retry_after:?}"
    )]
    LoginBudgetExhausted {
        /// The configured budget.
        budget: u32,
        /// When a token request will be allowed again.
        retry_after: Duration,
    },
    /// The last token request failed and the cooldown has not passed; no request was sent.
    #[error(
        "cooling down after a failed token request ({cause}: {last_error}); next attempt in {remaining:?}"
    )]
    CoolingDown {
        /// Why the last attempt failed.
        cause: Cause,
        /// Time left.
        remaining: Duration,
        /// The failed attempt's own message (a refused connection, a 503, …): what to fix.
        last_error: String,
    },
    /// The store holds no refresh token under this credential's key, but an earlier sfkeep's
    /// record under the key it used for every user of the connected app (before keys named
    /// the identity) holds one other than the configured token. That record may be another
    /// user's, or hold the rotated successor of the configured token (which is then spent:
    /// sending it makes Salesforce revoke the whole family). Neither is sent; only a new
    /// authorization fixes it (`docs/token-lifecycle.md`, "Store keys").
    #[error(
        "the token store holds a refresh token under the key {old_key}, which an earlier sfkeep used for every user of this connected app, and none under this credential's key {key}: it may be another user's token or the rotated successor of the configured one, so sfkeep sends neither; authorize anew"
    )]
    LegacyStoreRecord {
        /// The earlier format's key (a hash, safe to show).
        old_key: String,
        /// This credential's key.
        key: String,
    },
    /// The store holds a record nobody can attribute to an identity (its identity URL has
    /// an unexpected shape, or it has none) with a refresh token other than the configured
    /// one: it may be the configured token's rotated successor, so the configured token is not
    /// sent, and the record is not used either. Only a new authorization fixes it.
    #[error(
        "the stored record of generation {generation} was not used: {detail}; it holds a refresh token other than the configured one, which may be its rotated successor, so sfkeep sends neither; authorize anew"
    )]
    UnattributableRecord {
        /// The record's generation.
        generation: u64,
        /// Why it cannot be attributed (names the identity URL, never a token).
        detail: String,
    },
    /// The configuration is wrong.
    #[error("configuration error: {0}")]
    Config(String),
    /// Salesforce answered an API call with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Error {
    /// The cause of session death or credential failure, when one is known.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Error::ReauthRequired { cause, .. }
            | Error::TokenEndpoint { cause, .. }
            | Error::CoolingDown { cause, .. } => Some(*cause),
            Error::Transport { .. } => Some(Cause::Transient),
            // Read from the status, code and body when the error was made; see ApiError::cause.
            Error::Api(a) => a.cause,
            _ => None,
        }
    }

    /// Trying the same thing again later may succeed without anyone acting.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::TokenEndpoint { cause, .. } => cause.is_transient(),
            Error::Transport { .. }
            | Error::RefreshTimeout(_)
            | Error::LoginBudgetExhausted { .. }
            | Error::StoreUnavailable
            | Error::Store { .. } => true,
            Error::CoolingDown { cause, .. } => cause.is_transient(),
            Error::Api(a) => a.is_transient(),
            _ => false,
        }
    }

    /// Only re-authentication by a person (or a different grant) fixes this.
    pub fn is_reauth_required(&self) -> bool {
        matches!(
            self,
            Error::ReauthRequired { .. }
                | Error::LegacyStoreRecord { .. }
                | Error::UnattributableRecord { .. }
        ) || matches!(self, Error::CoolingDown { cause, .. } if cause.needs_human())
    }

    /// The request never reached the server: no connection could be made (refused,
    /// unreachable, a name that does not resolve, a failed TLS handshake), so the server
    /// cannot have acted on it. Any other transport failure may have reached it.
    pub fn never_reached_server(&self) -> bool {
        let Error::Transport {
            source: Some(source),
            ..
        } = self
        else {
            return false;
        };
        source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect)
    }

    /// A transport failure while doing `what`, keeping `e` as the source.
    pub(crate) fn transport(what: impl Into<String>, e: reqwest::Error) -> Self {
        // reqwest's Display may include the URL; ours never carry secrets in URLs.
        let mut message = e.to_string();
        if let Some(src) = std::error::Error::source(&e) {
            message = format!("{message}: {src}");
        }
        // The reason a person recognises, from the innermost I/O error: it survives into
        // messages that keep only this text (a cooldown's `last_error`).
        let mut cur = std::error::Error::source(&e);
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                let known = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => Some("connection refused"),
                    std::io::ErrorKind::ConnectionReset => Some("connection reset"),
                    std::io::ErrorKind::TimedOut => Some("timed out"),
                    _ => None,
                };
                if let Some(k) = known {
                    message = format!("{message} ({k})");
                    break;
                }
            }
            cur = err.source();
        }
        Error::Transport {
            what: what.into(),
            message,
            timeout: e.is_timeout(),
            source: Some(Arc::new(e)),
        }
    }
}

pub use crate::redact::{redact_secrets, redacted_snippet, redacted_url};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::api_error::Api;

    #[test]
    fn the_daily_limit_is_final_and_a_concurrency_limit_is_transient() {
        let daily = ApiError::from_response(
            403,
            br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
            None,
        );
        assert!(!daily.is_transient());
        let daily = Error::Api(daily);
        assert_eq!(daily.cause(), Some(Cause::RequestLimitExceeded));
        assert!(!daily.is_retryable());
        for message in [
            "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            "ConcurrentPerOrgLongTxn Limit exceeded",
        ] {
            let body =
                format!(r#"[{{"message":"{message}","errorCode":"REQUEST_LIMIT_EXCEEDED"}}]"#);
            let e = ApiError::from_response(403, body.as_bytes(), None);
            assert!(e.is_concurrency_limit() && e.is_transient(), "{message}");
            let e = Error::Api(e);
            assert_eq!(e.cause(), Some(Cause::Transient), "{message}");
            assert!(e.is_retryable(), "{message}");
        }
    }

    #[test]
    fn the_cause_of_an_api_error_comes_from_what_was_read_not_from_its_message() {
        let policy = ApiError::from_response(
            401,
            br#"[{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}]"#,
            None,
        );
        assert_eq!(
            Error::Api(policy.clone()).cause(),
            Some(Cause::SessionNotValidForApi)
        );
        // Rewording the message afterwards changes nothing: the cause was read once.
        let mut reworded = policy;
        reworded.message = "something else".into();
        assert_eq!(
            Error::Api(reworded).cause(),
            Some(Cause::SessionNotValidForApi)
        );
        let dead = ApiError::read(
            Api::Soap,
            500,
            b"<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: x</faultstring></soapenv:Fault>",
            None,
        );
        assert_eq!(dead.error_code, "INVALID_SESSION_ID");
        assert_eq!(Error::Api(dead).cause(), Some(Cause::SessionExpired));
        let field = ApiError::from_response(
            400,
            br#"[{"message":"x","errorCode":"INVALID_FIELD"}]"#,
            None,
        );
        assert_eq!(Error::Api(field).cause(), None);
    }

    #[test]
    fn a_transport_error_keeps_its_source_and_stays_clone() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(async {
            // Port 1 on loopback: nothing listens, the connection is refused.
            let r = reqwest::Client::new()
                .get("http://127.0.0.1:1/")
                .send()
                .await;
            Error::transport("GET http://127.0.0.1:1/", r.unwrap_err())
        });
        let copy = e.clone();
        let source = std::error::Error::source(&copy).expect("a source");
        assert!(source.to_string().contains("127.0.0.1:1") || !source.to_string().is_empty());
        assert!(copy.is_retryable());
    }
}
