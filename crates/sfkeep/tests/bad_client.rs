//! A consumer key or secret the org does not know is the configuration's mistake: the manager
//! says so at once (not retryable, re-authentication by a person) and sends no second token
//! request for it, counted at the simulated org.

use sfkeep::diagnose::Cause;
use sfkeep::secret::{ClientSecret, PrivateKeyPem, RefreshToken};
use sfkeep::{Grant, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

async fn token_requests(org: &FakeOrg) -> u64 {
    let url = format!("{}/stats", org.ready_info().admin_url);
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    v["token_requests"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum()
}

#[tokio::test]
async fn a_wrong_client_id_or_secret_fails_once_and_is_not_retryable() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(1))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    let key = std::fs::read_to_string(&info.jwt_key_file).unwrap();
    let cases = [
        (
            Grant::jwt_bearer(
                "3MVG9-not-a-consumer-key",
                info.username.clone(),
                PrivateKeyPem::new(&key),
            ),
            Cause::InvalidClientId,
        ),
        (
            Grant::refresh_token(
                info.client_id.clone(),
                Some(ClientSecret::new("0000-not-the-secret")),
                RefreshToken::new(&info.refresh_token),
            ),
            Cause::InvalidClient,
        ),
    ];
    for (grant, want) in cases {
        let before = token_requests(&org).await;
        let m = TokenManager::builder(info.login_url.clone())
            .grant(grant)
            .without_tracing_sink()
            .build()
            .unwrap();
        let e = m.token().await.expect_err("refused");
        assert_eq!(e.cause(), Some(want), "{e}");
        assert!(!e.is_retryable(), "{want}: {e}");
        assert!(e.is_reauth_required(), "{want}: {e}");
        // Asking again does not send the typo again.
        let again = m.token().await.expect_err("still refused");
        assert_eq!(again.cause(), Some(want), "{again}");
        assert_eq!(token_requests(&org).await - before, 1, "{want}");
    }
    org.shutdown().await;
}
