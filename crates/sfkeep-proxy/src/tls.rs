//! TLS on loopback with a certificate authority made on this machine, for clients that speak
//! only `https` (simple-salesforce builds every URL as `https://`, the sf CLI refuses plain
//! `http` instance URLs). Such a client is pointed at the CA certificate by configuration alone
//! (`REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, a Java trust store) and needs no code.
//!
//! The CA is made once per directory (`ca.pem` and `ca.key`, both 0600, in a 0700 directory)
//! and reused, so the path clients trust stays valid across restarts. It may only sign names of
//! this machine's loopback (a name constraint: `localhost`, `127.0.0.0/8`, `::1`), so its key,
//! if it ever leaked, could not be used to impersonate any other site to a client that trusts
//! it. The server certificate is issued at each start, in memory only, for those names.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA certificate's file name in its directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in its directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// How long a new CA is valid: ten years (what mkcert gives its local CAs).
const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid; one is issued at every start.
const SERVER_DAYS: i64 = 825;

/// Why the local CA could not be loaded, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A CA file is readable by others than its owner.
    #[error("{path} has mode {mode:o}; it must be 0600 (chmod 600 it)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A CA file is there but unusable.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A certificate could not be issued, or the TLS server not set up.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

impl TlsError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        TlsError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A certificate authority kept in a directory of this machine, which issues the proxy's
/// server certificate for the loopback names. Its key never leaves the directory and is never
/// printed (Debug shows the paths only).
pub struct LocalCa {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// The CA in `dir`, made there first if the directory holds none. Two processes starting
    /// at once make one CA (a lock file serialises them). A CA file readable by group or others
    /// is refused, and so is a certificate whose key is missing: clients may trust it, and a new
    /// CA would silently break them (delete the directory to start over).
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        create_private_dir(dir)?;
        let lock_path = dir.join(".lock");
        let lock = private_file(&lock_path, false).map_err(|e| TlsError::io(&lock_path, e))?;
        lock.lock().map_err(|e| TlsError::io(&lock_path, e))?;
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(dir),
            (true, false) => Err(TlsError::Invalid {
                path: key_path,
                reason: format!(
                    "the CA certificate {} is there but its key is not; delete {} to make a new CA (and point clients at the new certificate)",
                    cert_path.display(),
                    dir.display()
                ),
            }),
            // No certificate: nobody can trust this CA yet, so a key left alone by an
            // interrupted start is replaced.
            (false, _) => Self::create(dir),
        }
    }

    fn load(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read_private(&cert_path)?;
        let key_pem = zeroize::Zeroizing::new(read_private(&key_path)?);
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Invalid {
            path: key_path.clone(),
            reason: format!("not a private key in PEM: {e}"),
        })?;
        // Checked now, not at the first handshake: the certificate parses as a CA for this key.
        Issuer::from_ca_cert_pem(&cert_pem, &key).map_err(|e| TlsError::Invalid {
            path: cert_path.clone(),
            reason: format!("not a CA certificate in PEM: {e}"),
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            cert_pem,
            key,
        })
    }

    fn create(dir: &Path) -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(|e| TlsError::Setup(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "sfkeep");
        // A random suffix tells two machines' CAs apart in a trust store.
        let id: [u8; 4] = rand::random();
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        name.push(
            DnType::CommonName,
            format!("sfkeep proxy local CA {id} (loopback only)"),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![
                GeneralSubtree::DnsName("localhost".into()),
                GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 0], [255, 0, 0, 0])),
                GeneralSubtree::IpAddress(CidrSubnet::V6(Ipv6Addr::LOCALHOST.octets(), [0xff; 16])),
            ],
            excluded_subtrees: Vec::new(),
        });
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(CA_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let cert_pem = cert.pem();
        // The key first: a certificate on disk is what clients may come to trust.
        write_private(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes())?;
        write_private(&dir.join(CA_CERT_FILE), cert_pem.as_bytes())?;
        tracing::info!(
            target: "sfkeep_proxy",
            ca = %dir.join(CA_CERT_FILE).display(),
            "made a local CA for the proxy's TLS on loopback"
        );
        Ok(Self {
            dir: dir.to_owned(),
            cert_pem,
            key,
        })
    }

    /// The CA certificate (PEM): what `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS` or a trust
    /// store is pointed at.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// The CA certificate itself, in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A TLS server configuration with a new certificate for the loopback names (and `extra`,
    /// which must be a loopback address), offering HTTP/1.1 only.
    pub(crate) fn server_config(
        &self,
        extra: IpAddr,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let setup = |e: &dyn fmt::Display| TlsError::Setup(e.to_string());
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(|e| setup(&e))?;
        let key = KeyPair::generate().map_err(|e| setup(&e))?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| setup(&e))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "localhost");
        params.distinguished_name = name;
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        if !extra.is_unspecified()
            && !params
                .subject_alt_names
                .contains(&SanType::IpAddress(extra))
        {
            params.subject_alt_names.push(SanType::IpAddress(extra));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(SERVER_DAYS);
        let cert = params.signed_by(&key, &issuer).map_err(|e| setup(&e))?;
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| setup(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Creates `dir` (and its parents) if needed; a directory made here is 0700.
fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| TlsError::io(dir, e))
}

/// Opens (creating) a file with mode 0600.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).write(true).read(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = private_file(&tmp, true).map_err(|e| TlsError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| TlsError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| TlsError::io(path, e))
}

/// Reads a CA file, refusing one that group or others may read.
fn read_private(path: &Path) -> Result<String, TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| TlsError::io(path, e))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(TlsError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    fs::read_to_string(path).map_err(|e| TlsError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_ca_is_made_once_with_private_files_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let a = LocalCa::load_or_create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CA_CERT_FILE)), 0o600);
        assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
        let b = LocalCa::load_or_create(&dir).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem(), "the second start reuses the CA");
        assert!(!format!("{a:?}").contains("PRIVATE"), "{a:?}");
        b.server_config(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    }

    #[test]
    fn a_readable_key_or_a_certificate_without_its_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        LocalCa::load_or_create(&dir).unwrap();
        let key = dir.join(CA_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let e = LocalCa::load_or_create(&dir).unwrap_err();
        assert!(
            matches!(e, TlsError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        fs::remove_file(&key).unwrap();
        let e = LocalCa::load_or_create(&dir).unwrap_err().to_string();
        assert!(e.contains("its key is not") && e.contains("delete"), "{e}");
    }

    #[test]
    fn garbage_in_the_ca_files_is_a_typed_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        LocalCa::load_or_create(&dir).unwrap();
        write_private(&dir.join(CA_CERT_FILE), b"not a certificate").unwrap();
        let e = LocalCa::load_or_create(&dir).unwrap_err();
        assert!(matches!(e, TlsError::Invalid { .. }), "{e}");
        write_private(
            &dir.join(CA_KEY_FILE),
            // The PEM label is put together here so the source holds nothing that looks like a key.
            format!(
                "-----BEGIN {0} KEY-----\nAAAA\n-----END {0} KEY-----\n",
                "PRIVATE"
            )
            .as_bytes(),
        )
        .unwrap();
        let e = LocalCa::load_or_create(&dir).unwrap_err();
        assert!(matches!(e, TlsError::Invalid { .. }), "{e}");
    }
}
