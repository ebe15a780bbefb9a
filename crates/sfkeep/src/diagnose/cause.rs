use std::fmt;

/// Why a credential stopped working, as far as one response can tell.
///
/// Each cause says whether a refresh can fix it ([`Cause::is_refreshable`]), whether retrying
/// later may ([`Cause::is_transient`]), and what an operator should do ([`Cause::fix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The access token is no longer valid (timeout, logout, password change, IP lock, revoke).
    SessionExpired,
    /// The refresh token is revoked, expired by policy, or was rotated out and reused.
    RefreshTokenRevoked,
    /// Wrong credentials, a blocked flow (password flow disabled), or a frozen user.
    AuthenticationFailure,
    /// The integration user is deactivated.
    InactiveUser,
    /// The org is locked or suspended.
    InactiveOrg,
    /// The login came from outside the allowed IP ranges or login hours.
    IpRestricted,
    /// The user has not approved (or been pre-authorized for) the connected app.
    AppNotApproved,
    /// The JWT assertion was rejected (signature, `sub`, `exp`).
    InvalidAssertion,
    /// The JWT `aud` is not the login host.
    AudienceInvalid,
    /// The authorization code expired or was reused.
    AuthorizationCodeExpired,
    /// The consumer key is unknown (or a new app has not propagated yet): configuration, not a
    /// passing failure. Retrying a typo only spends the login budget; the fix names the
    /// propagation delay for a brand-new app.
    InvalidClientId,
    /// The consumer secret is wrong.
    InvalidClient,
    /// The request's grant type is not supported: a client bug.
    UnsupportedGrantType,
    /// The API version does not offer the call: a retired version (30.0 and lower), or SOAP
    /// `login()` at 65.0 and later.
    ApiVersionUnsupported,
    /// The login rate limit (about 3,600 per user per hour) is used up.
    RateLimited,
    /// The session cannot be used with this API (high assurance, API access control, scope).
    SessionNotValidForApi,
    /// The daily API request limit is used up.
    RequestLimitExceeded,
    /// The device-flow user has not approved yet.
    AuthorizationPending,
    /// A rotating refresh was interrupted (a crashed or stalled sender, a lost response) after
    /// the org may have rotated the refresh token: the new refresh token was lost, and the old
    /// one is not sent again because presenting it would revoke the whole token family.
    RefreshInterrupted,
    /// Under rotation the store lost the only valid refresh token (store loss, a logout
    /// tombstone), and the configured one is spent: it is not sent, since presenting a
    /// rotated-out token revokes the whole token family (`docs/rotation-safety.md`).
    RefreshTokenLost,
    /// A temporary failure: 5xx, network error, or a refresh already in flight elsewhere.
    Transient,
    /// A response nothing here recognises.
    Unknown,
}

