//! The intent record (`intent.rs`): a rotating refresh is declared before it is sent, and an
//! interrupted one is never presented again blindly.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Flaky, jwt_grant, rig};
use crate::diagnose::Cause;
use crate::diagnose::api_error::Api;
use crate::error::Error;
use crate::manager::{OnStoreUnavailable, Rotation};
use crate::store::{MemoryStore, Store};
use crate::sync::lock;
use crate::token::GrantKind;

fn lost_response() -> Error {
    Error::Transport {
        what: "POST /services/oauth2/token".into(),
        message: "connection reset by peer".into(),
        timeout: false,
        source: None,
    }
}

#[tokio::test]
async fn the_intent_is_in_the_store_while_the_rotating_refresh_is_in_flight() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store)).rotation(Rotation::On));
    *lock(&r.source.watch) = Some((Arc::clone(&store), r.manager.store_key().clone()));
    r.source.rotate.store(true, Ordering::Relaxed);
    let t = r.manager.token().await.unwrap();
    let seen = lock(&r.source.seen_in_flight).clone();
    let held = seen[0].as_ref().expect("the intent record");
    let intent = held.intent.as_ref().expect("an intent while in flight");
    assert_eq!(intent.refresh_token, crate::secret::fingerprint("rt-0"));
    // The outcome replaced it.
    let after = store.load(r.manager.store_key()).await.unwrap().unwrap();
    assert!(after.intent.is_none());
    assert_eq!(after.generation, t.generation());
    assert_eq!(
        (held.generation, after.generation),
        (1, 1),
        "the declaration fences (a generation above what was read); the outcome replaces it"
    );
}

#[tokio::test]
async fn a_lost_response_is_never_followed_by_the_same_refresh_token() {
    let r = rig(|b| b.rotation(Rotation::On));
    r.source.then(Err(lost_response()));
    assert!(matches!(
        r.manager.token().await,
        Err(Error::Transport { .. })
    ));
    // Past the backoff: the refresh token may have rotated at the org, so it is not sent;
    // introspection cannot tell (the default), so the cause says what happened.
    r.clock.advance(super::super::FAILURE_COOLDOWN);
    let e = r.manager.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshInterrupted), "{e}");
    assert!(e.to_string().contains("interrupted"), "{e}");
    r.clock.advance(super::super::FAILURE_COOLDOWN * 4);
    assert!(r.manager.force_refresh().await.is_err());
    assert_eq!(r.source.sent().len(), 1, "{:?}", r.source.sent());
}

#[tokio::test]
async fn an_interrupted_refresh_token_that_introspection_shows_live_is_sent() {
    let r = rig(|b| b.rotation(Rotation::On));
    r.source.then(Err(lost_response()));
    assert!(r.manager.token().await.is_err());
    *lock(&r.source.live) = Some(true);
    r.clock.advance(super::super::FAILURE_COOLDOWN);
    r.manager.token().await.unwrap();
    let presented: Vec<Option<String>> = r
        .source
        .sent()
        .into_iter()
        .map(|s| s.refresh_token)
        .collect();
    assert_eq!(presented, [Some("rt-0".into()), Some("rt-0".into())]);
}

#[tokio::test]
async fn an_interrupted_refresh_heals_through_the_fallback_grant() {
    let r = rig(|b| b.rotation(Rotation::On).fallback_grant(jwt_grant()));
    r.source.then(Err(lost_response()));
    assert!(r.manager.token().await.is_err());
    r.clock.advance(super::super::FAILURE_COOLDOWN);
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.record().grant, GrantKind::JwtBearer);
    // Later deaths go to the fallback too: the interrupted token is never presented.
    assert!(r.manager.invalidate_if_current(t.generation(), Api::Rest));
    r.manager.token().await.unwrap();
    let kinds: Vec<GrantKind> = r.source.sent().iter().map(|s| s.grant).collect();
    assert_eq!(
        kinds,
        [
            GrantKind::RefreshToken,
            GrantKind::JwtBearer,
            GrantKind::JwtBearer
        ]
    );
}

#[tokio::test]
async fn an_error_answer_withdraws_the_intent() {
    let r = rig(|b| b.rotation(Rotation::On));
    r.source.then(Err(Error::TokenEndpoint {
        cause: Cause::Transient,
        status: 503,
        detail: "unavailable".into(),
    }));
    assert!(r.manager.token().await.is_err());
    r.clock.advance(super::super::FAILURE_COOLDOWN);
    r.manager.token().await.unwrap();
    assert_eq!(
        r.source.sent().len(),
        2,
        "nothing rotated: the token is sent again"
    );
}

