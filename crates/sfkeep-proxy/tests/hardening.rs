//! The reproductions of an outside review of the proxy, each a regression test: nothing read
//! before authentication, the connection cap, the browser guard, the response-head limit in one
//! read, the upload deadline, the SOAP `SessionHeader` rewrite, and routing on the path as
//! Salesforce reads it.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "k3y-0f-the-pr0xy-for-tests";

/// Reads from `s` until `done` says the bytes so far are enough, the peer closes, or 10 s pass.
async fn read_until(s: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if done(&String::from_utf8_lossy(&out)) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn has_final_status(text: &str) -> bool {
    text.split("\r\n\r\n")
        .any(|part| part.starts_with("HTTP/1.1 ") && !part.starts_with("HTTP/1.1 100"))
}

/// Everything the recording instance received: the raw bodies of its requests.
type Seen = Arc<Mutex<Vec<Bytes>>>;

/// An instance (hyper) that records each request body and answers 200 with a small SOAP body.
async fn recording_instance() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = Arc::clone(&s);
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        s.lock().unwrap().push(body);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><ok/></soapenv:Body></soapenv:Envelope>",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn soap_query(header: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>{header}</s:Header><s:Body><query xmlns="urn:partner.soap.sforce.com"><queryString>SELECT Id FROM Account</queryString></query></s:Body></s:Envelope>"#
    )
}

fn soap_post(addr: std::net::SocketAddr, body: &str) -> String {
    format!(
        "POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nSOAPAction: query\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Review: every route read up to 1 MiB (and sent `100 Continue`) before authenticating. Now a
/// request without the client key is refused from its head: no `100 Continue`, no body read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_the_key_is_refused_before_its_body_is_read() {
    let env = start_with(1, with_key(KEY)).await;
    let addr = env.proxy.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let reply = read_until(&mut s, has_final_status).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(!reply.contains("100 Continue"), "{reply}");
    assert!(reply.contains("INVALID_SESSION_ID"), "{reply}");
}

/// Review: the SOAP route read the whole body (up to 512 MiB) and parsed it before checking
/// the SessionHeader. Now it reads only the envelope's head: a request without a credential is
/// answered while most of its body is still unsent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_request_without_a_session_is_refused_from_the_head_of_its_envelope() {
    let env = start_with(1, with_key(KEY)).await;
    let addr = env.proxy.addr();
    let head = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>not-the-key</sessionId></SessionHeader></s:Header><s:Body><create xmlns="urn:partner.soap.sforce.com"><sObjects>"#;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nSOAPAction: create\r\nContent-Length: 104857600\r\n\r\n{head}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let reply = read_until(&mut s, has_final_status).await;
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("INVALID_SESSION_ID"), "{reply}");
    // Nesting past the limit is refused too, before any credential is looked at.
    let deep = format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>{}"#,
        "<a>".repeat(1000)
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST /services/Soap/u/59.0 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\nContent-Length: 104857600\r\n\r\n{deep}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let reply = read_until(&mut s, has_final_status).await;
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("nests deeper than 32"), "{reply}");
}

/// Review: 300 connections held 326 MB and there was no cap. Now past the cap a connection
/// gets a clear 503 at once; the connections inside it keep being served, and a slot is free
/// again as soon as its client goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_get_503_while_the_others_are_served() {
    const CAP: usize = 32;
    let env = start_with(2, |b| b.max_connections(CAP)).await;
    let addr = env.proxy.addr();
    // One client keeps its connection and goes on working throughout.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let get = format!("GET {QUERY} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let ask = async |s: &mut TcpStream| {
        s.write_all(get.as_bytes()).await.unwrap();
        read_until(s, |t| t.contains("\"done\"")).await
    };
    assert!(ask(&mut kept).await.starts_with("HTTP/1.1 200"));
    // The rest of the cap: connections that send nothing.
    let mut idle = Vec::new();
    for _ in 1..CAP {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.proxy.stats().open_connections == CAP as u64
        })
        .await,
        "{:?}",
        env.proxy.stats()
    );
    let mut refused = 0;
    for round in 0..20 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                read_until(&mut s, |t| t.contains("SFKEEP_PROXY_BUSY")).await
            }));
        }
        for b in batch {
            let reply = b.await.unwrap();
            assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
            assert!(reply.contains("connection cap"), "{reply}");
            refused += 1;
        }
        let reply = ask(&mut kept).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "round {round}: {reply}");
    }
    assert_eq!(refused, 2000);
    assert_eq!(env.proxy.stats().connections_refused, 2000);
    // A client goes: its slot is free at once.
    drop(idle.pop());
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.proxy.stats().open_connections == CAP as u64 - 1
        })
        .await
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(ask(&mut s).await.starts_with("HTTP/1.1 200"));
}

