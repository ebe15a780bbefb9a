//! Not an open proxy: other hosts, absolute-form targets, CONNECT and paths outside
//! `/services/` get a 4xx and nothing reaches the org; a client key is required off loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;
use sfkeep_proxy::{BuildError, ClientKey, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_hosts_absolute_form_and_connect_are_refused_and_nothing_is_forwarded() {
    let env = start(2).await;
    let addr = env.proxy.addr();
    // Prime the token so a forward would have everything it needs.
    assert_eq!(
        client()
            .get(format!("{}{QUERY}", env.proxy.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let before = org_stats(&env.info).await;
    let org_host = env
        .info
        .instance_url
        .trim_start_matches("http://")
        .to_owned();
    let cases: Vec<(String, u16)> = vec![
        (
            format!("GET http://example.com{QUERY} HTTP/1.1\r\nHost: example.com\r\n\r\n"),
            400,
        ),
        (
            format!("GET http://{org_host}{QUERY} HTTP/1.1\r\nHost: {org_host}\r\n\r\n"),
            400,
        ),
        (
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_string(),
            405,
        ),
        (
            format!("CONNECT {org_host} HTTP/1.1\r\nHost: {org_host}\r\n\r\n"),
            405,
        ),
        (
            format!("GET {QUERY} HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
            421,
        ),
        (
            format!("GET {QUERY} HTTP/1.1\r\nHost: {org_host}.nip.io\r\n\r\n"),
            421,
        ),
        (
            format!("GET /_fake/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            404,
        ),
        (
            format!("GET /id/00D/005 HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            404,
        ),
        (
            format!("GET /services/../_fake/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            400,
        ),
        (
            format!("GET /services/%2e%2e/_fake/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            400,
        ),
        (
            format!("GET /services/data/..%2f..%2f_fake/stats HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
            400,
        ),
        (format!("OPTIONS * HTTP/1.1\r\nHost: {addr}\r\n\r\n"), 400),
        (
            format!(
                "POST /services/oauth2/introspect HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
            ),
            404,
        ),
    ];
    for (req, want) in &cases {
        let resp = raw(addr, req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(status_of(&resp), *want, "{req:?} -> {resp}");
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
        assert!(
            body.contains("errorCode") || body.contains("faultcode"),
            "{req:?}: Salesforce-shaped body: {resp}"
        );
    }
    let after = org_stats(&env.info).await;
    assert_eq!(
        after["api_requests"], before["api_requests"],
        "nothing forwarded"
    );
    assert_eq!(token_requests(&after), token_requests(&before));
    // Loopback names are fine.
    for host in [
        "localhost",
        "127.0.0.1",
        &addr.to_string(),
        &format!("localhost:{}", addr.port()),
    ] {
        let r = raw(
            addr,
            format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(status_of(&r), 200, "{host}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_is_required_off_loopback() {
    let env = start(1).await;
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let err = Proxy::builder(env.manager.clone())
        .listen(any)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ClientKeyRequired(_)), "{err}");
    // Blank, all spaces (after which nothing could authenticate: presented keys are trimmed),
    // with a space inside, or short: refused at build time.
    for bad in [
        "",
        "                    ",
        "k3y-0f-the pr0xy-with-space",
        "short-key",
    ] {
        let err = Proxy::builder(env.manager.clone())
            .listen(any)
            .client_key(Some(ClientKey::new(bad)))
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidClientKey(_)),
            "{bad:?}: {err}"
        );
    }
    assert!(format!("{:?}", ClientKey::new("hunter2")).contains("redacted"));

    let key = "k3y-0f-the-pr0xy";
    let proxy = Proxy::builder(env.manager.clone())
        .listen(any)
        .client_key(Some(ClientKey::new(key)))
        .expected_username(Some(env.info.username.clone()))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", proxy.addr().port());
    let c = client();
    let before = org_stats(&env.info).await;
    // No key, a wrong key, a key of the wrong length: 401 INVALID_SESSION_ID, nothing forwarded.
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer k3y-0f-the-pr0xyX"),
        Some("Bearer k3y-0f-the-pr0x"),
    ] {
        let mut req = c.get(format!("{url}{QUERY}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[0]["errorCode"], "INVALID_SESSION_ID");
        let r = c.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let after = org_stats(&env.info).await;
    assert_eq!(after["api_requests"], before["api_requests"]);
    // The right key.
    let r = c
        .get(format!("{url}{QUERY}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{url}/healthz"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The SOAP login shim: the password must carry the key.
    let login = |password: &str| {
        format!(
            r#"<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{}</n1:username><n1:password>{password}</n1:password></n1:login></env:Body></env:Envelope>"#,
            env.info.username
        )
    };
    let r = c
        .post(format!("{url}/services/Soap/u/59.0"))
        .body(login("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<faultcode>INVALID_LOGIN</faultcode>"),
        "{text}"
    );
    let r = c
        .post(format!("{url}/services/Soap/u/59.0"))
        .body(login(&format!("{key}SECURITYTOKEN")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let s = text.find("<sessionId>").unwrap() + 11;
    let session = &text[s..s + text[s..].find('<').unwrap()];
    // The local session then authenticates REST calls (it is not the key).
    let r = c
        .get(format!("{url}{QUERY}"))
        .bearer_auth(session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The OAuth shim: wrong credentials, then the key as the password.
    let r = c
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", env.info.username.as_str()),
            ("password", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", env.info.username.as_str()),
            ("password", key),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["instance_url"],
        format!("http://0.0.0.0:{}", proxy.addr().port())
            .replace("0.0.0.0", &proxy.addr().ip().to_string())
    );
    proxy.shutdown().await;
}
