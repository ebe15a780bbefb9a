//! The `/healthz` verdict (`sfkeep_proxy::health::check`) on a newer generation in the store:
//! fine while this process can adopt it at its next token use, not ok when it cannot (expired).
//! The store and org failures are tested through the real binaries (crates/sfkeep-cli/tests/healthz.rs).

use std::sync::Arc;

use sfkeep::clock::UnixMillis;
use sfkeep::secret::{AccessToken, ClientSecret};
use sfkeep::store::{MemoryStore, Store, StoreKey};
use sfkeep::token::{ExpirySource, GrantKind, TokenRecord};
use sfkeep::{Grant, TokenManager};
use sfkeep_proxy::health::check;

fn record(generation: u64, now: i64, expires_in_ms: i64) -> TokenRecord {
    TokenRecord {
        access_token: AccessToken::new(format!("00Dhealth!token-{generation}")),
        refresh_token: None,
        instance_url: "http://127.0.0.1:9".to_owned(),
        id_url: None,
        scope: None,
        issued_at: UnixMillis(now - 1_000),
        expires_at: UnixMillis(now + expires_in_ms),
        refresh_at: UnixMillis(now + expires_in_ms / 2),
        expiry_source: ExpirySource::Configured,
        generation,
        grant: GrantKind::ClientCredentials,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    }
}

#[tokio::test]
async fn a_newer_generation_is_fine_when_adoptable_and_not_when_expired() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let store = Arc::new(MemoryStore::new());
    let key = StoreKey::from_string("health");
    store
        .compare_and_set(&key, None, &record(1, now, 7_200_000))
        .await
        .unwrap();
    let m = TokenManager::builder("http://127.0.0.1:9")
        .grant(Grant::client_credentials(
            "unused",
            ClientSecret::new("unused"),
        ))
        .store(Arc::clone(&store) as Arc<dyn Store>)
        .store_key(key.clone())
        .introspect(false)
        .build()
        .unwrap();
    assert_eq!(m.token().await.unwrap().generation(), 1);
    let h = check(&m, Some(store.as_ref()), None).await;
    assert!(h.ok, "{}", h.body);

    // Generation 5, expired: this process serves 1 and cannot adopt it.
    store
        .compare_and_set(&key, Some(1), &record(5, now, -60_000))
        .await
        .unwrap();
    let h = check(&m, Some(store.as_ref()), None).await;
    assert!(!h.ok);
    assert_eq!(h.body["problems"][0]["check"], "store_ahead", "{}", h.body);
    assert_eq!(h.body["store"]["generation"], 5);
    assert!(!h.body.to_string().contains("00Dhealth"), "never a token");

    // Generation 6, valid: adopted at the next token use, so fine meanwhile.
    store
        .compare_and_set(&key, Some(5), &record(6, now, 7_200_000))
        .await
        .unwrap();
    let h = check(&m, Some(store.as_ref()), None).await;
    assert!(h.ok, "{}", h.body);

    // The last API call failed in transport.
    let h = check(&m, Some(store.as_ref()), Some("no answer".to_owned())).await;
    assert!(!h.ok);
    assert_eq!(h.body["problems"][0]["check"], "org_unreachable");
}
