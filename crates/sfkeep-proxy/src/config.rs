//! The proxy's configuration and its builder.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use sfkeep::TokenManager;
use sfkeep::secret::ClientSecret;

use crate::browser::BrowserGuard;
use crate::tls::LocalCa;

/// Default size up to which a request body is kept for a replay: 1 MiB.
pub const DEFAULT_MAX_REPLAY_BODY: usize = 1 << 20;
/// Default limit on a request body: 512 MiB (Bulk uploads are at most 150 MB).
pub const DEFAULT_MAX_BODY: u64 = 512 << 20;
/// Default limit on a request head (request line and headers): 64 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
/// Default time a client has to send a complete request head (slowloris guard), also the
/// longest a kept-alive connection may sit idle.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Default time the instance has to send a response head, counted from the end of the request
/// body (an upload is bounded by its progress instead: see [`DEFAULT_HEADER_READ_TIMEOUT`]).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on client connections open at once: 512 (nginx's `worker_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The shortest client key accepted, in characters.
pub const MIN_CLIENT_KEY_CHARS: usize = 16;

/// The key clients must present when the proxy is given one: `Authorization: Bearer KEY`, or
/// as the password of a shimmed login. Compared in constant time; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey(ClientSecret);

impl ClientKey {
    /// Wraps a key.
    pub fn new(value: impl Into<String>) -> Self {
        Self(ClientSecret::new(value))
    }

    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether `presented` is this key, compared in constant time (neither the content nor
    /// the length of the key leaks through timing). Other listeners that share the proxy's
    /// trust model (`sfkeep serve`'s status listener) check their clients with it.
    pub fn matches(&self, presented: &str) -> bool {
        crate::ct::ct_eq(presented.as_bytes(), self.expose().as_bytes())
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey([redacted])")
    }
}

/// Why [`ProxyBuilder::build`] refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Binding anywhere but loopback needs a client key.
    #[error(
        "refusing to listen on {0} without a client key: anything that can reach it could use the org's credentials; bind to 127.0.0.1 or set a client key"
    )]
    ClientKeyRequired(SocketAddr),
    /// The client key is blank, too short, or has characters a client could not send as is.
    #[error("invalid client key: {0}")]
    InvalidClientKey(&'static str),
    /// A limit is out of range.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// The TLS client for the instance could not be set up.
    #[error("cannot set up TLS to the instance: {0}")]
    Tls(String),
}

/// Builds a [`Proxy`].
#[derive(Debug)]
pub struct ProxyBuilder {
    pub(crate) manager: TokenManager,
    pub(crate) listen: SocketAddr,
    pub(crate) client_key: Option<ClientKey>,
    pub(crate) max_replay_body: usize,
    pub(crate) max_body: u64,
    pub(crate) max_header_bytes: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) upstream_timeout: Duration,
    pub(crate) expected_username: Option<String>,
    pub(crate) max_connections: usize,
    pub(crate) browser_guard: BrowserGuard,
    pub(crate) tls: Option<LocalCa>,
    pub(crate) store: Option<std::sync::Arc<dyn sfkeep::store::Store>>,
}

/// A configured proxy, not yet listening: [`Proxy::spawn`] or [`Proxy::run`] it.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) cfg: ProxyBuilder,
}

impl Proxy {
    /// A builder forwarding to `manager`'s instance, listening on `127.0.0.1:0` by default.
    pub fn builder(manager: TokenManager) -> ProxyBuilder {
        ProxyBuilder {
            manager,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            client_key: None,
            max_replay_body: DEFAULT_MAX_REPLAY_BODY,
            max_body: DEFAULT_MAX_BODY,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            expected_username: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            browser_guard: BrowserGuard::new(),
            tls: None,
            store: None,
        }
    }
}

impl ProxyBuilder {
    /// Where to listen. Anything but a loopback address requires [`ProxyBuilder::client_key`].
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The key every client must present (see [`ClientKey`]). `None`: loopback trust only.
    pub fn client_key(mut self, key: Option<ClientKey>) -> Self {
        self.client_key = key;
        self
    }

