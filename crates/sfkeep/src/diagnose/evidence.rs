//! Evidence-based ranking for `sfkeep doctor`: pure functions from gathered [`Facts`] to a
//! [`Diagnosis`], so every rule is unit-tested without an org.
//!
//! The facts come from the audit log (last successful call and its source address, recent
//! events), the stored token (introspection, a probe), one dry refresh with the profile's
//! grants, the server's `Date` header, and, when some grant still yields a working token, SOQL
//! on User, UserLogin, LoginHistory, AuthSession, OauthToken and SetupAuditTrail.
//!
//! All times are on the server's clock (local time plus the measured `Date` offset).

use std::time::Duration;

use super::Cause;
use super::diagnosis::{Diagnosis, DiagnosisCause as D, Finding};
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
    /// The org's login IP ranges, when known.
    pub login_ip_ranges: Option<Vec<(String, String)>>,
    /// Server minus local clock, from the `Date` header.
    pub clock_offset_ms: Option<i64>,
    /// Recent auth events from the audit log, any order.
    pub recent_events: Vec<PastEvent>,
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
            login_ip_ranges: None,
            clock_offset_ms: None,
            recent_events: Vec::new(),
        }
    }
}

/// Clock offsets at or above this are reported.
pub const SKEW_WARN: Duration = Duration::from_secs(5 * 60);

