//! Helpers shared by the CLI tests: run the real binary, start the simulated org through it.
#![allow(dead_code)]

#[path = "../../../sfkeep-fakeorg/tests/common/node.rs"]
pub mod node;
pub mod serve;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sfkeep");

/// The binary with an environment that cannot pick up the user's own config or keys.
pub fn sfkeep(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("SFKEEP_PROFILE")
        .env_remove("SFKEEP_CACHE_KEY")
        .env_remove("SFKEEP_LOG")
        .env_remove("RUST_LOG")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .current_dir(home)
        .stdin(Stdio::null());
    c
}

/// The Python with the real third-party clients (simple-salesforce): `SFKEEP_PYTHON` (set by
/// `scripts/test`), else the venv `scripts/python-venv` makes; `None` when neither is there.
pub fn python() -> Option<String> {
    if let Ok(p) = std::env::var("SFKEEP_PYTHON") {
        return Some(p);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/python-venv");
    let out = Command::new(script).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `sfkeep proxy --listen 127.0.0.1:0 ARGS… --config PROFILE_FILE --profile fake`, started, and
/// its JSON ready line (waited for up to 90 s, for loaded machines).
pub fn spawn_proxy(home: &Path, org: &Org, args: &[&str]) -> (Child, serde_json::Value) {
    let mut child = sfkeep(home)
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--config")
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the proxy's ready line");
    let ready = serde_json::from_str(line.trim()).expect("a JSON ready line");
    (child, ready)
}

/// Runs to completion; returns (exit code, stdout, stderr).
pub fn run(mut c: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("sfkeep runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A running `sfkeep fake-org`; killed on drop.
pub struct Org {
    child: Child,
    pub ready: serde_json::Value,
}

impl Org {
    /// Starts `sfkeep fake-org --listen 127.0.0.1:0 --accounts N --state-dir DIR` and reads
    /// the ready line (10 s deadline).
    pub fn start(home: &Path, accounts: usize) -> Org {
        let state = home.join("org");
        let mut child = sfkeep(home)
            .args(["fake-org", "--listen", "127.0.0.1:0", "--accounts"])
            .arg(accounts.to_string())
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fake-org starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        // A deadline, not a wait: a loaded machine (several cargo builds at once) can take
        // tens of seconds to start a debug binary.
        let line = match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(Ok(l)) => l,
            other => {
                let _ = child.kill();
                panic!("no ready line from fake-org within 90 s: {other:?}");
            }
        };
        let ready: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("the ready line is not JSON ({e}): {line}")
        });
        Org { child, ready }
    }

    pub fn field(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("ready line has no {name}: {}", self.ready))
            .to_owned()
    }

    /// POSTs to the admin API (`path` relative to admin_url) and returns the status.
    pub fn admin_post(&self, path: &str, body: serde_json::Value) -> u16 {
        self.admin(reqwest::Method::POST, path, body)
    }

    /// PUTs to the admin API and returns the status.
    pub fn admin_put(&self, path: &str, body: serde_json::Value) -> u16 {
        self.admin(reqwest::Method::PUT, path, body)
    }

    /// The org's counters (`GET /_fake/stats`): what the org saw, not what sfkeep counted.
    #[allow(dead_code)] // Not every test binary asks.
    pub fn stats(&self) -> serde_json::Value {
        let url = format!("{}/stats", self.field("admin_url"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            reqwest::get(&url)
                .await
                .expect("stats")
                .json::<serde_json::Value>()
                .await
                .expect("stats JSON")
        })
    }

    /// Calls the admin API and returns the status.
    pub fn admin(&self, method: reqwest::Method, path: &str, body: serde_json::Value) -> u16 {
        let url = format!("{}{path}", self.field("admin_url"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            reqwest::Client::new()
                .request(method, &url)
                .json(&body)
                .send()
                .await
                .expect("admin call")
                .status()
                .as_u16()
        })
    }
}

impl Drop for Org {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` on a free loopback port, without persistence; killed on drop.
pub struct Redis {
    child: Option<std::process::Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        r.up();
        r
    }
    pub fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        let pid = child.id();
        self.child = Some(child);
        // The server that answers must be this child: were the port taken by another test
        // process's Redis, a connection alone would succeed against that one.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = String::from_utf8_lossy(&self.cli(&["INFO", "server"])).into_owned();
            if info
                .lines()
                .any(|l| l.trim() == format!("process_id:{pid}"))
            {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                assert!(
                    !matches!(c.try_wait(), Ok(Some(_))),
                    "redis-server exited: port {} is taken by another process",
                    self.port
                );
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn cli(&self, args: &[&str]) -> Vec<u8> {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default()
    }
    /// Every key and every value, as bytes.
    pub fn dump_all(&self) -> Vec<u8> {
        let keys = String::from_utf8_lossy(&self.cli(&["--scan"])).into_owned();
        let mut all = keys.clone().into_bytes();
        for k in keys.lines().filter(|k| !k.is_empty()) {
            let ty = String::from_utf8_lossy(&self.cli(&["TYPE", k]))
                .trim()
                .to_owned();
            let v = match ty.as_str() {
                "string" => self.cli(&["GET", k]),
                "hash" => self.cli(&["HGETALL", k]),
                "list" => self.cli(&["LRANGE", k, "0", "-1"]),
                "set" => self.cli(&["SMEMBERS", k]),
                _ => self.cli(&["DUMP", k]),
            };
            all.extend_from_slice(&v);
        }
        all
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.down();
    }
}

/// The `result` of a `--json` run's envelope (stdout holds exactly one JSON document).
pub fn result_of(out: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"));
    assert_eq!(v["sfkeep"], 1, "not an sfkeep envelope: {v}");
    v["result"].clone()
}

/// One approval of the org's connected app through the web-server flow: the authorize page
/// (for `login_hint`, when given) redirects to `redirect` with a code, which is exchanged at
/// the token endpoint. Returns the token endpoint's status and answer (`null` if not JSON).
pub fn web_server_login(
    org: &Org,
    login_hint: Option<&str>,
    redirect: &str,
) -> (u16, serde_json::Value) {
    let login = org.field("login_url");
    let client_id = org.field("client_id");
    let secret = org.field("client_secret");
    serve::rt().block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
        ];
        if let Some(user) = login_hint {
            query.push(("login_hint", user));
        }
        let r = http
            .get(format!("{login}/services/oauth2/authorize"))
            .query(&query)
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));
        let r = http
            .post(format!("{login}/services/oauth2/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("redirect_uri", redirect),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    })
}
