//! `sfkeep doctor --json` and `sfkeep recover` end to end: for each way a session dies, drive
//! the simulated org into that state, assert doctor's verdict, then assert that recover
//! restores a working token where the configured grants can (the org's profile has
//! `grant = "refresh_token"`, `fallback_grant = "jwt_bearer"`) and exits 3 naming the cause
//! where they cannot.

mod common;

use std::path::{Path, PathBuf};

use common::{Org, result_of, run, sfkeep};
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Logout,
    PasswordChange,
    AdminRevoke,
    Freeze,
    Deactivate,
    IpRestriction,
    LongInactivity,
    AppNotApproved,
    Healthy,
}

/// A copy of the org's profile that uses only the JWT bearer grant, with its own store file.
fn jwt_only_profile(home: &Path, org: &Org) -> PathBuf {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let text = text
        .replace("grant = \"refresh_token\"\n", "grant = \"jwt_bearer\"\n")
        .replace("fallback_grant = \"jwt_bearer\"\n", "")
        .replace("tokens.enc", "jwt-tokens.enc");
    assert!(text.contains("grant = \"jwt_bearer\"") && !text.contains("fallback_grant"));
    let p = home.join("jwt.toml");
    std::fs::write(&p, text).unwrap();
    p
}

struct Run<'a> {
    home: &'a Path,
    config: PathBuf,
    bind: Option<&'a str>,
}

impl Run<'_> {
    fn cmd(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = sfkeep(self.home);
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .args(["--profile", "fake"]);
        if let Some(b) = self.bind {
            c.env("SFKEEP_BIND_ADDRESS", b);
        }
        run(c)
    }
}

