//! TokenManager against the simulated org. Every count is read from the org's `/_fake/stats`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;
use sfkeep::clock::{ManualClock, UnixMillis};
use sfkeep::diagnose::Cause;
use sfkeep::event::{AuthEventKind, MemorySink, RefreshReason};
use sfkeep::store::{
    CacheKey, CasOutcome, EncryptedFileStore, MemoryStore, RefreshLock, Store, StoreKey,
};
use support::{Org, Outcome, call, eventually, get_limits};

const MIN15: Duration = Duration::from_secs(15 * 60);

/// Runs `calls` calls spread evenly over `span`, moving the org's and the client's clocks
/// together, and returns the events.
async fn spread_calls(
    org: &Org,
    clock: &ManualClock,
    calls: u64,
    span: Duration,
) -> Vec<AuthEventKind> {
    let sink = MemorySink::new();
    let m = org
        .manager(org.refresh_grant(), clock)
        .session_timeout(MIN15)
        .event_sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    let step_ms = span.as_millis() as u64 / calls;
    let mut owed_ms = 0u64;
    for _ in 0..calls {
        assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
        owed_ms += step_ms;
        // The admin API moves whole seconds; move the client clock the same amount.
        let secs = owed_ms / 1000;
        if secs > 0 {
            owed_ms -= secs * 1000;
            org.advance(secs).await;
            clock.advance(Duration::from_secs(secs));
        }
    }
    sink.events().into_iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proactive_refresh_sees_no_401_over_two_hours() {
    let org = Org::start(MIN15).await;
    let clock = ManualClock::starting_now_offset(0);
    let events = spread_calls(&org, &clock, 1000, Duration::from_secs(7200)).await;
    let stats = org.stats().await;
    assert_eq!(stats["invalid_session_responses"], 0, "{stats}");
    let refreshes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AuthEventKind::TokenRefreshed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert!(
        refreshes.len() >= 8,
        "a 15-minute session over 2 h needs 8+ tokens: {refreshes:?}"
    );
    assert!(
        refreshes
            .iter()
            .all(|r| matches!(r, RefreshReason::Startup | RefreshReason::Proactive)),
        "every refresh happened before expiry: {refreshes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_ten_minutes_off_either_way_still_sees_no_401() {
    for offset_ms in [-600_000i64, 600_000] {
        let org = Org::start(MIN15).await;
        let clock = ManualClock::starting_now_offset(offset_ms);
        spread_calls(&org, &clock, 300, Duration::from_secs(3600)).await;
        let stats = org.stats().await;
        assert_eq!(
            stats["invalid_session_responses"], 0,
            "offset {offset_ms}: {stats}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_logout_the_next_call_refreshes_once_and_replays() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
    let before = org.token_requests("refresh_token").await;
    org.logout().await;
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Healed));
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_on_an_expired_token_cause_one_token_request() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    m.token().await.unwrap();
    let before = org.token_requests("refresh_token").await;
    org.advance(3 * 3600).await;
    clock.advance(Duration::from_secs(3 * 3600));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.token().await.map(|t| t.generation()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 2);
    }
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_401s_for_one_generation_cause_one_token_request() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    let t = m.token().await.unwrap();
    let before = org.token_requests("refresh_token").await;
    org.logout().await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let m = m.clone();
            let http = org.http.clone();
            let t = t.clone();
            tokio::spawn(async move {
                // Every caller holds the dead token and sees its own 401.
                assert_eq!(support::get_limits(&http, &t).await, 401);
                m.invalidate_if_current(t.generation(), sfkeep::diagnose::api_error::Api::Rest);
                let fresh = m.token().await.unwrap();
                support::get_limits(&http, &fresh).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
}

/// The login budget counts token requests sent: a budget of 3 lets exactly 3 refreshes reach
/// the org in an hour, refuses the 4th without a request, and frees up as the hour passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_budget_counts_each_token_request_once() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org
        .manager(org.refresh_grant(), &clock)
        .introspect(false)
        .login_budget_per_hour(3)
        .build()
        .unwrap();
    for n in 1..=3 {
        m.force_refresh()
            .await
            .unwrap_or_else(|e| panic!("refresh {n} within the budget: {e}"));
    }
    match m.force_refresh().await {
        Err(sfkeep::Error::LoginBudgetExhausted { budget: 3, .. }) => {}
        other => panic!("the 4th refresh must be held by the budget: {other:?}"),
    }
    assert_eq!(org.token_requests("refresh_token").await, 3);
    clock.advance(Duration::from_secs(3601));
    m.force_refresh().await.unwrap();
    assert_eq!(org.token_requests("refresh_token").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_survives_200_refreshes_with_concurrent_callers() {
    let org = Org::start(Duration::from_secs(7200)).await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let clock = ManualClock::starting_now_offset(0);
    let store = Arc::new(MemoryStore::new());
    let m = org
        .manager(org.refresh_grant(), &clock)
        .store(store.clone())
        .introspect(false)
        .login_budget_per_hour(10_000)
        .build()
        .unwrap();
    m.token().await.unwrap();
    let mut last_rt = None;
    for round in 0..200 {
        clock.advance(Duration::from_secs(3 * 3600));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.token().await.map(|t| t.generation()) })
            })
            .collect();
        for t in tasks {
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let rec = store.load(m.store_key()).await.unwrap().unwrap();
        let rt = rec
            .refresh_token
            .clone()
            .expect("a rotated refresh token is stored");
        assert_ne!(
            Some(rt.expose_secret().to_owned()),
            last_rt,
            "round {round} stored a new refresh token"
        );
        last_rt = Some(rt.expose_secret().to_owned());
    }
    let stats = org.stats().await;
    assert_eq!(stats["refresh_token_reuse_detected"], 0, "{stats}");
    assert_eq!(stats["token_requests"]["refresh_token"], 201, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_mid_refresh_does_not_lose_the_rotated_refresh_token() {
    let org = Org::start(Duration::from_secs(7200)).await;
    org.policy(json!({"rotate_refresh_tokens": true})).await;
    let clock = ManualClock::starting_now_offset(0);
    let store = Arc::new(MemoryStore::new());
    let m = org
        .manager(org.refresh_grant(), &clock)
        .store(store.clone())
        .introspect(false)
        .build()
        .unwrap();
    m.token().await.unwrap();
    clock.advance(Duration::from_secs(3 * 3600));
    org.post(
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "latency_ms": 400, "count": 1}),
    )
    .await;
    // The caller gives up long before the slow token endpoint answers.
    let r = tokio::time::timeout(Duration::from_millis(50), m.token()).await;
    assert!(r.is_err(), "the caller was dropped mid-refresh");
    let key = m.store_key().clone();
    eventually(Duration::from_secs(10), || {
        let store = store.clone();
        let key = key.clone();
        async move {
            store
                .load(&key)
                .await
                .unwrap()
                // The outcome, not the declaration of the refresh (same generation).
                .is_some_and(|r| r.generation == 2 && r.intent.is_none())
        }
    })
    .await;
    // The stored (rotated) refresh token is the live one: the next refresh works.
    clock.advance(Duration::from_secs(3 * 3600));
    assert_eq!(m.token().await.unwrap().generation(), 3);
    assert_eq!(org.stats().await["refresh_token_reuse_detected"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revoke_heals_through_the_jwt_fallback() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let sink = MemorySink::new();
    let m = org
        .manager(org.refresh_grant(), &clock)
        .fallback_grant(org.jwt_grant())
        .event_sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
    let c = org.info().client_id.clone();
    org.post(&format!("/apps/{c}/revoke"), json!({})).await;
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Healed));
    let stats = org.stats().await;
    assert_eq!(stats["token_requests"]["jwt_bearer"], 1, "{stats}");
    assert!(sink.events().iter().any(|e| matches!(
        e.kind,
        AuthEventKind::FallbackUsed {
            cause: Cause::RefreshTokenRevoked
        }
    )));
}

/// The refused refresh token is remembered in the stored record: a later process (a new
/// manager on the same store) goes straight to the fallback on each death instead of sending
/// the dead refresh token first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_is_never_sent_again_by_any_process_sharing_the_store() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let process = || {
        org.manager(org.refresh_grant(), &clock)
            .fallback_grant(org.jwt_grant())
            .store(Arc::clone(&store))
            .build()
            .unwrap()
    };
    let first = process();
    assert_eq!(call(&org.http, &first).await, Ok(Outcome::Ok));
    let c = org.info().client_id.clone();
    org.post(&format!("/apps/{c}/revoke"), json!({})).await;
    assert_eq!(call(&org.http, &first).await, Ok(Outcome::Healed));
    assert_eq!(
        org.token_requests("refresh_token").await,
        2,
        "the first and the refused one"
    );
    assert_eq!(org.token_requests("jwt_bearer").await, 1);
    drop(first);

    for death in 1..=3u64 {
        let later = process();
        assert_eq!(call(&org.http, &later).await, Ok(Outcome::Ok));
        org.logout().await;
        assert_eq!(call(&org.http, &later).await, Ok(Outcome::Healed));
        assert_eq!(
            org.token_requests("refresh_token").await,
            2,
            "death {death}: the refused refresh token was sent again"
        );
        assert_eq!(org.token_requests("jwt_bearer").await, 1 + death);
    }
}