    /// Request bodies up to this size are kept for one replay after a session death.
    pub fn max_replay_body(mut self, bytes: usize) -> Self {
        self.max_replay_body = bytes;
        self
    }

    /// The largest request body accepted (413 past it).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// The largest request head accepted (431 past it); at least 8 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// How long a client may take to send a request head (slowloris guard).
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }

    /// How long the instance may take to answer with a response head.
    pub fn upstream_timeout(mut self, d: Duration) -> Self {
        self.upstream_timeout = d;
        self
    }

    /// The profile's username: a shimmed SOAP or OAuth password login must name it
    /// (case-insensitively). `None` accepts any username.
    pub fn expected_username(mut self, username: Option<String>) -> Self {
        self.expected_username = username;
        self
    }

    /// The most client connections open at once; past it a new connection gets a 503 and is
    /// closed. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// The rules for requests made by web browsers (see [`BrowserGuard`]). Default: every
    /// browser-made request is refused.
    pub fn browser_guard(mut self, guard: BrowserGuard) -> Self {
        self.browser_guard = guard;
        self
    }

    /// Serve HTTPS instead of plain HTTP, with a server certificate `ca` issues at start for
    /// the loopback names (see [`LocalCa`]); clients trust `ca`'s certificate
    /// ([`LocalCa::cert_path`]). Loopback listen addresses only. Default: plain HTTP.
    pub fn tls(mut self, ca: Option<LocalCa>) -> Self {
        self.tls = ca;
        self
    }

    /// The manager's shared store: `/healthz` reads it and is not ok when it cannot (see
    /// [`crate::health`]). Default: not checked.
    pub fn health_store(mut self, store: Option<std::sync::Arc<dyn sfkeep::store::Store>>) -> Self {
        self.store = store;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Proxy, BuildError> {
        if let Some(k) = &self.client_key {
            check_client_key(k.expose())?;
        }
        if self.max_connections == 0 {
            return Err(BuildError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        if self.tls.is_some() && !self.listen.ip().is_loopback() {
            return Err(BuildError::Invalid(format!(
                "TLS is served on loopback only: the local CA signs loopback names only, and {} is not one",
                self.listen.ip()
            )));
        }
        if !self.listen.ip().is_loopback() {
            if self.client_key.is_none() {
                return Err(BuildError::ClientKeyRequired(self.listen));
            }
            tracing::warn!(
                target: "sfkeep_proxy",
                listen = %self.listen,
                "the proxy listens beyond loopback: every client must present the client key"
            );
        }
        if self.max_header_bytes < 8192 {
            return Err(BuildError::Invalid(
                "max_header_bytes must be at least 8192".into(),
            ));
        }
        if self.max_replay_body as u64 > self.max_body {
            return Err(BuildError::Invalid(
                "max_replay_body must not exceed max_body".into(),
            ));
        }
        if self.header_read_timeout.is_zero() || self.upstream_timeout.is_zero() {
            return Err(BuildError::Invalid("timeouts must be positive".into()));
        }
        Ok(Proxy { cfg: self })
    }
}

/// A key clients can present exactly: [`MIN_CLIENT_KEY_CHARS`] visible ASCII characters or more
/// (a presented credential is trimmed, so a key with spaces could never match).
fn check_client_key(key: &str) -> Result<(), BuildError> {
    if key.trim().is_empty() {
        return Err(BuildError::InvalidClientKey("it is blank"));
    }
    if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(BuildError::InvalidClientKey(
            "it has spaces or characters other than visible ASCII, which a client cannot present as they are",
        ));
    }
    if key.len() < MIN_CLIENT_KEY_CHARS {
        return Err(BuildError::InvalidClientKey(
            "it is shorter than 16 characters; use a random one, e.g. `openssl rand -base64 24`",
        ));
    }
    Ok(())
}
