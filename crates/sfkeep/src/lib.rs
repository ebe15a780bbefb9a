//! sfkeep keeps Salesforce integrations authenticated.
//!
//! - [`TokenManager`]: proactive (skew-corrected) and reactive refresh, single-flight across
//!   tasks and processes, escalation to a fallback grant, a cooldown and a login budget.
//! - [`client`]: a REST client that heals once after a session death and never duplicates a write.
//! - [`grant`]: every OAuth grant Salesforce offers, plus the legacy SOAP login.
//! - [`store`]: memory and encrypted-file token stores behind one compare-and-set contract.
//! - [`diagnose`]: why a session died, from the server's own words.
//! - [`event`]: auth events through `tracing`, `metrics` and your own sinks; never a secret.
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
