//! The proxy forwards to the org's instance with the current token, heals a dead session with
//! one replay, answers SOAP login and OAuth token requests itself, and never forwards a
//! client's own credentials.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_query_heals_after_logout_with_one_token_request() {
    let env = start(30).await;
    let c = client();
    let url = format!("{}{QUERY}", env.proxy.url());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["totalSize"], 30);
    let before = org_stats(&env.info).await;
    assert_eq!(token_requests(&before), 1, "{before}");

    admin_post(
        &env.info,
        &format!("/users/{}/logout", env.info.username),
        json!({}),
    )
    .await;
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let after = org_stats(&env.info).await;
    assert_eq!(token_requests(&after), 2, "{after}");
    assert_eq!(env.proxy.stats().replays, 1);
    assert_eq!(env.proxy.stats().passthrough_401, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_never_forwarded() {
    let env = start(5).await;
    let c = client();
    // Warm up: one token, one request.
    let r = c
        .get(format!("{}{QUERY}", env.proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = org_stats(&env.info).await;
    for auth in [
        "Bearer 00Dbogus!CLIENT-SENT-TOKEN-must-never-reach-the-org",
        "OAuth 00Dbogus!x",
    ] {
        let r = c
            .get(format!("{}{QUERY}", env.proxy.url()))
            .header("authorization", auth)
            .header("x-sfdc-session", "00Dbogus!session")
            .header("cookie", "sid=00Dbogus!cookie")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the proxy's token was used, not the client's"
        );
    }
    let after = org_stats(&env.info).await;
    assert_eq!(
        after["invalid_session_responses"], before["invalid_session_responses"],
        "the org never saw the client's bogus token"
    );
    assert_eq!(token_requests(&after), token_requests(&before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_login_shim_then_soap_query_and_rest_with_the_local_session() {
    let env = start(12).await;
    let c = client();
    let login = format!(
        r#"<?xml version="1.0" encoding="utf-8" ?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{}</n1:username><n1:password>anything-on-loopback</n1:password></n1:login></env:Body></env:Envelope>"#,
        env.info.username
    );
    let r = c
        .post(format!("{}/services/Soap/u/59.0", env.proxy.url()))
        .header("content-type", "text/xml")
        .header("soapaction", "login")
        .body(login)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let session = between(&text, "<sessionId>", "</sessionId>");
    let server_url = between(&text, "<serverUrl>", "</serverUrl>");
    assert!(session.contains("!SFKEEP."), "{text}");
    assert!(
        server_url.starts_with(&format!("{}/services/Soap/u/59.0/00D", env.proxy.url())),
        "{server_url}"
    );
    assert!(text.contains("<sessionSecondsValid>"), "{text}");
    assert_eq!(
        org_stats(&env.info).await["soap_logins"],
        0,
        "never a real SOAP login"
    );

    // SOAP query through the serverUrl with the local session: rewritten to the real one.
    let query = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader><urn:sessionId>{session}</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body><urn:query><urn:queryString>SELECT Id FROM Account</urn:queryString></urn:query></soapenv:Body></soapenv:Envelope>"#
    );
    let send_query = || {
        c.post(&server_url)
            .header("content-type", "text/xml")
            .header("soapaction", "query")
            .body(query.clone())
            .send()
    };
    let r = send_query().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<size>12</size>"), "{text}");

    // The session dies; the SOAP call heals (one replay with a new SessionHeader).
    admin_post(
        &env.info,
        &format!("/users/{}/logout", env.info.username),
        json!({}),
    )
    .await;
    let r = send_query().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(env.proxy.stats().replays, 1);

    // REST with the local session as the bearer.
    let r = c
        .get(format!("{}{QUERY}", env.proxy.url()))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A SOAP logout is answered locally and never ends the proxy's real session.
    let logout = format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{session}</sessionId></SessionHeader></soapenv:Header><soapenv:Body><logout xmlns="urn:partner.soap.sforce.com"/></soapenv:Body></soapenv:Envelope>"#
    );
    let r = c.post(&server_url).body(logout).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("logoutResponse"));
    let before = token_requests(&org_stats(&env.info).await);
    let r = send_query().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(token_requests(&org_stats(&env.info).await), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_token_shim_answers_with_the_proxy_as_instance() {
    let env = start(3).await;
    let c = client();
    for form in [
        vec![
            ("grant_type", "password"),
            ("client_id", "any"),
            ("client_secret", "any"),
            ("username", env.info.username.as_str()),
            ("password", "whatever"),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", "any"),
            ("refresh_token", "placeholder"),
        ],
    ] {
        let r = c
            .post(format!("{}/services/oauth2/token", env.proxy.url()))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["instance_url"], env.proxy.url());
        assert_eq!(v["token_type"], "Bearer");
        assert!(
            v["id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/id/00D", env.proxy.url())),
            "{v}"
        );
        assert_eq!(v["issued_at"].as_str().unwrap().len(), 13);
        assert!(v["signature"].as_str().is_some());
        let t = v["access_token"].as_str().unwrap();
        assert!(t.contains("!SFKEEP."), "{v}");
        assert!(v.get("expires_in").is_none());
    }
    // An unsupported grant (a code exchange needs a browser login), a wrong username.
    let r = c
        .post(format!("{}/services/oauth2/token", env.proxy.url()))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let r = c
        .post(format!("{}/services/oauth2/token", env.proxy.url()))
        .form(&[
            ("grant_type", "password"),
            ("username", "someone@else.example"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let s = org_stats(&env.info).await;
    assert_eq!(s["token_requests"]["password"], 0, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_metrics_and_reload() {
    let env = start(1).await;
    let c = client();
    let r = c
        .get(format!("{}/healthz", env.proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["token"]["state"], "missing");

    let r = c
        .post(format!("{}/_sfkeep/reload", env.proxy.url()))
        .header(sfkeep_proxy::browser::CONTROL_HEADER, "reload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["reloaded"], true);
    let gen1 = v["generation"].as_u64().unwrap();
    let r = c
        .post(format!("{}/_sfkeep/reload", env.proxy.url()))
        .header(sfkeep_proxy::browser::CONTROL_HEADER, "reload")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["generation"].as_u64().unwrap() > gen1);

    let body = c
        .get(format!("{}/healthz", env.proxy.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["token"]["state"], "fresh");
    assert!(v["token"]["expires_in"].as_u64().unwrap() > 0);
    let token = env.manager.token().await.unwrap();
    assert!(
        !body.contains(token.access_token().expose_secret()),
        "never the token"
    );

    let m = c
        .get(format!("{}/metrics", env.proxy.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("# TYPE sfkeep_proxy_requests_total counter"),
        "{m}"
    );
    assert!(m.contains("sfkeep_proxy_reloads_total 2"), "{m}");
    assert!(m.contains("sfkeep_proxy_replays_total 0"), "{m}");
}

fn between(text: &str, a: &str, b: &str) -> String {
    let s = text
        .find(a)
        .map(|i| i + a.len())
        .unwrap_or_else(|| panic!("no {a} in {text}"));
    let e = s + text[s..].find(b).unwrap();
    text[s..e].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_rides_out_one_503_and_one_reset_but_a_post_is_never_repeated() {
    let env = start(5).await;
    let c = client();
    let url = format!("{}{QUERY}", env.proxy.url());
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    for fault in [
        json!({"path_prefix": "/services/data", "status": 503, "count": 1}),
        json!({"path_prefix": "/services/data", "reset": true, "count": 1}),
    ] {
        admin_post(&env.info, "/faults", fault).await;
        assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    }
    // A create is not safe to repeat: the 503 reaches the client.
    admin_post(
        &env.info,
        "/faults",
        json!({"path_prefix": "/services/data", "status": 503, "count": 1}),
    )
    .await;
    let before = org_stats(&env.info).await["records"]["Account"]
        .as_u64()
        .unwrap();
    let r = c
        .post(format!(
            "{}/services/data/v59.0/sobjects/Account",
            env.proxy.url()
        ))
        .json(&json!({"Name": "once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let after = org_stats(&env.info).await["records"]["Account"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before);
}
