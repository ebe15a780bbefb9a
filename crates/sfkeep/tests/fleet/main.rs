//! Fleet mode: many OS processes share one token through Redis. Each test starts its own
//! `redis-server` on a free loopback port and its own simulated org; every count is read from
//! the org's `/_fake/stats`. Worker processes are this binary re-run as `fleet_worker`.
//!
//! Without `redis-server` the tests say SKIPPED and pass, unless `CI` is set (then they fail).

#[path = "../manager/support.rs"]
mod support;

mod fleet;
mod rotation_safety;
mod store_truth;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet::{Fleet, FleetGrant, RedisServer, SERIAL, WorkerSpec, sum};
use serde_json::json;
use sfkeep::clock::UnixMillis;
use sfkeep::clock::{Clock, ManualClock};
use sfkeep::diagnose::Cause;
use sfkeep::event::{AuthEventKind, MemorySink};
use sfkeep::manager::Rotation;
use sfkeep::store::{CacheKey, CasOutcome, RedisStore, Store, StoreKey, encode_record};
use sfkeep::token::GrantKind;
use sfkeep::{Error, TokenManager};
use support::Org;

const HOUR2: Duration = Duration::from_secs(2 * 3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a fleet worker process, started by the other tests"]
async fn fleet_worker() {
    if std::env::var_os("SFKEEP_FLEET_WORKER").is_none() {
        return;
    }
    fleet::worker_main().await;
}

/// A simulated org with room for the fleet's API calls.
async fn start_org() -> Org {
    let org = Org::start(HOUR2).await;
    org.put(
        "/limits",
        json!({"daily_api_limit": 100_000_000u64, "login_rate_limit_per_hour": 100_000}),
    )
    .await;
    org
}

async fn total_token_requests(org: &Org) -> u64 {
    let s = org.stats().await;
    s["token_requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn assert_all_ok(replies: &[fleet::Reply], per_worker: u64) {
    for r in replies {
        assert_eq!(r.n("ok"), per_worker, "a worker saw failures: {r:?}");
    }
}

/// Polls `f` every `every` until it returns true, failing after `deadline`.
async fn poll_until<F, Fut>(deadline: Duration, every: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        tokio::time::sleep(every).await;
    }
}

/// Arms the org's `hold` fault on the next token request: it is committed (a refresh token
/// rotates), and its answer waits until [`release_held_answer`] (docs/fake-org.md, "Faults").
async fn hold_next_token_answer(org: &Org) {
    org.post(
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "after_commit": true, "hold": true, "count": 1}),
    )
    .await;
}

/// Waits until the org holds one committed token answer.
async fn until_token_answer_held(org: &Org, what: &str) {
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        what,
        || async { org.stats().await["answers_held"] == 1 },
    )
    .await;
}

async fn release_held_answer(org: &Org) {
    org.post("/faults/release", json!({})).await;
}

/// The 401s the org has answered so far.
async fn invalid_session_responses(org: &Org) -> u64 {
    org.stats().await["invalid_session_responses"]
        .as_u64()
        .unwrap()
}

/// Waits until the org has answered more than `seen` 401s.
async fn until_more_401s(org: &Org, seen: u64, what: &str) {
    poll_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        what,
        || async { invalid_session_responses(org).await > seen },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_twenty_deaths_exactly_twenty_token_requests() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let spec = WorkerSpec::new(FleetGrant::Refresh, &redis);
    let mut fleet = Fleet::spawn(8, &org, &spec).await;

    // First login: 8 processes × 100 tasks with an empty store → one token request.
    let r = fleet.all("calls 100").await;
    assert_all_ok(&r, 100);
    assert_eq!(total_token_requests(&org).await, 1);

    for death in 1..=20u64 {
        org.logout().await;
        let r = fleet.all("calls 100").await;
        assert_all_ok(&r, 100);
        assert!(
            sum(&r, "healed") > 0,
            "death {death}: nobody saw the 401: {r:?}"
        );
        assert!(
            r.iter().all(|x| x.n("gen") == death + 1),
            "death {death}: everyone ends on generation {}: {r:?}",
            death + 1
        );
        assert_eq!(
            total_token_requests(&org).await,
            1 + death,
            "death {death}: exactly one token request for 8 processes × 100 tasks"
        );
    }
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["refresh_token"], 21, "{stats}");
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    fleet.quit().await;

    // The raw values in Redis hold no secret.
    assert_no_secret_in_redis(&redis, &org, &spec.cache_key);
}

