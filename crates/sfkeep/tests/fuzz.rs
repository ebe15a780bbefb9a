//! Deterministic mutation fuzzing of every parser that reads bytes from the network or disk.
//!
//! `cargo fuzz` needs a nightly toolchain (sanitizers, `-Z` flags); this project builds on stable
//! only, so these are high-volume, seedable mutation fuzzers in plain Rust: a xorshift generator
//! mutates seed corpora (Salesforce payloads from the public sources cited in
//! docs/salesforce-wire.md, in `tests/fuzz_corpus/`, plus hand-written edge cases) with byte flips, inserts, deletes,
//! splices, duplications and interesting values, and feeds the result to each target. A target
//! "crashes" if it panics (the test fails with the seed and the input).
//!
//! `cargo test` runs each target for a fixed number of iterations; `scripts/fuzz --seconds N`
//! sets `SFKEEP_FUZZ_SECONDS` (per target) and `SFKEEP_FUZZ_SEED`, and prints exec counts.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use sfkeep::client::ApiError;
use sfkeep::store::{CacheKey, decode_record, encode_record};

const CORPUS: &str = include_str!("fuzz_corpus/salesforce-wire-samples.txt");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(extra: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = CORPUS
        .split("=====SAMPLE=====\n")
        .skip(1)
        .map(|s| s.as_bytes().to_vec())
        .collect();
    v.extend(extra.iter().map(|s| s.to_vec()));
    v.push(Vec::new());
    v
}

const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\xff\xfe",
    b"\xc3\x28",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"<",
    b">",
    b"</",
    b"<![CDATA[",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"-1",
    b"18446744073709551616",
    b"1e999",
    b"null",
    b"true",
    b"INVALID_SESSION_ID",
    b"invalid_grant",
    b"\r\n",
    b"soapenv:Fault",
    b"sessionSecondsValid",
    b"issued_at",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&seeds[rng.below(seeds.len())]);
    for _ in 0..=rng.below(8) {
        let len = buf.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                buf[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                buf[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64)) + 1;
                buf.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                let ins = INTERESTING[rng.below(INTERESTING.len())];
                buf.splice(i..i, ins.iter().copied());
            }
            4 if len > 0 => {
                // Duplicate a chunk (deep nesting, repeated fields).
                let i = rng.below(len);
                let n = rng.below((len - i).min(256)) + 1;
                let chunk = buf[i..i + n].to_vec();
                for _ in 0..=rng.below(4) {
                    buf.splice(i..i, chunk.iter().copied());
                }
            }
            5 => {
                // Splice in part of another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = a + rng.below(other.len() - a) + 1;
                    let i = rng.below(len + 1);
                    buf.splice(i..i, other[a..b].iter().copied());
                }
            }
            6 if len > 0 => buf.truncate(rng.below(len)),
            _ => {
                let i = rng.below(len + 1);
                buf.insert(i, rng.next() as u8);
            }
        }
    }
}