fn scenario(s: Scenario) {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let user = org.field("username");
    let client_id = org.field("client_id");
    let config = match s {
        Scenario::AppNotApproved => jwt_only_profile(h, &org),
        _ => PathBuf::from(org.field("profile_file")),
    };
    let mut r = Run {
        home: h,
        config,
        bind: None,
    };
    // A working integration: a token and a successful call in the audit log.
    let (code, _, err) = r.cmd(&["api", "GET", "limits"]);
    assert_eq!(code, 0, "{s:?}: {err}");

    // Drive the org into the state.
    let ok = |status: u16| assert_eq!(status, 200, "{s:?}: admin call");
    let (want, recoverable) = match s {
        Scenario::Logout => {
            ok(org.admin_post(&format!("/users/{user}/logout"), json!({})));
            ("logged_out_elsewhere", true)
        }
        Scenario::PasswordChange => {
            ok(org.admin_post(
                &format!("/users/{user}/password"),
                json!({"password": "A-new-password-42"}),
            ));
            ("password_changed", true)
        }
        Scenario::AdminRevoke => {
            ok(org.admin_post(&format!("/apps/{client_id}/revoke"), json!({})));
            ("app_tokens_revoked", true)
        }
        Scenario::Freeze => {
            ok(org.admin_post(&format!("/users/{user}/freeze"), json!({})));
            ("user_frozen", false)
        }
        Scenario::Deactivate => {
            ok(org.admin_post(&format!("/users/{user}/deactivate"), json!({})));
            ("user_deactivated", false)
        }
        Scenario::IpRestriction => {
            ok(org.admin_put(
                "/network",
                json!({"login_ip_ranges": [["127.0.0.1", "127.0.0.1"]], "lock_sessions_to_ip": true}),
            ));
            // The client moves to 127.0.0.2, outside the ranges.
            r.bind = Some("127.0.0.2");
            ("ip_restricted", false)
        }
        Scenario::LongInactivity => {
            ok(org.admin_post("/clock/advance", json!({"seconds": 3 * 3600})));
            ("session_timeout", true)
        }
        Scenario::AppNotApproved => {
            ok(org.admin_put(
                &format!("/apps/{client_id}/policy"),
                json!({"jwt_preapproved": false}),
            ));
            // A policy change leaves running sessions alone (that state is "healthy now, the
            // next login will be refused": `a_working_session_that_cannot_be_renewed`); the
            // session must also end for the missing approval to be why it cannot come back.
            ok(org.admin_post(&format!("/users/{user}/logout"), json!({})));
            ("app_not_approved", false)
        }
        Scenario::Healthy => ("healthy", true),
    };

    let (code, out, err) = r.cmd(&["doctor", "--json"]);
    assert_eq!(code, 0, "{s:?}: {err}");
    let d: serde_json::Value = result_of(&out);
    assert_eq!(d["verdict"], want, "{s:?}: {d:#}");
    assert_eq!(d["recoverable"], recoverable, "{s:?}: {d:#}");
    assert_eq!(d.as_object().unwrap().len(), 3);
    let top = &d["causes"][0];
    assert_eq!(top["cause"], want);
    assert!(!top["evidence"].as_array().unwrap().is_empty(), "{d:#}");
    assert!(top["fix"].as_str().unwrap().len() > 10);

    // Never "no password change … shows" next to a password change, and so on.
    let absent_claims: Vec<String> = d["causes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"].as_array().unwrap().clone())
        .filter_map(|e| {
            e.as_str()
                .filter(|e| e.contains("shows in the org"))
                .map(str::to_owned)
        })
        .collect();
    for c in d["causes"].as_array().unwrap() {
        let word = match c["cause"].as_str().unwrap() {
            "password_changed" => "password change",
            "user_frozen" => "freeze",
            "user_deactivated" => "deactivation",
            "app_tokens_revoked" => "token revoke",
            "ip_restricted" => "IP change",
            _ => continue,
        };
        for claim in &absent_claims {
            assert!(
                !claim.contains(word),
                "{s:?}: says `{claim}` while listing {c}"
            );
        }
    }

    // The human form ranks the same verdict first, and its recoverable line agrees.
    let (code, out, _) = r.cmd(&["doctor"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("verdict: {want}")), "{s:?}: {out}");
    assert!(out.contains("fix:"), "{out}");
    assert!(!out.contains("healthy — healthy"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("recoverable:"))
        .unwrap_or_else(|| panic!("{s:?}: no recoverable line: {out}"));
    if recoverable {
        assert!(
            line.starts_with("recoverable: yes") || line.contains("nothing to recover"),
            "{s:?}: {line}"
        );
    } else {
        assert!(!line.starts_with("recoverable: yes"), "{s:?}: {line}");
    }
    if matches!(s, Scenario::AdminRevoke) {
        // The profile has a JWT fallback: the fix says it heals, not "configure one".
        let top = &d["causes"][0]["fix"];
        let fix = top.as_str().unwrap();
        assert!(
            fix.contains("jwt_bearer") && !fix.contains("configure a JWT"),
            "{fix}"
        );
    }

    let (code, out, err) = r.cmd(&["recover"]);
    if recoverable {
        assert_eq!(code, 0, "{s:?}: {out}\n{err}");
        assert!(out.contains("verified: /services/oauth2/userinfo"), "{out}");
        assert!(out.contains("/limits answers"), "{out}");
        assert!(out.contains("stored: generation"), "{out}");
        // A working token is stored: the integration runs again.
        let (code, _, err) = r.cmd(&["api", "GET", "limits"]);
        assert_eq!(code, 0, "{s:?} after recover: {err}");
    } else {
        assert_eq!(code, 3, "{s:?}: {out}\n{err}");
        assert!(err.contains(want), "{s:?}: {err}");
        assert!(err.contains("Fix:"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one paragraph: {err}");
    }
    // Never a secret on any output.
    for f in [
        "client_secret",
        "password",
        "security_token",
        "refresh_token",
    ] {
        let secret = org.field(f);
        assert!(
            !out.contains(&secret) && !err.contains(&secret),
            "{s:?}: {f} leaked"
        );
    }
}

#[test]
fn logout() {
    scenario(Scenario::Logout);
}
#[test]
fn password_change() {
    scenario(Scenario::PasswordChange);
}
#[test]
fn admin_revoke() {
    scenario(Scenario::AdminRevoke);
}
#[test]
fn freeze() {
    scenario(Scenario::Freeze);
}
#[test]
fn deactivate() {
    scenario(Scenario::Deactivate);
}
#[test]
fn ip_restriction() {
    scenario(Scenario::IpRestriction);
}
#[test]
fn long_inactivity() {
    scenario(Scenario::LongInactivity);
}
#[test]
fn app_not_approved() {
    scenario(Scenario::AppNotApproved);
}
#[test]
fn healthy() {
    scenario(Scenario::Healthy);
}

/// The org's profile without its fallback grant (refresh token only), on the same store.
fn without_fallback<'a>(home: &'a Path, org: &Org) -> Run<'a> {
    let text = std::fs::read_to_string(org.field("profile_file"))
        .unwrap()
        .replace("fallback_grant = \"jwt_bearer\"\n", "");
    let config = home.join("rt.toml");
    std::fs::write(&config, text).unwrap();
    Run {
        home,
        config,
        bind: None,
    }
}

