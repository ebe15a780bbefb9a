//! The Node side of the tests that drive real Node clients and a real browser: where
//! `scripts/node-deps` installed jsforce and playwright-core, and Debian's Chromium. One file,
//! included by the tests of the fake org, the proxy and the CLI (`#[path]` in their `common`).

use std::path::Path;
use std::process::Command;

/// The directory whose `node_modules` holds jsforce and playwright-core: `scripts/node-deps`
/// installs them when they are missing (idempotent, cheap when present) and prints it.
pub fn node_deps_dir() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/node-deps");
    let out = Command::new(script)
        .output()
        .expect("scripts/node-deps runs");
    assert!(
        out.status.success(),
        "scripts/node-deps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Debian's Chromium (`CHROMIUM`, else `/usr/bin/chromium`), when it is installed.
pub fn chromium() -> Option<String> {
    let c = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    Path::new(&c).exists().then_some(c)
}
