//! `sfkeep doctor --error`: every error body of salesforce-wire.md classified offline through
//! the real binary, as an argument and on stdin; text that is not an error is exit 2.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{run, sfkeep};

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
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
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
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["verdict"], "unknown");
    }
}
