//! A real client nobody here wrote: simple-salesforce (Python, from PyPI) logs in with SOAP
//! username/password+token, queries every Account across pages, raises its own
//! `SalesforceExpiredSession` after an admin logout, and heals by logging in again.
//!
//! The Python interpreter comes from `SFKEEP_PYTHON` (set by `scripts/test`), else from
//! `scripts/python-venv`, which creates the venv when missing.

use std::process::Command;

use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

fn python() -> String {
    if let Ok(p) = std::env::var("SFKEEP_PYTHON") {
        return p;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/python-venv");
    let out = Command::new(script)
        .output()
        .expect("scripts/python-venv runs");
    assert!(
        out.status.success(),
        "scripts/python-venv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_logs_in_pages_and_sees_its_own_expired_session() {
    let accounts = 2500; // more than one 2000-record page
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(accounts))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    let py = python();
    let out = tokio::process::Command::new(py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/simple_salesforce_check.py"
        ))
        .env("SF_URL", &info.instance_url)
        .env("SF_USERNAME", &info.username)
        .env("SF_PASSWORD", &info.password)
        .env("SF_SECURITY_TOKEN", &info.security_token)
        .env("SF_ADMIN_URL", &info.admin_url)
        .env("SF_EXPECTED_ACCOUNTS", accounts.to_string())
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "simple-salesforce check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    // The org saw what the client did: two SOAP logins (the first, and the re-login after
    // the logout) and at least one INVALID_SESSION_ID answer.
    let stats: serde_json::Value = reqwest::get(format!("{}/stats", info.admin_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["soap_logins"].as_u64().unwrap() >= 2, "{stats}");
    assert!(
        stats["invalid_session_responses"].as_u64().unwrap() >= 1,
        "{stats}"
    );
}

/// simple-salesforce (JWT with a string `exp`, bulk2 insert / upsert / query, Bulk API 1.0 insert
/// and query, Account.updated / deleted, one session death) and salesforce-bulk (CSV jobs with
/// X-SFDC-Session), unmodified, against the org: tests/python/bulk_clients_check.py.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_and_salesforce_bulk_run_bulk_jobs_and_replication() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(50))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    let out = tokio::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/bulk_clients_check.py"
        ))
        .env("SF_URL", &info.instance_url)
        .env("SF_ADMIN_URL", &info.admin_url)
        .env("SF_USERNAME", &info.username)
        .env("SF_CLIENT_ID", &info.client_id)
        .env("SF_JWT_KEY", &info.jwt_key_file)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bulk clients check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    // One session death cost exactly one token request, as the org counted it.
    assert_eq!(result["jwt_token_requests_per_death"], 1, "{result}");
    let stats: serde_json::Value = reqwest::get(format!("{}/stats", info.admin_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["token_requests"]["jwt_bearer"], 2, "{stats}");
    assert_eq!(stats["token_errors"], 0, "{stats}");
}
