//! End to end through the real binary: `sfkeep fake-org`, then `token`, `status`, `login`,
//! `logout` against it with the profile file the org writes.

mod common;

use std::time::{Duration, Instant};

use common::{Org, result_of, run, sfkeep};

fn with_profile(home: &std::path::Path, org: &Org, args: &[&str]) -> std::process::Command {
    let mut c = sfkeep(home);
    c.args(args)
        .arg("--config")
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"]);
    c
}

#[test]
fn fake_org_then_token_status_login_logout() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 5000);
    for f in [
        "login_url",
        "instance_url",
        "admin_url",
        "client_id",
        "client_secret",
        "username",
        "password",
        "security_token",
        "refresh_token",
        "jwt_key_file",
        "profile_file",
    ] {
        assert!(
            org.ready[f].is_string(),
            "ready line lacks {f}: {}",
            org.ready
        );
    }
    let h = home.path();

    // token: the token alone on stdout.
    let (code, out, err) = run(with_profile(h, &org, &["token"]));
    assert_eq!(code, 0, "stderr: {err}");
    let token = out.trim().to_owned();
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{out:?}"
    );
    assert_eq!(out.lines().count(), 1);

    // token --json: the documented fields; the same (cached) token.
    let (code, out, err) = run(with_profile(h, &org, &["token", "--json"]));
    assert_eq!(code, 0, "stderr: {err}");
    let v: serde_json::Value = result_of(&out);
    assert_eq!(v["access_token"], token.as_str());
    assert_eq!(v["instance_url"], org.field("instance_url").as_str());
    assert_eq!(v["generation"], 1);
    assert!(v["expires_in_secs"].as_u64().unwrap() > 60, "{v}");

    // status --json: fresh, and never the token.
    let (code, out, err) = run(with_profile(h, &org, &["status", "--json"]));
    assert_eq!(code, 0, "stderr: {err}");
    let s: serde_json::Value = result_of(&out);
    assert_eq!(s["state"], "fresh", "{s}");
    assert_eq!(s["store"], "file");
    assert_eq!(s["generation"], 1);
    assert_eq!(s["fingerprint"].as_str().unwrap().len(), 8);
    assert!(!out.contains(&token) && !err.contains(&token));
    let (code, out, _) = run(with_profile(h, &org, &["status"]));
    assert_eq!(code, 0);
    assert!(out.contains("fresh") && !out.contains(&token), "{out}");

    // The user logs out elsewhere: `token` still answers from the store (it does not call
    // the org for a fresh token; healing a dead one is the client's and proxy's job).
    let user = org.field("username");
    assert_eq!(
        org.admin_post(&format!("/users/{user}/logout"), serde_json::json!({})),
        200
    );
    let (code, out, err) = run(with_profile(h, &org, &["token"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.trim(), token);

    // login --jwt stores a new token under the same key; `token` serves it.
    let (code, out, err) = run(with_profile(h, &org, &["login", "--jwt"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("jwt_bearer"), "{out}");
    let (code, out, _) = run(with_profile(h, &org, &["token", "--json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = result_of(&out);
    assert_eq!(v["generation"], 2);
    assert_ne!(v["access_token"], token.as_str());

    // logout forgets; the next `token` gets a new one.
    let (code, _, err) = run(with_profile(h, &org, &["logout"]));
    assert_eq!(code, 0, "stderr: {err}");
    let (code, out, _) = run(with_profile(h, &org, &["status", "--json"]));
    assert_eq!(code, 0);
    assert!(out.contains(r#""state":"missing""#), "{out}");
    let (code, out, err) = run(with_profile(h, &org, &["token"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_ne!(out.trim(), token);

    // login --soap works and warns about the retirement.
    let (code, _, err) = run(with_profile(h, &org, &["login", "--soap"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        err.contains("API version 65.0") && err.contains("OAuth"),
        "{err}"
    );
}

#[test]
fn revoked_app_tokens_without_fallback_exit_3() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let h = home.path();
    // The org's profile without the JWT fallback, and a memory store.
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("fallback_grant"))
        .map(|l| l.replace("kind = \"file\"", "kind = \"memory\""))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = h.join("nofallback.toml");
    std::fs::write(&cfg, text).unwrap();
    let cmd = || {
        let mut c = sfkeep(h);
        c.arg("token")
            .arg("--config")
            .arg(&cfg)
            .args(["--profile", "fake"]);
        c
    };
    let (code, _, err) = run(cmd());
    assert_eq!(code, 0, "stderr: {err}");
    let client_id = org.field("client_id");
    assert_eq!(
        org.admin_post(&format!("/apps/{client_id}/revoke"), serde_json::json!({})),
        200
    );
    let (code, out, err) = run(cmd());
    assert_eq!(code, 3, "stdout: {out} stderr: {err}");
    assert!(out.is_empty());
    assert!(err.contains("sfkeep login"), "{err}");
    for secret in [
        "refresh_token",
        "client_secret",
        "password",
        "security_token",
    ] {
        assert!(!err.contains(&org.field(secret)), "{secret} leaked: {err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one paragraph: {err}");
}

#[cfg(unix)]
#[test]
fn fake_org_exits_cleanly_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let mut child = sfkeep(home.path())
        .args(["fake-org", "--listen", "127.0.0.1:0", "--accounts", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("ready line");
    assert!(line.starts_with('{'), "{line}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fake-org did not exit within 10 s of SIGTERM");
        }
        std::thread::yield_now();
    };
    assert_eq!(exit.code(), Some(0));
}

/// Runs `sfkeep login ARGS` against the org; hands each stderr line to `on_line` until it
/// returns true; then waits (30 s deadline) for the exit. Returns (code, stdout).
fn interactive_login(
    home: &std::path::Path,
    org: &Org,
    args: &[&str],
    on_line: impl Fn(&str) -> bool,
) -> (i32, String) {
    let (code, out, _) = interactive_login_with_stderr(home, org, args, on_line);
    (code, out)
}

/// As [`interactive_login`], also returning the stderr lines after the one `on_line` took.
fn interactive_login_with_stderr(
    home: &std::path::Path,
    org: &Org,
    args: &[&str],
    on_line: impl Fn(&str) -> bool,
) -> (i32, String, String) {
    use std::io::{BufRead, Read};
    let mut child = with_profile(home, org, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if on_line(&line) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("login never printed what the test waits for: {e}");
            }
        }
    }
    let mut stdout = child.stdout.take().unwrap();
    let (etx, erx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = etx.send((child.wait().map(|s| s.code().unwrap_or(-1)), out));
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let (code, out) = erx.recv_timeout(left).expect("login exits in time");
    // The child has exited: its stderr reaches end of file, and the reader's channel closes.
    let mut rest = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                rest.push_str(&line);
                rest.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("stderr did not close after the exit: {e}"),
        }
    }
    (code.unwrap(), out, rest)
}

/// `sfkeep login --web` without a browser: the test plays it.
const WEB_LOGIN: [&str; 7] = [
    "login",
    "--web",
    "--port",
    "0",
    "--no-browser",
    "--timeout",
    "25",
];
/// `sfkeep login --device`.
const DEVICE_LOGIN: [&str; 4] = ["login", "--device", "--timeout", "25"];

/// The authorize URL in a line of `login --web`'s stderr.
fn authorize_url_in(line: &str) -> Option<url::Url> {
    line.split_whitespace()
        .find(|w| w.contains("/services/oauth2/authorize"))
        .map(|u| url::Url::parse(u).unwrap())
}

/// Plays the browser: the authorize page redirects to the CLI's callback with a code, and the
/// callback page is fetched.
fn follow_authorize(url: &url::Url) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(url.as_str()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        let loc = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            loc.contains("/OauthRedirect?") && loc.contains("code="),
            "{loc}"
        );
        let page = http.get(&loc).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
    });
}

/// A stderr-line handler for `login --device`: approves the code it shows, as `username`
/// (the integration user when `None`).
fn approve_device<'a>(org: &'a Org, username: Option<&'a str>) -> impl Fn(&str) -> bool + 'a {
    move |line| {
        let Some(code) = line
            .split("enter the code ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        else {
            return false;
        };
        let body = match username {
            Some(u) => serde_json::json!({"username": u}),
            None => serde_json::json!({}),
        };
        assert_eq!(
            org.admin_post(&format!("/device/{code}/approve"), body),
            200
        );
        true
    }
}

#[test]
fn login_web_and_device_against_the_fake_org() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let h = home.path();

    // --web: play the browser: follow the authorize URL to the callback.
    let (code, out) = interactive_login(h, &org, &WEB_LOGIN, |line| {
        let Some(url) = authorize_url_in(line) else {
            return false;
        };
        follow_authorize(&url);
        true
    });
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("authorization_code"), "{out}");

    // The stored record now carries a refresh token from the web login.
    let (code, out, _) = run(with_profile(h, &org, &["status", "--json"]));
    assert_eq!(code, 0);
    let s: serde_json::Value = result_of(&out);
    assert_eq!(s["grant"], "authorization_code");
    assert_eq!(s["has_refresh_token"], true);

    // --device: approve the user code through the admin API.
    let (code, out) = interactive_login(h, &org, &DEVICE_LOGIN, approve_device(&org, None));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("with device"), "{out}");

    // --sfdx-url -: the URL comes on stdin, so it never shows in the process list; nothing
    // of it is echoed.
    let url = format!(
        "force://{}:{}:{}@{}",
        org.field("client_id"),
        org.field("client_secret"),
        org.field("refresh_token"),
        org.field("login_url").trim_start_matches("http://")
    );
    let mut child = with_profile(h, &org, &["login", "--sfdx-url", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(url.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("with refresh_token"), "{stdout}");
    for secret in ["client_secret", "refresh_token"] {
        let v = org.field(secret);
        assert!(
            !stdout.contains(&v) && !stderr.contains(&v),
            "{secret} echoed"
        );
    }
}

/// The live refresh tokens at the org (one per family not revoked).
fn live_refresh_tokens(org: &Org) -> Vec<String> {
    let url = format!("{}/tokens", org.field("admin_url"));
    let v: serde_json::Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    v["current_refresh_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// Issue 24, item 4 for interactive logins: a person who signs in to the browser (or approves
/// the device code) as someone other than the profile's user gets nothing stored under the
/// profile — every process sharing the store would otherwise act as that person — and the
/// new refresh token is revoked at once instead of staying valid, held by no one. The web
/// login also names the profile's user to the login page (`login_hint`).
#[test]
fn a_login_as_another_user_stores_nothing_and_revokes_its_token() {
    const OTHER: &str = "admin@example.com";
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let h = home.path();
    let user = org.field("username");
    let status_grant = || {
        let (code, out, err) = run(with_profile(h, &org, &["status", "--json"]));
        assert_eq!(code, 0, "{err}");
        result_of(&out)["grant"].clone()
    };
    let live_before = live_refresh_tokens(&org);

    // --web, the browser signed in as another user.
    let (code, _, err) = interactive_login_with_stderr(h, &org, &WEB_LOGIN, |line| {
        let Some(mut url) = authorize_url_in(line) else {
            return false;
        };
        let hint: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "login_hint")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(hint.len(), 1, "one login_hint: {hint:?}");
        assert_eq!(hint[0], user, "the login page is told the profile's user");
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "login_hint")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs)
            .append_pair("login_hint", OTHER);
        follow_authorize(&url);
        true
    });
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("acted as `{OTHER}`")) && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(err.contains("the new token was revoked"), "{err}");
    assert_ne!(status_grant(), "authorization_code", "nothing stored");
    assert_eq!(
        live_refresh_tokens(&org),
        live_before,
        "the other user's new refresh token is revoked at the org"
    );

    // --device, approved by another user.
    let (code, _, err) =
        interactive_login_with_stderr(h, &org, &DEVICE_LOGIN, approve_device(&org, Some(OTHER)));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("acted as `{OTHER}`")), "{err}");
    assert_ne!(status_grant(), "device");
    assert_eq!(live_refresh_tokens(&org), live_before);

    // The profile's own user, for contrast: stored.
    let (code, out) = interactive_login(h, &org, &DEVICE_LOGIN, approve_device(&org, None));
    assert_eq!(code, 0, "{out}");
    assert_eq!(status_grant(), "device");
}