/// A process that has not heard from the server yet (a fresh CLI invocation) and finds a
/// record issued in its future measures the server's `Date` before judging it (issue 24 item
/// 5): its clock is behind. It never takes the writer's offset (here made absurd in the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_behind_the_server_measures_its_date_before_judging_a_record() {
    let org = Org::start(Duration::from_secs(3600)).await;
    // The org's clock runs two hours ahead of this machine's.
    org.advance(7200).await;
    let clock = ManualClock::starting_now_offset(0);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let process = || {
        org.manager(org.refresh_grant(), &clock)
            .store(Arc::clone(&store))
            .introspect(false)
            .session_timeout(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let writer = process();
    writer.token().await.unwrap();
    let offset = writer.server_clock().offset();
    assert!((7_190_000..7_210_000).contains(&offset), "{offset}");
    // Another host's estimate, wildly off: no reader may take it.
    let key = writer.store_key().clone();
    let mut rec = store.load(&key).await.unwrap().unwrap();
    rec.server_offset_ms = -3 * 3600 * 1000;
    let expected = Some(rec.generation);
    rec.generation += 1;
    store.compare_and_set(&key, expected, &rec).await.unwrap();

    let reader = process();
    reader.token().await.unwrap();
    assert_eq!(
        org.token_requests("refresh_token").await,
        1,
        "adopted, not refreshed"
    );
    let measured = reader.server_clock().offset();
    assert!(
        (7_190_000..7_210_000).contains(&measured),
        "the reader measured the server's clock: {measured}"
    );
    let left = reader.status().expires_in.unwrap();
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3500),
        "an hour from the server's point of view, not three: {left:?}"
    );
}