impl Cause {
    /// A stable snake_case name (as used in JSON and events).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::SessionExpired => "session_expired",
            Cause::RefreshTokenRevoked => "refresh_token_revoked",
            Cause::AuthenticationFailure => "authentication_failure",
            Cause::InactiveUser => "inactive_user",
            Cause::InactiveOrg => "inactive_org",
            Cause::IpRestricted => "ip_restricted",
            Cause::AppNotApproved => "app_not_approved",
            Cause::InvalidAssertion => "invalid_assertion",
            Cause::AudienceInvalid => "audience_invalid",
            Cause::AuthorizationCodeExpired => "authorization_code_expired",
            Cause::InvalidClientId => "invalid_client_id",
            Cause::InvalidClient => "invalid_client",
            Cause::UnsupportedGrantType => "unsupported_grant_type",
            Cause::ApiVersionUnsupported => "api_version_unsupported",
            Cause::RateLimited => "rate_limited",
            Cause::SessionNotValidForApi => "session_not_valid_for_api",
            Cause::RequestLimitExceeded => "request_limit_exceeded",
            Cause::AuthorizationPending => "authorization_pending",
            Cause::RefreshInterrupted => "refresh_interrupted",
            Cause::RefreshTokenLost => "refresh_token_lost",
            Cause::Transient => "transient",
            Cause::Unknown => "unknown",
        }
    }

    /// A new access token (from a refresh or another grant) fixes it.
    pub fn is_refreshable(self) -> bool {
        matches!(self, Cause::SessionExpired)
    }

    /// Trying again later, unchanged, may succeed. A wrong consumer key or secret is not:
    /// it is the configuration's mistake ([`Cause::InvalidClientId`], [`Cause::InvalidClient`]).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Cause::Transient | Cause::RateLimited | Cause::AuthorizationPending
        )
    }

    /// Only a person can fix it (re-authorize, re-activate, change a policy).
    pub fn needs_human(self) -> bool {
        !self.is_refreshable() && !self.is_transient() && self != Cause::Unknown
    }

    /// What to do about it, in one sentence.
    pub fn fix(self) -> &'static str {
        match self {
            Cause::SessionExpired => "Refresh the access token (sfkeep does this by itself).",
            Cause::RefreshTokenRevoked => {
                "Re-authorize: run `sfkeep login` (or configure a JWT bearer fallback so no refresh token is needed)."
            }
            Cause::AuthenticationFailure => {
                "Check the credentials, that the user is not frozen, and that the flow is allowed in the org; then `sfkeep recover`."
            }
            Cause::InactiveUser => {
                "An admin must re-activate the integration user in Setup > Users."
            }
            Cause::InactiveOrg => {
                "The org is locked or suspended: contact the org's admin or Salesforce support."
            }
            Cause::IpRestricted => {
                "Call from an allowed address, or have an admin add it to the profile's Login IP Ranges / relax the app's IP restrictions."
            }
            Cause::AppNotApproved => {
                "An admin must pre-authorize the user's profile or permission set for the connected app."
            }
            Cause::InvalidAssertion => {
                "Check the JWT signing key matches the app's certificate, and that `sub` is the username."
            }
            Cause::AudienceInvalid => {
                "Set the JWT audience to the login host (login.salesforce.com, test.salesforce.com or the community URL)."
            }
            Cause::AuthorizationCodeExpired => {
                "Start the authorization-code login again; codes are single-use and short-lived."
            }
            Cause::InvalidClientId => {
                "Check the consumer key; a new app can take 2-10 minutes to propagate."
            }
            Cause::InvalidClient => "Check the consumer secret.",
            Cause::UnsupportedGrantType => "A client bug: the token request was malformed.",
            Cause::ApiVersionUnsupported => {
                "Set api_version in the profile: 31.0 or later for any call, and 64.0 or lower for SOAP login() until it retires in Summer '27; better, log in with OAuth (`sfkeep login --jwt`, `--client-credentials` or `--web`)."
            }
            Cause::RateLimited => {
                "Back off: the login rate limit resets within the hour. Cache tokens instead of logging in per call."
            }
            Cause::SessionNotValidForApi => {
                "Refreshing will not help: the session lacks API access (high-assurance requirement, API Access Control, or missing `api` scope)."
            }
            Cause::RequestLimitExceeded => {
                "The org's daily API limit is used up: wait for it to reset or raise it."
            }
            Cause::AuthorizationPending => "Approve the login on the device page, then poll again.",
            Cause::Transient => "Temporary: retry with backoff.",
            Cause::RefreshInterrupted => {
                "Re-authorize: run `sfkeep login` (or `sfkeep recover`); a JWT bearer fallback grant heals this by itself."
            }
            Cause::RefreshTokenLost => {
                "Re-authorize: run `sfkeep login` (the configured refresh token was rotated away; do not put it back); a JWT bearer fallback grant heals this by itself."
            }
            Cause::Unknown => "Run `sfkeep doctor` for a diagnosis.",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_client_id_or_secret_is_configuration_not_a_passing_failure() {
        for cause in [Cause::InvalidClientId, Cause::InvalidClient] {
            assert!(!cause.is_transient(), "{cause}");
            assert!(cause.needs_human(), "{cause}");
        }
    }
}
