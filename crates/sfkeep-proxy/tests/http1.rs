//! The proxy's own HTTP/1.1 handling, over raw sockets on the client side and against an
//! instance built on hyper (an independent implementation): pipelining, chunked uploads large
//! and small, `Expect: 100-continue`, HEAD, chunked and close-delimited replies, and TLS to the
//! instance that refuses a certificate nobody vouches for.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sfkeep_proxy::ProxyHandle;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An instance that describes each request back as JSON (`/chunked` answers in pieces, with no
/// length, so hyper frames it chunked).
async fn echo_instance() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let described = serde_json::json!({
                        "method": req.method().as_str(),
                        "target": req.uri().to_string(),
                        "authorization": header("authorization"),
                        "content_length": header("content-length"),
                        "transfer_encoding": header("transfer-encoding"),
                        "expect": header("expect"),
                    });
                    let chunked = req.uri().path().ends_with("/chunked");
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let mut described = described;
                    described["body_len"] = body.len().into();
                    described["body_sum"] = body.iter().map(|&b| u64::from(b)).sum::<u64>().into();
                    let resp: Response<UpBody> = if chunked {
                        let pieces = ["hello", " ", "world"].map(|p| {
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(p.as_bytes())))
                        });
                        Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                            pieces,
                        ))))
                    } else {
                        Response::new(Full::new(Bytes::from(described.to_string())).boxed())
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn proxy_for(instance_url: &str) -> ProxyHandle {
    proxy_with(instance_url, |b| b).await
}

/// One response off `r`: status, lowercased headers, body (by Content-Length or chunked);
/// a failure if none comes within 10 s.
async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(10), read_response_now(r))
        .await
        .expect("no complete reply within 10 s")
}

async fn read_response_now<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').unwrap();
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if status == 100 || status == 204 || status == 304 {
        return (status, headers, body);
    }
    if get("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length") {
        body = vec![0; n.parse().unwrap()];
        r.read_exact(&mut body).await.unwrap();
    }
    (status, headers, body)
}

async fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.unwrap())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn pipelined_requests_get_their_replies_in_order() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    let mut c = connect(host).await;
    let two = format!(
        "GET /services/data/v59.0/one HTTP/1.1\r\nHost: {host}\r\n\r\nGET /services/data/v59.0/two?x=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    c.get_mut().write_all(two.as_bytes()).await.unwrap();
    for want in ["/services/data/v59.0/one", "/services/data/v59.0/two?x=1"] {
        let (status, headers, body) = read_response(&mut c).await;
        assert_eq!(status, 200);
        assert!(headers.iter().any(|(k, _)| k == "x-sfkeep-request-id"));
        let echo = json(&body);
        assert_eq!(echo["target"], want);
        assert_eq!(echo["authorization"], "Bearer 00Dseeded!upstream-token");
    }
    proxy.shutdown().await;
}

fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for p in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn chunked_uploads_small_and_large_arrive_whole_and_the_connection_carries_on() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    // Small (kept for a replay: sent on with a length) and larger than the 1 MiB replay limit
    // (streamed: sent on chunked), each followed on the same connection by a GET.
    for (size, framed_as) in [(10_000usize, "length"), (3 << 20, "chunked")] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut req = format!(
            "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&chunked(&body, 7_001));
        req.extend_from_slice(
            format!("GET /services/data/v59.0/after HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        let (r, mut w) = TcpStream::connect(host).await.unwrap().into_split();
        let writer = tokio::spawn(async move { w.write_all(&req).await.unwrap() });
        let mut r = BufReader::new(r);
        let (status, _, reply) = read_response(&mut r).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        let echo = json(&reply);
        assert_eq!(echo["body_len"], size, "{echo}");
        let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(echo["body_sum"], sum);
        match framed_as {
            "length" => assert_eq!(echo["content_length"], size.to_string()),
            _ => assert_eq!(echo["transfer_encoding"], "chunked"),
        }
        let (status, _, reply) = read_response(&mut r).await;
        assert_eq!(status, 200);
        assert_eq!(json(&reply)["target"], "/services/data/v59.0/after");
        writer.await.unwrap();
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue_gets_an_interim_reply_before_the_body_is_sent() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    let mut c = connect(host).await;
    let head = format!(
        "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    );
    c.get_mut().write_all(head.as_bytes()).await.unwrap();
    // Nothing of the body has been sent: the proxy must ask for it.
    let (status, _, _) = read_response(&mut c).await;
    assert_eq!(status, 100);
    c.get_mut().write_all(b"hello").await.unwrap();
    let (status, _, body) = read_response(&mut c).await;
    assert_eq!(status, 200);
    let echo = json(&body);
    assert_eq!(echo["body_len"], 5);
    // The expectation is between the client and the proxy only.
    assert_eq!(echo["expect"], Value::Null);
    proxy.shutdown().await;
}

#[tokio::test]
async fn head_keeps_the_instance_length_and_sends_no_body() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    let mut c = connect(host).await;
    let req = format!(
        "HEAD /services/data/v59.0/limits HTTP/1.1\r\nHost: {host}\r\n\r\nGET /services/data/v59.0/limits HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    c.get_mut().write_all(req.as_bytes()).await.unwrap();
    // read_response would read a body by Content-Length: read the HEAD reply's head by hand.
    let mut line = String::new();
    c.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut length = None;
    loop {
        let mut h = String::new();
        c.read_line(&mut h).await.unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    // The next bytes are the GET's reply, not a body: HEAD framing held.
    let (status, _, body) = read_response(&mut c).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["method"], "GET");
    // The instance described a HEAD, then a GET: same length but for the method name.
    assert_eq!(length, Some(body.len() - 3 + 4));
    proxy.shutdown().await;
}

/// An instance that answers every request without a length and closes the connection.
async fn close_delimited_instance() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut r = BufReader::new(&mut stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn chunked_and_close_delimited_replies_reach_the_client_whole() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    let mut c = connect(host).await;
    let req = format!("GET /services/data/v59.0/chunked HTTP/1.1\r\nHost: {host}\r\n\r\n");
    c.get_mut().write_all(req.as_bytes()).await.unwrap();
    let (status, headers, body) = read_response(&mut c).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"hello world");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-length" && v == "11"),
        "a small chunked reply is read whole and sent with its length: {headers:?}"
    );
    proxy.shutdown().await;

    let proxy = proxy_for(&close_delimited_instance().await).await;
    let host = proxy.addr();
    for version in ["1.1", "1.0"] {
        let reply = common::raw(
            host,
            format!("GET /services/data/v59.0/x HTTP/{version}\r\nHost: {host}\r\n\r\n").as_bytes(),
            Duration::from_secs(10),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nuntil the end"), "{reply:?}");
    }
    proxy.shutdown().await;
}

/// A self-signed certificate and its key (PEM), made by the openssl command.
fn self_signed() -> (Vec<u8>, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("sfkeep-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg("/CN=127.0.0.1")
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pair = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    pair
}

#[tokio::test]
async fn an_instance_whose_certificate_nobody_vouches_for_is_refused() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = self_signed();
    let certs = vec![CertificateDer::from_pem_slice(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (handshakes_tx, mut handshakes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = handshakes_tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(acceptor.accept(stream).await.is_ok());
            });
        }
    });
    let proxy = proxy_for(&format!("https://{addr}")).await;
    let r = common::client()
        .get(format!("{}/services/data/v59.0/limits", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("SFKEEP_UPSTREAM_ERROR"), "{body}");
    // The proxy did try TLS, and no handshake with the untrusted instance completed.
    let first = tokio::time::timeout(Duration::from_secs(10), handshakes.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(false));
    while let Ok(h) = handshakes.try_recv() {
        assert!(!h, "a handshake with an untrusted certificate completed");
    }
    proxy.shutdown().await;
}

async fn proxy_with(
    instance_url: &str,
    f: impl FnOnce(sfkeep_proxy::ProxyBuilder) -> sfkeep_proxy::ProxyBuilder,
) -> ProxyHandle {
    common::seeded_proxy(instance_url, f).await
}

#[tokio::test]
async fn a_refused_upload_still_gets_its_reply_while_the_client_keeps_sending() {
    let proxy = proxy_with(&echo_instance().await, |b| {
        b.max_replay_body(64 << 10).max_body(64 << 10)
    })
    .await;
    let host = proxy.addr();
    let (r, mut w) = TcpStream::connect(host).await.unwrap().into_split();
    let mut req = format!(
        "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        10 << 20
    )
    .into_bytes();
    req.extend(std::iter::repeat_n(b'x', 4 << 20));
    // The client sends all it has before it reads (as simple clients do): the proxy never
    // reads it, and must not reset the connection under the unread bytes, which would destroy
    // its reply in the client's receive buffer.
    let sent = w.write_all(&req).await;
    let mut r = BufReader::new(r);
    let (status, headers, body) = read_response(&mut r).await;
    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "connection" && v == "close")
    );
    assert!(String::from_utf8_lossy(&body).contains("SFKEEP_PROXY_REFUSED"));
    drop((r, w));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_cut_off() {
    let proxy = proxy_with(&echo_instance().await, |b| {
        b.header_read_timeout(Duration::from_millis(300))
    })
    .await;
    let host = proxy.addr();
    let mut c = connect(host).await;
    let head = format!(
        "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n0123456789"
    );
    c.get_mut().write_all(head.as_bytes()).await.unwrap();
    let (status, _, _) = read_response(&mut c).await;
    assert_eq!(status, 408);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut rest))
        .await
        .expect("the connection was not closed")
        .unwrap();
    assert_eq!(n, 0, "nothing follows the 408");
    drop(c);
    proxy.shutdown().await;
}

