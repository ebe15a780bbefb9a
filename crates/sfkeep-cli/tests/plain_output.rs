//! A terminal that is not a TTY (issue 22, "Bad input"): progress, spinners and colour are for
//! terminals only; piped, every command writes plain lines — no carriage return, no escape
//! sequence, no other control character but the newline.

mod common;

use common::{Org, run, sfkeep};

#[test]
fn piped_output_has_no_control_characters() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 1200);
    let db = format!("sqlite:{}", h.join("billing.db").display());
    let cfg = org.field("profile_file");
    let commands: [&[&str]; 7] = [
        &["token"],
        &["sync", "accounts", "--to", &db],
        &["status"],
        &["recover"],
        &["events"],
        &["login", "--jwt"],
        &["logout"],
    ];
    for args in commands {
        let mut c = sfkeep(h);
        c.arg("--config")
            .arg(&cfg)
            .args(["--profile", "fake"])
            .args(args)
            // As a supervisor or CI runs it: a TERM that could draw, but no TTY.
            .env("TERM", "xterm-256color");
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "{args:?}: {err}");
        for (stream, text) in [("stdout", &out), ("stderr", &err)] {
            let bad: Vec<char> = text
                .chars()
                .filter(|c| c.is_control() && *c != '\n')
                .collect();
            assert!(
                bad.is_empty(),
                "{args:?} wrote control characters {bad:?} to {stream}: {text:?}"
            );
        }
        if args[0] == "sync" {
            assert!(err.lines().count() >= 1, "plain progress lines: {err:?}");
        }
    }
}

/// On a terminal (a pseudo-terminal from util-linux `script`), `sync` draws an indicatif bar,
/// and the summary starts on a line of its own after it. Skipped where `script` is missing.
#[test]
fn sync_draws_a_progress_bar_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 1200);
    let line = format!(
        "{} --config {} --profile fake sync accounts --to sqlite:{}",
        common::BIN,
        org.field("profile_file"),
        h.join("billing.db").display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .env("HOME", h)
        .env_remove("SFKEEP_PROFILE")
        .env_remove("SFKEEP_CACHE_KEY")
        .env("TERM", "xterm-256color")
        .current_dir(h)
        .stdin(std::process::Stdio::null());
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains('█'), "a bar: {out:?}");
    assert!(
        out.contains("\nsynced 1200 accounts"),
        "the summary on its own line: {out:?}"
    );
}
