//! The fleet store: one encrypted record per credential in Redis, shared by processes on many
//! machines, with a generation compare-and-set and an owner-checked refresh lock.
//!
//! Enabled by the cargo feature `redis`. In the CLI's config:
//!
//! ```toml
//! [profiles.prod.store]
//! kind = "redis"
//! url = "redis://redis.internal:6379/0"      # TLS: "rediss://redis.internal:6380/0"
//! # The values are encrypted with the cache key (SFKEEP_CACHE_KEY or key_file), as in the file store.
//! key_file = "/etc/sfkeep/cache.key"
//! ```
//!
//! `rediss://` uses rustls with the process's crypto provider (the same aws-lc-rs stack as the
//! HTTP client; no second TLS stack) and the OS trust store. A password in the URL
//! (`redis://:PASSWORD@host` or `redis://USER:PASSWORD@host`) is never printed: `Debug` shows the URL
//! with the password replaced.
//!
//! # Protocol (`docs/redis-protocol.md`)
//!
//! For a [`StoreKey`] `K` (a hash, never a secret), with a hash tag so every script touches one
//! slot on Redis Cluster:
//!
//! | key | value |
//! |---|---|
//! | `sfkeep:v1:{K}:tok` | HASH `gen` (plaintext u64, the fencing token) and `env` (the encrypted record); TTL = token lifetime + 60 s, none while it carries a refresh token |
//! | `sfkeep:v1:{K}:lock` | the refresh lock's owner id, `SET NX PX 15000` |
//! | `sfkeep:v1:{K}:evt` | pub/sub channel: `gen:N` after each write, `unlock` after each release |
//!
//! - `compare_and_set` is one Lua script (`CAS_GEN`): compare `gen`, write `gen` + `env`,
//!   `PEXPIRE`, `PUBLISH`.
//! - The holder extends the lock (an owner-checked `PEXPIRE`) every third of its TTL while the
//!   refresh runs, for at most [`MAX_LOCK_HOLD`]; a killed holder's lock expires after the TTL.
//! - The lock is released by a Lua compare-and-delete: only its owner deletes it, so a lock key
//!   holding anybody else's value (another process's, or a foreign one) is never deleted.
//! - A waiter subscribes to the channel and also polls every 100 ms ±25 %, up to its wait.
//! - A read (`load`, reading the lock) whose connection, made earlier, fails at once is tried
//!   again on a fresh connection before the failure counts: after a Redis restart the old
//!   connection is dead and Redis is not. Writes are not retried (the first may have applied).
//! - Every operation has a 250 ms timeout. After 3 consecutive failures the circuit opens:
//!   operations fail at once with [`Error::Store`] until a probe, allowed every 5 s, succeeds.
//!   Once it does, a manager that refreshed locally during the outage writes its token back
//!   through `CAS_GEN` (never over a newer generation, a logout tombstone, or an unreadable
//!   value of a generation as high as its own; see [`crate::manager`]).
//! - A value that is corrupt, of another format, or encrypted with another key is a miss
//!   (`Ok(None)`) plus a [`StoreWarning`]; it is never served. The next write replaces it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script, Value};

use super::envelope::{CacheKey, decode_record, encode_record};
use super::{CasOutcome, RefreshLock, Store, StoreKey, StoreWarning};
use crate::error::{Error, Result};
use crate::token::TokenRecord;

/// Default refresh lock TTL.
pub const LOCK_TTL: Duration = Duration::from_secs(15);
/// The longest a live holder keeps the refresh lock by extending it. A refresh that falls back
/// to a second grant can outlast one TTL (two 10 s token requests), so the holder extends the
/// lock every third of the TTL; a holder stuck beyond this bound stops extending and the lock
/// expires, so one wedged process cannot block the fleet forever.
pub const MAX_LOCK_HOLD: Duration = Duration::from_secs(60);
/// Default timeout of one Redis operation.
pub const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Consecutive failures that open the circuit.
pub const BREAKER_THRESHOLD: u32 = 3;
/// How often an open circuit lets one probe through.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Lock polling interval (±25 % jitter).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Extra TTL on a stored record beyond the token's lifetime.
const RECORD_TTL_EXTRA: Duration = Duration::from_secs(60);

