//! The JWT certificate's NotAfter, read with `x509-parser` from the PEM or DER file the profile's
//! `jwt_cert` names (the certificate uploaded to the connected app). A certificate is public:
//! nothing here is secret, but a private key put there by mistake is refused by name, unread.

use std::path::Path;

use sfkeep::clock::UnixMillis;

/// The most bytes read from a certificate file.
const MAX_CERT_FILE: u64 = 1024 * 1024;

/// The certificate's NotAfter, or a sentence saying what is wrong with the file.
pub fn not_after(path: &Path) -> Result<UnixMillis, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read jwt_cert {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CERT_FILE)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read jwt_cert {}: {e}", path.display()))?;
    parse(&bytes).map_err(|why| format!("jwt_cert {} {why}", path.display()))
}

/// NotAfter of the first certificate in `bytes` (PEM or DER).
pub fn parse(bytes: &[u8]) -> Result<UnixMillis, String> {
    let text = std::str::from_utf8(bytes).ok();
    if text.is_some_and(|t| t.contains("PRIVATE KEY-----")) {
        return Err("holds a private key, not a certificate: point jwt_cert at the certificate (.crt) uploaded to the connected app, and keep the key in jwt_key".to_owned());
    }
    let der = if text.is_some_and(|t| t.contains("-----BEGIN")) {
        let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
            .map_err(|e| format!("is not a PEM certificate ({e})"))?;
        if pem.label != "CERTIFICATE" {
            return Err(format!(
                "holds a PEM `{}` block, not a CERTIFICATE",
                pem.label
            ));
        }
        pem.contents
    } else {
        bytes.to_vec()
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("is not an X.509 certificate ({e})"))?;
    let t = cert.validity().not_after.timestamp();
    Ok(UnixMillis(t.saturating_mul(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PEM block labelled `{kind} KEY` with a meaningless body, put together at run time so
    /// the source holds nothing that looks like a key.
    fn fake_pem(kind: &str) -> String {
        format!("-----BEGIN {kind} KEY-----\nAAAA\n-----END {kind} KEY-----\n")
    }

    #[test]
    fn garbage_and_keys_are_named() {
        assert!(
            parse(b"hello")
                .unwrap_err()
                .contains("not an X.509 certificate")
        );
        assert!(
            parse(fake_pem("PRIVATE").as_bytes())
                .unwrap_err()
                .contains("private key")
        );
        assert!(
            parse(fake_pem("PUBLIC").as_bytes())
                .unwrap_err()
                .contains("PUBLIC KEY")
        );
        assert!(
            not_after(Path::new("/nonexistent/jwt.crt"))
                .unwrap_err()
                .contains("/nonexistent/jwt.crt")
        );
    }
}