fn assert_no_secret_in_redis(redis: &RedisServer, org: &Org, cache_key: &str) {
    let info = org.info();
    let dump = redis.dump_all();
    assert!(!dump.is_empty(), "the fleet wrote its record");
    let mut secrets = vec![
        info.client_secret.clone(),
        info.refresh_token.clone(),
        info.password.clone(),
        info.security_token.clone(),
        cache_key.to_owned(),
    ];
    // The stored record's own tokens, decrypted with the fleet's key.
    let key = CacheKey::from_base64(cache_key).unwrap();
    let mut c = redis.conn();
    for (k, _) in dump.iter().filter(|(k, _)| k.ends_with(":tok")) {
        let env: Vec<u8> = redis::cmd("HGET").arg(k).arg("env").query(&mut c).unwrap();
        let rec = sfkeep::store::decode_record(&key, &env).expect("the fleet's record decrypts");
        secrets.push(rec.access_token.expose_secret().to_owned());
        if let Some(rt) = &rec.refresh_token {
            secrets.push(rt.expose_secret().to_owned());
        }
    }
    assert!(secrets.len() >= 6);
    for (k, v) in &dump {
        for s in &secrets {
            assert!(!k.contains(s.as_str()), "key name {k} holds a secret");
            assert!(
                !v.windows(s.len()).any(|w| w == s.as_bytes()),
                "{k} holds a secret in clear"
            );
        }
        // No token-shaped plaintext either (access tokens are `00D…!…`, refresh `5Aep861…`).
        assert!(!v.windows(7).any(|w| w == b"5Aep861"), "{k}");
        assert!(!v.windows(12).any(|w| w == b"access_token"), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_eight_processes_500_refreshes_no_reuse() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let spec = WorkerSpec::new(FleetGrant::Refresh, &redis);
    let mut fleet = Fleet::spawn(8, &org, &spec).await;
    let started = Instant::now();
    let r = fleet.all("calls 10").await;
    assert_all_ok(&r, 10);
    // 8 processes force 500 refreshes between them, concurrently: 4 × 63 + 4 × 62.
    for (i, w) in fleet.workers.iter_mut().enumerate() {
        w.send(&format!("force {}", if i < 4 { 63 } else { 62 }))
            .await;
    }
    let mut forced = 0;
    for w in &mut fleet.workers {
        let r = w.recv().await;
        assert_eq!(r.n("err") + r.n("store_unavailable"), 0, "{r:?}");
        forced += r.n("ok");
    }
    assert_eq!(forced, 500);
    // And everyone still works with the newest token.
    org.logout().await;
    let r = fleet.all("calls 20").await;
    assert_all_ok(&r, 20);
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(
        stats["token_requests"]["refresh_token"], 502,
        "first login + 500 forced + 1 after the logout: {stats}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    fleet.quit().await;
    assert_no_secret_in_redis(&redis, &org, &spec.cache_key);
}

/// Three rotating-refresh workers sharing `redis` with a lock TTL of `lock_ttl`, after worker
/// 0 took the lock on a session death and sent a token request that the org holds for
/// `latency_ms` (it has reached the org when this returns).
struct SlowRefresh {
    org: Org,
    fleet: Fleet,
    /// Refresh-token requests before the slow one.
    before: u64,
}

async fn slow_refresh_in_flight(
    redis: &RedisServer,
    lock_ttl: Duration,
    latency_ms: u64,
) -> SlowRefresh {
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let mut spec = WorkerSpec::new(FleetGrant::Refresh, redis);
    spec.lock_ttl = lock_ttl;
    let mut fleet = Fleet::spawn(3, &org, &spec).await;
    let r = fleet.all("calls 10").await;
    assert_all_ok(&r, 10);
    let before = org.token_requests("refresh_token").await;
    assert_eq!(before, 1);
    org.post(
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "latency_ms": latency_ms, "count": 1}),
    )
    .await;
    org.logout().await;
    fleet.workers[0].send("calls 1").await;
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        "worker 0 holds the lock with its token request in flight",
        || async {
            let mut c = redis.conn();
            let locks: Vec<String> = redis::cmd("KEYS")
                .arg("sfkeep:v1:*:lock")
                .query(&mut c)
                .unwrap();
            !locks.is_empty() && org.token_requests("refresh_token").await == before + 1
        },
    )
    .await;
    SlowRefresh { org, fleet, before }
}

