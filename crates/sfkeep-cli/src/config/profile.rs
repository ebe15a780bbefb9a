//! A validated profile and what it is made of: grants by name, secret references, the store.
//! Built only by `config::validate` from the file's schema; read by every command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sfkeep::token::GrantKind;
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// Where a secret comes from. Never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file (whole content, trailing whitespace trimmed).
    File(PathBuf),
}

/// A grant a profile can name as `grant` or `fallback_grant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantName {
    /// `refresh_token`.
    RefreshToken,
    /// `jwt_bearer`.
    JwtBearer,
    /// `client_credentials`.
    ClientCredentials,
    /// `password` (legacy).
    Password,
    /// `soap_login` (legacy, retired from API v65).
    SoapLogin,
}

impl GrantName {
    /// Every grant, in the order the docs list them.
    pub const ALL: [GrantName; 5] = [
        Self::RefreshToken,
        Self::JwtBearer,
        Self::ClientCredentials,
        Self::Password,
        Self::SoapLogin,
    ];

    /// The grant spelled `s` in a config file.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The library's grant kind.
    pub fn kind(self) -> GrantKind {
        match self {
            Self::RefreshToken => GrantKind::RefreshToken,
            Self::JwtBearer => GrantKind::JwtBearer,
            Self::ClientCredentials => GrantKind::ClientCredentials,
            Self::Password => GrantKind::Password,
            Self::SoapLogin => GrantKind::SoapLogin,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }
}

/// Where a profile's tokens are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process only: every run starts empty.
    Memory,
    /// An encrypted file shared by the processes of this machine.
    File {
        /// The data file.
        path: PathBuf,
        /// The cache key file (unless `SFKEEP_CACHE_KEY` is set).
        key_file: Option<PathBuf>,
    },
    /// Redis, shared by a fleet of processes on many machines (values encrypted with the
    /// cache key; `redis://` or `rediss://` for TLS).
    Redis {
        /// `redis://[user:password@]host:port[/db]` or `rediss://…`.
        url: String,
        /// The cache key file (unless `SFKEEP_CACHE_KEY` is set).
        key_file: Option<PathBuf>,
    },
}

/// One profile of a config file.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Its name (`[profiles.NAME]`).
    pub name: String,
    /// The file it came from, for messages.
    pub config_path: PathBuf,
    /// Login host.
    pub login_url: String,
    /// Instance URL, when known in advance.
    pub instance_url: Option<String>,
    /// API version, e.g. `59.0`.
    pub api_version: String,
    /// Consumer key.
    pub client_id: Option<String>,
    /// Consumer secret.
    pub client_secret: Option<SecretRef>,
    /// Integration user.
    pub username: Option<String>,
    /// Initial refresh token.
    pub refresh_token: Option<SecretRef>,
    /// JWT signing key (PEM).
    pub jwt_key: Option<SecretRef>,
    /// Password (legacy grants).
    pub password: Option<SecretRef>,
    /// Security token (legacy grants).
    pub security_token: Option<SecretRef>,
    /// Primary grant.
    pub grant: GrantName,
    /// Fallback grant.
    pub fallback_grant: Option<GrantName>,
    /// Session timeout assumed when the org does not tell.
    pub session_timeout: Option<Duration>,
    /// Token store.
    pub store: StoreConfig,
    /// A running `sfkeep proxy` for this profile (e.g. `http://127.0.0.1:8787`), told to
    /// reload by `sfkeep recover`.
    pub proxy_url: Option<String>,
    /// The keys `sfkeep serve` reads about this profile's policies (keep-alive, forecasts), as
    /// written: `serve::settings::ProfileGuardian` parses them.
    pub guardian: toml::Table,
    /// How long the audit log keeps this profile's events (`audit_retention_days`; default
    /// 90 days).
    pub audit_retention: Option<Duration>,
}

impl Profile {
    /// `profiles.NAME.KEY`, for messages.
    pub fn key_path(&self, key: &str) -> String {
        format!("profiles.{}.{key}", self.name)
    }

