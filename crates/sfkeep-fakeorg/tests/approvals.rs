//! The five-approvals-per-user-per-app limit (docs/guardian.md): approving the app a sixth
//! time (here through the web-server flow, as a person on a laptop would) revokes the least
//! recently used approval — its refresh token and its access tokens — and `OauthToken` stops
//! showing it.

mod common;

use common::*;
use serde_json::Value;

/// One approval of the default app through `/services/oauth2/authorize` and the code
/// exchange; returns its refresh token.
async fn approve(org: &sfkeep_fakeorg::FakeOrg) -> String {
    let i = org.ready_info();
    let redirect = "http://localhost:1717/OauthRedirect";
    let r = client()
        .get(format!("{}/services/oauth2/authorize", org.base_url()))
        .query(&[
            ("response_type", "code"),
            ("client_id", i.client_id.as_str()),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let (s, v) = token(
        org,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["refresh_token"].as_str().unwrap().to_owned()
}

async fn approvals(org: &sfkeep_fakeorg::FakeOrg) -> Vec<Value> {
    let tok = admin_token(org).await;
    let user = org.ready_info().username.clone();
    let uid = records(
        org,
        &tok,
        &format!("SELECT Id FROM User WHERE Username = '{user}'"),
    )
    .await[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    records(
        org,
        &tok,
        &format!(
            "SELECT AppName, CreatedDate, LastUsedDate, UseCount FROM OauthToken WHERE UserId = '{uid}'"
        ),
    )
    .await
}

#[tokio::test]
async fn a_sixth_approval_revokes_the_least_recently_used_one() {
    let org = org().await;
    let first = org.ready_info().refresh_token.clone();
    let mut later = Vec::new();
    for _ in 0..4 {
        post_admin(&org, "/clock/advance", serde_json::json!({"seconds": 60})).await;
        later.push(approve(&org).await);
    }
    assert_eq!(approvals(&org).await.len(), 5, "five approvals fit");
    // The first approval is used again: the least recently used is now the second.
    post_admin(&org, "/clock/advance", serde_json::json!({"seconds": 60})).await;
    assert_eq!(refresh(&org, &first).await.0, 200);
    post_admin(&org, "/clock/advance", serde_json::json!({"seconds": 60})).await;
    let sixth = approve(&org).await;
    assert_eq!(
        approvals(&org).await.len(),
        5,
        "still five: one was revoked"
    );
    let (s, e) = refresh(&org, &later[0]).await;
    assert_eq!(
        (s, err_desc(&e)),
        (400, ("invalid_grant", "expired access/refresh token")),
        "the least recently used approval is revoked"
    );
    for rt in [&first, &later[1], &later[2], &later[3], &sixth] {
        assert_eq!(refresh(&org, rt).await.0, 200, "the others live");
    }
}
