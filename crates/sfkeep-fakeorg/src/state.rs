//! The org model: its clock, users, connected apps, sessions, refresh-token families,
//! network policy, injected faults, limits, statistics and the audit rows
//! (LoginHistory, SetupAuditTrail) that Salesforce would write.
//!
//! Everything lives behind one `std::sync::Mutex` that is never held across an
//! `.await`: the org is small and a single lock keeps every transition atomic
//! (e.g. "rotate the refresh token and end the old family's sessions").

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::activity::Activity;
use crate::async_jobs::AsyncJob;
use crate::ids;
use crate::ingest::IngestJob;
use crate::jobs::QueryJob;
use crate::records::{Accounts, Row};
use crate::rendered::RenderedRecords;

/// A user of the org.
pub struct User {
    /// 18-char `005…` id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Current password (without the security token).
    pub password: String,
    /// Security token appended to the password by API logins.
    pub security_token: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail.
    pub email: String,
    /// Profile id `00e…`.
    pub profile_id: String,
    /// UserLogin row id `0Yw…`.
    pub login_id: String,
    /// `User.IsActive`.
    pub active: bool,
    /// `UserLogin.IsFrozen`.
    pub frozen: bool,
    /// `User.LastPasswordChangeDate`.
    pub last_password_change: OffsetDateTime,
    /// `User.LastLoginDate`.
    pub last_login: Option<OffsetDateTime>,
    /// When UserLogin last changed.
    pub login_modified: OffsetDateTime,
    /// The profile's "API Enabled" permission: without it every API call (REST, SOAP, Bulk)
    /// and SOAP `login()` is refused with `API_DISABLED_FOR_ORG`; OAuth tokens are still issued.
    pub api_enabled: bool,
    /// Objects the user may not read: SOQL on them answers `INVALID_TYPE`, as Salesforce does
    /// when the permission behind an object (Manage Users, View Setup and Configuration) is
    /// missing.
    pub unreadable_objects: Vec<String>,
}

impl User {
    /// "First Last".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// The connected app's refresh-token policy (docs/salesforce-wire.md §8.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPolicy {
    /// "Refresh token is valid until revoked" (the default).
    ValidUntilRevoked,
    /// "Immediately expire refresh token": issued but unusable.
    ImmediatelyExpire,
    /// "Expire refresh token after n": absolute, counted from the original authorization.
    ExpireAfterSeconds(u64),
    /// "Expire refresh token if not used for n": idle TTL, reset on each use.
    ExpireIfUnusedSeconds(u64),
}

/// Per-app OAuth and session policies.
#[derive(Clone, Debug, Serialize)]
pub struct AppPolicy {
    /// Refresh-token expiry policy.
    pub refresh_token_policy: RefreshPolicy,
    /// Refresh Token Rotation.
    pub rotate_refresh_tokens: bool,
    /// The app's Timeout Value; overrides the org's session timeout when set.
    pub session_timeout_seconds: Option<u64>,
    /// "Introspect All Tokens".
    pub introspect_all: bool,
    /// Whether users are pre-authorized for the JWT bearer flow ("Admin approved users").
    pub jwt_preapproved: bool,
    /// Whether tokens carry the `api` scope (a client_credentials app set up without it
    /// gets "This session is not valid for use with the REST API").
    pub api_scope: bool,
}

/// A connected app.
pub struct App {
    /// Display name (`LoginHistory.Application`, `OauthToken.AppName`).
    pub name: String,
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
    /// The registered certificate's public key (SPKI PEM) for the JWT bearer flow.
    pub public_key_pem: String,
    /// Policies.
    pub policy: AppPolicy,
}

impl App {
    /// The scopes granted to tokens of this app.
    pub fn scope(&self) -> &'static str {
        if self.policy.api_scope {
            "refresh_token web api id full"
        } else {
            "refresh_token web id"
        }
    }
}

