//! The identity check on adoption (`src/manager/store_sync.rs`, "Identity"): a stored record of
//! another org or user, or with an identity URL of an unexpected shape, is neither adopted nor
//! used for its refresh token.

use std::sync::Arc;

use super::{T0, count, record, rig};
use crate::diagnose::api_error::Api;
use crate::grant::TokenResponse;
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{MemoryStore, Store};
use crate::token::TokenRecord;

const USER_A: &str = "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU";
const USER_B: &str = "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9QAAU";

fn answer_for(id_url: &str, access: &str) -> TokenResponse {
    TokenResponse {
        access_token: AccessToken::new(access),
        refresh_token: None,
        instance_url: "https://example.my.salesforce.com".into(),
        id: Some(id_url.into()),
        issued_at: Some(T0),
        scope: None,
        session_seconds_valid: None,
    }
}

fn stored(generation: u64, id_url: &str, access: &str, rt: &str) -> TokenRecord {
    TokenRecord {
        id_url: Some(id_url.into()),
        refresh_token: Some(RefreshToken::new(rt)),
        ..record(generation, access)
    }
}

async fn put(store: &MemoryStore, key: &crate::store::StoreKey, rec: &TokenRecord) {
    let expected = store.load(key).await.unwrap().map(|r| r.generation);
    store.compare_and_set(key, expected, rec).await.unwrap();
}

#[tokio::test]
async fn another_users_newer_record_is_not_adopted_and_its_refresh_token_not_sent() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store) as Arc<dyn Store>));
    r.source.then(Ok(answer_for(USER_A, "access-a1")));
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "access-a1");
    let key = r.manager.store_key().clone();
    // Another user's process writes a newer record under the same key.
    put(&store, &key, &stored(7, USER_B, "access-b", "rt-b")).await;
    assert!(r.manager.invalidate_if_current(t.generation(), Api::Rest));
    r.source.then(Ok(answer_for(USER_A, "access-a2")));
    let t2 = r.manager.token().await.unwrap();
    assert_eq!(t2.access_token().expose_secret(), "access-a2");
    let sent: Vec<_> = r
        .source
        .sent()
        .into_iter()
        .map(|s| s.refresh_token)
        .collect();
    assert_eq!(sent, [Some("rt-0".to_owned()), Some("rt-0".to_owned())]);
    assert_eq!(count(&r.events, "record.rejected"), 1);
    assert_eq!(count(&r.events, "token.adopted"), 0);
    let detail = format!("{:?}", r.events.events());
    assert!(
        detail.contains("005x00000012Q9Q") && !detail.contains("rt-b"),
        "{detail}"
    );
    // Ours replaced it in the store, above its generation.
    let now = store.load(&key).await.unwrap().unwrap();
    assert_eq!(now.access_token.expose_secret(), "access-a2");
    assert!(now.generation > 7);
}

/// An identity URL of an unexpected shape: the record is not adopted, and since it may hold
/// the rotated successor of the configured refresh token, nothing is sent either (the safe
/// branch), with a typed error that says why.
#[tokio::test]
async fn a_record_with_an_identity_url_of_unexpected_shape_is_not_adopted_and_nothing_is_sent() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store) as Arc<dyn Store>));
    let key = r.manager.store_key().clone();
    let odd = "https://login.salesforce.com/id/whoever";
    put(&store, &key, &stored(3, odd, "access-x", "rt-x")).await;
    let e = r.manager.token().await.unwrap_err();
    assert!(
        matches!(e, crate::Error::UnattributableRecord { generation: 3, .. }),
        "{e:?}"
    );
    assert!(e.is_reauth_required());
    let shown = e.to_string();
    assert!(
        shown.contains("does not end in /id/") && !shown.contains("rt-x"),
        "{shown}"
    );
    assert!(r.source.sent().is_empty(), "nothing was sent");
    assert_eq!(count(&r.events, "record.rejected"), 1);
    assert_eq!(count(&r.events, "token.adopted"), 0);
}

/// The same record holding the configured refresh token itself is no obstacle: a new token
/// is asked for with it (the record is still not adopted).
#[tokio::test]
async fn an_unattributable_record_with_the_configured_token_does_not_stop_a_refresh() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store) as Arc<dyn Store>));
    let key = r.manager.store_key().clone();
    let odd = "https://login.salesforce.com/id/whoever";
    put(&store, &key, &stored(3, odd, "access-x", "rt-0")).await;
    r.source.then(Ok(answer_for(USER_A, "access-a1")));
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "access-a1");
    assert_eq!(r.source.sent()[0].refresh_token.as_deref(), Some("rt-0"));
    assert_eq!(count(&r.events, "record.rejected"), 1);
}

