//! `grant_type=client_credentials`: a token for the connected app's run-as user. No refresh
//! token is issued; re-minting is always safe.

use super::{ClientAuth, TokenEndpoint, TokenResponse};
use crate::error::Result;
use crate::secret::ClientSecret;

/// Requests a token for the app's run-as user.
pub async fn request(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: &ClientSecret,
) -> Result<TokenResponse> {
    endpoint
        .request_token(
            &[("grant_type", "client_credentials")],
            ClientAuth::Body {
                client_id,
                client_secret: Some(client_secret),
            },
        )
        .await
}
