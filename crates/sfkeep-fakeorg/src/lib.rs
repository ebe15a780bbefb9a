//! The simulated Salesforce org: a small org served over HTTP that looks like Salesforce on
//! the wire (shapes, status codes, headers and error texts of docs/salesforce-wire.md)
//! and reproduces every cause of session death on demand.
//!
//! Salesforce surface: `/services/oauth2/{token,authorize,introspect,revoke,userinfo}`, the
//! identity URL `/id/{orgId}/{userId}` (the token endpoint and the identity URL answer in JSON,
//! urlencoded or XML as `format` / `Accept` ask), the partner and enterprise SOAP APIs
//! `/services/Soap/{u,c}/{version}[/{orgId}]` (`login`, `getUserInfo`, `query`, `queryMore`,
//! `logout`), `/services/data/` and
//! `/services/data/vXX.X/{query,queryAll,sobjects/Account[/Id|/ExtId__c/VALUE],limits}`
//! (`query?columns=true` too), `sobjects/Account/{updated,deleted}`, `sobjects/{Object}/{id}`,
//! SObject Collections and Composite (docs/salesforce-composite.md), Bulk API 2.0 query and
//! ingest jobs and Bulk API 1.0 `/services/async/{version}/job…` (docs/salesforce-bulk.md), with
//! the diagnosis objects User, UserLogin, LoginHistory, AuthSession, OauthToken and
//! SetupAuditTrail queryable by SOQL and readable by id.
//!
//! The admin API under `/_fake` (JSON, loopback clients only) is the table of docs/fake-org.md#the-admin-api —
//! `clock/advance`, `users/{username}/{logout,password,freeze,unfreeze,deactivate,activate}`,
//! `apps/{client_id}/{revoke,policy}`, `network`, `faults`, `device/{user_code}/approve`,
//! `records/Account/touch`, `stats` — plus `GET clock|users|apps|network|faults|limits`,
//! `PUT limits` and `records/Account/commit-lag` (a write seen after a later-stamped one, as
//! on Salesforce); each call is documented at the top of `src/admin.rs`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sfkeep_fakeorg::FakeOrgError> {
//! use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};
//! let org = FakeOrg::start(FakeOrgConfig::default().accounts(50)).await?;
//! println!("{}", serde_json::to_string(org.ready_info()).unwrap());
//! org.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Handlers return `Result<_, Response>` to short-circuit with a ready-made Salesforce error;
// a response is built once per request, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod activity;
mod admin;
mod async_jobs;
mod bulk;
mod bulk_async;
mod bulk_ingest;
mod columns;
mod commits;
mod composite;
mod csvdata;
mod describe;
mod dml;
mod files;
mod formats;
mod identity;
mod ids;
mod ingest;
mod jobs;
mod oauth;
mod objects;
mod records;
mod rendered;
mod replication;
mod rest;
mod server;
mod sessions;
mod setup;
mod soap;
pub(crate) mod soapxml;
pub(crate) mod soql;
mod state;
mod versions;
mod wire;
mod xmltree;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to start a [`FakeOrg`]. Builder-style: `FakeOrgConfig::default().accounts(5000)`.
#[derive(Clone, Debug)]
pub struct FakeOrgConfig {
    listen: SocketAddr,
    accounts: usize,
    session_timeout: Duration,
    state_dir: Option<PathBuf>,
    login_rate_limit_per_hour: u32,
    daily_api_limit: u64,
    rotate_refresh_tokens: bool,
}

impl Default for FakeOrgConfig {
    fn default() -> Self {
        FakeOrgConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            accounts: 200,
            session_timeout: Duration::from_secs(2 * 60 * 60),
            state_dir: None,
            login_rate_limit_per_hour: 3600,
            daily_api_limit: 15_000,
            rotate_refresh_tokens: false,
        }
    }
}

impl FakeOrgConfig {
    /// The defaults (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }
    /// Address to listen on. Default `127.0.0.1:0` (a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// Number of generated Account records. Default 200.
    pub fn accounts(mut self, n: usize) -> Self {
        self.accounts = n;
        self
    }
    /// The org's session (inactivity) timeout. Default 2 hours.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }
    /// Directory for the key, secrets and profile file. Default: a fresh temporary
    /// directory removed when the org stops.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Logins allowed per user per hour. Default 3600 (Salesforce's limit).
    pub fn login_rate_limit_per_hour(mut self, n: u32) -> Self {
        self.login_rate_limit_per_hour = n;
        self
    }
    /// DailyApiRequests. Default 15000.
    pub fn daily_api_limit(mut self, n: u64) -> Self {
        self.daily_api_limit = n;
        self
    }
    /// Refresh Token Rotation on the default app. Default off.
    pub fn rotate_refresh_tokens(mut self, on: bool) -> Self {
        self.rotate_refresh_tokens = on;
        self
    }
}

