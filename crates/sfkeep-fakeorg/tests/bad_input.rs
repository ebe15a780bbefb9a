//! Bad input gets Salesforce-shaped errors (or clear JSON on the admin API): never a panic,
//! never a framework or Rust error message on the wire.

mod common;

use serde_json::{Value, json};

use common::*;

#[tokio::test]
async fn malformed_and_json_token_bodies() {
    let org = org().await;
    for (ct, body) in [
        (
            "application/x-www-form-urlencoded",
            &b"\xff\xfe=%%%&&=="[..],
        ),
        ("application/json", &br#"{"grant_type":"password"}"#[..]),
        ("application/x-www-form-urlencoded", &b""[..]),
    ] {
        let r = client()
            .post(format!("{}/services/oauth2/token", org.base_url()))
            .header("content-type", ct)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v,
            json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        );
    }
}

#[tokio::test]
async fn unknown_grant_and_bad_clients() {
    let org = org().await;
    let i = org.ready_info();
    let (s, v) = token(&org, &[("grant_type", "magic")]).await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("unsupported_grant_type", "grant type not supported"))
    );
    let (s, v) = token(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nope"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_client_id", "client identifier invalid"))
    );
    let (s, v) = token(
        &org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &i.client_id),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_client", "invalid client credentials"))
    );
    // HTTP Basic client authentication works.
    let r = client()
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .basic_auth(&i.client_id, Some(&i.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, v) = refresh(&org, "5Aep861nonsense").await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_grant", "expired access/refresh token"))
    );
    assert!(stats(&org).await["token_errors"].as_u64().unwrap() >= 4);
}

fn sign(key_pem: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key_pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_and_misaddressed_jwts() {
    let org = org().await;
    let i = org.ready_info();
    let key = std::fs::read(&i.jwt_key_file).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |aud: &str, exp: i64| json!({"iss": i.client_id, "sub": i.username, "aud": aud, "exp": exp});
    let org = &org;
    let grant = |jwt: String| async move {
        token(
            org,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ],
        )
        .await
    };

    let good = sign(&key, &claims(org.base_url(), now + 120));
    let (s, _) = grant(good.clone()).await;
    assert_eq!(s, 200);

    // Forged: the payload changed after signing.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64.encode(serde_json::to_vec(&json!({"iss": i.client_id, "sub": "admin@example.com", "aud": org.base_url(), "exp": now + 120})).unwrap());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let (s, v) = grant(forged).await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_grant", "invalid assertion"))
    );
    let (s, v) = grant("not.a.jwt".into()).await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_grant", "invalid assertion"))
    );

    let (s, v) = grant(sign(&key, &claims(org.base_url(), now - 10))).await;
    assert_eq!((s, err_desc(&v).0), (400, "invalid_grant"));
    // Salesforce sets no upper bound on `exp`: an hour ahead, a string of digits
    // (simple-salesforce) and milliseconds (the Salesforce CLI's `Date.now() + 300`) all log in.
    let (s, v) = grant(sign(&key, &claims(org.base_url(), now + 3600))).await;
    assert_eq!(s, 200, "{v}");
    let string_exp = json!({"iss": i.client_id, "sub": i.username, "aud": org.base_url(), "exp": (now + 60).to_string()});
    let (s, v) = grant(sign(&key, &string_exp)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = grant(sign(&key, &claims(org.base_url(), now * 1000 + 300))).await;
    assert_eq!(s, 200, "{v}");
    let expired_string = json!({"iss": i.client_id, "sub": i.username, "aud": org.base_url(), "exp": (now - 10).to_string()});
    let (s, v) = grant(sign(&key, &expired_string)).await;
    assert_eq!((s, err_desc(&v).0), (400, "invalid_grant"));
    let not_a_number =
        json!({"iss": i.client_id, "sub": i.username, "aud": org.base_url(), "exp": "tomorrow"});
    let (s, v) = grant(sign(&key, &not_a_number)).await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_grant", "invalid assertion"))
    );
    let (s, v) = grant(sign(&key, &claims("https://evil.example.com", now + 60))).await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_grant", "Audience validation failed"))
    );
    let (s, _) = grant(sign(&key, &claims("https://test.salesforce.com", now + 60))).await;
    assert_eq!(s, 200);

    // A replayed jti is refused.
    let with_jti = json!({"iss": i.client_id, "sub": i.username, "aud": org.base_url(), "exp": now + 60, "jti": "once"});
    let (s, _) = grant(sign(&key, &with_jti)).await;
    assert_eq!(s, 200);
    let (s, v) = grant(sign(&key, &with_jti)).await;
    assert_eq!(
        (s, err_desc(&v)),
        (400, ("invalid_request", "jti already in use"))
    );
}

