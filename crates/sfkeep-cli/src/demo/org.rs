//! The demo's simulated org and the admin calls the chaos schedule makes.

use std::time::Duration;

use serde_json::{Value, json};
use sfkeep::Grant;
use sfkeep::secret::{ClientSecret, PrivateKeyPem, RefreshToken};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig, ReadyInfo};

use crate::error::{CliError, CliResult};

/// A running org plus an admin client.
pub struct DemoOrg {
    org: FakeOrg,
    http: reqwest::Client,
    /// Accounts changed between two deaths.
    pub changes: usize,
    /// The org's session timeout.
    pub session_timeout_secs: u64,
}

fn admin_err(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::unexpected(format!(
        "the simulated org's admin call `{what}` failed: {e}"
    ))
}

impl DemoOrg {
    /// Starts an org with `accounts` Accounts and a 2-hour session timeout.
    pub async fn start(accounts: usize, changes: usize) -> CliResult<Self> {
        let session_timeout_secs = 7200;
        let org = FakeOrg::start(
            FakeOrgConfig::default()
                .accounts(accounts)
                .session_timeout(Duration::from_secs(session_timeout_secs)),
        )
        .await
        .map_err(|e| CliError::unexpected(format!("cannot start the simulated org: {e}")))?;
        Ok(Self {
            org,
            http: reqwest::Client::new(),
            changes,
            session_timeout_secs,
        })
    }

    /// The org's credentials and URLs.
    pub fn info(&self) -> &ReadyInfo {
        self.org.ready_info()
    }

    /// The refresh-token grant the integration was authorized with.
    pub fn refresh_grant(&self) -> CliResult<Grant> {
        let i = self.info();
        Ok(Grant::refresh_token(
            i.client_id.clone(),
            Some(ClientSecret::new(i.client_secret.clone())),
            RefreshToken::new(i.refresh_token.clone()),
        ))
    }

    /// The JWT bearer grant, the fallback when the refresh token is revoked.
    pub fn jwt_grant(&self) -> CliResult<Grant> {
        let i = self.info();
        let pem = std::fs::read_to_string(&i.jwt_key_file).map_err(|e| {
            CliError::unexpected(format!("cannot read {}: {e}", i.jwt_key_file.display()))
        })?;
        Ok(Grant::jwt_bearer(
            i.client_id.clone(),
            i.username.clone(),
            PrivateKeyPem::new(pem),
        ))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> CliResult<Value> {
        let url = format!("{}{}", self.info().admin_url, path);
        let mut req = self.http.request(method, &url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| admin_err(path, e))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(admin_err(path, format!("HTTP {status}: {v}")));
        }
        Ok(v)
    }

    /// `GET /_fake/stats`.
    pub async fn stats(&self) -> CliResult<Value> {
        self.call(reqwest::Method::GET, "/stats", Value::Null).await
    }

    /// Moves the org's clock.
    pub async fn advance(&self, secs: u64) -> CliResult<()> {
        self.call(
            reqwest::Method::POST,
            "/clock/advance",
            json!({"seconds": secs}),
        )
        .await
        .map(drop)
    }

    /// Changes `n` accounts.
    pub async fn touch(&self, n: usize) -> CliResult<()> {
        self.call(
            reqwest::Method::POST,
            "/records/Account/touch",
            json!({"count": n}),
        )
        .await
        .map(drop)
    }

    fn user_path(&self, action: &str) -> String {
        format!("/users/{}/{action}", self.info().username)
    }

    /// The user logs out elsewhere.
    pub async fn logout(&self) -> CliResult<()> {
        self.call(reqwest::Method::POST, &self.user_path("logout"), json!({}))
            .await
            .map(drop)
    }

    /// The user's password changes.
    pub async fn change_password(&self) -> CliResult<()> {
        let p = format!("Demo-{}", fastrand_suffix());
        self.call(
            reqwest::Method::POST,
            &self.user_path("password"),
            json!({"password": p}),
        )
        .await
        .map(drop)
    }

    /// An admin freezes the user.
    pub async fn freeze(&self) -> CliResult<()> {
        self.call(reqwest::Method::POST, &self.user_path("freeze"), json!({}))
            .await
            .map(drop)
    }

    /// An admin unfreezes the user.
    pub async fn unfreeze(&self) -> CliResult<()> {
        self.call(
            reqwest::Method::POST,
            &self.user_path("unfreeze"),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// An admin revokes the connected app's tokens.
    pub async fn revoke_app(&self) -> CliResult<()> {
        let path = format!("/apps/{}/revoke", self.info().client_id);
        self.call(reqwest::Method::POST, &path, json!({}))
            .await
            .map(drop)
    }

    /// Login IP ranges and session IP locking.
    pub async fn network(&self, body: Value) -> CliResult<()> {
        self.call(reqwest::Method::PUT, "/network", body)
            .await
            .map(drop)
    }

    /// Injects a fault.
    pub async fn fault(&self, body: Value) -> CliResult<()> {
        self.call(reqwest::Method::POST, "/faults", body)
            .await
            .map(drop)
    }
}

fn fastrand_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    format!("{n:08x}")
}
