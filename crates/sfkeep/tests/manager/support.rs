//! Shared test support: a simulated org per test, admin calls, stats, and a tiny REST call
//! that heals like an integration should (the full client comes with the client module).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sfkeep::clock::{Clock, ManualClock};
use sfkeep::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};
use sfkeep::{Grant, TokenManager, TokenManagerBuilder};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig, ReadyInfo};

pub struct Org {
    pub org: FakeOrg,
    pub http: reqwest::Client,
}

impl Org {
    pub async fn start(session_timeout: Duration) -> Org {
        let org = FakeOrg::start(
            FakeOrgConfig::default()
                .accounts(50)
                .session_timeout(session_timeout),
        )
        .await
        .expect("the simulated org starts");
        Org {
            org,
            http: reqwest::Client::new(),
        }
    }

    pub fn info(&self) -> &ReadyInfo {
        self.org.ready_info()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.info().admin_url, path);
        let mut req = self.http.request(method, &url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("admin call");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin {path} failed: {status} {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.admin(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.admin(reqwest::Method::PUT, path, body).await
    }

    pub async fn advance(&self, secs: u64) {
        self.post("/clock/advance", json!({ "seconds": secs }))
            .await;
    }

    pub async fn logout(&self) {
        let u = self.info().username.clone();
        self.post(&format!("/users/{u}/logout"), json!({})).await;
    }

    pub async fn policy(&self, body: Value) {
        let c = self.info().client_id.clone();
        self.put(&format!("/apps/{c}/policy"), body).await;
    }

    pub async fn stats(&self) -> Value {
        self.admin(reqwest::Method::GET, "/stats", Value::Null)
            .await
    }

    pub async fn token_requests(&self, grant: &str) -> u64 {
        self.stats().await["token_requests"][grant]
            .as_u64()
            .unwrap()
    }

    pub fn refresh_grant(&self) -> Grant {
        let i = self.info();
        Grant::refresh_token(
            i.client_id.clone(),
            Some(ClientSecret::new(i.client_secret.clone())),
            RefreshToken::new(i.refresh_token.clone()),
        )
    }

    pub fn jwt_grant(&self) -> Grant {
        let i = self.info();
        Grant::jwt_bearer(
            i.client_id.clone(),
            i.username.clone(),
            PrivateKeyPem::new(std::fs::read_to_string(&i.jwt_key_file).unwrap()),
        )
    }

    pub fn soap_grant(&self) -> Grant {
        let i = self.info();
        Grant::soap_login(
            i.username.clone(),
            Password::new(i.password.clone()),
            "59.0",
        )
        .with_security_token(Some(SecurityToken::new(i.security_token.clone())))
    }

    pub fn manager(&self, grant: Grant, clock: &ManualClock) -> TokenManagerBuilder {
        TokenManager::builder(self.info().login_url.clone())
            .grant(grant)
            .clock(Arc::new(clock.clone()) as Arc<dyn Clock>)
    }
}

/// What an API call saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 on the first try.
    Ok,
    /// 401, then one refresh and a successful replay.
    Healed,
}

/// GET `/limits` with the manager's token; on a 401 `INVALID_SESSION_ID`, invalidate that
/// generation, get a token (one shared refresh), replay once.
pub async fn call(http: &reqwest::Client, m: &TokenManager) -> Result<Outcome, String> {
    let t = m.token().await.map_err(|e| e.to_string())?;
    let status = get_limits(http, &t).await;
    if status == 200 {
        return Ok(Outcome::Ok);
    }
    if status != 401 {
        return Err(format!("unexpected status {status}"));
    }
    m.invalidate_if_current(t.generation(), sfkeep::diagnose::api_error::Api::Rest);
    let t = m.token().await.map_err(|e| e.to_string())?;
    match get_limits(http, &t).await {
        200 => Ok(Outcome::Healed),
        s => Err(format!("replay got {s}")),
    }
}

pub async fn get_limits(http: &reqwest::Client, t: &sfkeep::Token) -> u16 {
    http.get(format!("{}/services/data/v59.0/limits", t.instance_url()))
        .bearer_auth(t.access_token().expose_secret())
        .send()
        .await
        .expect("REST call")
        .status()
        .as_u16()
}

/// Polls `f` until it is true, failing after `deadline`.
pub async fn eventually<F, Fut>(deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "condition not met within {deadline:?}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
