//! jsforce (Node, real, from npm) through the proxy: a placeholder-token connection, an OAuth
//! password login and a SOAP login at the proxy run 1,000 queries while the org kills the
//! session four ways; no errors, every token response points at the proxy, one token request
//! per death. jsforce comes from `scripts/node-deps` (installed into target/jsforce).

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_survives_every_session_death_through_the_proxy() {
    let dir = common::node::node_deps_dir();
    let env = start(20).await;
    let out = tokio::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/jsforce_proxy.js"
        ))
        .env("JSFORCE_DIR", &dir)
        .env("PROXY_URL", env.proxy.url())
        .env("SF_USERNAME", &env.info.username)
        .env("SF_PASSWORD", "any-password-on-loopback")
        .env("SF_ADMIN_URL", &env.info.admin_url)
        .env("SF_CLIENT_ID", &env.info.client_id)
        .env("SF_SESSION_TIMEOUT_SECS", "7200")
        .env("SF_QUERIES", "1000")
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let result: Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "no JSON from the script:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && result["ok"] == true,
        "{result}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result["queries"], 1000);
    assert_eq!(result["errors"], 0);
    for t in result["token_responses"].as_array().unwrap() {
        assert_eq!(t["instance_url"], env.proxy.url(), "{result}");
    }
    for k in result["kills"].as_array().unwrap() {
        assert_eq!(k["status"], 200, "{result}");
    }
    let stats = org_stats(&env.info).await;
    let failed = stats["token_errors"].as_u64().unwrap_or(0);
    assert_eq!(token_requests(&stats) - failed, 4 + 1, "{stats}");
    assert!(failed <= 1, "{stats}");
    assert_eq!(stats["soap_logins"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["password"], 0, "{stats}");
    assert_eq!(env.proxy.stats().passthrough_401, 0);
    eprintln!(
        "jsforce: {result}\norg: {stats}\nproxy: {:?}",
        env.proxy.stats()
    );
}
