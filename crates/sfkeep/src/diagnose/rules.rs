//! The diagnosis rules: small named functions over the gathered [`Facts`], each adding the
//! [`Finding`]s its evidence supports. [`RULES`] runs them in order; a later rule may read
//! (and re-weigh) what earlier ones found, which the order below documents.

use std::time::Duration;

use super::Cause;
use super::diagnosis::{DiagnosisCause as D, Finding, NEW_PASSWORD_FIX, merge};
use super::facts::{
    AuditRow, Facts, GrantAttempt, GrantCheck, LoginRow, PasswordSecrets, PastEvent, TokenProbe,
};
use super::time_text::{at_text, human, human_exact};
use crate::clock::UnixMillis;
use crate::token::GrantKind;

/// Clock offsets at or above this are reported.
pub const SKEW_WARN: Duration = Duration::from_secs(5 * 60);

/// What every rule needs to know about the facts, worked out once.
pub(super) struct Context<'f> {
    /// The facts.
    pub f: &'f Facts,
    /// Some grant of the profile got a token in the dry refresh.
    pub any_grant_ok: bool,
    /// Some grant was refused for a reason that does not pass by itself.
    pub grants_failed_for_good: bool,
    /// The stored token is refused (probe), or introspection says it is inactive.
    pub token_dead: bool,
    /// The refresh token the integration uses is dead: refused by the server, remembered as
    /// refused, or inactive by introspection. A logout or a timeout never kills it.
    pub refresh_token_dead: bool,
    /// The last time the session is known to have been used.
    pub since: Option<UnixMillis>,
    /// What happened before this cannot have killed the stored token: it was issued later
    /// (the server's own `issued_at`, exact), or it was still used successfully later (the
    /// audit log's time plus the measured `Date` offset, good to about a second).
    pub cutoff: Option<UnixMillis>,
}

fn later(a: Option<UnixMillis>, b: Option<UnixMillis>) -> Option<UnixMillis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A refusal that refuses every grant of this user from this address, not just the grant
/// asked: the address, the user or the org, or a limit. (A frozen user's token requests are
/// refused as a plain authentication failure when no password is sent.)
fn refuses_every_grant(a: &GrantAttempt) -> bool {
    match &a.outcome {
        Err((c, _)) => {
            matches!(
                c,
                Cause::IpRestricted
                    | Cause::InactiveUser
                    | Cause::InactiveOrg
                    | Cause::RateLimited
                    | Cause::RequestLimitExceeded
            ) || (*c == Cause::AuthenticationFailure && !sends_password(a.grant))
        }
        Ok(()) => false,
    }
}

/// Some grant of the profile would get a token now: a token request worked, or a refresh
/// token introspection shows alive (not used) while no token request was refused for a reason
/// that refuses the refresh too. Introspection says the refresh token lives, not that the
/// server grants a refresh to this user from this address.
fn any_grant_works(f: &Facts) -> bool {
    let requested_ok = f
        .dry_refresh
        .iter()
        .any(|a| a.outcome.is_ok() && a.check == GrantCheck::TokenRequest);
    let introspected_ok = f
        .dry_refresh
        .iter()
        .any(|a| a.outcome.is_ok() && a.check != GrantCheck::TokenRequest);
    requested_ok || (introspected_ok && !f.dry_refresh.iter().any(refuses_every_grant))
}

impl<'f> Context<'f> {
    pub fn of(f: &'f Facts) -> Self {
        Self {
            f,
            any_grant_ok: any_grant_works(f),
            grants_failed_for_good: f
                .dry_refresh
                .iter()
                .any(|a| matches!(&a.outcome, Err((c, _)) if *c != Cause::Transient)),
            token_dead: matches!(f.probe, TokenProbe::Rejected { .. })
                || (f.introspection == Some(false) && f.probe != TokenProbe::Alive),
            refresh_token_dead: f.dry_refresh.iter().any(|a| {
                a.grant == GrantKind::RefreshToken
                    && matches!(a.outcome, Err((Cause::RefreshTokenRevoked, _)))
            }) || f
                .refresh_token
                .as_ref()
                .is_some_and(|r| r.active == Some(false)),
            since: later(f.last_success_at, f.token_issued_at),
            cutoff: later(
                f.last_success_at.map(|t| UnixMillis(t.0 - 1_000)),
                f.token_issued_at,
            ),
        }
    }

    /// `t` is late enough to have killed the stored token.
    fn after_cutoff(&self, t: UnixMillis) -> bool {
        self.cutoff.is_none_or(|c| t.0 >= c.0)
    }

    /// The org shows the user unfrozen / active now, which undoes an older freeze /
    /// deactivation finding.
    fn undone(&self, cause: D) -> bool {
        match cause {
            D::UserFrozen => self.f.user.as_ref().is_some_and(|u| !u.is_frozen),
            D::UserDeactivated => self.f.user.as_ref().is_some_and(|u| u.is_active),
            _ => false,
        }
    }
}

