//! sfkeep keeps Salesforce integrations authenticated.
//!
//! - [`TokenManager`]: proactive (skew-corrected) and reactive refresh, single-flight across
//!   tasks and processes, escalation to a fallback grant, a cooldown and a login budget.
//! - [`client`]: a REST client that heals once after a session death and never duplicates a write.
//! - [`grant`]: every OAuth grant Salesforce offers, plus the legacy SOAP login.
//! - [`store`]: memory and encrypted-file token stores behind one compare-and-set contract.
//! - [`diagnose`]: why a session died, from the server's own words.
//! - [`event`]: auth events through `tracing`, `metrics` and your own sinks; never a secret.
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
//!     .grant(Grant::RefreshToken {
//!         client_id: info.client_id.clone(),
//!         client_secret: Some(ClientSecret::new(info.client_secret.clone())),
//!         refresh_token: RefreshToken::new(info.refresh_token.clone()),
//!     })
//!     .build()?;
//! let client = Client::new(manager.clone());
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
pub mod secret;
pub mod store;
pub mod token;

pub use error::{Error, Result};
pub use grant::Grant;
pub use manager::{Token, TokenManager, TokenManagerBuilder};
