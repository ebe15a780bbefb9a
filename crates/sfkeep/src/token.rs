//! The token record, its states, and the timing rules that move a record between them.
//!
//! A record is **Fresh** until `refresh_at`, **Stale** (served, refreshed once in the
//! background) until `expires_at - 30 s`, then **Expired** (callers wait on one shared refresh);
//! `docs/token-lifecycle.md` explains the constants.
//!
//! [`TokenRecord::from_response`] turns a token response into a record; [`Token`] is what the
//! manager hands out.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::UnixMillis;
use crate::grant::TokenResponse;
use crate::secret::{AccessToken, RefreshToken};

/// Hard expiry margin: a token is treated as expired this long before its known expiry, so a
/// request in flight does not arrive with a dead token.
pub const EXPIRY_SKEW: Duration = Duration::from_secs(30);
/// Refresh-ahead window bounds: 25 % of the lifetime, clamped to [2 min, 15 min].
pub const REFRESH_AHEAD_MIN: Duration = Duration::from_secs(120);
/// See [`REFRESH_AHEAD_MIN`].
pub const REFRESH_AHEAD_MAX: Duration = Duration::from_secs(15 * 60);
/// Salesforce's default session timeout, assumed when nothing better is known.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);

pub use crate::grant::GrantKind;

/// Where a record's `expires_at` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirySource {
    /// `exp` from `/services/oauth2/introspect`.
    Introspection,
    /// `sessionSecondsValid` from a SOAP login.
    SoapSessionSecondsValid,
    /// The configured session timeout.
    Configured,
}

/// One access token and everything known about it. Written whole, atomically, by one writer.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// The access token (or SOAP session id).
    pub access_token: AccessToken,
    /// The refresh token, when the grant has one. With rotation, the newest one.
    pub refresh_token: Option<RefreshToken>,
    /// Where API calls go.
    pub instance_url: String,
    /// The identity URL (`id`), when the server sent one.
    pub id_url: Option<String>,
    /// Granted scopes, space separated, when sent.
    pub scope: Option<String>,
    /// When the server issued the token (server clock).
    pub issued_at: UnixMillis,
    /// When the token stops working (server clock), as best known.
    pub expires_at: UnixMillis,
    /// When to start refreshing (server clock); includes per-generation jitter.
    pub refresh_at: UnixMillis,
    /// Where `expires_at` came from.
    pub expiry_source: ExpirySource,
    /// Monotonic per store key; the fencing token for compare-and-set.
    pub generation: u64,
    /// The grant that produced it.
    pub grant: GrantKind,
    /// The fingerprint of a refresh token the server refused (revoked, expired, reused), so
    /// that no process presents it again: after a fallback grant healed the session, every
    /// later death goes straight to the fallback instead of one refused request first.
    /// Cleared when a different refresh token is configured or stored.
    pub refused_refresh_token: Option<String>,
    /// A rotating refresh in flight from this record's refresh token, when one was declared
    /// and its outcome has not replaced the record yet (see [`RefreshIntent`]).
    pub intent: Option<Box<RefreshIntent>>,
    /// The writer's estimate of server time minus local time (ms) when it wrote the record:
    /// a fact about the writer's host, for display. The manager never judges a record with
    /// it; a reader whose clock is behind measures the server's own (see "Clock" in
    /// `src/manager/store_sync.rs`).
    pub server_offset_ms: i64,
}

/// What a new record needs besides the token response: see [`TokenRecord::from_response`].
#[derive(Clone, Debug)]
pub struct Issue {
    /// Server time when the response arrived.
    pub now: UnixMillis,
    /// The session timeout assumed when nothing better is known.
    pub session_timeout: Duration,
    /// The access token's expiry according to introspection, if asked and answered.
    pub introspected_expiry: Option<UnixMillis>,
    /// The refresh token the request presented: kept when the response carries none (the app
    /// does not rotate, so it stays valid).
    pub sent_refresh_token: Option<RefreshToken>,
    /// The fingerprint of a refresh token the server refused, carried forward.
    pub refused_refresh_token: Option<String>,
    /// The writer's server-minus-local clock offset (ms).
    pub server_offset_ms: i64,
    /// In [0, 1): moves `refresh_at` earlier so a fleet does not refresh all at once.
    pub jitter: f64,
}

