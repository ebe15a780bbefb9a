//! OAuth grants and the legacy SOAP login, one module each, over one token endpoint.
//!
//! Every grant ends in the same [`TokenResponse`], parsed tolerantly (`signature`, `issued_at`
//! and `scope` may be absent; `issued_at` may come in seconds) and checked (`signature` is
//! verified when present and the consumer secret is known). Failures are classified into a
//! [`Cause`](crate::diagnose::Cause) by [`crate::diagnose::token_error`].
//!
//! A [`Grant`] is built with its constructors ([`Grant::refresh_token`], [`Grant::jwt_bearer`],
//! …) so that its fields can grow, and sends itself with [`Grant::request`].

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

use crate::error::Result;
use crate::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};

/// How to get a token without a person: the manager's primary or fallback grant.
#[derive(Clone)]
#[non_exhaustive]
pub enum Grant {
    /// Refresh with a stored refresh token (the store's newest one wins over this initial one).
    #[non_exhaustive]
    RefreshToken {
        /// Consumer key.
        client_id: String,
        /// Consumer secret (absent for public clients).
        client_secret: Option<ClientSecret>,
        /// The refresh token to start from when the store has none.
        refresh_token: RefreshToken,
    },
    /// Mint a token with a signed JWT: no shared mutable secret, the fleet's best choice.
    #[non_exhaustive]
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
    #[non_exhaustive]
    ClientCredentials {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: ClientSecret,
    },
    /// Legacy username-password OAuth flow.
    #[non_exhaustive]
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
    #[non_exhaustive]
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
    /// `grant_type=refresh_token` for the app `client_id` (with its consumer secret, unless it is
    /// a public client), starting from `refresh_token` when the store has none newer.
    pub fn refresh_token(
        client_id: impl Into<String>,
        client_secret: Option<ClientSecret>,
        refresh_token: RefreshToken,
    ) -> Grant {
        Grant::RefreshToken {
            client_id: client_id.into(),
            client_secret,
            refresh_token,
        }
    }

    /// The JWT bearer flow for `username` of the app `client_id`, signed with `private_key`.
    /// The audience defaults to the login URL; see [`Grant::with_audience`].
    pub fn jwt_bearer(
        client_id: impl Into<String>,
        username: impl Into<String>,
        private_key: PrivateKeyPem,
    ) -> Grant {
        Grant::JwtBearer {
            client_id: client_id.into(),
            username: username.into(),
            private_key,
            audience: None,
        }
    }

    /// The client-credentials flow of the app `client_id` (its run-as user).
    pub fn client_credentials(client_id: impl Into<String>, client_secret: ClientSecret) -> Grant {
        Grant::ClientCredentials {
            client_id: client_id.into(),
            client_secret,
        }
    }

    /// The legacy username-password flow. No security token by default; see
    /// [`Grant::with_security_token`].
    pub fn password(
        client_id: impl Into<String>,
        client_secret: ClientSecret,
        username: impl Into<String>,
        password: Password,
    ) -> Grant {
        Grant::Password {
            client_id: client_id.into(),
            client_secret,
            username: username.into(),
            password,
            security_token: None,
        }
    }

    /// The legacy SOAP partner `login()` at API version `api_version` (e.g. `59.0`). No
    /// security token by default; see [`Grant::with_security_token`].
    pub fn soap_login(
        username: impl Into<String>,
        password: Password,
        api_version: impl Into<String>,
    ) -> Grant {
        Grant::SoapLogin {
            username: username.into(),
            password,
            security_token: None,
            api_version: api_version.into(),
        }
    }

    /// The JWT `aud` claim (default: the login URL). Only the JWT bearer grant has one; any
    /// other grant is returned unchanged.
    pub fn with_audience(mut self, value: impl Into<String>) -> Grant {
        if let Grant::JwtBearer { audience, .. } = &mut self {
            *audience = Some(value.into());
        }
        self
    }

    /// The security token appended to the password (default: none). Only the password and
    /// SOAP login grants have one; any other grant is returned unchanged.
    pub fn with_security_token(mut self, token: Option<SecurityToken>) -> Grant {
        if let Grant::Password { security_token, .. } | Grant::SoapLogin { security_token, .. } =
            &mut self
        {
            *security_token = token;
        }
        self
    }

    /// Sends one token request for this grant to `endpoint`. A refresh-token grant presents
    /// `refresh_token` when given (the store's newest), else its own.
    pub async fn request(
        &self,
        endpoint: &TokenEndpoint,
        refresh_token: Option<&RefreshToken>,
    ) -> Result<TokenResponse> {
        match self {
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token: configured,
            } => {
                let rt = refresh_token.unwrap_or(configured);
                self::refresh_token::request(endpoint, client_id, client_secret.as_ref(), rt).await
            }
            Grant::JwtBearer {
                client_id,
                username,
                private_key,
                audience,
            } => {
                jwt_bearer::request(
                    endpoint,
                    client_id,
                    username,
                    private_key,
                    audience.as_deref(),
                )
                .await
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => client_credentials::request(endpoint, client_id, client_secret).await,
            Grant::Password {
                client_id,
                client_secret,
                username,
                password,
                security_token,
            } => {
                self::password::request(
                    endpoint,
                    client_id,
                    client_secret,
                    username,
                    password,
                    security_token.as_ref(),
                )
                .await
            }
            Grant::SoapLogin {
                username,
                password,
                security_token,
                api_version,
            } => {
                soap_login::request(
                    endpoint,
                    username,
                    password,
                    security_token.as_ref(),
                    api_version,
                )
                .await
            }
        }
    }

    /// The refresh token a refresh-token grant starts from (the configured one).
    pub fn configured_refresh_token(&self) -> Option<&RefreshToken> {
        match self {
            Grant::RefreshToken { refresh_token, .. } => Some(refresh_token),
            _ => None,
        }
    }

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

/// Which grant produced a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantKind {
    /// `grant_type=refresh_token`.
    RefreshToken,
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
    JwtBearer,
    /// `grant_type=client_credentials`.
    ClientCredentials,
    /// `grant_type=password` (legacy).
    Password,
    /// SOAP partner `login()` (legacy).
    SoapLogin,
    /// `grant_type=authorization_code` (web login).
    AuthorizationCode,
    /// Device flow.
    Device,
}

impl GrantKind {
    /// The snake_case name used in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::RefreshToken => "refresh_token",
            GrantKind::JwtBearer => "jwt_bearer",
            GrantKind::ClientCredentials => "client_credentials",
            GrantKind::Password => "password",
            GrantKind::SoapLogin => "soap_login",
            GrantKind::AuthorizationCode => "authorization_code",
            GrantKind::Device => "device",
        }
    }
}
