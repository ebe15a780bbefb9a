//! `sfkeep status` shows the last auth events from the audit log (never a token).

mod common;

use common::{Org, result_of, run, sfkeep};

#[test]
fn status_lists_recent_auth_events_without_secrets() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let with_profile = |args: &[&str]| {
        let mut c = sfkeep(h);
        c.args(args)
            .arg("--config")
            .arg(org.field("profile_file"))
            .args(["--profile", "fake"]);
        c
    };
    let (code, token, err) = run(with_profile(&["token"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(with_profile(&["status", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = result_of(&out);
    let kinds: Vec<&str> = v["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"token.refreshed"), "{kinds:?}");
    let (code, text, _) = run(with_profile(&["status"]));
    assert_eq!(code, 0);
    assert!(
        text.contains("recent") && text.contains("token.refreshed"),
        "{text}"
    );
    assert!(!text.contains(token.trim()) && !out.contains(token.trim()));
}

/// Doctor's own dry refreshes are token requests the org saw, so the audit log keeps them,
/// tagged `origin: doctor`; they are not the integration's history, so `status` never lists
/// them (a healthy profile showed `reauth.required` from a doctor run).
#[test]
fn doctors_probes_are_logged_as_such_and_kept_out_of_status() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 5);
    let with_profile = |args: &[&str]| {
        let mut c = sfkeep(h);
        c.args(args)
            .arg("--config")
            .arg(org.field("profile_file"))
            .args(["--profile", "fake"]);
        c
    };
    let (code, _, err) = run(with_profile(&["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    // Every token request is refused from here on; the running session still works.
    assert_eq!(
        org.admin_put(
            "/network",
            serde_json::json!({"login_ip_ranges": [["10.0.0.1", "10.0.0.9"]]}),
        ),
        200
    );
    let (code, _, err) = run(with_profile(&["doctor", "--json"]));
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(with_profile(&["events", "--json"]));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = result_of(&out)["events"].as_array().unwrap().clone();
    let probes: Vec<&serde_json::Value> = rows.iter().filter(|r| r["origin"] == "doctor").collect();
    assert!(
        probes.iter().any(|r| r["kind"] == "reauth.required"),
        "doctor's refused dry refresh is in the log, tagged: {out}"
    );
    assert!(
        rows.iter()
            .filter(|r| r["kind"] == "token.refreshed" || r["kind"] == "api.succeeded")
            .any(|r| r["origin"].is_null()),
        "the integration's own events carry no origin: {out}"
    );

    let (code, out, err) = run(with_profile(&["status", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = result_of(&out);
    let kinds: Vec<&str> = v["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["token.refreshed", "api.succeeded"], "{out}");
    let (code, text, _) = run(with_profile(&["status"]));
    assert_eq!(code, 0);
    assert!(
        !text.contains("reauth.required") && !text.contains("refresh.failed"),
        "{text}"
    );
}
