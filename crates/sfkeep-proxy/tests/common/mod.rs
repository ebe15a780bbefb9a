//! Shared helpers: a simulated org, a proxy in front of it, raw sockets, the org's counters.
#![allow(dead_code)]

#[path = "../../../sfkeep-fakeorg/tests/common/node.rs"]
pub mod node;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use sfkeep::secret::{ClientSecret, PrivateKeyPem, RefreshToken};
use sfkeep::{Grant, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig, ReadyInfo};
use sfkeep_proxy::{ClientKey, Proxy, ProxyBuilder, ProxyHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Env {
    pub org: FakeOrg,
    pub info: ReadyInfo,
    pub manager: TokenManager,
    pub proxy: ProxyHandle,
}

/// The proxy's manager: refresh-token grant, JWT bearer fallback (what a profile configures).
pub fn manager(info: &ReadyInfo) -> TokenManager {
    let key = std::fs::read_to_string(&info.jwt_key_file).expect("jwt key");
    TokenManager::builder(info.login_url.clone())
        .grant(Grant::refresh_token(
            info.client_id.clone(),
            Some(ClientSecret::new(info.client_secret.clone())),
            RefreshToken::new(info.refresh_token.clone()),
        ))
        .fallback_grant(Grant::jwt_bearer(
            info.client_id.clone(),
            info.username.clone(),
            PrivateKeyPem::new(key),
        ))
        .build()
        .expect("manager builds")
}

pub async fn start(accounts: usize) -> Env {
    start_with(accounts, |b| b).await
}

pub async fn start_with(accounts: usize, f: impl FnOnce(ProxyBuilder) -> ProxyBuilder) -> Env {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(accounts))
        .await
        .expect("org starts");
    let info = org.ready_info().clone();
    let manager = manager(&info);
    let builder = Proxy::builder(manager.clone()).expected_username(Some(info.username.clone()));
    let proxy = f(builder)
        .build()
        .expect("proxy builds")
        .spawn()
        .await
        .expect("proxy binds");
    Env {
        org,
        info,
        manager,
        proxy,
    }
}

pub fn with_key(key: &str) -> impl FnOnce(ProxyBuilder) -> ProxyBuilder + '_ {
    move |b| b.client_key(Some(ClientKey::new(key)))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn org_stats(info: &ReadyInfo) -> Value {
    client()
        .get(format!("{}/stats", info.admin_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub fn token_requests(stats: &Value) -> u64 {
    stats["token_requests"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

pub async fn admin_post(info: &ReadyInfo, path: &str, body: Value) {
    let r = client()
        .post(format!("{}{path}", info.admin_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "admin {path}: {}", r.status());
}

/// Sends raw bytes and reads until the server closes (or `deadline` passes): the whole reply.
pub async fn raw(addr: SocketAddr, request: &[u8], deadline: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let end = Instant::now() + deadline;
    let mut buf = [0u8; 8192];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                // A complete reply with Content-Length: stop reading.
                if complete(&out) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete(resp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(resp);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..head_end].to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(n) => resp.len() >= head_end + 4 + n,
        None => false,
    }
}

pub fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls `f` until it is true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const QUERY: &str = "/services/data/v59.0/query?q=SELECT+Id,Name+FROM+Account";

/// A manager whose store already holds a fresh token for `instance_url` (a test upstream),
/// so no token request is ever made. Its grant points at a login URL that refuses connections.
pub async fn seeded_manager(instance_url: &str) -> TokenManager {
    use std::sync::Arc;

    use sfkeep::clock::UnixMillis;
    use sfkeep::secret::AccessToken;
    use sfkeep::store::{MemoryStore, Store, StoreKey};
    use sfkeep::token::{ExpirySource, GrantKind, TokenRecord};

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let store = Arc::new(MemoryStore::new());
    let key = StoreKey::from_string("seeded");
    let record = TokenRecord {
        access_token: AccessToken::new("00Dseeded!upstream-token"),
        refresh_token: None,
        instance_url: instance_url.to_owned(),
        id_url: None,
        scope: None,
        issued_at: UnixMillis(now),
        expires_at: UnixMillis(now + 7_200_000),
        refresh_at: UnixMillis(now + 3_600_000),
        expiry_source: ExpirySource::Configured,
        generation: 1,
        grant: GrantKind::ClientCredentials,
        refused_refresh_token: None,
        intent: None,
        server_offset_ms: 0,
    };
    store.compare_and_set(&key, None, &record).await.unwrap();
    TokenManager::builder("http://127.0.0.1:9")
        .grant(Grant::client_credentials(
            "unused",
            ClientSecret::new("unused"),
        ))
        .store(store)
        .store_key(key)
        .introspect(false)
        .build()
        .unwrap()
}

/// A running proxy in front of `instance_url` with a seeded token ([`seeded_manager`]),
/// configured by `f`.
pub async fn seeded_proxy(
    instance_url: &str,
    f: impl FnOnce(ProxyBuilder) -> ProxyBuilder,
) -> ProxyHandle {
    let manager = seeded_manager(instance_url).await;
    f(Proxy::builder(manager))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap()
}
