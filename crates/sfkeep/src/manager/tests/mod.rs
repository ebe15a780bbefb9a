//! In-process tests of the manager's decision tables: a scripted [`TokenSource`], a manual
//! clock, a memory store (or one that fails on demand), no HTTP. The HTTP behaviour against
//! the simulated org is tested in `tests/manager`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{OnStoreUnavailable, TokenManager, TokenSource, TokenStatus};
use crate::clock::{ManualClock, UnixMillis};
use crate::diagnose::Cause;
use crate::diagnose::api_error::Api;
use crate::error::{Error, Result};
use crate::event::MemorySink;
use crate::grant::{Grant, TokenResponse};
use crate::secret::{AccessToken, ClientSecret, PrivateKeyPem, RefreshToken};
use crate::store::{CasOutcome, MemoryStore, RefreshLock, Store, StoreKey};
use crate::sync::lock;
use crate::token::{ExpirySource, GrantKind, TokenRecord};

mod identity;
mod intent;
mod tables;

const T0: UnixMillis = UnixMillis(1_800_000_000_000);

/// One request the scripted source received: the grant and the refresh token it presented.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    grant: GrantKind,
    refresh_token: Option<String>,
}

/// Answers token requests from a script (default: a fresh token, rotating the refresh token
/// when `rotate` is on) and records what was sent.
#[derive(Debug, Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<TokenResponse>>>,
    sent: Mutex<Vec<Sent>>,
    rotate: AtomicBool,
    issued: Mutex<u32>,
    /// What refresh-token introspection answers (`None`: cannot tell).
    live: Mutex<Option<bool>>,
    /// A store to look at while a request is in flight, and what it held then.
    watch: Mutex<Option<(Arc<dyn Store>, StoreKey)>>,
    seen_in_flight: Mutex<Vec<Option<TokenRecord>>>,
    /// A store that goes down while a request is in flight (a Redis crash during a refresh).
    crash_in_flight: Mutex<Option<Arc<Flaky>>>,
}

impl Scripted {
    fn then(&self, answer: Result<TokenResponse>) -> &Self {
        lock(&self.answers).push_back(answer);
        self
    }
    fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }
    fn response(&self) -> TokenResponse {
        let n = {
            let mut n = lock(&self.issued);
            *n += 1;
            *n
        };
        TokenResponse {
            access_token: AccessToken::new(format!("00D!access-{n}")),
            refresh_token: self
                .rotate
                .load(Ordering::Relaxed)
                .then(|| RefreshToken::new(format!("rt-{n}"))),
            instance_url: "https://example.my.salesforce.com".into(),
            id: None,
            issued_at: None,
            scope: None,
            session_seconds_valid: None,
        }
    }
}

impl TokenSource for Scripted {
    fn request<'a>(
        &'a self,
        grant: &'a Grant,
        refresh_token: Option<&'a RefreshToken>,
    ) -> BoxFuture<'a, Result<TokenResponse>> {
        lock(&self.sent).push(Sent {
            grant: grant.kind(),
            refresh_token: refresh_token.map(|r| r.expose_secret().to_owned()),
        });
        let scripted = lock(&self.answers).pop_front();
        let answer = scripted.unwrap_or_else(|| Ok(self.response()));
        let watch = lock(&self.watch).clone();
        if let Some(store) = lock(&self.crash_in_flight).take() {
            store.down.store(true, Ordering::SeqCst);
        }
        async move {
            if let Some((store, key)) = watch {
                let held = store.load(&key).await.unwrap();
                lock(&self.seen_in_flight).push(held);
            }
            answer
        }
        .boxed()
    }

    fn access_token_expiry<'a>(
        &'a self,
        _client_id: &'a str,
        _client_secret: &'a ClientSecret,
        _access_token: &'a AccessToken,
    ) -> BoxFuture<'a, Option<UnixMillis>> {
        async { None }.boxed()
    }

    fn refresh_token_active<'a>(
        &'a self,
        _client_id: &'a str,
        _client_secret: &'a ClientSecret,
        _refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Option<bool>> {
        let live = *lock(&self.live);
        async move { live }.boxed()
    }
}

fn transient() -> Error {
    Error::TokenEndpoint {
        cause: Cause::Transient,
        status: 503,
        detail: "server unavailable".into(),
    }
}

