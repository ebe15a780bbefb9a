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
//! # When the shared store is unreachable (token-manager-design §2.6)
//!
//! The in-memory token keeps being served. A grant without rotation state (JWT bearer, client
//! credentials, a refresh token with [`Rotation::Off`]) fails open: the manager refreshes
//! locally (at most one token request per process) and keeps the new token in memory. A
//! rotating refresh token fails closed (see [`OnStoreUnavailable`]).
//!
//! While the store is down, the fast path lets one background probe touch the store at most
//! every [`STORE_PROBE_INTERVAL`] (the store's own circuit breaker keeps a probe cheap). On the
//! first store operation that succeeds again (`store.recovered`), a token obtained locally
//! during the outage is **written back** with the normal compare-and-set, so the other
//! processes of the fleet, and new ones, adopt it instead of requesting their own
//! (`token.written_back`). The generation fences the write-back like any other write:
//!
//! | the store holds | write-back |
//! |---|---|
//! | nothing (e.g. Redis restarted empty), or a lower generation | ours is written (compare-and-set on what was read) |
//! | a logout tombstone ([`TokenManager::forget`], `sfkeep logout`), whatever its generation | nothing is written: a logout is never undone |
//! | a value this process cannot read, of a generation at least ours | nothing is written |
//! | a higher generation | nothing is written; the record is adopted if usable (`token.adopted`) |
//! | the same generation, another token | nothing is written (`refresh.discarded`); ours stays in memory until the next refresh |
//!
//! Only a token kept in memory because the store was unavailable waits for write-back; one
//! that lost the compare-and-set to a healthy store never does. If a 401 invalidates the
//! token while it is being written back, a refresh starts at once and replaces it in the
//! store. After an outage, a refresh presents the refresh token of the newer of the stored
//! and the in-memory record (the store may still hold one that rotated away meanwhile).
//!
//! A record that carries a refresh token is never written back unless rotation is declared off
//! ([`Rotation::Off`]): with rotation it could put a refresh token into use in two places, so
//! that case stays fail-closed, in memory only.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::clock::{Clock, ServerClock, SystemClock, UnixMillis};
use crate::diagnose::Cause;
use crate::error::{Error, Result};
use crate::event::{AuthEvent, AuthEventKind, EventSink, FanOut, RefreshReason, TracingSink};
use crate::grant::{self, Grant, TokenEndpoint, TokenResponse, introspect};
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{CasOutcome, MemoryStore, Store, StoreKey};
use crate::token::{self, ExpirySource, GrantKind, TokenRecord, TokenState};

/// Minimum gap after a failed token request before the next one (per manager).
pub const FAILURE_COOLDOWN: Duration = Duration::from_secs(30);
/// First gap after a transient failure; doubles up to [`FAILURE_COOLDOWN`].
pub const TRANSIENT_BACKOFF: Duration = Duration::from_secs(1);
/// Default login budget: token requests per rolling hour, far under Salesforce's ~3,600.
pub const DEFAULT_LOGIN_BUDGET: u32 = 600;
/// How long a caller waits for a shared refresh.
pub const REFRESH_WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a refresher waits for another process's refresh lock (1.2 × the lock TTL).
pub const LOCK_WAIT: Duration = Duration::from_secs(18);
/// While the store is unreachable, the fast path starts at most one background store probe
/// this often (local clock), so a recovery is noticed, and a token obtained during the outage
/// written back, without waiting for the next refresh.
pub const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the manager does while the shared store is unreachable (token-manager-design §2.6).
/// In every mode a still-valid in-memory token keeps being served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStoreUnavailable {
    /// Fail closed for a rotating refresh token, open for every other grant.
    #[default]
    Auto,
    /// Refresh locally (in-process single-flight: at most one token request per process). The
    /// token is written back to the store once it answers again, unless the store holds a
    /// newer generation by then, and unless the record carries a refresh token that may
    /// rotate (see the [module docs](crate::manager)).
    FailOpen,
    /// Never refresh without the store: once the in-memory token is unusable, callers get
    /// [`Error::StoreUnavailable`] until the store is back.
    FailClosed,
}

/// Whether the refresh token rotates (each refresh returns a new one and the old one dies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rotation {
    /// Learned: rotation counts as on once a refresh token other than the configured one is
    /// seen (a refresh response carrying a new one, or such a record in the store).
    #[default]
    Auto,
    /// The app rotates refresh tokens.
    On,
    /// It does not.
    Off,
}

/// A valid access token and where to use it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Token(Arc<TokenRecord>);

impl Token {
    /// The access token, for an `Authorization: Bearer` header.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.access_token
    }
    /// The instance URL API calls go to.
    pub fn instance_url(&self) -> &str {
        &self.0.instance_url
    }
    /// The generation: pass it to [`TokenManager::invalidate_if_current`] after a 401.
    pub fn generation(&self) -> u64 {
        self.0.generation
    }
    /// The whole record.
    pub fn record(&self) -> &TokenRecord {
        &self.0
    }
}

/// What [`TokenManager::status`] reports.
#[derive(Clone, Debug)]
pub struct ManagerStatus {
    /// `fresh`, `stale`, `expired`, `invalidated`, `missing` or `reauth_required`.
    pub state: &'static str,
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
}

#[derive(Clone, Debug)]
struct Failure {
    error: Error,
    next_attempt: UnixMillis,
    consecutive: u32,
}

type Flight = Shared<BoxFuture<'static, Result<Arc<TokenRecord>>>>;

