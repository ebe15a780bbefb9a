//! Rotation safety when a refresh is interrupted (issue #21; docs/rotation-safety.md): the org
//! commits a rotating refresh whose sender then crashes, stalls past its lock, or never gets
//! the answer. In every case the rotated-out refresh token is never presented again
//! (`refresh_token_reuse_detected` = 0 on the org's `/_fake/stats`), and the fleet either heals
//! (the owner's outcome, or a JWT fallback) or says `refresh_interrupted`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sfkeep::TokenManager;
use sfkeep::diagnose::Cause;
use sfkeep::event::MemorySink;
use sfkeep::manager::Rotation;
use sfkeep::store::{CacheKey, RedisStore, Store};

use super::fleet::{Fleet, FleetGrant, RedisServer, SERIAL, WorkerSpec};
use super::support::{Org, Outcome, call};
use super::{
    assert_all_ok, hold_next_token_answer, invalid_session_responses, poll_until,
    release_held_answer, start_org, until_more_401s, until_token_answer_held,
};

/// A fleet of `n` rotating-refresh workers whose worker 0 holds the refresh lock after a
/// session death, with its refresh committed at the org and the answer held back for
/// `answer_after` (the org's `after_commit` fault).
struct Committed {
    org: Org,
    fleet: Fleet,
    /// Refresh-token requests before worker 0's.
    before: u64,
}

async fn refresh_committed_answer_held(
    redis: &RedisServer,
    n: usize,
    lock_ttl: Duration,
    answer_after: Duration,
    jwt_fallback: bool,
) -> Committed {
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let mut spec = WorkerSpec::new(FleetGrant::Refresh, redis);
    spec.lock_ttl = lock_ttl;
    spec.jwt_fallback = jwt_fallback;
    let mut fleet = Fleet::spawn(n, &org, &spec).await;
    let r = fleet.all("calls 5").await;
    assert_all_ok(&r, 5);
    let before = org.token_requests("refresh_token").await;
    assert_eq!(before, 1);
    org.post(
        "/faults",
        json!({
            "path_prefix": "/services/oauth2/token",
            "after_commit": true,
            "latency_ms": answer_after.as_millis() as u64,
            "count": 1
        }),
    )
    .await;
    org.logout().await;
    fleet.workers[0].send("calls 1").await;
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        "worker 0's refresh committed at the org, its answer held back",
        || async {
            let s = org.stats().await;
            s["token_requests"]["refresh_token"] == before + 1 && s["requests_in_flight"] == 0
        },
    )
    .await;
    Committed { org, fleet, before }
}

/// The holder is SIGKILLed after the org committed its rotation: the new refresh token is
/// gone with it. Nobody presents the old one; without a fallback every member says
/// `refresh_interrupted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_commit_no_reuse_and_the_members_say_refresh_interrupted() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Committed {
        org,
        mut fleet,
        before,
    } = refresh_committed_answer_held(
        &redis,
        3,
        Duration::from_millis(1000),
        Duration::from_secs(60),
        false,
    )
    .await;
    fleet.workers[0].kill().await;
    for w in &mut fleet.workers[1..] {
        w.send("calls 5").await;
    }
    for w in &mut fleet.workers[1..] {
        let r = w.recv().await;
        assert_eq!(r.n("ok"), 0, "{r:?}");
        assert_eq!(r.n("interrupted"), 5, "the precise cause: {r:?}");
    }
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(
        stats["token_requests"]["refresh_token"],
        before + 1,
        "only the killed holder's refresh: {stats}"
    );
    fleet.workers.remove(0);
    fleet.quit().await;
}