/// A live session (an access token or a SOAP session id).
#[derive(Clone)]
pub struct Session {
    /// AuthSession id `0Ak…`.
    pub id: String,
    /// The session id / access token itself.
    pub token: String,
    /// Owner.
    pub user_id: String,
    /// The connected app that issued it; `None` for SOAP `login()` sessions.
    pub client_id: Option<String>,
    /// When created.
    pub created: OffsetDateTime,
    /// Last activity that extended it (AuthSession.LastModifiedDate).
    pub last_modified: OffsetDateTime,
    /// NumSecondsValid, fixed when the session starts.
    pub timeout_secs: u64,
    /// Address the session was created from.
    pub source_ip: IpAddr,
    /// AuthSession.SessionType.
    pub session_type: &'static str,
    /// AuthSession.LoginType.
    pub login_type: &'static str,
    /// Whether the session may call the APIs (scope `api`).
    pub api: bool,
    /// Granted scope text.
    pub scope: String,
    /// The refresh-token family the session came from, so revoking a refresh token ends it.
    pub family: Option<u64>,
}

impl Session {
    /// When the session dies if not used again.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.last_modified + Duration::seconds(self.timeout_secs as i64)
    }
}

/// A refresh-token family: one authorization, through all its rotations.
pub struct Family {
    /// Family id.
    pub id: u64,
    /// Issuing app.
    pub client_id: String,
    /// Owner.
    pub user_id: String,
    /// The refresh token that is valid now.
    pub current: String,
    /// The original authorization time.
    pub created: OffsetDateTime,
    /// Last use (for the idle policy and OauthToken.LastUsedDate).
    pub last_used: OffsetDateTime,
    /// OauthToken.UseCount.
    pub use_count: u64,
    /// Revoked (by the user, the admin, or reuse detection).
    pub revoked: bool,
    /// Scope of the authorization.
    pub scope: String,
}

/// A refresh token's place in its family.
pub struct RefreshEntry {
    /// Family id.
    pub family: u64,
    /// Replaced by rotation; presenting it again is reuse.
    pub rotated_out: bool,
}

/// A pending authorization code.
pub struct AuthCode {
    /// App it was issued to.
    pub client_id: String,
    /// Approving user.
    pub user_id: String,
    /// `redirect_uri` of the authorize request.
    pub redirect_uri: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// Issue time.
    pub created: OffsetDateTime,
}

/// A pending device-flow authorization.
pub struct DeviceRequest {
    /// Polled with `grant_type=device&code=…`.
    pub device_code: String,
    /// Shown to the user; approved through the admin API.
    pub user_code: String,
    /// App.
    pub client_id: String,
    /// Set once approved.
    pub approved_by: Option<String>,
    /// Issue time.
    pub created: OffsetDateTime,
}

/// Login IP ranges and session IP locking.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Network {
    /// Inclusive ranges; empty means unrestricted.
    pub login_ip_ranges: Vec<(IpAddr, IpAddr)>,
    /// "Lock sessions to the IP address from which they originated".
    pub lock_sessions_to_ip: bool,
}

impl Network {
    /// Whether a login from `ip` is allowed.
    pub fn login_allowed(&self, ip: IpAddr) -> bool {
        self.login_ip_ranges.is_empty()
            || self
                .login_ip_ranges
                .iter()
                .any(|(lo, hi)| ip_in(ip, *lo, *hi))
    }
}

fn ip_in(ip: IpAddr, lo: IpAddr, hi: IpAddr) -> bool {
    match (ip, lo, hi) {
        (IpAddr::V4(ip), IpAddr::V4(lo), IpAddr::V4(hi)) => {
            (u32::from(lo)..=u32::from(hi)).contains(&u32::from(ip))
        }
        (IpAddr::V6(ip), IpAddr::V6(lo), IpAddr::V6(hi)) => {
            (u128::from(lo)..=u128::from(hi)).contains(&u128::from(ip))
        }
        _ => false,
    }
}

