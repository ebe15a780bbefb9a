//! The token manager: proactive and reactive refresh, single-flight in one process and (through
//! the store's lock and compare-and-set) across processes, escalation to a fallback grant, and
//! a cooldown and login budget so a dead credential never causes a request storm.
//!
//! | state (server clock) | what `token()` does |
//! |---|---|
//! | Fresh (`now < refresh_at`) | returns the cached token: one atomic load, no lock |
//! | Stale (`refresh_at <= now < expires_at - 30 s`) | returns it, and starts at most one background refresh |
//! | Expired, or invalidated by a 401 | waits on the one shared refresh |
//! | ReauthRequired | returns the error with its cause at once, without a request, until the cooldown passes |
//!
//! A refresh runs in a spawned task: a caller that goes away never cancels a token request, so
//! a rotated refresh token is always stored.
//!
//! [`TokenManager`] is the facade; each rule lives in one module:
//!
//! | file in `src/manager/` | what it decides |
//! |---|---|
//! | `fast_path.rs` | serving the current token without a lock |
//! | `single_flight.rs` | one refresh at a time; callers join it |
//! | `refresh.rs` | when to refresh, the grant escalation, record building |
//! | `limits.rs` | the cooldown after failures and the login budget |
//! | `rotation.rs` | learned rotation and the refused refresh token |
//! | `store_sync.rs` | adopt / persist, with the adopt table; identity and clock checks on stored records |
//! | `outage.rs` | while the store is unreachable: fail open or closed, the recovery probe, the write-back table |
//! | `intent.rs` | the intent record: no rotating refresh sent blindly after an interruption |
//! | `ledger.rs` | the spent-token ledger: the configured refresh token is a bootstrap |
//! | `forget.rs` | a logout that no refresh in flight undoes |
//! | `source.rs` | the seam to the token endpoint ([`TokenSource`]) |
//!
//! # When the shared store is unreachable
//!
//! The in-memory token keeps being served. A grant without rotation state fails open (one
//! local refresh per process, the token written back to the store once it answers again); a
//! rotating refresh token fails closed (see [`OnStoreUnavailable`]). `store_sync.rs` holds the
//! adopt and write-back decision tables.
//!
//! `docs/token-lifecycle.md` walks through a token's life across these modules.

mod builder;
mod fallback_switch;
mod fast_path;
mod forget;
mod intent;
mod ledger;
mod limits;
mod outage;
mod refresh;
mod rotation;
mod single_flight;
mod source;
mod state;
mod status;
mod store_sync;
#[cfg(test)]
mod tests;

pub use crate::token::Token;
pub use builder::TokenManagerBuilder;
pub use fallback_switch::FallbackSwitch;
pub use ledger::seen_spent;
pub use limits::{COOLDOWN_STORE_READ, DEFAULT_LOGIN_BUDGET, FAILURE_COOLDOWN, TRANSIENT_BACKOFF};
pub use outage::{OnStoreUnavailable, STORE_PROBE_INTERVAL};
pub use rotation::Rotation;
pub use source::{HttpTokenSource, TokenSource};
pub use status::{ManagerStatus, TokenStatus};
pub use store_sync::FUTURE_ISSUE_TOLERANCE;

use std::sync::Arc;
use std::time::Duration;

use state::Inner;

use crate::clock::ServerClock;
use crate::diagnose::api_error::Api;
use crate::error::{Error, Result};
use crate::event::{AuthEventKind, RefreshReason};
use crate::grant::TokenEndpoint;
use crate::store::StoreKey;
use crate::token::TokenState;

/// How long a caller waits for a shared refresh.
pub const REFRESH_WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a refresher waits for another process's refresh lock (1.2 × the lock TTL).
pub const LOCK_WAIT: Duration = Duration::from_secs(18);

