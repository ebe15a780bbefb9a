use std::time::Duration;

use url::Url;

use super::response::{TokenResponse, parse_token_response};
use crate::clock::ServerClock;
use crate::diagnose::token_error::{self, OAuthErrorBody};
use crate::error::{Error, Result, redacted_snippet};
use crate::http::{MAX_AUTH_BODY, check_url, date_header, read_capped};
use crate::secret::ClientSecret;

/// Token-endpoint timeout: 10 s in total, 3 s to connect (`docs/token-lifecycle.md#constants-and-why`).
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`TOKEN_REQUEST_TIMEOUT`].
pub const TOKEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How the client authenticates to the token endpoint.
#[derive(Clone, Copy, Debug)]
pub enum ClientAuth<'a> {
    /// `client_id` (and `client_secret`, if any) in the form body.
    Body {
        /// Consumer key.
        client_id: &'a str,
        /// Consumer secret.
        client_secret: Option<&'a ClientSecret>,
    },
    /// Nothing (the assertion or the form carries the identity).
    None,
}

/// A response as received: status, capped body, and when it arrived.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The login host's OAuth endpoints, with the HTTP client and the skew-corrected clock.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    login_url: Url,
    http: reqwest::Client,
    clock: ServerClock,
}

impl TokenEndpoint {
    /// An endpoint for `login_url` (https, or http to loopback only).
    pub fn new(login_url: &str, clock: ServerClock) -> Result<Self> {
        let http = crate::http::build_client(crate::http::ClientOptions::new(
            TOKEN_REQUEST_TIMEOUT,
            TOKEN_CONNECT_TIMEOUT,
        ))?;
        Self::with_client(login_url, clock, http)
    }

    /// An endpoint for `login_url` over `http`, without building a default client first
    /// (building one loads the system's root certificates, ~10 ms).
    pub fn with_client(login_url: &str, clock: ServerClock, http: reqwest::Client) -> Result<Self> {
        let login_url = check_url("login_url", login_url)?;
        Ok(Self {
            login_url,
            http,
            clock,
        })
    }

    /// The login URL.
    pub fn login_url(&self) -> &Url {
        &self.login_url
    }

    /// The skew-corrected clock this endpoint updates from `Date` headers.
    pub fn clock(&self) -> &ServerClock {
        &self.clock
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `login_url` joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.login_url.as_str().trim_end_matches('/'), path)
    }

    /// Asks the login host for its time: `GET /services/data/` (the list of API versions: no
    /// session, nothing consumed, nothing counted against a limit) for its `Date` header.
    /// Returns whether the clock took a measurement from it.
    pub async fn probe_date(&self) -> bool {
        let url = self.url("/services/data/");
        let Ok(resp) = self.http.get(&url).send().await else {
            return false;
        };
        let received_at = self.clock.local().now();
        match date_header(&resp) {
            Some(date) => self.clock.observe_date_header(&date, received_at).is_some(),
            None => false,
        }
    }

    /// POSTs a form to `path` and returns the status and the capped body. Updates the clock
    /// offset from the `Date` header.
    pub(crate) async fn post_form(
        &self,
        path: &str,
        params: &[(&str, &str)],
        auth: ClientAuth<'_>,
    ) -> Result<RawResponse> {
        let url = self.url(path);
        let mut form: Vec<(&str, &str)> = params.to_vec();
        if let ClientAuth::Body {
            client_id,
            client_secret,
        } = auth
        {
            form.push(("client_id", client_id));
            if let Some(s) = client_secret {
                form.push(("client_secret", s.expose_secret()));
            }
        }
        let what = format!("POST {url}");
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::transport(&what, e))?;
        let received_at = self.clock.local().now();
        if let Some(date) = date_header(&resp) {
            self.clock.observe_date_header(&date, received_at);
        }
        let status = resp.status().as_u16();
        let body = read_capped(resp, MAX_AUTH_BODY, &what).await?;
        Ok(RawResponse { status, body })
    }

    /// POSTs a token request and parses the answer; failures are classified.
    pub async fn request_token(
        &self,
        params: &[(&str, &str)],
        auth: ClientAuth<'_>,
    ) -> Result<TokenResponse> {
        let raw = self
            .post_form("/services/oauth2/token", params, auth)
            .await?;
        if raw.status == 200 {
            let secret = match auth {
                ClientAuth::Body { client_secret, .. } => client_secret,
                ClientAuth::None => None,
            };
            return parse_token_response(raw.status, &raw.body, "the token endpoint", secret);
        }
        Err(token_failure(raw.status, &raw.body))
    }
}

/// The error for a failed token response: `ReauthRequired` when only a person can fix it.
pub(crate) fn token_failure(status: u16, body: &[u8]) -> Error {
    let cause = token_error::classify(status, body);
    let detail = match OAuthErrorBody::parse(body) {
        Some(e) if e.description.is_empty() => e.error,
        Some(e) => format!(
            "{}: {}",
            e.error,
            redacted_snippet(e.description.as_bytes())
        ),
        None => format!("unrecognised body: {:?}", redacted_snippet(body)),
    };
    if cause.needs_human() {
        Error::ReauthRequired { cause, detail }
    } else {
        Error::TokenEndpoint {
            cause,
            status,
            detail,
        }
    }
}