/// An injected failure.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Fault {
    /// Requests whose path starts with this are affected.
    pub path_prefix: String,
    /// Answer with this status instead of the real response.
    #[serde(default)]
    pub status: Option<u16>,
    /// How many requests are affected; unlimited when absent.
    #[serde(default)]
    pub count: Option<u64>,
    /// Delay before answering.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Drop the connection without a response; the request is not processed.
    #[serde(default)]
    pub reset: bool,
    /// Process the request, then drop the connection without its response: the answer is lost
    /// after the org committed (a connection reset on the way back).
    #[serde(default)]
    pub reset_after: bool,
    /// For the token endpoint: process the request first (the grant is committed: a refresh
    /// token is rotated, a token issued), then wait `latency_ms` before answering, and with
    /// `reset` drop the connection instead of answering. This is the window in which
    /// Salesforce has rotated a refresh token and the client has not yet heard of it: a
    /// stalled or crashed client, or a response lost on the way.
    #[serde(default)]
    pub after_commit: bool,
    /// With `after_commit`: after the commit (and `latency_ms`), hold the answer until
    /// `POST /_fake/faults/release`; `/_fake/stats` `answers_held` counts the ones waiting.
    /// A test can then act in the window while it is held, and need not race a timer.
    #[serde(default)]
    pub hold: bool,
    /// Answer with an HTML page instead of Salesforce's error body, as a load balancer or a
    /// maintenance page in front of the org does.
    #[serde(default)]
    pub html: bool,
}

/// How long a query cursor lives: "Cursors and their related query results are available
/// for 2 days" (Salesforce's API query cursor limits, API v56.0 and later).
pub const CURSOR_LIFETIME: Duration = Duration::days(2);

/// A pagination cursor of a query (REST `nextRecordsUrl` or SOAP `queryLocator`). It holds
/// the result as it was when the query ran: records changed later are served as they were.
pub struct Cursor {
    /// Queried object.
    pub object: String,
    /// All result records.
    pub rows: CursorRows,
    /// Page size.
    pub batch: usize,
}

/// The records of a cursor, in the form its API pages them.
pub enum CursorRows {
    /// SOAP: rows projected to the SELECT list.
    Soap(Vec<Row>),
    /// REST: each record already serialized (with `attributes`), so a page is a slice of text.
    Rest(RenderedRecords),
}

impl CursorRows {
    /// Records in the cursor.
    pub fn len(&self) -> usize {
        match self {
            CursorRows::Soap(rows) => rows.len(),
            CursorRows::Rest(r) => r.len(),
        }
    }
}

/// Counters served by `GET /_fake/stats`.
#[derive(Default)]
pub struct Stats {
    /// Token-endpoint requests by grant, successful or not.
    pub token_requests: BTreeMap<&'static str, u64>,
    /// Token-endpoint requests that got an error.
    pub token_errors: u64,
    /// SOAP `login()` calls.
    pub soap_logins: u64,
    /// REST and SOAP API calls (not logins).
    pub api_requests: u64,
    /// 401 INVALID_SESSION_ID / SOAP INVALID_SESSION_ID / Bad_OAuth_Token answers.
    pub invalid_session_responses: u64,
    /// Rotated-out refresh tokens presented again.
    pub refresh_token_reuse_detected: u64,
}

