//! The healing client against the simulated org with faults. Counts come from `/_fake/stats`.

#[path = "../manager/support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sfkeep::client::{Client, RetryPolicy};
use sfkeep::clock::ManualClock;
use support::Org;

fn fast_retries(c: Client) -> Client {
    c.retry_policy(RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    })
}

async fn client(org: &Org) -> Client {
    let clock = ManualClock::starting_now_offset(0);
    let m = org
        .manager(org.refresh_grant(), &clock)
        .fallback_grant(org.jwt_grant())
        .build()
        .unwrap();
    fast_retries(Client::new(m).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_calls_through_faults_and_session_deaths() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    let before = org.stats().await["records"]["Account"].as_u64().unwrap();
    let creates_ok = Arc::new(AtomicU64::new(0));
    let mut upserts: HashMap<String, u64> = HashMap::new();
    let deaths = [
        "logout", "password", "clock", "revoke", "logout", "password", "clock", "logout",
        "password", "clock",
    ];
    // SFKEEP_MIXED_CALLS overrides the count (a multiple of 1,000) for quick local runs.
    let total: u64 = std::env::var("SFKEEP_MIXED_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut rng = fastrand::Rng::with_seed(7);
    for block in 0..(total / 1000).min(deaths.len() as u64) {
        // One cause of session death every 1,000 calls.
        match deaths[block as usize] {
            "logout" => org.logout().await,
            "password" => {
                let u = org.info().username.clone();
                org.post(
                    &format!("/users/{u}/password"),
                    json!({"password": format!("pw-{block}")}),
                )
                .await;
            }
            "clock" => org.advance(7300).await,
            _ => {
                let cid = org.info().client_id.clone();
                org.post(&format!("/apps/{cid}/revoke"), json!({})).await;
            }
        }
        let mut batch = Vec::new();
        for i in 0..1000u64 {
            let n = block * 1000 + i;
            // 5 % 503s, 1 % connection resets, some latency.
            let roll = rng.u32(0..100);
            if roll < 5 {
                org.post("/faults", json!({"path_prefix": "/services/data", "status": 503, "count": 1, "latency_ms": 2})).await;
            } else if roll < 6 {
                org.post(
                    "/faults",
                    json!({"path_prefix": "/services/data", "reset": true, "count": 1}),
                )
                .await;
            }
            let c = c.clone();
            let kind = n % 10;
            let ext = format!("EXT-{}", n % 97);
            if kind == 9 {
                *upserts.entry(ext.clone()).or_default() = n;
            }
            let creates_ok = creates_ok.clone();
            batch.push(tokio::spawn(async move {
                match kind {
                    0..=6 => {
                        let path = c.data_path("/query?q=SELECT+Id,Name+FROM+Account+LIMIT+5");
                        c.request(reqwest::Method::GET, &path)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("GET {n}: {e}"))
                    }
                    7 | 8 => {
                        // A create: POST is not idempotent, so a failed one is not retried.
                        let body = json!({"Name": format!("create-{n}")});
                        let path = c.data_path("/sobjects/Account");
                        match c
                            .request(reqwest::Method::POST, &path)
                            .json(&body)
                            .send()
                            .await
                        {
                            Ok(_) => {
                                creates_ok.fetch_add(1, Ordering::SeqCst);
                                Ok(())
                            }
                            Err(_) => Ok(()),
                        }
                    }
                    _ => {
                        // Upsert by external id: idempotent, retried.
                        let body = json!({"Name": format!("upsert-{n}")});
                        let path = c.data_path(&format!("/sobjects/Account/ExtId__c/{ext}"));
                        c.request(reqwest::Method::PATCH, &path)
                            .json(&body)
                            .idempotent()
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("upsert {n}: {e}"))
                    }
                }
            }));
            if batch.len() == 8 {
                for t in batch.drain(..) {
                    t.await.unwrap().unwrap();
                }
            }
        }
        for t in batch.drain(..) {
            t.await.unwrap().unwrap();
        }
    }
    org.admin(reqwest::Method::DELETE, "/faults", Value::Null)
        .await;
    // Creates: the org holds exactly as many as succeeded, and no name twice.
    let rows = c
        .query("SELECT Id, Name, ExtId__c FROM Account")
        .collect_all()
        .await
        .unwrap();
    let created: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["Name"].as_str())
        .filter(|n| n.starts_with("create-"))
        .collect();
    let mut unique = created.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(created.len(), unique.len(), "no create happened twice");
    assert_eq!(created.len() as u64, creates_ok.load(Ordering::SeqCst));
    let after = org.stats().await["records"]["Account"].as_u64().unwrap();
    assert_eq!(
        after - before,
        creates_ok.load(Ordering::SeqCst) + upserts.len() as u64
    );
    // Upserts converge: one record per external id.
    for ext in upserts.keys() {
        let n = rows
            .iter()
            .filter(|r| r["ExtId__c"].as_str() == Some(ext))
            .count();
        assert_eq!(n, 1, "{ext}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_query_heals_from_logout() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    assert_eq!(
        c.soap_query("SELECT Id FROM Account LIMIT 3")
            .await
            .unwrap()
            .records
            .len(),
        3
    );
    let before = org.token_requests("refresh_token").await;
    org.logout().await;
    let r = c
        .soap_query("SELECT Id, Name FROM Account LIMIT 3")
        .await
        .unwrap();
    assert_eq!(r.records.len(), 3);
    assert!(r.records[0]["Id"].as_str().unwrap().starts_with("001"));
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_query_heals_from_logout_between_pages() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    let mut job = c
        .bulk_query("SELECT Id, Name FROM Account")
        .await
        .unwrap()
        .max_records(20);
    let mut seen = Vec::new();
    let first = job.next_page().await.unwrap().unwrap();
    seen.extend(first);
    let before = org.token_requests("refresh_token").await;
    org.logout().await;
    while let Some(page) = job.next_page().await.unwrap() {
        seen.extend(page);
    }
    assert_eq!(seen.len(), 50, "every record across pages");
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_query_returns_every_record_when_the_session_dies_between_pages() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    let mut pages = c.query("SELECT Id, Name FROM Account");
    let mut n = pages.next_page().await.unwrap().unwrap().len();
    org.logout().await;
    while let Some(p) = pages.next_page().await.unwrap() {
        n += p.len();
    }
    assert_eq!(n, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_not_valid_for_the_rest_api_fails_after_one_attempt_without_a_refresh() {
    let org = Org::start(Duration::from_secs(7200)).await;
    org.policy(json!({"api_scope": false})).await;
    let c = client(&org).await;
    c.manager().token().await.unwrap();
    let s0 = org.stats().await;
    let e = c.get_json(&c.data_path("/limits")).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("This session is not valid for use with the REST API"),
        "{e}"
    );
    assert_eq!(
        e.cause(),
        Some(sfkeep::diagnose::Cause::SessionNotValidForApi)
    );
    let s1 = org.stats().await;
    assert_eq!(
        s1["token_requests"], s0["token_requests"],
        "no token request"
    );
    assert_eq!(
        s1["api_requests"].as_u64().unwrap(),
        s0["api_requests"].as_u64().unwrap() + 1,
        "one attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limit_exceeded_is_typed_and_not_retried() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    c.manager().token().await.unwrap();
    org.put("/limits", json!({"daily_api_limit": 100, "api_used": 100}))
        .await;
    let s0 = org.stats().await["api_requests"].as_u64().unwrap();
    let e = c.get_json(&c.data_path("/limits")).await.unwrap_err();
    match &e {
        sfkeep::Error::Api(a) => {
            assert_eq!(a.status, 403);
            assert_eq!(a.error_code, "REQUEST_LIMIT_EXCEEDED");
            assert_eq!(
                a.api_usage.map(|u| u.1),
                Some(100),
                "usage from Sforce-Limit-Info"
            );
        }
        other => panic!("{other}"),
    }
    assert!(!e.is_retryable());
    assert_eq!(
        org.stats().await["api_requests"].as_u64().unwrap(),
        s0 + 1,
        "not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_503_from_a_load_balancer_is_transient_with_a_snippet() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await.retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    });
    c.manager().token().await.unwrap();
    org.post(
        "/faults",
        json!({"path_prefix": "/services/data", "status": 503, "html": true, "count": 1}),
    )
    .await;
    let e = c.get_json(&c.data_path("/limits")).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("503 Service Unavailable"), "{e}");
    // And with retries on, the same page is ridden out.
    org.post(
        "/faults",
        json!({"path_prefix": "/services/data", "status": 503, "html": true, "count": 1}),
    )
    .await;
    let c = fast_retries(c);
    c.get_json(&c.data_path("/limits")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layers_heal_a_plain_hyper_client_like_the_client_does() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use sfkeep::client::layer::{SessionLayer, TransientRetryLayer};
    use tower_layer::Layer;
    use tower_service::Service;

    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut svc = TransientRetryLayer::new(RetryPolicy {
        max_attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
    })
    .layer(SessionLayer::new(c.manager().clone()).layer(hyper));
    let get = || {
        http::Request::get("/services/data/v59.0/limits")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let r = svc.call(get()).await.unwrap();
    assert_eq!(r.status(), 200);
    let before = org.token_requests("refresh_token").await;
    org.logout().await;
    org.post(
        "/faults",
        json!({"path_prefix": "/services/data", "status": 503, "count": 1}),
    )
    .await;
    let r = svc.call(get()).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a 503 retried, then a dead session healed with one replay"
    );
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["DailyApiRequests"].is_object());
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
}

/// A user-wide death (a logout) while the store holds a token newer than this client's, issued
/// before the death: the first refresh adopts that token (not yet known dead), its replay dies
/// of the same death, and the client refreshes once more instead of passing a healable 401 to
/// its caller. Two token requests of its own at most; a fresh token that died would not get a
/// third attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_wide_death_heals_though_the_store_held_a_newer_token_killed_by_it() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let store: Arc<dyn sfkeep::store::Store> = Arc::new(sfkeep::store::MemoryStore::new());
    let build = || {
        sfkeep::TokenManager::builder(org.info().login_url.clone())
            .grant(org.refresh_grant())
            .store(Arc::clone(&store))
            .build()
            .unwrap()
    };
    let behind = Client::new(build()).unwrap();
    behind
        .get_json("/services/data/v59.0/limits")
        .await
        .unwrap();
    let generation = behind.manager().token().await.unwrap().generation();
    // Another member moves the store one generation on; this client keeps its (valid) token.
    let other = build();
    other.token().await.unwrap();
    let newer = other.force_refresh().await.unwrap();
    assert_eq!(newer.generation(), generation + 1);
    assert_eq!(
        behind.manager().token().await.unwrap().generation(),
        generation
    );
    let before = org.token_requests("refresh_token").await;
    let dead_before = org.stats().await["invalid_session_responses"]
        .as_u64()
        .unwrap();

    org.logout().await;
    behind
        .get_json("/services/data/v59.0/limits")
        .await
        .unwrap();
    let stats = org.stats().await;
    assert_eq!(
        stats["invalid_session_responses"].as_u64().unwrap(),
        dead_before + 2,
        "its own token and the adopted one both died: {stats}"
    );
    assert_eq!(
        stats["token_requests"]["refresh_token"].as_u64().unwrap(),
        before + 1,
        "one token request: the adopted token cost none: {stats}"
    );
    assert_eq!(
        behind.manager().token().await.unwrap().generation(),
        generation + 2
    );
}
