//! One test per row of the admin table (docs/fake-org.md#the-admin-api): each drives the call over HTTP and observes
//! what a Salesforce client would see.

mod common;

use serde_json::{Value, json};
use sfkeep_fakeorg::FakeOrgConfig;

use common::*;

const USER: &str = "integration@example.com";

#[tokio::test]
async fn clock_advance_times_out_sessions_with_sliding_extension() {
    let org = org().await;
    let tok = access_token(&org).await;
    // Used after more than half the timeout: the session is extended from then.
    post_admin(&org, "/clock/advance", json!({"seconds": 3700})).await;
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
    post_admin(&org, "/clock/advance", json!({"seconds": 3700})).await;
    assert_eq!(
        api_get(&org, &tok, QUERY_IDS).await.0,
        200,
        "extended at 3700 s, alive at 7400 s"
    );
    // Idle for the whole timeout: dead.
    post_admin(&org, "/clock/advance", json!({"seconds": 7200})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    assert_eq!(stats(&org).await["invalid_session_responses"], 1);
    // The refresh token still works.
    let _ = access_token(&org).await;
}

#[tokio::test]
async fn logout_ends_sessions_but_not_refresh_tokens() {
    let org = org().await;
    let tok = access_token(&org).await;
    let i = org.ready_info();
    let (_, soap) = soap_post(
        &org,
        soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
    )
    .await;
    let sid = xml_text(&soap, "sessionId").unwrap();
    assert_eq!(
        api_get(&org, &sid, QUERY_IDS).await.0,
        200,
        "a SOAP session is a REST bearer token too"
    );
    post_admin(&org, &format!("/users/{USER}/logout"), json!({})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, h, b) = api_get(&org, &sid, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, xml) = soap_post(&org, soap_call_body(&sid, "<getUserInfo/>")).await;
    assert_eq!(s, 500);
    assert!(xml.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"));
    let fresh = access_token(&org).await;
    assert_eq!(api_get(&org, &fresh, QUERY_IDS).await.0, 200);
}

#[tokio::test]
async fn password_change_ends_sessions_and_old_password() {
    let org = org().await;
    let i = org.ready_info();
    let tok = access_token(&org).await;
    post_admin(
        &org,
        &format!("/users/{USER}/password"),
        json!({"password": "N3w-password"}),
    )
    .await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, e) = password_grant(&org).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "authentication failure"))
    );
    let (s, _) = soap_post(
        &org,
        soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
    )
    .await;
    assert_eq!(s, 500);
    let new_pw = format!("N3w-password{}", i.security_token);
    let (s, _) = token(
        &org,
        &[
            ("grant_type", "password"),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
            ("username", USER),
            ("password", &new_pw),
        ],
    )
    .await;
    assert_eq!(s, 200);
    // Refresh tokens survive a password change (documented choice in admin.rs).
    let tok = access_token(&org).await;
    let audit = records(&org, &tok, "SELECT Action, Display, Section, CreatedDate FROM SetupAuditTrail ORDER BY CreatedDate DESC").await;
    assert!(
        audit[0]["Display"]
            .as_str()
            .unwrap()
            .contains("Changed password")
    );
    let hist = records(
        &org,
        &tok,
        "SELECT Status, LoginType FROM LoginHistory WHERE Status = 'Invalid Password'",
    )
    .await;
    assert!(!hist.is_empty());
    let users = records(
        &org,
        &tok,
        &format!("SELECT LastPasswordChangeDate FROM User WHERE Username = '{USER}'"),
    )
    .await;
    assert!(users[0]["LastPasswordChangeDate"].is_string());
}