/// The mutable org.
pub struct Inner {
    /// Added to the wall clock; moved by `/_fake/clock/advance`.
    pub clock_offset: Duration,
    /// Org-wide session timeout (Session Settings).
    pub session_timeout_secs: u64,
    /// Users; index 0 is the integration user.
    pub users: Vec<User>,
    /// Connected apps; index 0 is the default app, index 1 the "other" app.
    pub apps: Vec<App>,
    /// Live sessions by token.
    pub sessions: HashMap<String, Session>,
    /// Every refresh token ever issued.
    pub refresh: HashMap<String, RefreshEntry>,
    /// Refresh-token families.
    pub families: HashMap<u64, Family>,
    /// Pending authorization codes.
    pub codes: HashMap<String, AuthCode>,
    /// Pending device authorizations.
    pub devices: Vec<DeviceRequest>,
    /// Network policy.
    pub network: Network,
    /// Injected faults.
    pub faults: Vec<Fault>,
    /// Recent login times per user id (rate limit).
    pub login_times: HashMap<String, VecDeque<OffsetDateTime>>,
    /// Logins allowed per user per hour.
    pub login_rate_limit: u32,
    /// DailyApiRequests Max.
    pub daily_api_limit: u64,
    /// DailyApiRequests used.
    pub api_used: u64,
    /// Counters.
    pub stats: Stats,
    /// The Account records.
    pub accounts: Accounts,
    /// LoginHistory rows.
    pub login_history: Vec<Row>,
    /// SetupAuditTrail rows.
    pub audit: Vec<Row>,
    /// Query cursors by locator id.
    pub cursors: HashMap<String, Cursor>,
    /// Insertion order of cursors with their creation time, to bound memory and expire
    /// them.
    pub cursor_order: VecDeque<(String, OffsetDateTime)>,
    /// Refresh tokens whose refresh is in flight.
    pub inflight_refresh: HashSet<String>,
    /// Bulk API 2.0 query jobs by id.
    pub bulk_jobs: HashMap<String, QueryJob>,
    /// Bulk API 2.0 ingest jobs by id.
    pub ingest_jobs: HashMap<String, IngestJob>,
    /// Bulk API 1.0 jobs by id.
    pub async_jobs: HashMap<String, AsyncJob>,
    /// JWT `jti` values already used.
    pub used_jti: HashSet<String>,
    /// Sequence for generated ids.
    pub seq: u64,
    /// Every access token / session id ever issued (for `GET /_fake/tokens`: leak audits).
    pub issued_access: Vec<String>,
    /// Password Policies' "User passwords expire in", seconds; `None` is "Never expires"
    /// (`PUT /_fake/password-policy`).
    pub password_max_age_secs: Option<u64>,
}

/// The org: fixed facts plus the locked mutable state.
pub struct Org {
    /// `http://127.0.0.1:PORT`: login URL and instance URL at once.
    pub base_url: String,
    /// 18-char org id.
    pub org_id: String,
    /// 15-char org id (used in session ids and SOAP URLs).
    pub org_id15: String,
    /// Four characters shared by every record id of this org.
    pub pod: String,
    /// Organization name.
    pub org_name: String,
    /// Connections and requests in progress (outside the lock).
    pub activity: Arc<Activity>,
    inner: Mutex<Inner>,
}

impl Org {
    /// Wraps the state.
    pub fn new(base_url: String, pod: String, inner: Inner) -> Self {
        let org_id = ids::id18("00D", &pod, 1);
        Org {
            base_url,
            org_id15: org_id[..15].to_owned(),
            org_id,
            pod,
            org_name: "sfkeep Simulated Org".to_owned(),
            activity: Arc::new(Activity::default()),
            inner: Mutex::new(inner),
        }
    }

