//! Connections to the instance: one per client connection, reused by later client connections,
//! and replaced without the client noticing when the instance closed it between requests.
//!
//! The instance here is a few lines over raw sockets, so the test can count its connections and
//! close them when it likes. Everything runs on one current-thread runtime: a task finishing
//! (a client connection ending) is complete before the next task runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use sfkeep_proxy::ProxyHandle;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What `common::seeded_manager` holds.
const TOKEN: &str = "00Dseeded!upstream-token";

#[derive(Clone, Default)]
struct Counts {
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// An instance answering `200 {}` to every request; with `close_each`, it closes the
/// connection after each response without announcing it (as an idle timeout would).
async fn instance(close_each: bool) -> (String, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Counts::default();
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut authorized = false;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if lower.trim_end()
                            == format!("authorization: bearer {TOKEN}").to_lowercase()
                        {
                            authorized = true;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    r.read_exact(&mut body).await.unwrap();
                    c.requests.fetch_add(1, Ordering::SeqCst);
                    let resp: &[u8] = if authorized {
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    } else {
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
                    };
                    r.get_mut().write_all(resp).await.unwrap();
                    if close_each {
                        return;
                    }
                }
            });
        }
    });
    (url, counts)
}

async fn proxy_for(instance_url: String) -> ProxyHandle {
    common::seeded_proxy(&instance_url, |b| b).await
}

/// Sends `request` and reads one response (status line and body) from `stream`.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &str) -> (String, String) {
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).await.unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    (
        status.trim_end().to_owned(),
        String::from_utf8(body).unwrap(),
    )
}

#[tokio::test]
async fn client_connections_one_after_another_reuse_one_upstream_connection() {
    let (url, counts) = instance(false).await;
    let proxy = proxy_for(url).await;
    let host = proxy.addr();
    for _ in 0..5 {
        let mut s = BufReader::new(TcpStream::connect(host).await.unwrap());
        let req = format!(
            "GET /services/data/v59.0/limits HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer client-sent\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = exchange(&mut s, &req).await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "{}"));
        // The proxy closes the connection after the response (the client asked it to).
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 5);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstream_connection_closed_between_requests_is_replaced_even_for_a_post() {
    let (url, counts) = instance(true).await;
    let proxy = proxy_for(url).await;
    let host = proxy.addr();
    let mut s = BufReader::new(TcpStream::connect(host).await.unwrap());
    for i in 0..4 {
        let body = format!("{{\"Name\":\"n{i}\"}}");
        let req = format!(
            "POST /services/data/v59.0/sobjects/Account HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, body) = exchange(&mut s, &req).await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "{}"));
    }
    // Each POST reached the instance once, each on a new connection; none was repeated.
    assert_eq!(counts.requests.load(Ordering::SeqCst), 4);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 4);
    proxy.shutdown().await;
}
