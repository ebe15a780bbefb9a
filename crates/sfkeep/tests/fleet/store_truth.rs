//! The token store as the source of truth (issue #24 items 1–3; docs/rotation-safety.md):
//! under rotation the store holds the only valid refresh token; when it loses it, sfkeep never
//! falls back to the spent configured one. Each manager here stands for a process of its own
//! (its own `RedisStore` connection, nothing shared in memory); the spent-token ledger is a
//! file, as a host's processes share it. Counts from the org's `/_fake/stats`.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use sfkeep::TokenManager;
use sfkeep::diagnose::Cause;
use sfkeep::manager::Rotation;
use sfkeep::store::{CacheKey, EncryptedFileStore, RedisStore, Store, StoreKey};

use super::fleet::{RedisServer, SERIAL};
use super::start_org;
use super::support::{Org, Outcome, call};

/// A manager ("a process") on Redis with rotation learned (`Auto`, the default), the
/// org's refresh token configured, and the spent-token ledger at `ledger`.
fn on_redis(redis: &RedisServer, key: &CacheKey, org: &Org, ledger: &Path) -> TokenManager {
    let store = RedisStore::new(&redis.url(), key.clone()).unwrap();
    TokenManager::builder(org.info().login_url.clone())
        .grant(org.refresh_grant())
        .store(Arc::new(store))
        .rotation(Rotation::Auto)
        .introspect(false)
        .spent_ledger(ledger)
        .without_tracing_sink()
        .build()
        .unwrap()
}

async fn rotating_org() -> Org {
    let org = start_org().await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    org
}

fn tok_key_ttl(redis: &RedisServer) -> i64 {
    let mut c = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sfkeep:v1:*:tok")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    redis::cmd("PTTL").arg(&keys[0]).query(&mut c).unwrap()
}

/// Item 1: the record carrying the rotated refresh token has no TTL, so an idle gap past the
/// session timeout (here the org's clock moves 2 h 2 min) finds it still there: a new process
/// refreshes with it, and the configured (spent) token is never presented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_past_the_session_timeout_the_rotated_refresh_token_stays_in_redis() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::generate();
    let http = reqwest::Client::new();
    let a = on_redis(&redis, &key, &org, &dir.path().join("a.json"));
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));
    assert_eq!(
        tok_key_ttl(&redis),
        -1,
        "no TTL on a record with a refresh token"
    );
    drop(a);
    org.advance(2 * 3600 + 120).await;
    // A new process on another host (its own, empty ledger).
    let b = on_redis(&redis, &key, &org, &dir.path().join("b.json"));
    assert_eq!(call(&http, &b).await, Ok(Outcome::Healed));
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 2, "{stats}");
}

/// Item 2, FLUSHALL: a new process finds no record. The ledger says the configured token was
/// rotated away, so it is not sent: `refresh_token_lost`, naming the generation. A running
/// member still holds the newest refresh token: its next refresh stores it again, and the
/// new process then works on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_a_new_process_never_sends_the_spent_configured_token() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("spent.json");
    let key = CacheKey::generate();
    let http = reqwest::Client::new();
    let a = on_redis(&redis, &key, &org, &ledger);
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();

    let b = on_redis(&redis, &key, &org, &ledger);
    let e = b.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(
        e.to_string()
            .contains("lost the rotated refresh token of generation 1"),
        "{e}"
    );
    assert_eq!(org.token_requests("refresh_token").await, 1);

    // The running member's next refresh (a session death) presents the refresh token it
    // holds, and stores the new one; the new process adopts it.
    org.logout().await;
    assert_eq!(call(&http, &a).await, Ok(Outcome::Healed));
    let c = on_redis(&redis, &key, &org, &ledger);
    assert_eq!(call(&http, &c).await, Ok(Outcome::Ok));
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 2, "{stats}");
}

/// Item 2, Redis restarted without persistence (it comes back empty) while nothing was in
/// flight. The running process holds the newest refresh token: after a death it refreshes
/// with that one (never the configured, spent one) and stores the outcome, which a process
/// started afterwards adopts without a token request of its own. No reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_never_sends_the_spent_configured_token() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("spent.json");
    let key = CacheKey::generate();
    let http = reqwest::Client::new();
    let a = on_redis(&redis, &key, &org, &ledger);
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));
    redis.restart();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.conn())
        .unwrap();
    assert!(keys.is_empty(), "Redis came back empty: {keys:?}");

    org.logout().await;
    assert_eq!(call(&http, &a).await, Ok(Outcome::Healed));
    assert_eq!(org.token_requests("refresh_token").await, 2);
    let b = on_redis(&redis, &key, &org, &ledger);
    assert_eq!(call(&http, &b).await, Ok(Outcome::Ok));
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(
        stats["token_requests"]["refresh_token"], 2,
        "the new process adopted the running one's outcome: {stats}"
    );
}