/// A revoked refresh token without a fallback grant: doctor says so (not recoverable) and
/// recover exits 3 with one paragraph naming the cause, never a secret.
#[test]
fn revoked_token_without_a_fallback() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let r = without_fallback(h, &org);
    assert_eq!(r.cmd(&["api", "GET", "limits"]).0, 0);
    let cid = org.field("client_id");
    assert_eq!(
        org.admin_post(&format!("/apps/{cid}/revoke"), json!({})),
        200
    );
    let (code, out, err) = r.cmd(&["doctor", "--json"]);
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = result_of(&out);
    assert_eq!(d["verdict"], "app_tokens_revoked", "{d:#}");
    assert_eq!(d["recoverable"], false);
    let (code, out, err) = r.cmd(&["recover"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.starts_with("sfkeep: cannot recover"), "{err}");
    assert!(
        err.contains("app_tokens_revoked") && err.contains("Fix:"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for f in ["client_secret", "refresh_token"] {
        assert!(!err.contains(&org.field(f)) && !out.contains(&org.field(f)));
    }
}

/// `recover --proxy URL` tells a running proxy to reload (a stub answering like
/// `sfkeep proxy`'s `POST /_sfkeep/reload`).
#[test]
fn recover_tells_the_proxy_to_reload() {
    use std::io::{BufRead, BufReader, Write};
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stub = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut request_line = String::new();
        let mut r = BufReader::new(s.try_clone().unwrap());
        r.read_line(&mut request_line).unwrap();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" || l.is_empty() {
                break;
            }
        }
        let body = r#"{"reloaded":true,"generation":7}"#;
        write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        request_line
    });
    let r = Run {
        home: h,
        config: PathBuf::from(org.field("profile_file")),
        bind: None,
    };
    let (code, out, err) = r.cmd(&["recover", "--proxy", &url]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("proxy at") && out.contains("reloaded (generation 7)"),
        "{out}"
    );
    assert_eq!(stub.join().unwrap().trim(), "POST /_sfkeep/reload HTTP/1.1");
}

/// `sfkeep doctor --json`, parsed.
fn doctor_json(r: &Run<'_>) -> serde_json::Value {
    let (code, out, err) = r.cmd(&["doctor", "--json"]);
    assert_eq!(code, 0, "{err}");
    result_of(&out)
}

fn causes(d: &serde_json::Value) -> Vec<String> {
    d["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cause"].as_str().unwrap().to_owned())
        .collect()
}

