//! `sfkeep proxy --tls` through the real binary: real simple-salesforce, configured with its own
//! constructor arguments and `REQUESTS_CA_BUNDLE` only (no adapter), queries over loopback TLS
//! across a logout; the CA it trusts is the one the ready line names, kept 0600.
//!
//! The interpreter comes from `SFKEEP_PYTHON` (set by `scripts/test`), else `scripts/python-venv`.

mod common;

use std::process::Command;

use common::{Org, python, spawn_proxy};

#[test]
fn simple_salesforce_heals_through_the_tls_proxy_with_only_its_ca_bundle() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 7);
    let ca_dir = h.join("proxy-ca");
    let tls_dir = ca_dir.to_str().unwrap();
    let (mut child, ready) = spawn_proxy(h, &org, &["--tls", "--tls-dir", tls_dir]);
    let url = ready["url"].as_str().unwrap().to_owned();
    let ca = ready["ca"].as_str().expect("the ready line names the CA");
    assert!(url.starts_with("https://127.0.0.1:"), "{ready}");
    assert_eq!(std::path::Path::new(ca), ca_dir.join("ca.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca.pem", "ca.key"] {
            let mode = std::fs::metadata(ca_dir.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    let out =
        Command::new(python().expect("a Python with simple-salesforce (scripts/python-venv)"))
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/simple_salesforce_tls.py"
            ))
            .env("PROXY_URL", &url)
            .env("SF_ADMIN_URL", org.field("admin_url"))
            .env("SF_USERNAME", org.field("username"))
            .env("REQUESTS_CA_BUNDLE", ca)
            .output()
            .expect("python runs");
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| {
            panic!(
                "no JSON from the script:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(out.status.success(), "{result}");
    assert_eq!(result["before"], 7, "{result}");
    assert_eq!(result["logout"], 200, "{result}");
    assert_eq!(
        result["after"], 7,
        "the query after the logout was healed: {result}"
    );
}
