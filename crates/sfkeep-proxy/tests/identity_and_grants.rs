//! Issue 20, the proxy's part: the identity URL its token answers point at is served (forwarded
//! with the proxy's token to the org's identity service, for its own user only), and the
//! JWT-bearer and client-credentials grants are answered by the token shim the way the password
//! grant is — locally, with the session the proxy manages; the client's assertion or secret
//! never reaches the org.

mod common;

use base64::Engine as _;
use common::*;
use serde_json::Value;

fn unsigned_jwt(sub: &str) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&serde_json::json!({"alg": "RS256"})),
        b64(
            &serde_json::json!({"iss": "client-id", "sub": sub, "aud": "https://login.salesforce.com", "exp": "4102444800"})
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_and_client_credentials_grants_are_answered_locally_and_the_identity_url_works() {
    let env = start(1).await;
    let c = client();
    let url = env.proxy.url().to_owned();
    // The proxy logs in once; from here on the shim answers without the org.
    assert_eq!(
        c.get(format!("{url}{QUERY}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let before = org_stats(&env.info).await;
    let jwt = unsigned_jwt(&env.info.username);
    let mut ids = Vec::new();
    for form in [
        vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt.as_str()),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "the-apps-id"),
            ("client_secret", "the-apps-secret"),
        ],
    ] {
        let r = c
            .post(format!("{url}/services/oauth2/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{form:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["instance_url"], url.as_str());
        let access = v["access_token"].as_str().unwrap().to_owned();
        assert!(access.contains("!SFKEEP."), "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with(&format!("{url}/id/")), "{id}");
        ids.push((id, access));
    }
    let after = org_stats(&env.info).await;
    assert_eq!(
        token_requests(&after),
        token_requests(&before),
        "nothing forwarded to the org's token endpoint"
    );
    // A JWT for another user is refused.
    let other = unsigned_jwt("someone-else@example.com");
    let r = c
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", other.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The identity URL: forwarded with the proxy's token, for this user.
    for (id, access) in &ids {
        let r = c.get(id).bearer_auth(access).send().await.unwrap();
        assert_eq!(r.status(), 200, "{id}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["username"], env.info.username.as_str(), "{v}");
        assert!(id.ends_with(v["user_id"].as_str().unwrap()), "{v}");
    }
    // Another user's identity URL is not forwarded.
    let (id, _) = &ids[0];
    let mut parts: Vec<&str> = id.rsplitn(2, '/').collect();
    parts[0] = "005000000000000AAA";
    let foreign = format!("{}/{}", parts[1], parts[0]);
    assert_eq!(c.get(&foreign).send().await.unwrap().status(), 404);
}
