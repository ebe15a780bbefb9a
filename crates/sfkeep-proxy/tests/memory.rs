//! Review reproduction: 100 MB of nested XML sent to the SOAP route of a keyed proxy with no
//! credential took it to 2.57 GB peak RSS. Alone in its test binary, so the process's peak RSS
//! is this test's: the proxy must stay under 64 MB more than it had before the request, and
//! refuse early.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `VmHWM` or `VmRSS` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_of_nested_xml_without_a_credential_is_refused_in_little_memory() {
    let env = start_with(1, with_key("k3y-0f-the-pr0xy-for-tests")).await;
    let addr = env.proxy.addr();
    let rss_before = status_kib("VmRSS:");
    const TOTAL: usize = 100 << 20;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nSOAPAction: query\r\nContent-Length: {TOTAL}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = "<a>".repeat((64 << 10) / 3).into_bytes();
        let mut sent = 0usize;
        while sent < TOTAL {
            let n = chunk.len().min(TOTAL - sent);
            if wr.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        sent
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the proxy never closed the connection");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("soapenv:Client"), "{reply}");
    let sent = writer.await.unwrap();
    // Refused early: the connection was closed long before the 100 MB were sent (the proxy
    // reads and drops at most 16 MiB while it closes, so the refusal is not lost to a reset).
    assert!(sent < TOTAL, "the whole body was read: {sent} bytes");
    let peak = status_kib("VmHWM:");
    let grew_mib = peak.saturating_sub(rss_before) / 1024;
    assert!(
        grew_mib < 64,
        "peak RSS grew by {grew_mib} MiB ({rss_before} KiB before, {peak} KiB peak)"
    );
    // Still serving.
    let r = client()
        .get(format!("{}/healthz", env.proxy.url()))
        .bearer_auth("k3y-0f-the-pr0xy-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