/// An instance that reads each request head (and a `Content-Length` body unless told not to)
/// and answers with the bytes `answer` gives for it, then does what `after` says.
async fn scripted_instance(
    answer: &'static [u8],
    read_body: bool,
    after: After,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (bodies_tx, bodies) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let bodies_tx = bodies_tx.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                if let After::ContinueThenBody = after {
                    r.get_mut()
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await
                        .unwrap();
                }
                if read_body {
                    let mut body = vec![0; length];
                    r.read_exact(&mut body).await.unwrap();
                    let _ = bodies_tx.send(length);
                }
                let _ = r.get_mut().write_all(answer).await;
                match after {
                    After::Stall => std::future::pending::<()>().await,
                    After::Close | After::ContinueThenBody => {}
                }
            });
        }
    });
    (format!("http://{addr}"), bodies)
}

#[derive(Clone, Copy)]
enum After {
    /// Keep the connection open and send nothing more.
    Stall,
    /// Close the connection.
    Close,
    /// Send `100 Continue` right after the head, then read the body and answer.
    ContinueThenBody,
}

#[tokio::test]
async fn a_credential_that_is_not_ascii_is_no_credential_and_never_a_panic() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    for header in [
        "Authorization: Bearer\u{a0}00Dxx!SECRET-CLIENT-TOKEN",
        "Authorization: OAuth\u{e9}00Dxx!SECRET-CLIENT-TOKEN",
        "X-SFDC-Session: \u{e9}\u{e9}",
    ] {
        let req = format!(
            "POST /services/oauth2/revoke HTTP/1.1\r\nHost: {host}\r\n{header}\r\nContent-Length: 0\r\n\r\n"
        );
        let reply = common::raw(host, req.as_bytes(), Duration::from_secs(10)).await;
        assert_eq!(common::status_of(&reply), 400, "{header}: {reply}");
        assert!(!reply.contains("SECRET"), "{reply}");
    }
    let r = common::client()
        .get(format!("{}/healthz", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the proxy still serves");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_streamed_body_that_stops_arriving_is_cut_off_whatever_the_route() {
    let proxy = proxy_with(&echo_instance().await, |b| {
        b.header_read_timeout(Duration::from_millis(300))
    })
    .await;
    let host = proxy.addr();
    let cases = [
        (
            "/services/data/v59.0/sobjects/Account",
            "Transfer-Encoding: chunked",
            "5\r\nhello",
        ),
        (
            "/services/data/v59.0/sobjects/Account",
            "Content-Length: 2097152",
            "hello",
        ),
        (
            "/services/Soap/u/59.0",
            "Transfer-Encoding: chunked",
            "5\r\n<soap",
        ),
        (
            "/services/oauth2/token",
            "Transfer-Encoding: chunked",
            "5\r\ngrant",
        ),
        (
            "/services/data/v59.0/sobjects/Account",
            "Transfer-Encoding: chunked",
            "fffffffffffffff\r\nab",
        ),
    ];
    for (path, framing, start) in cases {
        let mut c = connect(host).await;
        let req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n{framing}\r\n\r\n{start}");
        c.get_mut().write_all(req.as_bytes()).await.unwrap();
        let (status, _, body) = read_response(&mut c).await;
        // The token shim answers an unreadable body with its own OAuth error (400).
        let want: &[u16] = if path.ends_with("/token") {
            &[400]
        } else {
            &[408]
        };
        assert!(
            want.contains(&status),
            "{path} {framing}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_instance_that_stops_mid_body_gets_a_502_not_a_hang() {
    let (url, _) = scripted_instance(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
        true,
        After::Stall,
    )
    .await;
    let proxy = proxy_with(&url, |b| b.upstream_timeout(Duration::from_millis(500))).await;
    let r = common::client()
        .get(format!("{}/services/data/v59.0/limits", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("SFKEEP_UPSTREAM_ERROR"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_informational_reply_during_a_streamed_upload_does_not_stop_it() {
    let (url, mut bodies) = scripted_instance(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        true,
        After::ContinueThenBody,
    )
    .await;
    let proxy = proxy_for(&url).await;
    let host = proxy.addr();
    let size = 2 << 20;
    let (r, mut w) = TcpStream::connect(host).await.unwrap().into_split();
    let head = format!(
        "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n"
    );
    w.write_all(head.as_bytes()).await.unwrap();
    w.write_all(&vec![b'a'; size - 1000]).await.unwrap();
    // The instance's 100 Continue reaches the proxy while the last bytes are still to come.
    let mut r = BufReader::new(r);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), r.fill_buf())
            .await
            .is_err(),
        "the proxy answered before the body was all sent"
    );
    w.write_all(&vec![b'a'; 1000]).await.unwrap();
    let (status, _, body) = read_response(&mut r).await;
    assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(bodies.recv().await, Some(size));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_malformed_streamed_body_is_the_clients_fault() {
    let proxy = proxy_for(&echo_instance().await).await;
    let host = proxy.addr();
    // More than the replay limit (so it streams upstream), then a broken chunk.
    let mut req = format!(
        "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let whole = chunked(&vec![b'a'; 2 << 20], 64 << 10);
    req.extend_from_slice(&whole[..whole.len() - b"0\r\n\r\n".len()]);
    req.extend_from_slice(b"ZZ\r\n");
    let (r, mut w) = TcpStream::connect(host).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&req).await;
        w
    });
    let mut r = BufReader::new(r);
    let (status, _, body) = read_response(&mut r).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let s = proxy.stats();
    assert_eq!(s.upstream_errors, 0, "{s:?}");
    assert!(s.rejected >= 1, "{s:?}");
    drop((r, writer.await.unwrap()));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_token_for_a_plain_http_instance_off_loopback_is_never_sent() {
    // A store (Redis, a file) that someone edited could hold such a token: the proxy checks
    // the instance URL itself rather than trust that the grant checked it.
    let proxy = proxy_for("http://192.0.2.10").await;
    let r = common::client()
        .get(format!("{}/services/data/v59.0/limits", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("plain http"), "{body}");
    assert_eq!(proxy.stats().forwarded, 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_early_refusal_from_the_instance_reaches_the_client_even_if_it_closes() {
    let (url, _) = scripted_instance(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
        false,
        After::Close,
    )
    .await;
    let proxy = proxy_for(&url).await;
    let host = proxy.addr();
    let size = 8 << 20;
    let (r, mut w) = TcpStream::connect(host).await.unwrap().into_split();
    let head = format!(
        "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let _ = w.write_all(head.as_bytes()).await;
        let _ = w.write_all(&vec![b'a'; size]).await;
        w
    });
    let mut r = BufReader::new(r);
    let (status, _, body) = read_response(&mut r).await;
    assert_eq!((status, body.as_slice()), (413, &b"[]"[..]));
    drop((r, writer.await.unwrap()));
    proxy.shutdown().await;
}