#[tokio::test]
async fn an_owner_that_lost_the_lock_before_sending_sends_nothing() {
    let store = Arc::new(LosesLocks(MemoryStore::new()));
    let r = rig({
        let store = Arc::clone(&store);
        move |b| b.store(store as Arc<dyn Store>).rotation(Rotation::On)
    });
    let e = r.manager.token().await.unwrap_err();
    assert!(e.to_string().contains("lost the refresh lock"), "{e}");
    assert!(r.source.sent().is_empty());
    // The declaration was withdrawn: nothing says a refresh is in flight.
    let held = store.0.load(r.manager.store_key()).await.unwrap();
    assert!(
        held.as_ref()
            .is_none_or(|h| h.intent.as_ref().is_none_or(|i| i.settled)),
        "{held:?}"
    );
}

/// A memory store whose refresh lock is always already lost when asked (a process that
/// stalled past the lock's expiry).
#[derive(Debug)]
struct LosesLocks(MemoryStore);

#[derive(Debug)]
struct LostLock;

impl crate::store::RefreshLock for LostLock {
    fn still_held(&self) -> futures_util::future::BoxFuture<'_, crate::error::Result<bool>> {
        Box::pin(async { Ok(false) })
    }
}

impl Store for LosesLocks {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn load<'a>(
        &'a self,
        key: &'a crate::store::StoreKey,
    ) -> futures_util::future::BoxFuture<'a, crate::error::Result<Option<crate::token::TokenRecord>>>
    {
        self.0.load(key)
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a crate::store::StoreKey,
        expected: Option<u64>,
        record: &'a crate::token::TokenRecord,
    ) -> futures_util::future::BoxFuture<'a, crate::error::Result<crate::store::CasOutcome>> {
        self.0.compare_and_set(key, expected, record)
    }
    fn lock<'a>(
        &'a self,
        _key: &'a crate::store::StoreKey,
        _wait: std::time::Duration,
    ) -> futures_util::future::BoxFuture<
        'a,
        crate::error::Result<Option<Box<dyn crate::store::RefreshLock>>>,
    > {
        Box::pin(async {
            Ok(Some(
                Box::new(LostLock) as Box<dyn crate::store::RefreshLock>
            ))
        })
    }
}

#[tokio::test]
async fn no_rotating_refresh_without_a_store_that_keeps_its_answer() {
    let store = Arc::new(Flaky::default());
    let r = rig({
        let store = Arc::clone(&store);
        move |b| {
            b.store(store as Arc<dyn Store>)
                .on_store_unavailable(OnStoreUnavailable::FailOpen)
        }
    });
    store.down.store(true, Ordering::SeqCst);
    let e = r.manager.token().await.unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e}");
    assert!(e.to_string().contains("not sent"), "{e}");
    assert!(r.source.sent().is_empty());
}

#[tokio::test]
async fn a_store_that_dies_during_the_refresh_gets_the_new_refresh_token_back() {
    let store = Arc::new(Flaky::default());
    let r = rig({
        let store = Arc::clone(&store);
        move |b| b.store(store as Arc<dyn Store>).rotation(Rotation::On)
    });
    r.source.rotate.store(true, Ordering::Relaxed);
    *lock(&r.source.crash_in_flight) = Some(Arc::clone(&store));
    // The declaration was stored, then the store died: the new token lives only here.
    let t = r.manager.token().await.unwrap();
    assert_eq!(
        t.record().refresh_token.as_ref().unwrap().expose_secret(),
        "rt-1"
    );
    let held = store
        .inner
        .load(r.manager.store_key())
        .await
        .unwrap()
        .unwrap();
    assert!(held.intent.is_some(), "the declaration stays: {held:?}");
    store.down.store(false, Ordering::SeqCst);
    // The recovery probe writes it back over this manager's own declaration.
    let mut back = None;
    for _ in 0..200 {
        r.clock.advance(std::time::Duration::from_secs(2));
        r.manager.token().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let held = store
            .inner
            .load(r.manager.store_key())
            .await
            .unwrap()
            .unwrap();
        if held.intent.is_none() {
            back = Some(held);
            break;
        }
    }
    let back = back.expect("written back within 200 probes");
    assert_eq!(back.fingerprint(), t.record().fingerprint());
    assert_eq!(
        back.refresh_token.unwrap().expose_secret(),
        "rt-1",
        "the only valid refresh token is in the store again"
    );
    assert_eq!(r.source.sent().len(), 1);
}

fn ledger_rig(store: Arc<dyn Store>, ledger: &std::path::Path) -> super::Rig {
    let ledger = ledger.to_path_buf();
    rig(move |b| b.store(store).spent_ledger(ledger))
}

#[tokio::test]
async fn after_a_store_loss_the_spent_configured_refresh_token_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("spent.json");
    let a = ledger_rig(Arc::new(MemoryStore::new()), &ledger);
    a.source.rotate.store(true, Ordering::Relaxed);
    a.manager.token().await.unwrap();
    // A new process, and the store lost its record (FLUSHALL, a deleted file).
    let b = ledger_rig(Arc::new(MemoryStore::new()), &ledger);
    let e = b.manager.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(
        e.to_string()
            .contains("lost the rotated refresh token of generation 1"),
        "{e}"
    );
    assert!(b.source.sent().is_empty());
    assert!(!std::fs::read_to_string(&ledger).unwrap().contains("rt-0"));
    // Introspection showing the configured token live lets it through.
    let c = ledger_rig(Arc::new(MemoryStore::new()), &ledger);
    *lock(&c.source.live) = Some(true);
    c.manager.token().await.unwrap();
    assert_eq!(c.source.sent().len(), 1);
}