/// The same crash with a JWT bearer fallback: the fleet heals by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_commit_with_a_jwt_fallback_the_fleet_heals() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Committed {
        org,
        mut fleet,
        before,
    } = refresh_committed_answer_held(
        &redis,
        3,
        Duration::from_millis(1000),
        Duration::from_secs(60),
        true,
    )
    .await;
    fleet.workers[0].kill().await;
    for w in &mut fleet.workers[1..] {
        w.send("calls 10").await;
    }
    let mut r = Vec::new();
    for w in &mut fleet.workers[1..] {
        r.push(w.recv().await);
    }
    assert_all_ok(&r, 10);
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(
        stats["token_requests"]["refresh_token"],
        before + 1,
        "{stats}"
    );
    assert!(
        stats["token_requests"]["jwt_bearer"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    fleet.workers.remove(0);
    fleet.quit().await;
}

/// Eight members; the holder is SIGSTOPped after the org committed its rotation, for three
/// lock TTLs, while the others keep calling; then SIGCONTed. Nobody presents the rotated-out
/// token meanwhile: without a fallback the others say `refresh_interrupted`; with a JWT
/// fallback they keep serving. Once the holder resumes it stores its answer through the
/// compare-and-set and the whole fleet works.
async fn stall_past_the_lock_ttl(jwt_fallback: bool) {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let lock_ttl = Duration::from_millis(1000);
    let stall = lock_ttl * 3;
    // The answer is held back longer than the stall, so the holder is stopped before it.
    let Committed {
        org,
        mut fleet,
        before,
    } = refresh_committed_answer_held(&redis, 8, lock_ttl, stall + lock_ttl * 2, jwt_fallback)
        .await;
    fleet.workers[0].signal("STOP");
    let stopped = Instant::now();
    for w in &mut fleet.workers[1..] {
        w.send("calls 5").await;
    }
    for w in &mut fleet.workers[1..] {
        let r = w.recv().await;
        if jwt_fallback {
            assert_eq!(r.n("ok"), 5, "the others keep serving: {r:?}");
        } else {
            assert_eq!(r.n("ok"), 0, "{r:?}");
            assert_eq!(r.n("interrupted"), 5, "the precise cause: {r:?}");
        }
    }
    // Nobody sent the rotated-out token while the holder was stopped.
    let during = org.stats().await;
    assert_eq!(during["refresh_token_reuse_detected"], 0, "{during}");
    assert_eq!(
        during["token_requests"]["refresh_token"],
        before + 1,
        "{during}"
    );
    // The stall itself lasts three lock TTLs (the others acted meanwhile: they answered).
    if let Some(rest) = stall.checked_sub(stopped.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    fleet.workers[0].signal("CONT");
    let r = fleet.workers[0].recv().await;
    assert_eq!(r.n("ok"), 1, "the holder stores and uses its answer: {r:?}");
    for (i, w) in fleet.workers.iter_mut().enumerate() {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = w.ask("calls 1").await;
            if r.n("ok") == 1 {
                break;
            }
            assert!(
                Instant::now() < until,
                "worker {i} never works again: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(
        stats["token_requests"]["refresh_token"],
        before + 1,
        "the fleet runs on the holder's answer: {stats}"
    );
    eprintln!("stall (jwt fallback: {jwt_fallback}): {stats}");
    fleet.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_past_the_lock_ttl_no_reuse_the_others_say_refresh_interrupted() {
    stall_past_the_lock_ttl(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_past_the_lock_ttl_with_a_jwt_fallback_the_others_keep_serving() {
    stall_past_the_lock_ttl(true).await;
}

/// One process: the org commits the rotation and the answer is lost (connection reset). The
/// refresh is not retried with the same refresh token; introspection says it is no longer
/// live, and the error says `refresh_interrupted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_response_in_one_process_no_reuse_and_the_cause_is_refresh_interrupted() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let key = CacheKey::generate();
    let store = RedisStore::new(&redis.url(), key).unwrap();
    let a = TokenManager::builder(org.info().login_url.clone())
        .grant(org.refresh_grant())
        .store(Arc::new(store.clone()))
        .rotation(Rotation::Auto)
        .introspect(true)
        .event_sink(Arc::new(MemorySink::new()))
        .build()
        .unwrap();
    org.post(
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "after_commit": true, "reset": true, "count": 1}),
    )
    .await;
    let first = a.token().await.unwrap_err();
    assert!(first.is_retryable(), "a lost answer is transient: {first}");
    let held = store.load(a.store_key()).await.unwrap().unwrap();
    assert!(
        held.intent.as_ref().is_some_and(|i| !i.settled),
        "the refresh stays declared: its outcome is unknown"
    );
    // However often it is asked, the same refresh token is never presented again (a forced
    // refresh skips the transient backoff; a plain token() after it is not held back either).
    for _ in 0..3 {
        let e = a.force_refresh().await.unwrap_err();
        assert_eq!(e.cause(), Some(Cause::RefreshInterrupted), "{e}");
        assert!(e.to_string().contains("interrupted"), "{e}");
    }
    let e = a.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshInterrupted), "{e}");
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
}

/// A process that starts while another's rotating refresh is in flight finds its declaration
/// in Redis: the old access token, one generation up. It serves that token, meets its 401,
/// and then adopts the owner's outcome instead of refreshing again: one token request for
/// one death, however the processes' start-up and the refresh interleave. (The org holds the
/// owner's committed answer until the test has seen the late process's 401.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_during_a_refresh_adopts_its_outcome_after_the_old_tokens_401() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let spec = WorkerSpec::new(FleetGrant::Refresh, &redis);
    let mut owner = Fleet::spawn(1, &org, &spec).await;
    assert_all_ok(&owner.all("calls 5").await, 5);
    let before = org.token_requests("refresh_token").await;
    hold_next_token_answer(&org).await;
    org.logout().await;
    owner.workers[0].send("calls 1").await;
    until_token_answer_held(
        &org,
        "the owner's refresh committed at the org, its answer held",
    )
    .await;
    let dead_answers = invalid_session_responses(&org).await;

    let mut late = Fleet::spawn(1, &org, &spec).await;
    late.workers[0].send("calls 1").await;
    until_more_401s(
        &org,
        dead_answers,
        "the late process served the declaration's old token and met its 401",
    )
    .await;
    release_held_answer(&org).await;

    let owner_reply = owner.workers[0].recv().await;
    let late_reply = late.workers[0].recv().await;
    assert_eq!(owner_reply.n("ok"), 1, "{owner_reply:?}");
    assert_eq!(late_reply.n("ok"), 1, "{late_reply:?}");
    assert_eq!(late_reply.n("healed"), 1, "{late_reply:?}");
    let stats = org.stats().await;
    assert_eq!(
        stats["token_requests"]["refresh_token"],
        before + 1,
        "the owner's refresh served both: {stats}"
    );
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    owner.quit().await;
    late.quit().await;
}

