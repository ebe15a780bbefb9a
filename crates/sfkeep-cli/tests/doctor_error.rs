//! `sfkeep doctor --error`: every error body of docs/salesforce-wire.md classified offline
//! through the real binary, as an argument and on stdin; text that is not an error is exit 2.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{result_of, run, sfkeep};

#[path = "../../sfkeep/tests/classify_wire_bodies.rs"]
#[allow(dead_code)]
mod wire;

fn doctor_json(home: &std::path::Path, body: &str, stdin: bool) -> (i32, String, String) {
    let mut c = sfkeep(home);
    c.args(["doctor", "--json", "--error"]);
    if stdin {
        c.arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    } else {
        c.arg(body);
        run(c)
    }
}

#[test]
fn every_reference_body_classifies_through_the_binary() {
    // No config anywhere: --error needs none.
    let home = tempfile::tempdir().unwrap();
    for (i, (body, want, recoverable)) in wire::TABLE.iter().enumerate() {
        // Half as an argument, half on stdin (arguments cannot hold every byte).
        let stdin = i % 2 == 1 || body.contains('\0');
        let (code, out, err) = doctor_json(home.path(), body, stdin);
        assert_eq!(code, 0, "{body}: {err}");
        let v: serde_json::Value = result_of(&out);
        assert_eq!(v["verdict"], want.as_str(), "{body}: {v}");
        assert_eq!(v["recoverable"], *recoverable, "{body}: {v}");
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 3, "{v}");
        for c in v["causes"].as_array().unwrap() {
            assert_eq!(c.as_object().unwrap().len(), 4, "{c}");
            let conf = c["confidence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&conf));
            assert!(c["evidence"].is_array() && c["fix"].is_string());
        }
    }
}

#[test]
fn human_output_names_the_cause_and_the_fix() {
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run({
        let mut c = sfkeep(home.path());
        c.args([
            "doctor",
            "--error",
            r#"{"error":"invalid_grant","error_description":"inactive user"}"#,
        ]);
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verdict: user_deactivated"), "{out}");
    assert!(out.contains("fix:") && out.contains("re-activate"), "{out}");
    // Not a terminal: no colour codes.
    assert!(!out.contains('\x1b'), "{out:?}");
}

#[test]
fn text_that_is_not_an_error_is_exit_2_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    for (text, stdin) in [
        ("hello, world", false),
        ("{\"records\":[]}", true),
        ("", true),
    ] {
        let (code, out, err) = doctor_json(home.path(), text, stdin);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(
            err.contains("does not look like a Salesforce error"),
            "{err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        let v: serde_json::Value = result_of(&out);
        assert_eq!(v["verdict"], "unknown");
    }
}

fn doctor_human(home: &std::path::Path, body: &str) -> String {
    let mut c = sfkeep(home);
    c.args(["doctor", "--error", body]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{body}: {err}");
    out
}

fn recoverable_line(out: &str) -> &str {
    out.lines()
        .find(|l| l.starts_with("recoverable:"))
        .unwrap_or_else(|| panic!("no recoverable line: {out}"))
}

/// Offline there is no profile: the human form never speaks of "the configured grants", never
/// says "healthy — healthy", and its recoverable line agrees with the JSON.
#[test]
fn the_human_form_agrees_with_itself_for_every_reference_body() {
    let home = tempfile::tempdir().unwrap();
    for (body, _, recoverable) in wire::TABLE.iter().filter(|(b, _, _)| !b.contains('\0')) {
        let out = doctor_human(home.path(), body);
        assert!(!out.contains("configured grants"), "{body}: {out}");
        assert!(!out.contains("healthy — healthy"), "{body}: {out}");
        let line = recoverable_line(&out);
        if *recoverable {
            assert!(
                line.starts_with("recoverable: yes") || line.contains("nothing to recover"),
                "{body}: {line}"
            );
        } else {
            assert!(!line.starts_with("recoverable: yes"), "{body}: {line}");
        }
    }
}

/// A refused login is not fixed by `sfkeep recover` alone; a used-up daily limit needs
/// waiting, not a person.
#[test]
fn fixes_match_what_recoverable_says() {
    let home = tempfile::tempdir().unwrap();
    let out = doctor_human(
        home.path(),
        r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
    );
    assert!(
        recoverable_line(&out).contains("a person must act first"),
        "{out}"
    );
    let fix = out
        .lines()
        .find(|l| l.trim_start().starts_with("fix:"))
        .unwrap();
    assert!(
        fix.contains("new password") && !fix.contains("fix: OAuth refresh and JWT grants survive"),
        "{fix}"
    );

    let out = doctor_human(
        home.path(),
        r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
    );
    let line = recoverable_line(&out);
    assert!(
        line.contains("fallback") && line.contains("sfkeep login"),
        "{out}"
    );

    let out = doctor_human(
        home.path(),
        r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
    );
    let line = recoverable_line(&out);
    assert!(
        line.contains("wait") && !line.contains("a person must act"),
        "{out}"
    );
}

/// A pasted error can hold a session id, a refresh token, a JWT or a Bearer header; none of
/// them comes back, in either form.
#[test]
fn pasted_credentials_are_redacted_in_every_form() {
    let home = tempfile::tempdir().unwrap();
    let sid = "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G.qz_3kT5Bv7ujOh0WPrm";
    let rt = "5Aep861z_iWbuBORRQMGJwAMr9TAO17bB5r8NLggLI85E5dKY4fK3PD7B";
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIzTVZHOSIsInN1YiI6ImEifQ.c2lnbmF0dXJlc2lnbmF0dXJl";
    let bearer = "Bearer sk_live_Zx81Qa9Lm27";
    let bodies = [
        format!(
            "<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: {sid}</faultstring></soapenv:Fault>"
        ),
        format!(
            "2026-11-28 ERROR POST /token refresh_token={rt} assertion={jwt}: invalid_grant: expired access/refresh token"
        ),
        format!(
            "curl -H 'Authorization: {bearer}' → INVALID_SESSION_ID: Session expired or invalid"
        ),
        format!("INVALID_SESSION_ID: Session expired or invalid for {jwt} and {sid}"),
    ];
    for body in &bodies {
        for (i, json) in [false, true].into_iter().enumerate() {
            let (code, out, err) = if json {
                doctor_json(home.path(), body, i % 2 == 1)
            } else {
                (0, doctor_human(home.path(), body), String::new())
            };
            assert_eq!(code, 0, "{body}: {err}");
            for secret in ["AR8AQAxo9", "iWbuBORRQ", "eyJpc3MiOiIz", "sk_live_Zx81"] {
                assert!(!out.contains(secret), "{secret} leaked from {body}:\n{out}");
                assert!(!err.contains(secret), "{secret} leaked from {body}:\n{err}");
            }
        }
    }
}