#[tokio::test]
async fn the_identity_of_the_first_adopted_record_binds_later_adoptions() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store) as Arc<dyn Store>));
    let key = r.manager.store_key().clone();
    put(&store, &key, &stored(2, USER_A, "access-a", "rt-a")).await;
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "access-a");
    assert!(r.source.sent().is_empty());
    put(&store, &key, &stored(3, USER_B, "access-b", "rt-b")).await;
    assert!(r.manager.invalidate_if_current(t.generation(), Api::Rest));
    r.source.then(Ok(answer_for(USER_A, "access-a2")));
    let t2 = r.manager.token().await.unwrap();
    assert_eq!(t2.access_token().expose_secret(), "access-a2");
    // The adopted record's refresh token, never the other user's.
    assert_eq!(r.source.sent()[0].refresh_token.as_deref(), Some("rt-a"));
    // A record with no identity URL at all, once ours is known, is not adopted either.
    put(&store, &key, &record(9, "access-unknown")).await;
    assert!(r.manager.invalidate_if_current(t2.generation(), Api::Rest));
    let t3 = r.manager.token().await.unwrap();
    assert_ne!(t3.access_token().expose_secret(), "access-unknown");
    assert_eq!(count(&r.events, "record.rejected"), 2);
}

/// The key the first format gave the rig's credential (every user of the app shared it).
fn legacy_key() -> crate::store::StoreKey {
    crate::store::StoreKey::legacy_for_grant(
        "https://login.salesforce.com",
        &super::refresh_grant(),
    )
    .expect("the key of a refresh-token grant changed")
}

#[tokio::test]
async fn a_record_under_the_old_shared_key_with_another_refresh_token_stops_the_configured_one() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store) as Arc<dyn Store>));
    let old = legacy_key();
    assert_ne!(&old, r.manager.store_key());
    put(&store, &old, &stored(4, USER_B, "access-b", "rt-rotated")).await;
    let e = r.manager.token().await.unwrap_err();
    assert!(
        matches!(&e, crate::Error::LegacyStoreRecord { old_key, .. } if *old_key == old.to_string()),
        "{e:?}"
    );
    assert!(e.is_reauth_required());
    assert!(!e.to_string().contains("rt-rotated"), "{e}");
    assert!(r.source.sent().is_empty(), "nothing was sent");
    assert_eq!(count(&r.events, "token.adopted"), 0);
    // The old record is left as it was.
    let left = store.load(&old).await.unwrap().unwrap();
    assert_eq!(left.generation, 4);
}

#[tokio::test]
async fn a_record_under_the_old_shared_key_with_the_configured_token_is_no_obstacle() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| b.store(Arc::clone(&store) as Arc<dyn Store>));
    put(
        &store,
        &legacy_key(),
        &stored(4, USER_A, "access-old", "rt-0"),
    )
    .await;
    r.source.then(Ok(answer_for(USER_A, "access-a1")));
    let t = r.manager.token().await.unwrap();
    // Not adopted: a new token was asked for with the configured refresh token.
    assert_eq!(t.access_token().expose_secret(), "access-a1");
    assert_eq!(r.source.sent()[0].refresh_token.as_deref(), Some("rt-0"));
}

#[tokio::test]
async fn an_explicit_store_key_skips_the_old_shared_key() {
    let store = Arc::new(MemoryStore::new());
    let r = rig(|b| {
        b.store(Arc::clone(&store) as Arc<dyn Store>)
            .store_key(crate::store::StoreKey::from_string("mine"))
    });
    put(
        &store,
        &legacy_key(),
        &stored(4, USER_B, "access-b", "rt-b"),
    )
    .await;
    r.source.then(Ok(answer_for(USER_A, "access-a1")));
    let t = r.manager.token().await.unwrap();
    assert_eq!(t.access_token().expose_secret(), "access-a1");
}

/// `key_username` names the user in the default key of a grant that names none, as a CLI
/// profile's `username` does, so a Python or Rust process and the CLI share one record.
#[test]
fn key_username_names_the_user_in_the_default_key() {
    use crate::store::KeyIdentity;
    use crate::token::GrantKind;
    let login = "https://login.salesforce.com";
    let key = |u: Option<&str>| {
        let mut b = crate::TokenManager::builder(login).grant(super::refresh_grant());
        if let Some(u) = u {
            b = b.key_username(u);
        }
        b.build().unwrap().store_key().clone()
    };
    let rt = RefreshToken::new("rt-0");
    let cli = |u: Option<&str>| {
        KeyIdentity::new(login, GrantKind::RefreshToken)
            .client_id(Some("3MVG9client"))
            .username(u)
            .bootstrap_refresh_token(Some(&rt))
            .key()
    };
    assert_eq!(key(Some("a@x")), cli(Some("a@x")));
    assert_eq!(key(None), cli(None));
    assert_ne!(key(Some("a@x")), key(Some("b@x")));
}