/// A refresh slower than the lock's TTL: the live holder keeps extending the lock, so the
/// others wait for its result instead of refreshing the same (rotating) refresh token again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_slower_than_the_lock_ttl_keeps_the_lock_and_stays_single() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The token request takes 2 s, over six lock TTLs.
    let SlowRefresh {
        org,
        mut fleet,
        before,
    } = slow_refresh_in_flight(&redis, Duration::from_millis(300), 2000).await;
    for w in &mut fleet.workers[1..] {
        w.send("calls 20").await;
    }
    let mut r = vec![fleet.workers[0].recv().await];
    for w in &mut fleet.workers[1..] {
        r.push(w.recv().await);
    }
    assert_eq!(r[0].n("ok"), 1, "{r:?}");
    assert_all_ok(&r[1..], 20);
    let stats = org.stats().await;
    assert_eq!(
        stats["token_requests"]["refresh_token"],
        before + 1,
        "one refresh for the fleet, however slow: {stats}"
    );
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_errors"], 0, "{stats}");
    fleet.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_jwt_fleet_keeps_serving_and_recovers() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let spec = WorkerSpec::new(FleetGrant::Jwt, &redis);
    let mut fleet = Fleet::spawn(8, &org, &spec).await;
    let r = fleet.all("calls 50").await;
    assert_all_ok(&r, 50);
    assert_eq!(org.token_requests("jwt_bearer").await, 1);

    redis.stop();
    // Serving from memory: no death, no request.
    let r = fleet.all("calls 50").await;
    assert_all_ok(&r, 50);
    assert_eq!(org.token_requests("jwt_bearer").await, 1);
    // Two deaths while Redis is down: each process refreshes for itself, at most once.
    for death in 1..=2u64 {
        let before = org.token_requests("jwt_bearer").await;
        org.logout().await;
        let r = fleet.all("calls 50").await;
        assert_all_ok(&r, 50);
        let n = org.token_requests("jwt_bearer").await - before;
        assert!(
            (1..=8).contains(&n),
            "death {death} with Redis down: {n} token requests for 8 processes"
        );
    }

    // Redis comes back (empty). Without anyone acting, the fleet coordinates again: a death
    // costs exactly one token request once every process's circuit has closed.
    redis.restart();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let before = org.token_requests("jwt_bearer").await;
        org.logout().await;
        let r = fleet.all("calls 50").await;
        assert_all_ok(&r, 50);
        let n = org.token_requests("jwt_bearer").await - before;
        assert!(n <= 8, "at most one request per process per death: {n}");
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < until,
            "one token request per death after Redis returned: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And it stays that way.
    for _ in 0..3 {
        let before = org.token_requests("jwt_bearer").await;
        org.logout().await;
        let r = fleet.all("calls 50").await;
        assert_all_ok(&r, 50);
        assert_eq!(org.token_requests("jwt_bearer").await - before, 1);
    }
    fleet.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_rotating_fleet_serves_cached_then_fails_closed_and_recovers() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let spec = WorkerSpec::new(FleetGrant::Refresh, &redis);
    let mut fleet = Fleet::spawn(8, &org, &spec).await;
    let r = fleet.all("calls 50").await;
    assert_all_ok(&r, 50);
    // One death with Redis up: everyone learns that the refresh token rotates (auto).
    org.logout().await;
    let r = fleet.all("calls 50").await;
    assert_all_ok(&r, 50);
    assert_eq!(org.token_requests("refresh_token").await, 2);

    redis.stop();
    // Valid cached tokens are served.
    let r = fleet.all("calls 50").await;
    assert_all_ok(&r, 50);
    // The session dies: no refresh without the store, a typed error instead.
    org.logout().await;
    let r = fleet.all("calls 50").await;
    for x in &r {
        assert_eq!(x.n("ok"), 0, "{x:?}");
        assert_eq!(x.n("store_unavailable"), 50, "{x:?}");
    }
    assert_eq!(org.token_requests("refresh_token").await, 2);

    // Redis comes back (empty): the fleet recovers by itself, with one refresh and no reuse.
    redis.restart();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = fleet.all("calls 50").await;
        for x in &r {
            assert_eq!(
                x.n("err"),
                0,
                "only StoreUnavailable while recovering: {x:?}"
            );
        }
        if r.iter().all(|x| x.n("ok") == 50) {
            break;
        }
        assert!(
            Instant::now() < until,
            "every worker serves again after Redis returned: not within 30 s: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["refresh_token"], 3, "{stats}");
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    fleet.quit().await;
}

// ---------------------------------------------------------------------------------------------
// Write-back after an outage: in-process managers, each on its own `RedisStore` (its own
// connection and circuit breaker, as separate processes have), on one Redis key.

/// A manager on its own `RedisStore` for `redis`, values encrypted with `key`.
fn own_store_manager(
    redis: &RedisServer,
    key: &CacheKey,
    grant: sfkeep::Grant,
    org: &Org,
    sink: &MemorySink,
) -> (TokenManager, RedisStore) {
    let store = RedisStore::builder(&redis.url(), key.clone())
        .probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let m = TokenManager::builder(org.info().login_url.clone())
        .grant(grant)
        .store(Arc::new(store.clone()))
        .introspect(false)
        .event_sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    (m, store)
}

fn count(sink: &MemorySink, name: &str) -> usize {
    sink.events()
        .iter()
        .filter(|e| e.kind.name() == name)
        .count()
}

/// Polls `manager` (its fast path starts the recovery probe) until its sink shows the store
/// answered again.
async fn until_recovered(manager: &TokenManager, sink: &MemorySink) {
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the manager notices that the store is back",
        || async {
            manager.token().await.unwrap();
            count(sink, "store.recovered") == 1
        },
    )
    .await;
}

/// Waits until `store` answers again after a restart (its connection and breaker reset),
/// without going through any manager.
async fn until_store_answers(store: &RedisStore, key: &StoreKey) {
    poll_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        "the store answers after the restart",
        || async { store.load(key).await.is_ok() },
    )
    .await;
}