/// Everything a client needs to use the org: the ready line `sfkeep fake-org` prints.
#[derive(Clone, Serialize)]
pub struct ReadyInfo {
    /// Login URL (token endpoint host, SOAP login host).
    pub login_url: String,
    /// Instance URL (REST and SOAP API host); the same server.
    pub instance_url: String,
    /// Base URL of the admin API.
    pub admin_url: String,
    /// Consumer key of the default connected app.
    pub client_id: String,
    /// Consumer secret of the default connected app.
    pub client_secret: String,
    /// The integration user's username.
    pub username: String,
    /// The integration user's password (without the security token).
    pub password: String,
    /// The integration user's security token.
    pub security_token: String,
    /// A valid refresh token of the integration user for the default app.
    pub refresh_token: String,
    /// PKCS#8 PEM private key whose public key is the default app's certificate.
    pub jwt_key_file: PathBuf,
    /// An sfkeep config file with a working profile named `fake`.
    pub profile_file: PathBuf,
}

impl fmt::Debug for ReadyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyInfo")
            .field("login_url", &self.login_url)
            .field("instance_url", &self.instance_url)
            .field("admin_url", &self.admin_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("security_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("jwt_key_file", &self.jwt_key_file)
            .field("profile_file", &self.profile_file)
            .finish()
    }
}

/// Why the org could not start.
#[derive(Debug, thiserror::Error)]
pub enum FakeOrgError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The state directory or a file in it could not be written.
    #[error("cannot write the org's state in {}: {source}", path.display())]
    State {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The RSA key for the JWT bearer flow could not be generated.
    #[error("cannot generate the JWT signing key")]
    Key,
}

/// A running simulated org. Dropping it or calling [`FakeOrg::shutdown`] stops the server.
pub struct FakeOrg {
    ready: ReadyInfo,
    base_url: String,
    state_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl fmt::Debug for FakeOrg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeOrg")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl FakeOrg {
    /// Binds, writes the state files and starts serving.
    pub async fn start(config: FakeOrgConfig) -> Result<FakeOrg, FakeOrgError> {
        let listener = server::bind(config.listen).map_err(|source| FakeOrgError::Bind {
            addr: config.listen,
            source,
        })?;
        let local = listener.local_addr().map_err(|source| FakeOrgError::Bind {
            addr: config.listen,
            source,
        })?;
        // A wildcard listen address is reachable on loopback; URLs must name a real host.
        let host = if local.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        } else {
            local
        };
        let base_url = format!("http://{host}");

        let (temp, state_dir) = match &config.state_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("sfkeep-fakeorg-")
                    .tempdir()
                    .map_err(|source| FakeOrgError::State {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };

        let key = tokio::task::spawn_blocking(setup::process_key)
            .await
            .ok()
            .flatten()
            .ok_or(FakeOrgError::Key)?;
        let secrets = setup::Secrets::generate();
        let session_timeout_secs = config.session_timeout.as_secs().max(1);
        let settings = setup::Settings {
            accounts: config.accounts,
            session_timeout_secs,
            login_rate_limit: config.login_rate_limit_per_hour,
            daily_api_limit: config.daily_api_limit,
            rotate_refresh_tokens: config.rotate_refresh_tokens,
        };
        let pod = format!("5g{}", ids::random_alnum(2));
        let mut inner = setup::initial_state(&pod, &secrets, &key, &settings);
        let refresh_token = setup::initial_refresh_token(&mut inner, &pod, &base_url);
        let files = setup::write_files(
            &state_dir,
            &base_url,
            &secrets,
            &key,
            &refresh_token,
            session_timeout_secs,
        )
        .map_err(|source| FakeOrgError::State {
            path: state_dir.clone(),
            source,
        })?;
        let org = Arc::new(state::Org::new(base_url.clone(), pod, inner));

        let listener = activity::CountingListener::new(listener, org.activity.clone());
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(server::app(org));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // `tap_io` is what gives a custom listener its `ConnectInfo<SocketAddr>`.
            let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulated org stopped with an error");
            }
        });

        let ready = ReadyInfo {
            login_url: base_url.clone(),
            instance_url: base_url.clone(),
            admin_url: format!("{base_url}/_fake"),
            client_id: secrets.client_id.clone(),
            client_secret: secrets.client_secret.clone(),
            username: setup::USERNAME.to_owned(),
            password: secrets.password.clone(),
            security_token: secrets.security_token.clone(),
            refresh_token,
            jwt_key_file: files.jwt_key,
            profile_file: files.profile,
        };
        Ok(FakeOrg {
            ready,
            base_url,
            state_dir,
            shutdown: Some(tx),
            task: Some(task),
            _temp: temp,
        })
    }

    /// The ready line's contents.
    pub fn ready_info(&self) -> &ReadyInfo {
        &self.ready
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The directory holding the key, secrets and profile file.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Stops accepting connections, lets requests in flight finish (up to 2 s) and stops.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for FakeOrg {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
