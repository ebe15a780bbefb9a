//! Every input of the coverage-guided fuzzers' corpora and findings
//! (`crates/sfkeep-proxy/fuzz/{corpus,findings}/<target>/`), replayed through its target on
//! every `cargo test`: a finding, once fixed, stays fixed. `scripts/fuzz` grows the corpora and
//! adds findings; this needs no AFL.

use std::path::Path;

use sfkeep::diagnose::api_error::{Api, session_verdict, soap_fault_code};
use sfkeep_proxy::fuzzing;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "findings"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                out.push((e.path().display().to_string(), b));
            }
        }
    }
    out
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no corpus for {target}");
    for (name, data) in &all {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(data)));
        assert!(caught.is_ok(), "{target}: {name} fails");
    }
}

#[test]
fn every_corpus_and_finding_input_passes_its_target() {
    replay("request_head", fuzzing::request_head);
    replay("chunked", fuzzing::chunked);
    replay("response_head", fuzzing::response_head);
    replay("soap_head", fuzzing::soap_head);
    let secret = sfkeep::secret::ClientSecret::new("fuzz-secret");
    replay("token_response", |d| {
        for status in [200, 400] {
            let _ = sfkeep::grant::parse_token_response(status, d, "fuzz", None);
            let _ = sfkeep::grant::parse_token_response(status, d, "fuzz", Some(&secret));
        }
    });
    replay("soap_fault", |d| {
        if let Ok(t) = std::str::from_utf8(d) {
            let _ = soap_fault_code(t);
        }
        let _ = session_verdict(Api::Soap, 500, d);
        let _ = session_verdict(Api::Bulk1, 400, d);
        let _ = sfkeep::grant::soap_login::parse_login_response(500, d);
    });
}
