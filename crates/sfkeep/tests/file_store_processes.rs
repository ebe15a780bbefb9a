//! Two OS processes sharing one encrypted file store cause one token request per expiry.
//!
//! The test binary re-runs itself as the worker (`worker_process`, ignored unless invoked
//! with the worker environment), so no extra binary is needed.

use std::process::Command;
use std::sync::Arc;

use serde_json::json;
use sfkeep::clock::{Clock, ManualClock};
use sfkeep::secret::{ClientSecret, RefreshToken};
use sfkeep::store::{CacheKey, EncryptedFileStore};
use sfkeep::{Grant, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

const ENV_LOGIN: &str = "SFKEEP_TEST_WORKER_LOGIN_URL";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by file_store_is_shared_by_processes as a child process"]
async fn worker_process() {
    let Ok(login_url) = std::env::var(ENV_LOGIN) else {
        return;
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let offset: i64 = env("SFKEEP_TEST_WORKER_OFFSET_MS").parse().unwrap();
    let clock = ManualClock::starting_now_offset(offset);
    let store = EncryptedFileStore::new(
        env("SFKEEP_TEST_WORKER_STORE"),
        CacheKey::load(None).unwrap(),
    );
    let m = TokenManager::builder(login_url)
        .grant(Grant::refresh_token(
            env("SFKEEP_TEST_WORKER_CLIENT_ID"),
            Some(ClientSecret::new(env("SFKEEP_TEST_WORKER_CLIENT_SECRET"))),
            RefreshToken::new(env("SFKEEP_TEST_WORKER_REFRESH_TOKEN")),
        ))
        .clock(Arc::new(clock) as Arc<dyn Clock>)
        .store(Arc::new(store))
        .introspect(false)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.token().await.map(|t| t.generation()) })
        })
        .collect();
    for t in tasks {
        let generation = t.await.unwrap().expect("the worker gets a token");
        println!("WORKER-GENERATION {generation}");
    }
}

fn spawn_workers(org: &FakeOrg, store: &std::path::Path, key: &str, offset_ms: i64) -> Vec<u64> {
    let info = org.ready_info();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "worker_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ENV_LOGIN, &info.login_url)
                .env("SFKEEP_TEST_WORKER_OFFSET_MS", offset_ms.to_string())
                .env("SFKEEP_TEST_WORKER_STORE", store)
                .env("SFKEEP_TEST_WORKER_CLIENT_ID", &info.client_id)
                .env("SFKEEP_TEST_WORKER_CLIENT_SECRET", &info.client_secret)
                .env("SFKEEP_TEST_WORKER_REFRESH_TOKEN", &info.refresh_token)
                .env("SFKEEP_CACHE_KEY", key)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut generations = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        generations.extend(
            stdout
                .lines()
                .filter_map(|l| l.split("WORKER-GENERATION ").nth(1))
                .map(|g| g.trim().parse::<u64>().unwrap()),
        );
    }
    assert_eq!(generations.len(), 100, "each worker reported 50 tokens");
    generations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_is_shared_by_processes_one_request_per_expiry() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(10))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tokens.enc");
    let key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(rand_bytes())
    };
    let http = reqwest::Client::new();
    let stats = || async {
        let v: serde_json::Value = http
            .get(format!("{}/stats", org.ready_info().admin_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token_requests"]["refresh_token"].as_u64().unwrap()
    };

    // Both processes start with an empty store: one token request between them.
    let gens = spawn_workers(&org, &store, &key, 0);
    assert!(gens.iter().all(|g| *g == 1), "{gens:?}");
    assert_eq!(stats().await, 1);

    // Three hours later (on both clocks) the stored token is expired: again one request.
    http.post(format!("{}/clock/advance", org.ready_info().admin_url))
        .json(&json!({"seconds": 3 * 3600}))
        .send()
        .await
        .unwrap();
    let gens = spawn_workers(&org, &store, &key, 3 * 3600 * 1000);
    assert!(gens.iter().all(|g| *g == 2), "{gens:?}");
    assert_eq!(stats().await, 2);
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (fastrand::u8(..)).wrapping_add(i as u8);
    }
    b
}
