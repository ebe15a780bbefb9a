//! `sfkeep logout --revoke` is a kill switch (issue 22 item 3): with a JWT fallback configured,
//! neither the next `sfkeep token` nor a proxy that was already running logs straight back in
//! with JWT (the org's own counters show no jwt_bearer request); the output says what was
//! stopped; `sfkeep login` enables the fallback again, and the running proxy recovers.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Org, result_of, run, sfkeep, spawn_proxy};

fn jwt_requests(org: &Org) -> u64 {
    org.stats()["token_requests"]["jwt_bearer"]
        .as_u64()
        .unwrap_or(0)
}

fn cli(h: &Path, org: &Org, args: &[&str]) -> (i32, String, String) {
    let mut c = sfkeep(h);
    c.arg("--config")
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"])
        .args(args);
    run(c)
}

#[test]
fn logout_revoke_stops_the_jwt_fallback_until_login() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let (code, _, err) = cli(h, &org, &["token"]);
    assert_eq!(code, 0, "{err}");
    let (mut proxy, ready) = spawn_proxy(h, &org, &[]);
    let url = ready["url"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let query = format!("{url}/services/data/v59.0/query?q=SELECT+Id+FROM+Account");
    let status = |q: &str| rt.block_on(async { http.get(q).send().await.unwrap().status() });
    assert_eq!(status(&query), 200);
    let jwt_before = jwt_requests(&org);

    let (code, out, err) = cli(h, &org, &["logout", "--revoke", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r = result_of(&out);
    assert_eq!(r["fallback_disabled"], "jwt_bearer", "{out}");
    assert!(
        err.contains("disabled the jwt_bearer fallback grant"),
        "the text says what was stopped: {err}"
    );
    assert!(!err.contains(&org.field("refresh_token")), "{err}");

    // The next `token`: exit 3, saying why, and no JWT token request reached the org.
    let (code, out, err) = cli(h, &org, &["token"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("logout --revoke"), "{err}");
    // The running proxy: its token died with the revocation; it must not mint another.
    assert_ne!(status(&query), 200);
    assert_ne!(status(&query), 200);
    assert_eq!(
        jwt_requests(&org),
        jwt_before,
        "no jwt_bearer token request after the kill switch: {}",
        org.stats()
    );

    // `login` enables it again: one JWT login, then `token` and the proxy work.
    let (code, _, err) = cli(h, &org, &["login", "--jwt"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("enabled again"), "{err}");
    let (code, out, err) = cli(h, &org, &["token"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&query);
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not adopt the new login within 60 s (last status {s})"
        );
        std::thread::sleep(Duration::from_millis(200)); // the poll interval
    }
    assert!(
        jwt_requests(&org) > jwt_before,
        "login --jwt asked the org: {}",
        org.stats()
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn logout_without_revoke_keeps_the_fallback() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    assert_eq!(cli(h, &org, &["token"]).0, 0);
    let (code, out, err) = cli(h, &org, &["logout", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(result_of(&out)["fallback_disabled"].is_null(), "{out}");
    let before = jwt_requests(&org);
    // The configured refresh token is still valid: the next token may use it or the fallback,
    // but the fallback is not disabled.
    let (code, _, err) = cli(h, &org, &["token"]);
    assert_eq!(code, 0, "{err}");
    assert!(jwt_requests(&org) >= before);
}
