//! The error type of the library.
//!
//! Errors carry context (what was being done, where) and answer questions: [`Error::cause`],
//! [`Error::is_retryable`], [`Error::is_reauth_required`]. None of them ever contains a secret:
//! response snippets go through [`redacted_snippet`].

use std::time::Duration;

use crate::diagnose::Cause;

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
        /// The transport's description (never contains the body or headers).
        message: String,
        /// The request timed out.
        timeout: bool,
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
    #[error("cooling down after a failed token request ({cause}); next attempt in {remaining:?}")]
    CoolingDown {
        /// Why the last attempt failed.
        cause: Cause,
        /// Time left.
        remaining: Duration,
    },
    /// The configuration is wrong.
    #[error("configuration error: {0}")]
    Config(String),
    /// Salesforce answered an API call with an error.
    #[error(transparent)]
    Api(#[from] crate::client::ApiError),
}

impl Error {
    /// The cause of session death or credential failure, when one is known.
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Error::ReauthRequired { cause, .. }
            | Error::TokenEndpoint { cause, .. }
            | Error::CoolingDown { cause, .. } => Some(*cause),
            Error::Transport { .. } => Some(Cause::Transient),
            Error::Api(a)
                if a.status == 401 && a.message.contains("not valid for use with the REST API") =>
            {
                Some(Cause::SessionNotValidForApi)
            }
            Error::Api(a)
                if a.error_code == "REQUEST_LIMIT_EXCEEDED" && !a.is_concurrency_limit() =>
            {
                Some(Cause::RequestLimitExceeded)
            }
            Error::Api(a) if a.status == 401 => Some(Cause::SessionExpired),
            Error::Api(a) if a.is_transient() => Some(Cause::Transient),
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
        matches!(self, Error::ReauthRequired { .. })
            || matches!(self, Error::CoolingDown { cause, .. } if cause.needs_human())
    }

    pub(crate) fn transport(what: impl Into<String>, e: &reqwest::Error) -> Self {
        // reqwest's Display may include the URL; ours never carry secrets in URLs.
        let mut message = e.to_string();
        if let Some(src) = std::error::Error::source(e) {
            message = format!("{message}: {src}");
        }
        Error::Transport {
            what: what.into(),
            message,
            timeout: e.is_timeout(),
        }
    }
}

/// At most 120 characters of `body`, with every run of 16 or more token-like characters
/// replaced by `[…]`, so a truncated token response can be shown without its token.
pub fn redacted_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 16 {
            out.push_str("[…]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "!._-+/=$~".contains(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    let out: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > 120 {
        let cut: String = out.chars().take(120).collect();
        format!("{cut}…")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_hides_tokens_but_keeps_words() {
        let s = redacted_snippet(
            br#"{"access_token":"00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G","instance_url":"#,
        );
        assert!(!s.contains("AR8AQ"), "{s}");
        assert!(s.contains("access_token"));
        let s = redacted_snippet(b"<html><body>Service Unavailable</body></html>");
        assert_eq!(s, "<html><body>Service Unavailable</body></html>");
    }
}
