//! `sfkeep proxy`: an auth-injecting reverse proxy that makes any Salesforce integration immune
//! to session death, SOAP `login()` included.
//!
//! An integration points at the proxy instead of its instance. The proxy holds the real
//! credentials in a [`sfkeep::TokenManager`]; its clients hold none:
//!
//! - `/services/…` is forwarded to the token's `instance_url` only, with the client's
//!   `Authorization`, `X-SFDC-Session`, `Cookie`, hop-by-hop headers and SOAP
//!   `SessionHeader/sessionId` replaced by the current token (Bearer for REST and Bulk 2.0,
//!   `X-SFDC-Session` for Bulk 1.0, `SessionHeader` for SOAP). Bodies stream both ways.
//! - Request bodies up to [`ProxyBuilder::max_replay_body`] (1 MiB) are kept so a call that
//!   meets a dead session is replayed once with a new token. Larger bodies stream; a session
//!   death on them passes through and is counted.
//! - A partner/enterprise SOAP `login()` and an OAuth password or refresh-token grant sent to
//!   the proxy are answered locally with proxy-local credentials and URLs pointing at the proxy.
//! - It is not an open proxy: absolute-form targets, `CONNECT`, foreign `Host`s and paths
//!   outside `/services/` are refused; it binds to loopback unless given a client key.
//! - `/healthz`, `/metrics` (Prometheus text), `POST /_sfkeep/reload` (loopback only).
//! - It speaks plain `http`, or `https` with a certificate from a CA made on this machine
//!   ([`ProxyBuilder::tls`], [`LocalCa`]) for clients that accept only `https`.
//! - It speaks HTTP/1.1 (and 1.0) on both sides with its own forwarding path (`h1`, `conn`,
//!   `upstream`): each head is parsed once and its lines copied through filtered, which is
//!   what lets it forward as fast as nginx (BENCHMARKS.md). Framing is strict on the client
//!   side (no `Transfer-Encoding` with `Content-Length`, no codings but `chunked`); heads,
//!   bodies and unread replies all have deadlines; TLS to the instance is rustls with the
//!   platform's verifier, and plain `http` is used only to a loopback instance.
//!
//! ```no_run
//! # async fn run(manager: sfkeep::TokenManager) -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = sfkeep_proxy::Proxy::builder(manager)
//!     .listen("127.0.0.1:8443".parse()?)
//!     .expected_username(Some("integration@example.com".into()))
//!     .build()?;
//! let handle = proxy.spawn().await?;
//! println!("point the integration at {}", handle.url());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod body;
pub mod browser;
mod client_body;
mod client_io;
mod config;
mod conn;
mod ct;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod h1;
pub mod health;
mod local;
mod path;
mod reply;
mod respond;
mod rewrite;
mod route;
mod server;
mod sessions;
mod shared;
mod soap;
mod stats;
pub mod tls;
mod upstream;

pub use auth::host_is_loopback;
pub use browser::BrowserGuard;
pub use config::{
    BuildError, ClientKey, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REPLAY_BODY, DEFAULT_UPSTREAM_TIMEOUT,
    MIN_CLIENT_KEY_CHARS, Proxy, ProxyBuilder,
};
pub use server::ProxyHandle;
pub use stats::StatsSnapshot;
pub use tls::{LocalCa, TlsError};
