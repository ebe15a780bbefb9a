//! A 100 MiB upload and a 100 MiB download stream through the proxy with its memory staying
//! flat (the proxy runs in this process: the whole process's peak RSS stays under 100 MB), and
//! a session death on a body too large to replay passes through and is counted.
//!
//! The upstream is a counting server in this process; the proxy's manager holds a seeded
//! token whose `instance_url` is that server.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sfkeep_proxy::Proxy;

const MIB: usize = 1 << 20;
const SIZE: usize = 100 * MIB;

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn upstream(received: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let received = Arc::clone(&received);
                    async move {
                        let path = req.uri().path().to_owned();
                        let auth = req.headers().get("authorization").cloned();
                        let mut body = req.into_body();
                        let mut n = 0u64;
                        while let Some(Ok(f)) = body.frame().await {
                            if let Ok(d) = f.into_data() {
                                n += d.len() as u64;
                            }
                        }
                        received.store(n, Ordering::SeqCst);
                        assert_eq!(auth.unwrap(), "Bearer 00Dseeded!upstream-token");
                        let resp: Response<UpBody> = if path.ends_with("/big-download") {
                            let chunks = futures_util::stream::iter(0..SIZE / MIB).map(|_| {
                                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'd'; MIB])))
                            });
                            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
                        } else if path.ends_with("/dead") {
                            let mut r = Response::new(
                                Full::new(Bytes::from_static(br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#))
                                    .boxed(),
                            );
                            *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                            r
                        } else {
                            Response::new(
                                Full::new(Bytes::from(format!("{{\"received\":{n}}}"))).boxed(),
                            )
                        };
                        Ok::<_, Infallible>(resp)
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

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn big_body() -> reqwest::Body {
    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let stream = futures_util::stream::iter(0..SIZE / (64 * 1024))
        .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_each_way_streams_with_flat_memory() {
    let received = Arc::new(AtomicU64::new(0));
    let up = upstream(Arc::clone(&received)).await;
    let manager = seeded_manager(&up).await;
    let proxy = Proxy::builder(manager)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();

    // Upload, chunked (no Content-Length).
    let r = c
        .patch(format!(
            "{}/services/data/v59.0/sobjects/Account/001000000000001AAA",
            proxy.url()
        ))
        .header("content-type", "application/octet-stream")
        .body(big_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(received.load(Ordering::SeqCst), SIZE as u64);

    // Upload with a Content-Length.
    let r = c
        .post(format!(
            "{}/services/data/v59.0/jobs/ingest/750x/batches",
            proxy.url()
        ))
        .header("content-length", SIZE.to_string())
        .body(big_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("{{\"received\":{SIZE}}}"));

    // Download.
    let r = c
        .get(format!("{}/services/data/v59.0/big-download", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut n = 0usize;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    assert_eq!(n, SIZE);

    let peak_mb = peak_rss_kb() / 1024;
    eprintln!("peak RSS of the test process (proxy, upstream and client): {peak_mb} MB");
    assert!(peak_mb < 100, "peak RSS {peak_mb} MB");

    // A 401 on a body too large to replay passes through and is counted; no replay.
    let r = c
        .post(format!("{}/services/data/v59.0/dead", proxy.url()))
        .body(vec![b'x'; 2 * MIB])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let s = proxy.stats();
    assert_eq!(s.passthrough_401, 1, "{s:?}");
    assert_eq!(s.replays, 0, "{s:?}");
    let metrics = c
        .get(format!("{}/metrics", proxy.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sfkeep_proxy_session_death_passthrough_total 1"),
        "{metrics}"
    );
    proxy.shutdown().await;
}
