//! The proxy over loopback TLS with a CA made on this machine: a client that trusts the CA's
//! certificate (and nothing else changed) calls the org through it across a session death, and
//! bodies stream both ways, `100 Continue` and chunked uploads included; a client that does not
//! trust the CA, or speaks plain http to the TLS port, gets nothing.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sfkeep_proxy::LocalCa;

const MIB: usize = 1 << 20;

/// A reqwest client that trusts the CA in `ca` and no other.
fn trusting(ca: &LocalCa) -> reqwest::Client {
    let pem = std::fs::read(ca.cert_path()).expect("the CA certificate is readable");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_client_that_trusts_the_local_ca_heals_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
    let client = trusting(&ca);
    let env = start_with(5, |b| b.tls(Some(ca))).await;
    let url = env.proxy.url().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let query = |client: reqwest::Client, url: String| async move {
        let r = client
            .get(format!("{url}{QUERY}"))
            .bearer_auth("the-proxy-replaces-this")
            .send()
            .await
            .expect("the TLS handshake and the request succeed");
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        (status, body)
    };
    let (status, body) = query(client.clone(), url.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalSize"], 5, "{body}");

    // The session dies at the org; the next call over TLS is healed.
    let path = format!("/users/{}/logout", env.info.username);
    admin_post(&env.info, &path, serde_json::json!({})).await;
    let (status, body) = query(client.clone(), url.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.proxy.stats().replays, 1);

    // What the shim hands out points back at the proxy over https.
    let token: Value = client
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", env.info.username.as_str()),
            ("password", "any"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["instance_url"], url.as_str(), "{token}");
    assert!(token["id"].as_str().unwrap().starts_with(&url), "{token}");
    let healthz = client.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_ca_or_without_tls_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
    let env = start_with(1, |b| b.tls(Some(ca))).await;
    let url = env.proxy.url().to_owned();

    // The platform's roots only: the local CA is not among them.
    let e = client()
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect_err("a client that does not trust the CA must fail");
    assert!(e.is_connect(), "{e:?}");
    let handshake_failed = eventually(std::time::Duration::from_secs(30), || async {
        env.proxy.stats().tls_handshake_failures == 1
    })
    .await;
    assert!(handshake_failed, "{:?}", env.proxy.stats());

    // Plain http to the TLS port: no HTTP answer, and nothing forwarded.
    let reply = raw(
        env.proxy.addr(),
        format!("GET {QUERY} HTTP/1.1\r\nHost: {}\r\n\r\n", env.proxy.addr()).as_bytes(),
        std::time::Duration::from_secs(30),
    )
    .await;
    assert!(!reply.starts_with("HTTP/"), "{reply:?}");
    assert_eq!(env.proxy.stats().forwarded, 0);
    assert_eq!(org_stats(&env.info).await["api_requests"], 0);
}

/// An upstream in this process that answers a POST with the number of body bytes it read and
/// a GET with `MIB * 4` bytes.
async fn counting_upstream(received: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let received = Arc::clone(&received);
                    async move {
                        let get = req.method() == hyper::Method::GET;
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        received.store(body.len() as u64, Ordering::SeqCst);
                        let out = if get {
                            Bytes::from(vec![b'd'; 4 * MIB])
                        } else {
                            Bytes::from(format!("{{\"received\":{}}}", body.len()))
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(out)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_over_tls_with_continue_and_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(&dir.path().join("ca")).unwrap();
    let client = trusting(&ca);
    let received = Arc::new(AtomicU64::new(0));
    let upstream = counting_upstream(Arc::clone(&received)).await;
    let proxy = seeded_proxy(&upstream, |b| b.tls(Some(ca))).await;
    let url = proxy.url().to_owned();

    // A download larger than any buffer on the way.
    let got = client
        .get(format!("{url}/services/data/v59.0/big"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), 4 * MIB);

    // A chunked upload larger than the replay limit, sent after `100 Continue`.
    let size = 3 * MIB;
    let chunks = futures_util::stream::iter(
        (0..size / (64 << 10)).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'u'; 64 << 10]))),
    );
    let r = client
        .post(format!("{url}/services/data/v59.0/upload"))
        .header("expect", "100-continue")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["received"], size as u64, "{body}");
    assert_eq!(received.load(Ordering::SeqCst), size as u64);

    // The same connection carries on (keep-alive over TLS).
    for _ in 0..20 {
        let r = client
            .post(format!("{url}/services/data/v59.0/small"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(proxy.stats().tls_handshake_failures, 0);
    proxy.shutdown().await;
}