/// Two managers share a JWT token through Redis. Redis dies; A's token is forced dead and A
/// refreshes locally (fail open). Redis returns empty: A's next token() lets it notice and
/// write its token back, so B (after a 401) and a new manager C adopt it with no token
/// request of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_jwt_local_token_is_written_back_and_adopted() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let key = CacheKey::generate();
    let (sa, sb, sc) = (MemorySink::new(), MemorySink::new(), MemorySink::new());
    let (a, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sa);
    let (b, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sb);
    let ta = a.token().await.unwrap();
    let tb = b.token().await.unwrap();
    assert_eq!(tb.record().fingerprint(), ta.record().fingerprint());
    assert_eq!(org.token_requests("jwt_bearer").await, 1);

    redis.stop();
    let local = a.force_refresh().await.unwrap();
    assert_eq!(
        org.token_requests("jwt_bearer").await,
        2,
        "A fails open: one local token request"
    );
    assert!(local.generation() > ta.generation());
    assert_eq!(count(&sa, "store.unavailable"), 1);
    assert_eq!(count(&sa, "token.written_back"), 0);

    redis.restart(); // empty
    let observer = RedisStore::new(&redis.url(), key.clone()).unwrap();
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "A writes its token back after Redis returned",
        || async {
            let t = a.token().await.unwrap();
            assert_eq!(t.record().fingerprint(), local.record().fingerprint());
            matches!(observer.load(a.store_key()).await,
                Ok(Some(r)) if r.fingerprint() == local.record().fingerprint()
                    && r.generation == local.generation())
        },
    )
    .await;
    assert_eq!(count(&sa, "store.recovered"), 1);
    let written: Vec<_> = sa
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, AuthEventKind::TokenWrittenBack { .. }))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(
        written[0].kind,
        AuthEventKind::TokenWrittenBack { replaced: None }
    );
    assert_eq!(written[0].generation, Some(local.generation()));
    assert_eq!(
        written[0].fingerprint.as_deref(),
        Some(local.record().fingerprint().as_str())
    );

    // B's token dies (a 401): it adopts A's from the store instead of requesting its own.
    assert!(b.invalidate_if_current(tb.generation(), sfkeep::diagnose::api_error::Api::Rest));
    let tb2 = b.token().await.unwrap();
    assert_eq!(tb2.record().fingerprint(), local.record().fingerprint());
    assert_eq!(tb2.generation(), local.generation());
    // A new process adopts it too.
    let (c, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sc);
    let tc = c.token().await.unwrap();
    assert_eq!(tc.record().fingerprint(), local.record().fingerprint());
    assert_eq!(
        org.token_requests("jwt_bearer").await,
        2,
        "B and C adopted A's token without a token request"
    );
    assert_eq!(support::get_limits(&org.http, &tc).await, 200);

    // No event carries a secret.
    for t in [&ta, &local] {
        let secret = t.access_token().expose_secret();
        for e in sa.events().iter().chain(&sb.events()).chain(&sc.events()) {
            let json = serde_json::to_string(e).unwrap();
            assert!(!json.contains(secret), "an event holds a token: {json}");
            assert!(!e.to_string().contains(secret));
        }
    }
}

/// A refreshed locally during the outage; after Redis returned, B stored a newer generation
/// before A noticed. A adopts B's record and never overwrites it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_write_back_yields_to_a_newer_record() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let key = CacheKey::generate();
    let (sa, sb) = (MemorySink::new(), MemorySink::new());
    let (a, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sa);
    let (b, store_b) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sb);
    a.token().await.unwrap();
    b.token().await.unwrap();

    redis.stop();
    let local = a.force_refresh().await.unwrap();
    assert_eq!(org.token_requests("jwt_bearer").await, 2);

    redis.restart();
    until_store_answers(&store_b, b.store_key()).await;
    b.force_refresh().await.unwrap();
    let newer = b.force_refresh().await.unwrap();
    assert!(newer.generation() > local.generation());
    assert_eq!(org.token_requests("jwt_bearer").await, 4);

    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "A adopts B's newer record",
        || async {
            a.token().await.unwrap().record().fingerprint() == newer.record().fingerprint()
        },
    )
    .await;
    let observer = RedisStore::new(&redis.url(), key.clone()).unwrap();
    let held = observer.load(a.store_key()).await.unwrap().unwrap();
    assert_eq!(held.generation, newer.generation());
    assert_eq!(held.fingerprint(), newer.record().fingerprint());
    assert_eq!(count(&sa, "token.written_back"), 0);
    assert_eq!(count(&sa, "refresh.discarded"), 1);
    assert_eq!(a.token().await.unwrap().generation(), newer.generation());
    assert_eq!(org.token_requests("jwt_bearer").await, 4);
}

/// After Redis returned, B stored the same generation as A's local token (another token): A
/// does not overwrite it (the generation fences it) and keeps its own until its next refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_write_back_never_replaces_the_same_generation() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let key = CacheKey::generate();
    let (sa, sb) = (MemorySink::new(), MemorySink::new());
    let (a, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sa);
    let (b, store_b) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sb);
    a.token().await.unwrap();
    b.token().await.unwrap();

    redis.stop();
    let local = a.force_refresh().await.unwrap();
    redis.restart();
    until_store_answers(&store_b, b.store_key()).await;
    let theirs = b.force_refresh().await.unwrap();
    assert_eq!(theirs.generation(), local.generation());
    assert_eq!(org.token_requests("jwt_bearer").await, 3);

    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "A notices the store and declines to write back",
        || async {
            a.token().await.unwrap();
            count(&sa, "refresh.discarded") == 1
        },
    )
    .await;
    let observer = RedisStore::new(&redis.url(), key.clone()).unwrap();
    let held = observer.load(a.store_key()).await.unwrap().unwrap();
    assert_eq!(held.fingerprint(), theirs.record().fingerprint());
    assert_eq!(count(&sa, "store.recovered"), 1);
    assert_eq!(count(&sa, "token.written_back"), 0);
    assert_eq!(
        a.token().await.unwrap().record().fingerprint(),
        local.record().fingerprint()
    );
    assert_eq!(org.token_requests("jwt_bearer").await, 3);
}

