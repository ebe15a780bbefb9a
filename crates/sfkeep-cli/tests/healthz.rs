//! `/healthz` of `sfkeep proxy` and of `sfkeep serve` reflects the store and the org (issue 22
//! item 12), not only the token in memory: 503 with a JSON body saying why while the org's
//! instance drops every connection or the store cannot be read, 200 again once they are back.
//! Real processes, the simulated org's faults, a real file store; conditions are polled.

mod common;

use common::serve::{config, get, wait_for, watch};
use common::{Org, spawn_proxy};
use serde_json::{Value, json};

fn health(url: &str) -> (u16, Value) {
    let (code, body) = get(&format!("{url}/healthz"));
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (code, v)
}

fn checks(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["check"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_proxy_healthz_reflects_the_org_and_the_store() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let (mut proxy, ready) = spawn_proxy(h, &org, &[]);
    let url = ready["url"].as_str().unwrap().to_owned();
    let query = format!("{url}/services/data/v59.0/query?q=SELECT+Id+FROM+Account");
    assert_eq!(get(&query).0, 200);
    let (code, v) = health(&url);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["store"]["kind"], "file", "{v}");

    // The instance drops every connection: the API call fails in transport.
    let fault = json!({"path_prefix": "/services/data", "reset": true, "count": 1000});
    assert_eq!(org.admin_post("/faults", fault), 200);
    assert_ne!(get(&query).0, 200);
    let (code, v) = health(&url);
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["status"], "unhealthy");
    assert_eq!(checks(&v), ["org_unreachable"], "{v}");
    assert_eq!(
        org.admin(reqwest::Method::DELETE, "/faults", json!({})),
        200
    );
    assert_eq!(get(&query).0, 200);
    assert_eq!(health(&url).0, 200);

    // The store cannot be read: its file replaced by a directory.
    let store = h.join("org").join("tokens.enc");
    let aside = h.join("tokens.enc.aside");
    std::fs::rename(&store, &aside).unwrap();
    std::fs::create_dir(&store).unwrap();
    let (code, v) = health(&url);
    assert_eq!(code, 503, "{v}");
    assert_eq!(checks(&v), ["store_unreachable"], "{v}");
    std::fs::remove_dir(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
    let (code, v) = health(&url);
    assert_eq!(code, 200, "{v}");
    assert!(!v.to_string().contains(&org.field("refresh_token")));
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn the_serve_healthz_says_when_the_org_is_gone() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let cfg = config(h, &org, "", "");
    let s = watch(h, &cfg, "100ms", &[]);
    let url = s.url();
    wait_for("a healthy serve", 60, || {
        let (code, v) = health(&url);
        (code == 200).then_some(v)
    });
    // The store cannot be read.
    let store = h.join("org").join("tokens.enc");
    let aside = h.join("tokens.enc.aside");
    std::fs::rename(&store, &aside).unwrap();
    std::fs::create_dir(&store).unwrap();
    let (code, v) = health(&url);
    assert_eq!(code, 503, "{v}");
    assert!(checks(&v).contains(&"store_unreachable".to_owned()), "{v}");
    assert_eq!(v["problems"][0]["profile"], "fake", "{v}");
    std::fs::remove_dir(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
    wait_for("healthy again", 60, || {
        (health(&url).0 == 200).then_some(())
    });
    // The org goes away: the guardian's next probe fails, and /healthz says so.
    drop(org);
    let v = wait_for("an unhealthy serve", 60, || {
        let (code, v) = health(&url);
        (code == 503).then_some(v)
    });
    assert!(checks(&v).contains(&"org_unreachable".to_owned()), "{v}");
    assert_eq!(v["status"], "unhealthy");
}