/// Keeps one Salesforce credential authenticated. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn run() -> sfkeep::Result<()> {
/// use sfkeep::diagnose::api_error::Api;
/// use sfkeep::{Grant, TokenManager, secret::{ClientSecret, RefreshToken}};
/// let manager = TokenManager::builder("https://login.salesforce.com")
///     .grant(Grant::refresh_token(
///         "3MVG9...",
///         Some(ClientSecret::new(std::env::var("SF_CLIENT_SECRET").unwrap())),
///         RefreshToken::new(std::env::var("SF_REFRESH_TOKEN").unwrap()),
///     ))
///     .build()?;
/// let token = manager.token().await?;
/// // ... call Salesforce with token.access_token(); on a 401 INVALID_SESSION_ID:
/// manager.invalidate_if_current(token.generation(), Api::Rest);
/// let fresh = manager.token().await?; // exactly one refresh, however many callers saw the 401
/// # let _ = fresh; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl TokenManager {
    /// A builder for the login host `login_url` (e.g. `https://login.salesforce.com`).
    pub fn builder(login_url: impl Into<String>) -> TokenManagerBuilder {
        TokenManagerBuilder::new(login_url.into())
    }

    /// A valid token. Fresh: returned at once, lock-free. Stale: returned at once, one
    /// background refresh started. Expired or invalidated: waits on the shared refresh.
    pub async fn token(&self) -> Result<Token> {
        if let Some(t) = self.inner.cached() {
            return Ok(t);
        }
        // Boxed: the refresh's state is large, and a future that carried it inline would be
        // created and moved on every call, the fast ones included.
        Box::pin(self.inner.refresh(self.slow_reason()))
            .await
            .map(Token::new)
    }

    /// The fast path, without waiting: a usable cached token, or `None` when a refresh is
    /// needed (call [`TokenManager::token`] then). Lock-free; a Stale token starts the
    /// background refresh, as `token()` does.
    pub fn cached_token(&self) -> Option<Token> {
        self.inner.cached()
    }

    fn slow_reason(&self) -> RefreshReason {
        match self.inner.current.get() {
            None => RefreshReason::Startup,
            Some(r) if r.generation == self.inner.current.invalidated() => {
                RefreshReason::Reactive401
            }
            Some(_) => RefreshReason::Expired,
        }
    }

    /// Declares the token of `generation` dead after a 401 from `api`. A no-op when a newer
    /// token is already current, so N 401s from requests in flight cause one refresh. Returns
    /// whether it invalidated anything.
    pub fn invalidate_if_current(&self, generation: u64, api: Api) -> bool {
        self.invalidate(generation, api.as_str())
    }

    /// Retires the token of `generation` for a reason other than a 401 (the CLI's keep-alive
    /// uses a refresh token before it idles out): the next call refreshes, exactly as after
    /// [`TokenManager::invalidate_if_current`]. Returns whether it retired anything.
    pub fn retire_if_current(&self, generation: u64) -> bool {
        self.invalidate(generation, "keep_alive")
    }

    fn invalidate(&self, generation: u64, by: &str) -> bool {
        let Some(rec) = self.inner.current.get() else {
            return false;
        };
        if rec.generation != generation || !self.inner.current.invalidate(generation) {
            return false;
        }
        let api = by.to_owned();
        self.inner
            .emit(AuthEventKind::TokenInvalidated { api }, Some(&rec));
        true
    }

    /// Gets a new token now, whatever the state of the current one (used by `recover`).
    /// Clears any cooldown first.
    pub async fn force_refresh(&self) -> Result<Token> {
        self.inner.cooldown.clear();
        if let Some(rec) = self.inner.current.get() {
            self.inner.current.invalidate(rec.generation);
        }
        self.inner
            .refresh(RefreshReason::Forced)
            .await
            .map(Token::new)
    }

    /// Records the server's `Date` header seen on any response, to correct clock skew.
    pub fn observe_server_date(&self, date: &str) {
        let now = self.inner.clock.local().now();
        self.inner.clock.observe_date_header(date, now);
    }

    /// Forgets the token here and in the store (`sfkeep logout`): the stored record is
    /// replaced by a tombstone ([`crate::token::TokenRecord::tombstone`]), never just deleted.
    /// A refresh requested before it returns (even one that runs after it) hands its token to
    /// the callers that waited for it but neither stores it nor keeps it; the next call
    /// refreshes.
    pub async fn forget(&self) -> Result<()> {
        self.inner.forget().await
    }

    /// The current state, for `sfkeep status` and `/healthz`. Never contains a token.
    pub fn status(&self) -> ManagerStatus {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let cur = inner.current.get();
        let failure: Option<Error> = inner.cooldown.last_error();
        let state = match (&cur, &failure) {
            (_, Some(e)) if e.is_reauth_required() => TokenStatus::ReauthRequired,
            (None, _) => TokenStatus::Missing,
            (Some(r), _) if r.generation == inner.current.invalidated() => TokenStatus::Invalidated,
            (Some(r), _) => match r.state_at(now) {
                TokenState::Fresh => TokenStatus::Fresh,
                TokenState::Stale => TokenStatus::Stale,
                TokenState::Expired => TokenStatus::Expired,
            },
        };
        ManagerStatus {
            state,
            generation: cur.as_ref().map(|r| r.generation),
            expires_in: cur.as_ref().map(|r| r.remaining_at(now)),
            fingerprint: cur.as_ref().map(|r| r.fingerprint()),
            expiry_source: cur.as_ref().map(|r| r.expiry_source),
            store: inner.sync.store.kind(),
            last_failure: failure.and_then(|e| e.cause()),
            clock_offset_ms: inner.clock.offset(),
            carried_by_fallback: cur.as_ref().is_some_and(|r| {
                inner
                    .fallback
                    .as_ref()
                    .is_some_and(|f| f.kind() != inner.primary.kind() && r.grant == f.kind())
            }),
        }
    }

    /// The store key (a hash; safe to show).
    pub fn store_key(&self) -> &StoreKey {
        &self.inner.sync.key
    }

    /// The skew-corrected server clock.
    pub fn server_clock(&self) -> &ServerClock {
        &self.inner.clock
    }

    /// The token endpoint (login URL, HTTP client).
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.inner.endpoint
    }

    /// Emits an event through the manager's sinks (the client reports successful calls).
    pub fn emit(&self, kind: AuthEventKind) {
        let cur = self.inner.current.get();
        self.inner.emit(kind, cur.as_deref());
    }
}