/// How long Redis keeps a record. One that carries a refresh token has no TTL: under rotation
/// it holds the only valid refresh token, which must outlive any idle gap (a night, a
/// redeploy) far past the access token's session timeout; the access token inside it simply
/// expires. Any other record (and a logout tombstone) lives as long as its access token, plus
/// a minute.
fn record_ttl(record: &TokenRecord) -> Option<Duration> {
    if record.refresh_token.is_some() && !record.is_tombstone() {
        return None;
    }
    Some(record.expires_at.since(record.issued_at) + RECORD_TTL_EXTRA)
}

const PREFIX: &str = "sfkeep:v1";
const OWNER_PREFIX: &str = "sfkeep-";

/// `CAS_GEN`. KEYS[1] = tok. ARGV: expected gen ("" = nothing stored, "!type" = a foreign
/// value seen by `load`), new gen, envelope, TTL ms (0: none), channel. Returns `{1, gen}` or
/// `{0, current}`.
const CAS_GEN: &str = r#"
local t = redis.call('TYPE', KEYS[1])['ok']
local cur = ''
if t == 'hash' then
  cur = redis.call('HGET', KEYS[1], 'gen') or ''
elseif t ~= 'none' then
  cur = '!' .. t
end
if cur ~= ARGV[1] then
  return {0, cur}
end
if t ~= 'hash' then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'env', ARGV[3])
if ARGV[4] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
redis.call('PUBLISH', ARGV[5], 'gen:' .. ARGV[2])
return {1, ARGV[2]}
"#;

/// Reads a record. KEYS[1] = tok. Returns `{type, gen, env}` (`gen`/`env` only for a hash).
const READ: &str = r#"
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'hash' then
  return {t, redis.call('HGET', KEYS[1], 'gen'), redis.call('HGET', KEYS[1], 'env')}
end
return {t}
"#;

/// Owner-checked release. KEYS[1] = lock. ARGV: owner, channel. Never deletes another value.
const RELEASE: &str = r#"
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'unlock')
  return 1
end
return 0
"#;

/// Owner-checked extension. KEYS[1] = lock. ARGV: owner, TTL ms. Returns 1 when extended.
const EXTEND: &str = r#"
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// A token store in Redis for a fleet of processes. Cheap to clone; clones share the
/// connection and the circuit breaker.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    shown_url: String,
    key: CacheKey,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    op_timeout: Duration,
    lock_ttl: Duration,
    probe_interval: Duration,
    breaker: Mutex<Breaker>,
    warnings: Mutex<Vec<StoreWarning>>,
    /// Per key: the raw `gen` of an unreadable value last seen by `load`, so that a write
    /// expecting "nothing usable stored" replaces exactly that value and nothing newer.
    unreadable: Mutex<HashMap<String, String>>,
    read: Script,
    cas: Script,
    release: Script,
    extend: Script,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.shown_url)
            .field("key", &self.inner.key)
            .field("lock_ttl", &self.inner.lock_ttl)
            .finish()
    }
}

fn store_err(message: impl Into<String>) -> Error {
    Error::Store {
        store: "redis",
        message: message.into(),
    }
}

/// The URL with any password replaced, for messages.
fn show_url(url: &str) -> String {
    crate::redact::redacted_url(url)
}

/// Builds a [`RedisStore`]: every setter says its default.
#[derive(Debug)]
pub struct RedisStoreBuilder {
    url: String,
    key: CacheKey,
    op_timeout: Duration,
    lock_ttl: Duration,
    probe_interval: Duration,
}

impl RedisStoreBuilder {
    /// The refresh lock's TTL: how long a dead holder blocks others. Defaults to
    /// 15 s; at least 10 ms.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_millis(10));
        self
    }

    /// The timeout of one operation. Defaults to 250 ms.
    pub fn op_timeout(mut self, d: Duration) -> Self {
        self.op_timeout = d;
        self
    }

    /// How often an open circuit lets a probe through. Defaults to 5 s.
    pub fn probe_interval(mut self, d: Duration) -> Self {
        self.probe_interval = d;
        self
    }

    /// The store. Fails on a URL that is not a Redis URL; does not connect (the first
    /// operation does).
    pub fn build(self) -> Result<RedisStore> {
        let shown_url = show_url(&self.url);
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| Error::Config(format!("invalid redis URL {shown_url}: {:?}", e.kind())))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                shown_url,
                key: self.key,
                conn: tokio::sync::Mutex::new(None),
                op_timeout: self.op_timeout,
                lock_ttl: self.lock_ttl,
                probe_interval: self.probe_interval,
                breaker: Mutex::new(Breaker::default()),
                warnings: Mutex::new(Vec::new()),
                unreadable: Mutex::new(HashMap::new()),
                read: Script::new(READ),
                cas: Script::new(CAS_GEN),
                release: Script::new(RELEASE),
                extend: Script::new(EXTEND),
            }),
        })
    }
}