/// Review: any web page could make the browser send simple requests through the proxy (a
/// `text/plain` POST created an Account; a cross-site reload forced a refresh; preflights were
/// forwarded). Now they are refused and nothing reaches the org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_browser_makes_for_a_page_are_refused() {
    let env = start(2).await;
    let c = client();
    // Warm up: the proxy has its token; from here on nothing should reach the org.
    let r = c
        .get(format!("{}{QUERY}", env.proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = org_stats(&env.info).await;
    let account = r#"{"Name":"made by a web page"}"#;
    let create = format!("{}/services/data/v59.0/sobjects/Account", env.proxy.url());
    for (name, headers, want) in [
        (
            "no-cors text/plain POST",
            vec![
                ("Origin", "http://127.0.0.1:9999"),
                ("Sec-Fetch-Site", "same-site"),
                ("Content-Type", "text/plain"),
            ],
            403,
        ),
        (
            "form POST from another site",
            vec![
                ("Origin", "https://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            403,
        ),
        (
            "Origin null (sandboxed page)",
            vec![("Origin", "null")],
            403,
        ),
        (
            "Sec-Fetch-Site without Origin",
            vec![("Sec-Fetch-Site", "cross-site")],
            403,
        ),
    ] {
        let mut rb = c.post(&create).body(account);
        for (k, v) in &headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), want, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body[0]["errorCode"], "SFKEEP_PROXY_REFUSED", "{name}");
    }
    // A preflight is refused, never forwarded.
    let r = c
        .request(reqwest::Method::OPTIONS, &create)
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Reload needs the control header (which a page cannot send without a preflight).
    let reload = format!("{}/_sfkeep/reload", env.proxy.url());
    let r = c.post(&reload).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(&reload)
        .header("Origin", "https://evil.example")
        .header(sfkeep_proxy::browser::CONTROL_HEADER, "reload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let after = org_stats(&env.info).await;
    assert_eq!(
        after["api_requests"], before["api_requests"],
        "nothing forwarded"
    );
    assert_eq!(
        token_requests(&after),
        token_requests(&before),
        "no refresh"
    );
    assert_eq!(after["records"]["Account"], before["records"]["Account"]);
    // Integrations, which send neither header, work as before.
    let r = c
        .post(&create)
        .header("Content-Type", "application/json")
        .body(account)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(env.proxy.stats().browser_refused, 7);
}

/// `--allow-origin`: a named origin may use the proxy; others still may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_may_use_the_proxy() {
    let guard = sfkeep_proxy::BrowserGuard::new()
        .allow_origin("http://127.0.0.1:3000")
        .unwrap();
    let env = start_with(2, move |b| b.browser_guard(guard)).await;
    let c = client();
    let url = format!("{}{QUERY}", env.proxy.url());
    let ok = c
        .get(&url)
        .header("Origin", "http://127.0.0.1:3000")
        .header("Sec-Fetch-Site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let no = c
        .get(&url)
        .header("Origin", "http://127.0.0.1:3001")
        .send()
        .await
        .unwrap();
    assert_eq!(no.status(), 403);
}

/// Review: the 64 KiB response-head limit was skipped when the head arrived in one read (70 KB
/// and 100 KB heads reached the client). Now it is a 502 however the head arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_over_the_limit_is_a_502_even_in_one_read() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}",
                    "a".repeat(70_000)
                );
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    let proxy = seeded_proxy(&format!("http://{up}"), |b| b).await;
    let r = client()
        .get(format!("{}{QUERY}", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(!body.contains("aaaa"), "{body}");
}

/// Review: the 300 s upstream timeout covered the upload, so a slow large Bulk upload got 504
/// while data still flowed. Now the response deadline counts from the end of the body, and an
/// upload that keeps moving is never cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_response_deadline_still_succeeds() {
    let (instance, seen) = recording_instance().await;
    let deadline = Duration::from_millis(500);
    let proxy = seeded_proxy(&instance, |b| {
        b.upstream_timeout(deadline).max_replay_body(1024)
    })
    .await;
    let addr = proxy.addr();
    let piece = "x".repeat(4096);
    let pieces = 4;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST /services/data/v59.0/jobs/ingest/750x/batches HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
            piece.len() * pieces
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    for i in 0..pieces {
        s.write_all(piece.as_bytes()).await.unwrap();
        if i + 1 < pieces {
            // Keep the upload going for longer than the response deadline, in steps.
            let until = started + deadline * (i as u32 + 1);
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(started.elapsed() > deadline);
    let reply = read_until(&mut s, |t| t.contains("</soapenv:Envelope>")).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(seen.lock().unwrap()[0].len(), piece.len() * pieces);
}

/// Review: with two SessionHeaders the client's first reached the instance; a SessionHeader
/// with a child element was left and a second inserted; a CDATA sessionId broke the call. Now
/// the client's SessionHeader is replaced whole, exactly one reaches the instance (the
/// proxy's), and two are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_session_header_reaches_the_instance() {
    let (instance, seen) = recording_instance().await;
    let proxy = seeded_proxy(&instance, |b| b).await;
    let addr = proxy.addr();
    for header in [
        r#"<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>client-own</sessionId><extra>client-own</extra></SessionHeader>"#,
        r#"<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId><![CDATA[client-own]]></sessionId></SessionHeader>"#,
        r#"<SessionHeader xmlns="urn:partner.soap.sforce.com"><!-- c --><sessionId>client-<!-- x -->own</sessionId></SessionHeader>"#,
        "",
    ] {
        let reply = raw(
            addr,
            soap_post(addr, &soap_query(header)).as_bytes(),
            Duration::from_secs(10),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{header}: {reply}");
        let body = String::from_utf8(seen.lock().unwrap().pop().unwrap().to_vec()).unwrap();
        assert_eq!(body.matches("<SessionHeader").count(), 1, "{body}");
        assert!(
            body.contains("<sessionId>00Dseeded!upstream-token</sessionId>"),
            "{body}"
        );
        assert!(!body.contains("client-own"), "{body}");
    }
    let two = soap_query(
        r#"<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>a</sessionId></SessionHeader><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>b</sessionId></SessionHeader>"#,
    );
    let reply = raw(
        addr,
        soap_post(addr, &two).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("more than one SessionHeader"), "{reply}");
    assert!(seen.lock().unwrap().is_empty(), "nothing forwarded");
}

/// A CDATA sessionId holding a proxy-local session works against the simulated org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdata_session_id_works_end_to_end() {
    let env = start_with(2, with_key(KEY)).await;
    let addr = env.proxy.addr();
    let header = format!(
        r#"<SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId><![CDATA[{KEY}]]></sessionId></SessionHeader>"#
    );
    let reply = raw(
        addr,
        soap_post(addr, &soap_query(&header)).as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("queryResponse"), "{reply}");
}

/// Review: routing matched the raw path, so `/services//oauth2/token`,
/// `/services//oauth2/revoke` and `/services/soap/u/…` were forwarded with the token instead of
/// being answered by the proxy. Now they are answered locally and nothing reaches the org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_salesforce_reads_as_the_local_endpoints_are_answered_locally() {
    let env = start(1).await;
    let c = client();
    let url = env.proxy.url().to_owned();
    let r = c.get(format!("{url}{QUERY}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let before = org_stats(&env.info).await;
    let form = [
        ("grant_type", "password"),
        ("username", env.info.username.as_str()),
        ("password", "anything"),
    ];
    for path in [
        "/services//oauth2/token",
        "/services/OAuth2/token",
        "//services/oauth2/token",
    ] {
        let r = c
            .post(format!("{url}{path}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["instance_url"], url.as_str(), "{path}");
        assert!(
            v["access_token"].as_str().unwrap().contains("!SFKEEP."),
            "{path}"
        );
    }
    for path in ["/services//oauth2/revoke", "/services/oauth2//revoke"] {
        let r = c
            .post(format!("{url}{path}"))
            .form(&[("token", "whatever")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let login = format!(
        r#"<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{}</n1:username><n1:password>x</n1:password></n1:login></env:Body></env:Envelope>"#,
        env.info.username
    );
    for path in [
        "/services/soap/u/59.0",
        "/services//Soap/u/59.0",
        "/services/SOAP/c/59.0",
    ] {
        let r = c
            .post(format!("{url}{path}"))
            .header("Content-Type", "text/xml")
            .header("SOAPAction", "login")
            .body(login.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let text = r.text().await.unwrap();
        assert!(text.contains("!SFKEEP."), "{path}: {text}");
    }
    let after = org_stats(&env.info).await;
    assert_eq!(
        after["api_requests"], before["api_requests"],
        "nothing forwarded"
    );
    assert_eq!(after["soap_logins"], before["soap_logins"]);
    assert_eq!(token_requests(&after), token_requests(&before));
    // A prefix hidden by path parameters or percent-encoding is refused, not forwarded.
    for path in ["/services/oauth2;x/token", "/services/%6Fauth2/revoke"] {
        let r = c.post(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }
}
