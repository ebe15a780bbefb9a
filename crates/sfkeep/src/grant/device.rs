//! Device authorization for headless machines: the CLI shows the user code and polls.

use super::{ClientAuth, TokenEndpoint, TokenResponse};
use crate::diagnose::Cause;
use crate::error::{Error, Result, redacted_snippet};

/// What the device authorization request returned.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct DeviceAuthorization {
    /// Polled with; secret-ish, so not shown to the user.
    #[serde(skip_serializing)]
    pub device_code: String,
    /// What the user types on the verification page.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// Starts a device login (`response_type=device_code`).
pub async fn start(
    endpoint: &TokenEndpoint,
    client_id: &str,
    scope: &str,
) -> Result<DeviceAuthorization> {
    let raw = endpoint
        .post_form(
            "/services/oauth2/token",
            &[("response_type", "device_code"), ("scope", scope)],
            ClientAuth::Body {
                client_id,
                client_secret: None,
            },
        )
        .await?;
    if raw.status != 200 {
        return Err(super::endpoint::token_failure(raw.status, &raw.body));
    }
    serde_json::from_slice(&raw.body).map_err(|e| Error::MalformedResponse {
        source_name: "device authorization".into(),
        problem: e.to_string(),
        status: raw.status,
        snippet: redacted_snippet(&raw.body),
    })
}

/// Polls once: `Ok(None)` while the user has not approved yet.
pub async fn poll(
    endpoint: &TokenEndpoint,
    client_id: &str,
    device_code: &str,
) -> Result<Option<TokenResponse>> {
    match endpoint
        .request_token(
            &[("grant_type", "device"), ("code", device_code)],
            ClientAuth::Body {
                client_id,
                client_secret: None,
            },
        )
        .await
    {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.cause() == Some(Cause::AuthorizationPending) => Ok(None),
        Err(e) => Err(e),
    }
}
