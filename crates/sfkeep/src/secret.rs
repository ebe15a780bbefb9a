//! Secrets that cannot be printed by accident.
//!
//! Every credential sfkeep handles (access tokens, refresh tokens, client secrets, passwords,
//! security tokens, private keys) is a newtype whose `Debug` and `Display` print `[redacted]`.
//! The value is reached only through `expose_secret()`, which the code calls where it writes an
//! HTTP header, a form field, or plaintext that is about to be encrypted. Values are zeroed when
//! the last clone is dropped.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The first 8 hex digits of the SHA-256 of a secret: safe to log, enough to correlate events.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Arc<Zeroizing<String>>);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Arc::new(Zeroizing::new(value.into())))
            }

            /// The secret value.
            ///
            /// # Security warning
            /// Call this only to put the value on the wire or into a ciphertext. Never log it,
            /// format it into an error, or write it to a file in plain text.
            pub fn expose_secret(&self) -> &str {
                self.0.as_str()
            }

            /// The first 8 hex digits of the value's SHA-256, for logs and events.
            pub fn fingerprint(&self) -> String {
                fingerprint(self.expose_secret())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret_type!(
    /// An OAuth access token or SOAP session id.
    AccessToken
);
secret_type!(
    /// An OAuth refresh token.
    RefreshToken
);
secret_type!(
    /// A connected app's consumer secret.
    ClientSecret
);
secret_type!(
    /// A user's password (without the security token).
    Password
);
secret_type!(
    /// A user's security token, appended to the password by the legacy grants.
    SecurityToken
);
secret_type!(
    /// A PEM-encoded private key (JWT bearer grant).
    PrivateKeyPem
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let t = AccessToken::new("00Dx!supersecret");
        assert_eq!(format!("{t:?}"), "AccessToken([redacted])");
        assert_eq!(format!("{t}"), "[redacted]");
        assert_eq!(t.expose_secret(), "00Dx!supersecret");
    }

    #[test]
    fn fingerprint_is_8_hex() {
        let f = RefreshToken::new("abc").fingerprint();
        assert_eq!(f, "ba7816bf");
    }
}