#[tokio::test]
async fn freeze_and_unfreeze() {
    let org = org().await;
    let tok = access_token(&org).await;
    post_admin(&org, &format!("/users/{USER}/freeze"), json!({})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, e) = refresh(&org, &org.ready_info().refresh_token).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "authentication failure"))
    );
    // No grant logs a frozen user in: a JWT bearer fallback fails the same way.
    let (s, e) = jwt(&org, USER, "https://login.salesforce.com", 60).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "authentication failure"))
    );
    post_admin(&org, &format!("/users/{USER}/unfreeze"), json!({})).await;
    let tok = access_token(&org).await;
    let hist = records(
        &org,
        &tok,
        "SELECT Status, LoginType, Application FROM LoginHistory WHERE Status = 'User Is Frozen'",
    )
    .await;
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0]["LoginType"], "Remote Access 2.0");
    let ul = records(
        &org,
        &tok,
        "SELECT IsFrozen FROM UserLogin WHERE IsFrozen = false",
    )
    .await;
    assert_eq!(ul.len(), 2);
}

#[tokio::test]
async fn deactivate_and_activate() {
    let org = org().await;
    let tok = access_token(&org).await;
    post_admin(&org, &format!("/users/{USER}/deactivate"), json!({})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, e) = refresh(&org, &org.ready_info().refresh_token).await;
    assert_eq!((s, err_desc(&e)), (400, ("invalid_grant", "inactive user")));
    let (s, e) = jwt(&org, USER, org.base_url(), 60).await;
    assert_eq!((s, err_desc(&e)), (400, ("invalid_grant", "inactive user")));
    post_admin(&org, &format!("/users/{USER}/activate"), json!({})).await;
    let tok = access_token(&org).await;
    let hist = records(
        &org,
        &tok,
        "SELECT Status FROM LoginHistory WHERE Status = 'User is Inactive'",
    )
    .await;
    assert_eq!(hist.len(), 2);
    let users = records(
        &org,
        &tok,
        &format!("SELECT IsActive FROM User WHERE Username = '{USER}'"),
    )
    .await;
    assert_eq!(users[0]["IsActive"], true);
}

#[tokio::test]
async fn app_revoke_kills_access_and_refresh_tokens() {
    let org = org().await;
    let i = org.ready_info();
    let tok = access_token(&org).await;
    post_admin(&org, &format!("/apps/{}/revoke", i.client_id), json!({})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, e) = refresh(&org, &i.refresh_token).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "expired access/refresh token"))
    );
    let tok = admin_token(&org).await;
    let rows = records(&org, &tok, "SELECT AppName, UseCount FROM OauthToken").await;
    assert!(
        rows.is_empty(),
        "revoked tokens are gone from OauthToken: {rows:?}"
    );
}

#[tokio::test]
async fn rotation_and_reuse_detection() {
    let org = org_with(
        FakeOrgConfig::default()
            .accounts(5)
            .rotate_refresh_tokens(true),
    )
    .await;
    let rt0 = org.ready_info().refresh_token.clone();
    let (s, a) = refresh(&org, &rt0).await;
    assert_eq!(s, 200);
    let rt1 = a["refresh_token"]
        .as_str()
        .expect("rotation returns a refresh token")
        .to_owned();
    assert_ne!(rt1, rt0);
    let tok1 = a["access_token"].as_str().unwrap().to_owned();
    let (s, b) = refresh(&org, &rt1).await;
    assert_eq!(s, 200);
    let rt2 = b["refresh_token"].as_str().unwrap().to_owned();
    // Reuse of rt1 (rotated out): refused, and rt2 and the family's access tokens die.
    let (s, e) = refresh(&org, &rt1).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "expired access/refresh token"))
    );
    let (s, e) = refresh(&org, &rt2).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "expired access/refresh token"))
    );
    let (s, h, body) = api_get(&org, &tok1, QUERY_IDS).await;
    assert_session_dead(s, &h, &body);
    assert_eq!(stats(&org).await["refresh_token_reuse_detected"], 1);
}

#[tokio::test]
async fn rotation_via_policy_call() {
    let org = org().await;
    let i = org.ready_info();
    put_admin(
        &org,
        &format!("/apps/{}/policy", i.client_id),
        json!({"rotate_refresh_tokens": true}),
    )
    .await;
    let (_, a) = refresh(&org, &i.refresh_token).await;
    assert!(a["refresh_token"].is_string());
}