struct Inner {
    endpoint: TokenEndpoint,
    clock: ServerClock,
    primary: Grant,
    fallback: Option<Grant>,
    store: Arc<dyn Store>,
    key: StoreKey,
    session_timeout: Duration,
    introspect: bool,
    login_budget: u32,
    refresh_wait: Duration,
    lock_wait: Duration,
    events: Arc<dyn EventSink>,
    current: ArcSwapOption<TokenRecord>,
    /// Bumped on every change of `current` (never reused, unlike generations after a
    /// `forget`), so the fast path can check its thread-local copy with one shared read.
    current_version: AtomicU64,
    /// Identifies this manager in the thread-local fast-path cache.
    id: usize,
    /// The generation a 401 declared dead (0: none; generations start at 1).
    invalidated: AtomicU64,
    flight: Mutex<Option<Flight>>,
    background: AtomicBool,
    failure: Mutex<Option<Failure>>,
    requests: Mutex<VecDeque<UnixMillis>>,
    /// Fingerprint of a refresh token the server refused for good: never sent again, so a
    /// manager with a fallback grant goes straight to it.
    refused_refresh_token: Mutex<Option<String>>,
    on_store_unavailable: OnStoreUnavailable,
    rotation: Rotation,
    /// `Rotation::Auto` has seen a rotated refresh token.
    rotation_seen: AtomicBool,
    /// The last store operation failed (events are emitted once per transition).
    store_down: AtomicBool,
    /// A token obtained while the store was unreachable, to write back once it answers again
    /// (only records without refresh-token rotation state; see the module docs).
    write_back: Mutex<Option<Arc<TokenRecord>>>,
    /// Serialises what reads the store and changes `current` from it: the refresh task and
    /// the recovery probe.
    store_sync: tokio::sync::Mutex<()>,
    /// A recovery probe is running.
    probing: AtomicBool,
    /// Local time (ms) before which no new recovery probe starts.
    next_probe: AtomicI64,
    /// Moves when a `forget()` starts and when it ends: a refresh requested before a forget
    /// ended (it may run after it, queued on `store_sync`) neither stores its token nor makes
    /// it current, so a logout is not undone by a refresh that was already on its way.
    forgotten: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("login_url", &self.endpoint.login_url().as_str())
            .field("grant", &self.primary)
            .field("fallback", &self.fallback)
            .field("store", &self.store.kind())
            .field("key", &self.key)
            .finish()
    }
}

/// Keeps one Salesforce credential authenticated. Cheap to clone; clones share everything.
///
/// ```no_run
/// # async fn run() -> sfkeep::Result<()> {
/// use sfkeep::{Grant, TokenManager, secret::{ClientSecret, RefreshToken}};
/// let manager = TokenManager::builder("https://login.salesforce.com")
///     .grant(Grant::RefreshToken {
///         client_id: "3MVG9...".into(),
///         client_secret: Some(ClientSecret::new(std::env::var("SF_CLIENT_SECRET").unwrap())),
///         refresh_token: RefreshToken::new(std::env::var("SF_REFRESH_TOKEN").unwrap()),
///     })
///     .build()?;
/// let token = manager.token().await?;
/// // ... call Salesforce with token.access_token(); on a 401 INVALID_SESSION_ID:
/// manager.invalidate_if_current(token.generation(), "rest");
/// let fresh = manager.token().await?; // exactly one refresh, however many callers saw the 401
/// # let _ = fresh; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

/// Builds a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    login_url: String,
    grant: Option<Grant>,
    fallback: Option<Grant>,
    store: Option<Arc<dyn Store>>,
    key: Option<StoreKey>,
    clock: Option<Arc<dyn Clock>>,
    session_timeout: Duration,
    introspect: bool,
    login_budget: u32,
    refresh_wait: Duration,
    lock_wait: Duration,
    sinks: Vec<Arc<dyn EventSink>>,
    tracing: bool,
    http: Option<reqwest::Client>,
    on_store_unavailable: OnStoreUnavailable,
    rotation: Rotation,
}

impl TokenManagerBuilder {
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
    /// The record's key in the store. Defaults to a hash of login URL, client id, subject and
    /// grant.
    pub fn store_key(mut self, key: StoreKey) -> Self {
        self.key = Some(key);
        self
    }
    /// The local clock. Defaults to the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// The session timeout assumed when introspection does not tell. Defaults to 2 hours.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }
    /// Ask `/services/oauth2/introspect` for each new token's expiry, when the grant has a
    /// consumer secret. Defaults to true.
    pub fn introspect(mut self, on: bool) -> Self {
        self.introspect = on;
        self
    }
    /// Token requests allowed per rolling hour. Defaults to 600.
    pub fn login_budget_per_hour(mut self, n: u32) -> Self {
        self.login_budget = n;
        self
    }
    /// How long a caller waits for a shared refresh. Defaults to 20 seconds.
    pub fn refresh_wait_timeout(mut self, d: Duration) -> Self {
        self.refresh_wait = d;
        self
    }
    /// How long a refresher waits for another process's refresh lock. Defaults to 18 seconds.
    pub fn lock_wait(mut self, d: Duration) -> Self {
        self.lock_wait = d;
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
    /// The HTTP client for token requests. Defaults to one with a 10 s timeout.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
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
        let endpoint = match self.http {
            Some(http) => TokenEndpoint::with_client(&self.login_url, clock.clone(), http)?,
            None => TokenEndpoint::new(&self.login_url, clock.clone())?,
        };
        let key = self.key.unwrap_or_else(|| {
            StoreKey::derive(
                &self.login_url,
                primary.client_id().unwrap_or(""),
                primary.subject().unwrap_or(""),
                primary.kind(),
            )
        });
        let mut sinks = self.sinks;
        if self.tracing {
            sinks.insert(0, Arc::new(TracingSink));
        }
        Ok(TokenManager {
            inner: Arc::new(Inner {
                endpoint,
                clock,
                primary,
                fallback: self.fallback,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                key,
                session_timeout: self.session_timeout,
                introspect: self.introspect,
                login_budget: self.login_budget,
                refresh_wait: self.refresh_wait,
                lock_wait: self.lock_wait,
                events: Arc::new(FanOut(sinks)),
                current: ArcSwapOption::empty(),
                current_version: AtomicU64::new(0),
                id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
                invalidated: AtomicU64::new(0),
                flight: Mutex::new(None),
                background: AtomicBool::new(false),
                failure: Mutex::new(None),
                requests: Mutex::new(VecDeque::new()),
                refused_refresh_token: Mutex::new(None),
                on_store_unavailable: self.on_store_unavailable,
                rotation: self.rotation,
                rotation_seen: AtomicBool::new(false),
                store_down: AtomicBool::new(false),
                write_back: Mutex::new(None),
                store_sync: tokio::sync::Mutex::new(()),
                probing: AtomicBool::new(false),
                next_probe: AtomicI64::new(i64::MIN),
                forgotten: AtomicU64::new(0),
            }),
        })
    }
}

