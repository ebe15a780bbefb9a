//! Fleet test support: a private `redis-server` per test, and worker processes (this test
//! binary re-run as `fleet_worker`) driven one command line at a time over stdin.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfkeep::manager::{OnStoreUnavailable, Rotation};
use sfkeep::secret::{ClientSecret, PrivateKeyPem, RefreshToken};
use sfkeep::store::{CacheKey, MemoryStore, RedisStore, Store};
use sfkeep::{Error, Grant, TokenManager};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::support::Org;

/// Heavy tests (many processes, timing) run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// redis-server

/// A `redis-server` on a free loopback port, no persistence, stopped on drop.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn redis_server_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts one, or `None` (with a message) when `redis-server` is absent and `CI` is unset.
    /// Under CI a missing `redis-server` is a failure.
    pub fn start() -> Option<RedisServer> {
        if !redis_server_installed() {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "redis-server is not installed and CI is set: the fleet tests need it (scripts/test installs it)"
                );
            }
            eprintln!(
                "SKIPPED: redis-server is not installed (apt-get install redis-server); the fleet tests did not run"
            );
            return None;
        }
        // A port another process took between `free_port` and the bind is tried again.
        for _ in 0..5 {
            let mut s = RedisServer {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
            };
            if s.spawn() {
                return Some(s);
            }
        }
        panic!("redis-server could not bind a free loopback port in 5 tries");
    }

    /// Starts `redis-server` on `self.port` and waits until it answers; `false` when the port
    /// was taken (it exited). The server that answers must be this child: with the port taken
    /// by another test process's Redis, a PING alone would succeed against that one.
    fn spawn(&mut self) -> bool {
        let dir = self.dir.path();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--pidfile")
            .arg(dir.join("redis.pid"))
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let pid = child.id();
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                self.child = None;
                return false;
            }
            let answered = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c));
            if let Ok(info) = answered {
                let ours = info
                    .lines()
                    .any(|l| l.trim() == format!("process_id:{pid}"));
                if ours {
                    return true;
                }
            }
            assert!(
                Instant::now() < until,
                "redis-server on port {} did not answer PING within 10 s; log: {}",
                self.port,
                std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL): an outage, not a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server could not bind port {} again: another process took it",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain synchronous connection, to read and write raw values.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// Every key and its raw value bytes (strings, and every field and value of hashes).
    pub fn dump_all(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.conn();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        let mut out = Vec::new();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
            let mut bytes = Vec::new();
            match t.as_str() {
                "string" => {
                    let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut c).unwrap();
                    bytes.extend(v);
                }
                "hash" => {
                    let v: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
                    for x in v {
                        bytes.extend(x);
                        bytes.push(b'\n');
                    }
                }
                other => panic!("unexpected key type {other} at {k}"),
            }
            out.push((k, bytes));
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn new_cache_key_b64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

// ---------------------------------------------------------------------------------------------
// worker processes

/// Which grant a worker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetGrant {
    Refresh,
    Jwt,
}

/// What a worker needs to know.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    pub grant: FleetGrant,
    /// `None`: a memory store (the baseline where each process refreshes for itself).
    pub redis_url: Option<String>,
    pub cache_key: String,
    pub lock_ttl: Duration,
    pub probe_interval: Duration,
    /// A JWT bearer fallback grant behind the refresh-token grant.
    pub jwt_fallback: bool,
}

impl WorkerSpec {
    pub fn new(grant: FleetGrant, redis: &RedisServer) -> Self {
        WorkerSpec {
            grant,
            redis_url: Some(redis.url()),
            cache_key: new_cache_key_b64(),
            lock_ttl: Duration::from_secs(15),
            probe_interval: Duration::from_millis(500),
            jwt_fallback: false,
        }
    }
}

/// One line a worker answered: `key=value` pairs, `first_err=` (the rest of the line) last.
#[derive(Debug, Clone, Default)]
pub struct Reply(pub HashMap<String, String>);