    /// "profile `NAME` in FILE", for messages.
    pub fn describe(&self) -> String {
        format!("profile `{}` in {}", self.name, self.config_path.display())
    }

    /// A required plain value, or a usage error that says which key to add.
    pub fn require<'a>(
        &self,
        value: &'a Option<String>,
        key: &str,
        why: &str,
    ) -> CliResult<&'a str> {
        value.as_deref().ok_or_else(|| {
            CliError::usage(format!(
                "{} has no `{key}`, which {why} needs. Add `{key} = \"…\"` to [profiles.{}].",
                self.describe(),
                self.name
            ))
        })
    }

    /// Resolves a required secret reference, or a usage error that says how to add it.
    pub fn require_secret(
        &self,
        value: &Option<SecretRef>,
        key: &str,
        why: &str,
    ) -> CliResult<Zeroizing<String>> {
        match value {
            Some(r) => r.resolve(&self.key_path(key), &self.config_path),
            None => Err(CliError::usage(format!(
                "{} has no `{key}`, which {why} needs. Add `{key} = {{ env = \"NAME\" }}` or `{key} = {{ file = \"PATH\" }}` to [profiles.{}].",
                self.describe(),
                self.name
            ))),
        }
    }

    /// Resolves an optional secret reference.
    pub fn optional_secret(
        &self,
        value: &Option<SecretRef>,
        key: &str,
    ) -> CliResult<Option<Zeroizing<String>>> {
        value
            .as_ref()
            .map(|r| r.resolve(&self.key_path(key), &self.config_path))
            .transpose()
    }
}

impl SecretRef {
    /// Where the secret comes from, for messages: `$NAME` or the file's path. Never the value.
    pub fn source(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("${name}"),
            SecretRef::File(path) => path.display().to_string(),
        }
    }

    /// The secret's value. `key` (e.g. `profiles.prod.client_secret`) and `config_path` are
    /// for messages, which name the variable or file and never the value.
    pub fn resolve(&self, key: &str, config_path: &Path) -> CliResult<Zeroizing<String>> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(Zeroizing::new(v.trim().to_owned())),
                Ok(_) => Err(CliError::usage(format!(
                    "the environment variable {name} (referenced by `{key}` in {}) is empty. Set it to the secret, or point `{key}` at a file with {{ file = \"PATH\" }}.",
                    config_path.display()
                ))),
                Err(_) => Err(CliError::usage(format!(
                    "the environment variable {name} (referenced by `{key}` in {}) is not set. Export it before running sfkeep, or point `{key}` at a file with {{ file = \"PATH\" }}.",
                    config_path.display()
                ))),
            },
            SecretRef::File(path) => {
                let what = format!(
                    "the secret file {} (referenced by `{key}` in {})",
                    path.display(),
                    config_path.display()
                );
                read_secret_file(path, key, &what)
            }
        }
    }
}

/// Reads a secret file: trimmed, never empty. A file other users can read gets the same
/// warning whatever it holds (a JWT key, a refresh token, the cache key): one rule for every
/// secret file sfkeep reads. `what` names the file and where it was configured, for messages.
pub fn read_secret_file(path: &Path, key: &str, what: &str) -> CliResult<Zeroizing<String>> {
    warn_if_shared(path, key);
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read {what}: {}. Create it with the secret (mode 0600), or fix the path.",
            io_reason(&e)
        ))
    })?;
    let text = Zeroizing::new(text);
    let value = text.trim();
    if value.is_empty() {
        return Err(CliError::usage(format!(
            "{what} is empty. Put the secret in it."
        )));
    }
    Ok(Zeroizing::new(value.to_owned()))
}

/// An I/O error's reason without the OS error number noise.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        _ => e.to_string(),
    }
}

/// Warns on stderr when a secret file is readable or writable by group or others.
fn warn_if_shared(path: &Path, key: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                crate::output::warn(&format!(
                    "the secret file {} (`{key}`) has mode {mode:o}, so other users may read it. Run `chmod 600 {}`.",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, key);
}
