//! `/services/oauth2/introspect`: the only place Salesforce tells a token's real expiry (`exp`,
//! seconds). An app may introspect only its own tokens unless it has "Introspect All Tokens";
//! otherwise the answer is `{"active":false}` and the configured timeout is used instead.

use super::{ClientAuth, TokenEndpoint};
use crate::clock::UnixMillis;
use crate::error::Result;
use crate::secret::{AccessToken, ClientSecret};

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
    let raw = endpoint
        .post_form(
            "/services/oauth2/introspect",
            &[
                ("token", token.expose_secret()),
                ("token_type_hint", "access_token"),
            ],
            ClientAuth::Body {
                client_id,
                client_secret: Some(client_secret),
            },
        )
        .await?;
    if raw.status != 200 {
        return Err(super::endpoint::token_failure(raw.status, &raw.body));
    }
    let v: serde_json::Value = serde_json::from_slice(&raw.body).unwrap_or_default();
    if v.get("active").and_then(|a| a.as_bool()) != Some(true) {
        return Ok(Introspection::Inactive);
    }
    let exp = v
        .get("exp")
        .and_then(|e| e.as_i64())
        .map(|s| UnixMillis(s * 1000));
    Ok(Introspection::Active { exp })
}
