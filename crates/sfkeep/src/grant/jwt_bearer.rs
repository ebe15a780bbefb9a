//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: an RS256 assertion signed with the
//! key whose certificate the connected app holds. No refresh token, no shared mutable state:
//! the safest grant for a fleet and the usual fallback when a refresh token is revoked.

use std::time::Duration;

use super::{ClientAuth, TokenEndpoint, TokenResponse};
use crate::diagnose::Cause;
use crate::error::{Error, Result};
use crate::secret::PrivateKeyPem;

/// How far ahead the assertion's `exp` is set, on the skew-corrected clock.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// Builds the signed assertion. `aud` is the login host (or community URL).
pub fn assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    private_key: &PrivateKeyPem,
    now_secs: i64,
) -> Result<String> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes())
        .map_err(|e| {
            Error::Config(format!(
                "the JWT private key is not a usable RSA PEM key: {e}"
            ))
        })?;
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: now_secs + ASSERTION_LIFETIME.as_secs() as i64,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| Error::Config(format!("cannot sign the JWT assertion: {e}")))
}

/// How far the server's `Date` must move our clock estimate during a refused request for the
/// refusal to be blamed on the clock and the assertion re-signed once.
pub const SKEW_RETRY_THRESHOLD_MS: i64 = 60_000;

/// Requests a token with a fresh assertion.
///
/// The assertion's `exp` is set on the skew-corrected clock, which only learns of a jump of
/// the server's clock from the server's next `Date` header. If the server refuses the
/// assertion as expired (or not yet valid) and that very answer moved the estimate by more
/// than a minute, the assertion is re-signed on the corrected clock and sent once more.
pub async fn request(
    endpoint: &TokenEndpoint,
    client_id: &str,
    username: &str,
    private_key: &PrivateKeyPem,
    audience: Option<&str>,
) -> Result<TokenResponse> {
    let before = endpoint.clock().offset();
    match request_once(endpoint, client_id, username, private_key, audience).await {
        Err(e)
            if matches!(
                e.cause(),
                Some(Cause::AuthorizationCodeExpired | Cause::InvalidAssertion)
            ) && (endpoint.clock().offset() - before).abs() > SKEW_RETRY_THRESHOLD_MS =>
        {
            request_once(endpoint, client_id, username, private_key, audience)
                .await
                .map_err(assertion_error)
        }
        r => r.map_err(assertion_error),
    }
}

/// For this grant, Salesforce's "expired authorization code" means the assertion's `exp`
/// has passed on the server's clock: say so, instead of sending the reader to a web login.
fn assertion_error(e: Error) -> Error {
    match e {
        Error::ReauthRequired {
            cause: Cause::AuthorizationCodeExpired,
            detail,
        } => Error::ReauthRequired {
            cause: Cause::InvalidAssertion,
            detail: format!(
                "{detail} (the JWT assertion's exp had passed on the server's clock: check this machine's clock)"
            ),
        },
        e => e,
    }
}

async fn request_once(
    endpoint: &TokenEndpoint,
    client_id: &str,
    username: &str,
    private_key: &PrivateKeyPem,
    audience: Option<&str>,
) -> Result<TokenResponse> {
    let login = endpoint
        .login_url()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let aud = audience.unwrap_or(&login);
    let jwt = assertion(
        client_id,
        username,
        aud,
        private_key,
        endpoint.clock().now().as_secs(),
    )?;
    endpoint
        .request_token(
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ],
            ClientAuth::None,
        )
        .await
}