#[tokio::test]
async fn refresh_token_policies() {
    let org = org().await;
    let i = org.ready_info();
    let policy = |p: Value| json!({"refresh_token_policy": p});
    let path = format!("/apps/{}/policy", i.client_id);
    let expired = (400, ("invalid_grant", "expired access/refresh token"));

    put_admin(&org, &path, policy(json!("immediately_expire"))).await;
    let (s, e) = refresh(&org, &i.refresh_token).await;
    assert_eq!((s, err_desc(&e)), expired);

    put_admin(&org, &path, policy(json!("valid_until_revoked"))).await;
    assert_eq!(refresh(&org, &i.refresh_token).await.0, 200);

    put_admin(
        &org,
        &path,
        policy(json!({"expire_if_unused_seconds": 100})),
    )
    .await;
    post_admin(&org, "/clock/advance", json!({"seconds": 60})).await;
    assert_eq!(refresh(&org, &i.refresh_token).await.0, 200);
    post_admin(&org, "/clock/advance", json!({"seconds": 60})).await;
    assert_eq!(
        refresh(&org, &i.refresh_token).await.0,
        200,
        "used 60 s ago"
    );
    post_admin(&org, "/clock/advance", json!({"seconds": 101})).await;
    let (s, e) = refresh(&org, &i.refresh_token).await;
    assert_eq!((s, err_desc(&e)), expired);

    // Absolute expiry counts from the original authorization (created 221 s ago).
    put_admin(&org, &path, policy(json!({"expire_after_seconds": 300}))).await;
    assert_eq!(refresh(&org, &i.refresh_token).await.0, 200);
    post_admin(&org, "/clock/advance", json!({"seconds": 80})).await;
    let (s, e) = refresh(&org, &i.refresh_token).await;
    assert_eq!((s, err_desc(&e)), expired);

    let (s, e) = admin(&org, reqwest::Method::PUT, &path, policy(json!("forever"))).await;
    assert_eq!(s, 400, "{e}");
}

#[tokio::test]
async fn app_session_timeout_overrides_the_org() {
    let org = org().await;
    let i = org.ready_info();
    put_admin(
        &org,
        &format!("/apps/{}/policy", i.client_id),
        json!({"session_timeout_seconds": 900}),
    )
    .await;
    let tok = access_token(&org).await;
    let r = client()
        .post(format!("{}/services/oauth2/introspect", org.base_url()))
        .form(&[
            ("token", tok.as_str()),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
        ])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap(), 900);
    let rows = records(
        &org,
        &tok,
        "SELECT NumSecondsValid, IsCurrent FROM AuthSession WHERE IsCurrent = true",
    )
    .await;
    assert_eq!(rows[0]["NumSecondsValid"], 900);
    post_admin(&org, "/clock/advance", json!({"seconds": 901})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
}

#[tokio::test]
async fn introspect_all_policy() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (other_id, other_secret) = other_app(&org).await;
    let introspect = || async {
        let r = client()
            .post(format!("{}/services/oauth2/introspect", org.base_url()))
            .basic_auth(&other_id, Some(&other_secret))
            .form(&[("token", tok.as_str())])
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    assert_eq!(introspect().await, json!({"active": false}));
    put_admin(
        &org,
        &format!("/apps/{other_id}/policy"),
        json!({"introspect_all": true}),
    )
    .await;
    assert_eq!(introspect().await["active"], true);
}

pub async fn jwt(org: &sfkeep_fakeorg::FakeOrg, sub: &str, aud: &str, exp_in: i64) -> (u16, Value) {
    let i = org.ready_info();
    let key = std::fs::read(&i.jwt_key_file).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"iss": i.client_id, "sub": sub, "aud": aud, "exp": now + exp_in});
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&key).unwrap(),
    )
    .unwrap();
    token(
        org,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &jwt),
        ],
    )
    .await
}