fn revoked() -> Error {
    Error::ReauthRequired {
        cause: Cause::RefreshTokenRevoked,
        detail: "invalid_grant: expired access/refresh token".into(),
    }
}

fn refresh_grant() -> Grant {
    Grant::refresh_token(
        "3MVG9client",
        Some(ClientSecret::new("s3cret")),
        RefreshToken::new("rt-0"),
    )
}

fn jwt_grant() -> Grant {
    Grant::jwt_bearer(
        "3MVG9client",
        "user@example.com",
        PrivateKeyPem::new("unused by the script"),
    )
}

struct Rig {
    manager: TokenManager,
    source: Arc<Scripted>,
    clock: ManualClock,
    events: Arc<MemorySink>,
}

fn rig(configure: impl FnOnce(super::TokenManagerBuilder) -> super::TokenManagerBuilder) -> Rig {
    let source = Arc::new(Scripted::default());
    let clock = ManualClock::new(T0);
    let events = Arc::new(MemorySink::new());
    let b = TokenManager::builder("https://login.salesforce.com")
        .grant(refresh_grant())
        .clock(Arc::new(clock.clone()))
        .token_source(Arc::clone(&source) as Arc<dyn TokenSource>)
        .event_sink(Arc::clone(&events) as _)
        .without_tracing_sink();
    let manager = configure(b).build().unwrap();
    Rig {
        manager,
        source,
        clock,
        events,
    }
}

fn count(events: &MemorySink, name: &str) -> usize {
    events
        .events()
        .iter()
        .filter(|e| e.kind.name() == name)
        .count()
}

#[tokio::test]
async fn the_cooldown_grows_with_transient_failures_and_a_success_resets_it() {
    let r = rig(|b| b);
    r.source.then(Err(transient())).then(Err(transient()));
    assert!(matches!(
        r.manager.token().await,
        Err(Error::TokenEndpoint { .. })
    ));
    // During the first gap (1 s): the error at once, no request.
    match r.manager.token().await {
        Err(Error::CoolingDown { remaining, .. }) => assert_eq!(remaining, Duration::from_secs(1)),
        other => panic!("expected CoolingDown, got {other:?}"),
    }
    assert_eq!(r.source.sent().len(), 1);
    r.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        r.manager.token().await,
        Err(Error::TokenEndpoint { .. })
    ));
    assert_eq!(r.source.sent().len(), 2);
    // The second gap is 2 s.
    r.clock.advance(Duration::from_millis(1999));
    assert!(matches!(
        r.manager.token().await,
        Err(Error::CoolingDown { .. })
    ));
    assert_eq!(r.source.sent().len(), 2);
    r.clock.advance(Duration::from_millis(1));
    let t = r.manager.token().await.unwrap();
    assert_eq!(r.source.sent().len(), 3);
    assert_eq!(r.manager.status().last_failure, None);
    // Reset: after the success, a failure starts again at the first gap.
    r.source.then(Err(transient()));
    assert!(r.manager.invalidate_if_current(t.generation(), Api::Rest));
    assert!(matches!(
        r.manager.token().await,
        Err(Error::TokenEndpoint { .. })
    ));
    r.clock.advance(Duration::from_secs(1));
    r.manager.token().await.unwrap();
    assert_eq!(r.source.sent().len(), 5);
}

#[tokio::test]
async fn a_dead_credential_waits_the_full_cooldown_and_status_says_reauth_required() {
    let r = rig(|b| b);
    r.source.then(Err(revoked()));
    assert!(r.manager.token().await.unwrap_err().is_reauth_required());
    assert_eq!(r.manager.status().state, TokenStatus::ReauthRequired);
    r.clock
        .advance(super::FAILURE_COOLDOWN - Duration::from_millis(1));
    assert!(r.manager.token().await.unwrap_err().is_reauth_required());
    assert_eq!(r.source.sent().len(), 1);
}

