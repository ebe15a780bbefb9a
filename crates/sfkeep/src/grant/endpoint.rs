use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::response::{TokenResponse, parse_token_response};
use crate::clock::ServerClock;
use crate::diagnose::token_error::{self, OAuthErrorBody};
use crate::error::{Error, Result, redacted_snippet};
use crate::http::{ClientOptions, LazyClient, MAX_AUTH_BODY, check_url, date_header, read_capped};
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
///
/// The HTTP client is built on the first request, not with the endpoint: a manager that only
/// serves a cached token never loads root certificates nor touches the network.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    login_url: Url,
    http: Arc<LazyClient>,
    clock: ServerClock,
}

impl TokenEndpoint {
    /// An endpoint for `login_url` (https, or http to loopback only), whose HTTP client (10 s
    /// timeout, 3 s to connect) is built on first use.
    pub fn new(login_url: &str, clock: ServerClock) -> Result<Self> {
        Self::with_options(
            login_url,
            clock,
            ClientOptions::new(TOKEN_REQUEST_TIMEOUT, TOKEN_CONNECT_TIMEOUT),
        )
    }

    /// An endpoint for `login_url` whose HTTP client is built with `options` on first use.
    pub fn with_options(
        login_url: &str,
        clock: ServerClock,
        options: ClientOptions,
    ) -> Result<Self> {
        Self::with_lazy(login_url, clock, LazyClient::new(options))
    }

    /// An endpoint for `login_url` over `http`, a client the caller already built.
    pub fn with_client(login_url: &str, clock: ServerClock, http: reqwest::Client) -> Result<Self> {
        Self::with_lazy(login_url, clock, LazyClient::ready(http))
    }

    fn with_lazy(login_url: &str, clock: ServerClock, http: LazyClient) -> Result<Self> {
        let login_url = check_url("login_url", login_url)?;
        Ok(Self {
            login_url,
            http: Arc::new(http),
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

    /// The HTTP client, built now if nothing has used it yet. Fails (a configuration error)
    /// only when no TLS roots can be loaded.
    pub fn http(&self) -> Result<&reqwest::Client> {
        self.http.get()
    }

    /// Whether the HTTP client has been built (nothing has needed it yet, if not).
    pub fn http_is_built(&self) -> bool {
        self.http.is_built()
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
        let Ok(http) = self.http() else {
            return false;
        };
        let Ok(resp) = http.get(&url).send().await else {
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
            .http()?
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
