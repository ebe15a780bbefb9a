//! [`TokenManagerBuilder`]: every setter says its default.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::OnStoreUnavailable;
use super::fast_path::Current;
use super::forget::ForgetEpochs;
use super::ledger::SpentLedger;
use super::limits::{Cooldown, DEFAULT_LOGIN_BUDGET, LoginBudget};
use super::rotation::{Rotation, RotationMemory};
use super::single_flight::SingleFlight;
use super::source::{HttpTokenSource, TokenSource};
use super::state::{Inner, Settings};
use super::store_sync::StoreSync;
use super::{LOCK_WAIT, REFRESH_WAIT_TIMEOUT, TokenManager};
use crate::clock::{Clock, ServerClock, SystemClock};
use crate::error::{Error, Result};
use crate::event::{EventSink, FanOut, TracingSink};
use crate::grant::{Grant, TokenEndpoint};
use crate::http::ClientOptions;
use crate::store::{KeyIdentity, MemoryStore, Store, StoreKey};
use crate::token;

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    login_url: String,
    grant: Option<Grant>,
    fallback: Option<Grant>,
    store: Option<Arc<dyn Store>>,
    key: Option<StoreKey>,
    key_username: Option<String>,
    clock: Option<Arc<dyn Clock>>,
    settings: Settings,
    login_budget: u32,
    sinks: Vec<Arc<dyn EventSink>>,
    tracing: bool,
    http: Option<reqwest::Client>,
    http_options: Option<ClientOptions>,
    source: Option<Arc<dyn TokenSource>>,
    on_store_unavailable: OnStoreUnavailable,
    rotation: Rotation,
    spent_ledger: Option<std::path::PathBuf>,
}

impl TokenManagerBuilder {
    pub(super) fn new(login_url: String) -> Self {
        Self {
            login_url,
            grant: None,
            fallback: None,
            store: None,
            key: None,
            key_username: None,
            clock: None,
            settings: Settings {
                session_timeout: token::DEFAULT_SESSION_TIMEOUT,
                introspect: true,
                refresh_wait: REFRESH_WAIT_TIMEOUT,
                lock_wait: LOCK_WAIT,
            },
            login_budget: DEFAULT_LOGIN_BUDGET,
            sinks: Vec::new(),
            tracing: true,
            http: None,
            http_options: None,
            source: None,
            on_store_unavailable: OnStoreUnavailable::Auto,
            rotation: Rotation::Auto,
            spent_ledger: None,
        }
    }