impl Reply {
    fn parse(line: &str) -> Reply {
        let mut m = HashMap::new();
        let (head, err) = match line.split_once(" first_err=") {
            Some((h, e)) => (h, Some(e)),
            None => (line, None),
        };
        for kv in head.split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                m.insert(k.to_owned(), v.to_owned());
            }
        }
        if let Some(e) = err {
            m.insert("first_err".into(), e.to_owned());
        }
        Reply(m)
    }
    pub fn n(&self, k: &str) -> u64 {
        self.0.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    /// The `lat=` list: every token() latency in µs, and whether it was a wait after a 401.
    pub fn latencies(&self) -> Vec<(u64, bool)> {
        self.s("lat")
            .split(',')
            .filter_map(|x| x.parse::<u64>().ok())
            .map(|v| (v & !HEAL_MARK, v & HEAL_MARK != 0))
            .collect()
    }
    pub fn s(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
}

pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    stderr_path: PathBuf,
}

impl Worker {
    pub async fn send(&mut self, cmd: &str) {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .expect("worker stdin");
        self.stdin.flush().await.unwrap();
    }

    pub async fn recv(&mut self) -> Reply {
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let line = tokio::time::timeout_at(until, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("worker did not answer within 60 s"))
                .expect("worker stdout");
            let Some(line) = line else {
                let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
                panic!("worker exited without answering; stderr:\n{err}");
            };
            if let Some(rest) = line.split("FLEET ").nth(1) {
                return Reply::parse(rest);
            }
        }
    }

    pub async fn ask(&mut self, cmd: &str) -> Reply {
        self.send(cmd).await;
        self.recv().await
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the worker process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the worker runs").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }
}

pub struct Fleet {
    pub workers: Vec<Worker>,
    _logs: tempfile::TempDir,
}

impl Fleet {
    pub async fn spawn(n: usize, org: &Org, spec: &WorkerSpec) -> Fleet {
        let logs = tempfile::tempdir().unwrap();
        let info = org.info();
        let mut workers = Vec::new();
        for i in 0..n {
            let stderr_path = logs.path().join(format!("worker{i}.err"));
            let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "--ignored",
                "--exact",
                "fleet_worker",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SFKEEP_FLEET_WORKER", "1")
            .env("FLEET_LOGIN_URL", &info.login_url)
            .env(
                "FLEET_GRANT",
                match spec.grant {
                    FleetGrant::Refresh => "refresh",
                    FleetGrant::Jwt => "jwt",
                },
            )
            .env("FLEET_CLIENT_ID", &info.client_id)
            .env("FLEET_CLIENT_SECRET", &info.client_secret)
            .env("FLEET_REFRESH_TOKEN", &info.refresh_token)
            .env("FLEET_USERNAME", &info.username)
            .env("FLEET_JWT_KEY_FILE", &info.jwt_key_file)
            .env(
                "FLEET_REDIS_URL",
                spec.redis_url.clone().unwrap_or_default(),
            )
            .env("FLEET_LOCK_TTL_MS", spec.lock_ttl.as_millis().to_string())
            .env(
                "FLEET_PROBE_MS",
                spec.probe_interval.as_millis().to_string(),
            )
            .env("SFKEEP_CACHE_KEY", &spec.cache_key)
            .env(
                "FLEET_JWT_FALLBACK",
                if spec.jwt_fallback { "1" } else { "" },
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .kill_on_drop(true);
            let mut child = cmd.spawn().expect("worker starts");
            let stdin = child.stdin.take().unwrap();
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut w = Worker {
                child,
                stdin,
                lines,
                stderr_path,
            };
            // Each worker says hello once its manager is built.
            let hello = w.recv().await;
            assert_eq!(hello.s("ready"), "1", "{hello:?}");
            workers.push(w);
        }
        Fleet {
            workers,
            _logs: logs,
        }
    }

    /// Sends `cmd` to every worker, then collects every answer.
    pub async fn all(&mut self, cmd: &str) -> Vec<Reply> {
        for w in &mut self.workers {
            w.send(cmd).await;
        }
        let mut out = Vec::new();
        for w in &mut self.workers {
            out.push(w.recv().await);
        }
        out
    }

    pub async fn quit(mut self) {
        for w in &mut self.workers {
            let _ = w.stdin.write_all(b"quit\n").await;
            let _ = w.stdin.flush().await;
        }
        for w in &mut self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), w.child.wait()).await;
        }
    }
}

