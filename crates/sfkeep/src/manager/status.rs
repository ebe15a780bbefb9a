//! What [`super::TokenManager::status`] reports: never a token.

use std::fmt;
use std::time::Duration;

use crate::diagnose::Cause;
use crate::token::ExpirySource;

/// The state of a manager's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenStatus {
    /// Served as it is.
    Fresh,
    /// Served; one background refresh replaces it soon.
    Stale,
    /// Past its expiry margin: the next call waits for a refresh.
    Expired,
    /// A 401 declared it dead: the next call waits for a refresh.
    Invalidated,
    /// No token yet (or after a logout).
    Missing,
    /// The last token request failed in a way only a person can fix.
    ReauthRequired,
}

impl TokenStatus {
    /// `fresh`, `stale`, `expired`, `invalidated`, `missing` or `reauth_required`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Fresh => "fresh",
            TokenStatus::Stale => "stale",
            TokenStatus::Expired => "expired",
            TokenStatus::Invalidated => "invalidated",
            TokenStatus::Missing => "missing",
            TokenStatus::ReauthRequired => "reauth_required",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`super::TokenManager::status`] reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ManagerStatus {
    /// The token's state.
    pub state: TokenStatus,
    /// The current generation.
    pub generation: Option<u64>,
    /// Time left before the token must not be used.
    pub expires_in: Option<Duration>,
    /// The current token's fingerprint.
    pub fingerprint: Option<String>,
    /// Where its expiry came from.
    pub expiry_source: Option<ExpirySource>,
    /// The store kind.
    pub store: &'static str,
    /// The last failure's cause, if the last token request failed.
    pub last_failure: Option<Cause>,
    /// Measured server-minus-local clock offset.
    pub clock_offset_ms: i64,
    /// The current token came from the fallback grant: calls work, but the primary
    /// credential failed in a way only a person can fix.
    pub carried_by_fallback: bool,
}