/// A Redis URL whose user may do anything but `SET`, so it never gets the refresh lock (as a
/// timed-out lock operation on a loaded machine leaves a member), while it reads and writes
/// records with the compare-and-set script.
fn without_lock(redis: &RedisServer) -> String {
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("nolock")
        .arg("on")
        .arg(">nolock-pw")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-set")
        .query(&mut redis.conn())
        .unwrap();
    format!("redis://nolock:nolock-pw@127.0.0.1:{}/", redis.port)
}

/// A member that cannot take the refresh lock (here Redis refuses it its `SET` by ACL, as a
/// timed-out lock operation on a loaded machine does) finds another member's declared refresh
/// in flight. It sends nothing and does not fail its callers either: it reads the store until
/// the owner's outcome lands, then adopts it. One token request for the death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_the_lock_waits_for_the_owners_outcome_instead_of_failing() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let key = CacheKey::generate();
    let manager = |url: String| {
        TokenManager::builder(org.info().login_url.clone())
            .grant(org.refresh_grant())
            .store(Arc::new(RedisStore::new(&url, key.clone()).unwrap()))
            .rotation(Rotation::Auto)
            .introspect(false)
            .event_sink(Arc::new(MemorySink::new()))
            .build()
            .unwrap()
    };
    let owner = manager(redis.url());
    let member = manager(without_lock(&redis));
    let http = reqwest::Client::new();
    assert_eq!(call(&http, &owner).await, Ok(Outcome::Ok));
    assert_eq!(call(&http, &member).await, Ok(Outcome::Ok));
    assert_eq!(org.token_requests("refresh_token").await, 1);

    hold_next_token_answer(&org).await;
    org.logout().await;
    let owner_call = {
        let (http, owner) = (http.clone(), owner.clone());
        tokio::spawn(async move { call(&http, &owner).await })
    };
    until_token_answer_held(
        &org,
        "the owner's refresh committed at the org, its answer held",
    )
    .await;
    let dead = invalid_session_responses(&org).await;
    let member_call = {
        let (http, member) = (http.clone(), member.clone());
        tokio::spawn(async move { call(&http, &member).await })
    };
    until_more_401s(
        &org,
        dead,
        "the member met its 401 and is refreshing without the lock",
    )
    .await;
    release_held_answer(&org).await;
    assert_eq!(owner_call.await.unwrap(), Ok(Outcome::Healed));
    assert_eq!(member_call.await.unwrap(), Ok(Outcome::Healed));
    let stats = org.stats().await;
    assert_eq!(
        stats["token_requests"]["refresh_token"], 2,
        "the owner's refresh served both: {stats}"
    );
}

