//! `sfkeep serve`, the guardian, against the simulated org run by `sfkeep fake-org`: its
//! contract (ready line, endpoints, trust model), the keep-alive over 120 simulated days and
//! across 8 processes on one Redis, the forecasts, the alerts (real webhook receivers on
//! loopback), and a value-based leak audit. The org's clock moves through its admin API; no
//! test waits for time to pass: each polls the guardian's status for the condition it needs.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use common::serve::*;
use common::{Org, Redis, result_of, run, sfkeep, web_server_login};
use serde_json::{Value, json};

#[test]
fn serve_prints_its_ready_line_serves_its_endpoints_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let cfg = config(home.path(), &org, "", "");
    let s = watch(home.path(), &cfg, "100ms", &[]);
    assert_eq!(s.ready["profiles"], json!(["fake"]));
    let listen: SocketAddr = s.ready["listen"].as_str().unwrap().parse().unwrap();
    assert!(listen.ip().is_loopback());
    let p = wait_for("a first check", 30, || {
        let p = s.profile();
        (p["checks"].as_u64() >= Some(1)).then_some(p)
    });
    assert_eq!(p["state"], "fresh", "{p}");
    let (code, health) = get(&format!("{}/healthz", s.url()));
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap()["profiles"]["fake"],
        "fresh"
    );
    let (code, metrics) = get(&format!("{}/metrics", s.url()));
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sfkeep_token_state{profile=\"fake\",state=\"fresh\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE sfkeep_forecast_seconds gauge"),
        "{metrics}"
    );
    let events = get_json(&format!(
        "{}/api/v1/events?profile=fake&window=24h",
        s.url()
    ));
    assert!(events["total"].as_u64().unwrap() >= 1, "{events}");
    // The page: self-contained, with a strict CSP.
    let (_, headers, html) = request(|c| c.get(s.url()));
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resource: {html}"
    );
    // Read-only, and not readable through a foreign host name (DNS rebinding) or from
    // another site's page.
    let status_url = format!("{}/api/v1/status", s.url());
    assert_eq!(request(|c| c.post(&status_url)).0, 405);
    assert_eq!(
        request(|c| c.get(&status_url).header("Host", "attacker.example:80")).0,
        403
    );
    assert_eq!(
        request(|c| c
            .get(&status_url)
            .header("Sec-Fetch-Site", "cross-site")
            .header("Sec-Fetch-Mode", "cors"))
        .0,
        403
    );
    assert_eq!(s.stop(), 0, "SIGTERM is a clean stop");
}

#[test]
fn off_loopback_needs_a_client_key_and_bad_webhooks_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let cfg = config(home.path(), &org, "", "");
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["serve", "--profile", "fake", "--listen", "0.0.0.0:0"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("client key"), "{err}");
    for bad in [
        "ftp://example.com/hook",
        "http://hooks.example.com/x",
        "not a url",
    ] {
        let mut c = sfkeep(home.path());
        c.arg("--config").arg(&cfg).args([
            "serve",
            "--profile",
            "fake",
            "--listen",
            "127.0.0.1:0",
            "--webhook",
            bad,
        ]);
        let (code, _, err) = run(c);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("--webhook"), "{err}");
    }
    // With a key, the listener answers only requests that present it.
    let key = "serve-test-key-0123456789";
    let s = Serve::start_env(
        home.path(),
        &cfg,
        &[
            "--profile",
            "fake",
            "--listen",
            "127.0.0.1:0",
            "--client-key-env",
            "SERVE_KEY",
        ],
        &[("SERVE_KEY", key)],
    );
    assert_eq!(get(&format!("{}/api/v1/status", s.url())).0, 401);
    let status_url = format!("{}/api/v1/status", s.url());
    assert_eq!(request(|c| c.get(&status_url).bearer_auth(key)).0, 200);
}

