//! What every connection and handler of one proxy reads: its configuration, the token
//! manager, the upstream connector, the proxy-local sessions and the counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use sfkeep::TokenManager;

use crate::browser::BrowserGuard;
use crate::config::ClientKey;
use crate::rewrite::PreparedCache;
use crate::sessions::Sessions;
use crate::stats::Stats;
use crate::upstream::Upstream;

/// Everything a request handler reads.
pub(crate) struct Shared {
    pub manager: TokenManager,
    pub client_key: Option<ClientKey>,
    pub max_replay_body: usize,
    pub max_body: u64,
    pub upstream_timeout: Duration,
    pub expected_username: Option<String>,
    /// The connector and idle upstream connections.
    pub upstream: Arc<Upstream>,
    /// Header lines and target for the current token.
    pub prepared: PreparedCache,
    /// Set when the proxy stops: connections end after the reply in progress.
    pub shutting_down: AtomicBool,
    /// Set when the proxy serves TLS: the handshake every connection starts with.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// `http://ADDR` (`https://` with TLS), what clients are told to use.
    pub base_url: String,
    /// `ADDR`, the `Host` those clients send.
    pub host: String,
    pub addr: SocketAddr,
    pub sessions: Sessions,
    pub stats: Stats,
    pub hmac_key: [u8; 32],
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// The rules for requests browsers make for web pages.
    pub guard: BrowserGuard,
    /// The second (since the epoch) a connection-cap refusal was last logged.
    pub last_busy_log: std::sync::atomic::AtomicU64,
    /// The last `Date` seen from the instance (it changes once a second).
    pub last_date: std::sync::Mutex<Option<Vec<u8>>>,
    /// Whether the last API call reached the instance (for `/healthz`).
    pub org_reach: crate::health::OrgReach,
    /// The manager's shared store, which `/healthz` reads (`None`: not checked).
    pub store: Option<Arc<dyn sfkeep::store::Store>>,
}

impl Shared {
    /// Feeds the instance's `Date` to the manager's skew correction, once per distinct value.
    pub(crate) fn observe_date(&self, date: &[u8]) {
        {
            let mut last = sfkeep::sync::lock(&self.last_date);
            if last.as_deref() == Some(date) {
                return;
            }
            *last = Some(date.to_vec());
        }
        if let Ok(d) = std::str::from_utf8(date) {
            self.manager.observe_server_date(d);
        }
    }
}
