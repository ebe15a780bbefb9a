//! simple-salesforce (Python, real, from PyPI) logs in with SOAP username/password at the proxy
//! and runs 1,000 queries while the org kills the session by timeout, logout, password change
//! and admin revoke: no exception in the client, one token request per death.
//!
//! The interpreter comes from `SFKEEP_PYTHON` (set by `scripts/test`), else `scripts/python-venv`.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

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

/// Runs tests/python/simple_salesforce_proxy.py against `env` and returns its JSON line.
async fn run_client(
    env: &Env,
    queries: u32,
    extra: &[(&str, String)],
) -> (Value, std::process::Output) {
    let out = tokio::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/simple_salesforce_proxy.py"
        ))
        .env("PROXY_URL", env.proxy.url())
        .env("SF_USERNAME", &env.info.username)
        .env("SF_PASSWORD", "any-password-on-loopback")
        .env("SF_ADMIN_URL", &env.info.admin_url)
        .env("SF_CLIENT_ID", &env.info.client_id)
        .env("SF_SESSION_TIMEOUT_SECS", "7200")
        .env("SF_QUERIES", queries.to_string())
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let result: Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "no JSON from the script:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (result, out)
}

/// API v65.0 has no SOAP `login()` (docs/salesforce-wire.md §5): the same simple-salesforce login
/// fails against the org, and works through the proxy, whose shim answers it locally while the
/// proxy authenticates with OAuth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_at_v65_logs_in_through_the_proxy_where_the_org_has_no_login() {
    let env = start(20).await;
    let extra = [
        ("SF_API_VERSION", "65.0".to_owned()),
        ("SF_DIRECT_URL", env.info.instance_url.clone()),
        (
            "SF_DIRECT_PASSWORD",
            format!("{}{}", env.info.password, env.info.security_token),
        ),
    ];
    let (result, out) = run_client(&env, 100, &extra).await;
    let direct = result["direct_login"].as_str().unwrap_or_default();
    assert!(
        direct.starts_with("SalesforceAuthenticationFailed")
            && direct.contains("No operation available for request"),
        "the direct v65.0 login must fail at the org: {result}"
    );
    assert!(
        out.status.success() && result["ok"] == true,
        "{result}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result["queries"], 100);
    assert_eq!(result["exceptions"], 0);
    let stats = org_stats(&env.info).await;
    assert_eq!(
        stats["soap_logins"], 1,
        "only the direct attempt reached the org's SOAP endpoint: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_survives_every_session_death_through_the_proxy() {
    let env = start(20).await;
    let (result, out) = run_client(&env, 1000, &[]).await;
    assert!(
        out.status.success() && result["ok"] == true,
        "{result}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result["queries"], 1000);
    assert_eq!(result["exceptions"], 0);
    assert_eq!(
        result["soap_logins"], 1,
        "one shimmed login, never a re-login: {result}"
    );
    for k in result["kills"].as_array().unwrap() {
        assert_eq!(k["status"], 200, "{result}");
    }

    let stats = org_stats(&env.info).await;
    let deaths = 4;
    let failed = stats["token_errors"].as_u64().unwrap_or(0);
    assert_eq!(
        token_requests(&stats) - failed,
        deaths + 1,
        "one successful token request per death plus the first: {stats}"
    );
    // The only failed one: the revoked refresh token, before the JWT fallback.
    assert!(failed <= 1, "{stats}");
    assert_eq!(
        stats["soap_logins"], 0,
        "the client's SOAP login never reached the org: {stats}"
    );
    let p = env.proxy.stats();
    assert_eq!(p.passthrough_401, 0, "{p:?}");
    assert!(p.replays <= deaths, "{p:?}");
    eprintln!("simple-salesforce: {result}\norg: {stats}\nproxy: {p:?}");
}
