//! Small HTTP helpers shared by the grants, the client, the proxy and the CLI: the one way an
//! HTTP client is built, URL policy, capped body reads.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};

/// Largest response body sfkeep reads from the token endpoint or an error response.
pub const MAX_AUTH_BODY: usize = 1024 * 1024;

/// How to build an HTTP client with [`build_client`]: the one place sfkeep's crates build a
/// `reqwest::Client`, so every client gets the same TLS stack and fails the same way.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    timeout: Duration,
    connect_timeout: Option<Duration>,
    local_address: Option<IpAddr>,
    follow_redirects: bool,
}

impl ClientOptions {
    /// A client whose requests end after `timeout` in all (connect, send, read the body).
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Self {
        Self {
            timeout,
            connect_timeout: Some(connect_timeout),
            local_address: None,
            follow_redirects: true,
        }
    }

    /// Only the whole-request deadline; connecting may take all of it.
    pub fn timeout_only(timeout: Duration) -> Self {
        Self {
            timeout,
            connect_timeout: None,
            local_address: None,
            follow_redirects: true,
        }
    }

    /// Connects from this local address (e.g. `127.0.0.2`, to call from another source
    /// address). Defaults to none: the operating system picks.
    pub fn local_address(mut self, ip: Option<IpAddr>) -> Self {
        self.local_address = ip;
        self
    }

    /// Answers a redirect as it is instead of following it (reqwest follows up to 10 by
    /// default), e.g. for webhooks, where a redirect must not carry an alert elsewhere.
    pub fn no_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }
}

/// Builds an HTTP client with `options`. Fails (a configuration error) only when reqwest
/// cannot: no TLS roots can be loaded.
pub fn build_client(options: ClientOptions) -> Result<reqwest::Client> {
    tracing::debug!(target: "sfkeep::http", "building an HTTP client");
    let mut b = reqwest::Client::builder().timeout(options.timeout);
    if let Some(c) = options.connect_timeout {
        b = b.connect_timeout(c);
    }
    if let Some(ip) = options.local_address {
        b = b.local_address(ip);
    }
    if !options.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    b.build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

/// An HTTP client built on first use: building one loads the system's root certificates
/// (~10 ms), which a process that only hands out a cached token never needs (`sfkeep token`,
/// a [`crate::TokenManager`] serving a fresh stored record).
#[derive(Debug)]
pub struct LazyClient {
    options: ClientOptions,
    client: OnceLock<reqwest::Client>,
}

impl LazyClient {
    /// A client built with `options` when [`Self::get`] is first called.
    pub fn new(options: ClientOptions) -> Self {
        Self {
            options,
            client: OnceLock::new(),
        }
    }

    /// A client already built (the caller's own).
    pub fn ready(client: reqwest::Client) -> Self {
        Self {
            options: ClientOptions::timeout_only(Duration::ZERO),
            client: OnceLock::from(client),
        }
    }

    /// The client, built now if this is the first call. Fails like [`build_client`]; a
    /// failure is not remembered (the next call tries again).
    pub fn get(&self) -> Result<&reqwest::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = build_client(self.options)?;
        // Two first callers at once may both build; one client is kept, the other dropped.
        Ok(self.client.get_or_init(|| built))
    }

    /// Whether the client has been built.
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}

/// Checks the transport policy: `https` anywhere, plain `http` only to a loopback host.
pub fn check_url(what: &str, raw: &str) -> Result<Url> {
    let url =
        Url::parse(raw).map_err(|e| Error::Config(format!("{what} `{raw}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(Error::Config(format!(
            "{what} `{raw}` uses plain http to a non-loopback host; use https"
        ))),
        other => Err(Error::Config(format!(
            "{what} `{raw}` has scheme `{other}`; expected https (or http to loopback)"
        ))),
    }
}

/// The host is 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Reads at most `cap` bytes of a response body; a longer body is an error, not a truncation.
pub async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
    source_name: &str,
) -> Result<Vec<u8>> {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(Error::ResponseTooLarge {
                        source_name: source_name.to_owned(),
                        cap,
                        status,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Error::transport(
                    format!("reading the body from {source_name}"),
                    e,
                ));
            }
        }
    }
}

/// The `Date` header of a response, if any.
pub fn date_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_client_is_built_on_first_use_only() {
        let lazy = LazyClient::new(ClientOptions::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
        ));
        assert!(!lazy.is_built());
        let first = lazy.get().unwrap() as *const reqwest::Client;
        assert!(lazy.is_built());
        assert_eq!(first, lazy.get().unwrap() as *const reqwest::Client);
        assert!(LazyClient::ready(reqwest::Client::new()).is_built());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("login_url", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("login_url", "http://localhost:1").is_ok());
        assert!(check_url("login_url", "https://login.salesforce.com").is_ok());
        let e = check_url("login_url", "http://login.salesforce.com").unwrap_err();
        assert!(e.to_string().contains("plain http"));
        assert!(check_url("login_url", "ftp://x").is_err());
    }
}
