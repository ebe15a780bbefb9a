//! The facts `sfkeep doctor` gathers about an integration and its org: the input of the
//! diagnosis rules ([`super::rules`]). Plain data, so every rule is unit-tested without an org.
//!
//! All times are on the server's clock (local time plus the measured `Date` offset).

use std::time::Duration;

use super::Cause;
use crate::clock::UnixMillis;
use crate::token::GrantKind;

/// What a probe of the stored access token found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum TokenProbe {
    /// No token is stored.
    #[default]
    Missing,
    /// The server accepted it.
    Alive,
    /// The server refused it with this status and body.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The body (an error, never a token).
        body: String,
    },
    /// The probe did not complete (network).
    Unreachable(String),
}

/// One grant's dry refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantAttempt {
    /// The grant.
    pub grant: GrantKind,
    /// `Ok` or the cause and the server's words.
    pub outcome: Result<(), (Cause, String)>,
}

/// The integration user as SOQL shows it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UserFacts {
    /// `User.IsActive`.
    pub is_active: bool,
    /// `UserLogin.IsFrozen`.
    pub is_frozen: bool,
    /// `User.LastPasswordChangeDate`.
    pub last_password_change: Option<UnixMillis>,
}

/// A LoginHistory row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRow {
    /// `LoginTime`.
    pub at: UnixMillis,
    /// `SourceIp`.
    pub source_ip: String,
    /// `Status`.
    pub status: String,
}

/// A SetupAuditTrail row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// `CreatedDate`.
    pub at: UnixMillis,
    /// `Action`.
    pub action: String,
    /// `Display`.
    pub display: String,
}

/// An earlier auth event from the local audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastEvent {
    /// When (local clock).
    pub at: UnixMillis,
    /// The event name, e.g. `refresh.failed`.
    pub kind: String,
    /// Its cause, when it has one.
    pub cause: Option<Cause>,
    /// A refresh that rotated the refresh token.
    pub rotated: bool,
    /// Recorded by `sfkeep doctor`'s own dry refresh, not by the integration: it tells how
    /// the grants answered doctor, not what happened to the session. Only its `rotated` counts
    /// as evidence.
    pub probe: bool,
}

impl PastEvent {
    /// A token was obtained, adopted or used successfully: a failure before it was healed.
    pub fn is_success(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "token.refreshed" | "token.adopted" | "api.succeeded"
        )
    }
}

/// Everything `doctor` gathered.
#[derive(Clone, Debug)]
pub struct Facts {
    /// Now (server clock).
    pub now: UnixMillis,
    /// The session timeout in force.
    pub session_timeout: Duration,
    /// The last successful API call (server clock), from the audit log.
    pub last_success_at: Option<UnixMillis>,
    /// The local source address of that call.
    pub last_success_source_ip: Option<String>,
    /// The local source address now.
    pub current_source_ip: Option<String>,
    /// When the stored token was issued (server clock).
    pub token_issued_at: Option<UnixMillis>,
    /// The stored token's probe.
    pub probe: TokenProbe,
    /// Introspection of the stored token: `Some(active)` when the app may introspect.
    pub introspection: Option<bool>,
    /// The dry refresh, one attempt per grant in order (primary, fallback), stopping at the
    /// first that works.
    pub dry_refresh: Vec<GrantAttempt>,
    /// Whether the org could be queried (some grant yielded a working token).
    pub org_queried: bool,
    /// The integration user.
    pub user: Option<UserFacts>,
    /// LoginHistory rows of the user, any order.
    pub login_history: Vec<LoginRow>,
    /// SetupAuditTrail rows, any order.
    pub setup_audit: Vec<AuditRow>,
    /// Live AuthSession rows of the user.
    pub auth_sessions: Option<usize>,
    /// OauthToken rows (refresh tokens) of the user.
    pub oauth_tokens: Option<usize>,
    /// The user's approvals (OauthToken rows): app name and creation time.
    pub approvals: Option<Vec<(String, UnixMillis)>>,
    /// The org's login IP ranges, when known.
    pub login_ip_ranges: Option<Vec<(String, String)>>,
    /// Server minus local clock, from the `Date` header.
    pub clock_offset_ms: Option<i64>,
    /// Recent auth events from the audit log, any order.
    pub recent_events: Vec<PastEvent>,
    /// Doctor's own API calls (the SOQL reads) that a working token could not make, with the
    /// cause and the server's words: a session not valid for the REST API, the daily limit
    /// used up. A token that userinfo accepts but the API refuses is not healthy.
    pub own_call_failures: Vec<(Cause, String)>,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            now: UnixMillis(0),
            session_timeout: crate::token::DEFAULT_SESSION_TIMEOUT,
            last_success_at: None,
            last_success_source_ip: None,
            current_source_ip: None,
            token_issued_at: None,
            probe: TokenProbe::Missing,
            introspection: None,
            dry_refresh: Vec::new(),
            org_queried: false,
            user: None,
            login_history: Vec::new(),
            setup_audit: Vec::new(),
            auth_sessions: None,
            oauth_tokens: None,
            approvals: None,
            login_ip_ranges: None,
            clock_offset_ms: None,
            recent_events: Vec::new(),
            own_call_failures: Vec::new(),
        }
    }
}