/// Another process re-authorizes (a `login`, a `recover`) while this manager cools down after
/// a dead credential: within a second its next call adopts the stored token, with no token
/// request of its own, and its status stops saying re-authorization is required.
#[tokio::test]
async fn a_token_stored_by_another_process_ends_the_reauth_cooldown() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store)));
    r.source.then(Err(revoked()));
    assert!(r.manager.token().await.unwrap_err().is_reauth_required());
    assert_eq!(r.manager.status().state, TokenStatus::ReauthRequired);

    // The other process (its own source and manager, the same store and key).
    let other = rig(|b| b.store(Arc::clone(&store)));
    other.clock.advance(Duration::from_secs(5));
    let stored = other.manager.token().await.unwrap();

    // Within the same second as the failure: the store is not read again yet.
    assert!(r.manager.token().await.unwrap_err().is_reauth_required());
    r.clock.advance(super::COOLDOWN_STORE_READ);
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.generation(), stored.generation());
    assert_eq!(t.record().fingerprint(), stored.record().fingerprint());
    assert_eq!(
        r.source.sent().len(),
        1,
        "only the failed request of its own"
    );
    let status = r.manager.status();
    assert_eq!(status.state, TokenStatus::Fresh);
    assert_eq!(status.last_failure, None);
}

#[tokio::test]
async fn the_login_budget_is_a_rolling_hour_of_token_requests() {
    let r = rig(|b| b.login_budget_per_hour(2));
    r.manager.token().await.unwrap();
    r.clock.advance(Duration::from_secs(600));
    r.manager.force_refresh().await.unwrap();
    r.clock.advance(Duration::from_secs(600));
    match r.manager.force_refresh().await {
        Err(Error::LoginBudgetExhausted {
            budget,
            retry_after,
        }) => {
            assert_eq!(budget, 2);
            assert_eq!(retry_after, Duration::from_secs(2400));
        }
        other => panic!("expected LoginBudgetExhausted, got {other:?}"),
    }
    assert_eq!(r.source.sent().len(), 2, "the held request was never sent");
    assert_eq!(count(&r.events, "login_budget.held"), 1);
    // An hour after the first request, one is free again.
    r.clock.advance(Duration::from_secs(2400));
    r.manager.force_refresh().await.unwrap();
    assert_eq!(r.source.sent().len(), 3);
}

#[tokio::test]
async fn a_refused_refresh_token_is_never_sent_again() {
    let r = rig(|b| b);
    r.source.then(Err(revoked()));
    assert!(r.manager.token().await.unwrap_err().is_reauth_required());
    // `recover` clears the cooldown; the refused token still stays unsent.
    let e = r.manager.force_refresh().await.unwrap_err();
    assert!(e.is_reauth_required());
    assert_eq!(e.cause(), Some(Cause::RefreshTokenRevoked));
    r.clock.advance(super::FAILURE_COOLDOWN * 3);
    assert!(r.manager.token().await.unwrap_err().is_reauth_required());
    assert_eq!(r.source.sent().len(), 1, "{:?}", r.source.sent());
}

#[tokio::test]
async fn with_a_fallback_a_refused_refresh_token_goes_straight_to_the_fallback() {
    let r = rig(|b| b.fallback_grant(jwt_grant()));
    r.source.then(Err(revoked()));
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.record().grant, GrantKind::JwtBearer);
    assert_eq!(count(&r.events, "fallback.used"), 1);
    assert!(r.manager.invalidate_if_current(t.generation(), Api::Rest));
    r.manager.token().await.unwrap();
    let kinds: Vec<GrantKind> = r.source.sent().iter().map(|s| s.grant).collect();
    assert_eq!(
        kinds,
        [
            GrantKind::RefreshToken,
            GrantKind::JwtBearer,
            GrantKind::JwtBearer
        ],
        "the refused refresh token was sent once only"
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_is_the_one_presented_next() {
    let r = rig(|b| b);
    r.source.rotate.store(true, Ordering::Relaxed);
    let t = r.manager.token().await.unwrap();
    assert!(r.manager.invalidate_if_current(t.generation(), Api::Soap));
    r.manager.token().await.unwrap();
    let presented: Vec<Option<String>> = r
        .source
        .sent()
        .into_iter()
        .map(|s| s.refresh_token)
        .collect();
    assert_eq!(presented, [Some("rt-0".into()), Some("rt-1".into())]);
}

#[tokio::test]
async fn callers_during_a_refresh_share_one_token_request() {
    let r = rig(|b| b);
    let calls: Vec<_> = (0..16).map(|_| r.manager.clone()).collect();
    let tokens = futures_util::future::join_all(calls.iter().map(|m| m.token())).await;
    assert!(tokens.iter().all(|t| t.as_ref().unwrap().generation() == 1));
    assert_eq!(r.source.sent().len(), 1);
}

pub(super) fn record(generation: u64, access: &str) -> TokenRecord {
    TokenRecord {
        access_token: AccessToken::new(access),
        refresh_token: None,
        instance_url: "https://example.my.salesforce.com".into(),
        id_url: None,
        scope: None,
        issued_at: T0,
        expires_at: T0.plus(Duration::from_secs(7200)),
        refresh_at: T0.plus(Duration::from_secs(6300)),
        expiry_source: ExpirySource::Configured,
        generation,
        grant: GrantKind::RefreshToken,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    }
}

// ---- Write-back through the manager: a store that fails on demand ----

/// A memory store that fails every operation while `down` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Store {
                store: "memory",
                message: "down for the test".into(),
            });
        }
        Ok(())
    }
}

