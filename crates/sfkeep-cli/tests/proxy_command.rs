//! `sfkeep proxy` through the real binary: a client with no credentials calls the org through
//! it, keeps working after the session is killed, re-authenticates on SIGHUP, and stops on
//! SIGTERM.

mod common;

use common::{Org, spawn_proxy};

#[test]
fn the_proxy_command_serves_heals_and_stops() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 20);
    let (mut child, ready) = spawn_proxy(h, &org, &[]);
    let url = ready["url"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let query = format!("{url}/services/data/v59.0/query?q=SELECT+Id+FROM+Account");
    rt.block_on(async {
        let r = http.get(&query).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["totalSize"], 20);
    });
    // Kill every session: the client, which holds no credential at all, never notices.
    let logout = format!("/users/{}/logout", org.field("username"));
    assert_eq!(org.admin_post(&logout, serde_json::json!({})), 200);
    rt.block_on(async {
        assert_eq!(http.get(&query).send().await.unwrap().status(), 200);
        let health = http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!health.contains(&org.field("refresh_token")));
        // Not an open proxy.
        let other = http
            .get(format!("{url}/somewhere/else"))
            .send()
            .await
            .unwrap();
        assert!(other.status().is_client_error());
    });
    // SIGHUP re-authenticates (one token request at the org), and the proxy keeps serving.
    let pid = child.id().to_string();
    let token_requests = || -> u64 {
        org.stats()["token_requests"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    let before = token_requests();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while token_requests() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no re-authentication within 30 s of SIGHUP"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(token_requests(), before + 1, "one token request per SIGHUP");
    rt.block_on(async {
        assert_eq!(http.get(&query).send().await.unwrap().status(), 200);
    });
    // SIGTERM stops it cleanly.
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
