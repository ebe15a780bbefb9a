//! The state one manager's clones share, grouped by the module that owns each part.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::fast_path::Current;
use super::forget::ForgetEpochs;
use super::ledger::SpentLedger;
use super::limits::{Cooldown, LoginBudget};
use super::rotation::RotationMemory;
use super::single_flight::SingleFlight;
use super::source::TokenSource;
use super::store_sync::StoreSync;
use crate::clock::ServerClock;
use crate::error::Result;
use crate::event::{AuthEvent, AuthEventKind, EventSink};
use crate::grant::{Grant, TokenEndpoint};
use crate::token::{TokenRecord, TokenState};

/// Everything a [`super::TokenManager`] and its clones share.
pub(crate) struct Inner {
    /// The login host's endpoints (also used by the client for introspection and `doctor`).
    pub(super) endpoint: TokenEndpoint,
    /// Where token requests go ([`super::source`]).
    pub(super) source: Arc<dyn TokenSource>,
    pub(super) clock: ServerClock,
    pub(super) primary: Grant,
    pub(super) fallback: Option<Grant>,
    pub(super) settings: Settings,
    pub(super) events: Arc<dyn EventSink>,
    /// The record callers are served from ([`super::fast_path`]).
    pub(super) current: Current,
    /// The one refresh in flight ([`super::single_flight`], policy in [`super::refresh`]).
    pub(super) flight: SingleFlight<Result<Arc<TokenRecord>>>,
    /// A background refresh of a Stale token is running.
    pub(super) background: AtomicBool,
    pub(super) cooldown: Cooldown,
    pub(super) budget: LoginBudget,
    pub(super) rotation: RotationMemory,
    /// The store, its outage state and write-back ([`super::store_sync`]).
    pub(super) sync: StoreSync,
    /// Logouts under way ([`super::forget`]).
    pub(super) forgotten: ForgetEpochs,
    /// This manager's id in refresh intents (random; never a secret).
    pub(super) owner: String,
    /// Configured refresh tokens seen rotated away ([`super::ledger`]).
    pub(super) ledger: SpentLedger,
}

/// The builder's plain settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// The session timeout assumed when nothing better is known.
    pub(super) session_timeout: Duration,
    /// Ask introspection for each new token's expiry.
    pub(super) introspect: bool,
    /// How long a caller waits for a shared refresh.
    pub(super) refresh_wait: Duration,
    /// How long a refresher waits for another process's refresh lock.
    pub(super) lock_wait: Duration,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("login_url", &self.endpoint.login_url().as_str())
            .field("grant", &self.primary)
            .field("fallback", &self.fallback)
            .field("store", &self.sync.store.kind())
            .field("key", &self.sync.key)
            .finish()
    }
}

impl Inner {
    pub(super) fn emit(&self, kind: AuthEventKind, rec: Option<&TokenRecord>) {
        self.events.emit(&AuthEvent {
            at: self.clock.local().now(),
            kind,
            grant: rec.map(|r| r.grant).or(Some(self.primary.kind())),
            generation: rec.map(|r| r.generation),
            fingerprint: rec.map(|r| r.fingerprint()),
            key: self.sync.key.to_string(),
        });
    }

    /// Neither declared dead by a 401 nor expired.
    pub(super) fn usable(&self, rec: &TokenRecord) -> bool {
        rec.generation != self.current.invalidated()
            && rec.state_at(self.clock.now()) != TokenState::Expired
    }
}
