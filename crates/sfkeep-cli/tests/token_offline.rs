//! `sfkeep token` and `sfkeep status` with a fresh cached token build no HTTP client and touch
//! no network (issue 19 item 4): the org's `/_fake/stats` do not move, the library's
//! "building an HTTP client" debug line never appears, and both still answer once the org is
//! gone (its port closed).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Org, run, sfkeep};

const BUILDING: &str = "building an HTTP client";

fn cmd(home: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut c = sfkeep(home);
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .args(["--profile", "fake"]);
    c
}

/// The same command with the library's HTTP debug line turned on.
fn traced(home: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut c = cmd(home, cfg, args);
    c.env("SFKEEP_LOG", "sfkeep::http=debug");
    c
}

#[test]
fn a_fresh_cached_token_needs_no_http_client_and_no_network() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));

    // The first run gets a token from the org: it does build a client (the marker is real).
    let (code, first, err) = run(traced(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(BUILDING),
        "no debug line from the first run: {err}"
    );
    let first = first.trim().to_owned();
    assert!(!first.is_empty());

    let before = org.stats();
    for args in [&["token"][..], &["token", "--json"]] {
        let (code, out, err) = run(traced(h, &cfg, args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            out.contains(&first),
            "{args:?} printed another token: {out}"
        );
        assert!(!err.contains(BUILDING), "{args:?} built a client: {err}");
    }
    let (code, out, err) = run(traced(h, &cfg, &["status"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fresh"), "{out}");
    assert!(!err.contains(BUILDING), "status built a client: {err}");
    let after = org.stats();
    for counter in [
        "token_requests",
        "api_requests",
        "soap_logins",
        "token_errors",
    ] {
        assert_eq!(
            before[counter], after[counter],
            "{counter}: {before} -> {after}"
        );
    }

    // The org gone, its port closed: the cached token is still served.
    drop(org);
    let (code, out, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), first);
    let (code, out, err) = run(cmd(h, &cfg, &["status"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fresh"), "{out}");
}