/// Idle policy "expire if not used for 30 days", no call for 120 simulated days: with the
/// guardian the refresh token is still valid on day 120, and the org counted one token
/// request per keep-alive.
#[test]
fn keep_alive_keeps_an_idle_refresh_token_alive_for_120_days() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    set_policy(
        &org,
        json!({"refresh_token_policy": {"expire_if_unused_seconds": 30 * DAY}}),
    );
    let cfg = config(home.path(), &org, "refresh_token_idle_ttl = \"30d\"", "");
    // The org is read once, at the start: a read racing a clock jump would heal the session
    // the jump killed (a token request that is not a keep-alive).
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &["--org-check-interval", "1000d"],
    );
    s.caught_up(org.now_ms());
    let before = org.refresh_requests();
    for _ in 0..60 {
        org.advance(2 * DAY);
        s.caught_up(org.now_ms());
    }
    let p = s.profile();
    let keepalives = p["keep_alive"]["refreshed"].as_u64().unwrap();
    assert_eq!(
        keepalives, 4,
        "a keep-alive every 27 days over 120: {}",
        p["keep_alive"]
    );
    assert_eq!(
        org.refresh_requests() - before,
        keepalives,
        "one token request per keep-alive"
    );
    assert!(p["incidents"].as_array().unwrap().is_empty(), "{p}");
    drop(s);
    // Day 120: the configured refresh token still works.
    let ok = rt().block_on(async {
        http()
            .post(format!("{}/services/oauth2/token", org.field("login_url")))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &org.field("refresh_token")),
                ("client_id", &org.field("client_id")),
                ("client_secret", &org.field("client_secret")),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(ok, 200, "the refresh token is alive on day 120");
}

/// Without the guardian, the same 120 days kill the refresh token, and doctor says why.
#[test]
fn without_keep_alive_the_idle_refresh_token_dies_and_doctor_names_the_policy() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    set_policy(
        &org,
        json!({"refresh_token_policy": {"expire_if_unused_seconds": 30 * DAY}}),
    );
    // Only the refresh token: a fallback would carry the integration.
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let cfg = home.path().join("sfkeep.toml");
    std::fs::write(&cfg, text.replace("fallback_grant = \"jwt_bearer\"\n", "")).unwrap();
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["--profile", "fake", "token"]);
    assert_eq!(run(c).0, 0);
    org.advance(120 * DAY);
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["--profile", "fake", "doctor", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let d: Value = result_of(&out);
    let causes: Vec<&str> = d["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cause"].as_str().unwrap())
        .collect();
    assert!(
        causes.contains(&"refresh_token_expired_by_policy"),
        "doctor names the policy among its causes: {d}"
    );
}