/// No rotating refresh without a store that can keep its answer (issue #24 item 3): while
/// Redis is down, a refresh-token grant (rotation not ruled out) is not sent at all — its new
/// refresh token would exist only in this process's memory. Once Redis answers, the refresh
/// is sent and stored; the org never sees a reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_no_rotating_refresh_is_sent_without_a_store() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let key = CacheKey::generate();
    let sa = MemorySink::new();
    let (a, _) = own_store_manager(&redis, &key, org.refresh_grant(), &org, &sa);
    redis.stop();
    let e = a.token().await.unwrap_err();
    assert!(e.to_string().contains("not sent"), "{e}");
    assert_eq!(org.token_requests("refresh_token").await, 0);

    redis.restart();
    let observer = RedisStore::new(&redis.url(), key.clone()).unwrap();
    until_store_answers(&observer, a.store_key()).await;
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "a token once Redis answers",
        || async { a.token().await.is_ok() },
    )
    .await;
    let held = observer.load(a.store_key()).await.unwrap().unwrap();
    assert!(held.refresh_token.is_some() && held.intent.is_none());
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
}

/// Even with fail-open declared, a forced rotating refresh during an outage sends nothing;
/// after Redis returns with the pre-outage record, the next refresh presents that record's
/// refresh token (still the live one: nothing rotated meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fail_open_still_sends_no_rotating_refresh() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let key = CacheKey::generate();
    let sa = MemorySink::new();
    let store = RedisStore::builder(&redis.url(), key.clone())
        .probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let a = TokenManager::builder(org.info().login_url.clone())
        .grant(org.refresh_grant())
        .store(Arc::new(store))
        .introspect(false)
        .on_store_unavailable(sfkeep::manager::OnStoreUnavailable::FailOpen)
        .event_sink(Arc::new(sa.clone()))
        .build()
        .unwrap();
    let before = a.token().await.unwrap();
    assert_eq!(org.token_requests("refresh_token").await, 1);

    redis.stop();
    assert!(a.force_refresh().await.is_err());
    assert_eq!(org.token_requests("refresh_token").await, 1);

    redis.restart(); // empty: put the pre-outage record back, as a persisted Redis would hold it
    let observer = RedisStore::new(&redis.url(), key.clone()).unwrap();
    until_store_answers(&observer, a.store_key()).await;
    assert!(matches!(
        observer
            .compare_and_set(a.store_key(), None, before.record())
            .await
            .unwrap(),
        CasOutcome::Written
    ));
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "a forced refresh once Redis answers",
        || async { a.force_refresh().await.is_ok() },
    )
    .await;
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["refresh_token"], 2, "{stats}");
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
}

/// A and B share a token; A refreshes locally while Redis is down; after Redis returns, B
/// logs out (forget) before A notices. A must not write its token back over the logout: the
/// key holds a tombstone, and a new process requests its own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_write_back_never_resurrects_a_token_after_logout() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let key = CacheKey::generate();
    let (sa, sb, sc) = (MemorySink::new(), MemorySink::new(), MemorySink::new());
    let (a, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sa);
    let (b, store_b) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sb);
    a.token().await.unwrap();
    b.token().await.unwrap();

    redis.stop();
    a.force_refresh().await.unwrap();
    // Twice: A's generation then exceeds the tombstone's, so only the tombstone stops it.
    let local = a.force_refresh().await.unwrap();
    assert_eq!(org.token_requests("jwt_bearer").await, 3);

    redis.restart();
    until_store_answers(&store_b, b.store_key()).await;
    b.forget().await.unwrap();

    until_recovered(&a, &sa).await;
    assert_eq!(count(&sa, "token.written_back"), 0);
    let observer = RedisStore::new(&redis.url(), key.clone()).unwrap();
    let held = observer.load(a.store_key()).await.unwrap().unwrap();
    assert!(
        held.is_tombstone(),
        "the logout stays: {}",
        held.fingerprint()
    );
    let tombstone = held.generation;

    // A new process does not adopt anything: it requests its own token, stored over the
    // tombstone.
    let (c, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sc);
    let tc = c.token().await.unwrap();
    assert_ne!(tc.record().fingerprint(), local.record().fingerprint());
    assert_eq!(org.token_requests("jwt_bearer").await, 4);
    let held = observer.load(a.store_key()).await.unwrap().unwrap();
    assert_eq!(held.fingerprint(), tc.record().fingerprint());
    assert!(held.generation > tombstone);
    for e in sa.events().iter().chain(&sb.events()).chain(&sc.events()) {
        let json = serde_json::to_string(e).unwrap();
        assert!(!json.contains(local.access_token().expose_secret()));
        assert!(!json.contains(tc.access_token().expose_secret()));
    }
}

/// After Redis returned, another writer (another cache key) stored a higher generation that A
/// cannot decrypt: A's load sees a miss, but its write-back must not replace that newer value
/// with its older generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_write_back_never_replaces_a_newer_unreadable_generation() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = start_org().await;
    let key = CacheKey::generate();
    let sa = MemorySink::new();
    let (a, _) = own_store_manager(&redis, &key, org.jwt_grant(), &org, &sa);
    a.token().await.unwrap();
    redis.stop();
    let local = a.force_refresh().await.unwrap();

    redis.restart();
    let other = RedisStore::new(&redis.url(), CacheKey::generate()).unwrap();
    until_store_answers(&other, a.store_key()).await;
    let mut theirs = local.record().clone();
    theirs.generation = local.generation() + 8;
    assert!(matches!(
        other
            .compare_and_set(a.store_key(), None, &theirs)
            .await
            .unwrap(),
        CasOutcome::Written
    ));
    until_recovered(&a, &sa).await;
    assert_eq!(count(&sa, "token.written_back"), 0);
    let held = other.load(a.store_key()).await.unwrap().unwrap();
    assert_eq!(held.generation, theirs.generation);
    assert_eq!(org.token_requests("jwt_bearer").await, 2);
}

