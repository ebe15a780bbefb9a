//! Crash safety: SIGKILL a process in the middle of encrypted file-store writes and in the
//! middle of rotating refreshes, 200 times each, then check what is on disk and at the org.
//!
//! * Store writes: after every kill the store file decrypts to a whole record (the old or the
//!   new one, never a torn or mixed one), and generations never go backwards.
//! * Refreshes with refresh-token rotation: after every kill the stored refresh token is
//!   either the org's current one, or (the kill fell after the org rotated and before the
//!   store write was durable) the one just rotated out. Every kill falls after the worker's
//!   first completed refresh, and the org completes a refresh whose client is gone, as
//!   Salesforce does (docs/fake-org.md, "Faults"). That window cannot be closed by any
//!   client: the new token existed only in the dead process's memory. But it is never made
//!   worse: the dead process declared its refresh in the store before sending it (the intent
//!   record, `src/manager/intent.rs`), so the next process does not present the rotated-out
//!   token (which would make the org revoke the whole family) and reports `ReauthRequired`
//!   with the cause `refresh_interrupted`. The operator re-authorizes (here: the org's test
//!   hook mints a new refresh token) and the loop goes on. At the end a refresh with the
//!   stored refresh token succeeds, and the org's `refresh_token_reuse_detected` is 0.
//!
//! The test binary re-runs itself as the worker (`crash_worker`, ignored unless invoked with
//! the worker environment), like `file_store_processes.rs`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfkeep::clock::{Clock, ManualClock, UnixMillis};
use sfkeep::secret::{AccessToken, ClientSecret, RefreshToken};
use sfkeep::store::{CacheKey, CasOutcome, EncryptedFileStore, Store, StoreKey};
use sfkeep::token::{ExpirySource, GrantKind, TokenRecord};
use sfkeep::{Grant, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

const ENV_MODE: &str = "SFKEEP_CRASH_WORKER_MODE";
const KILLS: usize = 200;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is set for the worker"))
}

fn record(generation: u64) -> TokenRecord {
    // Every field derives from the generation, so a torn or mixed record is detectable.
    TokenRecord {
        access_token: AccessToken::new(format!("00Dcrash!AQ{generation:012}{}", "a".repeat(80))),
        refresh_token: Some(RefreshToken::new(format!(
            "5Aep{generation:012}{}",
            "r".repeat(70)
        ))),
        instance_url: format!("https://gen{generation}.my.salesforce.com"),
        id_url: None,
        scope: Some("api refresh_token".into()),
        issued_at: UnixMillis(generation as i64),
        expires_at: UnixMillis(generation as i64 + 7_200_000),
        refresh_at: UnixMillis(generation as i64 + 6_000_000),
        expiry_source: ExpirySource::Configured,
        generation,
        grant: GrantKind::RefreshToken,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    }
}

fn check_coherent(r: &TokenRecord) {
    let g = r.generation;
    let want = record(g);
    assert_eq!(
        r.access_token.expose_secret(),
        want.access_token.expose_secret()
    );
    assert_eq!(
        r.refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        want.refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
    );
    assert_eq!(r.instance_url, want.instance_url);
    assert_eq!(r.issued_at, want.issued_at);
    assert_eq!(r.expires_at, want.expires_at);
}

