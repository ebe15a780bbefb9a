//! `sfkeep status` shows the last auth events from the audit log (never a token).

mod common;

use common::{Org, run, sfkeep};

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
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
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
