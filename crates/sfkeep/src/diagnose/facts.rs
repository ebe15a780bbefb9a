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

/// How a grant was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GrantCheck {
    /// A token request was sent (and its answer is `outcome`).
    #[default]
    TokenRequest,
    /// The refresh token was introspected, not used: an active one says the refresh token
    /// lives, not that the server would grant a refresh to this user from this address now.
    Introspection,
    /// The token store remembers this refresh token as refused; nothing was sent.
    StoreMemory,
}

/// One grant's dry refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantAttempt {
    /// The grant.
    pub grant: GrantKind,
    /// `Ok` or the cause and the server's words.
    pub outcome: Result<(), (Cause, String)>,
    /// How it was checked.
    pub check: GrantCheck,
}

impl GrantAttempt {
    /// A token request's outcome.
    pub fn requested(grant: GrantKind, outcome: Result<(), (Cause, String)>) -> Self {
        Self {
            grant,
            outcome,
            check: GrantCheck::TokenRequest,
        }
    }

    /// What the outcome says, for evidence: which check was made and its answer.
    pub fn said(&self) -> String {
        let g = self.grant.as_str();
        match (self.check, &self.outcome) {
            (GrantCheck::TokenRequest, Ok(())) => {
                format!("a dry refresh with the {g} grant succeeded")
            }
            (GrantCheck::TokenRequest, Err((_, d))) => {
                format!("a dry refresh with the {g} grant was refused: {d}")
            }
            (GrantCheck::Introspection, Ok(())) => "introspection shows the refresh token the integration uses active (it was not used)".to_owned(),
            (GrantCheck::Introspection, Err((_, d))) => {
                format!("introspection of the refresh token the integration uses (not used): {d}")
            }
            (GrantCheck::StoreMemory, Ok(())) => {
                "the token store holds a refresh token not known to be refused".to_owned()
            }
            (GrantCheck::StoreMemory, Err((_, d))) => format!(
                "the token store remembers the refresh token as refused by the server (not sent again): {d}"
            ),
        }
    }
}

/// Where the session timeout in [`Facts::session_timeout`] comes from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeoutSource {
    /// The dead token's own record: its expiry came from introspection or SOAP
    /// `sessionSecondsValid` when it was issued.
    StoredToken,
    /// Introspection of a token doctor just obtained (`exp − iat`).
    Introspection,
    /// `AuthSession.NumSecondsValid` of the session doctor reads with.
    AuthSession,
    /// SOAP `sessionSecondsValid` (a login or `getUserInfo`).
    SoapSessionSecondsValid,
    /// The profile's `session_timeout_secs`.
    Profile,
    /// sfkeep's default (2 hours): nothing better was known.
    #[default]
    Default,
}

impl TimeoutSource {
    /// Told by the org rather than assumed.
    pub fn is_the_orgs(self) -> bool {
        !matches!(self, TimeoutSource::Profile | TimeoutSource::Default)
    }

    /// Where it came from, for evidence.
    pub fn describe(self) -> &'static str {
        match self {
            TimeoutSource::StoredToken => "the org's, recorded when the token was issued",
            TimeoutSource::Introspection => "the org's, from introspection of a new token",
            TimeoutSource::AuthSession => "the org's AuthSession.NumSecondsValid",
            TimeoutSource::SoapSessionSecondsValid => "the org's SOAP sessionSecondsValid",
            TimeoutSource::Profile => "the profile's session_timeout_secs",
            TimeoutSource::Default => "sfkeep's default; the org did not say",
        }
    }
}

/// The refresh token the integration uses (the store's, else the profile's), checked without
/// using it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RefreshTokenFacts {
    /// Introspection's answer: `Some(true)` active, `Some(false)` not; `None` not asked
    /// (no client secret) or no answer.
    pub active: Option<bool>,
    /// When it was authorized (introspection `iat`, or the OauthToken row's CreatedDate).
    pub authorized_at: Option<UnixMillis>,
    /// When a policy ends it (introspection `exp`).
    pub expires_at: Option<UnixMillis>,
    /// The token store remembers it as refused by the server.
    pub remembered_refused: bool,
}

/// Which of the org's diagnosis objects doctor could read (statements about the org are made
/// only from these).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OrgReads {
    /// User.
    pub user: bool,
    /// UserLogin.
    pub user_login: bool,
    /// LoginHistory.
    pub login_history: bool,
    /// AuthSession.
    pub auth_session: bool,
    /// OauthToken.
    pub oauth_token: bool,
    /// SetupAuditTrail.
    pub setup_audit: bool,
}

impl OrgReads {
    /// Every object was read.
    pub fn all(self) -> bool {
        self.user
            && self.user_login
            && self.login_history
            && self.auth_session
            && self.oauth_token
            && self.setup_audit
    }