    /// The primary grant. Required.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grant = Some(grant);
        self
    }
    /// A grant to try when the primary one fails for good (e.g. JWT bearer after the refresh
    /// token is revoked). Defaults to none.
    pub fn fallback_grant(mut self, grant: Grant) -> Self {
        self.fallback = Some(grant);
        self
    }
    /// Where records live. Defaults to a [`MemoryStore`].
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }
    /// The record's key in the store. Defaults to [`StoreKey::for_grant`] of the primary
    /// grant (which names the user and the configured refresh token; with the default, the
    /// key an earlier sfkeep used is checked before the configured refresh token is sent, see
    /// [`Error::LegacyStoreRecord`]).
    pub fn store_key(mut self, key: StoreKey) -> Self {
        self.key = Some(key);
        self
    }
    /// The user this credential is for, when the grant does not name one itself (refresh
    /// token, client credentials): it counts in the default store key
    /// ([`KeyIdentity::username`]), so processes configured for one user share records with
    /// each other (and with a CLI profile of the same `username`), never with another user's.
    /// Ignored with an explicit [`Self::store_key`]. Defaults to none.
    pub fn key_username(mut self, username: impl Into<String>) -> Self {
        self.key_username = Some(username.into());
        self
    }
    /// The local clock. Defaults to the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// The session timeout assumed when introspection does not tell. Defaults to 2 hours.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.settings.session_timeout = d;
        self
    }
    /// Ask `/services/oauth2/introspect` for each new token's expiry, when the grant has a
    /// consumer secret. Defaults to true.
    pub fn introspect(mut self, on: bool) -> Self {
        self.settings.introspect = on;
        self
    }
    /// A file (JSON, fingerprints only) where the manager remembers configured refresh tokens
    /// it has seen rotated away, outside the store it protects: after a store loss, such a
    /// token is never sent again (it would revoke the whole token family), and the refresh
    /// fails with the cause `refresh_token_lost` instead (`src/manager/ledger.rs`). Several
    /// profiles may share one file. Defaults to none: without it only a logout tombstone is
    /// recognised.
    pub fn spent_ledger(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.spent_ledger = Some(path.into());
        self
    }
    /// Token requests allowed per rolling hour. Defaults to 600.
    pub fn login_budget_per_hour(mut self, n: u32) -> Self {
        self.login_budget = n;
        self
    }
    /// How long a caller waits for a shared refresh. Defaults to 20 seconds.
    pub fn refresh_wait_timeout(mut self, d: Duration) -> Self {
        self.settings.refresh_wait = d;
        self
    }
    /// How long a refresher waits for another process's refresh lock. Defaults to 18 seconds.
    pub fn lock_wait(mut self, d: Duration) -> Self {
        self.settings.lock_wait = d;
        self
    }
    /// Adds an event sink. The `tracing` + `metrics` sink is always present unless
    /// [`Self::without_tracing_sink`] is called.
    pub fn event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }
    /// Drops the default tracing sink.
    pub fn without_tracing_sink(mut self) -> Self {
        self.tracing = false;
        self
    }
    /// The HTTP client for token requests. Defaults to one with a 10 s timeout (3 s to
    /// connect), built on the first token request: a manager serving a fresh stored token
    /// builds none (see [`Self::http_client_options`]).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }
    /// How to build the HTTP client for token requests, on the first one: unlike
    /// [`Self::http_client`], nothing is built (no root certificates loaded) until a token
    /// request or an introspection needs it. Ignored when [`Self::http_client`] is set.
    /// Defaults to a 10 s timeout, 3 s to connect.
    pub fn http_client_options(mut self, options: ClientOptions) -> Self {
        self.http_options = Some(options);
        self
    }
    /// Where token requests go. Defaults to [`HttpTokenSource`] on the login URL (with the
    /// [`Self::http_client`]); tests put a scripted source here.
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.source = Some(source);
        self
    }
    /// What to do while the shared store is unreachable. Defaults to
    /// [`OnStoreUnavailable::Auto`]: fail closed for a rotating refresh token, open otherwise.
    pub fn on_store_unavailable(mut self, mode: OnStoreUnavailable) -> Self {
        self.on_store_unavailable = mode;
        self
    }
    /// Whether the refresh token rotates. Defaults to [`Rotation::Auto`] (learned).
    pub fn rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Builds the manager. Fails on a missing grant or a login URL that breaks the transport
    /// policy (https, or http to loopback only).
    pub fn build(self) -> Result<TokenManager> {
        let primary = self
            .grant
            .ok_or_else(|| Error::Config("TokenManager needs a grant".into()))?;
        let clock = ServerClock::new(self.clock.unwrap_or_else(|| Arc::new(SystemClock)));
        let endpoint = match (self.http, self.http_options) {
            (Some(http), _) => TokenEndpoint::with_client(&self.login_url, clock.clone(), http)?,
            (None, Some(o)) => TokenEndpoint::with_options(&self.login_url, clock.clone(), o)?,
            (None, None) => TokenEndpoint::new(&self.login_url, clock.clone())?,
        };
        let source = self
            .source
            .unwrap_or_else(|| Arc::new(HttpTokenSource::new(endpoint.clone())));
        // The default key is `StoreKey::for_grant`, with the `key_username` when the grant
        // names no user. An explicit key is the caller's own scheme: no earlier default key to
        // look at.
        let (key, legacy_key) = match self.key {
            Some(k) => (k, None),
            None => {
                let id = KeyIdentity::new(&self.login_url, primary.kind())
                    .client_id(primary.client_id())
                    .username(primary.subject().or(self.key_username.as_deref()))
                    .bootstrap_refresh_token(primary.configured_refresh_token());
                (id.key(), Some(id.legacy_key()))
            }
        };
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let mut sinks = self.sinks;
        if self.tracing {
            sinks.insert(0, Arc::new(TracingSink));
        }
        let inner = Inner {
            endpoint,
            source,
            clock,
            primary,
            fallback: self.fallback,
            settings: self.settings,
            events: Arc::new(FanOut(sinks)),
            current: Current::new(),
            flight: SingleFlight::new(),
            background: AtomicBool::new(false),
            cooldown: Cooldown::default(),
            budget: LoginBudget::new(self.login_budget),
            rotation: RotationMemory::new(self.rotation),
            sync: StoreSync::new(store, key, self.on_store_unavailable).with_legacy_key(legacy_key),
            forgotten: ForgetEpochs::default(),
            owner: format!("{:016x}", fastrand::u64(..)),
            ledger: SpentLedger::new(self.spent_ledger),
        };
        Ok(TokenManager {
            inner: Arc::new(inner),
        })
    }
}