/// 8 guardians sharing one Redis store, rotation on: each keep-alive is exactly one token
/// request at the org, and no rotated-out refresh token is ever presented again.
#[test]
fn eight_guardians_on_one_redis_make_one_token_request_per_keep_alive() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    set_policy(
        &org,
        json!({"refresh_token_policy": {"expire_if_unused_seconds": 30 * DAY}, "rotate_refresh_tokens": true}),
    );
    let redis = Redis::start();
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let store_start = text.find("[profiles.fake.store]").unwrap();
    let key_file = text[store_start..]
        .lines()
        .find(|l| l.starts_with("key_file"))
        .unwrap()
        .to_owned();
    let cfg = home.path().join("sfkeep.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}[profiles.fake.store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n{key_file}\n",
            &text[..store_start],
            redis.port
        ),
    )
    .unwrap();
    let fleet: Vec<Serve> = (0..8)
        .map(|_| {
            watch(
                home.path(),
                &cfg,
                "100ms",
                &["--org-check-interval", "1000d"],
            )
        })
        .collect();
    let settle = |org_ms: i64| {
        for s in &fleet {
            s.caught_up(org_ms);
        }
    };
    settle(org.now_ms());
    let before = org.refresh_requests();
    for round in 1..=3u64 {
        org.advance(28 * DAY);
        let t = org.now_ms();
        settle(t);
        // Every member has seen the keep-alive's generation by its next check.
        let gens: Vec<u64> = fleet
            .iter()
            .map(|s| {
                s.caught_up(t + 1);
                s.profile()["keep_alive"]["plan"]["generation"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(
            gens.windows(2).all(|w| w[0] == w[1]),
            "one generation: {gens:?}"
        );
        assert_eq!(org.refresh_requests() - before, round, "round {round}");
    }
    let views: Vec<Value> = fleet
        .iter()
        .map(|s| s.profile()["keep_alive"].clone())
        .collect();
    let done: u64 = views.iter().map(|k| k["refreshed"].as_u64().unwrap()).sum();
    assert_eq!(done, 3, "three keep-alives, each by one member: {views:#?}");
    assert_eq!(org.stats()["refresh_token_reuse_detected"], 0);
}

/// Absolute expiry after 90 days: `status --json` gives the date within a day. A certificate
/// with 10 days left: a forecast, and at the 14-day threshold exactly one alert. A file that
/// is not a certificate: "unknown" and why, and the guardian keeps running.
#[test]
fn forecasts_reach_status_json_and_a_certificate_alerts_once() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    set_policy(
        &org,
        json!({"refresh_token_policy": {"expire_after_seconds": 90 * DAY}}),
    );
    let cert = home.path().join("jwt.crt");
    std::fs::write(&cert, cert_pem(10)).unwrap();
    let cfg = config(
        home.path(),
        &org,
        &format!(
            "refresh_token_max_age = \"90d\"\njwt_cert = {:?}\npassword_max_age = \"90d\"",
            cert.display().to_string()
        ),
        "",
    );
    let hook = Receiver::start();
    let s = watch(home.path(), &cfg, "50ms", &["--webhook", &hook.url()]);
    let p = wait_for("the forecasts", 30, || {
        let p = s.profile();
        (forecast(&p, "refresh_token_expiry")["status"] == "dated").then_some(p)
    });
    let cert_f = forecast(&p, "jwt_certificate_expiry");
    assert_eq!(cert_f["status"], "dated", "{cert_f}");
    assert!(cert_f["remaining_secs"].as_i64().unwrap() <= 10 * DAY);
    let alerts = wait_for("the certificate alert", 30, || {
        let a = hook.alerts();
        (!a.is_empty()).then_some(a)
    });
    // More checks pass; still exactly one alert.
    let checks = s.profile()["checks"].as_u64().unwrap();
    wait_for("ten more checks", 30, || {
        (s.profile()["checks"].as_u64().unwrap() > checks + 10).then_some(())
    });
    let alerts_now: Vec<Value> = hook.alerts();
    let cert_alerts: Vec<&Value> = alerts_now
        .iter()
        .filter(|a| a["kind"] == "jwt_certificate_expiry")
        .collect();
    assert_eq!(cert_alerts.len(), 1, "{alerts:?}");
    assert_eq!(cert_alerts[0]["threshold"], "14d");
    assert_eq!(cert_alerts[0]["status"], "firing");
    // `sfkeep status --json` has the absolute expiry: 90 days after the approval, within a day.
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["--profile", "fake", "status", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let st: Value = result_of(&out);
    let abs = st["guardian"]["forecasts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "refresh_token_expiry")
        .unwrap()
        .clone();
    let expected = org.now_ms() + 90 * DAY * 1000;
    let at = abs["at"].as_i64().unwrap();
    assert!((at - expected).abs() < DAY * 1000, "{abs} vs {expected}");
    // `status --all`: every profile at a glance.
    let mut c = sfkeep(home.path());
    c.arg("--config").arg(&cfg).args(["status", "--all"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    assert!(
        out.contains("fake") && out.contains("jwt_certificate_expiry"),
        "{out}"
    );
    // Bad input: the certificate file turns into garbage; the forecast says why.
    std::fs::write(&cert, "this is not a certificate").unwrap();
    let p = wait_for("the unknown certificate forecast", 30, || {
        let p = s.profile();
        (forecast(&p, "jwt_certificate_expiry")["status"] == "unknown").then_some(p)
    });
    let why = forecast(&p, "jwt_certificate_expiry")["why"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("not an X.509 certificate"), "{why}");
    assert!(why.contains("jwt.crt"), "{why}");
}

/// Freeze the user: exactly one webhook, with doctor's verdict `user_frozen` and its fix.
/// Unfreeze and `sfkeep recover`: one "resolved". A run of 503s and resets: no alert.
#[test]
fn a_frozen_user_alerts_once_and_recover_resolves_it() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let cfg = config(home.path(), &org, "", "");
    let hook = Receiver::start();
    let slack = Receiver::start();
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &[
            "--webhook",
            &hook.url(),
            "--webhook",
            &format!("slack+{}", slack.url()),
        ],
    );
    s.wait_fresh(30);
    // Transient trouble first: 503s and connection resets on every path, then healthy again.
    assert_eq!(
        org.admin_post(
            "/faults",
            json!({"path_prefix": "/services", "status": 503, "count": 20})
        ),
        200
    );
    assert_eq!(
        org.admin_post(
            "/faults",
            json!({"path_prefix": "/services", "reset": true, "count": 20})
        ),
        200
    );
    wait_for("the faults to be used up", 60, || {
        let f = org.admin_get("/faults");
        f["faults"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    let checks = s.profile()["checks"].as_u64().unwrap();
    wait_for("checks after the faults", 30, || {
        (s.profile()["checks"].as_u64().unwrap() > checks + 5).then_some(())
    });
    assert!(
        hook.alerts().is_empty(),
        "no alert for transient faults: {:?}",
        hook.alerts()
    );

    let user = org.field("username");
    assert_eq!(
        org.admin_post(&format!("/users/{user}/freeze"), json!({})),
        200
    );
    let alert = wait_for("the re-auth alert", 60, || hook.alerts().into_iter().next());
    assert_eq!(alert["kind"], "reauth_required", "{alert}");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["verdict"], "user_frozen", "{alert}");
    assert!(
        alert["fix"].as_str().unwrap().contains("unfreeze"),
        "{alert}"
    );
    let text = wait_for("the Slack form", 30, || slack.bodies().into_iter().next());
    let text: Value = serde_json::from_str(&text).unwrap();
    assert!(
        text["text"].as_str().unwrap().contains("user_frozen"),
        "{text}"
    );

    assert_eq!(
        org.admin_post(&format!("/users/{user}/unfreeze"), json!({})),
        200
    );
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["--profile", "fake", "recover"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let resolved = wait_for("the resolved alert", 60, || {
        hook.alerts()
            .into_iter()
            .find(|a| a["status"] == "resolved")
    });
    assert_eq!(resolved["incident"], alert["incident"]);
    let checks = s.profile()["checks"].as_u64().unwrap();
    wait_for("checks after recovery", 30, || {
        (s.profile()["checks"].as_u64().unwrap() > checks + 5).then_some(())
    });
    let all = hook.alerts();
    assert_eq!(all.len(), 2, "one alert and one resolved: {all:?}");
}

/// The receiver is down when the alert is raised: the alert arrives once it is back, and the
/// proxy in the same process keeps serving calls meanwhile.
#[test]
fn an_alert_waits_for_a_receiver_that_is_down_and_the_proxy_keeps_serving() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let (cfg, _cert) = cert_config(home.path(), &org, 2, "");
    // A port with nobody listening: connection refused until the receiver starts on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &[
            "--webhook",
            &format!("http://{addr}/hook"),
            "--proxy",
            &format!("127.0.0.1:{proxy_port}"),
        ],
    );
    let proxy = s.ready["proxies"]["fake"].as_str().unwrap().to_owned();
    wait_for("failed deliveries", 60, || {
        let st = s.status();
        (st["webhooks"][0]["failed_attempts"].as_u64().unwrap_or(0) >= 2).then_some(())
    });
    // Meanwhile calls through the proxy on the same manager work.
    for _ in 0..20 {
        let (code, body) = get(&format!("{proxy}/services/data/v59.0/limits"));
        assert_eq!(code, 200, "{body}");
    }
    let hook = Receiver::start_on(addr);
    let a = wait_for("the alert after the receiver came back", 60, || {
        hook.alerts().into_iter().next()
    });
    assert_eq!(a["kind"], "jwt_certificate_expiry");
    assert_eq!(a["threshold"], "3d");
    let st = s.status();
    assert_eq!(st["webhooks"][0]["delivered"], 1, "{}", st["webhooks"]);
    assert!(
        st["webhooks"][0]["target"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
}

/// Every webhook payload, status answer, events document, metrics page and the page itself,
/// searched for every secret the org ever issued or holds.
#[test]
fn no_secret_in_any_payload() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let (cfg, _cert) = cert_config(home.path(), &org, 5, "");
    let hook = Receiver::start();
    let slack = Receiver::start();
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &[
            "--webhook",
            &hook.url(),
            "--webhook",
            &format!("slack+{}", slack.url()),
        ],
    );
    wait_for("the certificate alert", 30, || {
        (!hook.alerts().is_empty()).then_some(())
    });
    // A death and its heal, then a frozen user, so payloads carry diagnoses too.
    let user = org.field("username");
    assert_eq!(
        org.admin_post(&format!("/users/{user}/logout"), json!({})),
        200
    );
    assert_eq!(
        org.admin_post(&format!("/users/{user}/freeze"), json!({})),
        200
    );
    wait_for("the re-auth alert", 60, || {
        hook.alerts()
            .into_iter()
            .find(|a| a["kind"] == "reauth_required")
    });
    let mut texts: Vec<(String, String)> = Vec::new();
    for b in hook.bodies().into_iter().chain(slack.bodies()) {
        texts.push(("webhook".into(), b));
    }
    for path in [
        "/api/v1/status",
        "/metrics",
        "/healthz",
        "/",
        "/page.js",
        "/api/v1/events?profile=fake&window=30d",
    ] {
        texts.push((path.into(), get(&format!("{}{path}", s.url())).1));
    }
    let secrets = org_secrets(&org);
    assert!(secrets.len() > 5, "only {} secrets", secrets.len());
    for (what, text) in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} holds a secret");
            // The part after the org id of an access token, too.
            if let Some((_, tail)) = secret.split_once('!') {
                assert!(!text.contains(tail), "{what} holds a token's tail");
            }
        }
    }
}

