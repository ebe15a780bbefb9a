//! `grant_type=password` (legacy; blocked by default in new orgs since Summer '23).

use super::{ClientAuth, TokenEndpoint, TokenResponse};
use crate::error::Result;
use crate::secret::{ClientSecret, Password, SecurityToken};
use zeroize::Zeroizing;

/// Logs in with username and password (plus security token, appended).
pub async fn request(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
    username: &str,
    password: &Password,
    security_token: Option<&SecurityToken>,
) -> Result<TokenResponse> {
    let joined = Zeroizing::new(format!(
        "{}{}",
        password.expose_secret(),
        security_token
            .map(|t| t.expose_secret())
            .unwrap_or_default()
    ));
    endpoint
        .request_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", joined.as_str()),
            ],
            ClientAuth::Body {
                client_id,
                client_secret: Some(client_secret),
            },
        )
        .await
}
