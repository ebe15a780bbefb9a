//! Bad input: malformed HTTP, CR/LF tricks in header values, oversized heads and bodies,
//! slow clients, SOAP that is not XML, wrong shim credentials. A clear 4xx/500 with a
//! Salesforce-shaped body where the client expects one, never a panic, nothing forwarded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_and_header_tricks_get_400_and_nothing_is_forwarded() {
    let env = start_with(2, |b| b.max_header_bytes(16 * 1024)).await;
    let addr = env.proxy.addr();
    assert_eq!(
        client()
            .get(format!("{}{QUERY}", env.proxy.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let before = org_stats(&env.info).await;
    let big = "a".repeat(64 * 1024);
    let cases: Vec<(String, &[u16])> = vec![
        ("GARBAGE\r\n\r\n".into(), &[400]),
        ("GET\r\n\r\n".into(), &[400]),
        ("\u{1}\u{2}\u{3} / HTTP/1.1\r\n\r\n".into(), &[400]),
        (
            format!("GET {QUERY} HTTP/9.9\r\nHost: {addr}\r\n\r\n"),
            &[400, 505],
        ),
        // A bare CR inside a header value (response splitting attempt).
        (
            format!(
                "GET {QUERY} HTTP/1.1\r\nHost: {addr}\r\nX-A: a\rAuthorization: Bearer evil\r\n\r\n"
            ),
            &[400],
        ),
        // obs-fold: a continuation line smuggling a second header.
        (
            format!(
                "GET {QUERY} HTTP/1.1\r\nHost: {addr}\r\nX-A: a\r\n Authorization: Bearer evil\r\n\r\n"
            ),
            &[400],
        ),
        // A NUL in a header value.
        (
            format!("GET {QUERY} HTTP/1.1\r\nHost: {addr}\r\nX-A: a\0b\r\n\r\n"),
            &[400],
        ),
        // A space before the colon.
        (
            format!("GET {QUERY} HTTP/1.1\r\nHost: {addr}\r\nX-A : a\r\n\r\n"),
            &[400],
        ),
        // Oversized head.
        (
            format!("GET {QUERY} HTTP/1.1\r\nHost: {addr}\r\nX-Big: {big}\r\n\r\n"),
            &[431],
        ),
        // Both Content-Length and a bad chunked body.
        (
            format!(
                "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"
            ),
            &[400],
        ),
        // Conflicting Content-Lengths.
        (
            format!(
                "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
            ),
            &[400],
        ),
    ];
    for (req, want) in &cases {
        let resp = raw(addr, req.as_bytes(), Duration::from_secs(5)).await;
        let got = status_of(&resp);
        assert!(
            want.contains(&got),
            "{:?} -> {got}: {resp}",
            &req[..req.len().min(120)]
        );
    }
    let after = org_stats(&env.info).await;
    assert_eq!(
        after["api_requests"], before["api_requests"],
        "nothing forwarded"
    );
    assert_eq!(
        after["invalid_session_responses"],
        before["invalid_session_responses"]
    );
    // Still serving.
    assert_eq!(
        client()
            .get(format!("{}/healthz", env.proxy.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_by_the_header_read_timeout() {
    let env = start_with(1, |b| b.header_read_timeout(Duration::from_millis(500))).await;
    let addr = env.proxy.addr();
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    // Trickle a byte at a time: hyper's header_read_timeout counts from the first byte.
    let mut closed = false;
    for _ in 0..200 {
        if s.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(50), s.readable()).await {
            match s.try_read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    assert!(
                        text.starts_with("HTTP/1.1 408") || text.is_empty(),
                        "{text}"
                    );
                    closed = true;
                    break;
                }
                Err(_) => {}
            }
        }
    }
    assert!(closed, "the slow connection was not closed");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Other clients are unaffected.
    assert_eq!(
        client()
            .get(format!("{}/healthz", env.proxy.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_that_is_not_xml_and_wrong_shim_credentials_get_salesforce_faults() {
    let env = start(1).await;
    let c = client();
    let url = format!("{}/services/Soap/u/59.0", env.proxy.url());
    for body in [
        "not xml at all",
        "<env:Envelope><env:Body>",
        "<x/>",
        "",
        "<!DOCTYPE a [<!ENTITY b \"c\">]><a>&b;</a>",
    ] {
        let r = c
            .post(&url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500, "{body:?}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("<faultcode>soapenv:Client</faultcode>"),
            "{body:?}: {text}"
        );
    }
    // A login for another user: INVALID_LOGIN, HTTP 500, the recorded shape.
    let login = r#"<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>intruder@example.com</n1:username><n1:password>x</n1:password></n1:login></env:Body></env:Envelope>"#;
    let r = c.post(&url).body(login).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<faultcode>INVALID_LOGIN</faultcode>"),
        "{text}"
    );
    assert!(
        text.contains("<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"),
        "{text}"
    );
    assert!(
        text.contains("xmlns:sf=\"urn:fault.partner.soap.sforce.com\""),
        "{text}"
    );
    // The enterprise endpoint's faults carry the enterprise fault namespace.
    let enterprise = login.replace(
        "urn:partner.soap.sforce.com",
        "urn:enterprise.soap.sforce.com",
    );
    let r = c
        .post(format!("{}/services/Soap/c/59.0", env.proxy.url()))
        .body(enterprise)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<faultcode>INVALID_LOGIN</faultcode>"),
        "{text}"
    );
    assert!(
        text.contains("xmlns:sf=\"urn:fault.enterprise.soap.sforce.com\""),
        "{text}"
    );
    // A SOAP body over the limit is refused, not buffered.
    let small = start_with(1, |b| b.max_body(4096).max_replay_body(1024)).await;
    let r = c
        .post(format!("{}/services/Soap/u/59.0", small.proxy.url()))
        .body(format!("<a>{}</a>", "x".repeat(10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A REST body over the limit (Content-Length and chunked).
    let r = c
        .post(format!(
            "{}/services/data/v59.0/sobjects/Account",
            small.proxy.url()
        ))
        .body("x".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let stream =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1000])));
    let r = c
        .post(format!(
            "{}/services/data/v59.0/sobjects/Account",
            small.proxy.url()
        ))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let s = org_stats(&env.info).await;
    assert_eq!(s["soap_logins"], 0);
    assert_eq!(s["api_requests"], 0, "{s}");
}
