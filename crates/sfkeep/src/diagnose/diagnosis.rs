//! The operator-facing diagnosis: why a session died, ranked causes with evidence and a fix.
//!
//! [`Cause`](super::Cause) is what one response says; [`DiagnosisCause`] is what an operator
//! needs to hear (the five causes of session death and their relatives). A [`Diagnosis`]
//! serializes to exactly
//! `{"verdict": CAUSE, "recoverable": bool, "causes": [{"cause": CAUSE, "confidence": 0..1,
//! "evidence": [..], "fix": ".."}]}`.

use std::fmt;

/// Why a session died, as `sfkeep doctor` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisCause {
    /// The session was idle longer than the session timeout.
    SessionTimeout,
    /// The user logged out (UI logout, or another client ended the user's sessions).
    LoggedOutElsewhere,
    /// The integration user's password changed (sessions end; password logins fail).
    PasswordChanged,
    /// The source IP is outside the allowed ranges, or moved while sessions are IP-locked.
    IpRestricted,
    /// An admin revoked the connected app's tokens.
    AppTokensRevoked,
    /// The integration user is frozen.
    UserFrozen,
    /// The integration user is deactivated.
    UserDeactivated,
    /// The user is not pre-authorized for (has not approved) the connected app.
    AppNotApproved,
    /// A rotated-out refresh token was used again, so Salesforce revoked the whole family.
    RefreshTokenReused,
    /// The app's refresh-token policy expired the refresh token.
    RefreshTokenExpiredByPolicy,
    /// The user approved the app a sixth time elsewhere: Salesforce revoked the least recently
    /// used of five approvals, the integration's.
    RefreshTokenEvicted,
    /// A rotating refresh was interrupted after the org rotated the refresh token (the sender
    /// crashed, stalled past its lock, or lost the answer): the new refresh token was lost
    /// (`docs/rotation-safety.md`).
    RefreshInterrupted,
    /// The store lost the only valid refresh token under rotation (Redis flushed or restarted
    /// without persistence, a deleted or restored store file, a logout), and the configured
    /// one is spent.
    RefreshTokenLost,
    /// The session cannot be used with this API (high assurance, API Access Control, scope).
    SessionNotValidForApi,
    /// The local clock is far from the server's.
    ClockSkew,
    /// API access is disabled (edition, permission, locked org).
    ApiDisabled,
    /// A login or API rate limit is used up.
    RateLimited,
    /// The profile's password or security token is wrong (a typo, a missing security token,
    /// an old one after a reset): configuration, not a session death.
    WrongPassword,
    /// The profile's client id (consumer key) or client secret is wrong: configuration.
    InvalidClient,
    /// Nothing is wrong.
    Healthy,
    /// The evidence does not point anywhere.
    Unknown,
}

