//! jsforce (Node, real, from npm; installed by `scripts/node-deps` into target/jsforce) against
//! the org: arrays of records through SObject Collections, `identity()`, and one session death
//! that costs exactly one refresh-token request, counted by the org (tests/node/jsforce_collections.js).

mod common;

use serde_json::Value;
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_writes_arrays_through_collections_and_reads_its_identity() {
    let dir = common::node::node_deps_dir();
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(10))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    let out = tokio::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/jsforce_collections.js"
        ))
        .env("JSFORCE_DIR", &dir)
        .env("SF_URL", &info.instance_url)
        .env("SF_ADMIN_URL", &info.admin_url)
        .env("SF_USERNAME", &info.username)
        .env("SF_CLIENT_ID", &info.client_id)
        .env("SF_CLIENT_SECRET", &info.client_secret)
        .env("SF_REFRESH_TOKEN", &info.refresh_token)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
            panic!(
                "no JSON from the script:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(out.status.success() && result["ok"] == true, "{result}");
    assert_eq!(result["refresh_requests_per_death"], 1, "{result}");
}