#[tokio::test]
async fn unparseable_soql_and_bad_rest_input() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (s, v) = soql(&org, &tok, "SELEKT Id FROM Account").await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (400, "MALFORMED_QUERY")
    );
    let (s, _, v) = api_get(&org, &tok, "/services/data/v59.0/query").await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (400, "MALFORMED_QUERY")
    );
    let (s, _, v) = api_get(&org, &tok, "/services/data/v59.0/query/01gBOGUS-2000").await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (400, "INVALID_QUERY_LOCATOR")
    );
    let r = client()
        .post(format!(
            "{}/services/data/v59.0/sobjects/Account",
            org.base_url()
        ))
        .bearer_auth(&tok)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["errorCode"], "JSON_PARSER_ERROR");
    let (s, _, v) = api_get(&org, &tok, "/services/data/v59.0/nothing/here").await;
    assert_eq!(
        (s, v),
        (
            404,
            json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
        )
    );
    let (s, _, v) = api_get(&org, &tok, "/no/such/path").await;
    assert_eq!((s, v[0]["errorCode"].as_str().unwrap()), (404, "NOT_FOUND"));
    let r = client()
        .get(format!("{}{QUERY_IDS}", org.base_url()))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!([{"message": "INVALID_HEADER_TYPE", "errorCode": "INVALID_AUTH_HEADER"}])
    );
    let r = client()
        .put(format!("{}/services/oauth2/token", org.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let _: Value = r.json().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let org = org().await;
    let tok = access_token(&org).await;
    let big = vec![b'a'; 11 * 1024 * 1024];
    let r = client()
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_string());
    // Chunked (no Content-Length) too.
    let stream = futures_util::stream::iter(
        (0..11).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024 * 1024])),
    );
    let r = client()
        .post(format!(
            "{}/services/data/v59.0/sobjects/Account",
            org.base_url()
        ))
        .bearer_auth(&tok)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
        let v: Value = r.json().await.unwrap();
        assert!(v[0]["errorCode"].is_string());
    }
}

#[tokio::test]
async fn chunked_token_request_works() {
    let org = org().await;
    let i = org.ready_info();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        i.refresh_token, i.client_id, i.client_secret
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        form.as_bytes().chunks(7).map(|c| Ok(c.to_vec())).collect();
    let r = client()
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn admin_api_errors_are_clear_json() {
    let org = org().await;
    let (s, v) = admin(&org, reqwest::Method::POST, "/nonsense/call", json!({})).await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (404, "unknown admin call")
    );
    let (s, v) = admin(
        &org,
        reqwest::Method::GET,
        "/users/nobody@example.com/freeze",
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (404, "unknown admin call")
    );
    let (s, v) = admin(
        &org,
        reqwest::Method::POST,
        "/users/nobody@example.com/freeze",
        json!({}),
    )
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (404, "unknown user"));
    let r = client()
        .post(format!("{}/_fake/clock/advance", org.base_url()))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid JSON body");
    let (s, _) = admin(
        &org,
        reqwest::Method::POST,
        "/clock/advance",
        json!({"seconds": "ten"}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = admin(
        &org,
        reqwest::Method::POST,
        "/faults",
        json!({"status": 503}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = admin(
        &org,
        reqwest::Method::PUT,
        "/network",
        json!({"login_ip_ranges": [["x", "y"]]}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn soap_garbage_gets_a_fault() {
    let org = org().await;
    let (s, xml) = soap_post(&org, "this is not xml".into()).await;
    assert_eq!(s, 500);
    assert!(xml.contains("<soapenv:Fault>"));
}