impl DiagnosisCause {
    /// Every cause, in declaration order.
    pub const ALL: [DiagnosisCause; 21] = [
        Self::SessionTimeout,
        Self::LoggedOutElsewhere,
        Self::PasswordChanged,
        Self::IpRestricted,
        Self::AppTokensRevoked,
        Self::UserFrozen,
        Self::UserDeactivated,
        Self::AppNotApproved,
        Self::RefreshTokenReused,
        Self::RefreshTokenExpiredByPolicy,
        Self::RefreshTokenEvicted,
        Self::RefreshInterrupted,
        Self::RefreshTokenLost,
        Self::SessionNotValidForApi,
        Self::ClockSkew,
        Self::ApiDisabled,
        Self::RateLimited,
        Self::WrongPassword,
        Self::InvalidClient,
        Self::Healthy,
        Self::Unknown,
    ];

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionTimeout => "session_timeout",
            Self::LoggedOutElsewhere => "logged_out_elsewhere",
            Self::PasswordChanged => "password_changed",
            Self::IpRestricted => "ip_restricted",
            Self::AppTokensRevoked => "app_tokens_revoked",
            Self::UserFrozen => "user_frozen",
            Self::UserDeactivated => "user_deactivated",
            Self::AppNotApproved => "app_not_approved",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::RefreshTokenExpiredByPolicy => "refresh_token_expired_by_policy",
            Self::RefreshTokenEvicted => "refresh_token_evicted",
            Self::RefreshInterrupted => "refresh_interrupted",
            Self::RefreshTokenLost => "refresh_token_lost",
            Self::SessionNotValidForApi => "session_not_valid_for_api",
            Self::ClockSkew => "clock_skew",
            Self::ApiDisabled => "api_disabled",
            Self::RateLimited => "rate_limited",
            Self::WrongPassword => "wrong_password",
            Self::InvalidClient => "invalid_client",
            Self::Healthy => "healthy",
            Self::Unknown => "unknown",
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            Self::SessionTimeout => "the session timed out (inactivity)",
            Self::LoggedOutElsewhere => "the user's sessions were ended elsewhere (logout)",
            Self::PasswordChanged => "the integration user's password changed",
            Self::IpRestricted => "the source IP is not allowed",
            Self::AppTokensRevoked => "an admin revoked the connected app's tokens",
            Self::UserFrozen => "the integration user is frozen",
            Self::UserDeactivated => "the integration user is deactivated",
            Self::AppNotApproved => "the user is not approved for the connected app",
            Self::RefreshTokenReused => "a rotated-out refresh token was reused",
            Self::RefreshTokenExpiredByPolicy => "the refresh token expired by the app's policy",
            Self::RefreshTokenEvicted => {
                "a sixth approval of the app by the user revoked the integration's refresh token"
            }
            Self::RefreshInterrupted => {
                "a refresh was interrupted after the org rotated the refresh token; the new refresh token was lost"
            }
            Self::RefreshTokenLost => {
                "the token store lost the rotated refresh token, and the configured one is spent"
            }
            Self::SessionNotValidForApi => "the session is not valid for this API",
            Self::ClockSkew => "the local clock is off",
            Self::ApiDisabled => "API access is disabled",
            Self::RateLimited => "a rate limit is used up",
            Self::WrongPassword => "the profile's password or security token is wrong",
            Self::InvalidClient => "the profile's client id or client secret is wrong",
            Self::Healthy => "the session works",
            Self::Unknown => "the evidence does not point at a cause",
        }
    }

    /// What to do about it.
    pub fn fix(self) -> &'static str {
        match self {
            Self::SessionTimeout => {
                "Nothing to fix by hand: get a new access token (`sfkeep recover`; the library and proxy refresh by themselves). If it keeps happening, raise the connected app's Timeout Value or call more often."
            }
            Self::LoggedOutElsewhere => {
                "Get a new access token (`sfkeep recover`), and stop logging the integration user in interactively: give people their own users."
            }
            Self::PasswordChanged => {
                "OAuth refresh and JWT grants survive a password change: run `sfkeep recover`. A password or SOAP login needs the new password (and the new security token) in the profile's secret."
            }
            Self::IpRestricted => {
                "Call from an allowed address, or have an admin add this address to the profile's Login IP Ranges (Setup > Profiles) or relax the connected app's IP restrictions; then `sfkeep recover`."
            }
            Self::AppTokensRevoked => {
                "Re-authorize: configure a JWT bearer or client-credentials fallback grant and run `sfkeep recover`, or run `sfkeep login --web` for a new refresh token. Ask the admin why the tokens were revoked."
            }
            Self::UserFrozen => {
                "An admin must unfreeze the integration user (Setup > Users > Unfreeze); then `sfkeep recover`."
            }
            Self::UserDeactivated => {
                "An admin must re-activate the integration user (Setup > Users > Edit > Active); then `sfkeep recover`."
            }
            Self::AppNotApproved => {
                "An admin must pre-authorize the user for the connected app (Manage Connected Apps > Permitted Users: Admin approved users are pre-authorized, and add the user's profile or permission set); then `sfkeep recover`."
            }
            Self::RefreshTokenReused => {
                "Re-authorize (`sfkeep login --web`, or `sfkeep recover` with a JWT fallback), and make every process share one token store so a rotated refresh token is never used twice."
            }
            Self::RefreshTokenExpiredByPolicy => {
                "Re-authorize (`sfkeep login --web`, or `sfkeep recover` with a JWT fallback), and check the app's refresh-token policy (Manage Connected Apps > OAuth Policies)."
            }
            Self::RefreshTokenEvicted => {
                "Re-authorize (`sfkeep login --web`, or `sfkeep recover` with a JWT fallback), and stop approving this connected app as the integration user elsewhere (a person on a laptop, the sf CLI): a user keeps at most five approvals per app and a sixth revokes the least recently used. Revoke approvals you do not need under Settings > Advanced User Details > OAuth Connected Apps."
            }
            Self::RefreshInterrupted => {
                "Re-authorize: `sfkeep login --web` (or `sfkeep recover` with a JWT bearer fallback grant, which heals this by itself). sfkeep did not send the old refresh token again: that would have made Salesforce revoke every token of the family."
            }
            Self::RefreshTokenLost => {
                "Re-authorize: `sfkeep login --web` (or `sfkeep recover` with a JWT bearer fallback grant). Do not put the configured refresh token back: it was rotated away, and presenting it revokes every token of the family. Keep the token store durable (Redis persistence, a backed-up file) so the rotated token survives."
            }
            Self::SessionNotValidForApi => {
                "Refreshing will not help: give the session API access (no high-assurance requirement for the integration user, API Access Control allows the app, the `api` scope is granted)."
            }
            Self::ClockSkew => {
                "Synchronise the machine's clock (NTP): JWT assertions and expiry times depend on it."
            }
            Self::ApiDisabled => {
                "API access must be enabled: the edition must include the API, the user's profile needs \"API Enabled\", and the org must not be locked."
            }
            Self::RateLimited => {
                "Back off until the limit resets (login rate: within the hour; daily API requests: rolling 24 h). Cache tokens instead of logging in per call."
            }
            Self::WrongPassword => {
                "Check the profile's `password` and `security_token` secrets: the security token is appended to the password, and a password change or a token reset sends a new one by email. Then `sfkeep recover`."
            }
            Self::InvalidClient => {
                "Check the profile's `client_id` against the connected app's consumer key and `client_secret` against its consumer secret (Setup > App Manager > View > Manage Consumer Details); a new app takes 2-10 minutes to be known. Then `sfkeep recover`."
            }
            Self::Healthy => "Nothing to do.",
            Self::Unknown => {
                "Run `sfkeep doctor` against the org for evidence, or `SFKEEP_LOG=debug` for the raw responses."
            }
        }
    }

    /// Whether a new token from the integration's own grants is enough (no person acts).
    pub fn recoverable_by_default(self) -> bool {
        matches!(
            self,
            Self::SessionTimeout | Self::LoggedOutElsewhere | Self::PasswordChanged | Self::Healthy
        )
    }
}