    /// Locks the state. A panic while holding the lock must not take the org down,
    /// so a poisoned lock is recovered. Whoever holds the lock sees the org as of now: lagged
    /// writes whose commit time has come are committed and expired cursors are gone.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = inner.now();
        inner.accounts.settle(now);
        // Lagged writes are waited for by the request that made them, under this lock.
        inner.accounts.commits_mut().take_wait();
        inner.expire_cursors(now);
        inner
    }

    /// Waits until the lagged writes in `wait` are committed: when the org clock reaches their
    /// commit time (a `clock/advance` brings it forward), then commits them, so the response
    /// that follows is never sent before its write is visible (src/commits.rs).
    pub async fn wait_for_commits(&self, wait: Option<crate::commits::CommitWait>) {
        let Some(wait) = wait else {
            return;
        };
        loop {
            let remaining = {
                let mut inner = self.lock();
                if inner.accounts.commits().all_committed(&wait) {
                    return;
                }
                let now = inner.now();
                let left = wait.until.map_or(Duration::ZERO, |u| u - now);
                if left <= Duration::ZERO {
                    for w in &wait.writes {
                        inner.accounts.commit_write(*w);
                    }
                    return;
                }
                left
            };
            // Re-check at least every 50 ms: the org clock may be moved forward meanwhile.
            let ms = remaining.whole_milliseconds().clamp(1, 50) as u64;
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }

    /// The identity URL of a user.
    pub fn identity_url(&self, user_id: &str) -> String {
        format!("{}/id/{}/{}", self.base_url, self.org_id, user_id)
    }

    /// A fresh access token / session id: `<15-char org id>!<opaque>` (§1.1).
    pub fn new_access_token(&self) -> String {
        format!("{}!AQ{}", self.org_id15, ids::random_token_chars(94))
    }
}

/// Approvals (refresh-token families) one user may hold for one connected app.
pub const APPROVALS_PER_USER_PER_APP: usize = 5;

/// LoginHistory.Status values (§9).
pub mod login_status {
    /// Successful login.
    pub const SUCCESS: &str = "Success";
    /// Wrong password (or security token).
    pub const INVALID_PASSWORD: &str = "Invalid Password";
    /// Deactivated user.
    pub const INACTIVE: &str = "User is Inactive";
    /// Frozen user.
    pub const FROZEN: &str = "User Is Frozen";
    /// Outside the login IP ranges.
    pub const RESTRICTED_IP: &str = "Restricted IP";
    /// Login rate limit.
    pub const RATE_EXCEEDED: &str = "Login Rate Exceeded";
    /// A SOAP `login()` of a user without "API Enabled" (UNVERIFIED text).
    pub const API_DISABLED: &str = "API Disabled";
    /// A login whose password has expired under the password policy (UNVERIFIED text).
    pub const PASSWORD_EXPIRED: &str = "Password Expired";
}

impl Inner {
    /// The org's clock.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    /// When user `ui`'s password expires under the password policy (`None`: never).
    pub fn password_expires_at(&self, ui: usize) -> Option<OffsetDateTime> {
        let max = self.password_max_age_secs?;
        Some(
            self.users[ui].last_password_change
                + Duration::seconds(max.min(i64::MAX as u64) as i64),
        )
    }

    /// Whether user `ui`'s password has expired now.
    pub fn password_expired(&self, ui: usize) -> bool {
        self.password_expires_at(ui)
            .is_some_and(|at| self.now() >= at)
    }

    /// Moves the org's clock by `by` (either way) without anything ageing: every session,
    /// refresh token, pending code and login-rate entry moves with it, as if this org's clock
    /// had always been that far from its callers' (`/_fake/clock/skew`). Rows already written
    /// (LoginHistory, SetupAuditTrail, user dates) keep the times they were written with.
    pub fn skew(&mut self, by: Duration) {
        self.clock_offset += by;
        for s in self.sessions.values_mut() {
            s.created += by;
            s.last_modified += by;
        }
        for f in self.families.values_mut() {
            f.created += by;
            f.last_used += by;
        }
        for c in self.codes.values_mut() {
            c.created += by;
        }
        for d in &mut self.devices {
            d.created += by;
        }
        for q in self.login_times.values_mut() {
            for t in q.iter_mut() {
                *t += by;
            }
        }
    }

    /// A new 18-char id with `prefix`.
    pub fn next_id(&mut self, prefix: &str, pod: &str) -> String {
        self.seq += 1;
        ids::id18(prefix, pod, self.seq)
    }

