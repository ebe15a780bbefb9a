//! sfkeep keeps Salesforce integrations authenticated.
//!
//! - [`TokenManager`]: proactive (skew-corrected) and reactive refresh, single-flight across
//!   tasks and processes, escalation to a fallback grant, a cooldown and a login budget.
//! - [`grant`]: every OAuth grant Salesforce offers (refresh token, JWT bearer, client
//!   credentials, web server with PKCE, device, username-password), plus the legacy SOAP
//!   `login()`.
//! - [`store`]: where tokens live, behind one compare-and-set contract: in memory
//!   ([`store::MemoryStore`]), an encrypted file shared by the processes of one machine
//!   ([`store::EncryptedFileStore`]), and Redis shared by a fleet (`store::RedisStore`, feature
//!   `redis`: encrypted values, a generation compare-and-set in Lua, an owner-checked lock,
//!   pub/sub wake-ups).
//! - [`client`]: a REST, SOAP (partner API) and Bulk 2.0 client that heals once after a
//!   session death and never duplicates a write; the same behaviour as tower layers
//!   ([`client::SessionLayer`], [`client::TransientRetryLayer`]) for your own hyper stack, and
//!   the heal step itself ([`client::HealStep`]) for a transport of your own.
//! - [`diagnose`]: why a session died, from the server's own words (one response) or from the
//!   facts gathered about an org (`sfkeep doctor`).
//! - [`event`]: auth events through `tracing`, `metrics` and your own sinks; never a secret.
//!
//! The repository's `docs/` explains the design: `docs/architecture.md` (the data flow grant →
//! manager → store → client → proxy and CLI), `docs/token-lifecycle.md`,
//! `docs/redis-protocol.md` and `docs/salesforce-wire.md` (the Salesforce facts the code relies
//! on, with their public sources).
//!
//! # Optional features
//!
//! | feature | adds |
//! |---|---|
//! | `redis` | `store::RedisStore`, the fleet store (with `rediss://` on the same rustls stack reqwest uses) |
//!
//! Without features the crate has no Redis dependency; everything else is always built.
//!
//! A whole round trip against the simulated org (`sfkeep-fakeorg`, which this example runs
//! in-process): get a token, kill the session the way an admin would, and watch the client
//! heal with exactly one refresh.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sfkeep::client::Client;
//! use sfkeep::secret::{ClientSecret, RefreshToken};
//! use sfkeep::{Grant, TokenManager};
//!
//! let org = sfkeep_fakeorg::FakeOrg::start(sfkeep_fakeorg::FakeOrgConfig::default().accounts(10)).await?;
//! let info = org.ready_info();
//! let manager = TokenManager::builder(info.login_url.clone())
//!     .grant(Grant::refresh_token(
//!         info.client_id.clone(),
//!         Some(ClientSecret::new(info.client_secret.clone())),
//!         RefreshToken::new(info.refresh_token.clone()),
//!     ))
//!     .build()?;
//! let client = Client::new(manager.clone())?;
//! let first = client.query("SELECT Id FROM Account").collect_all().await?;
//! assert_eq!(first.len(), 10);
//!
//! // The user logs out elsewhere: every session dies.
//! reqwest::Client::new()
//!     .post(format!("{}/users/{}/logout", info.admin_url, info.username))
//!     .send()
//!     .await?;
//! let again = client.query("SELECT Id FROM Account").collect_all().await?;
//! assert_eq!(again.len(), 10); // healed: one refresh, one replay
//! assert_eq!(manager.status().generation, Some(2));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod clock;
pub mod diagnose;
pub mod error;
pub mod event;
pub mod grant;
pub mod http;
pub mod manager;
pub mod paths;
mod redact;
pub mod secret;
pub mod store;
pub mod sync;
pub mod token;

pub use error::{Error, Result};
pub use grant::Grant;
pub use manager::{Token, TokenManager, TokenManagerBuilder};