/// Frozen, diagnosed, unfrozen, recovered: doctor's own refused dry refreshes (recorded in the
/// audit log while the user was frozen) and the org's evidence from before the recovered
/// token was issued do not make a healthy session look frozen.
#[test]
fn a_recovered_session_is_healthy_whatever_doctor_saw_before() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let user = org.field("username");
    let r = Run {
        home: h,
        config: PathBuf::from(org.field("profile_file")),
        bind: None,
    };
    assert_eq!(r.cmd(&["api", "GET", "limits"]).0, 0);
    assert_eq!(
        org.admin_post(&format!("/users/{user}/freeze"), json!({})),
        200
    );
    let d = doctor_json(&r);
    assert_eq!(d["verdict"], "user_frozen", "{d:#}");
    // Twice: the second run reads the first one's probe events.
    assert_eq!(doctor_json(&r)["verdict"], "user_frozen");
    assert_eq!(
        org.admin_post(&format!("/users/{user}/unfreeze"), json!({})),
        200
    );
    let (code, out, err) = r.cmd(&["recover"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let d = doctor_json(&r);
    assert_eq!(d["verdict"], "healthy", "{d:#}");
    assert_eq!(d["recoverable"], true, "{d:#}");
    assert!(!causes(&d).contains(&"user_frozen".to_owned()), "{d:#}");
}

/// The app's tokens are revoked and the JWT fallback heals it; two hours later the fallback's
/// token times out. The verdict is the timeout, the standing revoke is listed with the fix the
/// profile already has, and the clock offset reads like a duration.
#[test]
fn a_timeout_after_a_healed_revoke_is_a_timeout() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let cid = org.field("client_id");
    let r = Run {
        home: h,
        config: PathBuf::from(org.field("profile_file")),
        bind: None,
    };
    assert_eq!(r.cmd(&["api", "GET", "limits"]).0, 0);
    assert_eq!(
        org.admin_post(&format!("/apps/{cid}/revoke"), json!({})),
        200
    );
    // The integration heals by itself (refresh refused → JWT fallback). Running on the
    // fallback is not "healthy": the refresh token is dead (issue #22 item 11).
    let (code, _, err) = r.cmd(&["api", "GET", "limits"]);
    assert_eq!(code, 0, "{err}");
    let d = doctor_json(&r);
    assert_eq!(d["verdict"], "app_tokens_revoked", "{d:#}");
    assert_eq!(d["recoverable"], true, "{d:#}");
    assert_eq!(
        org.admin_post("/clock/advance", json!({"seconds": 7300})),
        200
    );
    let d = doctor_json(&r);
    assert_eq!(d["verdict"], "session_timeout", "{d:#}");
    assert!(
        d["causes"][0]["confidence"].as_f64().unwrap() >= 0.8,
        "{d:#}"
    );
    assert_eq!(d["recoverable"], true);
    let revoked = d["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"] == "app_tokens_revoked")
        .unwrap_or_else(|| panic!("the dead refresh token is listed: {d:#}"));
    let fix = revoked["fix"].as_str().unwrap();
    assert!(
        fix.contains("jwt_bearer") && !fix.contains("configure a JWT"),
        "{fix}"
    );

    let (code, out, _) = r.cmd(&["doctor"]);
    assert_eq!(code, 0);
    // 7300 s, give or take the `Date` header's one-second resolution.
    assert!(
        ["2h 1m 39s", "2h 1m 40s", "2h 1m 41s"]
            .iter()
            .any(|d| out.contains(&format!("server's clock is {d} ahead of this machine's"))),
        "{out}"
    );
    assert!(!out.contains(" ms"), "{out}");
}