    /// Index of a user by username (case-insensitive, as Salesforce usernames are).
    pub fn user_by_name(&self, username: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|u| u.username.eq_ignore_ascii_case(username))
    }

    /// Index of a user by id.
    pub fn user_by_id(&self, id: &str) -> Option<usize> {
        self.users.iter().position(|u| u.id == id)
    }

    /// Index of an app by consumer key.
    pub fn app_by_client_id(&self, client_id: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.client_id == client_id)
    }

    /// Session timeout for a new session of `client_id`: the app's Timeout Value,
    /// else the org's (§8.1 precedence; profiles are not modelled).
    pub fn timeout_for(&self, client_id: Option<&str>) -> u64 {
        client_id
            .and_then(|c| self.app_by_client_id(c))
            .and_then(|i| self.apps[i].policy.session_timeout_seconds)
            .unwrap_or(self.session_timeout_secs)
    }

    /// Ends every session matching `pred`.
    pub fn end_sessions(&mut self, pred: impl Fn(&Session) -> bool) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| !pred(s));
        before - self.sessions.len()
    }

    /// Revokes a refresh-token family and every access token issued from it.
    pub fn revoke_family(&mut self, family: u64) {
        if let Some(f) = self.families.get_mut(&family) {
            f.revoked = true;
        }
        self.end_sessions(|s| s.family == Some(family));
    }

    /// Starts a new refresh-token family (an approval of the app by the user); returns its
    /// refresh token. A user has at most [`APPROVALS_PER_USER_PER_APP`] live approvals of one
    /// app: approving again beyond that revokes the least recently used one first, with its
    /// access tokens (docs/guardian.md, "Five approvals per user per app").
    pub fn new_family(
        &mut self,
        client_id: &str,
        user_id: &str,
        scope: &str,
        now: OffsetDateTime,
    ) -> (u64, String) {
        let mut live: Vec<(OffsetDateTime, u64)> = self
            .families
            .values()
            .filter(|f| !f.revoked && f.client_id == client_id && f.user_id == user_id)
            .map(|f| (f.last_used, f.id))
            .collect();
        live.sort_unstable();
        let over = (live.len() + 1).saturating_sub(APPROVALS_PER_USER_PER_APP);
        for (_, id) in live.into_iter().take(over) {
            self.revoke_family(id);
        }
        self.seq += 1;
        let id = self.seq;
        let token = new_refresh_token();
        self.families.insert(
            id,
            Family {
                id,
                client_id: client_id.to_owned(),
                user_id: user_id.to_owned(),
                current: token.clone(),
                created: now,
                last_used: now,
                use_count: 0,
                revoked: false,
                scope: scope.to_owned(),
            },
        );
        self.refresh.insert(
            token.clone(),
            RefreshEntry {
                family: id,
                rotated_out: false,
            },
        );
        (id, token)
    }

    /// Replaces a family's current refresh token (rotation); the old one becomes reuse bait.
    pub fn rotate(&mut self, family: u64) -> String {
        let token = new_refresh_token();
        if let Some(f) = self.families.get_mut(&family) {
            if let Some(old) = self.refresh.get_mut(&f.current) {
                old.rotated_out = true;
            }
            f.current = token.clone();
        }
        self.refresh.insert(
            token.clone(),
            RefreshEntry {
                family,
                rotated_out: false,
            },
        );
        token
    }

    /// Appends a LoginHistory row.
    #[allow(clippy::too_many_arguments)]
    pub fn log_login(
        &mut self,
        pod: &str,
        login_url: &str,
        user_id: &str,
        ip: IpAddr,
        status: &str,
        login_type: &str,
        application: &str,
    ) -> String {
        let now = self.now();
        let id = self.next_id("0Ya", pod);
        let mut row = Row::new();
        row.insert("Id".into(), json!(id));
        row.insert("UserId".into(), json!(user_id));
        row.insert("LoginTime".into(), json!(ids::sf_datetime(now)));
        row.insert("SourceIp".into(), json!(ip.to_string()));
        row.insert("Status".into(), json!(status));
        row.insert("LoginType".into(), json!(login_type));
        row.insert("Application".into(), json!(application));
        let host = login_url
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        row.insert("LoginUrl".into(), json!(host));
        self.login_history.push(row);
        id
    }

    /// Appends a SetupAuditTrail row, made by the org's admin user (index 1).
    pub fn audit(&mut self, pod: &str, action: &str, section: &str, display: String) {
        let now = self.now();
        let id = self.next_id("0Ym", pod);
        let admin = self.users.get(1).map(|u| u.id.clone()).unwrap_or_default();
        let mut row = Row::new();
        row.insert("Id".into(), json!(id));
        row.insert("Action".into(), json!(action));
        row.insert("Display".into(), json!(display));
        row.insert("Section".into(), json!(section));
        row.insert("CreatedDate".into(), json!(ids::sf_datetime(now)));
        row.insert("CreatedById".into(), json!(admin));
        self.audit.push(row);
    }

    /// Records a login for the rate limit; returns false when the user is over it.
    pub fn rate_limit_ok(&mut self, user_id: &str, now: OffsetDateTime) -> bool {
        let limit = self.login_rate_limit as usize;
        let q = self.login_times.entry(user_id.to_owned()).or_default();
        while q.front().is_some_and(|t| now - *t >= Duration::hours(1)) {
            q.pop_front();
        }
        if q.len() >= limit {
            return false;
        }
        q.push_back(now);
        true
    }

    /// Stores a cursor, keeping at most a few hundred.
    pub fn store_cursor(&mut self, pod: &str, cursor: Cursor) -> String {
        let id = self.next_id("01g", pod);
        self.cursors.insert(id.clone(), cursor);
        self.cursor_order.push_back((id.clone(), self.now()));
        while self.cursor_order.len() > 256 {
            if let Some((old, _)) = self.cursor_order.pop_front() {
                self.cursors.remove(&old);
            }
        }
        id
    }

    /// Drops the cursors older than [`CURSOR_LIFETIME`]: their locators then answer
    /// `INVALID_QUERY_LOCATOR`, as an expired one does on Salesforce.
    pub fn expire_cursors(&mut self, now: OffsetDateTime) {
        while let Some((id, created)) = self.cursor_order.front() {
            if now - *created < CURSOR_LIFETIME {
                break;
            }
            self.cursors.remove(id);
            self.cursor_order.pop_front();
        }
    }

    /// Counts a token-endpoint request for `grant`.
    pub fn count_token_request(&mut self, grant: &'static str) {
        *self.stats.token_requests.entry(grant).or_default() += 1;
    }

    /// The `/_fake/stats` document.
    pub fn stats_json(&self) -> Value {
        let mut token_requests = Map::new();
        for key in [
            "refresh_token",
            "jwt_bearer",
            "client_credentials",
            "password",
            "authorization_code",
            "device",
        ] {
            let n = self.stats.token_requests.get(key).copied().unwrap_or(0);
            token_requests.insert(key.to_owned(), json!(n));
        }
        for (k, v) in &self.stats.token_requests {
            token_requests.entry(k.to_string()).or_insert(json!(v));
        }
        json!({
            "token_requests": token_requests,
            "token_errors": self.stats.token_errors,
            "soap_logins": self.stats.soap_logins,
            "api_requests": self.stats.api_requests,
            "invalid_session_responses": self.stats.invalid_session_responses,
            "refresh_token_reuse_detected": self.stats.refresh_token_reuse_detected,
            "records": {"Account": self.accounts.live_count()},
        })
    }
}

/// A fresh refresh token (`5Aep861…`, the prefix every recorded one has).
pub fn new_refresh_token() -> String {
    format!("5Aep861{}", ids::random_token_chars(80))
}
