//! Secret-leak audit of `sfkeep demo --accounts 2000 --json` through the real binary.
//!
//! The demo's simulated org lives inside the demo process, so its secret values cannot be
//! handed to this test; instead every byte the demo produced (stdout, stderr, and every file it
//! left under its HOME, TMPDIR, billing database and audit log) is searched for the *shapes*
//! of the org's secrets, which are unambiguous: access tokens / session ids
//! (`00D<12>!AQ<94>`), refresh tokens (`5Aep861<80>`), the consumer secret (64 upper-case hex
//! characters), and a PEM private key. Any match is a leak: zero hits.
//!
//! The chaos soak (`tests/soak.rs`, run by scripts/test for 60 s) does the value-based audit:
//! every access and refresh token the org issued (`GET /_fake/tokens`) and every credential.

mod common;

use common::{run, sfkeep};

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_'
}

/// Every place a secret-shaped string appears, as (what, offset).
fn secret_shapes(h: &[u8]) -> Vec<(&'static str, usize)> {
    let mut hits = Vec::new();
    for i in 0..h.len() {
        // Access token: 15-char org id starting 00D, '!', then AQ + opaque.
        if h[i] == b'!' && i >= 15 && h[i - 15..i].starts_with(b"00D") {
            let tail = &h[i + 1..];
            let n = tail.iter().take_while(|b| is_token_char(**b)).count();
            if tail.starts_with(b"AQ") && n >= 20 {
                hits.push(("access token", i - 15));
            }
        }
        if h[i..].starts_with(b"5Aep861") {
            let n = h[i + 7..].iter().take_while(|b| is_token_char(**b)).count();
            if n >= 20 {
                hits.push(("refresh token", i));
            }
        }
        if h[i..].starts_with(b"PRIVATE KEY-----") {
            hits.push(("private key", i));
        }
    }
    // Consumer secret: a run of exactly 64 upper-case hex characters.
    let mut run_start = 0;
    let mut len = 0;
    for (i, b) in h.iter().enumerate() {
        if b.is_ascii_digit() || (b'A'..=b'F').contains(b) {
            if len == 0 {
                run_start = i;
            }
            len += 1;
        } else {
            if len == 64 {
                hits.push(("consumer secret", run_start));
            }
            len = 0;
        }
    }
    if len == 64 {
        hits.push(("consumer secret", run_start));
    }
    hits
}

fn files_under(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p.display().to_string(), b));
        }
    }
}

#[test]
fn the_detector_finds_every_secret_shape() {
    let at = format!("00Dxx0000001gPL!AQ{}", "x".repeat(94));
    let rt = format!("5Aep861{}", "y".repeat(80));
    let cs = "0123456789ABCDEF".repeat(4);
    let text = format!("a {at} b {rt} c {cs} d -----BEGIN PRIVATE KEY-----\n");
    let kinds: Vec<_> = secret_shapes(text.as_bytes())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "access token",
            "refresh token",
            "private key",
            "consumer secret"
        ]
    );
    // Fingerprints (8 hex) and record ids are not secrets.
    assert!(secret_shapes(b"fp 1a2b3c4d id 001xx000003DGb2AAG 00Dxx0000001gPL").is_empty());
}

#[test]
fn demo_with_2000_accounts_leaks_no_secret() {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = home.path().join("billing.db");
    let audit = home.path().join("audit.db");
    let mut c = sfkeep(home.path());
    c.args(["demo", "--accounts", "2000", "--json", "--db"])
        .arg(&db)
        .env("TMPDIR", tmp.path())
        .env("SFKEEP_AUDIT_DB", &audit)
        .env("SFKEEP_LOG", "debug");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "the demo succeeds: {err}");
    let mut haystacks = vec![
        ("stdout".to_owned(), out.into_bytes()),
        ("stderr".to_owned(), err.into_bytes()),
    ];
    files_under(home.path(), &mut haystacks);
    files_under(tmp.path(), &mut haystacks);
    assert!(
        haystacks.iter().any(|(n, _)| n.ends_with("billing.db")),
        "the billing database was audited"
    );
    let total: usize = haystacks.iter().map(|(_, h)| h.len()).sum();
    let mut leaks = Vec::new();
    for (name, h) in &haystacks {
        for (what, at) in secret_shapes(h) {
            leaks.push(format!("{name}: a {what} at byte {at}"));
        }
    }
    eprintln!(
        "demo leak audit: {} haystacks, {total} bytes, {} hits",
        haystacks.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "{leaks:#?}");
}
