//! Classification of token-endpoint failures (`docs/salesforce-wire.md` §2 and §10).
//!
//! Salesforce answers almost every failure with HTTP 400 and `invalid_grant`; only the
//! `error_description` tells the causes apart. Key order varies, so the body is parsed, never
//! compared as a string.

use super::Cause;

/// A token-endpoint error as Salesforce sent it: the OAuth `error` code and its description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthErrorBody {
    /// The `error` field, e.g. `invalid_grant`.
    pub error: String,
    /// The `error_description` field, e.g. `expired access/refresh token`.
    pub description: String,
}

impl OAuthErrorBody {
    /// Parses `{"error": .., "error_description": ..}`; `None` for anything else.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let error = v.get("error")?.as_str()?.to_owned();
        let description = v
            .get("error_description")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_owned();
        Some(Self { error, description })
    }
}

/// The cause behind a token-endpoint response with status `status` and body `body`.
pub fn classify(status: u16, body: &[u8]) -> Cause {
    if status >= 500 || status == 429 {
        return Cause::Transient;
    }
    match OAuthErrorBody::parse(body) {
        Some(e) => classify_oauth_error(&e.error, &e.description),
        None => Cause::Unknown,
    }
}

/// The cause behind an OAuth `error` code and `error_description`.
pub fn classify_oauth_error(error: &str, description: &str) -> Cause {
    let d = description.to_ascii_lowercase();
    match error {
        "invalid_grant" => {
            if d.contains("expired access/refresh token") {
                Cause::RefreshTokenRevoked
            } else if d.contains("inactive user") {
                Cause::InactiveUser
            } else if d.contains("ip restricted") {
                Cause::IpRestricted
            } else if d.contains("hasn't approved") || d.contains("has not approved") {
                Cause::AppNotApproved
            } else if d.contains("audience") {
                Cause::AudienceInvalid
            } else if d.contains("invalid assertion") {
                Cause::InvalidAssertion
            } else if d.contains("expired authorization code")
                || d.contains("invalid code verifier")
            {
                Cause::AuthorizationCodeExpired
            } else if d.contains("already being processed") {
                Cause::Transient
            } else if d.contains("authentication failure") {
                Cause::AuthenticationFailure
            } else {
                Cause::Unknown
            }
        }
        "inactive_user" => Cause::InactiveUser,
        "inactive_org" => Cause::InactiveOrg,
        "invalid_client_id" => Cause::InvalidClientId,
        "invalid_client" | "invalid_client_credentials" => Cause::InvalidClient,
        "unsupported_grant_type" => Cause::UnsupportedGrantType,
        "rate_limit_exceeded" => Cause::RateLimited,
        "authorization_pending" => Cause::AuthorizationPending,
        "invalid_request" if d.contains("jti") => Cause::InvalidAssertion,
        _ => Cause::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_token_error_has_its_cause() {
        let table: &[(&str, Cause)] = &[
            (
                r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
                Cause::RefreshTokenRevoked,
            ),
            (
                r#"{"error_description":"authentication failure","error":"invalid_grant"}"#,
                Cause::AuthenticationFailure,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"authentication failure - Invalid Password"}"#,
                Cause::AuthenticationFailure,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"inactive user"}"#,
                Cause::InactiveUser,
            ),
            (
                r#"{"error":"inactive_user","error_description":"x"}"#,
                Cause::InactiveUser,
            ),
            (
                r#"{"error":"inactive_org","error_description":"x"}"#,
                Cause::InactiveOrg,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"ip restricted"}"#,
                Cause::IpRestricted,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"IP restricted or invalid login hours"}"#,
                Cause::IpRestricted,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"user hasn't approved this consumer"}"#,
                Cause::AppNotApproved,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"invalid assertion"}"#,
                Cause::InvalidAssertion,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"Audience validation failed"}"#,
                Cause::AudienceInvalid,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"expired authorization code"}"#,
                Cause::AuthorizationCodeExpired,
            ),
            (
                r#"{"error":"invalid_request","error_description":"jti already in use"}"#,
                Cause::InvalidAssertion,
            ),
            (
                r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
                Cause::InvalidClientId,
            ),
            (
                r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
                Cause::InvalidClient,
            ),
            (
                r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#,
                Cause::UnsupportedGrantType,
            ),
            (
                r#"{"error":"rate_limit_exceeded","error_description":"x"}"#,
                Cause::RateLimited,
            ),
            (
                r#"{"error":"authorization_pending","error_description":"x"}"#,
                Cause::AuthorizationPending,
            ),
            (
                r#"{"error":"invalid_grant","error_description":"Token request is already being processed"}"#,
                Cause::Transient,
            ),
        ];
        for (body, want) in table {
            assert_eq!(classify(400, body.as_bytes()), *want, "{body}");
        }
    }

    #[test]
    fn html_and_empty_bodies_are_unknown_and_5xx_transient() {
        assert_eq!(classify(400, b"<html>oops</html>"), Cause::Unknown);
        assert_eq!(classify(400, b""), Cause::Unknown);
        assert_eq!(classify(503, b"<html>maintenance</html>"), Cause::Transient);
    }
}