/// A refresh that may rotate the refresh token, declared in the store before it is sent.
///
/// Salesforce revokes the whole token family when a rotated-out refresh token is presented
/// again (`docs/salesforce-wire.md` §8.2), and it completes a token request it has received even
/// if the client is gone. So between sending a rotating refresh and storing its answer, the
/// stored refresh token may already be dead. The sender first writes this intent (with the
/// generation compare-and-set) into the record; the outcome replaces the record. A refresh that
/// finds an unfinished intent for the token it would present never presents it blindly (see
/// `docs/rotation-safety.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshIntent {
    /// Fingerprint of the refresh token sent.
    pub refresh_token: String,
    /// Which manager sent it (a random id per manager; never a secret).
    pub owner: String,
    /// When it was declared (server clock).
    pub since: UnixMillis,
    /// The token endpoint answered with an error: nothing was rotated, and the refresh token
    /// may be sent again. The record still is no newer token than the one it replaced, so it
    /// is not adopted as one (`manager/store_sync.rs`).
    pub settled: bool,
}

/// A record's state at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// Serve it.
    Fresh,
    /// Serve it, and refresh once in the background.
    Stale,
    /// Do not serve it: wait for the refresh.
    Expired,
}

impl TokenRecord {
    /// How long a logout tombstone is kept (Redis TTL: this plus a minute): as long as a
    /// session can live, so no token obtained before the logout can be written back over it.
    pub const TOMBSTONE_KEEP: Duration = Duration::from_secs(24 * 3600);

    /// What `forget()` / `sfkeep logout` leaves instead of an empty key: a record with no
    /// token, already expired, one generation above what was there. It keeps the generation
    /// from going backwards, so a token obtained before the logout (kept in a process's memory
    /// during a store outage) loses the compare-and-set instead of being resurrected. Never
    /// served or adopted; a refresh replaces it like any older record.
    pub fn tombstone(generation: u64, grant: GrantKind, now: UnixMillis) -> TokenRecord {
        TokenRecord {
            access_token: AccessToken::new(String::new()),
            refresh_token: None,
            instance_url: String::new(),
            id_url: None,
            scope: None,
            issued_at: now.minus(Self::TOMBSTONE_KEEP),
            expires_at: now,
            refresh_at: now.minus(Self::TOMBSTONE_KEEP),
            expiry_source: ExpirySource::Configured,
            generation,
            grant,
            refused_refresh_token: None,
            intent: None,
            server_offset_ms: 0,
        }
    }

    /// A record (generation 0: the writer assigns it) from a token response of grant `grant`.
    ///
    /// The expiry is the first known of: SOAP `sessionSecondsValid`; introspection's `exp`
    /// when it lies ahead; the configured session timeout. A server `issued_at` far from the
    /// corrected clock (a bad clock, or seconds sent as ms) must not stretch the lifetime, so
    /// it is never trusted beyond `now` nor more than a minute before it.
    pub fn from_response(resp: TokenResponse, grant: GrantKind, issue: Issue) -> TokenRecord {
        let now = issue.now;
        let issued_at = match resp.issued_at.unwrap_or(now) {
            t if t > now => now,
            t => t.max(now.minus(Duration::from_secs(60))),
        };
        let (expires_at, expiry_source) =
            match (resp.session_seconds_valid, issue.introspected_expiry) {
                (Some(secs), _) => (
                    issued_at.plus(Duration::from_secs(secs)),
                    ExpirySource::SoapSessionSecondsValid,
                ),
                (None, Some(exp)) if exp > now => (exp, ExpirySource::Introspection),
                (None, _) => (
                    issued_at.plus(issue.session_timeout),
                    ExpirySource::Configured,
                ),
            };
        TokenRecord {
            access_token: resp.access_token,
            refresh_token: resp.refresh_token.or(issue.sent_refresh_token),
            instance_url: resp.instance_url,
            id_url: resp.id,
            scope: resp.scope,
            issued_at,
            expires_at,
            refresh_at: refresh_at(issued_at, expires_at, issue.jitter),
            expiry_source,
            generation: 0,
            grant,
            refused_refresh_token: issue.refused_refresh_token,
            intent: None,
            server_offset_ms: issue.server_offset_ms,
        }
    }

    /// Whether this is a logout tombstone ([`TokenRecord::tombstone`]).
    pub fn is_tombstone(&self) -> bool {
        self.access_token.expose_secret().is_empty()
    }

    /// Server time, for a process that has only its own clock reading `local_now`: moved by
    /// the offset the writer measured ([`TokenRecord::server_offset_ms`]).
    pub fn server_now(&self, local_now: UnixMillis) -> UnixMillis {
        UnixMillis(local_now.0.saturating_add(self.server_offset_ms))
    }

