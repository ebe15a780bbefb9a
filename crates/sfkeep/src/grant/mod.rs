//! OAuth grants and the legacy SOAP login, one module each, over one token endpoint.
//!
//! Every grant ends in the same [`TokenResponse`], parsed tolerantly (`signature`, `issued_at`
//! and `scope` may be absent; `issued_at` may come in seconds) and checked (`signature` is
//! verified when present and the consumer secret is known). Failures are classified into a
//! [`Cause`](crate::diagnose::Cause) by [`crate::diagnose::token_error`].

pub mod authorization_code;
pub mod client_credentials;
pub mod device;
pub mod introspect;
pub mod jwt_bearer;
pub mod password;
pub mod refresh_token;
pub mod soap_login;

mod endpoint;
mod response;

pub use endpoint::{ClientAuth, TokenEndpoint};
pub use response::{TokenResponse, parse_token_response, verify_signature};

use std::fmt;

use crate::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};
use crate::token::GrantKind;

/// How to get a token without a person: the manager's primary or fallback grant.
#[derive(Clone)]
#[non_exhaustive]
pub enum Grant {
    /// Refresh with a stored refresh token (the store's newest one wins over this initial one).
    RefreshToken {
        /// Consumer key.
        client_id: String,
        /// Consumer secret (absent for public clients).
        client_secret: Option<ClientSecret>,
        /// The refresh token to start from when the store has none.
        refresh_token: RefreshToken,
    },
    /// Mint a token with a signed JWT: no shared mutable secret, the fleet's best choice.
    JwtBearer {
        /// Consumer key (`iss`).
        client_id: String,
        /// Username (`sub`).
        username: String,
        /// RS256 private key matching the app's certificate.
        private_key: PrivateKeyPem,
        /// `aud`; defaults to the login URL.
        audience: Option<String>,
    },
    /// The app's run-as user.
    ClientCredentials {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: ClientSecret,
    },
    /// Legacy username-password OAuth flow.
    Password {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: ClientSecret,
        /// Username.
        username: String,
        /// Password.
        password: Password,
        /// Security token (appended to the password), if the org requires it.
        security_token: Option<SecurityToken>,
    },
    /// Legacy SOAP partner `login()`.
    SoapLogin {
        /// Username.
        username: String,
        /// Password.
        password: Password,
        /// Security token, if required.
        security_token: Option<SecurityToken>,
        /// API version, e.g. `59.0`.
        api_version: String,
    },
}

impl Grant {
    /// Which grant this is.
    pub fn kind(&self) -> GrantKind {
        match self {
            Grant::RefreshToken { .. } => GrantKind::RefreshToken,
            Grant::JwtBearer { .. } => GrantKind::JwtBearer,
            Grant::ClientCredentials { .. } => GrantKind::ClientCredentials,
            Grant::Password { .. } => GrantKind::Password,
            Grant::SoapLogin { .. } => GrantKind::SoapLogin,
        }
    }

    /// The consumer key, for grants that have one.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Grant::RefreshToken { client_id, .. }
            | Grant::JwtBearer { client_id, .. }
            | Grant::ClientCredentials { client_id, .. }
            | Grant::Password { client_id, .. } => Some(client_id),
            Grant::SoapLogin { .. } => None,
        }
    }

    /// The subject (username), for grants that name one.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Grant::JwtBearer { username, .. }
            | Grant::Password { username, .. }
            | Grant::SoapLogin { username, .. } => Some(username),
            _ => None,
        }
    }

    /// The consumer secret, for grants that have one (used to verify `signature` and to
    /// introspect).
    pub fn client_secret(&self) -> Option<&ClientSecret> {
        match self {
            Grant::RefreshToken { client_secret, .. } => client_secret.as_ref(),
            Grant::ClientCredentials { client_secret, .. }
            | Grant::Password { client_secret, .. } => Some(client_secret),
            _ => None,
        }
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only non-secret identifiers: the derive would be safe too (secrets redact), but this
        // keeps the output short.
        f.debug_struct("Grant")
            .field("kind", &self.kind())
            .field("client_id", &self.client_id())
            .field("subject", &self.subject())
            .finish()
    }
}
