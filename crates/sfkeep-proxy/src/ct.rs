//! Constant-time comparison of secrets (client keys, proxy-local session ids): a leaf module,
//! so the configuration (`ClientKey::matches`) and the request checks (`auth`) share it without
//! importing each other.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Constant-time equality: compares SHA-256 digests with `subtle`, so neither content nor
/// length leaks.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn equal_only_for_equal_bytes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
    }
}