/// Item 2, `logout`: the tombstone means "re-authorize", never "use the configured token",
/// even in a process that never saw a rotation and has no ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_logout_the_tombstone_means_reauthorize() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::generate();
    let http = reqwest::Client::new();
    let a = on_redis(&redis, &key, &org, &dir.path().join("a.json"));
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));
    a.forget().await.unwrap();
    let b = on_redis(&redis, &key, &org, &dir.path().join("b.json"));
    let e = b.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("logged out"), "{e}");
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
}

/// Item 2, a deleted store file: the same precise cause, no token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_store_never_sends_the_spent_configured_token() {
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store/tokens.bin");
    let ledger = dir.path().join("spent.json");
    let key = CacheKey::generate();
    let manager = |org: &Org| {
        TokenManager::builder(org.info().login_url.clone())
            .grant(org.refresh_grant())
            .store(Arc::new(EncryptedFileStore::new(&path, key.clone())) as Arc<dyn Store>)
            .store_key(StoreKey::from_string("file"))
            .introspect(false)
            .spent_ledger(&ledger)
            .without_tracing_sink()
            .build()
            .unwrap()
    };
    let http = reqwest::Client::new();
    assert_eq!(call(&http, &manager(&org)).await, Ok(Outcome::Ok));
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
    let e = manager(&org).token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
}

/// Item 2, a store file restored from an older copy (a backup, a snapshot rollback): it holds
/// a refresh token this host has since seen rotated away. It is not presented (that would
/// revoke the family); the cause says the store went back, and the org counts no reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_older_file_store_never_sends_its_rotated_out_token() {
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store/tokens.bin");
    let ledger = dir.path().join("spent.json");
    let key = CacheKey::generate();
    let manager = |org: &Org| {
        TokenManager::builder(org.info().login_url.clone())
            .grant(org.refresh_grant())
            .store(Arc::new(EncryptedFileStore::new(&path, key.clone())) as Arc<dyn Store>)
            .store_key(StoreKey::from_string("file"))
            .rotation(Rotation::On)
            .introspect(false)
            .spent_ledger(&ledger)
            .without_tracing_sink()
            .build()
            .unwrap()
    };
    let http = reqwest::Client::new();
    let first = manager(&org);
    assert_eq!(call(&http, &first).await, Ok(Outcome::Ok));
    let backup = std::fs::read(&path).unwrap();
    // Two more rotations: the backup's refresh token is two generations out.
    first.force_refresh().await.unwrap();
    first.force_refresh().await.unwrap();
    assert_eq!(org.token_requests("refresh_token").await, 3);
    std::fs::write(&path, &backup).unwrap();

    let restored = manager(&org);
    let e = restored.force_refresh().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("rotated away"), "{e}");
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 3, "{stats}");
    // The family is intact: the process that holds the newest refresh token still refreshes.
    first.force_refresh().await.unwrap();
}

/// Item 3, a store that reads but cannot write (Redis full: `maxmemory` reached with
/// `noeviction`, as a read-only store directory is for the file store): the rotating refresh
/// is never sent, since its answer could not be kept; the error says so. Once the store
/// writes again, one refresh heals, and the org never saw a reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_gets_no_rotating_refresh_sent() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let a = on_redis(
        &redis,
        &CacheKey::generate(),
        &org,
        &dir.path().join("a.json"),
    );
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));
    assert_eq!(org.token_requests("refresh_token").await, 1);

    let mut c = redis.conn();
    let full = |c: &mut redis::Connection, limit: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("noeviction")
            .arg("maxmemory")
            .arg(limit)
            .query(c)
            .unwrap();
    };
    full(&mut c, "1");
    org.logout().await;
    let dead = a.token().await.unwrap();
    assert!(a.invalidate_if_current(dead.generation(), sfkeep::diagnose::api_error::Api::Rest));
    // The refresh lock's SET is the first write refused: the store counts as unavailable, and
    // a rotating refresh fails closed (had the lock been taken, the declaration's write would
    // have refused the same way: "cannot record the rotating refresh about to be sent").
    let e = a.token().await.unwrap_err();
    assert!(
        matches!(
            e,
            sfkeep::Error::StoreUnavailable | sfkeep::Error::Store { .. }
        ),
        "{e:?}"
    );
    assert_eq!(
        org.token_requests("refresh_token").await,
        1,
        "nothing sent without a store that keeps the answer: {e}"
    );

    full(&mut c, "0");
    // Past the transient backoff (1 s after the first failure), one refresh heals.
    super::poll_until(
        std::time::Duration::from_secs(15),
        std::time::Duration::from_millis(100),
        "the manager refreshes once the store writes again",
        || async { a.token().await.is_ok() },
    )
    .await;
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["refresh_token"], 2, "{stats}");
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
}

