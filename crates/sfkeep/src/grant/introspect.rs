//! `/services/oauth2/introspect`: the only place Salesforce tells a token's real expiry (`exp`,
//! seconds). An app may introspect only its own tokens unless it has "Introspect All Tokens";
//! otherwise the answer is `{"active":false}` and the configured timeout is used instead.

use super::endpoint::RawResponse;
use super::{ClientAuth, TokenEndpoint};
use crate::clock::UnixMillis;
use crate::error::Result;
use crate::secret::{AccessToken, ClientSecret, RefreshToken};

/// What introspection said about a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Introspection {
    /// Active, expiring at `exp` (server clock).
    Active {
        /// Expiry, when sent.
        exp: Option<UnixMillis>,
    },
    /// Inactive, unknown, or not ours to see.
    Inactive,
}

/// Introspects an access token.
pub async fn access_token(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
    token: &AccessToken,
) -> Result<Introspection> {
    let token = token.expose_secret();
    active(endpoint, client_id, client_secret, token, TokenKind::Access).await
}

/// Introspects a refresh token without consuming it: whether it is still the live one. An
/// answer of `Inactive` does not tell a rotated-out token from one this app may not see
/// (`docs/rotation-safety.md`), so only `Active` proves a token safe to present.
pub async fn refresh_token(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
    token: &RefreshToken,
) -> Result<Introspection> {
    let token = token.expose_secret();
    active(
        endpoint,
        client_id,
        client_secret,
        token,
        TokenKind::Refresh,
    )
    .await
}

/// Whether `token` of `kind` is active, and until when.
async fn active(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
    token: &str,
    kind: TokenKind,
) -> Result<Introspection> {
    let raw = post(endpoint, client_id, client_secret, token, kind).await?;
    Ok(introspection_of(&raw.body))
}

/// `Active` only for an answer that says `"active": true`; anything else is `Inactive`.
fn introspection_of(body: &[u8]) -> Introspection {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if v.get("active").and_then(|a| a.as_bool()) != Some(true) {
        return Introspection::Inactive;
    }
    let exp = v
        .get("exp")
        .and_then(|e| e.as_i64())
        .map(|s| UnixMillis(s * 1000));
    Introspection::Active { exp }
}

/// Which kind of token is introspected (`token_type_hint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token or session id.
    Access,
    /// A refresh token. Introspecting it does not use it: no new token, no rotation, no
    /// change to its idle timer (docs/salesforce-wire.md §3.1).
    Refresh,
}

impl TokenKind {
    /// The `token_type_hint` that names this kind.
    fn hint(self) -> &'static str {
        match self {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        }
    }
}

/// Sends `token` of `kind` to the introspection endpoint as this app: the one introspection
/// request. An answer other than 200 is the token endpoint's error for that status.
async fn post(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
    token: &str,
    kind: TokenKind,
) -> Result<RawResponse> {
    let raw = endpoint
        .post_form(
            "/services/oauth2/introspect",
            &[("token", token), ("token_type_hint", kind.hint())],
            ClientAuth::Body {
                client_id,
                client_secret: Some(client_secret),
            },
        )
        .await?;
    if raw.status != 200 {
        return Err(super::endpoint::token_failure(raw.status, &raw.body));
    }
    Ok(raw)
}

/// Everything introspection says about a live token (times on the server's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TokenInfo {
    /// When it was issued (`iat`): for a refresh token, the original authorization.
    pub issued_at: Option<UnixMillis>,
    /// When it ends (`exp`): for an access token, the session's end if not used again; for a
    /// refresh token, only when a policy ends it.
    pub expires_at: Option<UnixMillis>,
}

/// Introspects any token without using it: `Some` with what the server said when it is
/// active, `None` when it is inactive, unknown or not this app's to see. A `token` of `kind`
/// is sent as `token_type_hint`. An answer that is not a JSON object is an error that says so.
pub async fn token_info(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
    token: &str,
    kind: TokenKind,
) -> Result<Option<TokenInfo>> {
    let raw = post(endpoint, client_id, client_secret, token, kind).await?;
    parse_token_info(&raw.body).map_err(|problem| crate::error::Error::MalformedResponse {
        source_name: "the introspection endpoint".to_owned(),
        problem,
        status: raw.status,
        snippet: crate::redact::redacted_snippet(&raw.body),
    })
}

/// Reads an introspection answer (`exp`/`iat` in seconds, RFC 7662).
fn parse_token_info(body: &[u8]) -> std::result::Result<Option<TokenInfo>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    match obj.get("active") {
        Some(serde_json::Value::Bool(true)) => {}
        Some(serde_json::Value::Bool(false)) => return Ok(None),
        _ => return Err("no boolean \"active\" field".to_owned()),
    }
    let secs = |k: &str| {
        obj.get(k)
            .and_then(serde_json::Value::as_i64)
            .map(|s| UnixMillis(s.saturating_mul(1000)))
    };
    Ok(Some(TokenInfo {
        issued_at: secs("iat"),
        expires_at: secs("exp"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_info_reads_seconds_and_refuses_other_shapes() {
        let live =
            br#"{"active":true,"token_type":"refresh_token","iat":1700000000,"exp":1700003600}"#;
        assert_eq!(
            parse_token_info(live),
            Ok(Some(TokenInfo {
                issued_at: Some(UnixMillis(1_700_000_000_000)),
                expires_at: Some(UnixMillis(1_700_003_600_000)),
            }))
        );
        assert_eq!(parse_token_info(br#"{"active":false}"#), Ok(None));
        assert_eq!(
            parse_token_info(br#"{"active":true}"#),
            Ok(Some(TokenInfo::default()))
        );
        for bad in [&b"<html/>"[..], b"[]", br#"{"active":"yes"}"#, b""] {
            assert!(parse_token_info(bad).is_err(), "{bad:?}");
        }
    }
}