#[tokio::test]
async fn a_corrupt_ledger_is_the_safe_branch() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("spent.json");
    std::fs::write(&ledger, b"garbage").unwrap();
    let r = ledger_rig(Arc::new(MemoryStore::new()), &ledger);
    let e = r.manager.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("ledger cannot be read"), "{e}");
    assert!(r.source.sent().is_empty());
}

#[tokio::test]
async fn a_logout_tombstone_means_reauthorize_not_the_configured_token() {
    let r = rig(|b| b.rotation(Rotation::On));
    r.source.rotate.store(true, Ordering::Relaxed);
    r.manager.token().await.unwrap();
    r.manager.forget().await.unwrap();
    let e = r.manager.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("logged out"), "{e}");
    assert_eq!(r.source.sent().len(), 1);
    // Where introspection shows the configured token live (no rotation happened), it is used.
    *lock(&r.source.live) = Some(true);
    r.manager.force_refresh().await.unwrap();
    assert_eq!(r.source.sent().len(), 2);
}

/// A manager that starts while another member's rotating refresh is in flight adopts the
/// declaration (its access token may still serve) at the generation of that token, one below
/// the declaration's. The owner's outcome lands at the declaration's generation, so after the
/// old token's 401 it is newer and adopted: no second token request for one death.
#[tokio::test]
async fn a_manager_started_during_a_refresh_adopts_the_outcome_after_the_old_tokens_401() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let owner = rig(|b| b.store(Arc::clone(&store)).rotation(Rotation::On));
    owner.manager.token().await.unwrap();
    let key = owner.manager.store_key().clone();
    let first = store.load(&key).await.unwrap().unwrap();
    // The owner's declaration: the same tokens, one generation up, with its intent.
    let mut declaration = first.clone();
    declaration.generation = first.generation + 1;
    declaration.intent = Some(Box::new(crate::token::RefreshIntent {
        refresh_token: crate::secret::fingerprint("rt-0"),
        owner: "another-process".into(),
        since: super::T0,
        settled: false,
    }));
    let written = store
        .compare_and_set(&key, Some(first.generation), &declaration)
        .await
        .unwrap();
    assert!(matches!(written, crate::store::CasOutcome::Written));

    let late = rig(|b| b.store(Arc::clone(&store)).rotation(Rotation::On));
    let t = late.manager.token().await.unwrap();
    assert_eq!(
        t.generation(),
        first.generation,
        "held at the generation of the token it carries"
    );

    // The owner's outcome replaces its declaration at the same generation.
    let mut outcome = declaration.clone();
    outcome.intent = None;
    outcome.access_token = crate::secret::AccessToken::new("00D!access-outcome".to_owned());
    let written = store
        .compare_and_set(&key, Some(declaration.generation), &outcome)
        .await
        .unwrap();
    assert!(matches!(written, crate::store::CasOutcome::Written));

    assert!(
        late.manager
            .invalidate_if_current(t.generation(), Api::Rest)
    );
    let healed = late.manager.token().await.unwrap();
    assert_eq!(healed.generation(), outcome.generation);
    assert_eq!(
        healed.record().access_token.expose_secret(),
        "00D!access-outcome"
    );
    assert!(
        late.source.sent().is_empty(),
        "the late manager sent nothing of its own: {:?}",
        late.source.sent()
    );
}

/// The org could not be reached at all (connection refused): nothing was sent, so nothing
/// rotated. The intent is settled and the next refresh sends the same refresh token, instead
/// of calling it interrupted.
#[tokio::test]
async fn a_refused_connection_is_no_interrupted_refresh() {
    // A real refused connection (port 1 on loopback), as reqwest reports it.
    let refused = reqwest::Client::new()
        .post("http://127.0.0.1:1/services/oauth2/token")
        .send()
        .await
        .unwrap_err();
    let refused = Error::transport("token request", refused);
    assert!(refused.never_reached_server(), "{refused}");
    assert!(!lost_response().never_reached_server());

    let r = rig(|b| b.rotation(Rotation::On));
    r.source.then(Err(refused));
    assert!(r.manager.token().await.is_err());
    r.clock.advance(super::super::FAILURE_COOLDOWN);
    r.manager.token().await.unwrap();
    let presented: Vec<Option<String>> = r
        .source
        .sent()
        .into_iter()
        .map(|s| s.refresh_token)
        .collect();
    assert_eq!(presented, [Some("rt-0".into()), Some("rt-0".into())]);
}