/// The org's login IP ranges exclude this machine, but sessions are not locked to an address:
/// the stored token keeps working, and every token request is refused. Doctor says the session
/// is healthy now and warns that the next login or refresh will be refused.
#[test]
fn a_working_session_that_cannot_be_renewed() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let r = Run {
        home: h,
        config: PathBuf::from(org.field("profile_file")),
        bind: None,
    };
    assert_eq!(r.cmd(&["api", "GET", "limits"]).0, 0);
    assert_eq!(
        org.admin_put(
            "/network",
            json!({"login_ip_ranges": [["10.0.0.1", "10.0.0.9"]], "lock_sessions_to_ip": false}),
        ),
        200
    );
    let (code, _, err) = r.cmd(&["api", "GET", "limits"]);
    assert_eq!(code, 0, "the session still works: {err}");
    let d = doctor_json(&r);
    assert_eq!(d["verdict"], "healthy", "{d:#}");
    assert_eq!(d["recoverable"], false, "{d:#}");
    assert_eq!(d["causes"][1]["cause"], "ip_restricted", "{d:#}");
    let (code, out, _) = r.cmd(&["doctor"]);
    assert_eq!(code, 0);
    let verdict = out.lines().next().unwrap();
    assert!(
        verdict.contains("works now") && verdict.contains("ip_restricted"),
        "{out}"
    );
    assert!(
        !out.contains("recoverable: no: a person must act first"),
        "{out}"
    );
}

/// A rotating refresh whose answer is lost after the org committed the rotation (issue #21;
/// docs/rotation-safety.md): the CLI never presents the rotated-out refresh token again and
/// says `refresh_interrupted`; doctor names it with the store's intent record as evidence; the
/// profile's JWT bearer fallback restores service through `recover`. The org counts no reuse.
#[test]
fn an_interrupted_rotating_refresh_is_named_and_recovered() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let (cid, user) = (org.field("client_id"), org.field("username"));
    assert_eq!(
        org.admin_put(
            &format!("/apps/{cid}/policy"),
            json!({"rotate_refresh_tokens": true})
        ),
        200
    );
    let rt_only = without_fallback(h, &org);
    assert_eq!(rt_only.cmd(&["api", "GET", "limits"]).0, 0);
    // The session dies; the refresh that follows is committed by the org, and its answer lost.
    assert_eq!(
        org.admin_post(&format!("/users/{user}/logout"), json!({})),
        200
    );
    assert_eq!(
        org.admin_post(
            "/faults",
            json!({"path_prefix": "/services/oauth2/token", "after_commit": true, "reset": true, "count": 1})
        ),
        200
    );
    // The first command may report the lost answer as transient; by the second at the latest
    // the interrupted refresh is judged (introspection: the token is no longer live).
    let (first, _, first_err) = rt_only.cmd(&["api", "GET", "limits"]);
    assert_ne!(first, 0, "{first_err}");
    let (code, out, err) = rt_only.cmd(&["api", "GET", "limits"]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("refresh_interrupted"), "{err}");

    let d = doctor_json(&rt_only);
    assert_eq!(d["verdict"], "refresh_interrupted", "{d:#}");
    assert_eq!(d["recoverable"], false, "{d:#}");
    let evidence = d["causes"][0]["evidence"].to_string();
    assert!(
        evidence.contains("unfinished rotating refresh") && evidence.contains("no longer active"),
        "{evidence}"
    );
    let s = org.stats();
    assert_eq!(s["refresh_token_reuse_detected"], 0, "{s}");
    // The first token and the refresh whose answer was lost; nothing presented it again.
    assert_eq!(s["token_requests"]["refresh_token"], 2, "{s}");

    // The org's own profile has the JWT bearer fallback: recover heals without a person.
    let with_fallback = Run {
        home: h,
        config: PathBuf::from(org.field("profile_file")),
        bind: None,
    };
    let (code, out, err) = with_fallback.cmd(&["recover"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(with_fallback.cmd(&["api", "GET", "limits"]).0, 0);
    let s = org.stats();
    assert_eq!(s["refresh_token_reuse_detected"], 0, "{s}");
    assert_eq!(s["token_requests"]["refresh_token"], 2, "{s}");
    for f in ["client_secret", "refresh_token"] {
        assert!(!err.contains(&org.field(f)) && !out.contains(&org.field(f)));
        assert!(!evidence.contains(&org.field(f)));
    }
}