/// A receiver that refuses the payload (404) is given up after three attempts, one that
/// answers garbage with a 200 has it: both counted, neither stops the other.
#[test]
fn a_refusing_receiver_is_given_up_and_garbage_answers_count_as_delivered() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let (cfg, _cert) = cert_config(home.path(), &org, 5, "");
    let refusing = Receiver::start();
    refusing.status.store(404, Ordering::SeqCst);
    let garbage = Receiver::start();
    let s = watch(
        home.path(),
        &cfg,
        "100ms",
        &["--webhook", &refusing.url(), "--webhook", &garbage.url()],
    );
    let hooks = wait_for("both receivers settled", 60, || {
        let w = s.status()["webhooks"].clone();
        (w[0]["dropped"] == 1 && w[1]["delivered"] == 1).then_some(w)
    });
    assert_eq!(hooks[0]["failed_attempts"], 3, "{hooks}");
    assert_eq!(hooks[0]["delivered"], 0);
    assert!(
        hooks[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 404"),
        "{hooks}"
    );
    assert_eq!(garbage.alerts().len(), 1);
    assert!(refusing.alerts().is_empty());
}

/// One more approval of the profile's app by the integration user, through the web-server
/// flow — a person logging in to the same app on a laptop.
fn approve_elsewhere(org: &Org) {
    let (status, _) = web_server_login(org, None, "http://localhost:1717/OauthRedirect");
    assert_eq!(status, 200);
}

