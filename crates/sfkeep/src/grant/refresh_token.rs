//! `grant_type=refresh_token`.
//!
//! With rotation on, the response carries a new refresh token and the old one is dead at once;
//! the caller must persist the new one before anyone else can refresh (the manager does).

use super::{ClientAuth, TokenEndpoint, TokenResponse};
use crate::error::Result;
use crate::secret::{ClientSecret, RefreshToken};

/// Exchanges a refresh token for a new access token.
pub async fn request(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: Option<&ClientSecret>,
    refresh_token: &RefreshToken,
) -> Result<TokenResponse> {
    endpoint
        .request_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ],
            ClientAuth::Body {
                client_id,
                client_secret,
            },
        )
        .await
}
