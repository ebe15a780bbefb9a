//! Evidence-based ranking for `sfkeep doctor`: [`diagnose`] runs the named rules of
//! `diagnose::rules` over the gathered [`Facts`] and ranks what they found, so every rule is
//! unit-tested without an org.
//!
//! The facts come from the audit log (last successful call and its source address, recent
//! events), the stored token (introspection, a probe), one dry refresh with the profile's
//! grants, the server's `Date` header, and, when some grant still yields a working token, SOQL
//! on User, UserLogin, LoginHistory, AuthSession, OauthToken and SetupAuditTrail.
//!
//! All times are on the server's clock (local time plus the measured `Date` offset).

pub use super::facts::{
    AuditRow, Facts, GrantAttempt, GrantCheck, InterruptedRefresh, LoginRow, OauthTokenRow,
    OrgReads, PasswordSecrets, PastEvent, RefreshTokenFacts, TimeoutSource, TokenProbe, UserFacts,
};
pub use super::rules::SKEW_WARN;
pub use super::time_text::{clock_offset_text, human, human_exact, parse_sf_datetime};

use super::diagnosis::{Diagnosis, DiagnosisCause as D};
use super::rules::{Context, RULES};

/// Ranks the causes `facts` point at.
pub fn diagnose(f: &Facts) -> Diagnosis {
    let cx = Context::of(f);
    let mut out = Vec::new();
    for (_name, rule) in RULES {
        rule(&cx, &mut out);
    }
    let recoverable = if f.dry_refresh.is_empty() {
        None
    } else {
        Some(cx.any_grant_ok)
    };
    let mut d = Diagnosis::ranked(out, recoverable);
    // A new token is refused or limited the same way: no grant brings the integration back.
    if matches!(
        d.verdict,
        D::SessionNotValidForApi | D::ApiDisabled | D::RateLimited
    ) {
        d.recoverable = false;
    }
    if d.verdict == D::Healthy {
        // Healthy now; recoverable says whether a new token can be had when this one ends.
        d.recoverable = cx.any_grant_ok;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixMillis;
    use crate::diagnose::Cause;
    use crate::token::GrantKind;
    use std::time::Duration;

    const H: i64 = 3_600_000;
    const ALL_READ: OrgReads = OrgReads {
        user: true,
        user_login: true,
        login_history: true,
        auth_session: true,
        oauth_token: true,
        setup_audit: true,
    };
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
            dry_refresh: vec![GrantAttempt::requested(GrantKind::RefreshToken, Ok(()))],
            org_queried: true,
            reads: ALL_READ,
            user: Some(UserFacts {
                is_active: true,
                is_frozen: false,
                last_password_change: Some(UnixMillis(NOW.0 - 30 * 24 * H)),
            }),
            clock_offset_ms: Some(0),
            ..Facts::default()
        }
    }

    fn revoked_refresh_token_with_a_working_jwt_fallback() -> Vec<GrantAttempt> {
        vec![
            fail(
                GrantKind::RefreshToken,
                Cause::RefreshTokenRevoked,
                "invalid_grant: expired access/refresh token",
            ),
            GrantAttempt::requested(GrantKind::JwtBearer, Ok(())),
        ]
    }

    fn fail(grant: GrantKind, cause: Cause, detail: &str) -> GrantAttempt {
        GrantAttempt::requested(grant, Err((cause, detail.into())))
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
        f.dry_refresh = revoked_refresh_token_with_a_working_jwt_fallback();
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
        f.dry_refresh = revoked_refresh_token_with_a_working_jwt_fallback();
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
    fn running_on_the_fallback_after_the_refresh_token_died_is_not_healthy() {
        let mut f = alive_healthy();
        f.dry_refresh = revoked_refresh_token_with_a_working_jwt_fallback();
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::AppTokensRevoked, "{d:#?}");
        assert!(d.recoverable, "the fallback works: {d:#?}");
        assert!(d.top().fix.contains("jwt_bearer"), "{}", d.top().fix);
        let healthy = d
            .causes
            .iter()
            .find(|c| c.cause == D::Healthy)
            .expect("listed");
        assert!(
            healthy
                .evidence
                .iter()
                .any(|e| e.contains("refresh token is dead")),
            "{healthy:?}"
        );
    }

    #[test]
    fn a_token_the_api_refuses_is_not_healthy() {
        for (cause, want) in [
            (Cause::SessionNotValidForApi, D::SessionNotValidForApi),
            (Cause::RequestLimitExceeded, D::RateLimited),
        ] {
            let mut f = alive_healthy();
            f.own_call_failures = vec![(cause, "HTTP 401/403 from the query API".into())];
            let d = diagnose(&f);
            assert_eq!(d.verdict, want, "{d:#?}");
            // A new token is refused the same way: nothing to recover.
            assert!(!d.recoverable, "{d:#?}");
        }
        let mut f = alive_healthy();
        f.api_disabled = Some("SOQL on User: API_DISABLED_FOR_ORG".into());
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::ApiDisabled, "{d:#?}");
        assert!(!d.recoverable, "{d:#?}");
    }

    #[test]
    fn a_refresh_token_dead_after_a_long_idle_is_a_policy_without_the_audit_trail() {
        let mut f = base();
        f.org_queried = false;
        f.user = None;
        f.reads = OrgReads::default();
        f.dry_refresh = vec![fail(
            GrantKind::RefreshToken,
            Cause::RefreshTokenRevoked,
            "invalid_grant: expired access/refresh token",
        )];
        // Idle for a minute: a revoke is the usual reason.
        assert_eq!(diagnose(&f).verdict, D::AppTokensRevoked);
        // Idle past the session timeout: it died by time.
        f.last_success_at = Some(UnixMillis(NOW.0 - 3 * H));
        f.token_issued_at = Some(UnixMillis(NOW.0 - 3 * H));
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::RefreshTokenExpiredByPolicy, "{d:#?}");
        assert!(!d.recoverable);
        // An eviction is named (OauthToken could not be read to count the approvals).
        assert!(d.causes.iter().any(|c| c.cause == D::RefreshTokenEvicted));
    }

    #[test]
    fn a_bad_client_id_or_secret_is_a_configuration_cause() {
        for cause in [Cause::InvalidClientId, Cause::InvalidClient] {
            let mut f = base();
            f.org_queried = false;
            f.user = None;
            f.dry_refresh = vec![fail(GrantKind::RefreshToken, cause, "invalid_client")];
            let d = diagnose(&f);
            assert_eq!(d.verdict, D::InvalidClient, "{d:#?}");
            assert!(!d.recoverable);
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

    #[test]
    fn a_refused_refresh_token_with_five_approvals_is_an_eviction() {
        let mut f = base();
        f.dry_refresh = vec![
            fail(
                GrantKind::RefreshToken,
                Cause::RefreshTokenRevoked,
                "invalid_grant: expired access/refresh token",
            ),
            GrantAttempt::requested(GrantKind::JwtBearer, Ok(())),
        ];
        f.approvals = Some(
            (0..5)
                .map(|i| OauthTokenRow {
                    app: "Billing Sync".to_owned(),
                    created: UnixMillis(NOW.0 - i * H),
                    last_used: None,
                })
                .collect(),
        );
        let d = diagnose(&f);
        let evicted = d
            .causes
            .iter()
            .find(|c| c.cause == D::RefreshTokenEvicted)
            .unwrap_or_else(|| panic!("{d:#?}"));
        assert!(
            evicted
                .evidence
                .iter()
                .any(|e| e.contains("5 approvals of Billing Sync")),
            "{d:#?}"
        );
        let first = d.causes.iter().find(|c| c.cause != D::Healthy).unwrap();
        assert_eq!(first.cause, D::RefreshTokenEvicted, "{d:#?}");
        // Four approvals: no eviction (an admin revoke or a policy gives the same answer).
        f.approvals.as_mut().unwrap().pop();
        assert!(
            !diagnose(&f)
                .causes
                .iter()
                .any(|c| c.cause == D::RefreshTokenEvicted)
        );
    }

    fn audit(at: i64, action: &str, display: &str) -> AuditRow {
        AuditRow {
            at: UnixMillis(at),
            action: action.into(),
            display: display.into(),
        }
    }

    fn dead_refresh_token() -> Vec<GrantAttempt> {
        vec![fail(
            GrantKind::RefreshToken,
            Cause::RefreshTokenRevoked,
            "invalid_grant: expired access/refresh token",
        )]
    }

    #[test]
    fn a_refresh_token_policy_is_told_apart_from_a_revoke() {
        // The policy was set a day ago and ended the token now; no revoke shows, and
        // OauthToken still lists the approval.
        let mut f = base();
        f.dry_refresh = dead_refresh_token();
        f.setup_audit.push(audit(
            NOW.0 - 24 * H,
            "connectedappupdatepolicy",
            "Changed OAuth policies (refresh_token_policy) of connected app Billing Sync",
        ));
        f.approvals = Some(vec![OauthTokenRow {
            app: "Billing Sync".into(),
            created: UnixMillis(NOW.0 - 48 * H),
            last_used: Some(UnixMillis(NOW.0 - 30 * H)),
        }]);
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::RefreshTokenExpiredByPolicy, "{d:#?}");
        assert!(!d.recoverable);
        let revoke = d.causes.iter().find(|c| c.cause == D::AppTokensRevoked);
        assert!(
            revoke.is_none_or(|c| c.evidence.iter().any(|e| e.contains("no revoke"))),
            "{d:#?}"
        );
        // A revoke after the last use, with the same policy row: the revoke.
        f.setup_audit.push(audit(
            NOW.0 - 10_000,
            "connectedapprevoketokens",
            "Revoked all OAuth tokens of connected app Billing Sync",
        ));
        f.approvals = Some(Vec::new());
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::AppTokensRevoked, "{d:#?}");
        // A rotate setting is not a refresh-token policy.
        let mut f = base();
        f.dry_refresh = dead_refresh_token();
        f.setup_audit.push(audit(
            NOW.0 - 10_000,
            "connectedappupdatepolicy",
            "Changed OAuth policies (rotate_refresh_tokens) of connected app Billing Sync",
        ));
        let d = diagnose(&f);
        assert_ne!(d.verdict, D::RefreshTokenExpiredByPolicy, "{d:#?}");
    }

    #[test]
    fn an_undone_freeze_is_still_the_cause_of_death_and_recoverable() {
        let mut f = base();
        f.setup_audit
            .push(audit(NOW.0 - 20_000, "frozeuser", "Froze user x"));
        f.setup_audit
            .push(audit(NOW.0 - 10_000, "unfrozeuser", "Unfroze user x"));
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::UserFrozen, "{d:#?}");
        assert!(d.recoverable, "undone: a new token can be had");
        assert!(
            d.top().evidence.iter().any(|e| e.contains("undone since")),
            "{d:#?}"
        );
        // And the logout's evidence never says "no freeze shows".
        for c in &d.causes {
            assert!(
                !c.evidence
                    .iter()
                    .any(|e| e.contains("freeze") && e.contains("no ")),
                "{d:#?}"
            );
        }
    }

    #[test]
    fn a_logout_is_demoted_when_the_refresh_token_died_too_or_introspection_disagrees() {
        // Rotation reuse without SOQL access: the refresh token died with the session.
        let mut f = base();
        f.reads = OrgReads::default();
        f.org_queried = false;
        f.user = None;
        f.recent_events
            .push(past(NOW.0 - 120_000, "token_refreshed", None, false));
        f.recent_events[0].rotated = true;
        f.dry_refresh = dead_refresh_token();
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::RefreshTokenReused, "{d:#?}");
        // Nothing about the org is claimed: it was not read.
        for c in &d.causes {
            assert!(
                !c.evidence.iter().any(|e| e.contains("shows in the org")),
                "{d:#?}"
            );
        }
        // An IP lock after a move: introspection active while the call is refused, and two
        // IP findings.
        let mut f = base();
        f.introspection = Some(true);
        f.current_source_ip = Some("127.0.0.2".into());
        f.setup_audit.push(audit(
            NOW.0 - 10_000,
            "changedsessionsettings",
            "Changed login IP ranges / session IP locking",
        ));
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::IpRestricted, "{d:#?}");
    }

    #[test]
    fn independent_findings_of_one_cause_add_up() {
        use crate::diagnose::Finding;
        let d = Diagnosis::ranked(
            vec![
                Finding::new(D::LoggedOutElsewhere, 0.65, vec!["a".into()]),
                Finding::new(D::IpRestricted, 0.5, vec!["b".into()]),
                Finding::new(D::IpRestricted, 0.5, vec!["c".into()]),
            ],
            Some(true),
        );
        assert_eq!(d.verdict, D::IpRestricted, "{d:#?}");
        assert_eq!(d.top().confidence, 0.75);
        assert_eq!(d.top().evidence, vec!["b".to_owned(), "c".to_owned()]);
        let many = (0..20).map(|i| Finding::new(D::UserFrozen, 0.9, vec![i.to_string()]));
        let d = Diagnosis::ranked(many.collect(), Some(false));
        assert!(d.top().confidence <= 0.99, "{d:#?}");
    }

    /// A password login refused, nothing of the org readable: the org answers a wrong
    /// password, a changed password and a frozen user alike.
    fn password_refused_blind(secrets: Option<PasswordSecrets>) -> Facts {
        let mut f = base();
        f.reads = OrgReads::default();
        f.org_queried = false;
        f.user = None;
        f.introspection = None;
        f.dry_refresh = vec![fail(
            GrantKind::Password,
            Cause::AuthenticationFailure,
            "invalid_grant: authentication failure",
        )];
        f.password_secrets = secrets;
        f
    }

    fn secrets(changed_at: i64, last_worked_at: i64) -> Option<PasswordSecrets> {
        Some(PasswordSecrets {
            source: "the file /p/password".into(),
            changed_at: Some(UnixMillis(changed_at)),
            last_worked_at: Some(UnixMillis(last_worked_at)),
        })
    }

    #[test]
    fn a_password_file_written_after_the_last_login_that_worked_is_a_wrong_password() {
        let d = diagnose(&password_refused_blind(secrets(
            NOW.0 - 1_000,
            NOW.0 - 60_000,
        )));
        assert_eq!(d.verdict, D::WrongPassword, "{d:#?}");
        assert!(!d.recoverable);
        assert!(
            d.top()
                .evidence
                .iter()
                .any(|e| e.contains("changed 59s after")),
            "{d:#?}"
        );
    }

    #[test]
    fn an_unchanged_password_file_ties_a_password_change_and_a_freeze_and_says_what_decides() {
        let d = diagnose(&password_refused_blind(secrets(
            NOW.0 - 90_000,
            NOW.0 - 60_000,
        )));
        let top2: Vec<D> = d.causes.iter().take(2).map(|c| c.cause).collect();
        assert_eq!(top2, [D::PasswordChanged, D::UserFrozen], "{d:#?}");
        assert_eq!(d.causes[0].confidence, d.causes[1].confidence);
        for c in &d.causes[..2] {
            assert!(
                c.evidence
                    .iter()
                    .any(|e| e.contains("cannot be told apart") && e.contains("LoginHistory")),
                "{c:#?}"
            );
        }
        let wrong = d
            .causes
            .iter()
            .find(|c| c.cause == D::WrongPassword)
            .unwrap();
        assert!(wrong.confidence < 0.2, "{d:#?}");
        assert!(!d.recoverable);
    }

    #[test]
    fn an_invalid_password_in_login_history_without_a_password_change_is_the_profiles_password() {
        // The stored session still works; doctor's own password login was refused.
        let mut f = alive_healthy();
        f.dry_refresh = vec![fail(
            GrantKind::Password,
            Cause::AuthenticationFailure,
            "invalid_grant: authentication failure",
        )];
        f.login_history = vec![LoginRow {
            at: UnixMillis(NOW.0 - 1_000),
            status: "Invalid Password".into(),
            source_ip: "127.0.0.1".into(),
        }];
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::WrongPassword, "{d:#?}");
        assert!(!d.recoverable, "the next login is refused");
        // With the org's password changed since the last use, the refused login is the change.
        f.user.as_mut().unwrap().last_password_change = Some(UnixMillis(NOW.0 - 30_000));
        let d = diagnose(&f);
        let of = |c: D| d.causes.iter().find(|x| x.cause == c);
        assert!(
            of(D::PasswordChanged)
                .is_some_and(|x| x.evidence.iter().any(|e| e.contains("LoginHistory"))),
            "{d:#?}"
        );
        assert!(
            of(D::WrongPassword).is_none_or(|x| x.confidence < 0.5),
            "{d:#?}"
        );
    }

    #[test]
    fn a_dead_refresh_token_with_nothing_readable_ties_revoke_policy_and_eviction() {
        let mut f = base();
        f.reads = OrgReads::default();
        f.org_queried = false;
        f.user = None;
        f.dry_refresh = vec![fail(
            GrantKind::RefreshToken,
            Cause::RefreshTokenRevoked,
            "invalid_grant: expired access/refresh token",
        )];
        let d = diagnose(&f);
        let top3: Vec<D> = d.causes.iter().take(3).map(|c| c.cause).collect();
        assert_eq!(
            top3,
            [
                D::AppTokensRevoked,
                D::RefreshTokenExpiredByPolicy,
                D::RefreshTokenEvicted
            ],
            "{d:#?}"
        );
        assert!(
            d.causes[..3]
                .iter()
                .all(|c| c.confidence == d.causes[0].confidence)
        );
        for c in &d.causes[..3] {
            assert!(
                c.evidence
                    .iter()
                    .any(|e| e.contains("cannot be told apart") && e.contains("SetupAuditTrail")),
                "{c:#?}"
            );
        }
    }
}