/// Items 1 and 3, Redis killed during the refresh: the org has committed the rotation (the
/// old refresh token is dead) and the answer reaches a process whose store is gone. That
/// process holds the only valid refresh token; when Redis returns (empty: no persistence) it
/// writes it back over nothing, and a new process adopts it without a token request. No reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_the_refresh_the_holder_of_the_new_token_writes_it_back() {
    let _serial = SERIAL.lock().await;
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let key = CacheKey::generate();
    let a = on_redis(&redis, &key, &org, &dir.path().join("a.json"));
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));

    super::hold_next_token_answer(&org).await;
    org.logout().await;
    let healing = {
        let (http, a) = (http.clone(), a.clone());
        tokio::spawn(async move { call(&http, &a).await })
    };
    super::until_token_answer_held(&org, "the rotation committed at the org, its answer held")
        .await;
    redis.stop();
    super::release_held_answer(&org).await;
    assert_eq!(healing.await.unwrap(), Ok(Outcome::Healed));
    assert_eq!(org.token_requests("refresh_token").await, 2);

    redis.restart();
    let reader = RedisStore::new(&redis.url(), key.clone()).unwrap();
    super::poll_until(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        "the holder writes its token back to the restarted (empty) Redis",
        || async {
            let _ = a.token().await;
            matches!(reader.load(a.store_key()).await, Ok(Some(r)) if r.intent.is_none())
        },
    )
    .await;
    let b = on_redis(&redis, &key, &org, &dir.path().join("b.json"));
    assert_eq!(call(&http, &b).await, Ok(Outcome::Ok));
    assert_eq!(
        b.token().await.unwrap().record().fingerprint(),
        a.token().await.unwrap().record().fingerprint()
    );
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["refresh_token"], 2, "{stats}");
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
}

/// Bad input (issue #21): a record this member cannot read — written with another cache key,
/// or its bytes corrupted in Redis — is not "nothing stored". The configured refresh token may
/// be spent, so it is not presented (even without a ledger); the member says which record it
/// could not read, and the org counts no reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_is_never_taken_for_an_empty_store() {
    let _serial = SERIAL.lock().await;
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let org = rotating_org().await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let key = CacheKey::generate();
    let a = on_redis(&redis, &key, &org, &dir.path().join("a.json"));
    assert_eq!(call(&http, &a).await, Ok(Outcome::Ok));

    // Another cache key: the record does not decrypt. A fresh ledger: nothing says "spent".
    let other_key = on_redis(
        &redis,
        &CacheKey::generate(),
        &org,
        &dir.path().join("b.json"),
    );
    let e = other_key.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("cannot read"), "{e}");
    assert_eq!(org.token_requests("refresh_token").await, 1, "{e}");

    // Corrupted bytes under the same key (a truncated value, as a bad restore leaves it).
    let mut c = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("sfkeep:v1:*:tok")
        .query(&mut c)
        .unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&keys[0]).query(&mut c).unwrap();
    for f in fields.iter().filter(|f| f.as_str() != "gen") {
        let v: Vec<u8> = redis::cmd("HGET")
            .arg(&keys[0])
            .arg(f)
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(&keys[0])
            .arg(f)
            .arg(&v[..v.len() / 2])
            .query(&mut c)
            .unwrap();
    }
    let corrupt = on_redis(&redis, &key, &org, &dir.path().join("c.json"));
    let e = corrupt.token().await.unwrap_err();
    assert_eq!(e.cause(), Some(Cause::RefreshTokenLost), "{e}");
    assert!(e.to_string().contains("cannot read"), "{e}");
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
}
