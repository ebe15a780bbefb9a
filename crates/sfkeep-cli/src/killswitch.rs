//! `sfkeep logout --revoke` as a kill switch (README, "Logout and the kill switch").
//!
//! Revoking the refresh token stops nothing while a fallback grant (JWT bearer, client
//! credentials) can mint a new token without a person: a running proxy would log straight back
//! in. So the revoking logout also leaves a marker beside the audit log
//! (`sfkeep::paths::fallback_disabled`), and every manager the integration commands build
//! (`token`, `api`, `query`, `sync`, `proxy`, `serve`, `status --verify`) asks its token
//! requests through [`Guard`], which refuses the fallback grant while the marker exists — read
//! on every request, so processes that were already running honour it too. `sfkeep login` and
//! `sfkeep recover` (a person acting) remove the marker when they succeed.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::OnceLock;

use serde_json::{Value, json};
use sfkeep::diagnose::Cause;
use sfkeep::grant::{Grant, TokenResponse};
use sfkeep::manager::{HttpTokenSource, TokenSource};
use sfkeep::secret::{AccessToken, ClientSecret, RefreshToken};
use sfkeep::token::GrantKind;

use crate::config::{Profile, StoreConfig};
use crate::error::{CliError, CliResult};

type Fut<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The profile's marker file (one per stored identity).
pub fn marker(p: &Profile) -> PathBuf {
    let file = match &p.store {
        StoreConfig::File { path, .. } => Some(path.as_path()),
        StoreConfig::Memory | StoreConfig::Redis { .. } => None,
    };
    sfkeep::paths::fallback_disabled(file, &crate::store_key::store_key(p).to_string())
}

/// The grant the kill switch stops: the profile's fallback, when it has one of its own.
pub fn fallback(p: &Profile) -> Option<GrantKind> {
    match p.fallback_grant {
        Some(f) if f != p.grant => Some(f.kind()),
        _ => None,
    }
}

/// What the marker says (`{"grant", "disabled_at", "by"}`), if the switch is on.
pub fn disabled(p: &Profile) -> Option<Value> {
    let text = std::fs::read_to_string(marker(p)).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|_| json!({})))
}

/// Turns the switch on: the fallback grant is not used until `login` or `recover`. Returns the
/// grant it stopped (`None`: the profile has no fallback grant, nothing to stop).
pub fn disable(p: &Profile) -> CliResult<Option<GrantKind>> {
    let Some(kind) = fallback(p) else {
        return Ok(None);
    };
    let path = marker(p);
    let now = sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock);
    let body = json!({
        "grant": kind.as_str(),
        "disabled_at": crate::audit::iso(now.0),
        "by": "sfkeep logout --revoke",
    });
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, format!("{body}\n").as_bytes())?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| {
        CliError::store(format!(
            "the tokens of {} were revoked, but its {} fallback grant could not be disabled: cannot write {} ({e}). A running proxy or `sfkeep serve` may log in again with it; fix the directory's permissions and run `sfkeep logout --revoke` again.",
            p.describe(),
            kind.as_str(),
            path.display()
        ))
    })?;
    Ok(Some(kind))
}

/// Turns the switch off (a person logged in or recovered). Returns what the marker said, if
/// the switch was on.
pub fn enable(p: &Profile) -> Option<Value> {
    let was = disabled(p)?;
    match std::fs::remove_file(marker(p)) {
        Ok(()) => Some(was),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            crate::output::warn(&format!(
                "cannot remove {} ({e}): the fallback grant of {} stays disabled.",
                marker(p).display(),
                p.describe()
            ));
            None
        }
    }
}

/// A note for `login` and `recover` when they turned the switch off.
pub fn enabled_note(p: &Profile, was: &Value) -> String {
    format!(
        "the {} fallback grant of {} is enabled again (disabled by `sfkeep logout --revoke` at {}).",
        was["grant"].as_str().unwrap_or("fallback"),
        p.describe(),
        was["disabled_at"].as_str().unwrap_or("an unknown time")
    )
}

/// The manager's token source, refusing the fallback grant while the marker exists. The HTTP
/// source inside is the manager's own (its endpoint and skew-corrected clock), set with
/// [`Guard::attach`] right after the manager is built, before any request.
#[derive(Debug)]
pub struct Guard {
    inner: OnceLock<HttpTokenSource>,
    marker: PathBuf,
    blocked: GrantKind,
    profile: String,
}

impl Guard {
    /// A guard for `p`; `None` when the profile has no fallback grant to stop.
    pub fn for_profile(p: &Profile) -> Option<Guard> {
        Some(Guard {
            inner: OnceLock::new(),
            marker: marker(p),
            blocked: fallback(p)?,
            profile: p.describe(),
        })
    }

    /// Sends through the manager's own endpoint from now on.
    pub fn attach(&self, m: &sfkeep::TokenManager) {
        let _ = self.inner.set(HttpTokenSource::new(m.endpoint().clone()));
    }

    fn source(&self) -> sfkeep::Result<&HttpTokenSource> {
        self.inner.get().ok_or_else(|| {
            sfkeep::Error::Config("the token source was used before the manager was built".into())
        })
    }
}

impl TokenSource for Guard {
    fn request<'a>(
        &'a self,
        grant: &'a Grant,
        refresh_token: Option<&'a RefreshToken>,
    ) -> Fut<'a, sfkeep::Result<TokenResponse>> {
        Box::pin(async move {
            if grant.kind() == self.blocked && self.marker.exists() {
                return Err(sfkeep::Error::ReauthRequired {
                    cause: Cause::RefreshTokenRevoked,
                    detail: format!(
                        "the {} fallback grant of {} is disabled by `sfkeep logout --revoke` (marker {}); no token request was sent. `sfkeep login` or `sfkeep recover` enables it again",
                        self.blocked.as_str(),
                        self.profile,
                        self.marker.display()
                    ),
                });
            }
            self.source()?.request(grant, refresh_token).await
        })
    }

    fn access_token_expiry<'a>(
        &'a self,
        client_id: &'a str,
        client_secret: &'a ClientSecret,
        access_token: &'a AccessToken,
    ) -> Fut<'a, Option<sfkeep::clock::UnixMillis>> {
        Box::pin(async move {
            match self.source() {
                Ok(s) => {
                    s.access_token_expiry(client_id, client_secret, access_token)
                        .await
                }
                Err(_) => None,
            }
        })
    }

    fn probe_server_date(&self) -> Fut<'_, bool> {
        Box::pin(async move {
            match self.source() {
                Ok(s) => s.probe_server_date().await,
                Err(_) => false,
            }
        })
    }

    fn refresh_token_active<'a>(
        &'a self,
        client_id: &'a str,
        client_secret: &'a ClientSecret,
        refresh_token: &'a RefreshToken,
    ) -> Fut<'a, Option<bool>> {
        Box::pin(async move {
            match self.source() {
                Ok(s) => {
                    s.refresh_token_active(client_id, client_secret, refresh_token)
                        .await
                }
                Err(_) => None,
            }
        })
    }
}