/// A writer whose clock is stepped (3 h fast, 10 min slow) stores its measured offset with the
/// record; readers with a correct clock that have not heard from the server yet must not take
/// it: with the 3 h one, a token that timed out looked an hour from expiry (issue 24 item 5:
/// `sfkeep token` printed a timed-out session 3 times out of 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_with_a_stepped_clock_never_makes_a_reader_serve_a_timed_out_token() {
    // (writer's clock step in s, server time passed before the readers run in s, timed out)
    for (step, later, timed_out) in [(3 * 3600i64, 7200u64, true), (-600, 1800, false)] {
        let org = Org::start(Duration::from_secs(3600)).await;
        let stepped = ManualClock::starting_now_offset(step * 1000);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let process = |clock: &ManualClock| {
            org.manager(org.refresh_grant(), clock)
                .store(Arc::clone(&store))
                .introspect(false)
                .session_timeout(Duration::from_secs(3600))
                .build()
                .unwrap()
        };
        let writer = process(&stepped);
        let first = writer.token().await.unwrap();
        let offset = writer.server_clock().offset();
        assert!(
            (-step * 1000 - 10_000..-step * 1000 + 10_000).contains(&offset),
            "step {step}: the writer measured {offset}"
        );
        org.advance(later).await;
        for run in 0..3 {
            let correct = ManualClock::starting_now_offset(later as i64 * 1000);
            let reader = process(&correct);
            let t = reader.token().await.unwrap();
            if timed_out {
                assert_ne!(
                    t.access_token().expose_secret(),
                    first.access_token().expose_secret(),
                    "step {step}, run {run}: the timed-out token was served"
                );
            }
            assert_eq!(
                get_limits(&org.http, &t).await,
                200,
                "step {step}, run {run}"
            );
        }
        let stats = org.stats().await;
        assert_eq!(
            stats["invalid_session_responses"], 0,
            "step {step}: {stats}"
        );
        assert_eq!(
            stats["refresh_token_reuse_detected"], 0,
            "step {step}: {stats}"
        );
        let expected_refreshes = if timed_out { 2 } else { 1 };
        assert_eq!(
            stats["token_requests"]["refresh_token"], expected_refreshes,
            "step {step}: one refresh per timed-out session, none for a valid one: {stats}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revoke_without_fallback_is_reauth_required_after_one_request_and_then_quiet() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
    let c = org.info().client_id.clone();
    org.post(&format!("/apps/{c}/revoke"), json!({})).await;
    let before = org.token_requests("refresh_token").await;
    let e = call(&org.http, &m).await.unwrap_err();
    assert!(e.contains("refresh_token_revoked"), "{e}");
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
    for _ in 0..100 {
        let err = m.token().await.unwrap_err();
        assert!(err.is_reauth_required());
        assert_eq!(err.cause(), Some(Cause::RefreshTokenRevoked));
    }
    assert_eq!(
        org.token_requests("refresh_token").await,
        before + 1,
        "no request inside the cooldown"
    );
    // After the cooldown the refused refresh token is still never sent again.
    clock.advance(Duration::from_secs(31));
    assert!(m.token().await.unwrap_err().is_reauth_required());
    assert_eq!(org.token_requests("refresh_token").await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_login_expiry_comes_from_session_seconds_valid() {
    let org = Org::start(Duration::from_secs(1800)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.soap_grant(), &clock).build().unwrap();
    let t = m.token().await.unwrap();
    let rec = t.record();
    assert_eq!(
        rec.expiry_source,
        sfkeep::token::ExpirySource::SoapSessionSecondsValid
    );
    assert_eq!(rec.expires_at.0 - rec.issued_at.0, 1_800_000);
    assert_eq!(org.stats().await["soap_logins"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_sets_expiry_when_the_app_may_introspect() {
    let org = Org::start(Duration::from_secs(1800)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    let t = m.token().await.unwrap();
    assert_eq!(
        t.record().expiry_source,
        sfkeep::token::ExpirySource::Introspection
    );
    let lifetime = t.record().expires_at.0 - t.record().issued_at.0;
    assert!((1_795_000..=1_805_000).contains(&lifetime), "{lifetime}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cache_key_is_a_clear_error_and_leaves_the_file_alone() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.enc");
    let clock = ManualClock::starting_now_offset(0);
    let m = org
        .manager(org.refresh_grant(), &clock)
        .store(Arc::new(EncryptedFileStore::new(
            &path,
            CacheKey::generate(),
        )))
        .build()
        .unwrap();
    m.token().await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let other = EncryptedFileStore::new(&path, CacheKey::generate());
    let e = other.load(m.store_key()).await.unwrap_err().to_string();
    assert!(e.contains("different cache key"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was not touched"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_that_jumps_forward_never_gets_a_token_served_past_its_expiry() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    assert_eq!(m.token().await.unwrap().generation(), 1);
    // The local clock leaps three hours: by its reckoning the token is dead, so it is not
    // served; a refresh runs, and its Date header re-measures the skew.
    clock.advance(Duration::from_secs(3 * 3600));
    assert!(
        m.cached_token().is_none(),
        "an expired token is never served"
    );
    let t = m.token().await.unwrap();
    assert_eq!(t.generation(), 2);
    assert!(t.record().expires_at > m.server_clock().now());
    assert!(
        m.server_clock().offset() < -3 * 3600 * 1000 + 5_000,
        "skew re-measured"
    );
    // And a jump back leaves the (valid) token in service without a request.
    let before = org.token_requests("refresh_token").await;
    clock.set(UnixMillis(clock_now(&clock) - 24 * 3600 * 1000));
    assert_eq!(m.token().await.unwrap().generation(), 2);
    assert_eq!(org.token_requests("refresh_token").await, before);
}

fn clock_now(c: &ManualClock) -> i64 {
    use sfkeep::clock::Clock;
    c.now().0
}

/// A real local HTTP server that answers every request with `status` and `body`: for
/// responses the simulated org never sends (a proxy's HTML page, a runaway body).
async fn canned_server(status: u16, content_type: &'static str, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_responses_are_typed_errors_never_panics() {
    let grant = sfkeep::Grant::refresh_token(
        "cid",
        None,
        sfkeep::secret::RefreshToken::new("rt-secret-value-123456"),
    );
    let cases: Vec<(u16, &str, Vec<u8>, &str)> = vec![
        (
            200,
            "application/json",
            vec![b'{'; 2 * 1024 * 1024],
            "body larger than",
        ),
        (
            503,
            "text/html",
            b"<html><body>Down for maintenance</body></html>".to_vec(),
            "transient",
        ),
        (
            200,
            "text/html",
            b"<html>login page</html>".to_vec(),
            "not JSON",
        ),
        (200, "application/json", b"".to_vec(), "not JSON"),
        (
            200,
            "application/json",
            br#"{"access_token":"x","instance_url":5}"#.to_vec(),
            "instance_url",
        ),
        (
            400,
            "application/json",
            br#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#
                .to_vec(),
            "refresh_token_revoked",
        ),
    ];
    for (status, ct, body, want) in cases {
        let url = canned_server(status, ct, body).await;
        let clock = ManualClock::starting_now_offset(0);
        let m = sfkeep::TokenManager::builder(url)
            .grant(grant.clone())
            .clock(Arc::new(clock) as Arc<dyn sfkeep::clock::Clock>)
            .build()
            .unwrap();
        let e = m.token().await.unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(want), "want {want:?} in {shown}");
        assert!(!shown.contains("rt-secret-value"), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_forget_the_fast_path_never_serves_the_forgotten_token() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    let first = m.token().await.unwrap();
    m.forget().await.unwrap();
    assert!(m.cached_token().is_none());
    let second = m.token().await.unwrap();
    // Numbering continues above the logout tombstone; the thread-local copy must not confuse
    // the two.
    assert!(second.generation() > first.generation());
    assert_ne!(second.access_token(), first.access_token());
    assert_eq!(
        m.cached_token().unwrap().access_token(),
        second.access_token()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_fallback_follows_the_org_clock_after_revoke_jumps_and_a_freeze() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let m = org
        .manager(org.refresh_grant(), &clock)
        .fallback_grant(org.jwt_grant())
        .build()
        .unwrap();
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
    let cid = org.info().client_id.clone();
    let user = org.info().username.clone();
    org.post(&format!("/apps/{cid}/revoke"), json!({})).await;
    for _ in 0..3 {
        org.advance(3 * 3600).await;
        let r = call(&org.http, &m).await;
        assert!(r.is_ok(), "{r:?} {:?}", m.status());
    }
    org.post(&format!("/users/{user}/freeze"), json!({})).await;
    org.advance(3 * 3600).await;
    let e = call(&org.http, &m).await.unwrap_err();
    assert!(!e.contains("authorization_code_expired"), "{e}");
    org.post(&format!("/users/{user}/unfreeze"), json!({}))
        .await;
    m.force_refresh().await.unwrap();
    assert_eq!(call(&org.http, &m).await, Ok(Outcome::Ok));
}

// ---------------------------------------------------------------------------------------------
// Write-back after an outage, with a store that can be taken down and made to race.

/// A `MemoryStore` that can fail every operation (an outage), run a hook inside the next
/// compare-and-set (before it is applied), and make the next compare-and-sets lose to a
/// competing writer.
#[derive(Debug, Default)]
struct RacyStore {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
    conflicts: std::sync::atomic::AtomicUsize,
    on_cas: HookSlot,
    load_gate: GateSlot,
}

/// Holds the next `load`: says so on the first channel, waits for the second.
#[derive(Debug, Default)]
struct GateSlot(
    std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
);

#[derive(Default)]
struct HookSlot(std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSlot")
    }
}

impl RacyStore {
    fn check(&self) -> sfkeep::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(sfkeep::Error::Store {
                store: "racy",
                message: "down".to_owned(),
            });
        }
        Ok(())
    }
}

impl Store for RacyStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, sfkeep::Result<Option<sfkeep::token::TokenRecord>>> {
        Box::pin(async move {
            self.check()?;
            let gate = self.load_gate.0.lock().unwrap().take();
            if let Some((entered, release)) = gate {
                let _ = entered.send(());
                let _ = release.await;
            }
            self.inner.load(key).await
        })
    }
    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: Option<u64>,
        record: &'a sfkeep::token::TokenRecord,
    ) -> BoxFuture<'a, sfkeep::Result<CasOutcome>> {
        Box::pin(async move {
            self.check()?;
            let hook = self.on_cas.0.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
            let lose = self
                .conflicts
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            if lose {
                // Another writer stores the same generation first.
                let cur = self.inner.load(key).await?.map(|r| r.generation);
                let theirs = record.clone();
                assert!(matches!(
                    self.inner.compare_and_set(key, cur, &theirs).await?,
                    CasOutcome::Written
                ));
            }
            self.inner.compare_and_set(key, expected, record).await
        })
    }
    fn lock<'a>(
        &'a self,
        key: &'a StoreKey,
        wait: Duration,
    ) -> BoxFuture<'a, sfkeep::Result<Option<Box<dyn RefreshLock>>>> {
        Box::pin(async move {
            self.check()?;
            self.inner.lock(key, wait).await
        })
    }
}

fn count(sink: &MemorySink, name: &str) -> usize {
    sink.events()
        .iter()
        .filter(|e| e.kind.name() == name)
        .count()
}

/// A JWT manager over a [`RacyStore`], with its events in a sink.
fn racy_jwt_manager(
    org: &Org,
    clock: &ManualClock,
) -> (sfkeep::TokenManager, Arc<RacyStore>, MemorySink) {
    let store = Arc::new(RacyStore::default());
    let sink = MemorySink::new();
    let m = org
        .manager(org.jwt_grant(), clock)
        .store(store.clone())
        .introspect(false)
        .event_sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    (m, store, sink)
}

/// A 401 for the token being written back arrives while the compare-and-set is in flight: the
/// dead token must not stay in the store for the fleet to adopt; a refresh replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_during_the_write_back_replaces_the_dead_token_in_the_store() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let (m, store, sink) = racy_jwt_manager(&org, &clock);
    let first = m.token().await.unwrap();
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let local = m.force_refresh().await.unwrap();
    assert!(local.generation() > first.generation());
    assert_eq!(org.token_requests("jwt_bearer").await, 2);

    let m2 = m.clone();
    let dead = local.generation();
    *store.on_cas.0.lock().unwrap() = Some(Box::new(move || {
        assert!(m2.invalidate_if_current(dead, sfkeep::diagnose::api_error::Api::Rest));
    }));
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    // The fast path starts the recovery probe, which writes the token back.
    assert!(m.cached_token().is_some());
    let key = m.store_key().clone();
    eventually(Duration::from_secs(10), || async {
        matches!(store.inner.load(&key).await, Ok(Some(r)) if r.generation > dead)
    })
    .await;
    assert_eq!(count(&sink, "token.written_back"), 1);
    assert_eq!(org.token_requests("jwt_bearer").await, 3);
    let t = m.token().await.unwrap();
    assert!(t.generation() > dead);
    assert_eq!(support::get_limits(&org.http, &t).await, 200);
}

/// Losing the compare-and-set twice to a healthy store is no outage: that token is not queued
/// for write-back, so it never replaces anything later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_lost_two_compare_and_sets_is_never_written_back() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let (m, store, sink) = racy_jwt_manager(&org, &clock);
    m.token().await.unwrap();
    store
        .conflicts
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let lost = m.force_refresh().await.unwrap();
    assert_eq!(count(&sink, "refresh.discarded"), 2);
    assert_eq!(count(&sink, "store.unavailable"), 0);
    assert_eq!(org.token_requests("jwt_bearer").await, 2);

    // Stale: the background refresh reads the store, which holds an older generation.
    // Both clocks move together (the org checks the JWT's times).
    let ahead =
        Duration::from_millis((lost.record().expires_at.0 - 90_000 - clock_now(&clock)) as u64);
    clock.advance(ahead);
    org.advance(ahead.as_secs()).await;
    assert_eq!(m.status().state, sfkeep::manager::TokenStatus::Stale);
    assert!(m.cached_token().is_some());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while count(&sink, "token.refreshed") < 3 {
        assert!(
            std::time::Instant::now() < until,
            "no background refresh: {:?} {:?}",
            m.status(),
            sink.events()
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        org.token_requests("jwt_bearer").await,
        3,
        "{:#?}",
        sink.events()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(count(&sink, "token.written_back"), 0);
}

/// A refresh requested while a forget() runs waits for it (the store is serialised) and runs
/// after it: its token must not be stored over the logout, nor become current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_requested_during_forget_does_not_undo_the_logout() {
    use futures_util::FutureExt;
    let org = Org::start(Duration::from_secs(7200)).await;
    let clock = ManualClock::starting_now_offset(0);
    let (m, store, sink) = racy_jwt_manager(&org, &clock);
    let first = m.token().await.unwrap();

    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    *store.load_gate.0.lock().unwrap() = Some((entered_tx, release_rx));
    let m2 = m.clone();
    let forget = tokio::spawn(async move { m2.forget().await });
    entered_rx.await.unwrap(); // forget() holds the store, reading it
    // A caller asks for a token now: the refresh task starts (and outlives this poll).
    assert!(Box::pin(m.token()).now_or_never().is_none());
    release_tx.send(()).unwrap();
    forget.await.unwrap().unwrap();

    let until = std::time::Instant::now() + Duration::from_secs(10);
    while count(&sink, "token.refreshed") < 2 {
        assert!(
            std::time::Instant::now() < until,
            "the queued refresh never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(org.token_requests("jwt_bearer").await, 2);
    let held = store.inner.load(m.store_key()).await.unwrap().unwrap();
    assert!(held.is_tombstone(), "the logout stays");
    assert!(m.cached_token().is_none());

    // After the forget, a call refreshes and stores as usual.
    let next = m.token().await.unwrap();
    assert!(next.generation() > held.generation);
    assert_ne!(next.access_token(), first.access_token());
    assert_eq!(org.token_requests("jwt_bearer").await, 3);
    let held = store.inner.load(m.store_key()).await.unwrap().unwrap();
    assert_eq!(held.fingerprint(), next.record().fingerprint());
}
