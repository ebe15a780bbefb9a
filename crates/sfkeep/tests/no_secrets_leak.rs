//! Runs the manager through refresh, 401 healing, rotation, revoke and re-auth failure with a
//! tracing subscriber capturing everything, then searches every log line, every error's
//! Display and Debug, and the store file's bytes for every secret value seen: zero hits.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sfkeep::clock::{Clock, ManualClock};
use sfkeep::secret::{ClientSecret, PrivateKeyPem, RefreshToken};
use sfkeep::store::{CacheKey, EncryptedFileStore, Store};
use sfkeep::{Grant, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread, so the thread-local subscriber sees the spawned refresh tasks too.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_logs_errors_or_the_store_file() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let org = FakeOrg::start(FakeOrgConfig::default().accounts(10))
        .await
        .unwrap();
    let info = org.ready_info().clone();
    let http = reqwest::Client::new();
    let admin = |path: String, body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{}{}", info.admin_url, path);
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success());
        }
    };
    http.put(format!("{}/apps/{}/policy", info.admin_url, info.client_id))
        .json(&json!({"rotate_refresh_tokens": true}))
        .send()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.enc");
    let store = Arc::new(EncryptedFileStore::new(&path, CacheKey::generate()));
    let clock = ManualClock::starting_now_offset(0);
    let pem = std::fs::read_to_string(&info.jwt_key_file).unwrap();
    let m = TokenManager::builder(info.login_url.clone())
        .grant(Grant::refresh_token(
            info.client_id.clone(),
            Some(ClientSecret::new(info.client_secret.clone())),
            RefreshToken::new(info.refresh_token.clone()),
        ))
        .fallback_grant(Grant::jwt_bearer(
            info.client_id.clone(),
            info.username.clone(),
            PrivateKeyPem::new(pem.clone()),
        ))
        .clock(Arc::new(clock.clone()) as Arc<dyn Clock>)
        .store(store.clone())
        .build()
        .unwrap();

    let mut secrets = vec![
        info.client_secret.clone(),
        info.password.clone(),
        info.security_token.clone(),
        info.refresh_token.clone(),
        pem.lines().nth(1).unwrap().to_owned(),
    ];
    let mut shown = Vec::new();
    let note = |t: &sfkeep::Token, secrets: &mut Vec<String>, shown: &mut Vec<String>| {
        secrets.push(t.access_token().expose_secret().to_owned());
        if let Some(rt) = &t.record().refresh_token {
            secrets.push(rt.expose_secret().to_owned());
        }
        shown.push(format!("{t:?}"));
    };

    let t = m.token().await.unwrap();
    note(&t, &mut secrets, &mut shown);
    // Rotation, twice.
    for _ in 0..2 {
        clock.advance(Duration::from_secs(3 * 3600));
        let t = m.token().await.unwrap();
        note(&t, &mut secrets, &mut shown);
    }
    // A 401 after logout, healed.
    admin(format!("/users/{}/logout", info.username), json!({})).await;
    m.invalidate_if_current(
        m.token().await.unwrap().generation(),
        sfkeep::diagnose::api_error::Api::Rest,
    );
    let t = m.token().await.unwrap();
    note(&t, &mut secrets, &mut shown);
    // Revoke: healed through the JWT fallback.
    admin(format!("/apps/{}/revoke", info.client_id), json!({})).await;
    m.invalidate_if_current(t.generation(), sfkeep::diagnose::api_error::Api::Rest);
    let t = m.token().await.unwrap();
    note(&t, &mut secrets, &mut shown);
    // A frozen user: the fallback fails too; the error is shown.
    admin(format!("/users/{}/freeze", info.username), json!({})).await;
    admin(format!("/apps/{}/revoke", info.client_id), json!({})).await;
    m.invalidate_if_current(t.generation(), sfkeep::diagnose::api_error::Api::Rest);
    let e = m.token().await.unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = m.token().await.unwrap_err();
    shown.push(format!("{e} {e:?}"));
    shown.push(format!("{m:?} {:?}", m.status()));
    shown.push(format!("{:?}", store.load(m.store_key()).await));

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("token.refreshed"),
        "events were logged: {logs}"
    );
    let file = std::fs::read(&path).unwrap();
    let haystacks = [
        logs,
        shown.join("\n"),
        String::from_utf8_lossy(&file).into_owned(),
    ];
    for s in &secrets {
        assert!(s.len() >= 8, "secret values are long enough to search for");
        for (i, h) in haystacks.iter().enumerate() {
            assert!(!h.contains(s.as_str()), "haystack {i} contains a secret");
        }
    }
}
