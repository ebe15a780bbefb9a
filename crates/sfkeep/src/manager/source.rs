//! The seam between the manager and the server: where token responses come from.
//!
//! The manager decides *whether* and *with what* to ask (single-flight, cooldown, budget,
//! store synchronisation, rotation); a [`TokenSource`] only asks. The default,
//! [`HttpTokenSource`], sends each request to the login host's token endpoint. Tests put a
//! scripted source here to drive the manager's decision tables in-process on a manual clock.

use std::fmt;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::clock::UnixMillis;
use crate::error::Result;
use crate::grant::introspect::{self, Introspection};
use crate::grant::{Grant, TokenEndpoint, TokenResponse};
use crate::secret::{AccessToken, ClientSecret, RefreshToken};

/// Where the manager's token requests go.
///
/// Contract:
/// - [`TokenSource::request`] sends exactly one token request for `grant` (none when it fails
///   before sending) and returns the server's answer: a response, or an error whose
///   [`cause`](crate::Error::cause) classifies the server's words. For a refresh-token grant it
///   presents `refresh_token` when given, else the grant's configured one. It never retries:
///   a retry of a rotating refresh could present a refresh token the server already rotated.
/// - [`TokenSource::access_token_expiry`] consumes nothing: it may be called for any token,
///   any number of times, and answers `None` whenever the expiry is not known.
/// - Both may be called concurrently; the manager calls `request` at most once at a time per
///   manager.
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// Sends one token request for `grant`.
    fn request<'a>(
        &'a self,
        grant: &'a Grant,
        refresh_token: Option<&'a RefreshToken>,
    ) -> BoxFuture<'a, Result<TokenResponse>>;

    /// When `access_token` expires (server clock), asked as the app `client_id`; `None` when
    /// unknown (not allowed to ask, inactive, not sent).
    fn access_token_expiry<'a>(
        &'a self,
        client_id: &'a str,
        client_secret: &'a ClientSecret,
        access_token: &'a AccessToken,
    ) -> BoxFuture<'a, Option<UnixMillis>>;

    /// Measures the server's clock (a `Date` header) with a request that consumes nothing,
    /// updating the manager's [`crate::clock::ServerClock`]; returns whether it did. The
    /// manager asks before it judges a stored record issued in the local future. Default:
    /// measures nothing.
    fn probe_server_date(&self) -> BoxFuture<'_, bool> {
        async { false }.boxed()
    }

    /// Whether `refresh_token` is still the live one (not rotated out, not revoked), asked as
    /// the app `client_id` without consuming it. `Some(true)` only when the server says so;
    /// `None` when it cannot tell (not allowed to ask, no answer). The default cannot tell.
    fn refresh_token_active<'a>(
        &'a self,
        client_id: &'a str,
        client_secret: &'a ClientSecret,
        refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Option<bool>> {
        let _ = (client_id, client_secret, refresh_token);
        async { None }.boxed()
    }
}

/// The default [`TokenSource`]: HTTP to the login host's `/services/oauth2/token` (and
/// `/services/oauth2/introspect` for expiries).
#[derive(Clone, Debug)]
pub struct HttpTokenSource {
    endpoint: TokenEndpoint,
}

impl HttpTokenSource {
    /// A source sending to `endpoint`.
    pub fn new(endpoint: TokenEndpoint) -> Self {
        Self { endpoint }
    }
}

impl TokenSource for HttpTokenSource {
    fn request<'a>(
        &'a self,
        grant: &'a Grant,
        refresh_token: Option<&'a RefreshToken>,
    ) -> BoxFuture<'a, Result<TokenResponse>> {
        grant.request(&self.endpoint, refresh_token).boxed()
    }

    fn access_token_expiry<'a>(
        &'a self,
        client_id: &'a str,
        client_secret: &'a ClientSecret,
        access_token: &'a AccessToken,
    ) -> BoxFuture<'a, Option<UnixMillis>> {
        async move {
            match introspect::access_token(&self.endpoint, client_id, client_secret, access_token)
                .await
            {
                Ok(Introspection::Active { exp }) => exp,
                _ => None,
            }
        }
        .boxed()
    }

    fn probe_server_date(&self) -> BoxFuture<'_, bool> {
        self.endpoint.probe_date().boxed()
    }

    fn refresh_token_active<'a>(
        &'a self,
        client_id: &'a str,
        client_secret: &'a ClientSecret,
        refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Option<bool>> {
        async move {
            let endpoint = &self.endpoint;
            match introspect::refresh_token(endpoint, client_id, client_secret, refresh_token).await
            {
                Ok(Introspection::Active { .. }) => Some(true),
                Ok(Introspection::Inactive) => Some(false),
                Err(_) => None,
            }
        }
        .boxed()
    }
}