/// `2h 1m 40s`, `4m 10s`, `12s`, `0s`: a duration to the second, for a person.
pub fn human_exact(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    let parts: Vec<String> = [(days, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .filter(|(n, _)| *n != 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// How the server's clock relates to this machine's, from `offset_ms` (server minus local):
/// `2h 1m 40s ahead of this machine's`, `12s behind this machine's`, or `in step with this
/// machine's` under two seconds (the `Date` header has one-second resolution).
pub fn clock_offset_text(offset_ms: i64) -> String {
    if offset_ms.unsigned_abs() < 2_000 {
        return "in step with this machine's (within 2s)".to_owned();
    }
    let d = human_exact(Duration::from_millis(offset_ms.unsigned_abs()));
    if offset_ms > 0 {
        format!("{d} ahead of this machine's")
    } else {
        format!("{d} behind this machine's")
    }
}

/// `3h05m`, `4m10s`, `12s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

/// Parses Salesforce's REST datetime (`2026-11-28T05:58:09.000+0000`, also `Z` or `+00:00`).
pub fn parse_sf_datetime(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    let (main, offset_secs) = if let Some(m) = s.strip_suffix('Z') {
        (m, 0i64)
    } else {
        let t = s.find('T')?;
        let idx = s.rfind(['+', '-'])?;
        if idx < t {
            return None;
        }
        let (m, o) = s.split_at(idx);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return None;
        }
        let h: i64 = digits[..2].parse().ok()?;
        let mi: i64 = digits[2..].parse().ok()?;
        (m, sign * (h * 3600 + mi * 60))
    };
    Some(UnixMillis(parse_naive(main)? - offset_secs * 1000))
}

fn parse_naive(main: &str) -> Option<i64> {
    let (secs_part, millis) = match main.split_once('.') {
        Some((a, frac)) => {
            let digits: String = frac.chars().take(3).collect();
            let mut ms: i64 = digits.parse().ok()?;
            for _ in digits.len()..3 {
                ms *= 10;
            }
            (a, ms)
        }
        None => (main, 0),
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(secs_part, &fmt).ok()?;
    Some(t.assume_utc().unix_timestamp() * 1000 + millis)
}

fn ip_in_range(ip: &str, lo: &str, hi: &str) -> Option<bool> {
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let lo: std::net::IpAddr = lo.parse().ok()?;
    let hi: std::net::IpAddr = hi.parse().ok()?;
    Some(match (ip, lo, hi) {
        (std::net::IpAddr::V4(i), std::net::IpAddr::V4(l), std::net::IpAddr::V4(h)) => {
            (u32::from(l)..=u32::from(h)).contains(&u32::from(i))
        }
        (std::net::IpAddr::V6(i), std::net::IpAddr::V6(l), std::net::IpAddr::V6(h)) => {
            (u128::from(l)..=u128::from(h)).contains(&u128::from(i))
        }
        _ => false,
    })
}

fn probe_dead(p: &TokenProbe) -> bool {
    matches!(p, TokenProbe::Rejected { .. })
}

/// What a failed grant's cause says, as findings.
fn grant_failure(
    grant: GrantKind,
    cause: Cause,
    detail: &str,
    f: &Facts,
    weight: f64,
) -> Vec<Finding> {
    let g = grant.as_str();
    let e = |s: String| vec![s];
    let said = format!("a dry refresh with the {g} grant was refused: {detail}");
    let mut out = Vec::new();
    let push = |out: &mut Vec<Finding>, c: D, conf: f64, why: String| {
        out.push(Finding::new(c, conf * weight, e(why)));
    };
    match cause {
        Cause::InactiveUser => push(&mut out, D::UserDeactivated, 0.95, said),
        Cause::IpRestricted => push(&mut out, D::IpRestricted, 0.95, said),
        Cause::AppNotApproved => push(&mut out, D::AppNotApproved, 0.95, said),
        Cause::RateLimited => push(&mut out, D::RateLimited, 0.9, said),
        Cause::SessionNotValidForApi => push(&mut out, D::SessionNotValidForApi, 0.9, said),
        Cause::InactiveOrg => push(&mut out, D::ApiDisabled, 0.8, said),
        Cause::RequestLimitExceeded => push(&mut out, D::RateLimited, 0.85, said),
        Cause::RefreshTokenRevoked => {
            let rotated = f.recent_events.iter().any(|e| e.rotated);
            push(
                &mut out,
                D::AppTokensRevoked,
                0.5,
                format!("{said} (the refresh token is dead; an admin revoke is the usual reason)"),
            );
            push(
                &mut out,
                D::RefreshTokenExpiredByPolicy,
                0.3,
                format!("{said} (an idle or absolute refresh-token policy gives the same answer)"),
            );
            push(
                &mut out,
                D::RefreshTokenReused,
                if rotated { 0.6 } else { 0.15 },
                if rotated {
                    format!(
                        "{said}, and the audit log shows the refresh token rotating: a rotated-out token used twice revokes the whole family"
                    )
                } else {
                    format!("{said} (reusing a rotated-out refresh token gives the same answer)")
                },
            );
        }
        Cause::AuthenticationFailure => {
            if matches!(grant, GrantKind::Password | GrantKind::SoapLogin) {
                push(
                    &mut out,
                    D::PasswordChanged,
                    0.6,
                    format!("{said} (a wrong password or security token)"),
                );
                push(
                    &mut out,
                    D::UserFrozen,
                    0.35,
                    format!("{said} (a frozen user is refused the same way)"),
                );
            } else {
                push(
                    &mut out,
                    D::UserFrozen,
                    0.8,
                    format!(
                        "{said}; the {g} grant sends no password, and Salesforce refuses a frozen user's token requests as an authentication failure"
                    ),
                );
            }
        }
        Cause::InvalidAssertion | Cause::AuthorizationCodeExpired | Cause::AudienceInvalid => {
            let skew = f
                .clock_offset_ms
                .is_some_and(|o| o.unsigned_abs() >= 60_000);
            if skew && cause != Cause::AudienceInvalid {
                push(
                    &mut out,
                    D::ClockSkew,
                    0.8,
                    format!("{said}, and the local clock is off by {}", offset_text(f)),
                );
            } else {
                out.push(Finding::new(D::Unknown, 0.5 * weight, e(said)).with_fix(cause.fix()));
            }
        }
        Cause::Transient => out.push(
            Finding::new(D::Unknown, 0.3 * weight, e(said))
                .with_fix("The org did not answer properly: retry `sfkeep doctor` in a minute."),
        ),
        other => out.push(Finding::new(D::Unknown, 0.45 * weight, e(said)).with_fix(other.fix())),
    }
    out
}

fn offset_text(f: &Facts) -> String {
    let o = f.clock_offset_ms.unwrap_or(0);
    let d = human_exact(Duration::from_millis(o.unsigned_abs()));
    if o >= 0 {
        format!("{d} (the server is ahead)")
    } else {
        format!("{d} (the server is behind)")
    }
}

/// Causes that mean the refresh token is dead (a JWT bearer or client-credentials fallback
/// grant does not need it).
fn refresh_token_dead(c: D) -> bool {
    matches!(
        c,
        D::AppTokensRevoked | D::RefreshTokenExpiredByPolicy | D::RefreshTokenReused
    )
}

/// The fix for a dead refresh token given what the profile's fallback grant did in the dry
/// refresh; `None` without a fallback (the cause's own fix says to configure one).
fn refresh_token_fix(c: D, f: &Facts) -> Option<String> {
    let fb = f
        .dry_refresh
        .iter()
        .find(|a| a.grant != GrantKind::RefreshToken)?;
    let g = fb.grant.as_str();
    let why = match c {
        D::AppTokensRevoked => "Ask the admin why the app's tokens were revoked.",
        D::RefreshTokenExpiredByPolicy => {
            "Check the app's refresh-token policy (Manage Connected Apps > OAuth Policies)."
        }
        _ => {
            "Make every process share one token store so a rotated refresh token is never used twice."
        }
    };
    Some(match &fb.outcome {
        Ok(()) => format!(
            "The profile's {g} fallback grant gets new tokens without the refresh token (the sfkeep library and proxy switch to it by themselves): run `sfkeep recover` to store one now. For a new refresh token, `sfkeep login --web`. {why}"
        ),
        Err((cause, _)) => format!(
            "The profile's {g} fallback grant was refused too ({cause}): fix that first (see its finding), then `sfkeep recover`; or get a new refresh token with `sfkeep login --web`. {why}"
        ),
    })
}

/// Whether a refused grant sends the user's password (so a changed password breaks it).
fn sends_password(g: GrantKind) -> bool {
    matches!(g, GrantKind::Password | GrantKind::SoapLogin)
}

fn at_text(now: UnixMillis, t: UnixMillis) -> String {
    if t.0 <= now.0 {
        format!("{} ago", human(now.since(t)))
    } else {
        format!("in {}", human(t.since(now)))
    }
}

/// Ranks the causes `facts` point at.
pub fn diagnose(f: &Facts) -> Diagnosis {
    let mut out: Vec<Finding> = Vec::new();
    let now = f.now;
    let any_grant_ok = f.dry_refresh.iter().any(|a| a.outcome.is_ok());
    let grants_failed_for_good = f
        .dry_refresh
        .iter()
        .any(|a| matches!(&a.outcome, Err((c, _)) if *c != Cause::Transient));
    let token_dead =
        probe_dead(&f.probe) || (f.introspection == Some(false) && f.probe != TokenProbe::Alive);
    // The last time the session is known to have been used.
    let since = match (f.last_success_at, f.token_issued_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    // What happened before this cannot have killed the stored token: it was issued later
    // (the server's own `issued_at`, exact), or it was still used successfully later (the
    // audit log's time plus the measured `Date` offset, good to about a second).
    let cutoff = match (
        f.last_success_at.map(|t| UnixMillis(t.0 - 1_000)),
        f.token_issued_at,
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let after_since = |t: UnixMillis| cutoff.is_none_or(|c| t.0 >= c.0);

    // 1. The dry refresh: the server's own words about each grant.
    for a in &f.dry_refresh {
        if let Err((cause, detail)) = &a.outcome {
            out.extend(grant_failure(a.grant, *cause, detail, f, 1.0));
        }
    }

    // 2. The user, as SOQL shows it.
    if let Some(u) = &f.user {
        if !u.is_active {
            out.push(Finding::new(
                D::UserDeactivated,
                0.97,
                vec!["User.IsActive is false".into()],
            ));
        }
        if u.is_frozen {
            out.push(Finding::new(
                D::UserFrozen,
                0.97,
                vec!["UserLogin.IsFrozen is true".into()],
            ));
        }
        if let Some(pc) = u.last_password_change
            && cutoff.is_some_and(|c| pc.0 >= c.0)
        {
            out.push(Finding::new(
                D::PasswordChanged,
                if token_dead { 0.9 } else { 0.5 },
                vec![format!(
                    "User.LastPasswordChangeDate is {}, after the session was last used ({})",
                    at_text(now, pc),
                    since.map(|s| at_text(now, s)).unwrap_or_default()
                )],
            ));
        }
    }

    // 3. Setup changes since the session was last used.
    let mut audit: Vec<&AuditRow> = f.setup_audit.iter().filter(|r| after_since(r.at)).collect();
    audit.sort_by_key(|r| r.at);
    for r in &audit {
        let a = r.action.to_ascii_lowercase();
        let line = format!(
            "SetupAuditTrail {}: {} ({})",
            at_text(now, r.at),
            r.display,
            r.action
        );
        let (cause, conf) = if a.contains("revoke") {
            (
                D::AppTokensRevoked,
                if token_dead || grants_failed_for_good {
                    0.9
                } else {
                    0.4
                },
            )
        } else if a.contains("password") {
            (D::PasswordChanged, if token_dead { 0.85 } else { 0.4 })
        } else if a.contains("froze") && !a.contains("unfroze") {
            (D::UserFrozen, 0.85)
        } else if a.contains("deactivat") {
            (D::UserDeactivated, 0.85)
        } else if a.contains("sessionsettings") || a.contains("ip") && a.contains("range") {
            (D::IpRestricted, 0.4)
        } else if a.contains("policy") {
            if r.display.contains("jwt_preapproved") || r.display.contains("Permitted") {
                (D::AppNotApproved, 0.4)
            } else {
                (D::RefreshTokenExpiredByPolicy, 0.35)
            }
        } else {
            continue;
        };
        // A later unfreeze/activate undoes a freeze/deactivation.
        let undone = match cause {
            D::UserFrozen => f.user.as_ref().is_some_and(|u| !u.is_frozen),
            D::UserDeactivated => f.user.as_ref().is_some_and(|u| u.is_active),
            _ => false,
        };
        if !undone {
            out.push(Finding::new(cause, conf, vec![line]));
        }
    }

    // 4. Failed logins since then.
    let mut logins: Vec<&LoginRow> = f
        .login_history
        .iter()
        .filter(|r| after_since(r.at))
        .collect();
    logins.sort_by_key(|r| r.at);
    for r in logins.iter().rev().take(5) {
        let cause = match r.status.as_str() {
            "User Is Frozen" => D::UserFrozen,
            "User is Inactive" => D::UserDeactivated,
            "Restricted IP" => D::IpRestricted,
            "Login Rate Exceeded" => D::RateLimited,
            "Invalid Password" => D::PasswordChanged,
            _ => continue,
        };
        // The user as SOQL shows it now outranks an older refused login.
        let undone = match cause {
            D::UserFrozen => f.user.as_ref().is_some_and(|u| !u.is_frozen),
            D::UserDeactivated => f.user.as_ref().is_some_and(|u| u.is_active),
            _ => false,
        };
        if undone {
            continue;
        }
        out.push(Finding::new(
            cause,
            0.8,
            vec![format!(
                "LoginHistory {}: \"{}\" from {}",
                at_text(now, r.at),
                r.status,
                r.source_ip
            )],
        ));
    }

    // 5. The source address.
    if let Some(cur) = &f.current_source_ip {
        let outside = f.login_ip_ranges.as_ref().map(|ranges| {
            !ranges.is_empty()
                && !ranges
                    .iter()
                    .filter_map(|(lo, hi)| ip_in_range(cur, lo, hi))
                    .any(|b| b)
        });
        if outside == Some(true) {
            out.push(Finding::new(
                D::IpRestricted,
                0.9,
                vec![format!(
                    "this machine calls from {cur}, outside the org's login IP ranges"
                )],
            ));
        }
        if let Some(last) = &f.last_success_source_ip
            && last != cur
        {
            out.push(Finding::new(
                D::IpRestricted,
                if token_dead || grants_failed_for_good { 0.6 } else { 0.3 },
                vec![format!(
                    "the source address changed: the last successful call came from {last}, this machine now calls from {cur}"
                )],
            ));
        }
    }

    // 6. What the stored token's probe said, when it names a policy rather than a death.
    if let TokenProbe::Rejected { status, body } = &f.probe {
        let d = super::classify::classify_error_text(body);
        if matches!(
            d.verdict,
            D::SessionNotValidForApi | D::ApiDisabled | D::RateLimited
        ) {
            let mut top = d.top().clone();
            top.evidence.insert(
                0,
                format!("the stored token was refused with HTTP {status}"),
            );
            out.push(top);
        }
    }

    // 7. The integration's last failure in the audit log, unless something worked after it
    //    (a refresh, an adopted token, a successful call: it was healed). Doctor's own dry
    //    refreshes are not the integration's history: their answers are in step 1 already.
    let mut past: Vec<&PastEvent> = f.recent_events.iter().filter(|e| !e.probe).collect();
    past.sort_by_key(|e| e.at);
    let last_failure = past.iter().rposition(|e| e.cause.is_some());
    let unhealed = last_failure
        .filter(|&i| !past[i + 1..].iter().any(|e| e.is_success()))
        .map(|i| past[i]);
    if let Some(e) = unhealed
        && let Some(c) = e.cause
        && c != Cause::SessionExpired
    {
        for mut fi in grant_failure(
            GrantKind::RefreshToken,
            c,
            &format!("{} ({})", e.kind, c),
            f,
            0.5,
        ) {
            fi.evidence = vec![format!(
                "the audit log's last failure: {} with cause {c}",
                e.kind
            )];
            out.push(fi);
        }
    }

    // 8. Clock skew.
    if let Some(o) = f.clock_offset_ms
        && o.unsigned_abs() >= SKEW_WARN.as_millis() as u64
    {
        out.push(Finding::new(
            D::ClockSkew,
            0.3,
            vec![format!(
                "the server's Date header differs from the local clock by {}",
                offset_text(f)
            )],
        ));
    }

    // 9. A recoverable death with nothing more specific: the timeout or a logout.
    let strongest = out.iter().map(|x| x.confidence).fold(0.0, f64::max);
    if token_dead && any_grant_ok {
        let scale = if strongest >= 0.7 { 0.25 } else { 1.0 };
        let refused = match &f.probe {
            TokenProbe::Rejected { status, .. } => {
                format!("the stored token is refused (HTTP {status})")
            }
            _ => "introspection says the stored token is no longer active".to_owned(),
        };
        match since {
            Some(s) => {
                let idle = now.since(s);
                let timeout = f.session_timeout;
                if idle >= timeout {
                    out.push(Finding::new(
                        D::SessionTimeout,
                        0.85 * scale,
                        vec![
                            refused.clone(),
                            format!(
                                "the session was last used {} ago, longer than the session timeout of {}",
                                human(idle),
                                human(timeout)
                            ),
                        ],
                    ));
                } else {
                    let mut ev = vec![
                        refused.clone(),
                        format!(
                            "the session was last used {} ago, well within the session timeout of {}: it did not time out",
                            human(idle),
                            human(timeout)
                        ),
                    ];
                    // Only what is not already a finding: never "no revoke shows" next to one.
                    let absent: Vec<&str> = [
                        (D::PasswordChanged, "password change"),
                        (D::UserFrozen, "freeze"),
                        (D::UserDeactivated, "deactivation"),
                        (D::AppTokensRevoked, "token revoke"),
                        (D::IpRestricted, "IP change"),
                    ]
                    .into_iter()
                    .filter(|(c, _)| !out.iter().any(|x| x.cause == *c))
                    .map(|(_, n)| n)
                    .collect();
                    if f.org_queried && !absent.is_empty() {
                        ev.push(format!(
                            "no {} shows in the org since then",
                            or_list(&absent)
                        ));
                    }
                    out.push(Finding::new(D::LoggedOutElsewhere, 0.65 * scale, ev));
                    out.push(Finding::new(
                        D::SessionTimeout,
                        0.1 * scale,
                        vec![format!(
                            "the session timeout is {}; the token died sooner",
                            human(timeout)
                        )],
                    ));
                }
            }
            None => {
                out.push(Finding::new(
                    D::SessionTimeout,
                    0.4 * scale,
                    vec![
                        refused.clone(),
                        "the audit log has no successful call to date the session's last use"
                            .into(),
                    ],
                ));
                out.push(Finding::new(
                    D::LoggedOutElsewhere,
                    0.3 * scale,
                    vec![
                        refused,
                        "a logout elsewhere kills a session the same way".into(),
                    ],
                ));
            }
        }
    }

    // Fixes that depend on the profile: a dead refresh token with a fallback grant, a changed
    // password when only a password login is left.
    let password_refused = f
        .dry_refresh
        .iter()
        .any(|a| sends_password(a.grant) && a.outcome.is_err());
    for x in &mut out {
        if refresh_token_dead(x.cause)
            && let Some(fix) = refresh_token_fix(x.cause, f)
        {
            x.fix = fix;
        }
        if x.cause == D::PasswordChanged && !any_grant_ok && password_refused {
            x.fix = super::diagnosis::NEW_PASSWORD_FIX.to_owned();
        }
    }

    // 10. Healthy. A stored token the server accepts means the session works now, whatever
    //     else was found: that becomes a warning about the next token request.
    let strongest = out.iter().map(|x| x.confidence).fold(0.0, f64::max);
    if f.probe == TokenProbe::Alive {
        for x in &mut out {
            x.confidence *= 0.6;
        }
        let mut ev = vec![
            "the stored token is accepted at /services/oauth2/userinfo: the session works now"
                .to_owned(),
        ];
        match f.dry_refresh.iter().find(|a| a.outcome.is_ok()) {
            Some(a) => ev.push(format!(
                "a dry refresh with the {} grant succeeded",
                a.grant.as_str()
            )),
            None if f.dry_refresh.is_empty() => ev.push(
                "but no grant of the profile can run, so nothing can replace this token when it ends"
                    .to_owned(),
            ),
            None => {
                for a in &f.dry_refresh {
                    if let Err((c, d)) = &a.outcome {
                        ev.push(format!(
                            "but a dry refresh with the {} grant was refused ({c}): {d}",
                            a.grant.as_str()
                        ));
                    }
                }
            }
        }
        let warning = out.iter().filter(|x| x.cause != D::Healthy).max_by(|a, b| {
            a.confidence
                .partial_cmp(&b.confidence)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let ends = f
            .token_issued_at
            .map(|t| t.plus(f.session_timeout))
            .filter(|e| e.0 > now.0)
            .map(|e| format!(" (in about {})", human(e.since(now))))
            .unwrap_or_default();
        let fix = if any_grant_ok {
            match warning {
                Some(w) if w.confidence >= 0.3 => {
                    "Nothing to do now; the other findings are worth a look.".to_owned()
                }
                _ => D::Healthy.fix().to_owned(),
            }
        } else {
            match warning {
                Some(w) if grants_failed_for_good => format!(
                    "Nothing to do for the running session, but when the stored token ends{ends} the next login or refresh will be refused ({}): act before then. {}",
                    w.cause, w.fix
                ),
                Some(_) => format!(
                    "Nothing to do for the running session; the dry refresh failed for a reason that may pass: run `sfkeep doctor` again before the stored token ends{ends}."
                ),
                None => format!(
                    "Nothing to do for the running session, but no grant of the profile can replace the stored token when it ends{ends}: log in again (`sfkeep login`) or configure a grant that can run."
                ),
            }
        };
        out.push(Finding::new(D::Healthy, 0.9, ev).with_fix(fix));
    } else if !token_dead && !grants_failed_for_good && any_grant_ok && strongest < 0.5 {
        let mut ev = Vec::new();
        match &f.probe {
            TokenProbe::Alive => ev.push("the stored token is accepted".to_owned()),
            TokenProbe::Missing => ev.push("no token is stored yet".to_owned()),
            _ => {}
        }
        if let Some(a) = f.dry_refresh.iter().find(|a| a.outcome.is_ok()) {
            ev.push(format!(
                "a dry refresh with the {} grant succeeded",
                a.grant.as_str()
            ));
        }
        out.push(Finding::new(D::Healthy, 0.9, ev));
    }

    let recoverable = if f.dry_refresh.is_empty() {
        None
    } else {
        Some(any_grant_ok)
    };
    let mut d = Diagnosis::ranked(out, recoverable);
    if d.verdict == D::Healthy {
        // Healthy now; recoverable says whether a new token can be had when this one ends.
        d.recoverable = any_grant_ok;
    }
    d
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn base() -> Facts {
        Facts {
            now: NOW,
            session_timeout: Duration::from_secs(7200),
            last_success_at: Some(UnixMillis(NOW.0 - 60_000)),
            last_success_source_ip: Some("127.0.0.1".into()),
            current_source_ip: Some("127.0.0.1".into()),
            token_issued_at: Some(UnixMillis(NOW.0 - 120_000)),
            probe: TokenProbe::Rejected {
                status: 401,
                body:
                    r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
                        .into(),
            },
            introspection: Some(false),
            dry_refresh: vec![GrantAttempt {
                grant: GrantKind::RefreshToken,
                outcome: Ok(()),
            }],
            org_queried: true,
            user: Some(UserFacts {
                is_active: true,
                is_frozen: false,
                last_password_change: Some(UnixMillis(NOW.0 - 30 * 24 * H)),
            }),
            clock_offset_ms: Some(0),
            ..Facts::default()
        }
    }

    fn fail(grant: GrantKind, cause: Cause, detail: &str) -> GrantAttempt {
        GrantAttempt {
            grant,
            outcome: Err((cause, detail.into())),
        }
    }

    #[test]
    fn a_dead_token_within_the_timeout_is_a_logout() {
        let d = diagnose(&base());
        assert_eq!(d.verdict, D::LoggedOutElsewhere, "{d:#?}");
        assert!(d.recoverable);
    }

    #[test]
    fn a_dead_token_after_long_idle_is_a_timeout_even_with_the_server_clock_ahead() {
        let mut f = base();
        f.now = UnixMillis(NOW.0 + 3 * H);
        f.clock_offset_ms = Some(3 * H);
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::SessionTimeout, "{d:#?}");
        assert!(d.causes.iter().any(|c| c.cause == D::ClockSkew));
    }

    #[test]
    fn a_password_change_after_the_last_use() {
        let mut f = base();
        f.user.as_mut().unwrap().last_password_change = Some(UnixMillis(NOW.0 - 10_000));
        f.setup_audit.push(AuditRow {
            at: UnixMillis(NOW.0 - 10_000),
            action: "changedpassword".into(),
            display: "Changed password for user x".into(),
        });
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::PasswordChanged, "{d:#?}");
        assert!(d.recoverable);
    }

    #[test]
    fn a_revoke_with_a_working_fallback() {
        let mut f = base();
        f.dry_refresh = vec![
            fail(
                GrantKind::RefreshToken,
                Cause::RefreshTokenRevoked,
                "invalid_grant: expired access/refresh token",
            ),
            GrantAttempt {
                grant: GrantKind::JwtBearer,
                outcome: Ok(()),
            },
        ];
        f.setup_audit.push(AuditRow {
            at: UnixMillis(NOW.0 - 5_000),
            action: "connectedapprevoketokens".into(),
            display: "Revoked all OAuth tokens".into(),
        });
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::AppTokensRevoked, "{d:#?}");
        assert!(d.recoverable);
    }

    #[test]
    fn frozen_deactivated_ip_and_not_approved_without_the_org() {
        for (cause, grant, want) in [
            (
                Cause::AuthenticationFailure,
                GrantKind::RefreshToken,
                D::UserFrozen,
            ),
            (
                Cause::InactiveUser,
                GrantKind::RefreshToken,
                D::UserDeactivated,
            ),
            (
                Cause::IpRestricted,
                GrantKind::RefreshToken,
                D::IpRestricted,
            ),
            (
                Cause::AppNotApproved,
                GrantKind::JwtBearer,
                D::AppNotApproved,
            ),
        ] {
            let mut f = base();
            f.org_queried = false;
            f.user = None;
            f.dry_refresh = vec![fail(grant, cause, "x")];
            let d = diagnose(&f);
            assert_eq!(d.verdict, want, "{d:#?}");
            assert!(!d.recoverable);
        }
    }

    #[test]
    fn a_moved_source_address_outside_the_ranges() {
        let mut f = base();
        f.current_source_ip = Some("127.0.0.2".into());
        f.login_ip_ranges = Some(vec![("127.0.0.1".into(), "127.0.0.1".into())]);
        f.dry_refresh = vec![fail(
            GrantKind::RefreshToken,
            Cause::IpRestricted,
            "ip restricted",
        )];
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::IpRestricted);
        assert!(
            d.top().evidence.iter().any(|e| e.contains("127.0.0.2")),
            "{d:#?}"
        );
    }

    #[test]
    fn healthy_and_rotation_reuse() {
        let mut f = base();
        f.probe = TokenProbe::Alive;
        f.introspection = Some(true);
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::Healthy, "{d:#?}");
        assert!(d.recoverable);

        let mut f = base();
        f.org_queried = false;
        f.user = None;
        f.recent_events.push(PastEvent {
            at: NOW,
            kind: "token.refreshed".into(),
            cause: None,
            rotated: true,
            probe: false,
        });
        f.dry_refresh = vec![fail(
            GrantKind::RefreshToken,
            Cause::RefreshTokenRevoked,
            "expired access/refresh token",
        )];
        assert_eq!(diagnose(&f).verdict, D::RefreshTokenReused);
    }

    fn past(at: i64, kind: &str, cause: Option<Cause>, probe: bool) -> PastEvent {
        PastEvent {
            at: UnixMillis(at),
            kind: kind.into(),
            cause,
            rotated: false,
            probe,
        }
    }

    fn alive_healthy() -> Facts {
        let mut f = base();
        f.probe = TokenProbe::Alive;
        f.introspection = Some(true);
        f
    }

    #[test]
    fn a_healed_failure_and_doctors_own_probes_are_not_evidence() {
        // The user was frozen (the integration's refresh failed), then unfrozen and
        // recovered: the failure is history, and doctor's own refused probes never count.
        let mut f = alive_healthy();
        f.recent_events = vec![
            past(
                NOW.0 - 50_000,
                "reauth.required",
                Some(Cause::AuthenticationFailure),
                false,
            ),
            past(
                NOW.0 - 40_000,
                "reauth.required",
                Some(Cause::AuthenticationFailure),
                true,
            ),
            past(NOW.0 - 30_000, "token.refreshed", None, false),
            past(
                NOW.0 - 20_000,
                "reauth.required",
                Some(Cause::AuthenticationFailure),
                true,
            ),
        ];
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::Healthy, "{d:#?}");
        assert_eq!(d.causes.len(), 1, "{d:#?}");
        assert!(d.recoverable);

        // Without the later success, the integration's failure is still evidence.
        f.recent_events.remove(2);
        let d = diagnose(&f);
        assert!(d.causes.iter().any(|c| c.cause == D::UserFrozen), "{d:#?}");
    }

    #[test]
    fn org_evidence_older_than_the_stored_token_does_not_outrank_a_timeout() {
        // The app's tokens were revoked and the JWT fallback healed it within the same second;
        // two hours later the fallback's token timed out.
        let healed = NOW.0 - 2 * H - 60_000;
        let mut f = base();
        f.token_issued_at = Some(UnixMillis(healed));
        f.last_success_at = Some(UnixMillis(healed + 200));
        f.setup_audit.push(AuditRow {
            at: UnixMillis(healed - 300),
            action: "connectedapprevoketokens".into(),
            display: "Revoked all OAuth tokens".into(),
        });
        f.login_history.push(LoginRow {
            at: UnixMillis(healed - 250),
            source_ip: "127.0.0.1".into(),
            status: "User Is Frozen".into(),
        });
        f.recent_events = vec![
            past(
                healed - 200,
                "fallback.used",
                Some(Cause::RefreshTokenRevoked),
                false,
            ),
            past(healed - 100, "token.refreshed", None, false),
        ];
        f.dry_refresh = vec![
            fail(
                GrantKind::RefreshToken,
                Cause::RefreshTokenRevoked,
                "invalid_grant: expired access/refresh token",
            ),
            GrantAttempt {
                grant: GrantKind::JwtBearer,
                outcome: Ok(()),
            },
        ];
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::SessionTimeout, "{d:#?}");
        assert!(d.top().confidence >= 0.8, "{d:#?}");
        assert!(!d.causes.iter().any(|c| c.cause == D::UserFrozen), "{d:#?}");
        // The standing revoke is still listed, with the fix the profile actually has.
        let revoked = d
            .causes
            .iter()
            .find(|c| c.cause == D::AppTokensRevoked)
            .expect("listed");
        assert!(revoked.fix.contains("jwt_bearer"), "{}", revoked.fix);
        assert!(!revoked.fix.contains("configure"), "{}", revoked.fix);
    }

    #[test]
    fn a_working_token_with_refused_grants_is_healthy_now_with_a_warning() {
        for (cause, want) in [
            (Cause::IpRestricted, D::IpRestricted),
            (Cause::AppNotApproved, D::AppNotApproved),
        ] {
            let mut f = alive_healthy();
            f.org_queried = false;
            f.user = None;
            f.dry_refresh = vec![
                fail(GrantKind::RefreshToken, cause, "refused"),
                fail(GrantKind::JwtBearer, cause, "refused"),
            ];
            let d = diagnose(&f);
            assert_eq!(d.verdict, D::Healthy, "{d:#?}");
            assert!(!d.recoverable, "no grant can replace the token: {d:#?}");
            assert_eq!(d.causes[1].cause, want, "{d:#?}");
            assert!(d.top().fix.contains("will be refused"), "{}", d.top().fix);
            assert!(d.top().fix.contains(want.as_str()), "{}", d.top().fix);
        }
    }

    #[test]
    fn a_logout_never_claims_the_absence_of_what_was_found() {
        let mut f = base();
        f.user.as_mut().unwrap().last_password_change = Some(UnixMillis(NOW.0 - 10_000));
        let d = diagnose(&f);
        let logout = d
            .causes
            .iter()
            .find(|c| c.cause == D::LoggedOutElsewhere)
            .expect("listed");
        let said = logout.evidence.join("\n");
        assert!(!said.contains("password change"), "{said}");
        assert!(
            said.contains("no freeze, deactivation, token revoke or IP change shows"),
            "{said}"
        );
        // With nothing found, all five are named.
        let d = diagnose(&base());
        assert!(
            d.top().evidence.iter().any(|e| e
                == "no password change, freeze, deactivation, token revoke or IP change shows in the org since then"),
            "{d:#?}"
        );
    }

    #[test]
    fn a_changed_password_for_a_password_login_needs_the_new_password_first() {
        let mut f = base();
        f.dry_refresh = vec![fail(
            GrantKind::Password,
            Cause::AuthenticationFailure,
            "authentication failure",
        )];
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::PasswordChanged, "{d:#?}");
        assert!(!d.recoverable);
        assert!(
            d.top().fix.starts_with("Put the new password"),
            "{}",
            d.top().fix
        );
    }

    #[test]
    fn durations_and_clock_offsets_read_like_a_person_wrote_them() {
        assert_eq!(human_exact(Duration::from_millis(7_300_003)), "2h 1m 40s");
        assert_eq!(human_exact(Duration::from_secs(3600)), "1h");
        assert_eq!(human_exact(Duration::from_secs(61)), "1m 1s");
        assert_eq!(human_exact(Duration::from_secs(90_061)), "1d 1h 1m 1s");
        assert_eq!(human_exact(Duration::ZERO), "0s");
        assert_eq!(
            clock_offset_text(7_300_003),
            "2h 1m 40s ahead of this machine's"
        );
        assert_eq!(clock_offset_text(-12_000), "12s behind this machine's");
        assert!(clock_offset_text(0).starts_with("in step"));
    }

    #[test]
    fn sf_datetimes_parse() {
        assert_eq!(
            parse_sf_datetime("1970-01-01T00:00:01.500+0000"),
            Some(UnixMillis(1500))
        );
        assert_eq!(
            parse_sf_datetime("1970-01-01T01:00:00.000+0100"),
            Some(UnixMillis(0))
        );
        assert_eq!(
            parse_sf_datetime("1970-01-01T00:00:02Z"),
            Some(UnixMillis(2000))
        );
        assert_eq!(
            parse_sf_datetime("1970-01-01T00:00:02.000+00:00"),
            Some(UnixMillis(2000))
        );
        assert_eq!(parse_sf_datetime("yesterday"), None);
    }
}
