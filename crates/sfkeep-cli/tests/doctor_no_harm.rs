//! `sfkeep doctor` does no harm to the integration it examines (issue 23, item 1): with
//! refresh-token rotation on, the profile's configured refresh token is rotated out after the
//! integration's first refresh, and presenting it again would make the org revoke the whole
//! token family. Doctor runs again and again between the integration's own calls and
//! refreshes; the org's `/_fake/stats` must show no reuse and the integration must keep
//! working.

mod common;

use std::path::{Path, PathBuf};

use common::{Org, result_of, run, sfkeep};
use serde_json::{Value, json};

struct Integration<'a> {
    home: &'a Path,
    config: PathBuf,
}

impl Integration<'_> {
    fn cmd(&self, args: &[&str]) -> (i32, String, String) {
        let mut c = sfkeep(self.home);
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .args(["--profile", "fake"]);
        run(c)
    }

    /// One call of the integration; it must work.
    fn works(&self, when: &str) {
        let (code, _, err) = self.cmd(&["api", "GET", "limits"]);
        assert_eq!(code, 0, "the integration stopped working {when}: {err}");
    }

    fn doctor(&self) -> Value {
        let (code, out, err) = self.cmd(&["doctor", "--json"]);
        assert_eq!(code, 0, "doctor: {err}");
        result_of(&out)
    }

    fn doctor_human(&self) -> String {
        let (code, out, err) = self.cmd(&["doctor"]);
        assert_eq!(code, 0, "doctor: {err}");
        out
    }
}

fn reuse(org: &Org) -> u64 {
    org.stats()["refresh_token_reuse_detected"]
        .as_u64()
        .expect("refresh_token_reuse_detected")
}

fn rotating_org(home: &Path) -> Org {
    let org = Org::start(home, 5);
    let cid = org.field("client_id");
    assert_eq!(
        org.admin_put(
            &format!("/apps/{cid}/policy"),
            json!({"rotate_refresh_tokens": true})
        ),
        200
    );
    org
}

/// The org's own profile (refresh token, JWT fallback, client secret): 100 doctor runs between
/// the integration's calls, with logouts and timeouts that make the integration refresh (and
/// rotate) in between. Doctor never presents the profile's rotated-out refresh token.
#[test]
fn a_hundred_doctor_runs_never_reuse_a_rotated_refresh_token() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = rotating_org(h);
    let user = org.field("username");
    let it = Integration {
        home: h,
        config: PathBuf::from(org.field("profile_file")),
    };
    // The first refresh rotates: the refresh token in the profile is now rotated out.
    it.works("at the start");
    let before = org.stats()["token_requests"]["refresh_token"].clone();
    assert_eq!(before, 1, "{before}");
    for i in 0..100 {
        match i % 20 {
            // The session dies by a logout: doctor runs on a dead stored token.
            5 => assert_eq!(
                org.admin_post(&format!("/users/{user}/logout"), json!({})),
                200
            ),
            // It times out.
            15 => assert_eq!(
                org.admin_post("/clock/advance", json!({"seconds": 3 * 3600})),
                200
            ),
            _ => {}
        }
        let d = it.doctor();
        assert_eq!(
            reuse(&org),
            0,
            "doctor run {i} reused a refresh token: {d:#}"
        );
        if i % 20 == 5 {
            assert_eq!(d["verdict"], "logged_out_elsewhere", "run {i}: {d:#}");
        }
        if i % 20 == 15 {
            assert_eq!(d["verdict"], "session_timeout", "run {i}: {d:#}");
        }
        if i % 10 == 9 || i % 20 == 5 || i % 20 == 15 {
            it.works(&format!("after doctor run {i}"));
        }
    }
    // The integration refreshed itself (the refresh token still works, rotated each time),
    // and doctor never used the refresh token: introspection told it was alive.
    it.works("at the end");
    let s = org.stats();
    assert_eq!(s["refresh_token_reuse_detected"], 0, "{s:#}");
    let human = it.doctor_human();
    assert!(
        human.contains("introspection: the refresh token in the token store"),
        "the output says which check was made: {human}"
    );
    assert!(human.contains("it was not used"), "{human}");
}

/// A profile with only the refresh-token grant and no client secret (so no introspection):
/// doctor must refresh to read the org, and does it through the token store as the
/// integration would, so the rotation it causes is stored and the integration continues.
#[test]
fn without_introspection_doctor_refreshes_through_the_store() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = rotating_org(h);
    let user = org.field("username");
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("fallback_grant") && !l.starts_with("client_secret"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!text.contains("client_secret") && !text.contains("fallback_grant"));
    let config = h.join("rt-only.toml");
    std::fs::write(&config, text).unwrap();
    let it = Integration { home: h, config };
    it.works("at the start");
    for i in 0..20 {
        if i % 5 == 2 {
            assert_eq!(
                org.admin_post(&format!("/users/{user}/logout"), json!({})),
                200
            );
        }
        let d = it.doctor();
        assert_eq!(
            reuse(&org),
            0,
            "doctor run {i} reused a refresh token: {d:#}"
        );
        if i % 5 == 2 {
            assert_eq!(d["verdict"], "logged_out_elsewhere", "run {i}: {d:#}");
            assert_eq!(d["recoverable"], true, "run {i}: {d:#}");
        }
        it.works(&format!("after doctor run {i}"));
    }
    let human = {
        assert_eq!(
            org.admin_post(&format!("/users/{user}/logout"), json!({})),
            200
        );
        it.doctor_human()
    };
    assert!(
        human.contains("refreshed through the token store as the integration would"),
        "the output says a token was minted and stored: {human}"
    );
    assert_eq!(reuse(&org), 0);
    it.works("at the end");
}
