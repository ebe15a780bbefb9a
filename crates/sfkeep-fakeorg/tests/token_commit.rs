//! A token request the org received is processed whether or not its client is still there, and
//! the `after_commit` faults reproduce the window in which a refresh token has been rotated and
//! the client has not heard of it (docs/fake-org.md, "Faults"). Whether a refresh token was
//! rotated is read from introspection, which does not consume it.

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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = fresh_stats(org).await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `active` of the refresh token, asked with the app's own credentials.
async fn refresh_token_active(org: &sfkeep_fakeorg::FakeOrg, rt: &str) -> bool {
    let i = org.ready_info();
    let v: Value = client()
        .post(format!("{}/services/oauth2/introspect", org.base_url()))
        .form(&[
            ("token", rt),
            ("token_type_hint", "refresh_token"),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["active"] == true
}

async fn rotation_on(org: &sfkeep_fakeorg::FakeOrg) {
    let i = org.ready_info();
    put_admin(
        org,
        &format!("/apps/{}/policy", i.client_id),
        json!({"rotate_refresh_tokens": true}),
    )
    .await;
}

fn refresh_form_body(org: &sfkeep_fakeorg::FakeOrg) -> String {
    let i = org.ready_info();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        enc(&i.refresh_token),
        enc(&i.client_id),
        enc(&i.client_secret)
    )
}

#[tokio::test]
async fn a_refresh_whose_client_left_before_the_commit_is_still_committed() {
    let org = org().await;
    rotation_on(&org).await;
    let rt = org.ready_info().refresh_token.clone();
    // Long enough that the client is gone, and the org has seen it go, well before the commit.
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "latency_ms": 4000, "count": 1}),
    )
    .await;
    let addr = org.base_url().trim_start_matches("http://").to_owned();
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = refresh_form_body(&org);
    let req = format!(
        "POST /services/oauth2/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    until(&org, "the refresh received", |s| {
        s["token_requests"]["refresh_token"] == 1
    })
    .await;
    drop(raw);
    until(&org, "the client's connection closed", |s| {
        s["connections_open"] == 1
    })
    .await;
    assert!(
        refresh_token_active(&org, &rt).await,
        "the client left before the org committed the refresh"
    );
    until(&org, "the refresh processed", |s| {
        s["requests_in_flight"] == 0
    })
    .await;
    assert!(
        !refresh_token_active(&org, &rt).await,
        "the org rotated the refresh token though nobody read the answer"
    );
    assert_eq!(fresh_stats(&org).await["refresh_token_reuse_detected"], 0);
}

#[tokio::test]
async fn after_commit_latency_rotates_before_the_answer_arrives() {
    let org = org().await;
    rotation_on(&org).await;
    let rt = org.ready_info().refresh_token.clone();
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "after_commit": true, "latency_ms": 4000, "count": 1}),
    )
    .await;
    let org_url = org.base_url().to_owned();
    let form_rt = rt.clone();
    let i = org.ready_info().clone();
    let call = tokio::spawn(async move {
        let r = client()
            .post(format!("{org_url}/services/oauth2/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", form_rt.as_str()),
                ("client_id", i.client_id.as_str()),
                ("client_secret", i.client_secret.as_str()),
            ])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    until(&org, "the refresh committed", |s| {
        s["token_requests"]["refresh_token"] == 1 && s["requests_in_flight"] == 0
    })
    .await;
    assert!(
        !call.is_finished(),
        "the answer waits out the latency after the commit"
    );
    assert!(
        !refresh_token_active(&org, &rt).await,
        "rotated before the client heard of it"
    );
    let (status, answer) = call.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let new_rt = answer["refresh_token"].as_str().unwrap();
    assert!(refresh_token_active(&org, new_rt).await);
}

#[tokio::test]
async fn after_commit_reset_loses_the_answer_not_the_rotation() {
    let org = org().await;
    rotation_on(&org).await;
    let rt = org.ready_info().refresh_token.clone();
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "after_commit": true, "reset": true, "count": 1}),
    )
    .await;
    let i = org.ready_info();
    let sent = client()
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("client_id", i.client_id.as_str()),
            ("client_secret", i.client_secret.as_str()),
        ])
        .send()
        .await;
    let answered = match sent {
        Ok(r) => r.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!answered, "the answer is lost");
    assert!(
        !refresh_token_active(&org, &rt).await,
        "the org rotated the refresh token all the same"
    );
    let s = fresh_stats(&org).await;
    assert_eq!(s["token_requests"]["refresh_token"], 1);
    assert_eq!(s["refresh_token_reuse_detected"], 0);
}