/// Four approvals of the app by the integration user: a warning naming them. A sixth from
/// elsewhere evicts the integration's (least recently used) refresh token: the JWT fallback
/// carries on, and the alert says `refresh_token_evicted` with the evidence.
#[test]
fn approvals_warn_at_four_and_a_sixth_evicts_the_integration() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let cfg = config(home.path(), &org, "", "");
    let hook = Receiver::start();
    let s = watch(
        home.path(),
        &cfg,
        "100ms",
        &["--org-check-interval", "100ms", "--webhook", &hook.url()],
    );
    let used = |s: &Serve| forecast(&s.profile(), "approval_limit")["used"].as_u64();
    wait_for("the first org read", 60, || {
        (used(&s) == Some(1)).then_some(())
    });
    for _ in 0..3 {
        approve_elsewhere(&org);
    }
    let warning = wait_for("the approval warning", 60, || {
        hook.alerts()
            .into_iter()
            .find(|a| a["kind"] == "approval_limit")
    });
    assert_eq!(warning["threshold"], "4 of 5", "{warning}");
    let named: Vec<&Value> = warning["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str().unwrap().starts_with("approval of "))
        .collect();
    assert_eq!(named.len(), 4, "each approval is named: {warning}");
    approve_elsewhere(&org);
    approve_elsewhere(&org);
    let alert = wait_for("the eviction alert", 90, || {
        hook.alerts()
            .into_iter()
            .find(|a| a["kind"] == "primary_grant_lost")
    });
    assert_eq!(alert["verdict"], "refresh_token_evicted", "{alert}");
    let evidence = alert["evidence"].to_string();
    assert!(evidence.contains("5 approvals of"), "{alert}");
    let p = s.profile();
    assert_eq!(p["primary_lost"], "refresh_token_revoked", "{p}");
    assert_eq!(
        p["state"], "fresh",
        "the fallback carries the integration: {p}"
    );
}

