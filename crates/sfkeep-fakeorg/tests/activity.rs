//! `GET /_fake/stats` reports `connections_open` and `requests_in_flight`, so a test that killed
//! a client can wait, on the org's own word, until everything that client sent is processed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Stats over a fresh connection (no pooled connection counts against the numbers).
async fn fresh_stats(org: &sfkeep_fakeorg::FakeOrg) -> Value {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(format!("{}/_fake/stats", org.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until `pred` holds for the stats, with a deadline.
async fn until(org: &sfkeep_fakeorg::FakeOrg, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = fresh_stats(org).await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_org_reports_open_connections_and_requests_in_flight() {
    let org = org().await;
    // Only the stats call's own connection.
    until(&org, "idle", |s| {
        s["connections_open"] == 1 && s["requests_in_flight"] == 0
    })
    .await;

    // A connection with half a request counts until it closes.
    let addr = org.base_url().trim_start_matches("http://").to_owned();
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(b"GET /services/data/ HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    until(&org, "two connections", |s| s["connections_open"] == 2).await;
    drop(raw);
    until(&org, "one connection", |s| s["connections_open"] == 1).await;

    // A slow API request is in flight until it is answered.
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/data", "latency_ms": 400, "count": 1}),
    )
    .await;
    let tok = access_token(&org).await;
    let org_url = org.base_url().to_owned();
    let call = tokio::spawn(async move {
        client()
            .get(format!("{org_url}/services/data/v59.0/limits"))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    until(&org, "a request in flight", |s| {
        s["requests_in_flight"] == 1
    })
    .await;
    assert_eq!(call.await.unwrap(), 200);
    until(&org, "no request in flight", |s| {
        s["requests_in_flight"] == 0
    })
    .await;
}