/// Sum of one numeric field over replies.
pub fn sum(replies: &[Reply], k: &str) -> u64 {
    replies.iter().map(|r| r.n(k)).sum()
}

// ---------------------------------------------------------------------------------------------
// the worker side

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"))
}

/// The worker's main loop: builds a manager from the environment, prints `FLEET ready=1`, then
/// answers one line per command:
/// - `calls N`: N concurrent API calls that heal once after a 401 (token(), GET /limits,
///   on 401 invalidate_if_current + token() + replay);
/// - `force N`: N forced refreshes, one after the other;
/// - `quit`.
pub async fn worker_main() {
    let grant = match env("FLEET_GRANT").as_str() {
        "jwt" => Grant::jwt_bearer(
            env("FLEET_CLIENT_ID"),
            env("FLEET_USERNAME"),
            PrivateKeyPem::new(std::fs::read_to_string(env("FLEET_JWT_KEY_FILE")).unwrap()),
        ),
        _ => Grant::refresh_token(
            env("FLEET_CLIENT_ID"),
            Some(ClientSecret::new(env("FLEET_CLIENT_SECRET"))),
            RefreshToken::new(env("FLEET_REFRESH_TOKEN")),
        ),
    };
    let redis_url = env("FLEET_REDIS_URL");
    let store: Arc<dyn Store> = if redis_url.is_empty() {
        Arc::new(MemoryStore::new())
    } else {
        Arc::new(
            RedisStore::builder(&redis_url, CacheKey::load(None).unwrap())
                .lock_ttl(Duration::from_millis(
                    env("FLEET_LOCK_TTL_MS").parse().unwrap(),
                ))
                .probe_interval(Duration::from_millis(
                    env("FLEET_PROBE_MS").parse().unwrap(),
                ))
                .build()
                .unwrap(),
        )
    };
    // The system clock: tokens last 2 h, the tests take seconds; `issued_at` must be real
    // time for the second-heal rule of `one_call`.
    let mut b = TokenManager::builder(env("FLEET_LOGIN_URL"));
    if !env("FLEET_JWT_FALLBACK").is_empty() {
        b = b.fallback_grant(Grant::jwt_bearer(
            env("FLEET_CLIENT_ID"),
            env("FLEET_USERNAME"),
            PrivateKeyPem::new(std::fs::read_to_string(env("FLEET_JWT_KEY_FILE")).unwrap()),
        ));
    }
    let m = b
        .grant(grant)
        .store(store)
        .introspect(false)
        .without_tracing_sink()
        .on_store_unavailable(OnStoreUnavailable::Auto)
        .rotation(Rotation::Auto)
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    println!("FLEET ready=1");
    // stdin on a thread (tokio's `io-std` is not enabled in this workspace).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let mut parts = line.split_whitespace();
        let cmd = parts.next().unwrap_or("");
        let n: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(1);
        let reply = match cmd {
            "calls" => calls(&http, &m, n).await,
            "force" => force(&m, n).await,
            "quit" => break,
            other => format!("unknown={other}"),
        };
        println!("FLEET {reply}");
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    healed: u64,
    store_unavailable: u64,
    other_err: u64,
    /// Errors whose cause is `refresh_interrupted`.
    interrupted: u64,
    max_gen: u64,
    first_err: Option<String>,
    token_latency_us: Vec<u64>,
}

impl Tally {
    fn err(&mut self, e: &Error) {
        if matches!(e, Error::StoreUnavailable) {
            self.store_unavailable += 1;
        } else {
            self.other_err += 1;
            if e.cause() == Some(sfkeep::diagnose::Cause::RefreshInterrupted) {
                self.interrupted += 1;
            }
            self.first_err.get_or_insert_with(|| e.to_string());
        }
    }