    /// The objects that could not be read, by name.
    pub fn missing(self) -> Vec<&'static str> {
        [
            (self.user, "User"),
            (self.user_login, "UserLogin"),
            (self.login_history, "LoginHistory"),
            (self.auth_session, "AuthSession"),
            (self.oauth_token, "OauthToken"),
            (self.setup_audit, "SetupAuditTrail"),
        ]
        .into_iter()
        .filter(|(read, _)| !read)
        .map(|(_, name)| name)
        .collect()
    }
}

/// An OauthToken row (one approval of a connected app by the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OauthTokenRow {
    /// `AppName`.
    pub app: String,
    /// `CreatedDate`: when the user approved (authorized) the app.
    pub created: UnixMillis,
    /// `LastUsedDate`: the refresh token's last use, when shown.
    pub last_used: Option<UnixMillis>,
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
    /// Where [`Facts::session_timeout`] comes from.
    pub session_timeout_source: TimeoutSource,
    /// The last successful API call (server clock), from the audit log.
    pub last_success_at: Option<UnixMillis>,
    /// The local source address of that call.
    pub last_success_source_ip: Option<String>,
    /// Server minus local clock (ms) measured at that call.
    pub last_success_clock_offset_ms: Option<i64>,
    /// The local source address now.
    pub current_source_ip: Option<String>,
    /// When the stored token was issued (server clock).
    pub token_issued_at: Option<UnixMillis>,
    /// The stored token's probe.
    pub probe: TokenProbe,
    /// Introspection of the stored token: `Some(active)` when the app may introspect.
    pub introspection: Option<bool>,
    /// The refresh token the integration uses, when a grant of the profile has one.
    pub refresh_token: Option<RefreshTokenFacts>,
    /// The dry refresh, one attempt per grant in order (primary, fallback), stopping at the
    /// first that works.
    pub dry_refresh: Vec<GrantAttempt>,
    /// Whether the org could be queried (some grant yielded a working token).
    pub org_queried: bool,
    /// Which diagnosis objects were read.
    pub reads: OrgReads,
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
    /// The user's approvals (OauthToken rows), when OauthToken was read.
    pub approvals: Option<Vec<OauthTokenRow>>,
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
    /// The API refused doctor's calls with `API_DISABLED_FOR_ORG` / `API_CURRENTLY_DISABLED`
    /// (the user lacks "API Enabled", or the org's API is off): the server's words.
    pub api_disabled: Option<String>,
    /// The token store holds an unfinished rotating refresh (an intent record nobody replaced
    /// with the answer, `docs/rotation-safety.md`).
    pub interrupted_refresh: Option<InterruptedRefresh>,
    /// Why the store holds no usable refresh token under rotation while the configured one is
    /// spent (a logout tombstone; the spent-token ledger naming it): one sentence.
    pub refresh_token_lost: Option<String>,
    /// The profile's password secrets against the last login that sent them, when a grant of
    /// the profile sends a password (password grant, SOAP `login()`).
    pub password_secrets: Option<PasswordSecrets>,
}

/// Where the profile's password and security token come from, and whether they changed
/// since a login with them last worked: the org answers a wrong password, a changed password
/// and a frozen user alike (`authentication failure`, SOAP `INVALID_LOGIN`,
/// docs/salesforce-wire.md §2 and §5.3), so only this machine can tell that the profile, not
/// the org, changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordSecrets {
    /// Where they are read from, for the evidence (`the file /etc/sfkeep/password`).
    pub source: String,
    /// The latest modification of those files (local clock); `None` when they are not all
    /// files (an environment variable has no modification time).
    pub changed_at: Option<UnixMillis>,
    /// The integration's last login that sent them and got a token (local clock, from the
    /// audit log; doctor's own logins not counted).
    pub last_worked_at: Option<UnixMillis>,
}

impl PasswordSecrets {
    /// `Some(true)`: they changed after the last login that worked with them; `Some(false)`:
    /// they are the ones that worked; `None`: not known.
    pub fn changed_since_it_worked(&self) -> Option<bool> {
        Some(self.changed_at?.0 > self.last_worked_at?.0)
    }
}

/// An unfinished rotating refresh found in the token store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterruptedRefresh {
    /// The generation of the record that declared it.
    pub generation: u64,
    /// Which manager declared it (a random id, never a secret).
    pub owner: String,
    /// When it was declared (server clock).
    pub since: UnixMillis,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            now: UnixMillis(0),
            session_timeout: crate::token::DEFAULT_SESSION_TIMEOUT,
            session_timeout_source: TimeoutSource::Default,
            last_success_at: None,
            last_success_source_ip: None,
            last_success_clock_offset_ms: None,
            current_source_ip: None,
            token_issued_at: None,
            probe: TokenProbe::Missing,
            introspection: None,
            refresh_token: None,
            dry_refresh: Vec::new(),
            org_queried: false,
            reads: OrgReads::default(),
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
            api_disabled: None,
            interrupted_refresh: None,
            refresh_token_lost: None,
            password_secrets: None,
        }
    }
}
