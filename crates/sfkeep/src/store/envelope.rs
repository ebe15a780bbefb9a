//! The encrypted envelope shared by the file and Redis stores.
//!
//! `magic "SFKE" | version 1 | key id (8) | nonce (24) | XChaCha20-Poly1305 ciphertext`, with
//! the header as associated data. The key id (first 8 bytes of SHA-256 of the key) tells a
//! wrong key apart from corruption, so the error can say which it is.

use std::fmt;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::clock::UnixMillis;
use crate::error::{Error, Result};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{ExpirySource, GrantKind, RefreshIntent, TokenRecord};

const MAGIC: &[u8; 4] = b"SFKE";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 8;
const NONCE_LEN: usize = 24;

/// A 32-byte cache encryption key.
#[derive(Clone)]
pub struct CacheKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey(id={})", hex(&self.id()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl CacheKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// A key from standard base64 of 32 bytes (the form of `SFKEEP_CACHE_KEY` and key files).
    pub fn from_base64(text: &str) -> Result<Self> {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| Error::Config("the cache key is not valid base64".into()))?,
        );
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
            Error::Config(format!(
                "the cache key must be 32 bytes, it is {}",
                raw.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key from `SFKEEP_CACHE_KEY` if set, else from `key_file`. A key file readable by
    /// group or others is refused on unix.
    pub fn load(key_file: Option<&Path>) -> Result<Self> {
        if let Ok(v) = std::env::var("SFKEEP_CACHE_KEY") {
            return Self::from_base64(&v)
                .map_err(|e| Error::Config(format!("SFKEEP_CACHE_KEY: {e}")));
        }
        let path = key_file.ok_or_else(|| {
            Error::Config(
                "no cache key: set SFKEEP_CACHE_KEY (base64 of 32 bytes) or configure a key file"
                    .into(),
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| {
                Error::Config(format!(
                    "cannot read the cache key file {}: {e}",
                    path.display()
                ))
            })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::Config(format!(
                    "the cache key file {} has mode {mode:o}; it must be 0600 (chmod 600 it)",
                    path.display()
                )));
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the cache key file {}: {e}",
                path.display()
            ))
        })?);
        Self::from_base64(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The key id: first 8 bytes of SHA-256 of the key.
    pub fn id(&self) -> [u8; 8] {
        let d = Sha256::digest(self.0.as_slice());
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        id
    }

    /// Encrypts `plaintext` into an envelope.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.extend_from_slice(&self.id());
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let cipher = XChaCha20Poly1305::new(self.0.as_slice().into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = header;
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts an envelope; the error says whether the key, the format or the data is wrong.
    pub fn open(&self, blob: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        if blob.len() < HEADER_LEN + NONCE_LEN + 16 || &blob[..4] != MAGIC {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        if blob[4] != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(blob[4]));
        }
        if blob[5..HEADER_LEN] != self.id() {
            return Err(EnvelopeError::WrongKey);
        }
        let cipher = XChaCha20Poly1305::new(self.0.as_slice().into());
        cipher
            .decrypt(
                XNonce::from_slice(&blob[HEADER_LEN..HEADER_LEN + NONCE_LEN]),
                Payload {
                    msg: &blob[HEADER_LEN + NONCE_LEN..],
                    aad: &blob[..HEADER_LEN],
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| EnvelopeError::Corrupt)
    }
}

/// Why an envelope could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not written by sfkeep (or truncated).
    #[error("not an sfkeep envelope (or truncated)")]
    NotAnEnvelope,
    /// Written by another version of the format.
    #[error("envelope format version {0} is not supported by this sfkeep")]
    UnsupportedVersion(u8),
    /// Encrypted with another key.
    #[error("encrypted with a different cache key")]
    WrongKey,
    /// The authentication tag does not verify: the data was altered.
    #[error("the data is corrupt (authentication failed)")]
    Corrupt,
}

/// The serialized form of a record, inside an envelope only.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredRecord {
    access_token: String,
    refresh_token: Option<String>,
    instance_url: String,
    id_url: Option<String>,
    scope: Option<String>,
    issued_at: UnixMillis,
    expires_at: UnixMillis,
    refresh_at: UnixMillis,
    expiry_source: ExpirySource,
    generation: u64,
    grant: GrantKind,
    /// Absent in records written before it existed.
    #[serde(default)]
    refused_refresh_token: Option<String>,
    /// Absent in records written before it existed.
    #[serde(default)]
    server_offset_ms: i64,
    /// Absent in records written before it existed, and when no refresh is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<StoredIntent>,
}

/// The serialized form of a [`RefreshIntent`].
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct StoredIntent {
    refresh_token: String,
    owner: String,
    since: UnixMillis,
    /// Absent in intents written before it existed.
    #[serde(default)]
    settled: bool,
}