/// A rule: reads the context and the findings so far, adds (or re-weighs) findings.
pub(super) type Rule = fn(&Context<'_>, &mut Vec<Finding>);

/// Every rule, in the order they run.
pub(super) const RULES: &[(&str, Rule)] = &[
    ("the dry refresh's answers", dry_refresh),
    ("the user as SOQL shows it", user_state),
    ("setup changes since the last use", setup_changes),
    // Re-weighs the dry refresh's guesses about a dead refresh token.
    ("a refresh-token policy or a revoke", policy_or_revoke),
    ("refused logins since the last use", refused_logins),
    ("the source address", source_address),
    ("a probe refused by policy", probe_policy),
    ("the audit log's last unhealed failure", audit_log_failure),
    (
        "an interrupted rotating refresh or a lost refresh token",
        rotation_safety,
    ),
    ("clock skew", clock_skew),
    ("doctor's own calls refused", own_call_failures),
    // Reads the strength of everything above.
    ("a timeout or a logout", timeout_or_logout),
    // Rewrites the fixes of what is above.
    ("fixes the profile allows", profile_fixes),
    // Re-weighs everything above.
    ("a stored token that works", working_token),
    ("healthy", healthy),
];

fn strongest(out: &[Finding]) -> f64 {
    out.iter().map(|x| x.confidence).fold(0.0, f64::max)
}

/// The dry refresh: the server's own words about each grant.
fn dry_refresh(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for a in &cx.f.dry_refresh {
        if let Err((cause, _)) = &a.outcome {
            out.extend(grant_failure(a, *cause, cx.f, 1.0));
        }
    }
}

/// The user as SOQL shows it: inactive, frozen, a password changed after the last use.
fn user_state(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(u) = &cx.f.user else {
        return;
    };
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
        && cx.cutoff.is_some_and(|c| pc.0 >= c.0)
    {
        let now = cx.f.now;
        out.push(Finding::new(
            D::PasswordChanged,
            if cx.token_dead { 0.9 } else { 0.5 },
            vec![format!(
                "User.LastPasswordChangeDate is {}, after the session was last used ({})",
                at_text(now, pc),
                cx.since.map(|s| at_text(now, s)).unwrap_or_default()
            )],
        ));
    }
}

/// What a SetupAuditTrail action means, with how sure it is, or `None` for an unrelated one.
fn setup_change_cause(cx: &Context<'_>, r: &AuditRow) -> Option<(D, f64)> {
    let a = r.action.to_ascii_lowercase();
    Some(if a.contains("revoke") {
        (
            D::AppTokensRevoked,
            if cx.token_dead || cx.grants_failed_for_good {
                0.9
            } else {
                0.4
            },
        )
    } else if a.contains("password") {
        (D::PasswordChanged, if cx.token_dead { 0.85 } else { 0.4 })
    } else if a.contains("froze") && !a.contains("unfroze") {
        (D::UserFrozen, 0.85)
    } else if a.contains("deactivat") {
        (D::UserDeactivated, 0.85)
    } else if a.contains("sessionsettings") || a.contains("ip") && a.contains("range") {
        (D::IpRestricted, 0.4)
    } else if a.contains("policy") {
        if r.display.contains("jwt_preapproved") || r.display.contains("Permitted") {
            (D::AppNotApproved, 0.4)
        } else if is_refresh_token_policy(r) {
            (D::RefreshTokenExpiredByPolicy, 0.35)
        } else {
            return None;
        }
    } else {
        return None;
    })
}

/// Setup changes since the session was last used (SetupAuditTrail).
fn setup_changes(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut audit: Vec<&AuditRow> =
        cx.f.setup_audit
            .iter()
            .filter(|r| cx.after_cutoff(r.at))
            .collect();
    audit.sort_by_key(|r| r.at);
    for r in audit {
        let Some((cause, conf)) = setup_change_cause(cx, r) else {
            continue;
        };
        let mut line = format!(
            "SetupAuditTrail {}: {} ({})",
            at_text(cx.f.now, r.at),
            r.display,
            r.action
        );
        // Undone since (unfrozen, reactivated) is still what ended the session: every
        // session ends with a freeze or a deactivation, and undoing it brings none back.
        if cx.undone(cause) {
            line.push_str(", undone since: it ended the session, and a new token can be had now");
        }
        out.push(Finding::new(cause, conf, vec![line]));
    }
}

/// A SetupAuditTrail row that changed a connected app's refresh-token policy.
fn is_refresh_token_policy(r: &AuditRow) -> bool {
    let d = r.display.to_ascii_lowercase().replace('_', " ");
    r.action.to_ascii_lowercase().contains("policy") && d.contains("refresh token policy")
}

/// A SetupAuditTrail row that revoked tokens.
fn is_revoke(r: &AuditRow) -> bool {
    r.action.to_ascii_lowercase().contains("revoke")
}

/// A dead refresh token: a refresh-token policy (absolute, idle or immediate expiry) and an
/// admin revoke give the server's same answer, so SetupAuditTrail tells them apart. A revoke
/// is written there when it happens; a policy is written when it is set, possibly long before
/// it ends a token, so a policy change counts at any time, a revoke only after the last use.
/// OauthToken still listing the user's approval speaks against a revoke (it removes the
/// approval; an expiry by policy leaves it listed, docs/salesforce-wire.md §9).
fn policy_or_revoke(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let f = cx.f;
    if !cx.refresh_token_dead || !f.reads.setup_audit {
        return;
    }
    let now = f.now;
    let revoked_since = f
        .setup_audit
        .iter()
        .any(|r| is_revoke(r) && cx.after_cutoff(r.at));
    if revoked_since {
        return;
    }
    let policy = f
        .setup_audit
        .iter()
        .filter(|r| is_refresh_token_policy(r) && r.at.0 <= now.0)
        .max_by_key(|r| r.at);
    let listed = f
        .approvals
        .as_ref()
        .filter(|_| f.reads.oauth_token)
        .and_then(|a| a.iter().max_by_key(|r| r.created));
    for x in out.iter_mut().filter(|x| x.cause == D::AppTokensRevoked) {
        // Not to nothing: a user's own revoke in personal settings is no Setup change.
        x.confidence *= if listed.is_some() { 0.4 } else { 0.7 };
        x.evidence.push(format!(
            "but SetupAuditTrail shows no revoke since the session was last used{}",
            cx.since
                .map(|s| format!(" ({})", at_text(now, s)))
                .unwrap_or_default()
        ));
    }
    let Some(p) = policy else {
        return;
    };
    let mut ev = vec![
        format!(
            "SetupAuditTrail {}: {} ({}): a refresh-token policy ends refresh tokens by age or idleness without a revoke",
            at_text(now, p.at),
            p.display,
            p.action
        ),
        "SetupAuditTrail shows no revoke of tokens since the session was last used".to_owned(),
    ];
    if let Some(a) = listed {
        ev.push(format!(
            "OauthToken still lists the user's approval of {} (authorized {}{}): a revoke would have removed it",
            a.app,
            at_text(now, a.created),
            a.last_used
                .map(|u| format!(", refresh token last used {}", at_text(now, u)))
                .unwrap_or_default()
        ));
    }
    out.push(Finding::new(
        D::RefreshTokenExpiredByPolicy,
        if listed.is_some() { 0.88 } else { 0.8 },
        ev,
    ));
}

/// Refused logins since the session was last used (LoginHistory), newest five.
fn refused_logins(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut logins: Vec<&LoginRow> =
        cx.f.login_history
            .iter()
            .filter(|r| cx.after_cutoff(r.at))
            .collect();
    logins.sort_by_key(|r| r.at);
    for r in logins.iter().rev().take(5) {
        let cause = match r.status.as_str() {
            "User Is Frozen" => D::UserFrozen,
            "User is Inactive" => D::UserDeactivated,
            "Restricted IP" => D::IpRestricted,
            "Login Rate Exceeded" => D::RateLimited,
            "Invalid Password" if password_unchanged_in_org(cx) => D::WrongPassword,
            "Invalid Password" => D::PasswordChanged,
            _ => continue,
        };
        // The user as SOQL shows it now outranks an older refused login.
        if cx.undone(cause) {
            continue;
        }
        let mut ev = vec![format!(
            "LoginHistory {}: \"{}\" from {}",
            at_text(cx.f.now, r.at),
            r.status,
            r.source_ip
        )];
        if cause == D::WrongPassword
            && let Some(pc) = cx.f.user.as_ref().and_then(|u| u.last_password_change)
        {
            ev.push(format!(
                "but User.LastPasswordChangeDate is {}, before the session was last used: the password in the org did not change, the profile's is wrong",
                at_text(cx.f.now, pc)
            ));
        }
        out.push(Finding::new(cause, 0.8, ev));
    }
}

/// The org shows no password change since the session was last used: User was read, its
/// LastPasswordChangeDate is older, and SetupAuditTrail (when read) has no password change
/// since. An "Invalid Password" login then means the profile's password is wrong.
fn password_unchanged_in_org(cx: &Context<'_>) -> bool {
    let f = cx.f;
    let older = match (
        f.user.as_ref().and_then(|u| u.last_password_change),
        cx.cutoff,
    ) {
        (Some(pc), Some(c)) => pc.0 < c.0,
        _ => false,
    };
    let audited = !f.reads.setup_audit
        || !f
            .setup_audit
            .iter()
            .any(|r| cx.after_cutoff(r.at) && r.action.to_ascii_lowercase().contains("password"));
    f.reads.user && older && audited
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

/// The source address: outside the org's ranges, or moved since the last success.
fn source_address(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let f = cx.f;
    let Some(cur) = &f.current_source_ip else {
        return;
    };
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
            if cx.token_dead || cx.grants_failed_for_good {
                0.6
            } else {
                0.3
            },
            vec![format!(
                "the source address changed: the last successful call came from {last}, this machine now calls from {cur}"
            )],
        ));
    }
}

