//! `grant_type=authorization_code` with PKCE (S256): URL building and code exchange. The CLI
//! does the browser part (a callback listener on 127.0.0.1).

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{ClientAuth, TokenEndpoint, TokenResponse};
use crate::error::Result;
use crate::secret::ClientSecret;

/// A PKCE code verifier (43 characters of base64url from 32 random bytes).
#[derive(Clone)]
pub struct PkceVerifier(String);

impl std::fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

impl PkceVerifier {
    /// A new random verifier.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// `BASE64URL(SHA256(verifier))`.
    pub fn challenge(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The verifier, for the code exchange.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// The `/services/oauth2/authorize` URL to open in a browser.
pub fn authorize_url(
    endpoint: &TokenEndpoint,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    verifier: &PkceVerifier,
) -> String {
    let mut url = url::Url::parse(&endpoint.url("/services/oauth2/authorize"))
        .unwrap_or_else(|_| endpoint.login_url().clone());
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", state)
        .append_pair("code_challenge", &verifier.challenge())
        .append_pair("code_challenge_method", "S256");
    url.into()
}

/// Exchanges an authorization code (a public client sends no secret).
pub async fn exchange(
    endpoint: &TokenEndpoint,
    client_id: &str,
    client_secret: Option<&ClientSecret>,
    code: &str,
    redirect_uri: &str,
    verifier: &PkceVerifier,
) -> Result<TokenResponse> {
    endpoint
        .request_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier.expose_secret()),
            ],
            ClientAuth::Body {
                client_id,
                client_secret,
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        let v = PkceVerifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(v.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(PkceVerifier::generate().expose_secret().len(), 43);
    }
}
