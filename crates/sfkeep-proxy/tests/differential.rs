//! Differential test: the same bytes through the proxy's request parser
//! (`sfkeep_proxy::fuzzing::frame_request`) and through hyper's HTTP/1.1 server (an independent
//! implementation of framing, validation and chunked decoding). Whenever the proxy frames a
//! request, hyper must frame the same one: same method, target, header lines and body. A
//! request the proxy frames differently from hyper is what request smuggling is made of.
//!
//! The proxy may refuse what hyper accepts — it is stricter by design (no `Transfer-Encoding`
//! with `Content-Length`, no `Expect` other than `100-continue`, no HTTP/1.0 chunking, …) —
//! and those cases are counted by kind, never silently passed.
//!
//! Inputs: every file of the request-head fuzzer's corpus and findings
//! (`crates/sfkeep-proxy/fuzz/corpus/request_head`, `…/fuzz/findings/request_head` when
//! present), and a fixed number of deterministic mutations of them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sfkeep_proxy::fuzzing::{Framed, Outcome, frame_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What hyper made of the bytes: the first request it handed to its service, or nothing.
async fn hyper_frames(data: &[u8]) -> Option<Framed> {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let method = req.method().as_str().to_owned();
            let target = req.uri().to_string();
            let headers: Vec<(String, Vec<u8>)> = req
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            // A body that breaks off is no request: nothing is sent.
            if let Ok(body) = req.into_body().collect().await {
                let _ = tx.send(Framed {
                    method,
                    target,
                    headers,
                    body: body.to_bytes().to_vec(),
                });
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }
    });
    let conn = tokio::spawn(
        hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            // The input is written and then the write side closed: hyper must still answer.
            .half_close(true)
            .serve_connection(TokioIo::new(server), svc),
    );
    let (mut rd, mut wr) = tokio::io::split(client);
    let _ = wr.write_all(data).await;
    let _ = wr.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut sink)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
    rx.try_recv().ok()
}

/// The proxy keeps header lines in order; hyper groups them by name. Compared as sorted
/// multisets (the order of lines of one name is kept by both). Repeated `Content-Length` lines
/// of one value (both frame the body by it) are one line: hyper keeps only one of them.
fn normalised(f: &Framed) -> Framed {
    let mut f = f.clone();
    f.headers.sort_by(|a, b| a.0.cmp(&b.0));
    f.headers.dedup_by(|a, b| a.0 == "content-length" && a == b);
    f
}

/// Why the proxy refused what hyper accepted, by the rule it applied.
fn refusal_kind(data: &[u8], status: u16) -> String {
    let text = String::from_utf8_lossy(data).to_ascii_lowercase();
    let origin_form = text
        .split_ascii_whitespace()
        .nth(1)
        .is_some_and(|t| t.starts_with('/'));
    let kind = match status {
        417 => "Expect other than 100-continue",
        501 => "Transfer-Encoding other than a single chunked",
        _ if !origin_form => "a target that is not origin-form (absolute-form, authority, *)",
        _ if text.contains("transfer-encoding") && text.contains("content-length") => {
            "Transfer-Encoding with Content-Length"
        }
        _ if text.contains("transfer-encoding") => "Transfer-Encoding in HTTP/1.0",
        _ => "other",
    };
    format!("{status}: {kind}")
}

fn files_under(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.file_name().is_some_and(|n| n != "README.txt")
            && let Ok(b) = std::fs::read(&p)
        {
            out.push(b);
        }
    }
}

/// Deterministic mutations of a seed (xorshift): bit flips, deletions, inserted pieces.
fn mutations(seeds: &[Vec<u8>], n: usize) -> Vec<Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b" ",
        b"\t",
        b":",
        b"Content-Length: 3\r\n",
        b"Content-Length: 0\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"transfer-encoding: identity\r\n",
        b"3\r\nabc\r\n0\r\n\r\n",
        b"Host: a\r\n",
        b"\x00",
        b"\xff",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let mut b = seeds[(next() % seeds.len() as u64) as usize].clone();
            for _ in 0..=(next() % 4) {
                let len = b.len();
                match next() % 3 {
                    0 if len > 0 => {
                        let i = (next() % len as u64) as usize;
                        b[i] ^= 1 << (next() % 8);
                    }
                    1 if len > 0 => {
                        let i = (next() % len as u64) as usize;
                        let k = ((next() % 8) as usize + 1).min(len - i);
                        b.drain(i..i + k);
                    }
                    _ => {
                        let i = (next() % (len as u64 + 1)) as usize;
                        let p = PIECES[(next() % PIECES.len() as u64) as usize];
                        b.splice(i..i, p.iter().copied());
                    }
                }
            }
            b
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_never_frames_a_request_differently_from_hyper() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    files_under(&fuzz.join("corpus/request_head"), &mut inputs);
    // The request fuzzer's findings; the other targets' inputs are not HTTP requests.
    files_under(&fuzz.join("findings/request_head"), &mut inputs);
    let seeds = inputs.clone();
    assert!(
        !seeds.is_empty(),
        "no request corpus under {}",
        fuzz.display()
    );
    let mutated: usize = std::env::var("SFKEEP_DIFFERENTIAL_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    inputs.extend(mutations(&seeds, mutated));
    let mut agree_framed = 0usize;
    let mut agree_refused = 0usize;
    let mut stricter: BTreeMap<String, usize> = BTreeMap::new();
    let mut hyper_stricter = 0usize;
    for data in &inputs {
        let ours = frame_request(data);
        let theirs = hyper_frames(data).await;
        match (&ours, &theirs) {
            (Outcome::Framed(a), Some(b)) => {
                assert_eq!(
                    normalised(a),
                    normalised(b),
                    "framed differently: {:?}",
                    String::from_utf8_lossy(data)
                );
                agree_framed += 1;
            }
            // hyper's URI parser refuses some visible ASCII in a target (`{`, `"`, `|`, …) that
            // the proxy passes on as sent (the instance judges its own paths): counted.
            (Outcome::Framed(a), None) if http::Uri::try_from(a.target.as_str()).is_err() => {
                hyper_stricter += 1;
            }
            (Outcome::Framed(a), None) => panic!(
                "the proxy framed what hyper refused: {a:?} from {:?}",
                String::from_utf8_lossy(data)
            ),
            (Outcome::Refused(s), Some(_)) => {
                if std::env::var_os("SFKEEP_DIFFERENTIAL_SHOW").is_some() {
                    println!("proxy stricter ({s}): {:?}", String::from_utf8_lossy(data));
                }
                *stricter.entry(refusal_kind(data, *s)).or_default() += 1;
            }
            (Outcome::Incomplete, Some(b)) => panic!(
                "hyper framed a request the proxy still waits on: {b:?} from {:?}",
                String::from_utf8_lossy(data)
            ),
            (_, None) => agree_refused += 1,
        }
    }
    println!(
        "DIFFERENTIAL cases {} (corpus and findings {}, mutations {mutated}): both framed the same {agree_framed}, both refused or incomplete {agree_refused}, proxy stricter {:?}, hyper stricter on target characters {hyper_stricter}",
        inputs.len(),
        seeds.len(),
        stricter
    );
    assert!(agree_framed > 0);
}