impl fmt::Display for DiagnosisCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DiagnosisCause {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a diagnosis cause"))
    }
}

/// The fix for a changed password when the failing login sends it (password grant, SOAP
/// `login()`), so a plain `sfkeep recover` cannot work yet.
pub(crate) const NEW_PASSWORD_FIX: &str = "Put the new password (and the new security token that came with it) in the profile's `password` / `security_token` secrets, then run `sfkeep recover`. Or switch the profile to a grant that sends no password (JWT bearer, refresh token).";

/// One ranked cause with its evidence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// The cause.
    pub cause: DiagnosisCause,
    /// How sure, 0..=1.
    pub confidence: f64,
    /// What points at it, one fact per line.
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: String,
}

impl Finding {
    /// A finding with the cause's standard fix.
    pub fn new(cause: DiagnosisCause, confidence: f64, evidence: Vec<String>) -> Self {
        Self {
            cause,
            confidence: confidence.clamp(0.0, 1.0),
            evidence,
            fix: cause.fix().to_owned(),
        }
    }

    /// Replaces the fix.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

/// Causes ranked by confidence, the verdict (the top one), and whether the integration's own
/// grants can recover without a person.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diagnosis {
    /// The most likely cause.
    pub verdict: DiagnosisCause,
    /// A new token from the configured grants fixes it.
    pub recoverable: bool,
    /// Every cause considered, most likely first.
    pub causes: Vec<Finding>,
}