impl TokenManager {
    /// A builder for the login host `login_url` (e.g. `https://login.salesforce.com`).
    pub fn builder(login_url: impl Into<String>) -> TokenManagerBuilder {
        TokenManagerBuilder {
            login_url: login_url.into(),
            grant: None,
            fallback: None,
            store: None,
            key: None,
            clock: None,
            session_timeout: token::DEFAULT_SESSION_TIMEOUT,
            introspect: true,
            login_budget: DEFAULT_LOGIN_BUDGET,
            refresh_wait: REFRESH_WAIT_TIMEOUT,
            lock_wait: LOCK_WAIT,
            sinks: Vec::new(),
            tracing: true,
            http: None,
            on_store_unavailable: OnStoreUnavailable::Auto,
            rotation: Rotation::Auto,
        }
    }

    /// A valid token. Fresh: returned at once, lock-free. Stale: returned at once, one
    /// background refresh started. Expired or invalidated: waits on the shared refresh.
    pub async fn token(&self) -> Result<Token> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        // Boxed: the refresh's state is large, and a future that carried it inline would be
        // created and moved on every call, the fast ones included.
        Box::pin(self.inner.refresh(self.slow_reason()))
            .await
            .map(Token)
    }

    /// The fast path, without waiting: a usable cached token, or `None` when a refresh is
    /// needed (call [`TokenManager::token`] then). Lock-free; a Stale token starts the
    /// background refresh, as `token()` does.
    pub fn cached_token(&self) -> Option<Token> {
        self.cached()
    }

    fn cached(&self) -> Option<Token> {
        let inner = &*self.inner;
        let version = inner.current_version.load(Ordering::Acquire);
        let rec = hot_copy(inner, version)?;
        if rec.generation == inner.invalidated.load(Ordering::Acquire) {
            return None;
        }
        if inner.store_down.load(Ordering::Relaxed) {
            self.inner.spawn_store_probe();
        }
        match rec.state_at(inner.clock.now()) {
            TokenState::Fresh => Some(Token(rec)),
            TokenState::Stale => {
                self.inner.spawn_background_refresh();
                Some(Token(rec))
            }
            TokenState::Expired => None,
        }
    }

    fn slow_reason(&self) -> RefreshReason {
        match self.inner.current.load().as_ref() {
            None => RefreshReason::Startup,
            Some(r) if r.generation == self.inner.invalidated.load(Ordering::Acquire) => {
                RefreshReason::Reactive401
            }
            Some(_) => RefreshReason::Expired,
        }
    }

    /// Declares the token of `generation` dead after a 401 from `api` (`rest`, `soap`, `bulk`).
    /// A no-op when a newer token is already current, so N 401s from requests in flight cause
    /// one refresh. Returns whether it invalidated anything.
    pub fn invalidate_if_current(&self, generation: u64, api: &str) -> bool {
        let current = self.inner.current.load();
        let Some(rec) = current.as_ref() else {
            return false;
        };
        if rec.generation != generation {
            return false;
        }
        let prev = self.inner.invalidated.swap(generation, Ordering::AcqRel);
        if prev != generation {
            self.inner.emit(
                AuthEventKind::TokenInvalidated {
                    api: api.to_owned(),
                },
                Some(rec),
            );
            true
        } else {
            false
        }
    }

    /// Gets a new token now, whatever the state of the current one (used by `recover`).
    /// Clears any cooldown first.
    pub async fn force_refresh(&self) -> Result<Token> {
        *self.inner.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(rec) = self.inner.current.load().as_ref() {
            self.inner
                .invalidated
                .store(rec.generation, Ordering::Release);
        }
        self.inner.refresh(RefreshReason::Forced).await.map(Token)
    }

    /// Records the server's `Date` header seen on any response, to correct clock skew.
    pub fn observe_server_date(&self, date: &str) {
        let now = self.inner.clock.local().now();
        self.inner.clock.observe_date_header(date, now);
    }

    /// Forgets the token here and in the store (`sfkeep logout`): the stored record is
    /// replaced by a tombstone ([`TokenRecord::tombstone`]), never just deleted. A refresh
    /// requested before it returns (even one that runs after it) hands its token to the
    /// callers that waited for it but neither stores it nor keeps it; the next call refreshes.
    pub async fn forget(&self) -> Result<()> {
        // Refreshes requested from now until the forget ends are not kept (see `forgotten`).
        self.inner.forgotten.fetch_add(1, Ordering::AcqRel);
        let _ends = ForgetEnds(&self.inner.forgotten);
        // After any refresh or recovery probe in progress, so none writes the token back.
        let _sync = self.inner.store_sync.lock().await;
        *self
            .inner
            .write_back
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let local_gen = self
            .inner
            .current
            .load()
            .as_ref()
            .map(|r| r.generation)
            .unwrap_or(0);
        self.inner.set_current(None);
        // A tombstone, not an empty key: a token another process obtained before this logout
        // (kept in its memory during a store outage) must lose its write-back.
        crate::store::forget(
            &*self.inner.store,
            &self.inner.key,
            local_gen,
            self.inner.primary.kind(),
            self.inner.clock.now(),
        )
        .await
    }

    /// The current state, for `sfkeep status` and `/healthz`. Never contains a token.
    pub fn status(&self) -> ManagerStatus {
        let now = self.inner.clock.now();
        let cur = self.inner.current.load_full();
        let failure = self
            .inner
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = match (&cur, &failure) {
            (_, Some(f)) if f.error.is_reauth_required() => "reauth_required",
            (None, _) => "missing",
            (Some(r), _) if r.generation == self.inner.invalidated.load(Ordering::Acquire) => {
                "invalidated"
            }
            (Some(r), _) => match r.state_at(now) {
                TokenState::Fresh => "fresh",
                TokenState::Stale => "stale",
                TokenState::Expired => "expired",
            },
        };
        ManagerStatus {
            state,
            generation: cur.as_ref().map(|r| r.generation),
            expires_in: cur.as_ref().map(|r| r.remaining_at(now)),
            fingerprint: cur.as_ref().map(|r| r.fingerprint()),
            expiry_source: cur.as_ref().map(|r| r.expiry_source),
            store: self.inner.store.kind(),
            last_failure: failure.and_then(|f| f.error.cause()),
            clock_offset_ms: self.inner.clock.offset(),
        }
    }

    /// The store key (a hash; safe to show).
    pub fn store_key(&self) -> &StoreKey {
        &self.inner.key
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
        let cur = self.inner.current.load_full();
        self.inner.emit(kind, cur.as_deref());
    }
}