fn manager(login_url: &str, store: EncryptedFileStore, rt: &str) -> TokenManager {
    TokenManager::builder(login_url.to_owned())
        .grant(Grant::refresh_token(
            env("SFKEEP_CRASH_CLIENT_ID"),
            Some(ClientSecret::new(env("SFKEEP_CRASH_CLIENT_SECRET"))),
            RefreshToken::new(rt.to_owned()),
        ))
        .clock(Arc::new(ManualClock::starting_now_offset(0)) as Arc<dyn Clock>)
        .store(Arc::new(store))
        .store_key(StoreKey::from_string("crash"))
        .rotation(sfkeep::manager::Rotation::On)
        // A kill between declaring a refresh and sending it leaves an intent whose token is
        // still live: introspection (which the org allows an app for its own tokens) tells.
        .introspect(true)
        .without_tracing_sink()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the crash tests as a child process"]
async fn crash_worker() {
    let Ok(mode) = std::env::var(ENV_MODE) else {
        return;
    };
    let key = CacheKey::from_base64(&env("SFKEEP_CRASH_KEY")).unwrap();
    let store = EncryptedFileStore::new(env("SFKEEP_CRASH_STORE"), key);
    let skey = StoreKey::from_string("crash");
    match mode.as_str() {
        // Writes generation after generation until killed.
        "write" => {
            let mut current = store.load(&skey).await.unwrap().map(|r| r.generation);
            println!("READY");
            loop {
                let next = current.unwrap_or(0) + 1;
                match store.compare_and_set(&skey, current, &record(next)).await {
                    Ok(CasOutcome::Written) => current = Some(next),
                    other => panic!("single writer: {other:?}"),
                }
                // Durable from here on: the test holds the store to at least this.
                println!("WROTE {next}");
            }
        }
        // Forced refreshes (each one rotates the refresh token) until killed.
        "refresh" => {
            let m = manager(
                &env("SFKEEP_CRASH_LOGIN_URL"),
                store,
                &env("SFKEEP_CRASH_REFRESH_TOKEN"),
            );
            println!("READY");
            loop {
                let t = m.force_refresh().await.expect("a refresh succeeds");
                println!("GEN {}", t.generation());
            }
        }
        // One refresh; prints OK or the typed error.
        "once" => {
            let m = manager(
                &env("SFKEEP_CRASH_LOGIN_URL"),
                store,
                &env("SFKEEP_CRASH_REFRESH_TOKEN"),
            );
            match m.force_refresh().await {
                Ok(t) => println!("ONCE-OK {}", t.generation()),
                Err(e) => println!(
                    "ONCE-ERR reauth={} cause={:?} {e}",
                    e.is_reauth_required(),
                    e.cause()
                ),
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

struct Worker<'a> {
    store: &'a std::path::Path,
    key: &'a str,
    info: Option<&'a sfkeep_fakeorg::ReadyInfo>,
    refresh_token: String,
}

impl Worker<'_> {
    fn command(&self, mode: &str) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "--ignored",
            "--exact",
            "crash_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_MODE, mode)
        .env("SFKEEP_CRASH_STORE", self.store)
        .env("SFKEEP_CRASH_KEY", self.key)
        .env("SFKEEP_CRASH_REFRESH_TOKEN", &self.refresh_token)
        .stdin(Stdio::null());
        if let Some(info) = self.info {
            c.env("SFKEEP_CRASH_LOGIN_URL", &info.login_url)
                .env("SFKEEP_CRASH_CLIENT_ID", &info.client_id)
                .env("SFKEEP_CRASH_CLIENT_SECRET", &info.client_secret);
        }
        c
    }

    /// Starts a worker, waits until it has printed `progress` lines starting with `marker`
    /// after READY (so every kill lands while it works, however loaded the machine), waits
    /// `after` (random) more, and kills it. Returns everything it printed after READY.
    fn run_and_kill(&self, mode: &str, marker: &str, progress: usize, after: Duration) -> String {
        use std::io::{BufRead, BufReader, Read};
        let mut child = self
            .command(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        let mut ready = false;
        let mut marked = 0;
        while marked < progress {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("worker exited before its work was under way: {err}");
            }
            if !ready {
                ready = line.contains("READY");
                continue;
            }
            if line.starts_with(marker) {
                marked += 1;
            }
            seen.push_str(&line);
        }
        std::thread::sleep(after);
        child.kill().unwrap(); // SIGKILL
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        child.wait().unwrap();
        seen + &rest
    }

    fn once(&self) -> String {
        let out = self.command("once").output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{s}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.lines()
            .find_map(|l| l.find("ONCE-").map(|i| l[i..].to_owned()))
            .unwrap_or_else(|| panic!("worker printed no result: {s}"))
    }
}

fn key_b64() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    for x in &mut b {
        *x = fastrand::u8(..);
    }
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn load(path: &std::path::Path, key: &str) -> Option<TokenRecord> {
    let store = EncryptedFileStore::new(path, CacheKey::from_base64(key).unwrap());
    store
        .load(&StoreKey::from_string("crash"))
        .await
        .unwrap_or_else(|e| panic!("the store file is readable after a kill: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_file_store_writes_leaves_old_or_new_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.enc");
    let key = key_b64();
    let w = Worker {
        store: &path,
        key: &key,
        info: None,
        refresh_token: String::new(),
    };
    let started = Instant::now();
    let mut last = 0u64;
    let mut advanced = 0;
    for _ in 0..KILLS {
        let out = w.run_and_kill(
            "write",
            "WROTE ",
            fastrand::usize(1..4),
            Duration::from_micros(fastrand::u64(0..15_000)),
        );
        let durable = out
            .lines()
            .filter_map(|l| l.strip_prefix("WROTE ")?.trim().parse::<u64>().ok())
            .max()
            .expect("the worker wrote before it was killed");
        let r = load(&path, &key)
            .await
            .expect("a record once written never disappears");
        check_coherent(&r);
        assert!(
            r.generation >= durable,
            "a write the worker finished was lost: stored {} < written {durable}",
            r.generation
        );
        assert!(
            r.generation >= last,
            "generation went back: {} < {last}",
            r.generation
        );
        if r.generation > last {
            advanced += 1;
        }
        last = r.generation;
    }
    eprintln!(
        "store-write kills: {KILLS}, generations written: {last}, kills after progress: {advanced}, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        advanced, KILLS,
        "every kill fell after at least one new write"
    );
}

/// Waits until the org has dealt with everything a killed worker sent: its connection closed
/// and no request still being processed. A request the org received is processed even when
/// its client is gone, so reading the org's tokens earlier could see a rotation happen after
/// the read. `http` must not pool connections (its own connection is the one left open).
async fn org_settled(http: &reqwest::Client, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: Value = http
            .get(format!("{admin}/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["connections_open"] == 1 && stats["requests_in_flight"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the org never finished with the killed worker: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn org_tokens(http: &reqwest::Client, admin: &str) -> Value {
    http.get(format!("{admin}/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_rotating_refreshes_never_silently_reuses_a_refresh_token() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(1))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    // No pooled connections: `org_settled` counts the org's open connections.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = http
        .put(format!("{}/apps/{}/policy", info.admin_url, info.client_id))
        .json(&json!({"rotate_refresh_tokens": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.enc");
    let key = key_b64();
    let mut w = Worker {
        store: &path,
        key: &key,
        info: Some(&info),
        refresh_token: info.refresh_token.clone(),
    };
    let started = Instant::now();
    let (mut window_hits, mut clean, mut typed_errors) = (0u32, 0u32, 0u32);
    let mut refreshes = 0u64;
    for _ in 0..KILLS {
        // After one completed refresh: the kill then falls somewhere in a later one.
        let out = w.run_and_kill(
            "refresh",
            "GEN ",
            1,
            Duration::from_micros(fastrand::u64(0..40_000)),
        );
        refreshes += out.lines().filter(|l| l.contains("GEN ")).count() as u64;
        org_settled(&http, &info.admin_url).await;
        let stored = load(&path, &key).await;
        let tokens = org_tokens(&http, &info.admin_url).await;
        let current: Vec<&str> = tokens["current_refresh_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let stored_rt = stored
            .as_ref()
            .and_then(|r| r.refresh_token.as_ref())
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_else(|| w.refresh_token.clone());
        if current.contains(&stored_rt.as_str()) {
            clean += 1;
            continue;
        }
        // The window: the org rotated, the process died before the store write was durable.
        window_hits += 1;
        assert!(
            tokens["refresh_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v.as_str() == Some(&stored_rt)),
            "the stored refresh token is one the org issued (old, not corrupt)"
        );
        // sfkeep does not present it; it says what happened with a typed error.
        let result = w.once();
        assert!(
            result.starts_with("ONCE-ERR reauth=true cause=Some(RefreshInterrupted)"),
            "a lost rotation is reported as ReauthRequired, refresh_interrupted: {result}"
        );
        typed_errors += 1;
        // The operator re-authorizes; the next worker starts from the new refresh token.
        let v: Value = http
            .post(format!("{}/tokens", info.admin_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        w.refresh_token = v["refresh_token"].as_str().unwrap().to_owned();
        let _ = std::fs::remove_file(&path); // absent when killed before the first write
    }
    // After all kills: a refresh with the stored refresh token succeeds.
    let last = w.once();
    assert!(last.starts_with("ONCE-OK"), "final refresh: {last}");
    let stats: Value = http
        .get(format!("{}/stats", info.admin_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reuse = stats["refresh_token_reuse_detected"].as_u64().unwrap();
    eprintln!(
        "refresh kills: {KILLS}, refreshes completed: {refreshes}, clean: {clean}, \
         rotation-lost window hits: {window_hits} (each reported as ReauthRequired: {typed_errors}), \
         reuse detected by the org: {reuse}, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        reuse, 0,
        "a rotated-out refresh token is never presented ({window_hits} window hits)"
    );
    assert!(
        refreshes >= KILLS as u64,
        "every kill fell after at least one completed refresh"
    );
}