#[tokio::test]
async fn jwt_preapproval_policy() {
    let org = org().await;
    put_admin(
        &org,
        &format!("/apps/{}/policy", org.ready_info().client_id),
        json!({"jwt_preapproved": false}),
    )
    .await;
    let (s, e) = jwt(&org, USER, "https://login.salesforce.com", 60).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "user hasn't approved this consumer"))
    );
}

#[tokio::test]
async fn api_scope_policy() {
    let org = org().await;
    put_admin(
        &org,
        &format!("/apps/{}/policy", org.ready_info().client_id),
        json!({"api_scope": false}),
    )
    .await;
    let tok = admin_token(&org).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_eq!(s, 401);
    assert_eq!(
        b,
        json!([{"message": "This session is not valid for use with the REST API", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert!(h.get("www-authenticate").is_none());
}

#[tokio::test]
async fn network_lock_sessions_to_ip() {
    let org = org().await;
    let tok = access_token(&org).await; // issued to 127.0.0.1
    put_admin(&org, "/network", json!({"lock_sessions_to_ip": true})).await;
    let moved = client_from([127, 0, 0, 2]);
    let (s, h, b) = api_get_with(&moved, &org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    assert_eq!(
        api_get(&org, &tok, QUERY_IDS).await.0,
        200,
        "still valid from its own address"
    );
}

#[tokio::test]
async fn network_login_ip_ranges() {
    let org = org().await;
    let i = org.ready_info();
    put_admin(
        &org,
        "/network",
        json!({"login_ip_ranges": [["127.0.0.1", "127.0.0.1"]]}),
    )
    .await;
    let moved = client_from([127, 0, 0, 2]);
    let (s, e) = token_with(
        &moved,
        &org,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &i.refresh_token),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
        ],
    )
    .await;
    assert_eq!((s, err_desc(&e)), (400, ("invalid_grant", "ip restricted")));
    let tok = access_token(&org).await;
    let hist = records(
        &org,
        &tok,
        "SELECT SourceIp, Status FROM LoginHistory WHERE Status = 'Restricted IP'",
    )
    .await;
    assert_eq!(hist[0]["SourceIp"], "127.0.0.2");
    put_admin(&org, "/network", json!({"login_ip_ranges": null})).await;
    assert_eq!(
        token_with(
            &moved,
            &org,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &i.refresh_token),
                ("client_id", &i.client_id)
            ]
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn faults_status_count_and_clear() {
    let org = org().await;
    let tok = access_token(&org).await;
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/data", "status": 503, "count": 1}),
    )
    .await;
    let (s, _, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_eq!(
        (s, b[0]["errorCode"].as_str().unwrap()),
        (503, "SERVER_UNAVAILABLE")
    );
    assert_eq!(
        api_get(&org, &tok, QUERY_IDS).await.0,
        200,
        "count exhausted"
    );
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/data", "status": 401}),
    )
    .await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, _) = admin(&org, reqwest::Method::DELETE, "/faults", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
}

#[tokio::test]
async fn faults_reset_drops_the_connection() {
    let org = org().await;
    let tok = access_token(&org).await;
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/data", "reset": true, "count": 1}),
    )
    .await;
    let r = client()
        .get(format!("{}{QUERY_IDS}", org.base_url()))
        .bearer_auth(&tok)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection must drop");
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
}

#[tokio::test]
async fn faults_latency_makes_a_concurrent_refresh_collide() {
    let org = org().await;
    // Both requests are slowed; whichever marks the token in flight first holds it for
    // 400 ms, and the other is refused at once.
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": "/services/oauth2/token", "latency_ms": 400, "count": 2}),
    )
    .await;
    let rt = org.ready_info().refresh_token.clone();
    let ((s1, e1), (s2, e2)) = tokio::join!(refresh(&org, &rt), refresh(&org, &rt));
    let mut results = [
        (s1, err_desc(&e1).1.to_owned()),
        (s2, err_desc(&e2).1.to_owned()),
    ];
    results.sort();
    assert_eq!(results[0].0, 200);
    assert_eq!(
        results[1],
        (400, "Token request is already being processed".to_owned())
    );
    assert_eq!(
        err_desc(if s1 == 400 { &e1 } else { &e2 }).0,
        "invalid_grant"
    );
    assert_eq!(stats(&org).await["token_requests"]["refresh_token"], 2);
}

#[tokio::test]
async fn device_approve() {
    let org = org().await;
    let i = org.ready_info();
    let (_, start) = token(
        &org,
        &[
            ("response_type", "device_code"),
            ("client_id", &i.client_id),
        ],
    )
    .await;
    let (s, _) = admin(
        &org,
        reqwest::Method::POST,
        "/device/NOPE/approve",
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    post_admin(
        &org,
        &format!("/device/{}/approve", start["user_code"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let (s, v) = token(
        &org,
        &[
            ("grant_type", "device"),
            ("code", start["device_code"].as_str().unwrap()),
            ("client_id", &i.client_id),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["refresh_token"].is_string());
}

#[tokio::test]
async fn touch_changes_system_modstamp() {
    let org = org().await;
    let tok = access_token(&org).await;
    let newest = records(
        &org,
        &tok,
        "SELECT SystemModstamp FROM Account ORDER BY SystemModstamp DESC LIMIT 1",
    )
    .await;
    let mark = newest[0]["SystemModstamp"].as_str().unwrap().to_owned();
    let v = post_admin(&org, "/records/Account/touch", json!({"count": 3})).await;
    assert_eq!(v["touched"], 3);
    let changed = records(
        &org,
        &tok,
        &format!("SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > {mark}"),
    )
    .await;
    assert_eq!(changed.len(), 3);
    let mut ids: Vec<&str> = changed.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    let mut touched: Vec<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    touched.sort();
    assert_eq!(ids, touched);
}

#[tokio::test]
async fn stats_has_exactly_the_contract_keys() {
    let org = org().await;
    let _ = access_token(&org).await;
    let _ = password_grant(&org).await;
    let s = stats(&org).await;
    for k in [
        "refresh_token",
        "jwt_bearer",
        "client_credentials",
        "password",
        "authorization_code",
    ] {
        assert!(s["token_requests"][k].is_u64(), "{k}: {s}");
    }
    assert_eq!(s["token_requests"]["refresh_token"], 1);
    assert_eq!(s["token_requests"]["password"], 1);
    for k in [
        "soap_logins",
        "api_requests",
        "invalid_session_responses",
        "refresh_token_reuse_detected",
    ] {
        assert!(s[k].is_u64(), "{k}");
    }
    assert_eq!(s["records"]["Account"], 25);
}

#[tokio::test]
async fn login_rate_limit() {
    let org = org_with(
        FakeOrgConfig::default()
            .accounts(1)
            .login_rate_limit_per_hour(2),
    )
    .await;
    assert_eq!(password_grant(&org).await.0, 200);
    assert_eq!(password_grant(&org).await.0, 200);
    let (s, e) = password_grant(&org).await;
    assert_eq!((s, err_desc(&e).0), (400, "rate_limit_exceeded"));
    post_admin(&org, "/clock/advance", json!({"seconds": 3600})).await;
    let (s, v) = password_grant(&org).await;
    assert_eq!(s, 200);
    let tok = v["access_token"].as_str().unwrap();
    let hist = records(
        &org,
        tok,
        "SELECT Status FROM LoginHistory WHERE Status = 'Login Rate Exceeded'",
    )
    .await;
    assert_eq!(hist.len(), 1);
}

#[tokio::test]
async fn daily_api_limit() {
    let org = org_with(FakeOrgConfig::default().accounts(1).daily_api_limit(2)).await;
    let tok = access_token(&org).await;
    let (_, h, _) = api_get(&org, &tok, QUERY_IDS).await;
    assert_eq!(h["sforce-limit-info"], "api-usage=1/2");
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_eq!(s, 403);
    assert_eq!(
        b,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(h["sforce-limit-info"], "api-usage=2/2");
    put_admin(&org, "/limits", json!({"api_used": 0})).await;
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
}

#[tokio::test]
async fn clock_skew_moves_the_clock_but_ages_nothing() {
    let org = org().await;
    let tok = access_token(&org).await;
    let date = |h: &reqwest::header::HeaderMap| {
        let d = h["date"].to_str().unwrap().to_owned();
        let f = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        time::PrimitiveDateTime::parse(&d, &f).unwrap()
    };
    let (_, h, _) = api_get(&org, &tok, QUERY_IDS).await;
    let before = date(&h);
    // Three hours ahead: longer than the session timeout, yet the session lives on.
    post_admin(&org, "/clock/skew", json!({"seconds": 3 * 3600})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_eq!(s, 200, "{b}");
    let ahead = (date(&h) - before).whole_seconds();
    assert!((3 * 3600 - 5..=3 * 3600 + 60).contains(&ahead), "{ahead}");
    // The refresh token still works; a JWT assertion signed on the caller's clock has expired.
    let _ = access_token(&org).await;
    // Back the other way, past where it started.
    post_admin(&org, "/clock/skew", json!({"seconds": -4 * 3600})).await;
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
    // Time passing still ages sessions.
    post_admin(&org, "/clock/advance", json!({"seconds": 7300})).await;
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
    let (s, _) = admin(
        &org,
        reqwest::Method::POST,
        "/clock/skew",
        json!({"seconds": "x"}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn permissions_take_away_the_api_and_diagnosis_objects() {
    let org = org().await;
    let tok = access_token(&org).await;
    let audit = "SELECT Action FROM SetupAuditTrail";
    assert_eq!(soql(&org, &tok, audit).await.0, 200);
    put_admin(
        &org,
        &format!("/users/{USER}/permissions"),
        json!({"unreadable_objects": ["setupaudittrail", "LoginHistory"]}),
    )
    .await;
    let (s, v) = soql(&org, &tok, audit).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v[0]["errorCode"], "INVALID_TYPE", "{v}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .contains("sObject type 'SetupAuditTrail' is not supported"),
        "{v}"
    );
    assert_eq!(
        soql(&org, &tok, "SELECT Status FROM LoginHistory").await.0,
        400
    );
    assert_eq!(soql(&org, &tok, "SELECT Id FROM User").await.0, 200);

    // Without "API Enabled": tokens are issued, the API refuses them, SOAP login too.
    put_admin(
        &org,
        &format!("/users/{USER}/permissions"),
        json!({"api_enabled": false, "unreadable_objects": []}),
    )
    .await;
    let tok = access_token(&org).await;
    let (s, _, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b[0]["errorCode"], "API_DISABLED_FOR_ORG", "{b}");
    let i = org.ready_info();
    let (s, xml) = soap_post(
        &org,
        soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
    )
    .await;
    assert_eq!(s, 500);
    assert!(xml.contains("sf:API_DISABLED_FOR_ORG"), "{xml}");
    // The userinfo endpoint is not the API: it still answers.
    let r = client()
        .get(format!("{}/services/oauth2/userinfo", org.base_url()))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    put_admin(
        &org,
        &format!("/users/{USER}/permissions"),
        json!({"api_enabled": true}),
    )
    .await;
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
    let (s, v) = admin(
        &org,
        reqwest::Method::PUT,
        &format!("/users/{USER}/permissions"),
        json!({"unreadable_objects": ["Opportunity"]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
}

/// The password policy: the password expires `expire_after_seconds` after
/// `User.LastPasswordChangeDate`; then the password grant fails, a SOAP `login()` says
/// `passwordExpired` and its session may call nothing; a password change starts a new period.
#[tokio::test]
async fn password_policy_expires_the_password_and_a_change_renews_it() {
    let org = org().await;
    let i = org.ready_info();
    let day = 86_400;
    let v = put_admin(
        &org,
        "/password-policy",
        json!({"expire_after_seconds": 90 * day}),
    )
    .await;
    assert_eq!(v["expire_after_seconds"], 90 * day, "{v}");
    let user = |v: &Value| {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == USER)
            .unwrap()
            .clone()
    };
    assert_eq!(user(&v)["expired"], false, "{v}");
    assert_eq!(password_grant(&org).await.0, 200);
    let old_sid = {
        let (s, xml) = soap_post(
            &org,
            soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
        )
        .await;
        assert_eq!(s, 200, "{xml}");
        assert_eq!(xml_text(&xml, "passwordExpired").as_deref(), Some("false"));
        xml_text(&xml, "sessionId").unwrap()
    };
    // The integration user's password was changed 30 days before the org started.
    post_admin(&org, "/clock/advance", json!({"seconds": 61 * day})).await;
    let (_, v) = admin(&org, reqwest::Method::GET, "/password-policy", json!({})).await;
    assert_eq!(user(&v)["expired"], true, "{v}");
    let (s, e) = password_grant(&org).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "authentication failure")),
        "{e}"
    );
    let (s, xml) = soap_post(
        &org,
        soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
    )
    .await;
    assert_eq!(s, 200, "{xml}");
    assert_eq!(xml_text(&xml, "passwordExpired").as_deref(), Some("true"));
    let sid = xml_text(&xml, "sessionId").unwrap();
    let (s, _, b) = api_get(&org, &sid, QUERY_IDS).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(
        b[0]["errorCode"], "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
        "{b}"
    );
    let (s, xml) = soap_post(&org, soap_call_body(&sid, "<getUserInfo/>")).await;
    assert_eq!(s, 500);
    assert!(
        xml.contains("INVALID_OPERATION_WITH_EXPIRED_PASSWORD"),
        "{xml}"
    );
    // A session from before the expiry timed out long ago; OAuth tokens are unaffected.
    assert_eq!(api_get(&org, &old_sid, QUERY_IDS).await.0, 401);
    let tok = access_token(&org).await;
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 200);
    let hist = records(
        &org,
        &tok,
        "SELECT Status FROM LoginHistory WHERE Status = 'Password Expired'",
    )
    .await;
    assert_eq!(hist.len(), 1, "{hist:?}");
    // A password change moves LastPasswordChangeDate to now: a new 90 days.
    post_admin(
        &org,
        &format!("/users/{USER}/password"),
        json!({"password": "N3w-password"}),
    )
    .await;
    let (_, v) = admin(&org, reqwest::Method::GET, "/password-policy", json!({})).await;
    let u = user(&v);
    assert_eq!(u["expired"], false, "{v}");
    let now = admin(&org, reqwest::Method::GET, "/clock", json!({}))
        .await
        .1["now"]
        .clone();
    let ms = |v: &Value| {
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour][offset_minute]"
        );
        let t = time::OffsetDateTime::parse(v.as_str().unwrap(), &fmt).unwrap();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    };
    let changed = ms(&u["last_password_change"]);
    assert!((0..60_000).contains(&(ms(&now) - changed)), "{v} {now}");
    assert_eq!(ms(&u["expires_at"]) - changed, 90 * day * 1000, "{v}");
    let new_pw = format!("N3w-password{}", i.security_token);
    let (s, xml) = soap_post(&org, soap_login_body(&i.username, &new_pw)).await;
    assert_eq!(s, 200, "{xml}");
    assert_eq!(xml_text(&xml, "passwordExpired").as_deref(), Some("false"));
    let sid = xml_text(&xml, "sessionId").unwrap();
    assert_eq!(api_get(&org, &sid, QUERY_IDS).await.0, 200);
    // "Never expires" and bad input.
    put_admin(
        &org,
        "/password-policy",
        json!({"expire_after_seconds": null}),
    )
    .await;
    let (s, _) = admin(
        &org,
        reqwest::Method::PUT,
        "/password-policy",
        json!({"expire_after_seconds": -1}),
    )
    .await;
    assert_eq!(s, 400);
}