/// Moves `Inner::forgotten` again when a `forget()` ends, however it ends.
struct ForgetEnds<'a>(&'a AtomicU64);

impl Drop for ForgetEnds<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Source of [`Inner::id`].
static NEXT_MANAGER_ID: AtomicUsize = AtomicUsize::new(1);
/// Thread-local fast-path entries kept per thread (a few managers per process is the norm).
const HOT_ENTRIES: usize = 8;

/// This thread's private copy of a manager's current record.
struct HotEntry {
    manager: usize,
    version: u64,
    record: Arc<TokenRecord>,
}

thread_local! {
    /// Per-thread copies of current records: handing out a clone of a thread-private `Arc`
    /// touches no cache line another thread writes, so the fast path scales with threads
    /// instead of bouncing one reference count between cores.
    static HOT: RefCell<Vec<HotEntry>> = const { RefCell::new(Vec::new()) };
}

/// This thread's copy of `inner`'s current record if it is of `version`, refreshing the
/// copy from the shared slot when the version moved.
fn hot_copy(inner: &Inner, version: u64) -> Option<Arc<TokenRecord>> {
    HOT.with(|hot| {
        let mut hot = hot.borrow_mut();
        if let Some(e) = hot.iter().find(|e| e.manager == inner.id)
            && e.version == version
        {
            return Some(Arc::clone(&e.record));
        }
        let shared = inner.current.load_full()?;
        let private = Arc::new((*shared).clone());
        hot.retain(|e| e.manager != inner.id);
        if hot.len() >= HOT_ENTRIES {
            hot.remove(0);
        }
        hot.push(HotEntry {
            manager: inner.id,
            version,
            record: Arc::clone(&private),
        });
        Some(private)
    })
}

impl Inner {
    /// Makes `rec` current (or clears it), and publishes its generation for the fast path.
    fn set_current(&self, rec: Option<Arc<TokenRecord>>) {
        self.current.store(rec);
        self.current_version.fetch_add(1, Ordering::AcqRel);
    }

    fn emit(&self, kind: AuthEventKind, rec: Option<&TokenRecord>) {
        self.events.emit(&AuthEvent {
            at: self.clock.local().now(),
            kind,
            grant: rec.map(|r| r.grant).or(Some(self.primary.kind())),
            generation: rec.map(|r| r.generation),
            fingerprint: rec.map(|r| r.fingerprint()),
            key: self.key.to_string(),
        });
    }

    fn usable(&self, rec: &TokenRecord) -> bool {
        rec.generation != self.invalidated.load(Ordering::Acquire)
            && rec.state_at(self.clock.now()) != TokenState::Expired
    }