/// The most combined findings can reach: agreement is never certainty.
pub const MAX_CONFIDENCE: f64 = 0.99;

/// One finding per cause, in first-seen order: evidence joined, confidences combined as
/// independent findings (`1 − Π(1 − cᵢ)`, at most [`MAX_CONFIDENCE`]), the strongest
/// finding's fix kept.
pub(super) fn merge(findings: Vec<Finding>) -> Vec<Finding> {
    let mut merged: Vec<Finding> = Vec::new();
    for f in findings {
        match merged.iter_mut().find(|m| m.cause == f.cause) {
            Some(m) => {
                let combined = 1.0 - (1.0 - m.confidence) * (1.0 - f.confidence);
                if f.confidence > m.confidence {
                    m.fix = f.fix;
                }
                m.confidence = combined.min(MAX_CONFIDENCE.max(m.confidence));
                for e in f.evidence {
                    if !m.evidence.contains(&e) {
                        m.evidence.push(e);
                    }
                }
            }
            None => merged.push(f),
        }
    }
    merged
}

impl Diagnosis {
    /// Ranks `findings` (highest confidence first) and takes the top one as the verdict.
    /// Empty → `unknown`. Findings of one cause are merged: their evidence is joined, and
    /// independent findings add up (`1 − Π(1 − cᵢ)`, at most [`MAX_CONFIDENCE`]), so two
    /// separate signs of a cause outrank one generic guess; the strongest finding's fix is kept.
    pub fn ranked(findings: Vec<Finding>, recoverable: Option<bool>) -> Self {
        let mut merged = merge(findings);
        // Stable: ties keep the order the rules produced them in.
        merged.sort_by(|a, b| {
            b.confidence
                .partial_cmp(&a.confidence)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        if merged.is_empty() {
            merged.push(Finding::new(
                DiagnosisCause::Unknown,
                0.0,
                vec!["no evidence points at any cause".into()],
            ));
        }
        for f in &mut merged {
            f.confidence = (f.confidence * 100.0).round() / 100.0;
        }
        let verdict = merged[0].cause;
        Self {
            verdict,
            recoverable: recoverable.unwrap_or_else(|| verdict.recoverable_by_default()),
            causes: merged,
        }
    }

    /// The verdict's finding.
    pub fn top(&self) -> &Finding {
        &self.causes[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_json_shape_is_exact() {
        for c in DiagnosisCause::ALL {
            assert_eq!(c.as_str().parse::<DiagnosisCause>().unwrap(), c);
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
        }
        let d = Diagnosis::ranked(
            vec![
                Finding::new(DiagnosisCause::LoggedOutElsewhere, 0.3, vec!["a".into()]),
                Finding::new(DiagnosisCause::SessionTimeout, 0.8, vec!["b".into()]),
                Finding::new(DiagnosisCause::LoggedOutElsewhere, 0.2, vec!["c".into()]),
            ],
            None,
        );
        assert_eq!(d.verdict, DiagnosisCause::SessionTimeout);
        assert!(d.recoverable);
        assert_eq!(d.causes.len(), 2);
        assert_eq!(d.causes[1].evidence, vec!["a", "c"]);
        let v = serde_json::to_value(&d).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3);
        for k in ["verdict", "recoverable", "causes"] {
            assert!(keys.contains(&k));
        }
        let c = v["causes"][0].as_object().unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(v["verdict"], "session_timeout");
        assert_eq!(v["causes"][0]["confidence"], 0.8);
    }

    #[test]
    fn empty_is_unknown() {
        let d = Diagnosis::ranked(vec![], Some(false));
        assert_eq!(d.verdict, DiagnosisCause::Unknown);
        assert!(!d.recoverable);
    }
}