    fn render(mut self) -> String {
        let lat: Vec<String> = self
            .token_latency_us
            .iter()
            .map(|v| v.to_string())
            .collect();
        for v in &mut self.token_latency_us {
            *v &= !HEAL_MARK;
        }
        self.token_latency_us.sort_unstable();
        let pct = |p: f64| {
            let v = &self.token_latency_us;
            if v.is_empty() {
                0
            } else {
                v[((v.len() as f64 - 1.0) * p).round() as usize]
            }
        };
        format!(
            "ok={} healed={} store_unavailable={} err={} interrupted={} gen={} p50_us={} p99_us={} max_us={} n_lat={} lat={} first_err={}",
            self.ok,
            self.healed,
            self.store_unavailable,
            self.other_err,
            self.interrupted,
            self.max_gen,
            pct(0.5),
            pct(0.99),
            pct(1.0),
            self.token_latency_us.len(),
            lat.join(","),
            self.first_err.unwrap_or_default()
        )
    }
}

async fn timed_token(m: &TokenManager, lat: &mut Vec<u64>) -> Result<sfkeep::Token, Error> {
    let t = Instant::now();
    let r = m.token().await;
    lat.push(t.elapsed().as_micros() as u64);
    r
}

async fn limits(http: &reqwest::Client, t: &sfkeep::Token) -> u16 {
    http.get(format!("{}/services/data/v59.0/limits", t.instance_url()))
        .bearer_auth(t.access_token().expose_secret())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Marks a token() latency measured after a 401 (the wait on the shared refresh).
pub const HEAL_MARK: u64 = 1 << 62;

/// One call: 0 = ok, 1 = healed; Err otherwise. Pushes token() latencies.
///
/// On a 401: invalidate that generation, get a token, replay. A replay that gets 401 again is
/// healed once more only if its token was issued before the call started (a newer generation
/// adopted from the store, but issued before the session died); a token issued after the call
/// started that still gets 401 is an error (token-manager-design §2.5).
async fn one_call(
    http: &reqwest::Client,
    m: &TokenManager,
    lat: &mut Vec<u64>,
) -> Result<(u8, u64), Error> {
    let started = m.server_clock().now();
    let mut t = timed_token(m, lat).await?;
    let mut healed = 0u8;
    loop {
        match limits(http, &t).await {
            200 => return Ok((healed.min(1), t.generation())),
            401 if healed == 0 || (healed == 1 && t.record().issued_at < started) => {
                m.invalidate_if_current(t.generation(), sfkeep::diagnose::api_error::Api::Rest);
                let mut heal = Vec::new();
                let r = timed_token(m, &mut heal).await;
                // A heal's wait is marked with the top bit so the parent can tell it apart.
                lat.extend(heal.iter().map(|v| v | HEAL_MARK));
                t = r?;
                healed += 1;
            }
            s => {
                return Err(Error::Config(format!(
                    "call got HTTP {s} after {healed} heal(s)"
                )));
            }
        }
    }
}

async fn calls(http: &reqwest::Client, m: &TokenManager, n: usize) -> String {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, m) = (http.clone(), m.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let r = one_call(&http, &m, &mut lat).await;
                (r, lat)
            })
        })
        .collect();
    let mut t = Tally::default();
    for task in tasks {
        let (r, lat) = task.await.unwrap();
        t.token_latency_us.extend(lat);
        match r {
            Ok((kind, g)) => {
                t.ok += 1;
                t.healed += kind as u64;
                t.max_gen = t.max_gen.max(g);
            }
            Err(e) => t.err(&e),
        }
    }
    t.render()
}

async fn force(m: &TokenManager, n: usize) -> String {
    let mut t = Tally::default();
    for _ in 0..n {
        match m.force_refresh().await {
            Ok(tok) => {
                t.ok += 1;
                t.max_gen = t.max_gen.max(tok.generation());
            }
            Err(e) => t.err(&e),
        }
    }
    t.render()
}