impl RedisStore {
    /// A store at `url` (`redis://host:port/db` or `rediss://…` for TLS), values encrypted
    /// with `key`, with the default settings. Does not connect: the first operation does.
    pub fn new(url: &str, key: CacheKey) -> Result<Self> {
        Self::builder(url, key).build()
    }

    /// A builder for a store at `url` with values encrypted with `key`.
    pub fn builder(url: &str, key: CacheKey) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            key,
            op_timeout: OP_TIMEOUT,
            lock_ttl: LOCK_TTL,
            probe_interval: PROBE_INTERVAL,
        }
    }

    /// The Redis key of the record for `key`.
    pub fn record_key(key: &StoreKey) -> String {
        format!("{PREFIX}:{{{}}}:tok", key.as_str())
    }

    /// The Redis key of the refresh lock for `key`.
    pub fn lock_key(key: &StoreKey) -> String {
        format!("{PREFIX}:{{{}}}:lock", key.as_str())
    }

    /// The pub/sub channel for `key`.
    pub fn channel(key: &StoreKey) -> String {
        format!("{PREFIX}:{{{}}}:evt", key.as_str())
    }

    /// Whether the circuit is open (operations fail at once).
    pub fn circuit_open(&self) -> bool {
        self.inner.lock_breaker().open_until.is_some()
    }
}