/// A [`RedisStore`] whose first compare-and-set of a declaration (a record carrying an intent)
/// says it arrived and then waits for a release: the window between a member reading the
/// store and its declaration reaching it, held open on purpose.
#[derive(Debug)]
struct DeclarationGate {
    inner: RedisStore,
    armed: std::sync::atomic::AtomicBool,
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
    release: Arc<tokio::sync::Semaphore>,
}

type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = sfkeep::Result<T>> + Send + 'a>>;

impl Store for DeclarationGate {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn load<'a>(
        &'a self,
        key: &'a sfkeep::store::StoreKey,
    ) -> StoreFuture<'a, Option<sfkeep::token::TokenRecord>> {
        self.inner.load(key)
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a sfkeep::store::StoreKey,
        expected: Option<u64>,
        record: &'a sfkeep::token::TokenRecord,
    ) -> StoreFuture<'a, sfkeep::store::CasOutcome> {
        Box::pin(async move {
            let declaration = record.intent.is_some();
            if declaration && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let _ = self.arrived.send(());
                let _permit = self.release.acquire().await;
            }
            self.inner.compare_and_set(key, expected, record).await
        })
    }
    fn lock<'a>(
        &'a self,
        key: &'a sfkeep::store::StoreKey,
        wait: Duration,
    ) -> StoreFuture<'a, Option<Box<dyn sfkeep::store::RefreshLock>>> {
        self.inner.lock(key, wait)
    }
    fn unreadable_generation(&self, key: &sfkeep::store::StoreKey) -> Option<u64> {
        self.inner.unreadable_generation(key)
    }
    fn take_warnings(&self) -> Vec<sfkeep::store::StoreWarning> {
        self.inner.take_warnings()
    }
}

/// The lost declaration, deterministically: the lock holder has read the store and is about
/// to declare its rotating refresh (its declaration held at the gate), when a member that gave
/// up waiting for the lock finds no declaration, declares, wins, and sends its refresh. Released, the
/// holder's compare-and-set meets the winner's record: it sends nothing, waits for the
/// winner's outcome and adopts it. One token request for the death, no reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_that_loses_its_compare_and_set_sends_nothing_and_adopts_the_winner() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let key = CacheKey::generate();
    let manager = |store: Arc<dyn Store>, lock_wait: Duration| {
        TokenManager::builder(org.info().login_url.clone())
            .grant(org.refresh_grant())
            .store(store)
            .rotation(Rotation::Auto)
            .introspect(false)
            .lock_wait(lock_wait)
            .event_sink(Arc::new(MemorySink::new()))
            .build()
            .unwrap()
    };
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(DeclarationGate {
        inner: RedisStore::new(&redis.url(), key.clone()).unwrap(),
        armed: std::sync::atomic::AtomicBool::new(false),
        arrived: arrived_tx,
        release: Arc::clone(&release),
    });
    let holder = manager(gate.clone(), Duration::from_secs(15));
    // The member gives up waiting for the holder's lock after 200 ms and goes on without it.
    let member = manager(
        Arc::new(RedisStore::new(&redis.url(), key.clone()).unwrap()),
        Duration::from_millis(200),
    );
    let http = reqwest::Client::new();
    assert_eq!(call(&http, &holder).await, Ok(Outcome::Ok));
    assert_eq!(call(&http, &member).await, Ok(Outcome::Ok));
    assert_eq!(org.token_requests("refresh_token").await, 1);

    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    org.logout().await;
    let holder_call = {
        let (http, holder) = (http.clone(), holder.clone());
        tokio::spawn(async move { call(&http, &holder).await })
    };
    tokio::time::timeout(Duration::from_secs(30), arrived.recv())
        .await
        .expect("the holder reaches its declaration within 30 s")
        .unwrap();
    assert_eq!(
        org.token_requests("refresh_token").await,
        1,
        "nothing sent before the declaration"
    );

    // The member reads the store before the holder's declaration lands: it declares and wins.
    assert_eq!(call(&http, &member).await, Ok(Outcome::Healed));
    assert_eq!(org.token_requests("refresh_token").await, 2);

    release.add_permits(1);
    assert_eq!(holder_call.await.unwrap(), Ok(Outcome::Healed));
    let stats = org.stats().await;
    assert_eq!(
        stats["token_requests"]["refresh_token"], 2,
        "the winner's refresh served both: {stats}"
    );
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    let (h, m) = (holder.token().await.unwrap(), member.token().await.unwrap());
    assert_eq!(
        h.generation(),
        m.generation(),
        "one outcome, one generation"
    );
}