/// What the stored token's probe said, when it names a policy rather than a death.
fn probe_policy(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if let TokenProbe::Rejected { status, body } = &cx.f.probe {
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
}

/// The integration's last failure in the audit log, unless something worked after it (a
/// refresh, an adopted token, a successful call: it was healed). Doctor's own dry refreshes
/// are not the integration's history: their answers are in the dry refresh's rule already.
fn audit_log_failure(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let mut past: Vec<&PastEvent> = cx.f.recent_events.iter().filter(|e| !e.probe).collect();
    past.sort_by_key(|e| e.at);
    let last_failure = past.iter().rposition(|e| e.cause.is_some());
    let unhealed = last_failure
        .filter(|&i| !past[i + 1..].iter().any(|e| e.is_success()))
        .map(|i| past[i]);
    let Some(e) = unhealed else {
        return;
    };
    let Some(c) = e.cause.filter(|c| *c != Cause::SessionExpired) else {
        return;
    };
    let attempt = GrantAttempt::requested(
        GrantKind::RefreshToken,
        Err((c, format!("{} ({})", e.kind, c))),
    );
    for mut fi in grant_failure(&attempt, c, cx.f, 0.5) {
        fi.evidence = vec![format!(
            "the audit log's last failure: {} with cause {c}",
            e.kind
        )];
        out.push(fi);
    }
}

/// The store's unfinished intent record, the spent-token ledger, a logout tombstone
/// (`diagnose/rotation.rs`).
fn rotation_safety(cx: &Context<'_>, out: &mut Vec<Finding>) {
    out.extend(super::rotation::findings(cx.f));
}

/// The server's clock differs from this machine's by [`SKEW_WARN`] or more.
fn clock_skew(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(o) = cx.f.clock_offset_ms
        && o.unsigned_abs() >= SKEW_WARN.as_millis() as u64
    {
        out.push(Finding::new(
            D::ClockSkew,
            0.3,
            vec![format!(
                "the server's Date header differs from the local clock by {}",
                offset_text(cx.f)
            )],
        ));
    }
}

/// Doctor's own API calls with a working token were refused: the session cannot do its work,
/// whatever userinfo says.
fn own_call_failures(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if let Some(detail) = &cx.f.api_disabled {
        out.push(Finding::new(
            D::ApiDisabled,
            0.95,
            vec![format!(
                "doctor's own API call with a working token was refused: the user may not use the API (\"API Enabled\" is off in the profile, or the org's edition has no API): {detail}"
            )],
        ));
    }
    for (cause, detail) in &cx.f.own_call_failures {
        let (diagnosis, why) = match cause {
            Cause::SessionNotValidForApi => (
                D::SessionNotValidForApi,
                "doctor's own REST call with a working token was refused as not valid for the REST API",
            ),
            Cause::RequestLimitExceeded => (
                D::RateLimited,
                "doctor's own REST call was refused: the org's daily API request limit is used up",
            ),
            _ => continue,
        };
        out.push(Finding::new(
            diagnosis,
            0.92,
            vec![format!("{why}: {detail}")],
        ));
    }
}

/// The API refuses calls that userinfo accepts a token for: not healthy.
fn api_refused(f: &Facts) -> bool {
    f.api_disabled.is_some()
        || f.own_call_failures.iter().any(|(c, _)| {
            matches!(
                c,
                Cause::SessionNotValidForApi | Cause::RequestLimitExceeded
            )
        })
}

/// A recoverable death with nothing more specific: the timeout or a logout, told apart by how
/// long the session was idle.
fn timeout_or_logout(cx: &Context<'_>, out: &mut Vec<Finding>) {
    if !(cx.token_dead && cx.any_grant_ok) {
        return;
    }
    let f = cx.f;
    let scale = if strongest(out) >= 0.7 { 0.25 } else { 1.0 };
    let refused = match &f.probe {
        TokenProbe::Rejected { status, .. } => {
            format!("the stored token is refused (HTTP {status})")
        }
        _ => "introspection says the stored token is no longer active".to_owned(),
    };
    let Some(since) = cx.since else {
        out.push(Finding::new(
            D::SessionTimeout,
            0.4 * scale,
            vec![
                refused.clone(),
                "the audit log has no successful call to date the session's last use".into(),
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
        return;
    };
    let idle = f.now.since(since);
    let timeout = f.session_timeout;
    let source = f.session_timeout_source.describe();
    if idle >= timeout {
        out.push(Finding::new(
            D::SessionTimeout,
            0.85 * scale,
            vec![
                refused,
                format!(
                    "the session was last used {} ago, longer than the session timeout of {} ({source})",
                    human(idle),
                    human(timeout)
                ),
            ],
        ));
        return;
    }
    let mut ev = vec![
        refused,
        format!(
            "the session was last used {} ago, well within the session timeout of {} ({source}): it did not time out",
            human(idle),
            human(timeout)
        ),
    ];
    // What a logout cannot explain: it leaves the refresh token alive, ends the session for
    // introspection too, and needs no Setup change.
    let (logout, against) = logout_weight(cx, out);
    ev.extend(against);
    // Only what is not already a finding, and only what was read: never "no revoke shows"
    // next to one, nor about an object doctor could not see.
    let r = f.reads;
    let absent: Vec<&str> = [
        (
            D::PasswordChanged,
            "password change",
            r.user && r.setup_audit,
        ),
        (D::UserFrozen, "freeze", r.user_login && r.setup_audit),
        (D::UserDeactivated, "deactivation", r.user && r.setup_audit),
        (D::AppTokensRevoked, "token revoke", r.setup_audit),
        (
            D::IpRestricted,
            "IP change",
            r.setup_audit && r.login_history,
        ),
    ]
    .into_iter()
    .filter(|(c, _, read)| *read && !out.iter().any(|x| x.cause == *c))
    .map(|(_, n, _)| n)
    .collect();
    if !absent.is_empty() {
        ev.push(format!(
            "no {} shows in the org since then",
            or_list(&absent)
        ));
    }
    let unread = f.reads.missing();
    if !unread.is_empty() {
        ev.push(format!(
            "not checked (could not be read): {}",
            unread.join(", ")
        ));
    }
    out.push(Finding::new(D::LoggedOutElsewhere, logout * scale, ev));
    out.push(Finding::new(
        D::SessionTimeout,
        0.1 * scale,
        vec![format!(
            "the session timeout is {}; the token died sooner",
            human(timeout)
        )],
    ));
}

/// How much a logout elsewhere is believed (0.65 with nothing against it), and what speaks
/// against it: the refresh token died at the same moment (a logout leaves it alive),
/// introspection says the stored token is active while the call is refused (a logout ends it
/// for both; a session locked to another address does not), or the org shows a freeze, a
/// deactivation or an IP change since the last use (found above).
fn logout_weight(cx: &Context<'_>, out: &[Finding]) -> (f64, Vec<String>) {
    let f = cx.f;
    let mut w = 0.65;
    let mut against = Vec::new();
    if cx.refresh_token_dead {
        w *= 0.4;
        against.push("but the refresh token died too, which a logout never causes".to_owned());
    }
    if f.introspection == Some(true) && matches!(f.probe, TokenProbe::Rejected { .. }) {
        w *= 0.5;
        against.push(
            "but introspection says the stored token is still active while the call is refused, which a logout never causes (a session locked to another address does)".to_owned(),
        );
    }
    if out.iter().any(|x| {
        matches!(
            x.cause,
            D::UserFrozen | D::UserDeactivated | D::IpRestricted
        ) && x.confidence >= 0.3
    }) {
        w *= 0.5;
        against.push(
            "but the org shows a freeze, a deactivation or an IP change since the last use"
                .to_owned(),
        );
    }
    (w, against)
}

/// Fixes that depend on the profile: a dead refresh token with a fallback grant, a changed
/// password when only a password login is left.
#[allow(clippy::ptr_arg)] // every rule has the `Rule` signature
fn profile_fixes(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let password_refused =
        cx.f.dry_refresh
            .iter()
            .any(|a| sends_password(a.grant) && a.outcome.is_err());
    for x in out.iter_mut() {
        if refresh_token_dead(x.cause)
            && let Some(fix) = refresh_token_fix(x.cause, cx.f)
        {
            x.fix = fix;
        }
        if x.cause == D::PasswordChanged && !cx.any_grant_ok && password_refused {
            x.fix = NEW_PASSWORD_FIX.to_owned();
        }
    }
}

/// A stored token the server accepts means the session works now, whatever else was found:
/// every other finding becomes a warning about the next token request.
fn working_token(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let f = cx.f;
    if f.probe != TokenProbe::Alive {
        return;
    }
    // Running on the fallback grant because the refresh token died is not healthy: the
    // refresh token's death stays the verdict (recoverable: the fallback works).
    let on_fallback = running_on_fallback(f);
    let refused = api_refused(f);
    // Each warning as a whole (its findings added up) is weighed against the working token.
    *out = merge(std::mem::take(out));
    // A wrong password in the profile is configuration: the next login is refused for sure,
    // whatever the running session does.
    let misconfigured = out
        .iter()
        .any(|x| x.cause == D::WrongPassword && x.confidence >= 0.5);
    for x in out.iter_mut() {
        let stands = (on_fallback && refresh_token_dead(x.cause))
            || (misconfigured && x.cause == D::WrongPassword)
            || (refused
                && matches!(
                    x.cause,
                    D::SessionNotValidForApi | D::RateLimited | D::ApiDisabled
                ));
        if !stands {
            x.confidence *= 0.6;
        }
    }
    let mut ev = vec![
        "the stored token is accepted at /services/oauth2/userinfo: the session works now"
            .to_owned(),
    ];
    if on_fallback {
        ev.push("but only through the fallback grant: the refresh token is dead".to_owned());
    }
    match f.dry_refresh.iter().find(|a| a.outcome.is_ok()) {
        Some(a) => ev.push(a.said()),
        None if f.dry_refresh.is_empty() => ev.push(
            "but no grant of the profile can run, so nothing can replace this token when it ends"
                .to_owned(),
        ),
        None => {
            for a in &f.dry_refresh {
                if let Err((c, _)) = &a.outcome {
                    ev.push(format!("but {} ({c})", a.said()));
                }
            }
        }
    }
    let fix = working_token_fix(cx, out);
    // Below any cause of the refresh token's death, which stays the verdict.
    let confidence = if on_fallback {
        0.25
    } else if refused || misconfigured {
        0.45
    } else {
        0.9
    };
    out.push(Finding::new(D::Healthy, confidence, ev).with_fix(fix));
}

/// The primary grant is the refresh token, it was refused as dead, and a fallback grant works.
fn running_on_fallback(f: &Facts) -> bool {
    let mut attempts = f.dry_refresh.iter();
    let primary_dead = attempts.next().is_some_and(|a| {
        a.grant == GrantKind::RefreshToken
            && matches!(a.outcome, Err((Cause::RefreshTokenRevoked, _)))
    });
    primary_dead && attempts.any(|a| a.outcome.is_ok())
}

/// What to do when the stored token works, given the warnings found.
fn working_token_fix(cx: &Context<'_>, out: &[Finding]) -> String {
    let f = cx.f;
    let warning = out.iter().filter(|x| x.cause != D::Healthy).max_by(|a, b| {
        a.confidence
            .partial_cmp(&b.confidence)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let ends = f
        .token_issued_at
        .map(|t| t.plus(f.session_timeout))
        .filter(|e| e.0 > f.now.0)
        .map(|e| format!(" (in about {})", human(e.since(f.now))))
        .unwrap_or_default();
    if cx.any_grant_ok {
        return match warning {
            Some(w) if w.confidence >= 0.3 => {
                "Nothing to do now; the other findings are worth a look.".to_owned()
            }
            _ => D::Healthy.fix().to_owned(),
        };
    }
    match warning {
        Some(w) if cx.grants_failed_for_good => format!(
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
}

/// No token yet (or one the server accepts) and a grant that works, with nothing strong found.
fn healthy(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let f = cx.f;
    if f.probe == TokenProbe::Alive
        || cx.token_dead
        || cx.grants_failed_for_good
        || !cx.any_grant_ok
        || strongest(out) >= 0.5
    {
        return;
    }
    let mut ev = Vec::new();
    if f.probe == TokenProbe::Missing {
        ev.push("no token is stored yet".to_owned());
    }
    if let Some(a) = f.dry_refresh.iter().find(|a| a.outcome.is_ok()) {
        ev.push(a.said());
    }
    out.push(Finding::new(D::Healthy, 0.9, ev));
}

/// What a failed grant's cause says, as findings, scaled by `weight`.
pub(super) fn grant_failure(
    a: &GrantAttempt,
    cause: Cause,
    f: &Facts,
    weight: f64,
) -> Vec<Finding> {
    let grant = a.grant;
    let g = grant.as_str();
    let said = a.said();
    let one = |c: D, conf: f64, why: String| Finding::new(c, conf * weight, vec![why]);
    match cause {
        Cause::InactiveUser => vec![one(D::UserDeactivated, 0.95, said)],
        Cause::IpRestricted => vec![one(D::IpRestricted, 0.95, said)],
        Cause::AppNotApproved => vec![one(D::AppNotApproved, 0.95, said)],
        Cause::RateLimited => vec![one(D::RateLimited, 0.9, said)],
        Cause::SessionNotValidForApi => vec![one(D::SessionNotValidForApi, 0.9, said)],
        Cause::InactiveOrg => vec![one(D::ApiDisabled, 0.8, said)],
        Cause::RequestLimitExceeded => vec![one(D::RateLimited, 0.85, said)],
        Cause::InvalidClientId | Cause::InvalidClient => vec![
            one(D::InvalidClient, 0.9, said).with_fix(if cause == Cause::InvalidClientId {
                "Check the profile's client_id against the connected app's consumer key; a new app takes 2-10 minutes to be known. Then `sfkeep recover`."
            } else {
                "Check the profile's client_secret (and where it is read from: a file or an environment variable) against the connected app's consumer secret. Then `sfkeep recover`."
            }),
        ],
        Cause::RefreshTokenRevoked => refresh_token_revoked(&said, f, weight),
        // Their findings, with the store's evidence, come from `rotation.rs`.
        Cause::RefreshInterrupted | Cause::RefreshTokenLost => Vec::new(),
        Cause::AuthenticationFailure if sends_password(grant) => {
            password_refused(grant, &said, f, weight)
        }
        Cause::AuthenticationFailure => vec![one(
            D::UserFrozen,
            0.8,
            format!(
                "{said}; the {g} grant sends no password, and Salesforce refuses a frozen user's token requests as an authentication failure"
            ),
        )],
        Cause::InvalidAssertion | Cause::AuthorizationCodeExpired | Cause::AudienceInvalid => {
            let skew = f
                .clock_offset_ms
                .is_some_and(|o| o.unsigned_abs() >= 60_000);
            if skew && cause != Cause::AudienceInvalid {
                vec![one(
                    D::ClockSkew,
                    0.8,
                    format!("{said}, and the local clock is off by {}", offset_text(f)),
                )]
            } else {
                vec![Finding::new(D::Unknown, 0.5 * weight, vec![said]).with_fix(cause.fix())]
            }
        }
        Cause::Transient => vec![
            Finding::new(D::Unknown, 0.3 * weight, vec![said])
                .with_fix("The org did not answer properly: retry `sfkeep doctor` in a minute."),
        ],
        other => vec![Finding::new(D::Unknown, 0.45 * weight, vec![said]).with_fix(other.fix())],
    }
}

/// A login that sends the password refused (`authentication failure`, SOAP `INVALID_LOGIN`).
/// The org answers a wrong password in the profile, a password changed in the org and a
/// frozen user alike, and SOAP also a deactivated user and a login from outside the allowed
/// ranges (docs/salesforce-wire.md §2, §5.3; LoginHistory's Status is the only place the org
/// tells them apart, §9). What this machine can tell: whether the profile's password secrets
/// changed since a login with them last worked. Causes the evidence cannot separate get the
/// same weight, and each says which check would separate them.
fn password_refused(grant: GrantKind, said: &str, f: &Facts, weight: f64) -> Vec<Finding> {
    let secrets = f.password_secrets.as_ref();
    let changed = secrets.and_then(PasswordSecrets::changed_since_it_worked);
    let mut org: Vec<(D, f64, &str)> = vec![
        (D::PasswordChanged, 0.5, "a password changed in the org"),
        (D::UserFrozen, 0.5, "a frozen user"),
    ];
    if grant == GrantKind::SoapLogin {
        org.push((D::UserDeactivated, 0.5, "a deactivated user"));
        // Needs the ranges changed or the address moved; a moved address is a finding of its
        // own (`source_address`) that adds up with this one.
        org.push((
            D::IpRestricted,
            0.25,
            "a login from outside the allowed IP ranges",
        ));
    }
    let times = secrets.and_then(|s| Some((s.changed_at?, s.last_worked_at?)));
    let (wrong, org_scale, about_secrets) = match (changed, secrets, times) {
        (Some(true), Some(s), Some((written, worked))) => (
            0.85,
            0.4,
            format!(
                "the profile's password secrets ({}) changed {} after the integration's last login with them that worked: the profile, not the org, changed",
                s.source,
                human(written.since(worked))
            ),
        ),
        (Some(false), Some(s), Some((written, worked))) => (
            0.1,
            1.0,
            format!(
                "the profile's password secrets ({}) were last written {} before the integration's last login with them that worked: they are the ones that worked, so the org changed, not the profile",
                s.source,
                human(worked.since(written))
            ),
        ),
        (_, Some(s), _) if s.last_worked_at.is_none() => (
            0.45,
            1.0,
            format!(
                "the audit log shows no login of the integration with the profile's password secrets ({}) that worked: they may never have been right",
                s.source
            ),
        ),
        (_, Some(s), _) => (
            0.35,
            1.0,
            format!(
                "when the profile's password secrets ({}) last changed is not known",
                s.source
            ),
        ),
        (_, None, _) => (
            0.35,
            1.0,
            "where the profile's password secrets come from is not known".to_owned(),
        ),
    };
    let mut v = vec![Finding::new(
        D::WrongPassword,
        wrong * weight,
        vec![
            format!("{said} (a wrong password or security token in the profile)"),
            about_secrets.clone(),
        ],
    )];
    let tied: Vec<&str> = org
        .iter()
        .filter(|(_, w, _)| *w >= 0.5)
        .map(|(_, _, n)| *n)
        .collect();
    let blind = !f.reads.login_history && !f.reads.user_login;
    for (cause, w, name) in &org {
        let mut ev = vec![format!("{said} ({name} is refused the same way)")];
        if changed == Some(false) {
            ev.push(about_secrets.clone());
        }
        if blind && *w >= 0.5 && tied.len() > 1 {
            let others: Vec<&str> = tied.iter().copied().filter(|n| n != name).collect();
            ev.push(format!(
                "cannot be told apart from {}: the org gives the same answer, and no grant of the profile gets a token to read the org. LoginHistory's Status for the integration user (\"Invalid Password\", \"User Is Frozen\", \"User is Inactive\", \"Restricted IP\"), or UserLogin.IsFrozen and User.IsActive, tells them apart: Setup > Users > the user > Login History, or `sfkeep doctor` with a profile of a user with Manage Users",
                or_list(&others)
            ));
        }
        v.push(Finding::new(*cause, w * org_scale * weight, ev));
    }
    v
}

/// The ways a refresh token dies with `expired access/refresh token`.
fn refresh_token_revoked(said: &str, f: &Facts, weight: f64) -> Vec<Finding> {
    let rotated = f.recent_events.iter().any(|e| e.rotated);
    let evicted = eviction(f).map(|why| {
        Finding::new(
            D::RefreshTokenEvicted,
            0.8 * weight,
            vec![format!("{said}; {why}")],
        )
    });
    // Without SetupAuditTrail (which tells a policy from a revoke, `policy_or_revoke`), time
    // is the evidence: a session idle past its timeout died by time, and a refresh token that
    // died with it more likely by an idle or absolute policy than by a revoke at some moment.
    let idle = later(f.last_success_at, f.token_issued_at).map(|s| f.now.since(s));
    let by_time = idle.filter(|i| !f.reads.setup_audit && *i >= f.session_timeout);
    // Nothing read that tells a revoke, a policy and an eviction apart: they weigh the same,
    // and each says which check would.
    let blind = by_time.is_none() && !f.reads.setup_audit && evicted.is_none();
    let (revoke, policy) = if by_time.is_some() {
        (0.4, 0.55)
    } else if blind {
        (0.45, 0.45)
    } else {
        (0.5, 0.3)
    };
    let tie = |others: &str| {
        format!(
            "cannot be told apart from {others}: the org answers each with `expired access/refresh token`, and nothing doctor could read sets one apart. SetupAuditTrail (a revoke, or a refresh-token policy change of the app) and OauthToken (five approvals of the app by the user) tell them apart: Setup > View Setup Audit Trail and Setup > Connected Apps OAuth Usage, or `sfkeep doctor` with a profile of a user who may read them"
        )
    };
    let mut policy_why = format!(
        "{said} (an idle, absolute or immediate refresh-token policy gives the same answer)"
    );
    if let Some(i) = by_time {
        policy_why.push_str(&format!(
            ", and the session was last used {} ago, past its timeout of {}: it died by time, as such a policy ends refresh tokens (SetupAuditTrail could not be read to tell a revoke)",
            human(i),
            human(f.session_timeout)
        ));
    }
    // Unread OauthToken: the approval limit cannot be seen, only named.
    let evicted = evicted.or_else(|| {
        f.approvals.is_none().then(|| {
            let mut ev = vec![format!(
                "{said} (a sixth approval of the app by the user revokes the least recently used refresh token the same way; OauthToken could not be read to count them)"
            )];
            if blind {
                ev.push(tie("an admin revoke or a refresh-token policy"));
            }
            Finding::new(
                D::RefreshTokenEvicted,
                (if blind { 0.45 } else { 0.1 }) * weight,
                ev,
            )
        })
    });
    let mut revoke_why = vec![format!(
        "{said} (the refresh token is dead; an admin revoke is the usual reason)"
    )];
    let mut policy_why = vec![policy_why];
    if blind {
        revoke_why.push(tie(
            "a refresh-token policy or an eviction by a sixth approval",
        ));
        policy_why.push(tie("an admin revoke or an eviction by a sixth approval"));
    }
    // A tie keeps this order: the revoke, the policy, the eviction.
    [
        Finding::new(D::AppTokensRevoked, revoke * weight, revoke_why),
        Finding::new(D::RefreshTokenExpiredByPolicy, policy * weight, policy_why),
    ]
    .into_iter()
    .chain(evicted)
    .chain([
        Finding::new(
            D::RefreshTokenReused,
            (if rotated { 0.6 } else { 0.15 }) * weight,
            vec![if rotated {
                format!(
                    "{said}, and the audit log shows the refresh token rotating: a rotated-out token used twice revokes the whole family"
                )
            } else {
                format!("{said} (reusing a rotated-out refresh token gives the same answer)")
            }],
        ),
    ])
    .collect()
}

/// Approvals a user may hold for one connected app; approving again revokes the least
/// recently used (docs/guardian.md, "Five approvals per user per app").
pub const APPROVALS_PER_USER_PER_APP: usize = 5;

/// Why a refused refresh token was probably evicted by the approval limit: the user holds the
/// full five approvals of an app (an admin revoke empties the app's list; a reuse or a policy
/// expiry does not fill it).
fn eviction(f: &Facts) -> Option<String> {
    let approvals = f.approvals.as_ref()?;
    let mut by_app: std::collections::BTreeMap<&str, Vec<UnixMillis>> = Default::default();
    for row in approvals {
        by_app
            .entry(row.app.as_str())
            .or_default()
            .push(row.created);
    }
    let (app, created) = by_app
        .into_iter()
        .find(|(_, c)| c.len() >= APPROVALS_PER_USER_PER_APP)?;
    let newest = created.iter().max()?;
    Some(format!(
        "OauthToken shows the user holding {} approvals of {app}, the most Salesforce keeps per user and app (the newest created {newest}): approving the app again revokes the least recently used approval",
        created.len()
    ))
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
        D::AppTokensRevoked
            | D::RefreshTokenExpiredByPolicy
            | D::RefreshTokenReused
            | D::RefreshTokenEvicted
            | D::RefreshInterrupted
            | D::RefreshTokenLost
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
        D::RefreshTokenEvicted => {
            "Stop approving the app as the integration user elsewhere: a sixth approval revokes the least recently used."
        }
        D::RefreshInterrupted => {
            "sfkeep held the old refresh token back, so Salesforce revoked nothing else."
        }
        D::RefreshTokenLost => {
            "Keep the token store durable (Redis persistence, a backed-up file): under rotation it holds the only valid refresh token."
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

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