// ---------------------------------------------------------------------------------------------
// In-process: the store contract and bad input.

fn sample_record(generation: u64) -> sfkeep::token::TokenRecord {
    use sfkeep::clock::UnixMillis;
    use sfkeep::secret::{AccessToken, RefreshToken};
    use sfkeep::token::{ExpirySource, GrantKind, TokenRecord};
    TokenRecord {
        access_token: AccessToken::new("00Dxx0000001gEH!AQ4AQFakeAccessTokenValue"),
        refresh_token: Some(RefreshToken::new("5Aep861FakeRefreshTokenValue")),
        instance_url: "http://127.0.0.1:1".into(),
        id_url: None,
        scope: None,
        issued_at: UnixMillis(1_000_000),
        expires_at: UnixMillis(1_000_000 + 7_200_000),
        refresh_at: UnixMillis(1_000_000 + 6_300_000),
        expiry_source: ExpirySource::Configured,
        generation,
        grant: GrantKind::RefreshToken,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_contract_cas_lock_and_key_names() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&redis.url(), CacheKey::generate()).unwrap();
    let k = StoreKey::from_string("00112233aabbccdd");
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(matches!(
        store
            .compare_and_set(&k, None, &sample_record(1))
            .await
            .unwrap(),
        CasOutcome::Written
    ));
    match store
        .compare_and_set(&k, None, &sample_record(1))
        .await
        .unwrap()
    {
        CasOutcome::Conflict(Some(r)) => assert_eq!(r.generation, 1),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .compare_and_set(&k, Some(1), &sample_record(2))
            .await
            .unwrap(),
        CasOutcome::Written
    ));
    let r = store.load(&k).await.unwrap().unwrap();
    assert_eq!(r.generation, 2);
    assert_eq!(
        r.access_token.expose_secret(),
        "00Dxx0000001gEH!AQ4AQFakeAccessTokenValue"
    );
    // Key layout, hash tag, TTL, plaintext gen.
    let mut c = redis.conn();
    let gen_raw: String = redis::cmd("HGET")
        .arg("sfkeep:v1:{00112233aabbccdd}:tok")
        .arg("gen")
        .query(&mut c)
        .unwrap();
    assert_eq!(gen_raw, "2");
    let ttl: i64 = redis::cmd("PTTL")
        .arg("sfkeep:v1:{00112233aabbccdd}:tok")
        .query(&mut c)
        .unwrap();
    // A record carrying a refresh token has no TTL (issue #24: it must outlive idle gaps); the
    // access token inside it expires by itself.
    assert_eq!(
        ttl, -1,
        "a record with a refresh token never expires out of Redis"
    );
    // One without a refresh token lives as long as its access token, plus a minute.
    let mut plain = sample_record(3);
    plain.refresh_token = None;
    assert!(matches!(
        store.compare_and_set(&k, Some(2), &plain).await.unwrap(),
        CasOutcome::Written
    ));
    let ttl: i64 = redis::cmd("PTTL")
        .arg("sfkeep:v1:{00112233aabbccdd}:tok")
        .query(&mut c)
        .unwrap();
    assert!(ttl > 7_200_000 && ttl <= 7_260_000, "{ttl}");

    // The lock is exclusive, and released on drop (the waiter is woken).
    let l1 = store.lock(&k, Duration::from_secs(1)).await.unwrap();
    assert!(l1.is_some());
    let t = Instant::now();
    assert!(
        store
            .lock(&k, Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    let s2 = store.clone();
    let k2 = k.clone();
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        let l = s2.lock(&k2, Duration::from_secs(5)).await.unwrap();
        (l.is_some(), t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(l1);
    let (got, waited) = waiter.await.unwrap();
    assert!(got);
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    // Forgetting leaves a tombstone above the stored generation, never an empty key.
    let before = store.load(&k).await.unwrap().map_or(0, |r| r.generation);
    sfkeep::store::forget(
        &store,
        &k,
        0,
        GrantKind::RefreshToken,
        UnixMillis(1_800_000_000_000),
    )
    .await
    .unwrap();
    let tomb = store.load(&k).await.unwrap().expect("a tombstone");
    assert!(tomb.is_tombstone());
    assert_eq!(tomb.generation, before + 1);
    assert!(store.take_warnings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_a_miss_with_a_warning_and_foreign_locks_stay() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let key = CacheKey::generate();
    let store = RedisStore::new(&redis.url(), key.clone()).unwrap();
    let k = StoreKey::from_string("feedfacecafebeef");
    let tok = RedisStore::record_key(&k);
    let mut c = redis.conn();
    let good = encode_record(&key, &sample_record(3));

    type Write = Box<dyn Fn(&mut redis::Connection)>;
    let cases: Vec<(&str, Write)> = vec![
        (
            "corrupt",
            Box::new({
                let mut bad = good.clone();
                let n = bad.len() - 3;
                bad[n] ^= 0x55;
                let tok = tok.clone();
                move |c| {
                    redis::cmd("HSET")
                        .arg(&tok)
                        .arg("gen")
                        .arg("3")
                        .arg("env")
                        .arg(bad.clone())
                        .query::<()>(c)
                        .unwrap()
                }
            }),
        ),
        (
            "other key",
            Box::new({
                let other = encode_record(&CacheKey::generate(), &sample_record(3));
                let tok = tok.clone();
                move |c| {
                    redis::cmd("HSET")
                        .arg(&tok)
                        .arg("gen")
                        .arg("3")
                        .arg("env")
                        .arg(other.clone())
                        .query::<()>(c)
                        .unwrap()
                }
            }),
        ),
        (
            "other format (a JSON string)",
            Box::new({
                let tok = tok.clone();
                move |c| {
                    redis::cmd("SET")
                        .arg(&tok)
                        .arg(r#"{"access_token":"x","generation":3}"#)
                        .query::<()>(c)
                        .unwrap()
                }
            }),
        ),
        (
            "older format version",
            Box::new({
                let mut v0 = good.clone();
                v0[4] = 0;
                let tok = tok.clone();
                move |c| {
                    redis::cmd("HSET")
                        .arg(&tok)
                        .arg("gen")
                        .arg("3")
                        .arg("env")
                        .arg(v0.clone())
                        .query::<()>(c)
                        .unwrap()
                }
            }),
        ),
        (
            "non-numeric generation",
            Box::new({
                let tok = tok.clone();
                let good = good.clone();
                move |c| {
                    redis::cmd("HSET")
                        .arg(&tok)
                        .arg("gen")
                        .arg("three")
                        .arg("env")
                        .arg(good.clone())
                        .query::<()>(c)
                        .unwrap()
                }
            }),
        ),
    ];
    for (name, write) in &cases {
        redis::cmd("DEL").arg(&tok).query::<()>(&mut c).unwrap();
        write(&mut c);
        assert!(
            store.load(&k).await.unwrap().is_none(),
            "{name}: must be a miss"
        );
        let w = store.take_warnings();
        assert_eq!(w.len(), 1, "{name}: one warning: {w:?}");
        // A write expecting "nothing usable" replaces it; the next read works again.
        assert!(
            matches!(
                store
                    .compare_and_set(&k, None, &sample_record(4))
                    .await
                    .unwrap(),
                CasOutcome::Written
            ),
            "{name}: the bad value is replaced"
        );
        assert_eq!(store.load(&k).await.unwrap().unwrap().generation, 4);
    }

    // A manager on a store with a corrupt value: the value is a miss, never served. Unless
    // rotation is ruled out, the configured refresh token is not sent over it (the value may
    // hold the rotated one: docs/rotation-safety.md); with rotation off, a token is obtained.
    let org = start_org().await;
    redis::cmd("DEL").arg(&tok).query::<()>(&mut c).unwrap();
    let sink = MemorySink::new();
    let manager = |rotation: Rotation| {
        TokenManager::builder(org.info().login_url.clone())
            .grant(org.refresh_grant())
            .clock(Arc::new(ManualClock::starting_now_offset(0)) as Arc<dyn Clock>)
            .store(Arc::new(store.clone()))
            .rotation(rotation)
            .introspect(false)
            .event_sink(Arc::new(sink.clone()))
            .build()
            .unwrap()
    };
    let m = manager(Rotation::Off);
    let mk = m.store_key().clone();
    let mtok = RedisStore::record_key(&mk);
    redis::cmd("HSET")
        .arg(&mtok)
        .arg("gen")
        .arg("7")
        .arg("env")
        .arg(b"SFKE\x01garbage-garbage-garbage-garbage-garbage-garbage".to_vec())
        .query::<()>(&mut c)
        .unwrap();
    let e = manager(Rotation::Auto).token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("cannot read"), "{e}");
    assert_eq!(org.token_requests("refresh_token").await, 0);
    let t = m.token().await.unwrap();
    assert_ne!(t.access_token().expose_secret(), "x");
    assert!(!store.take_warnings().is_empty());
    assert_eq!(
        store.load(&mk).await.unwrap().unwrap().generation,
        t.generation()
    );

    // A foreign lock value is never deleted: not on timeout, not by a guard.
    let lock = RedisStore::lock_key(&k);
    redis::cmd("SET")
        .arg(&lock)
        .arg("someone-else")
        .query::<()>(&mut c)
        .unwrap();
    assert!(
        store
            .lock(&k, Duration::from_millis(250))
            .await
            .unwrap()
            .is_none()
    );
    let v: String = redis::cmd("GET").arg(&lock).query(&mut c).unwrap();
    assert_eq!(v, "someone-else");
    assert!(
        store
            .take_warnings()
            .iter()
            .any(|w| w.0.contains("did not write")),
        "a warning names the foreign lock"
    );
    // Our lock expires and someone else takes the key: dropping our guard leaves theirs.
    redis::cmd("DEL").arg(&lock).query::<()>(&mut c).unwrap();
    let ours = store
        .clone()
        .lock(&k, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    redis::cmd("SET")
        .arg(&lock)
        .arg("someone-else-2")
        .query::<()>(&mut c)
        .unwrap();
    drop(ours);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v: String = redis::cmd("GET").arg(&lock).query(&mut c).unwrap();
    assert_eq!(v, "someone-else-2");
    let _ = sink
        .events()
        .iter()
        .filter(|e| matches!(e.kind, AuthEventKind::TokenRefreshed { .. }))
        .count();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_fails_fast_and_recovers_in_process() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(&redis.url(), CacheKey::generate())
        .probe_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let k = StoreKey::from_string("0badc0de0badc0de");
    assert!(matches!(
        store
            .compare_and_set(&k, None, &sample_record(1))
            .await
            .unwrap(),
        CasOutcome::Written
    ));
    redis.stop();
    for _ in 0..3 {
        assert!(matches!(store.load(&k).await, Err(Error::Store { .. })));
    }
    assert!(store.circuit_open());
    let t = Instant::now();
    assert!(store.load(&k).await.is_err());
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "fails fast while open"
    );
    redis.restart();
    poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the store works again",
        || async { store.load(&k).await.is_ok() },
    )
    .await;
    assert!(!store.circuit_open());
}

/// Redis restarts (empty, no persistence) between two operations: the first read after it
/// runs on a fresh connection and answers. The connection made before the restart is dead;
/// Redis is not, and one broken connection is no outage (a running proxy's first call used to
/// answer 503 here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_read_after_a_redis_restart_answers_on_a_fresh_connection() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(&redis.url(), CacheKey::generate()).unwrap();
    let k = StoreKey::from_string("0badc0de0badc0de");
    assert!(matches!(
        store
            .compare_and_set(&k, None, &sample_record(1))
            .await
            .unwrap(),
        CasOutcome::Written
    ));
    assert!(store.load(&k).await.unwrap().is_some());
    redis.restart();
    match store.load(&k).await {
        Ok(None) => {}
        other => panic!("the restarted (empty) Redis answers the first read: {other:?}"),
    }
    assert!(!store.circuit_open());
}

// ---------------------------------------------------------------------------------------------
// `scripts/bench fleet`

/// Token requests per session death and token() latency during the refresh storm, sfkeep
/// (Redis store) against a baseline where each process refreshes for itself (memory store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench fleet"]
async fn fleet_bench() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let procs: usize = std::env::var("FLEET_BENCH_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let tasks: u64 = std::env::var("FLEET_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let deaths: u64 = std::env::var("FLEET_BENCH_DEATHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let grant = match std::env::var("FLEET_BENCH_GRANT").as_deref() {
        Ok("refresh") => FleetGrant::Refresh,
        _ => FleetGrant::Jwt,
    };
    struct Figures {
        failed: u64,
        per_death: f64,
        all: [u64; 3],
        heal: [u64; 3],
    }
    fn pcts(mut v: Vec<u64>) -> [u64; 3] {
        v.sort_unstable();
        let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        [p(0.5), p(0.99), p(1.0)]
    }
    let mut results = Vec::new();
    for shared in [true, false] {
        let org = start_org().await;
        let mut spec = WorkerSpec::new(grant, &redis);
        if !shared {
            spec.redis_url = None;
        }
        let mut fleet = Fleet::spawn(procs, &org, &spec).await;
        // Warm-up (the first login); a per-process refresh-token baseline may already fail here.
        fleet.all(&format!("calls {tasks}")).await;
        let before = total_token_requests(&org).await;
        let (mut all, mut heal) = (Vec::new(), Vec::new());
        let mut failed = 0;
        for _ in 0..deaths {
            org.logout().await;
            let r = fleet.all(&format!("calls {tasks}")).await;
            failed += sum(&r, "err") + sum(&r, "store_unavailable");
            for x in &r {
                for (v, healing) in x.latencies() {
                    all.push(v);
                    if healing {
                        heal.push(v);
                    }
                }
            }
        }
        let requests = total_token_requests(&org).await - before;
        results.push(Figures {
            failed,
            per_death: requests as f64 / deaths as f64,
            all: pcts(all),
            heal: pcts(heal),
        });
        fleet.quit().await;
    }
    let (a, b) = (&results[0], &results[1]);
    println!(
        "fleet: {procs} processes × {tasks} tasks, {deaths} session deaths (logout; every task sees its 401, invalidates, waits, replays), grant {grant:?}"
    );
    println!(
        "{:<34} {:>16} {:>24}",
        "", "sfkeep (redis)", "baseline (per process)"
    );
    println!(
        "{:<34} {:>16.2} {:>24.2}",
        "token requests per session death", a.per_death, b.per_death
    );
    println!("{:<34} {:>16} {:>24}", "failed calls", a.failed, b.failed);
    let rows = [
        ("token() p50, every call (µs)", a.all[0], b.all[0]),
        ("token() p99, every call (µs)", a.all[1], b.all[1]),
        ("token() max, every call (µs)", a.all[2], b.all[2]),
        ("token() p50, after the 401 (µs)", a.heal[0], b.heal[0]),
        ("token() p99, after the 401 (µs)", a.heal[1], b.heal[1]),
        ("token() max, after the 401 (µs)", a.heal[2], b.heal[2]),
    ];
    for (name, x, y) in rows {
        println!("{name:<34} {x:>16} {y:>24}");
    }
}

/// `rediss://` builds a rustls client on the process's aws-lc-rs provider (no panic, no second
/// stack); against a plain-text server the TLS handshake fails as a store error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_url_uses_tls() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(
        &format!("rediss://127.0.0.1:{}/", redis.port),
        CacheKey::generate(),
    )
    .unwrap();
    let e = store
        .load(&StoreKey::from_string("0011223344556677"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Store { .. }), "{e}");
}
