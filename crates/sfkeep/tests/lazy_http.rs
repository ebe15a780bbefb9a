//! A manager serving a fresh stored token builds no HTTP client and touches no network
//! (issue 19 item 4): its login URL here is a loopback port nothing listens on, so any
//! connection would fail, and the endpoint says whether its client was ever built.

use std::sync::Arc;
use std::time::Duration;

use sfkeep::clock::{Clock, SystemClock};
use sfkeep::diagnose::api_error::Api;
use sfkeep::secret::{AccessToken, RefreshToken};
use sfkeep::store::{MemoryStore, Store};
use sfkeep::token::{ExpirySource, GrantKind, TokenRecord};
use sfkeep::{Grant, TokenManager};

/// A loopback address with no listener: bound, then released.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_fresh_stored_token_is_served_without_building_an_http_client() {
    let store = Arc::new(MemoryStore::new());
    let m = TokenManager::builder(closed_url())
        .grant(Grant::refresh_token(
            "3MVG9client",
            None,
            RefreshToken::new("rt-0"),
        ))
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .without_tracing_sink()
        .build()
        .unwrap();
    assert!(
        !m.endpoint().http_is_built(),
        "building the manager built a client"
    );

    let now = SystemClock.now();
    let rec = TokenRecord {
        access_token: AccessToken::new("access-stored"),
        refresh_token: Some(RefreshToken::new("rt-0")),
        instance_url: "https://example.my.salesforce.com".into(),
        id_url: Some(
            "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU".into(),
        ),
        scope: None,
        issued_at: now,
        expires_at: now.plus(Duration::from_secs(7200)),
        refresh_at: now.plus(Duration::from_secs(6300)),
        expiry_source: ExpirySource::Configured,
        generation: 4,
        grant: GrantKind::RefreshToken,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    };
    store
        .compare_and_set(m.store_key(), None, &rec)
        .await
        .unwrap();

    let t = m.token().await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "access-stored");
    assert_eq!(t.generation(), 4);
    assert!(
        !m.endpoint().http_is_built(),
        "serving a fresh stored token built a client"
    );

    // The first token request does build it (and fails: nothing listens there).
    assert!(m.invalidate_if_current(4, Api::Rest));
    let e = m.token().await.unwrap_err();
    assert!(m.endpoint().http_is_built(), "{e}");
}