impl Inner {
    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        crate::sync::lock(&self.breaker)
    }

    fn warn(&self, message: String) {
        self.warn_as("store.record_skipped", message);
    }

    fn warn_as(&self, event: &'static str, message: String) {
        tracing::warn!(target: "sfkeep::auth", event, store = "redis", detail = %message);
        crate::sync::lock(&self.warnings).push(StoreWarning(message));
    }

    /// Lets an operation through, or fails at once while the circuit is open.
    fn admit(&self) -> Result<()> {
        let mut b = self.lock_breaker();
        match b.open_until {
            Some(t) if Instant::now() < t => Err(store_err(format!(
                "{} is unreachable ({} consecutive failures); not trying again for {:?}",
                self.shown_url,
                b.failures,
                t - Instant::now()
            ))),
            Some(_) => {
                // Half-open: this call is the probe; others keep failing fast meanwhile.
                b.open_until = Some(Instant::now() + self.probe_interval);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn succeeded(&self) {
        let mut b = self.lock_breaker();
        if b.open_until.is_some() {
            tracing::info!(target: "sfkeep::auth", event = "l2.recovered", store = "redis", url = %self.shown_url);
        }
        *b = Breaker::default();
    }

    fn failed(&self) {
        let mut b = self.lock_breaker();
        b.failures = b.failures.saturating_add(1);
        if b.failures >= BREAKER_THRESHOLD {
            if b.open_until.is_none() {
                tracing::warn!(target: "sfkeep::auth", event = "l2.unavailable", store = "redis", url = %self.shown_url);
            }
            b.open_until = Some(Instant::now() + self.probe_interval);
        }
    }

    async fn connection(&self) -> std::result::Result<MultiplexedConnection, String> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.shown_url))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs one operation with the timeout and the circuit breaker.
    async fn op<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.admit()?;
        let outcome = self.attempt(what, f).await;
        self.settle(outcome).await
    }

    /// A read ([`Self::op`] for an operation that changes nothing): when a connection made
    /// earlier fails at once (Redis restarted, an idle connection was cut), the read is tried
    /// again on a fresh connection before the failure counts. One dead connection is no
    /// outage; a write is never sent twice this way (its first attempt may have been applied).
    async fn read_op<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.admit()?;
        let reused = self.conn.lock().await.is_some();
        let outcome = match self.attempt(what, &mut f).await {
            Err(e) if reused && e.fatal && !e.timed_out => {
                self.forget_connection().await;
                self.attempt(what, &mut f).await
            }
            other => other,
        };
        self.settle(outcome).await
    }

    /// One try of `f` within the operation timeout.
    async fn attempt<T, F, Fut>(&self, what: &str, f: F) -> std::result::Result<T, OpFailure>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let run = async {
            let conn = self
                .connection()
                .await
                .map_err(|message| OpFailure::fatal(message, false))?;
            f(conn).await.map_err(|e| OpFailure {
                message: format!("{what} on {}: {e}", self.shown_url),
                fatal: !matches!(e.kind(), redis::ErrorKind::Server(_)),
                timed_out: e.is_timeout(),
            })
        };
        match tokio::time::timeout(self.op_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(OpFailure::fatal(
                format!(
                    "{what} on {} timed out after {:?}",
                    self.shown_url, self.op_timeout
                ),
                true,
            )),
        }
    }

    /// The circuit breaker's bookkeeping for an operation's outcome.
    async fn settle<T>(&self, outcome: std::result::Result<T, OpFailure>) -> Result<T> {
        match outcome {
            Ok(v) => {
                self.succeeded();
                Ok(v)
            }
            Err(e) => {
                if e.fatal {
                    self.forget_connection().await;
                }
                self.failed();
                Err(store_err(e.message))
            }
        }
    }

    /// `HMGET gen env`, decoded. Unreadable values are a miss plus a warning.
    async fn load(&self, key: &StoreKey) -> Result<Option<TokenRecord>> {
        let tok = RedisStore::record_key(key);
        let k2 = tok.clone();
        let script = &self.read;
        let reply: Vec<Value> = self
            .read_op("load", |mut c| {
                let k2 = k2.clone();
                async move { script.key(&k2).invoke_async(&mut c).await }
            })
            .await?;
        let text = |v: Option<&Value>| match v {
            Some(Value::BulkString(b)) => Some(b.clone()),
            Some(Value::SimpleString(s)) => Some(s.clone().into_bytes()),
            _ => None,
        };
        let kind = text(reply.first())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let reply: std::result::Result<(Option<String>, Option<Vec<u8>>), String> =
            match kind.as_str() {
                "hash" => Ok((
                    text(reply.get(1)).map(|b| String::from_utf8_lossy(&b).into_owned()),
                    text(reply.get(2)),
                )),
                "none" => Ok((None, None)),
                other => Err(other.to_owned()),
            };
        let mut unreadable = crate::sync::lock(&self.unreadable);
        let (gen_raw, env) = match reply {
            Ok(v) => v,
            Err(t) => {
                unreadable.insert(tok.clone(), format!("!{t}"));
                drop(unreadable);
                self.warn(format!(
                    "{tok} holds a {t}, not an sfkeep v1 record (another format); treated as a miss, the next write replaces it"
                ));
                return Ok(None);
            }
        };
        let (gen_raw, env) = match (gen_raw, env) {
            (None, None) => {
                unreadable.remove(&tok);
                return Ok(None);
            }
            (g, e) => (g.unwrap_or_default(), e),
        };
        let problem = match (gen_raw.parse::<u64>(), env) {
            (Ok(g), Some(env)) => match decode_record(&self.key, &env) {
                Ok(mut rec) if rec.generation == g => {
                    unreadable.remove(&tok);
                    rec.generation = g;
                    return Ok(Some(rec));
                }
                Ok(rec) => format!(
                    "generation {g} in the hash but {} in the record",
                    rec.generation
                ),
                Err(e) => e,
            },
            (Err(_), _) => "its generation is not a number".to_owned(),
            (_, None) => "it has no envelope".to_owned(),
        };
        unreadable.insert(tok.clone(), gen_raw);
        drop(unreadable);
        self.warn(format!(
            "{tok} cannot be used: {problem}; treated as a miss (never served), the next write replaces it"
        ));
        Ok(None)
    }

    async fn compare_and_set(
        &self,
        key: &StoreKey,
        expected: Option<u64>,
        record: &TokenRecord,
    ) -> Result<CasOutcome> {
        let tok = RedisStore::record_key(key);
        let expected_raw = match expected {
            Some(g) => g.to_string(),
            None => crate::sync::lock(&self.unreadable)
                .get(&tok)
                .cloned()
                .unwrap_or_default(),
        };
        let env = encode_record(&self.key, record);
        let ttl_ms = record_ttl(record).map_or(0, |t| t.as_millis().max(1) as u64);
        let channel = RedisStore::channel(key);
        let script = &self.cas;
        let (written, _current): (i64, String) = self
            .op("compare-and-set", |mut c| async move {
                script
                    .key(&tok)
                    .arg(&expected_raw)
                    .arg(record.generation)
                    .arg(env)
                    .arg(ttl_ms)
                    .arg(&channel)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if written == 1 {
            crate::sync::lock(&self.unreadable).remove(&RedisStore::record_key(key));
            return Ok(CasOutcome::Written);
        }
        Ok(CasOutcome::Conflict(self.load(key).await?))
    }

    /// `SET lock owner NX PX ttl`: true when taken.
    async fn try_lock(&self, lock: &str, owner: &str) -> Result<bool> {
        let ttl = self.lock_ttl.as_millis() as u64;
        let r: Option<String> = self
            .op("lock", |mut c| async move {
                redis::cmd("SET")
                    .arg(lock)
                    .arg(owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(r.is_some())
    }

    async fn release(&self, lock: &str, owner: &str, channel: &str) -> Result<bool> {
        let script = &self.release;
        let r: i64 = self
            .op("unlock", |mut c| async move {
                script
                    .key(lock)
                    .arg(owner)
                    .arg(channel)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(r == 1)
    }

    /// Extends the lock's TTL if this owner still holds it: true when extended.
    async fn extend(&self, lock: &str, owner: &str) -> Result<bool> {
        let script = &self.extend;
        let ttl = self.lock_ttl.as_millis() as u64;
        let r: i64 = self
            .op("extend lock", |mut c| async move {
                script
                    .key(lock)
                    .arg(owner)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(r == 1)
    }

    /// Keeps `lock` alive while its guard lives: every third of the TTL, up to
    /// [`MAX_LOCK_HOLD`]. Stops when the lock is no longer ours (it expired and someone else
    /// took it; the compare-and-set still fences our write) or Redis does not answer (the
    /// lock then expires by itself).
    async fn keep_alive(self: Arc<Self>, lock: String, owner: String) {
        let every = (self.lock_ttl / 3).max(Duration::from_millis(5));
        let until = tokio::time::Instant::now() + MAX_LOCK_HOLD;
        loop {
            tokio::time::sleep(every).await;
            if tokio::time::Instant::now() + every > until {
                self.warn_as("store.lock_hold_limit", format!(
                    "{lock}: the refresh has held the lock for {MAX_LOCK_HOLD:?}; no longer extending it"
                ));
                return;
            }
            match self.extend(&lock, &owner).await {
                Ok(true) => {}
                Ok(false) => {
                    self.warn_as("store.lock_lost", format!(
                        "{lock}: the refresh lock expired while held; another process may refresh too"
                    ));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// After a lock wait timed out: warn when the lock key holds something no sfkeep wrote.
    async fn check_foreign_lock(&self, lock: &str) {
        let r: Result<Value> = self
            .read_op("read lock", |mut c| async move {
                redis::cmd("GET").arg(lock).query_async(&mut c).await
            })
            .await;
        let foreign = match r {
            Ok(Value::BulkString(b)) => !b.starts_with(OWNER_PREFIX.as_bytes()),
            Ok(Value::Nil) | Err(_) => false,
            Ok(_) => true,
        };
        if foreign {
            self.warn(format!(
                "{lock} holds a value sfkeep did not write; it is left alone (delete it by hand if nothing else uses it)"
            ));
        }
    }

    async fn lock(
        self: &Arc<Self>,
        key: &StoreKey,
        wait: Duration,
    ) -> Result<Option<Box<dyn RefreshLock>>> {
        let lock = RedisStore::lock_key(key);
        let channel = RedisStore::channel(key);
        let owner = format!(
            "{OWNER_PREFIX}{}-{:032x}",
            std::process::id(),
            rand::random::<u128>()
        );
        let guard = |owner: String| {
            let keep_alive = tokio::spawn(Arc::clone(self).keep_alive(lock.clone(), owner.clone()));
            Some(Box::new(RedisLockGuard {
                store: Arc::clone(self),
                lock: lock.clone(),
                channel: channel.clone(),
                owner,
                keep_alive: keep_alive.abort_handle(),
            }) as Box<dyn RefreshLock>)
        };
        if self.try_lock(&lock, &owner).await? {
            return Ok(guard(owner));
        }
        let deadline = tokio::time::Instant::now() + wait;
        // Wake-ups by pub/sub; polling covers a lost message or a pub/sub failure.
        let mut messages = match tokio::time::timeout(self.op_timeout, async {
            let mut ps = self.client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps.into_on_message())
        })
        .await
        {
            Ok(Ok(s)) => Some(s),
            _ => None,
        };
        loop {
            if self.try_lock(&lock, &owner).await? {
                return Ok(guard(owner));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.check_foreign_lock(&lock).await;
                return Ok(None);
            }
            let poll = POLL_INTERVAL.mul_f64(0.75 + 0.5 * fastrand::f64());
            let until = deadline.min(now + poll);
            match messages.as_mut() {
                Some(s) => {
                    if let Ok(None) = tokio::time::timeout_at(until, s.next()).await {
                        messages = None;
                    }
                }
                None => tokio::time::sleep_until(until).await,
            }
        }
    }
}

/// Why one try of an operation failed.
struct OpFailure {
    message: String,
    /// The connection cannot be trusted any more (anything but an error reply of Redis).
    fatal: bool,
    timed_out: bool,
}

impl OpFailure {
    fn fatal(message: String, timed_out: bool) -> Self {
        OpFailure {
            message,
            fatal: true,
            timed_out,
        }
    }
}

/// A held Redis refresh lock, extended while held; dropping it stops the extension and
/// releases the lock if this process still owns it.
struct RedisLockGuard {
    store: Arc<Inner>,
    lock: String,
    channel: String,
    owner: String,
    keep_alive: tokio::task::AbortHandle,
}

impl fmt::Debug for RedisLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLockGuard")
            .field("lock", &self.lock)
            .finish()
    }
}

impl RefreshLock for RedisLockGuard {
    fn still_held(&self) -> BoxFuture<'_, Result<bool>> {
        // Extending is the check: it succeeds only while this owner holds the lock.
        Box::pin(self.store.extend(&self.lock, &self.owner))
    }
}

impl Drop for RedisLockGuard {
    fn drop(&mut self) {
        self.keep_alive.abort();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // it expires after its TTL
        };
        let store = Arc::clone(&self.store);
        let lock = std::mem::take(&mut self.lock);
        let channel = std::mem::take(&mut self.channel);
        let owner = std::mem::take(&mut self.owner);
        rt.spawn(async move {
            let _ = store.release(&lock, &owner, &channel).await;
        });
    }
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<TokenRecord>>> {
        Box::pin(self.inner.load(key))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: Option<u64>,
        record: &'a TokenRecord,
    ) -> BoxFuture<'a, Result<CasOutcome>> {
        Box::pin(self.inner.compare_and_set(key, expected, record))
    }

    fn lock<'a>(
        &'a self,
        key: &'a StoreKey,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLock>>>> {
        Box::pin(self.inner.lock(key, wait))
    }

    fn unreadable_generation(&self, key: &StoreKey) -> Option<u64> {
        crate::sync::lock(&self.inner.unreadable)
            .get(&Self::record_key(key))
            .and_then(|g| g.parse().ok())
    }

    fn holds_unreadable(&self, key: &StoreKey) -> bool {
        crate::sync::lock(&self.inner.unreadable).contains_key(&Self::record_key(key))
    }

    fn take_warnings(&self) -> Vec<StoreWarning> {
        std::mem::take(&mut *crate::sync::lock(&self.inner.warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_have_hash_tags_and_no_secret() {
        let k = StoreKey::from_string("0123456789abcdef");
        assert_eq!(
            RedisStore::record_key(&k),
            "sfkeep:v1:{0123456789abcdef}:tok"
        );
        assert_eq!(
            RedisStore::lock_key(&k),
            "sfkeep:v1:{0123456789abcdef}:lock"
        );
        assert_eq!(RedisStore::channel(&k), "sfkeep:v1:{0123456789abcdef}:evt");
    }

    #[test]
    fn debug_hides_the_password() {
        let s = RedisStore::new(
            "redis://:hunter2secret@127.0.0.1:6379/0",
            CacheKey::generate(),
        )
        .unwrap();
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2secret"), "{d}");
        assert!(d.contains("127.0.0.1"), "{d}");
    }

    #[tokio::test]
    async fn circuit_opens_after_three_failures_and_fails_fast() {
        // Port 1 on loopback: connection refused at once.
        let s = RedisStore::builder("redis://127.0.0.1:1/", CacheKey::generate())
            .probe_interval(Duration::from_secs(60))
            .build()
            .unwrap();
        let k = StoreKey::from_string("k");
        for _ in 0..3 {
            assert!(matches!(s.load(&k).await, Err(Error::Store { .. })));
        }
        assert!(s.circuit_open());
        let t = Instant::now();
        let e = s.load(&k).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(20));
        assert!(e.to_string().contains("not trying again"), "{e}");
    }
}
