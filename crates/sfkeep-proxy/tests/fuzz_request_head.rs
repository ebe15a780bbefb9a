//! Mutation fuzzing of the proxy's request-head handling over real TCP: thousands of mangled
//! request heads (from valid REST, SOAP, absolute-form, CONNECT and chunked seeds). Every
//! connection must end with an HTTP status line or a close — never a hang past the header
//! timeout, never a dead proxy — and a valid request still works at the end.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEEDS: &[&[u8]] = &[
    b"GET /services/data/v59.0/query?q=SELECT+Id+FROM+Account HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x\r\n\r\n",
    b"POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nSOAPAction: login\r\nContent-Length: 5\r\n\r\n<a/>\n",
    b"GET http://evil.example.com/services/data HTTP/1.1\r\nHost: evil.example.com\r\n\r\n",
    b"CONNECT evil.example.com:443 HTTP/1.1\r\nHost: evil.example.com:443\r\n\r\n",
    b"POST /services/oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ngrant\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"POST /services/oauth2/revoke HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer\xc2\xa0x\r\nContent-Length: 0\r\n\r\n",
    b"POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
];

const PIECES: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"\0",
    b"\xff",
    b"%2e%2e/",
    b"../",
    b"Host: a\r\n",
    b"Content-Length: 99999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mangled_request_heads_never_hang_or_kill_the_proxy() {
    let env = start(3).await;
    let addr = env.proxy.addr();
    let iterations: u64 = std::env::var("SFKEEP_FUZZ_PROXY_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..iterations {
        let mut buf = SEEDS[(next() % SEEDS.len() as u64) as usize].to_vec();
        for _ in 0..=(next() % 5) {
            let len = buf.len();
            match next() % 4 {
                0 if len > 0 => {
                    let j = (next() % len as u64) as usize;
                    buf[j] ^= 1 << (next() % 8);
                }
                1 if len > 0 => {
                    let j = (next() % len as u64) as usize;
                    let n = ((next() % 16) as usize + 1).min(len - j);
                    buf.drain(j..j + n);
                }
                2 => {
                    let j = (next() % (len as u64 + 1)) as usize;
                    let p = PIECES[(next() % PIECES.len() as u64) as usize];
                    buf.splice(j..j, p.iter().copied());
                }
                _ => {}
            }
        }
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = sock.write_all(&buf).await;
        // Half-close so a request waiting for more bytes sees the end, then read what comes.
        let _ = sock.shutdown().await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "iteration {i}: the proxy hung on {:?}",
            String::from_utf8_lossy(&buf)
        );
        if !out.is_empty() {
            assert!(
                out.starts_with(b"HTTP/1."),
                "iteration {i}: not an HTTP answer: {:?}",
                String::from_utf8_lossy(&out[..out.len().min(80)])
            );
        }
    }
    let r = client()
        .get(format!("{}{QUERY}", env.proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the proxy still serves");
}