    /// Starts the one background refresh of a Stale token, unless one is running or a failure
    /// is cooling down. Cheap when one is already running: one atomic load.
    fn spawn_background_refresh(self: &Arc<Self>) {
        if self.background.load(Ordering::Acquire) || self.cooling_down().is_some() {
            return;
        }
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.background.store(false, Ordering::Release);
            return;
        };
        let me = Arc::clone(self);
        rt.spawn(async move {
            let _ = me.refresh(RefreshReason::Proactive).await;
            me.background.store(false, Ordering::Release);
        });
    }

    /// The error to return instead of a request while a failure's cooldown lasts.
    fn cooling_down(&self) -> Option<Error> {
        let f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        let f = f.as_ref()?;
        let now = self.clock.local().now();
        if now >= f.next_attempt {
            return None;
        }
        Some(match &f.error {
            e @ Error::ReauthRequired { .. } => e.clone(),
            e => Error::CoolingDown {
                cause: e.cause().unwrap_or(Cause::Unknown),
                remaining: f.next_attempt.since(now),
                last_error: e.to_string(),
            },
        })
    }

    /// Joins the in-flight refresh, or starts one in a spawned task.
    async fn refresh(self: &Arc<Self>, reason: RefreshReason) -> Result<Arc<TokenRecord>> {
        let flight = {
            let mut slot = self.flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = slot.as_ref() {
                f.clone()
            } else {
                // Double-check under the slot lock: a refresh may have finished meanwhile.
                if let Some(cur) = self.current.load_full()
                    && self.usable(&cur)
                    && reason != RefreshReason::Proactive
                    && reason != RefreshReason::Forced
                {
                    return Ok(cur);
                }
                if reason != RefreshReason::Forced
                    && let Some(e) = self.cooling_down()
                {
                    return Err(e);
                }
                let me = Arc::clone(self);
                let epoch = self.forgotten.load(Ordering::Acquire);
                let task = tokio::spawn(async move {
                    let r = Arc::clone(&me).run_refresh(reason, epoch).await;
                    *me.flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    r
                });
                let f: Flight = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(Error::Config(format!("the refresh task failed: {e}")))
                    })
                }
                .boxed()
                .shared();
                *slot = Some(f.clone());
                f
            }
        };
        match tokio::time::timeout(self.refresh_wait, flight).await {
            Ok(r) => r,
            Err(_) => Err(Error::RefreshTimeout(self.refresh_wait)),
        }
    }

    /// Adopts `stored` if it is newer than what this process holds and usable for `reason`.
    fn adopt_if_newer(
        &self,
        stored: &Option<TokenRecord>,
        reason: RefreshReason,
    ) -> Option<Arc<TokenRecord>> {
        let stored = stored.as_ref().filter(|r| !r.is_tombstone())?;
        // Before judging its state: a process that has not heard from the server yet takes
        // the writer's skew estimate.
        self.clock.seed(stored.server_offset_ms);
        let local_gen = self
            .current
            .load()
            .as_ref()
            .map(|r| r.generation)
            .unwrap_or(0);
        if stored.generation <= local_gen && reason != RefreshReason::Startup {
            return None;
        }
        let good = match reason {
            RefreshReason::Proactive => stored.state_at(self.clock.now()) == TokenState::Fresh,
            RefreshReason::Forced => false,
            _ => self.usable(stored),
        };
        if !good {
            return None;
        }
        let rec = Arc::new(stored.clone());
        self.note_rotation(&rec);
        self.set_current(Some(Arc::clone(&rec)));
        self.emit(AuthEventKind::TokenAdopted, Some(&rec));
        Some(rec)
    }

    /// `Rotation::Auto`: a refresh token other than the configured one means rotation is on.
    fn note_rotation(&self, rec: &TokenRecord) {
        if self.rotation != Rotation::Auto || self.rotation_seen.load(Ordering::Relaxed) {
            return;
        }
        if let (Grant::RefreshToken { refresh_token, .. }, Some(rt)) =
            (&self.primary, rec.refresh_token.as_ref())
            && rt.expose_secret() != refresh_token.expose_secret()
        {
            self.rotation_seen.store(true, Ordering::Relaxed);
        }
    }

    /// Refreshing without the shared store is refused (§2.6): a rotating refresh token, or
    /// `OnStoreUnavailable::FailClosed`.
    fn fails_closed(&self) -> bool {
        match self.on_store_unavailable {
            OnStoreUnavailable::FailOpen => false,
            OnStoreUnavailable::FailClosed => true,
            OnStoreUnavailable::Auto => {
                matches!(self.primary, Grant::RefreshToken { .. })
                    && match self.rotation {
                        Rotation::On => true,
                        Rotation::Off => false,
                        Rotation::Auto => self.rotation_seen.load(Ordering::Relaxed),
                    }
            }
        }
    }

    /// The store is down and this manager fails closed: serve the in-memory token while it is
    /// usable, else [`Error::StoreUnavailable`]. No token request, no cooldown: the store's own
    /// circuit breaker keeps this cheap, and the first success after recovery proceeds.
    fn fail_closed_now(&self) -> Option<Result<Arc<TokenRecord>>> {
        if !self.store_down.load(Ordering::Acquire) || !self.fails_closed() {
            return None;
        }
        Some(match self.current.load_full() {
            Some(cur) if self.usable(&cur) => Ok(cur),
            _ => Err(Error::StoreUnavailable),
        })
    }

    /// Records a store failure; the event is emitted once per outage.
    fn store_failed(&self, e: &Error, rec: Option<&TokenRecord>) {
        if !self.store_down.swap(true, Ordering::AcqRel) {
            self.emit(
                AuthEventKind::StoreUnavailable {
                    detail: e.to_string(),
                },
                rec,
            );
        }
    }

    /// Records a store success; emits `StoreRecovered` after an outage.
    fn store_ok(&self) {
        if self.store_down.swap(false, Ordering::AcqRel) {
            self.emit(AuthEventKind::StoreRecovered, None);
        }
    }

    /// Whether a record kept in memory during an outage may be written back later. Never one
    /// carrying a refresh token unless rotation is declared off: with rotation, writing it
    /// could put one refresh token into use in two places (the design fails closed there).
    fn may_write_back(&self, rec: &TokenRecord) -> bool {
        rec.refresh_token.is_none() || self.rotation == Rotation::Off
    }

    /// The store answered with `stored`: writes back the token obtained during the outage, if
    /// one waits, is still current and usable, and the store holds no generation as new as
    /// ours. Never overwrites a newer record (compare-and-set on the generation read); never
    /// adopts here (the caller adopts a newer record as usual). Returns what the store holds.
    async fn write_back(self: &Arc<Self>, stored: Option<TokenRecord>) -> Option<TokenRecord> {
        let pending = self
            .write_back
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(ours) = pending else {
            return stored;
        };
        let still_current = self
            .current
            .load()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &ours));
        if !still_current || !self.usable(&ours) {
            return stored;
        }
        let mut stored = stored;
        for _ in 0..2 {
            if stored.as_ref().is_some_and(|s| s.is_tombstone()) {
                // Another process logged out after ours was obtained: never resurrect it.
                return stored;
            }
            if stored.is_none()
                && self
                    .store
                    .unreadable_generation(&self.key)
                    .is_some_and(|g| g >= ours.generation)
            {
                // A value this process cannot read (another cache key) of a generation at
                // least as new: the compare-and-set on "nothing usable" would replace it.
                return stored;
            }
            if let Some(s) = &stored
                && s.generation >= ours.generation
            {
                if s.generation > ours.generation || s.fingerprint() != ours.fingerprint() {
                    // Another process wrote at least as new a generation: it stays.
                    self.emit(AuthEventKind::RefreshDiscarded, Some(s));
                }
                return stored;
            }
            let replaced = stored.as_ref().map(|s| s.generation);
            match self.store.compare_and_set(&self.key, replaced, &ours).await {
                Ok(CasOutcome::Written) => {
                    self.store_ok();
                    self.emit(AuthEventKind::TokenWrittenBack { replaced }, Some(&ours));
                    if self.invalidated.load(Ordering::Acquire) == ours.generation {
                        // A 401 arrived while it was being written: replace it in the store
                        // at once rather than leave a dead token for the fleet to adopt.
                        tokio::spawn(Arc::clone(self).refresh_401());
                    }
                    return Some((*ours).clone());
                }
                Ok(CasOutcome::Conflict(other)) => {
                    self.store_ok();
                    stored = other;
                }
                Err(e) => {
                    self.store_failed(&e, Some(&ours));
                    // Try again on the next success, unless something newer replaced it.
                    let mut pending = self.write_back.lock().unwrap_or_else(|p| p.into_inner());
                    if pending.is_none() {
                        *pending = Some(ours);
                    }
                    return stored;
                }
            }
        }
        stored
    }

    /// The refresh a 401 during a write-back starts (boxed: it is spawned from inside a
    /// refresh or probe, which the compiler cannot see through).
    fn refresh_401(self: Arc<Self>) -> BoxFuture<'static, ()> {
        async move {
            let _ = self.refresh(RefreshReason::Reactive401).await;
        }
        .boxed()
    }

    /// While the store is down: starts one background probe, at most every
    /// [`STORE_PROBE_INTERVAL`], so its recovery (and the write-back) does not wait for the
    /// next refresh. Cheap when one is running or it is too early: one or two atomic loads.
    fn spawn_store_probe(self: &Arc<Self>) {
        let now = self.clock.local().now().0;
        if self.probing.load(Ordering::Acquire) || now < self.next_probe.load(Ordering::Acquire) {
            return;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.probing.store(false, Ordering::Release);
            return;
        };
        self.next_probe.store(
            now.saturating_add(STORE_PROBE_INTERVAL.as_millis() as i64),
            Ordering::Release,
        );
        let me = Arc::clone(self);
        rt.spawn(async move {
            me.probe_store().await;
            me.probing.store(false, Ordering::Release);
        });
    }

    /// One recovery probe: read the store (which writes back a token obtained during the
    /// outage) and adopt a newer usable record. Skipped while a refresh runs: it touches the
    /// store itself.
    async fn probe_store(self: &Arc<Self>) {
        let Ok(_sync) = self.store_sync.try_lock() else {
            return;
        };
        let stored = self.load_stored().await;
        // The reason only selects the check: any usable newer record is adopted.
        self.adopt_if_newer(&stored, RefreshReason::Expired);
    }

    /// Reads the store's record. When the store answers and a token obtained during an outage
    /// waits to be written back, writes it back first; returns what the store holds then.
    async fn load_stored(self: &Arc<Self>) -> Option<TokenRecord> {
        match self.store.load(&self.key).await {
            Ok(r) => {
                self.store_ok();
                self.write_back(r).await
            }
            Err(e) => {
                self.store_failed(&e, None);
                None
            }
        }
    }

    /// One refresh; `epoch` is `forgotten` when it was requested.
    async fn run_refresh(
        self: Arc<Self>,
        reason: RefreshReason,
        epoch: u64,
    ) -> Result<Arc<TokenRecord>> {
        let _sync = self.store_sync.lock().await;
        let stored = self.load_stored().await;
        if let Some(r) = self.adopt_if_newer(&stored, reason) {
            return Ok(r);
        }
        if let Some(r) = self.fail_closed_now() {
            return r;
        }
        let _lock = match self.store.lock(&self.key, self.lock_wait).await {
            Ok(l) => {
                self.store_ok();
                l
            }
            Err(e) => {
                self.store_failed(&e, None);
                None
            }
        };
        if let Some(r) = self.fail_closed_now() {
            return r;
        }
        // Double-check after the lock: another process may have refreshed while we waited.
        let stored = self.load_stored().await;
        if let Some(r) = self.adopt_if_newer(&stored, reason) {
            return Ok(r);
        }
        if let Some(r) = self.fail_closed_now() {
            return r;
        }
        match self.obtain(reason, &stored, epoch).await {
            Ok(rec) => {
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Ok(rec)
            }
            Err(e) => {
                self.record_failure(&e, reason);
                Err(e)
            }
        }
    }

    fn record_failure(&self, e: &Error, reason: RefreshReason) {
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        let consecutive = f.as_ref().map(|f| f.consecutive + 1).unwrap_or(1);
        let gap = if e.is_reauth_required() || !e.is_retryable() {
            FAILURE_COOLDOWN
        } else {
            (TRANSIENT_BACKOFF * 2u32.saturating_pow(consecutive.saturating_sub(1).min(5)))
                .min(FAILURE_COOLDOWN)
        };
        *f = Some(Failure {
            error: e.clone(),
            next_attempt: self.clock.local().now().plus(gap),
            consecutive,
        });
        drop(f);
        let cause = e.cause().unwrap_or(Cause::Unknown);
        let cur = self.current.load_full();
        if e.is_reauth_required() {
            self.emit(AuthEventKind::ReauthRequired { cause }, cur.as_deref());
        } else {
            self.emit(
                AuthEventKind::RefreshFailed {
                    reason,
                    cause,
                    detail: e.to_string(),
                },
                cur.as_deref(),
            );
        }
    }

    /// Spends one unit of the login budget, or says when the next one is free.
    fn spend_budget(&self) -> Result<()> {
        let now = self.clock.local().now();
        let hour = Duration::from_secs(3600);
        let mut q = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        while q.front().is_some_and(|t| now.since(*t) >= hour) {
            q.pop_front();
        }
        if q.len() as u32 >= self.login_budget {
            let retry_after = hour.saturating_sub(now.since(*q.front().expect("non-empty")));
            drop(q);
            self.emit(
                AuthEventKind::LoginBudgetHeld {
                    retry_after_ms: retry_after.as_millis() as u64,
                },
                None,
            );
            return Err(Error::LoginBudgetExhausted {
                budget: self.login_budget,
                retry_after,
            });
        }
        q.push_back(now);
        Ok(())
    }

    /// Escalation: primary grant → fallback grant → ReauthRequired with the cause.
    async fn obtain(
        self: &Arc<Self>,
        reason: RefreshReason,
        stored: &Option<TokenRecord>,
        epoch: u64,
    ) -> Result<Arc<TokenRecord>> {
        // The newer of the stored and the in-memory record: after an outage the store may
        // still hold an older one whose refresh token has rotated away since.
        let current = self.current.load_full();
        let previous = match (stored, current) {
            (Some(s), Some(c)) if c.generation > s.generation => Some((*c).clone()),
            (Some(s), _) => Some(s.clone()),
            (None, c) => c.map(|c| (*c).clone()),
        };
        let started = Instant::now();
        let (resp, used) = match self.run_grant(&self.primary, previous.as_ref()).await {
            Ok(r) => (r, &self.primary),
            Err(e) if e.is_reauth_required() => {
                // Under rotation another process may have rotated first: re-read before
                // declaring the credential dead.
                let again = self.load_stored().await;
                if let Some(r) = self.adopt_if_newer(&again, reason) {
                    return Ok(r);
                }
                let Some(fallback) = &self.fallback else {
                    return Err(e);
                };
                self.emit(
                    AuthEventKind::FallbackUsed {
                        cause: e.cause().unwrap_or(Cause::Unknown),
                    },
                    previous.as_ref(),
                );
                (self.run_grant(fallback, previous.as_ref()).await?, fallback)
            }
            Err(e) => return Err(e),
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let rotated = resp.refresh_token.is_some() && used.kind() == GrantKind::RefreshToken;
        if rotated && self.rotation == Rotation::Auto {
            self.rotation_seen.store(true, Ordering::Relaxed);
        }
        let mut rec = self.record_from(resp, used, previous.as_ref()).await;
        let expected = stored.as_ref().map(|r| r.generation);
        let local_gen = self
            .current
            .load()
            .as_ref()
            .map(|r| r.generation)
            .unwrap_or(0);
        rec.generation = expected.unwrap_or(0).max(local_gen) + 1;
        let rec = self.persist(rec, expected, epoch).await;
        self.emit(
            AuthEventKind::TokenRefreshed {
                reason,
                latency_ms,
                rotated,
            },
            Some(&rec),
        );
        Ok(rec)
    }

    /// Writes the record with compare-and-set and makes it current. The new record is kept
    /// in memory even if the store fails: it may hold the only valid (rotated) refresh token.
    /// A record kept only in memory because the store was unavailable is queued for
    /// write-back when it may be (see [`Inner::may_write_back`]).
    /// A refresh requested before a `forget()` ended (`epoch` moved) keeps neither: its token
    /// goes only to the callers that waited for it.
    async fn persist(
        &self,
        mut rec: TokenRecord,
        expected: Option<u64>,
        epoch: u64,
    ) -> Arc<TokenRecord> {
        if self.forgotten.load(Ordering::Acquire) != epoch {
            self.emit(AuthEventKind::RefreshDiscarded, Some(&rec));
            return Arc::new(rec);
        }
        let mut expected = expected;
        let mut unavailable = false;
        for _ in 0..2 {
            match self.store.compare_and_set(&self.key, expected, &rec).await {
                Ok(CasOutcome::Written) => {
                    self.store_ok();
                    break;
                }
                Ok(CasOutcome::Conflict(other)) => {
                    self.store_ok();
                    self.emit(AuthEventKind::RefreshDiscarded, other.as_ref());
                    // Ours is the newest token the server issued; keep the fencing order.
                    let other_gen = other.as_ref().map(|r| r.generation);
                    rec.generation = rec.generation.max(other_gen.unwrap_or(0) + 1);
                    expected = other_gen;
                }
                Err(e) => {
                    self.store_failed(&e, Some(&rec));
                    unavailable = true;
                    break;
                }
            }
        }
        let rec = Arc::new(rec);
        {
            let mut pending = self.write_back.lock().unwrap_or_else(|p| p.into_inner());
            // A newer record supersedes any older one waiting for write-back. Only a store
            // that failed queues one: losing the compare-and-set to a healthy store does not.
            *pending = (unavailable && self.may_write_back(&rec)).then(|| Arc::clone(&rec));
        }
        self.set_current(Some(Arc::clone(&rec)));
        rec
    }

    async fn run_grant(
        &self,
        grant: &Grant,
        previous: Option<&TokenRecord>,
    ) -> Result<TokenResponse> {
        // Each branch spends one unit of the login budget per token request it sends.
        let ep = &self.endpoint;
        match grant {
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => {
                let rt: RefreshToken = previous
                    .and_then(|p| p.refresh_token.clone())
                    .unwrap_or_else(|| refresh_token.clone());
                let fp = rt.fingerprint();
                let already_refused = self
                    .refused_refresh_token
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_deref()
                    == Some(fp.as_str())
                    || previous.and_then(|p| p.refused_refresh_token.as_deref())
                        == Some(fp.as_str());
                if already_refused {
                    return Err(Error::ReauthRequired {
                        cause: Cause::RefreshTokenRevoked,
                        detail: format!("refresh token {fp} was already refused by the server"),
                    });
                }
                self.spend_budget()?;
                let r =
                    grant::refresh_token::request(ep, client_id, client_secret.as_ref(), &rt).await;
                if let Err(e) = &r
                    && e.cause() == Some(Cause::RefreshTokenRevoked)
                {
                    *self
                        .refused_refresh_token
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(fp);
                }
                r
            }
            Grant::JwtBearer {
                client_id,
                username,
                private_key,
                audience,
            } => {
                self.spend_budget()?;
                grant::jwt_bearer::request(
                    ep,
                    client_id,
                    username,
                    private_key,
                    audience.as_deref(),
                )
                .await
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => {
                self.spend_budget()?;
                grant::client_credentials::request(ep, client_id, client_secret).await
            }
            Grant::Password {
                client_id,
                client_secret,
                username,
                password,
                security_token,
            } => {
                self.spend_budget()?;
                grant::password::request(
                    ep,
                    client_id,
                    client_secret,
                    username,
                    password,
                    security_token.as_ref(),
                )
                .await
            }
            Grant::SoapLogin {
                username,
                password,
                security_token,
                api_version,
            } => {
                self.spend_budget()?;
                grant::soap_login::request(
                    ep,
                    username,
                    password,
                    security_token.as_ref(),
                    api_version,
                )
                .await
            }
        }
    }

    /// Turns a response into a record: expiry from introspection, else `sessionSecondsValid`,
    /// else the configured timeout; `refresh_at` with per-generation jitter.
    async fn record_from(
        &self,
        resp: TokenResponse,
        used: &Grant,
        previous: Option<&TokenRecord>,
    ) -> TokenRecord {
        let now = self.clock.now();
        let issued_at = resp.issued_at.unwrap_or(now);
        // A server `issued_at` far from our corrected clock (a bad clock, or seconds sent as
        // ms) must not stretch the lifetime: never trust it beyond now.
        let issued_at = if issued_at > now {
            now
        } else {
            issued_at.max(now.minus(Duration::from_secs(60)))
        };
        let mut expires_at = issued_at.plus(self.session_timeout);
        let mut source = ExpirySource::Configured;
        if let Some(secs) = resp.session_seconds_valid {
            expires_at = issued_at.plus(Duration::from_secs(secs));
            source = ExpirySource::SoapSessionSecondsValid;
        } else if self.introspect
            && let (Some(cid), Some(secret)) = (
                used.client_id(),
                used.client_secret().or(self.primary.client_secret()),
            )
            && let Ok(introspect::Introspection::Active { exp: Some(exp) }) =
                introspect::access_token(&self.endpoint, cid, secret, &resp.access_token).await
            && exp > now
        {
            expires_at = exp;
            source = ExpirySource::Introspection;
        }
        let refresh_token = match (resp.refresh_token, used.kind()) {
            (Some(rt), _) => Some(rt),
            // No rotation: the refresh token used stays valid.
            (None, GrantKind::RefreshToken) => previous
                .and_then(|p| p.refresh_token.clone())
                .or_else(|| match used {
                    Grant::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
                    _ => None,
                }),
            (None, _) => None,
        };
        TokenRecord {
            access_token: resp.access_token,
            refresh_token,
            instance_url: resp.instance_url,
            id_url: resp.id,
            scope: resp.scope,
            issued_at,
            expires_at,
            refresh_at: token::refresh_at(issued_at, expires_at, fastrand::f64()),
            expiry_source: source,
            generation: 0,
            grant: used.kind(),
            refused_refresh_token: self
                .refused_refresh_token
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .or_else(|| previous.and_then(|p| p.refused_refresh_token.clone())),
            server_offset_ms: self.clock.offset(),
        }
    }
}