/// Runs `target` on mutated inputs; returns the exec count.
fn fuzz(name: &str, extra: &[&[u8]], target: impl Fn(&[u8], u64)) -> u64 {
    let seeds = seeds(extra);
    let seed: u64 = std::env::var("SFKEEP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5f3e_a11c_e5ee_d001)
        | 1;
    let budget = std::env::var("SFKEEP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let mut rng = Rng(seed ^ (name.len() as u64 * 0x9e37_79b9));
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut execs = 0u64;
    // Every seed as is, then mutations.
    for s in &seeds {
        target(s, execs);
        execs += 1;
    }
    loop {
        match budget {
            Some(secs) if started.elapsed() >= Duration::from_secs(secs) => break,
            None if execs >= 20_000 => break,
            _ => {}
        }
        mutate(&mut rng, &seeds, &mut buf);
        let r = catch_unwind(AssertUnwindSafe(|| target(&buf, execs)));
        if r.is_err() {
            panic!(
                "fuzz target {name} panicked (seed {seed}, exec {execs}) on input {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        execs += 1;
    }
    println!(
        "FUZZ {name}: {execs} execs in {:.1}s, 0 crashes",
        started.elapsed().as_secs_f64()
    );
    execs
}

fn status_of(n: u64) -> u16 {
    [200, 400, 401, 403, 404, 429, 500, 503, 0, 999][(n % 10) as usize]
}

#[test]
fn fuzz_token_response_parser() {
    fuzz(
        "parse_token_response",
        &[
            br#"{"access_token":"00Dxx!AQ","instance_url":"https://x.my.salesforce.com","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","issued_at":"1700000000000","signature":"abc="}"#,
            br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
        ],
        |b, n| {
            let secret = sfkeep::secret::ClientSecret::new("0123456789ABCDEF");
            let secret = (n % 2 == 0).then_some(&secret);
            let _ = sfkeep::grant::parse_token_response(status_of(n), b, "fuzz", secret);
        },
    );
}

#[test]
fn fuzz_token_error_classifier() {
    fuzz(
        "token_error::classify",
        &[br#"{"error":"invalid_grant","error_description":"user is frozen"}"#],
        |b, n| {
            let _ = sfkeep::diagnose::token_error::classify(status_of(n), b);
            let _ = sfkeep::diagnose::token_error::OAuthErrorBody::parse(b);
            let _ = sfkeep::diagnose::classify_error_text(&String::from_utf8_lossy(b));
        },
    );
}

#[test]
fn fuzz_soap_login_and_fault_parser() {
    fuzz("soap_login::parse_login_response", &[], |b, n| {
        let _ = sfkeep::grant::soap_login::parse_login_response(status_of(n), b);
    });
}

#[test]
fn fuzz_rest_error_array_parser() {
    fuzz(
        "ApiError::from_response",
        &[br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#],
        |b, n| {
            let e = ApiError::from_response(status_of(n), b, Some((n, n / 2)));
            let _ = e.is_transient();
            let _ = format!("{e} {e:?}");
            let _ = sfkeep::client::parse_limit_info(&String::from_utf8_lossy(b));
        },
    );
}

#[test]
fn fuzz_store_envelope_decoder() {
    let key = CacheKey::from_bytes([7u8; 32]);
    // A real record as the seed, plus its plaintext-shaped neighbours.
    let rec = sfkeep::token::TokenRecord {
        access_token: sfkeep::secret::AccessToken::new("00Dxx0000001gPL!AQfuzz"),
        refresh_token: Some(sfkeep::secret::RefreshToken::new("5Aep861fuzz")),
        instance_url: "https://x.my.salesforce.com".into(),
        id_url: None,
        scope: None,
        issued_at: sfkeep::clock::UnixMillis(1),
        expires_at: sfkeep::clock::UnixMillis(2),
        refresh_at: sfkeep::clock::UnixMillis(1),
        expiry_source: sfkeep::token::ExpirySource::Configured,
        generation: 1,
        grant: sfkeep::token::GrantKind::RefreshToken,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    };
    let blob = encode_record(&key, &rec);
    fuzz("store::decode_record", &[&blob], |b, _| {
        let _ = decode_record(&key, b);
        let _ = key.open(b);
    });
}

#[test]
fn fuzz_soap_query_response_parser() {
    fuzz(
        "parse_soap_query_response",
        &[br#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:sf="urn:sobject.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><queryResponse><result><done>false</done><queryLocator>01g-2000</queryLocator><records xsi:type="sf:sObject"><sf:type>Account</sf:type><sf:Id>001A</sf:Id><sf:Name>A &amp; B</sf:Name><sf:Industry xsi:nil="true"/></records><size>3</size></result></queryResponse></soapenv:Body></soapenv:Envelope>"#],
        |b, _| {
            let _ = sfkeep::client::parse_soap_query_response(&String::from_utf8_lossy(b));
        },
    );
}

#[test]
fn fuzz_offline_error_classifier() {
    fuzz(
        "diagnose::classify_error_text",
        &[
            br#"2026-11-28 ERROR sync failed: [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            br#"invalid_grant: expired access/refresh token"#,
        ],
        |b, _| {
            let _ = sfkeep::diagnose::classify::classify_error_text(&String::from_utf8_lossy(b));
        },
    );
}