/// Password expiry against the org's password policy ("User passwords expire in" 90 days;
/// the integration user's password was changed 30 days before the org started), for a
/// profile whose fallback grant sends the password: the forecast is dated from
/// `User.LastPasswordChangeDate` in the status API, `status --json` and the gauge; 47 days
/// later it is inside 14 days: exactly one alert; the password is changed (the org moves
/// `LastPasswordChangeDate`): one "resolved". The refresh token is untouched throughout.
#[test]
fn password_expiry_is_forecast_from_the_org_alerts_once_and_a_change_resolves_it() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    assert_eq!(
        org.admin_put(
            "/password-policy",
            json!({"expire_after_seconds": 90 * DAY})
        ),
        200
    );
    let expires_at = |org: &Org| {
        let v = org.admin_get("/password-policy");
        let u = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == org.field("username"))
            .unwrap()
            .clone();
        parse_sf(u["expires_at"].as_str().unwrap())
    };
    let first = expires_at(&org);
    let cfg = config(home.path(), &org, "password_max_age = \"90d\"", "");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "fallback_grant = \"jwt_bearer\"",
        "fallback_grant = \"password\"",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let hook = Receiver::start();
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &["--org-check-interval", "50ms", "--webhook", &hook.url()],
    );
    let p = s.wait_profile("the password forecast", 60, |p| {
        forecast(p, "password_expiry")["status"] == "dated"
    });
    let f = forecast(&p, "password_expiry");
    assert_eq!(f["at"].as_i64().unwrap(), first, "{f}");
    assert!(
        f["evidence"].to_string().contains("LastPasswordChangeDate"),
        "{f}"
    );
    let (code, metrics) = get(&format!("{}/metrics", s.url()));
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sfkeep_forecast_seconds{profile=\"fake\",kind=\"password_expiry\"}"),
        "{metrics}"
    );
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["--profile", "fake", "status", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let st: Value = result_of(&out);
    let pw = st["guardian"]["forecasts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "password_expiry")
        .unwrap()
        .clone();
    assert_eq!(pw["at"].as_i64().unwrap(), first, "{pw}");
    assert!(
        hook.alerts().is_empty(),
        "60 days left: no alert: {:#?}",
        hook.alerts()
    );

    // 47 days on: 13 days left, inside the 14-day threshold.
    let before = org.stats()["token_requests"].clone();
    org.advance(47 * DAY);
    let moved = org.now_ms();
    s.caught_up(moved);
    let alert = wait_for("the password alert", 60, || {
        hook.alerts()
            .into_iter()
            .find(|a| a["kind"] == "password_expiry")
    });
    assert_eq!(alert["threshold"], "14d", "{alert}");
    assert_eq!(alert["status"], "firing", "{alert}");
    let checks = s.profile()["checks"].as_u64().unwrap();
    wait_for("ten more checks", 60, || {
        (s.profile()["checks"].as_u64().unwrap() > checks + 10).then_some(())
    });
    let all = hook.alerts();
    assert_eq!(all.len(), 1, "exactly one alert: {all:#?}");
    let after = org.stats()["token_requests"].clone();
    assert_eq!(
        after["password"], before["password"],
        "the password is not used while the refresh token works"
    );

    // The password is changed: LastPasswordChangeDate moves, a new 90 days, resolved.
    let user = org.field("username");
    assert_eq!(
        org.admin_post(
            &format!("/users/{user}/password"),
            json!({"password": "A-new-password-77"})
        ),
        200
    );
    let renewed = expires_at(&org);
    assert!(renewed >= moved + 89 * DAY * 1000, "{renewed} vs {moved}");
    let resolved = wait_for("the resolved alert", 60, || {
        hook.alerts()
            .into_iter()
            .find(|a| a["kind"] == "password_expiry" && a["status"] == "resolved")
    });
    assert_eq!(resolved["incident"], alert["incident"], "{resolved}");
    let p = s.wait_profile("the renewed forecast", 60, |p| {
        forecast(p, "password_expiry")["at"].as_i64() == Some(renewed)
    });
    assert_eq!(p["state"], "fresh", "{p}");
    assert_eq!(hook.alerts().len(), 2, "{:#?}", hook.alerts());
    assert_eq!(s.stop(), 0);
}

/// The profile sets no idle TTL and the app's policy ("expire if not used for 10 days") is
/// not readable: the guardian assumes Salesforce's 30-day limit, and says so. After 11 idle
/// days the refresh token dies by the policy (the JWT fallback carries the integration); the
/// diagnosis names `refresh_token_expired_by_policy`, and the guardian learns the TTL from
/// the death (at most the 11 days between the token's last use and its death), says
/// "learned" with the evidence, and schedules the keep-alive of the next refresh token by it.
#[test]
fn the_idle_ttl_is_learned_from_a_death_by_the_idle_policy() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    set_policy(
        &org,
        json!({"refresh_token_policy": {"expire_if_unused_seconds": 10 * DAY}}),
    );
    let cfg = config(home.path(), &org, "", "");
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &[
            "--org-check-interval",
            "1000d",
            "--proxy",
            &format!("127.0.0.1:{proxy_port}"),
        ],
    );
    let proxy = s.ready["proxies"]["fake"].as_str().unwrap().to_owned();
    let p = s.wait_profile("the first keep-alive schedule", 60, |p| {
        p["keep_alive"]["plan"].is_object()
    });
    assert_eq!(p["keep_alive"]["idle_ttl_source"], "default 30 days", "{p}");
    assert_eq!(p["keep_alive"]["idle_ttl_secs"], 30 * DAY, "{p}");
    let last_use = p["keep_alive"]["plan"]["last_use"].as_i64().unwrap();
    org.advance(11 * DAY);
    let died = org.now_ms();
    // The integration calls (through the proxy, on the guardian's manager): the refresh
    // token is dead, the JWT fallback answers.
    let (code, body) = get(&format!("{proxy}/services/data/v59.0/limits"));
    assert_eq!(code, 200, "{body}");
    let p = s.wait_profile("the learned idle TTL", 120, |p| {
        p["keep_alive"]["idle_ttl_source"] == "learned"
    });
    let learned = &p["keep_alive"]["learned"];
    let ttl = p["keep_alive"]["idle_ttl_secs"].as_i64().unwrap();
    assert_eq!(learned["idle_ttl_secs"].as_i64(), Some(ttl), "{p}");
    assert_eq!(learned["last_use"].as_i64(), Some(last_use), "{p}");
    // Learned from the gap: at most the time between the last use and the observed death.
    // The guardian sees the org's time through its clock offset, measured from `Date` headers
    // of one-second resolution: its death time may read up to a second early.
    assert!(
        ttl + 1 >= (died - last_use) / 1000 && ttl <= (died - last_use) / 1000 + 3600,
        "{ttl} vs {} ({p})",
        (died - last_use) / 1000
    );
    assert!(
        learned["evidence"]
            .as_str()
            .unwrap()
            .contains("refresh_token_expired_by_policy"),
        "{p}"
    );
    assert_eq!(p["primary_lost"], "refresh_token_revoked", "{p}");
    assert_eq!(p["state"], "fresh", "the fallback carries it: {p}");

    // A person authorizes again (a new refresh token) and runs `sfkeep recover`: the next
    // keep-alive is scheduled by the learned TTL, a tenth of it before.
    let fresh_rt = {
        let url = format!("{}/tokens", org.field("admin_url"));
        let v: Value = rt().block_on(async {
            http()
                .post(url)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        v["refresh_token"].as_str().unwrap().to_owned()
    };
    let text = std::fs::read_to_string(&cfg).unwrap();
    let rt_file = text
        .lines()
        .find_map(|l| l.strip_prefix("refresh_token = { file = "))
        .and_then(|l| l.strip_suffix(" }"))
        .map(|q| q.trim_matches('"').to_owned())
        .unwrap();
    std::fs::write(&rt_file, &fresh_rt).unwrap();
    let mut c = sfkeep(home.path());
    c.arg("--config")
        .arg(&cfg)
        .args(["--profile", "fake", "recover"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let p = s.wait_profile("the keep-alive of the new refresh token", 60, |p| {
        p["keep_alive"]["plan"]["last_use"].as_i64() > Some(died)
    });
    let plan = &p["keep_alive"]["plan"];
    assert_eq!(
        plan["dies_at"].as_i64().unwrap() - plan["last_use"].as_i64().unwrap(),
        ttl * 1000,
        "{p}"
    );
    assert_eq!(p["keep_alive"]["idle_ttl_source"], "learned", "{p}");
    assert!(
        ttl * 9 / 10 < 10 * DAY,
        "due before the real 10 days: {ttl}"
    );
}

/// An org that refuses: the objects the guardian reads lose their permission, then every
/// call answers 503 with an HTML error page, then the org answers again. The guardian keeps
/// running, says in the status API what could not be checked and why, sends no alert, and
/// reads the org again when it answers.
#[test]
fn an_org_that_refuses_is_reported_not_alerted() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    let cfg = config(home.path(), &org, "", "");
    let hook = Receiver::start();
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &["--org-check-interval", "100ms", "--webhook", &hook.url()],
    );
    s.wait_profile("the first org read", 60, |p| {
        forecast(p, "approval_limit")["status"] == "count"
    });
    let user = org.field("username");
    assert_eq!(
        org.admin_put(
            &format!("/users/{user}/permissions"),
            json!({"unreadable_objects": ["OauthToken", "User", "LoginHistory"]})
        ),
        200
    );
    let p = s.wait_profile("the unreadable OauthToken", 60, |p| {
        forecast(p, "approval_limit")["status"] == "unknown"
    });
    let why = forecast(&p, "approval_limit")["why"].to_string();
    assert!(why.contains("OauthToken"), "{p}");
    // A storm of 503s with HTML pages on everything the guardian calls.
    assert_eq!(
        org.admin_post(
            "/faults",
            json!({"path_prefix": "/services", "status": 503, "count": 100_000, "html": true})
        ),
        200
    );
    let p = s.wait_profile("the unreachable org", 60, |p| {
        p["org"]["reachable"] == false
    });
    assert!(p["org"]["error"].is_string(), "{p}");
    let checks = p["checks"].as_u64().unwrap();
    s.wait_profile("more checks during the storm", 60, |p| {
        p["checks"].as_u64().unwrap() > checks + 20
    });
    assert_eq!(
        org.admin(reqwest::Method::DELETE, "/faults", json!({})),
        200
    );
    assert_eq!(
        org.admin_put(
            &format!("/users/{user}/permissions"),
            json!({"unreadable_objects": []})
        ),
        200
    );
    s.wait_profile("the org read again", 60, |p| {
        p["org"]["reachable"] == true && forecast(p, "approval_limit")["status"] == "count"
    });
    assert!(hook.alerts().is_empty(), "no alert: {:#?}", hook.alerts());
    assert_eq!(s.stop(), 0);
}

/// Clock jumps: the org's clock jumps 28 days forward at once (past the keep-alive's due
/// time), then 10 days back and forward again (a skew, nothing ages), then on. Each due
/// keep-alive is exactly one token request at the org, a jump back makes none, and no alert
/// is sent.
#[test]
fn clock_jumps_make_one_token_request_per_keep_alive_and_no_alert() {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    set_policy(
        &org,
        json!({"refresh_token_policy": {"expire_if_unused_seconds": 30 * DAY}}),
    );
    let cfg = config(home.path(), &org, "refresh_token_idle_ttl = \"30d\"", "");
    let hook = Receiver::start();
    // The org is read once, at the start (see the 120-day test).
    let s = watch(
        home.path(),
        &cfg,
        "50ms",
        &["--org-check-interval", "1000d", "--webhook", &hook.url()],
    );
    s.caught_up(org.now_ms());
    let before = org.refresh_requests();
    let refreshed = |s: &Serve| s.profile()["keep_alive"]["refreshed"].as_u64().unwrap();
    // 28 days at once: past the keep-alive (due at 27): one.
    org.advance(28 * DAY);
    s.caught_up(org.now_ms());
    s.wait_profile("the keep-alive after the jump", 60, |p| {
        p["keep_alive"]["refreshed"] == 1
    });
    assert_eq!(org.refresh_requests() - before, 1);
    // 10 days back, then forward again: nothing is due, nothing happens.
    let skew = |secs: i64| assert_eq!(org.admin_post("/clock/skew", json!({"seconds": secs})), 200);
    skew(-10 * DAY);
    let back = org.now_ms();
    s.caught_up(back);
    let checks = s.profile()["checks"].as_u64().unwrap();
    s.wait_profile("checks after the jump back", 60, |p| {
        p["checks"].as_u64().unwrap() > checks + 10
    });
    skew(10 * DAY);
    s.caught_up(org.now_ms());
    assert_eq!(refreshed(&s), 1);
    assert_eq!(
        org.refresh_requests() - before,
        1,
        "a jump back costs nothing"
    );
    // 26 more days: not due yet; 2 more: the second keep-alive.
    org.advance(26 * DAY);
    s.caught_up(org.now_ms());
    assert_eq!(refreshed(&s), 1);
    org.advance(2 * DAY);
    s.caught_up(org.now_ms());
    s.wait_profile("the second keep-alive", 60, |p| {
        p["keep_alive"]["refreshed"] == 2
    });
    assert_eq!(
        org.refresh_requests() - before,
        2,
        "one token request per keep-alive"
    );
    assert!(hook.alerts().is_empty(), "no alert: {:#?}", hook.alerts());
    let p = s.profile();
    assert!(p["incidents"].as_array().unwrap().is_empty(), "{p}");
}