    /// The state at server time `now`.
    pub fn state_at(&self, now: UnixMillis) -> TokenState {
        if now >= self.expires_at.minus(EXPIRY_SKEW) {
            TokenState::Expired
        } else if now >= self.refresh_at {
            TokenState::Stale
        } else {
            TokenState::Fresh
        }
    }

    /// The first 8 hex of the access token's SHA-256.
    pub fn fingerprint(&self) -> String {
        self.access_token.fingerprint()
    }

    /// Time left before the hard expiry margin, zero when past it.
    pub fn remaining_at(&self, now: UnixMillis) -> Duration {
        self.expires_at.minus(EXPIRY_SKEW).since(now)
    }
}

/// A valid access token and where to use it: what [`crate::TokenManager::token`] hands out.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Token(Arc<TokenRecord>);

impl Token {
    /// Wraps a record (the manager only hands out usable ones).
    pub(crate) fn new(record: Arc<TokenRecord>) -> Self {
        Self(record)
    }
    /// The access token, for an `Authorization: Bearer` header.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.access_token
    }
    /// The instance URL API calls go to.
    pub fn instance_url(&self) -> &str {
        &self.0.instance_url
    }
    /// The generation: pass it to [`crate::TokenManager::invalidate_if_current`] after a 401.
    pub fn generation(&self) -> u64 {
        self.0.generation
    }
    /// The whole record.
    pub fn record(&self) -> &TokenRecord {
        &self.0
    }
}

/// The refresh-ahead window for a lifetime: 25 % of it, clamped to [2 min, 15 min], and never
/// more than half the lifetime (short test sessions).
pub fn refresh_ahead(lifetime: Duration) -> Duration {
    let quarter = lifetime / 4;
    quarter
        .clamp(REFRESH_AHEAD_MIN, REFRESH_AHEAD_MAX)
        .min(lifetime / 2)
}

/// `refresh_at` for a token issued at `issued_at` that expires at `expires_at`, with jitter
/// `jitter` in [0, 1) that makes the refresh happen *earlier* (up to 20 % of the window).
pub fn refresh_at(issued_at: UnixMillis, expires_at: UnixMillis, jitter: f64) -> UnixMillis {
    let lifetime = expires_at.since(issued_at);
    let ahead = refresh_ahead(lifetime).mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0));
    let ahead = ahead.min(lifetime.mul_f64(0.6));
    expires_at.minus(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ahead_matches_the_design() {
        assert_eq!(
            refresh_ahead(Duration::from_secs(7200)),
            Duration::from_secs(900)
        );
        assert_eq!(
            refresh_ahead(Duration::from_secs(900)),
            Duration::from_secs(225)
        );
        assert_eq!(
            refresh_ahead(Duration::from_secs(240)),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn states_follow_the_clock() {
        let issued = UnixMillis(1_000_000);
        let expires = issued.plus(Duration::from_secs(900));
        let r = TokenRecord {
            access_token: AccessToken::new("a"),
            refresh_token: None,
            instance_url: "http://x".into(),
            id_url: None,
            scope: None,
            issued_at: issued,
            expires_at: expires,
            refresh_at: refresh_at(issued, expires, 0.0),
            expiry_source: ExpirySource::Configured,
            generation: 1,
            grant: GrantKind::RefreshToken,
            refused_refresh_token: None,
            intent: None,
            server_offset_ms: 0,
        };
        assert_eq!(r.state_at(issued), TokenState::Fresh);
        assert_eq!(
            r.state_at(expires.minus(Duration::from_secs(200))),
            TokenState::Stale
        );
        assert_eq!(
            r.state_at(expires.minus(Duration::from_secs(29))),
            TokenState::Expired
        );
        // A clock that jumps far back never makes an expired token look fresh past expiry.
        assert_eq!(
            r.state_at(expires.plus(Duration::from_secs(1))),
            TokenState::Expired
        );
    }

    #[test]
    fn jitter_only_moves_refresh_earlier() {
        let issued = UnixMillis(0);
        let expires = issued.plus(Duration::from_secs(7200));
        let plain = refresh_at(issued, expires, 0.0);
        let jittered = refresh_at(issued, expires, 0.99);
        assert!(jittered <= plain);
        assert!(jittered >= expires.minus(Duration::from_secs(1080)));
    }
}
