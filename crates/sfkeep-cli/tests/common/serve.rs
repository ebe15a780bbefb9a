//! `sfkeep serve` in tests: start it and read its ready line, its status API, webhook
//! receivers on loopback, the org's admin API as JSON, and configs derived from the org's
//! profile file. Shared by `tests/serve.rs` and `tests/page.rs`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::{Org, sfkeep};
use serde_json::{Value, json};

pub const DAY: i64 = 86_400;

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GET `url`: (status, body).
pub fn get(url: &str) -> (u16, String) {
    rt().block_on(async {
        let r = http().get(url).send().await.expect("GET");
        let s = r.status().as_u16();
        (s, r.text().await.unwrap_or_default())
    })
}

/// Sends what `build` makes: (status, headers, body).
pub fn request(
    build: impl FnOnce(reqwest::Client) -> reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, String) {
    rt().block_on(async {
        let r = build(http()).send().await.expect("request");
        let (s, h) = (r.status().as_u16(), r.headers().clone());
        (s, h, r.text().await.unwrap_or_default())
    })
}

pub fn get_json(url: &str) -> Value {
    let (s, body) = get(url);
    assert_eq!(s, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
}

/// Polls `probe` until it returns `Some`, for at most `secs` seconds.
pub fn wait_for<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The org's admin API, as JSON.
pub trait Admin {
    fn admin_get(&self, path: &str) -> Value;
    fn stats(&self) -> Value;
    fn refresh_requests(&self) -> u64;
    /// The org's clock, ms.
    fn now_ms(&self) -> i64;
    fn advance(&self, secs: i64);
}

impl Admin for Org {
    fn admin_get(&self, path: &str) -> Value {
        get_json(&format!("{}{path}", self.field("admin_url")))
    }
    fn stats(&self) -> Value {
        self.admin_get("/stats")
    }
    fn refresh_requests(&self) -> u64 {
        self.stats()["token_requests"]["refresh_token"]
            .as_u64()
            .unwrap()
    }
    fn now_ms(&self) -> i64 {
        let now = self.admin_get("/clock")["now"].as_str().unwrap().to_owned();
        parse_sf(&now)
    }
    fn advance(&self, secs: i64) {
        assert_eq!(
            self.admin_post("/clock/advance", json!({"seconds": secs})),
            200
        );
    }
}

/// `2026-12-07T03:41:38.338+0000` → ms.
pub fn parse_sf(s: &str) -> i64 {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(s, &fmt).unwrap_or_else(|e| panic!("{s}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A running `sfkeep serve`; killed on drop.
pub struct Serve {
    pub child: Child,
    pub ready: Value,
}

impl Serve {
    pub fn start(home: &Path, config: &Path, args: &[&str]) -> Serve {
        Self::start_env(home, config, args, &[])
    }

    pub fn start_env(home: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut c = sfkeep(home);
        c.arg("--config").arg(config).arg("serve");
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sfkeep serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        // Generous: a loaded CI machine starts eight debug binaries at once.
        let line = match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(Ok(l)) if !l.is_empty() => l,
            other => {
                let _ = child.kill();
                panic!("no ready line from sfkeep serve: {other:?}");
            }
        };
        let ready: Value = serde_json::from_str(line.trim()).expect("ready line is JSON");
        Serve { child, ready }
    }

    pub fn url(&self) -> String {
        self.ready["url"].as_str().unwrap().to_owned()
    }

    pub fn status(&self) -> Value {
        get_json(&format!("{}/api/v1/status", self.url()))
    }

    pub fn profile(&self) -> Value {
        self.status()["profiles"][0].clone()
    }

    /// Polls the first profile's status until `ok` holds, for at most `secs` seconds; on
    /// timeout the panic shows what the guardian last said.
    pub fn wait_profile(&self, what: &str, secs: u64, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.profile();
            if ok(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the guardian last said {p:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the first profile's token is fresh, for at most `secs` seconds.
    pub fn wait_fresh(&self, secs: u64) -> Value {
        self.wait_profile("a fresh token", secs, |p| p["state"] == "fresh")
    }

    /// Waits until a check completed after the org's clock read `org_ms` (so its decisions
    /// used the moved clock).
    pub fn caught_up(&self, org_ms: i64) -> Value {
        wait_for("the guardian to see the org's new time", 120, || {
            let p = self.profile();
            (p["last_check_at"].as_i64().unwrap_or(0) >= org_ms - 2_000).then_some(p)
        })
    }

    pub fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "sfkeep serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver on loopback: records every body, answers `status`.
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<String>>>,
    pub status: Arc<AtomicU16>,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(addr: SocketAddr) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (g, s) = (Arc::clone(&got), Arc::clone(&status));
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                async move {
                    let code = s.load(Ordering::SeqCst);
                    if code == 200 {
                        g.lock().unwrap().push(body);
                    }
                    (
                        axum::http::StatusCode::from_u16(code).unwrap(),
                        "not json at all <html>",
                    )
                }
            }),
        );
        rt().spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            addr,
            got,
            status,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn alerts(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A home with the org's profile file copied and `extra` appended to `[profiles.fake]`
/// (and `tail` after it).
pub fn config(home: &Path, org: &Org, extra: &str, tail: &str) -> PathBuf {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let text = text.replacen(
        "[profiles.fake.store]",
        &format!("{extra}\n[profiles.fake.store]"),
        1,
    );
    let path = home.join("sfkeep.toml");
    std::fs::write(&path, format!("{text}\n{tail}\n")).unwrap();
    path
}

/// A config whose profile's `jwt_cert` is a certificate with `days` left (plus `extra`).
pub fn cert_config(home: &Path, org: &Org, days: i64, extra: &str) -> (PathBuf, PathBuf) {
    let cert = home.join("jwt.crt");
    std::fs::write(&cert, cert_pem(days)).unwrap();
    let cfg = config(
        home,
        org,
        &format!("jwt_cert = {:?}\n{extra}", cert.display().to_string()),
        "",
    );
    (cfg, cert)
}

/// `sfkeep serve --profile fake` on a free loopback port, checking every `every`, plus `args`.
pub fn watch(home: &Path, cfg: &Path, every: &str, args: &[&str]) -> Serve {
    let mut all = vec![
        "--profile",
        "fake",
        "--listen",
        "127.0.0.1:0",
        "--check-interval",
        every,
    ];
    all.extend_from_slice(args);
    Serve::start(home, cfg, &all)
}

pub fn forecast<'a>(p: &'a Value, kind: &str) -> &'a Value {
    p["forecasts"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == kind))
        .unwrap_or(&Value::Null)
}

pub fn set_policy(org: &Org, policy: Value) {
    let client_id = org.field("client_id");
    assert_eq!(
        org.admin_put(&format!("/apps/{client_id}/policy"), policy),
        200
    );
}

pub fn cert_pem(days_left: i64) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["sfkeep-test".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days_left);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// The org's secrets: its client secret, password, security token and refresh token, every
/// token it issued (and the part after the org id of each), and the JWT key's lines. For a
/// value-based search of what a page, a payload or an answer shows.
pub fn org_secrets(org: &Org) -> Vec<String> {
    let mut out: Vec<String> = [
        "client_secret",
        "password",
        "security_token",
        "refresh_token",
    ]
    .iter()
    .map(|k| org.field(k))
    .collect();
    let issued = org.admin_get("/tokens");
    for t in issued["access_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(issued["refresh_tokens"].as_array().into_iter().flatten())
    {
        if let Some(t) = t.as_str() {
            out.push(t.to_owned());
            if let Some((_, tail)) = t.split_once('!') {
                out.push(tail.to_owned());
            }
        }
    }
    let key = std::fs::read_to_string(org.field("jwt_key_file")).unwrap();
    out.extend(key.lines().filter(|l| l.len() > 40).map(str::to_owned));
    out
}
