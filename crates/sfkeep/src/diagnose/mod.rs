//! Why a session died: the causes, and how each Salesforce error maps onto one.
//!
//! | cause | where it is recognised |
//! |---|---|
//! | session timeout, logout elsewhere, password change, IP move, admin revoke (access token) | a REST 401 `INVALID_SESSION_ID` / SOAP fault ([`api_error`]), healed by a refresh |
//! | refresh token revoked or expired by policy, rotated-out reuse | token 400 `expired access/refresh token` ([`token_error`]) |
//! | user deactivated / frozen / IP restricted / app not approved | token 400 `inactive user` / `authentication failure` / `ip restricted` / `user hasn't approved this consumer` ([`token_error`]) |
//! | session not valid for the REST API | REST 401 with that message ([`api_error`]): never refreshed |
//! | a rotating refresh interrupted after the org rotated, the store losing the rotated refresh token | the manager (`manager/intent.rs`, `manager/ledger.rs`) before anything is sent; `doctor` from the store's intent record and the spent-token ledger (`rotation`) |
//!
//! For operators: [`Diagnosis`] ranks [`DiagnosisCause`]s with evidence and a fix, either
//! offline from a pasted error ([`classify`]) or from facts gathered about an org
//! ([`evidence`], used by `sfkeep doctor`).

pub mod api_error;
mod cause;
pub mod classify;
pub mod diagnosis;
pub mod evidence;
mod facts;
mod rotation;
mod rules;
pub mod soap_fault;
pub mod time_text;
pub mod token_error;

pub use cause::Cause;
pub use classify::classify_error_text;
pub use diagnosis::{Diagnosis, DiagnosisCause, Finding};