impl Store for Flaky {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<TokenRecord>>> {
        async move {
            self.check()?;
            self.inner.load(key).await
        }
        .boxed()
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: Option<u64>,
        record: &'a TokenRecord,
    ) -> BoxFuture<'a, Result<CasOutcome>> {
        async move {
            self.check()?;
            self.inner.compare_and_set(key, expected, record).await
        }
        .boxed()
    }
    fn lock<'a>(
        &'a self,
        key: &'a StoreKey,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLock>>>> {
        async move {
            self.check()?;
            self.inner.lock(key, wait).await
        }
        .boxed()
    }
}

fn jwt_rig(store: Arc<Flaky>) -> Rig {
    rig(move |b| {
        b.grant(jwt_grant())
            .store(store as Arc<dyn Store>)
            .on_store_unavailable(OnStoreUnavailable::FailOpen)
    })
}

#[tokio::test]
async fn a_token_obtained_during_an_outage_is_written_back_over_an_empty_store() {
    let store = Arc::new(Flaky::default());
    let r = jwt_rig(Arc::clone(&store));
    store.down.store(true, Ordering::SeqCst);
    let t = r.manager.token().await.unwrap();
    assert_eq!(count(&r.events, "store.unavailable"), 1);
    store.down.store(false, Ordering::SeqCst);
    // The fast path's recovery probe reads the store and writes ours back.
    probe_until(&r, || count(&r.events, "token.written_back") == 1).await;
    assert_eq!(count(&r.events, "store.recovered"), 1);
    let key = r.manager.store_key().clone();
    let stored = store.inner.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.fingerprint(), t.record().fingerprint());
}

/// Calls the fast path (which starts the store probe while the store is marked down) until
/// `done`, polling with a deadline.
async fn probe_until(r: &Rig, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "the probe never got there"
        );
        let _ = r.manager.cached_token();
        r.clock.advance(super::STORE_PROBE_INTERVAL);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_token_obtained_during_an_outage_is_not_written_over_a_logout() {
    let store = Arc::new(Flaky::default());
    let r = jwt_rig(Arc::clone(&store));
    store.down.store(true, Ordering::SeqCst);
    let t = r.manager.token().await.unwrap();
    store.down.store(false, Ordering::SeqCst);
    let key = r.manager.store_key().clone();
    crate::store::forget(&*store, &key, 0, GrantKind::JwtBearer, T0)
        .await
        .unwrap();
    r.manager.invalidate_if_current(t.generation(), Api::Rest);
    r.manager.token().await.unwrap();
    assert_eq!(count(&r.events, "token.written_back"), 0);
}

#[tokio::test]
async fn a_token_obtained_during_an_outage_yields_to_a_higher_generation_and_adopts_it() {
    let store = Arc::new(Flaky::default());
    let r = jwt_rig(Arc::clone(&store));
    store.down.store(true, Ordering::SeqCst);
    r.manager.token().await.unwrap();
    store.down.store(false, Ordering::SeqCst);
    let key = r.manager.store_key().clone();
    let theirs = record(7, "theirs");
    store
        .inner
        .compare_and_set(&key, None, &theirs)
        .await
        .unwrap();
    // The recovery probe (started by the fast path) sees it: discarded ours, adopted theirs.
    probe_until(&r, || r.manager.status().generation == Some(7)).await;
    assert_eq!(count(&r.events, "token.written_back"), 0);
    assert_eq!(count(&r.events, "refresh.discarded"), 1);
    assert_eq!(r.source.sent().len(), 1);
}