impl From<&TokenRecord> for StoredRecord {
    fn from(r: &TokenRecord) -> Self {
        Self {
            access_token: r.access_token.expose_secret().to_owned(),
            refresh_token: r
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            instance_url: r.instance_url.clone(),
            id_url: r.id_url.clone(),
            scope: r.scope.clone(),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            refresh_at: r.refresh_at,
            expiry_source: r.expiry_source,
            generation: r.generation,
            grant: r.grant,
            refused_refresh_token: r.refused_refresh_token.clone(),
            server_offset_ms: r.server_offset_ms,
            intent: r.intent.as_ref().map(|i| StoredIntent {
                refresh_token: i.refresh_token.clone(),
                owner: i.owner.clone(),
                since: i.since,
                settled: i.settled,
            }),
        }
    }
}

impl From<StoredRecord> for TokenRecord {
    fn from(s: StoredRecord) -> Self {
        Self {
            access_token: AccessToken::new(s.access_token),
            refresh_token: s.refresh_token.map(RefreshToken::new),
            instance_url: s.instance_url,
            id_url: s.id_url,
            scope: s.scope,
            issued_at: s.issued_at,
            expires_at: s.expires_at,
            refresh_at: s.refresh_at,
            expiry_source: s.expiry_source,
            generation: s.generation,
            grant: s.grant,
            refused_refresh_token: s.refused_refresh_token,
            server_offset_ms: s.server_offset_ms,
            intent: s.intent.map(|i| {
                Box::new(RefreshIntent {
                    refresh_token: i.refresh_token,
                    owner: i.owner,
                    since: i.since,
                    settled: i.settled,
                })
            }),
        }
    }
}

/// Encrypts one record (the Redis value form).
pub fn encode_record(key: &CacheKey, record: &TokenRecord) -> Vec<u8> {
    let json = Zeroizing::new(
        serde_json::to_vec(&StoredRecord::from(record)).expect("a record always serializes"),
    );
    key.seal(&json)
}

/// Decrypts one record; a wrong key, an old format or corruption is an error (treat as a miss).
pub fn decode_record(key: &CacheKey, blob: &[u8]) -> std::result::Result<TokenRecord, String> {
    let plain = key.open(blob).map_err(|e| e.to_string())?;
    let s: StoredRecord =
        serde_json::from_slice(&plain).map_err(|e| format!("undecodable record: {e}"))?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_failures() {
        let k = CacheKey::generate();
        let blob = k.seal(b"hello");
        assert_eq!(k.open(&blob).unwrap().as_slice(), b"hello");
        assert_eq!(
            CacheKey::generate().open(&blob).unwrap_err(),
            EnvelopeError::WrongKey
        );
        let mut bad = blob.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert_eq!(k.open(&bad).unwrap_err(), EnvelopeError::Corrupt);
        assert_eq!(k.open(b"{}").unwrap_err(), EnvelopeError::NotAnEnvelope);
        let mut v2 = blob;
        v2[4] = 2;
        assert_eq!(
            k.open(&v2).unwrap_err(),
            EnvelopeError::UnsupportedVersion(2)
        );
        assert!(!format!("{k:?}").contains(&format!("{:?}", k.0.as_slice())));
    }

    /// Intent records of an older format or a wrong shape (docs/rotation-safety.md): an intent
    /// written before `settled` existed is an unfinished one (the safe reading); a malformed
    /// intent makes the whole record unreadable (a miss that, under rotation, is not taken for
    /// an empty store), never a record without its intent.
    #[test]
    fn intents_of_an_older_format_or_a_wrong_shape() {
        let k = CacheKey::generate();
        let mut rec = TokenRecord::tombstone(3, GrantKind::RefreshToken, UnixMillis(5));
        rec.intent = Some(Box::new(RefreshIntent {
            refresh_token: "0a1b2c3d".into(),
            owner: "m-1".into(),
            since: UnixMillis(4),
            settled: true,
        }));
        let mut json = serde_json::to_value(StoredRecord::from(&rec)).unwrap();
        let seal = |v: &serde_json::Value| k.seal(&serde_json::to_vec(v).unwrap());

        json["intent"].as_object_mut().unwrap().remove("settled");
        let older = decode_record(&k, &seal(&json)).unwrap();
        let intent = older.intent.expect("the intent is kept");
        assert!(!intent.settled, "an older intent is read as unfinished");
        assert_eq!(
            (intent.owner.as_str(), intent.since),
            ("m-1", UnixMillis(4))
        );

        json["intent"] = serde_json::json!(42);
        let e = decode_record(&k, &seal(&json)).unwrap_err();
        assert!(e.contains("undecodable record"), "{e}");
    }
}
