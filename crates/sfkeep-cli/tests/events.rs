//! `sfkeep events`: every command's auth events land in the audit log next to the store;
//! `--since`, `--json`, `--follow`; an audit log from a newer sfkeep is refused clearly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{Org, result_of, run, sfkeep};

fn with_profile(home: &std::path::Path, org: &Org, args: &[&str]) -> std::process::Command {
    let mut c = sfkeep(home);
    c.args(args)
        .arg("--config")
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"]);
    c
}

fn audit_path(org: &Org) -> std::path::PathBuf {
    std::path::Path::new(&org.field("profile_file"))
        .parent()
        .unwrap()
        .join("audit.db")
}

#[test]
fn events_are_recorded_listed_and_followed() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let h = home.path();
    let (code, _, err) = run(with_profile(h, &org, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    assert!(audit_path(&org).exists());

    let (code, out, err) = run(with_profile(
        h,
        &org,
        &["events", "--json", "--since", "1h"],
    ));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = result_of(&out)["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["token.refreshed", "api.succeeded"], "{out}");
    assert_eq!(rows[0]["grant"], "refresh_token");
    assert_eq!(rows[0]["generation"], 1);
    assert_eq!(rows[0]["profile"], "fake");
    assert_eq!(rows[0]["fingerprint"].as_str().unwrap().len(), 8);
    // Never a token in the log's output.
    let (_, token, _) = run(with_profile(h, &org, &["token"]));
    assert!(!out.contains(token.trim()));

    // Human form.
    let (code, out, _) = run(with_profile(h, &org, &["events"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("token.refreshed") && out.contains("api.succeeded"),
        "{out}"
    );

    // --follow prints old events, then new ones as they come.
    let mut child = with_profile(h, &org, &["events", "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    // The two from `api`; `token` adopted the very token the log already names, which is no
    // news and no line (issue 22: adoption is logged only when it changes something).
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("old events");
    }
    let (code, _, err) = run(with_profile(h, &org, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("api.succeeded")) {
        seen.push(
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a followed event"),
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_audit_log_from_a_newer_version_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let h = home.path();
    let conn = rusqlite::Connection::open(audit_path(&org)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let (code, out, err) = run(with_profile(h, &org, &["events"]));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("schema version 99")
            && err.contains("newer sfkeep")
            && err.contains("audit.db"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Other commands still work, with one warning.
    let (code, _, err) = run(with_profile(h, &org, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("newer sfkeep"),
        "{err}"
    );
    // doctor refuses too.
    let (code, _, err) = run(with_profile(h, &org, &["doctor"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("newer sfkeep"), "{err}");
}

#[test]
fn doctors_own_probes_are_marked_in_the_listing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let (code, _, err) = run(with_profile(h, &org, &["token"]));
    assert_eq!(code, 0, "{err}");
    let (_, _, _) = run(with_profile(h, &org, &["doctor"]));
    let (code, out, err) = run(with_profile(h, &org, &["events"]));
    assert_eq!(code, 0, "{err}");
    let probes = out
        .lines()
        .filter(|l| l.ends_with("(doctor probe)"))
        .count();
    let own = out
        .lines()
        .filter(|l| !l.ends_with("(doctor probe)"))
        .count();
    assert!(
        probes >= 1,
        "doctor's test refresh is listed and marked: {out}"
    );
    assert!(
        own >= 1,
        "the integration's own events are not marked: {out}"
    );
}
