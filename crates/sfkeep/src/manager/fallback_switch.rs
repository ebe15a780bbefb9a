//! The kill switch of a fallback grant (`sfkeep logout --revoke`; README, "Logout and the kill
//! switch"): revoking the refresh token stops nothing while a fallback grant (JWT bearer,
//! client credentials) can mint a new token without a person, so the revoking logout leaves a
//! marker file ([`crate::paths::fallback_disabled`]) and every manager of the integration — the
//! CLI's, the Python wheel's — sends its token requests through a [`FallbackSwitch`], which
//! refuses the fallback grant while the marker exists. It is read on every request, so a
//! process that was already running honours it too.

use std::path::PathBuf;
use std::sync::OnceLock;

use futures_util::future::BoxFuture;

use super::source::{HttpTokenSource, TokenSource};
use crate::clock::UnixMillis;
use crate::diagnose::Cause;
use crate::error::{Error, Result};
use crate::grant::{Grant, TokenResponse};
use crate::secret::{AccessToken, ClientSecret, RefreshToken};
use crate::token::GrantKind;

/// A token source that refuses requests of one grant kind while a marker file exists, and
/// sends every other request through the manager's own [`HttpTokenSource`] (set with
/// [`FallbackSwitch::attach`] right after the manager is built, before any request).
#[derive(Debug)]
pub struct FallbackSwitch {
    inner: OnceLock<HttpTokenSource>,
    marker: PathBuf,
    blocked: GrantKind,
    what: String,
}

impl FallbackSwitch {
    /// Refuses `blocked` while `marker` exists; `what` names the integration in the refusal
    /// (a profile, say).
    pub fn new(marker: impl Into<PathBuf>, blocked: GrantKind, what: impl Into<String>) -> Self {
        FallbackSwitch {
            inner: OnceLock::new(),
            marker: marker.into(),
            blocked,
            what: what.into(),
        }
    }

    /// Sends through the manager's own endpoint (and skew-corrected clock) from now on.
    pub fn attach(&self, m: &crate::TokenManager) {
        let _ = self.inner.set(HttpTokenSource::new(m.endpoint().clone()));
    }

    /// The marker file.
    pub fn marker(&self) -> &std::path::Path {
        &self.marker
    }

    fn source(&self) -> Result<&HttpTokenSource> {
        self.inner.get().ok_or_else(|| {
            Error::Config("the token source was used before the manager was built".into())
        })
    }
}

impl TokenSource for FallbackSwitch {
    fn request<'a>(
        &'a self,
        grant: &'a Grant,
        refresh_token: Option<&'a RefreshToken>,
    ) -> BoxFuture<'a, Result<TokenResponse>> {
        Box::pin(async move {
            if grant.kind() == self.blocked && self.marker.exists() {
                return Err(Error::ReauthRequired {
                    cause: Cause::RefreshTokenRevoked,
                    detail: format!(
                        "the {} fallback grant of {} is disabled by `sfkeep logout --revoke` (marker {}); no token request was sent. `sfkeep login` or `sfkeep recover` enables it again",
                        self.blocked.as_str(),
                        self.what,
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
    ) -> BoxFuture<'a, Option<UnixMillis>> {
        Box::pin(async move {
            let s = self.source().ok()?;
            s.access_token_expiry(client_id, client_secret, access_token)
                .await
        })
    }

    fn probe_server_date(&self) -> BoxFuture<'_, bool> {
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
    ) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move {
            let s = self.source().ok()?;
            s.refresh_token_active(client_id, client_secret, refresh_token)
                .await
        })
    }
}
