//! Config files and profiles.
//!
//! ```toml
//! [profiles.prod]
//! login_url = "https://login.salesforce.com"
//! client_id = "3MVG9..."
//! client_secret = { env = "SF_CLIENT_SECRET" }
//! username = "integration@example.com"
//! jwt_key = { file = "~/.config/sfkeep/prod.key" }
//! grant = "jwt_bearer"
//! [profiles.prod.store]
//! kind = "file"
//! path = "~/.local/state/sfkeep/prod.tokens"
//! key_file = "~/.config/sfkeep/cache.key"
//! ```
//!
//! `proxy_url = "http://127.0.0.1:8787"` names a running `sfkeep proxy` that `sfkeep recover`
//! tells to reload.
//!
//! - Secrets are references only: `{ env = "NAME" }` or `{ file = "PATH" }`. A literal string
//!   for a secret key is an error. A secret file readable by group or others gets a warning.
//! - Unknown keys are errors naming the file, the key, its line and the nearest known key.
//! - Relative paths are relative to the config file's directory; `~/` is the home directory.
//! - Lookup: `--config PATH`, else `./sfkeep.toml`, else `$XDG_CONFIG_HOME/sfkeep/sfkeep.toml`
//!   (or `~/.config/sfkeep/sfkeep.toml`).
//!
//! Nothing here ever formats a secret's value into a message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sfkeep::secret::{ClientSecret, RefreshToken};
use sfkeep::token::GrantKind;
use toml::Value;
use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// The profile used when neither `--profile` nor `SFKEEP_PROFILE` names one.
pub const DEFAULT_PROFILE: &str = "default";
/// The API version used when a profile does not set one.
pub const DEFAULT_API_VERSION: &str = "59.0";
/// API versions up to this one are retired (Summer '25 retired 21.0 to 30.0).
const LAST_RETIRED_API_VERSION: u32 = 30;
/// The login host used when a profile does not set one.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// The config file name looked up in the working directory and the user config dir.
pub const CONFIG_FILE_NAME: &str = "sfkeep.toml";

const TOP_KEYS: &[&str] = &["profiles"];
const PROFILE_KEYS: &[&str] = &[
    "login_url",
    "instance_url",
    "api_version",
    "client_id",
    "client_secret",
    "username",
    "refresh_token",
    "jwt_key",
    "password",
    "security_token",
    "grant",
    "fallback_grant",
    "session_timeout_secs",
    "store",
    "proxy_url",
];
const SECRET_KEYS: &[&str] = &[
    "client_secret",
    "refresh_token",
    "jwt_key",
    "password",
    "security_token",
];
const STORE_KEYS: &[&str] = &["kind", "path", "key_file", "url"];
const SECRET_REF_KEYS: &[&str] = &["env", "file"];
const GRANT_NAMES: &[&str] = &[
    "refresh_token",
    "jwt_bearer",
    "client_credentials",
    "password",
    "soap_login",
];

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
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "refresh_token" => Self::RefreshToken,
            "jwt_bearer" => Self::JwtBearer,
            "client_credentials" => Self::ClientCredentials,
            "password" => Self::Password,
            "soap_login" => Self::SoapLogin,
            _ => return None,
        })
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
                warn_if_shared(path, key);
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::usage(format!(
                        "cannot read the secret file {} (referenced by `{key}` in {}): {}. Create it with the secret (mode 0600), or fix the path.",
                        path.display(),
                        config_path.display(),
                        io_reason(&e)
                    ))
                })?;
                let text = Zeroizing::new(text);
                let value = text.trim();
                if value.is_empty() {
                    return Err(CliError::usage(format!(
                        "the secret file {} (referenced by `{key}` in {}) is empty. Put the secret in it.",
                        path.display(),
                        config_path.display()
                    )));
                }
                Ok(Zeroizing::new(value.to_owned()))
            }
        }
    }
}

/// An I/O error's reason without the OS error number noise.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
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
                eprintln!(
                    "sfkeep: warning: the secret file {} (`{key}`) has mode {mode:o}, so other users may read it. Run `chmod 600 {}`.",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, key);
}

/// A parsed config file.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> CliResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!(
                "cannot read the config file {}: {}. Pass --config PATH to use another file.",
                path.display(),
                io_reason(&e)
            ))
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, read from `path` (used for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> CliResult<Self> {
        let p = Parser { text, path };
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            // Never show the offending line: it may hold a literal secret.
            let at = e
                .span()
                .map(|s| {
                    let (line, col) = line_col(text, s.start);
                    format!(" at line {line}, column {col}")
                })
                .unwrap_or_default();
            CliError::usage(format!(
                "{} is not valid TOML{at}: {}. Fix the syntax (see the profile example in the README).",
                path.display(),
                e.message().trim_end_matches('\n')
            ))
        })?;
        p.check_keys(&table, TOP_KEYS, "the top level", "")?;
        let mut profiles = BTreeMap::new();
        if let Some(v) = table.get("profiles") {
            let t = p.table(v, "profiles")?;
            for (name, v) in t {
                let prefix = format!("profiles.{name}");
                let pt = p.table(v, &prefix)?;
                profiles.insert(name.clone(), p.profile(name, pt)?);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            profiles,
        })
    }

    /// The profile `name`, or an error listing the ones that exist.
    pub fn profile(&self, name: &str) -> CliResult<&Profile> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<String> = self.profiles.keys().map(|k| format!("`{k}`")).collect();
            let hint = if known.is_empty() {
                format!("It defines no profiles; add a [profiles.{name}] table.")
            } else {
                let near = suggest(name, self.profiles.keys().map(String::as_str))
                    .map(|s| format!(" Did you mean `{s}`?"))
                    .unwrap_or_default();
                format!(
                    "It defines {}.{near} Pick one with --profile NAME or SFKEEP_PROFILE.",
                    known.join(", ")
                )
            };
            CliError::usage(format!(
                "there is no profile `{name}` in {}. {hint}",
                self.path.display()
            ))
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Parser<'_> {
    fn err(&self, key: &str, what: impl std::fmt::Display) -> CliError {
        CliError::usage(format!("{}: `{key}` {what}", self.path.display()))
    }

    fn table<'v>(&self, v: &'v Value, key: &str) -> CliResult<&'v toml::Table> {
        v.as_table().ok_or_else(|| {
            self.err(
                key,
                format!(
                    "must be a table, found {}. Write it as [{key}].",
                    v.type_str()
                ),
            )
        })
    }

    fn check_keys(
        &self,
        t: &toml::Table,
        known: &[&str],
        place: &str,
        prefix: &str,
    ) -> CliResult<()> {
        for k in t.keys() {
            if known.contains(&k.as_str()) {
                continue;
            }
            let full = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let line = find_key_line(self.text, k)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let near = suggest(k, known.iter().copied())
                .map(|s| format!(" Did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(CliError::usage(format!(
                "{}: unknown key `{full}` in {place}{line}.{near} Known keys there: {}.",
                self.path.display(),
                known.join(", ")
            )));
        }
        Ok(())
    }

    fn string(&self, t: &toml::Table, prefix: &str, key: &str) -> CliResult<Option<String>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(
                &format!("{prefix}.{key}"),
                format!("must be a string, found {}.", v.type_str()),
            )),
        }
    }

    fn path_value(&self, t: &toml::Table, prefix: &str, key: &str) -> CliResult<Option<PathBuf>> {
        Ok(self
            .string(t, prefix, key)?
            .map(|s| resolve_path(&s, self.path)))
    }

    fn secret(&self, t: &toml::Table, prefix: &str, key: &str) -> CliResult<Option<SecretRef>> {
        let full = format!("{prefix}.{key}");
        let Some(v) = t.get(key) else {
            return Ok(None);
        };
        let rt = match v {
            Value::Table(rt) => rt,
            Value::String(_) => {
                // Never echo the value: it is probably the secret itself.
                return Err(self.err(
                    &full,
                    format!(
                        "is a literal value; secrets in config must be references. Write `{key} = {{ env = \"NAME\" }}` or `{key} = {{ file = \"PATH\" }}` and move the secret out of the file (rotate it if this file was shared or committed)."
                    ),
                ));
            }
            v => {
                return Err(self.err(
                    &full,
                    format!(
                        "must be a reference like {{ env = \"NAME\" }} or {{ file = \"PATH\" }}, found {}.",
                        v.type_str()
                    ),
                ));
            }
        };
        self.check_keys(rt, SECRET_REF_KEYS, &format!("`{full}`"), &full)?;
        let env = self.string(rt, &full, "env")?;
        let file = self.path_value(rt, &full, "file")?;
        match (env, file) {
            (Some(e), None) if !e.is_empty() => Ok(Some(SecretRef::Env(e))),
            (None, Some(f)) if !f.as_os_str().is_empty() => Ok(Some(SecretRef::File(f))),
            (Some(_), Some(_)) => Err(self.err(
                &full,
                "has both `env` and `file`; give exactly one.",
            )),
            _ => Err(self.err(
                &full,
                "must name an environment variable or a file: { env = \"NAME\" } or { file = \"PATH\" }.",
            )),
        }
    }

    fn grant(&self, t: &toml::Table, prefix: &str, key: &str) -> CliResult<Option<GrantName>> {
        let Some(s) = self.string(t, prefix, key)? else {
            return Ok(None);
        };
        GrantName::parse(&s).map(Some).ok_or_else(|| {
            let near = suggest(&s, GRANT_NAMES.iter().copied())
                .map(|n| format!(" Did you mean `{n}`?"))
                .unwrap_or_default();
            self.err(
                &format!("{prefix}.{key}"),
                format!(
                    "is `{s}`, which is not a grant.{near} Expected one of: {}.",
                    GRANT_NAMES.join(", ")
                ),
            )
        })
    }

    fn profile(&self, name: &str, t: &toml::Table) -> CliResult<Profile> {
        let prefix = format!("profiles.{name}");
        self.check_keys(t, PROFILE_KEYS, &format!("[{prefix}]"), &prefix)?;
        for key in SECRET_KEYS {
            // Checked here so a literal secret is reported even before other problems.
            self.secret(t, &prefix, key)?;
        }
        let login_url = self
            .string(t, &prefix, "login_url")?
            .unwrap_or_else(|| DEFAULT_LOGIN_URL.to_owned());
        sfkeep::http::check_url("login_url", &login_url).map_err(|e| {
            self.err(
                &format!("{prefix}.login_url"),
                format!("is not usable: {e}."),
            )
        })?;
        let instance_url = self.string(t, &prefix, "instance_url")?;
        if let Some(u) = &instance_url {
            sfkeep::http::check_url("instance_url", u).map_err(|e| {
                self.err(
                    &format!("{prefix}.instance_url"),
                    format!("is not usable: {e}."),
                )
            })?;
        }
        let proxy_url = self.string(t, &prefix, "proxy_url")?;
        if let Some(u) = &proxy_url {
            sfkeep::http::check_url("proxy_url", u).map_err(|e| {
                self.err(
                    &format!("{prefix}.proxy_url"),
                    format!("is not usable: {e}."),
                )
            })?;
        }
        let api_version = self
            .string(t, &prefix, "api_version")?
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
        if !is_api_version(&api_version) {
            return Err(self.err(
                &format!("{prefix}.api_version"),
                format!("is `{api_version}`; expected a version like \"59.0\"."),
            ));
        }
        if api_version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|major| major <= LAST_RETIRED_API_VERSION)
        {
            return Err(self.err(
                &format!("{prefix}.api_version"),
                format!(
                    "is `{api_version}`, a retired version (Salesforce retired 30.0 and older in Summer '25); use 31.0 or later, e.g. \"{DEFAULT_API_VERSION}\"."
                ),
            ));
        }
        let session_timeout = match t.get("session_timeout_secs") {
            None => None,
            Some(Value::Integer(n)) if *n > 0 => Some(Duration::from_secs(*n as u64)),
            Some(Value::Integer(n)) => {
                return Err(self.err(
                    &format!("{prefix}.session_timeout_secs"),
                    format!("must be a positive whole number of seconds, found {n}."),
                ));
            }
            Some(v) => {
                return Err(self.err(
                    &format!("{prefix}.session_timeout_secs"),
                    format!(
                        "must be a positive whole number of seconds, found {}.",
                        v.type_str()
                    ),
                ));
            }
        };
        let store = match t.get("store") {
            None => StoreConfig::Memory,
            Some(v) => {
                let sp = format!("{prefix}.store");
                let st = self.table(v, &sp)?;
                self.check_keys(st, STORE_KEYS, &format!("[{sp}]"), &sp)?;
                match self.string(st, &sp, "kind")?.as_deref() {
                    None | Some("memory") => StoreConfig::Memory,
                    Some("file") => StoreConfig::File {
                        path: self.path_value(st, &sp, "path")?.ok_or_else(|| {
                            self.err(
                                &format!("{sp}.path"),
                                "is missing; a file store needs the path of its data file.",
                            )
                        })?,
                        key_file: self.path_value(st, &sp, "key_file")?,
                    },
                    Some("redis") => StoreConfig::Redis {
                        url: self.string(st, &sp, "url")?.ok_or_else(|| {
                            self.err(
                                &format!("{sp}.url"),
                                "is missing; a redis store needs `url = \"redis://host:6379\"` (or rediss:// for TLS).",
                            )
                        })?,
                        key_file: self.path_value(st, &sp, "key_file")?,
                    },
                    Some(other) => {
                        return Err(self.err(
                            &format!("{sp}.kind"),
                            format!("is `{other}`; expected `memory`, `file` or `redis`."),
                        ));
                    }
                }
            }
        };
        Ok(Profile {
            name: name.to_owned(),
            config_path: self.path.to_owned(),
            login_url,
            instance_url,
            proxy_url,
            api_version,
            client_id: self.string(t, &prefix, "client_id")?,
            client_secret: self.secret(t, &prefix, "client_secret")?,
            username: self.string(t, &prefix, "username")?,
            refresh_token: self.secret(t, &prefix, "refresh_token")?,
            jwt_key: self.secret(t, &prefix, "jwt_key")?,
            password: self.secret(t, &prefix, "password")?,
            security_token: self.secret(t, &prefix, "security_token")?,
            grant: self
                .grant(t, &prefix, "grant")?
                .unwrap_or(GrantName::RefreshToken),
            fallback_grant: self.grant(t, &prefix, "fallback_grant")?,
            session_timeout,
            store,
        })
    }
}

fn is_api_version(s: &str) -> bool {
    let mut parts = s.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(a), Some(b), None)
            if !a.is_empty() && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
    )
}

/// 1-based line and column of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The line where `key` is assigned (`key =`, `"key" =`) or opens a table, best effort.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")));
            if let Some(rest) = rest {
                return rest.trim_start().starts_with('=');
            }
            // `[profiles.x.key]` or `[profiles.x]` style headers.
            l.starts_with('[')
                && l.trim_matches(|c| c == '[' || c == ']')
                    .split('.')
                    .any(|part| part.trim().trim_matches('"') == key)
        })
        .map(|i| i + 1)
}

/// Expands `~/` and makes a relative path relative to the config file's directory.
pub fn resolve_path(raw: &str, config_path: &Path) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = PathBuf::from(raw);
    if p.is_absolute() {
        return p;
    }
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known name nearest to `given`, if it is near enough to be a typo.
pub fn suggest<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(2);
    known
        .map(|k| (edit_distance(given, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Finds the config file: `explicit`, else `./sfkeep.toml`, else the user config dir.
pub fn locate(explicit: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_owned());
        }
        if p.is_dir() {
            return Err(CliError::usage(format!(
                "--config {} is a directory; give the config file itself (e.g. {}).",
                p.display(),
                p.join(CONFIG_FILE_NAME).display()
            )));
        }
        return Err(CliError::usage(format!(
            "the config file {} given with --config does not exist. Check the path; `sfkeep fake-org` prints a working one as `profile_file`.",
            p.display()
        )));
    }
    let mut tried = Vec::new();
    let local = PathBuf::from(CONFIG_FILE_NAME);
    if local.is_file() {
        return Ok(local);
    }
    tried.push(format!("./{CONFIG_FILE_NAME}"));
    if let Some(dir) = user_config_dir() {
        let p = dir.join("sfkeep").join(CONFIG_FILE_NAME);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p.display().to_string());
    }
    Err(CliError::usage(format!(
        "no config file found (looked at {}). Create one with a [profiles.default] table, or pass --config PATH.",
        tried.join(" and ")
    )))
}

fn user_config_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => Some(PathBuf::from(x)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")),
    }
}

/// The parts of an sfdx auth URL (`force://clientId:clientSecret:refreshToken@instance`).
#[derive(Clone, Debug)]
pub struct SfdxAuth {
    /// Consumer key (`PlatformCLI` for the sf CLI's own app).
    pub client_id: String,
    /// Consumer secret; empty in the URL means none.
    pub client_secret: Option<ClientSecret>,
    /// The refresh token.
    pub refresh_token: RefreshToken,
    /// The instance, as a URL (https, or http for loopback hosts).
    pub login_url: String,
}

/// Parses an sfdx auth URL. Errors say what is malformed, never echo any part.
pub fn parse_sfdx_url(raw: &str) -> CliResult<SfdxAuth> {
    let bad = |what: &str| {
        CliError::usage(format!(
            "the sfdx auth URL is malformed: {what}. Expected force://CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN@INSTANCE (as printed by `sf org display --verbose`); the secret may be empty."
        ))
    };
    let raw = raw.trim();
    let rest = raw
        .strip_prefix("force://")
        .ok_or_else(|| bad("it does not start with force://"))?;
    let (creds, instance) = rest
        .rsplit_once('@')
        .ok_or_else(|| bad("there is no @ before the instance"))?;
    let mut parts = creds.splitn(3, ':');
    let (Some(client_id), Some(secret), Some(refresh)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("it needs three parts separated by `:` before the @"));
    };
    if client_id.is_empty() {
        return Err(bad("the client id is empty"));
    }
    if refresh.is_empty() {
        return Err(bad("the refresh token is empty"));
    }
    let ok_chars = |s: &str| s.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if !ok_chars(client_id) || !ok_chars(secret) || !ok_chars(refresh) {
        return Err(bad("a part contains whitespace"));
    }
    let instance = instance.trim_end_matches('/');
    if instance.is_empty() {
        return Err(bad("the instance is empty"));
    }
    let login_url = if instance.contains("://") {
        instance.to_owned()
    } else {
        let host = instance.split(':').next().unwrap_or("");
        let loopback =
            host == "localhost" || host.starts_with("127.") || instance.starts_with("[::1]");
        if loopback {
            format!("http://{instance}")
        } else {
            format!("https://{instance}")
        }
    };
    sfkeep::http::check_url("the sfdx URL's instance", &login_url)
        .map_err(|_| bad("the instance is not a usable https host"))?;
    Ok(SfdxAuth {
        client_id: client_id.to_owned(),
        client_secret: (!secret.is_empty()).then(|| ClientSecret::new(secret)),
        refresh_token: RefreshToken::new(refresh),
        login_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: &str = r#"
[profiles.fake]
login_url = "http://127.0.0.1:4321"
client_id = "3MVG9fake"
client_secret = { file = "/STATE/client_secret" }
username = "integration@example.com"
refresh_token = { file = "/STATE/refresh_token" }
jwt_key = { file = "/STATE/jwt.key" }
password = { file = "/STATE/password" }
security_token = { file = "/STATE/security_token" }
grant = "refresh_token"          # refresh_token | jwt_bearer | client_credentials | password | soap_login
fallback_grant = "jwt_bearer"    # optional
session_timeout_secs = 7200
[profiles.fake.store]
kind = "file"                    # memory | file | redis
path = "/STATE/tokens.enc"
key_file = "/STATE/cache.key"
"#;

    fn parse(text: &str) -> CliResult<Config> {
        Config::parse(text, Path::new("/etc/sfkeep/test.toml"))
    }

    #[test]
    fn the_fake_org_profile_parses() {
        let c = parse(FAKE).unwrap();
        let p = c.profile("fake").unwrap();
        assert_eq!(p.login_url, "http://127.0.0.1:4321");
        assert_eq!(p.client_id.as_deref(), Some("3MVG9fake"));
        assert_eq!(
            p.client_secret,
            Some(SecretRef::File("/STATE/client_secret".into()))
        );
        assert_eq!(p.grant, GrantName::RefreshToken);
        assert_eq!(p.fallback_grant, Some(GrantName::JwtBearer));
        assert_eq!(p.session_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(p.api_version, DEFAULT_API_VERSION);
        assert_eq!(
            p.store,
            StoreConfig::File {
                path: "/STATE/tokens.enc".into(),
                key_file: Some("/STATE/cache.key".into())
            }
        );
    }

    #[test]
    fn unknown_key_names_file_key_line_and_suggestion() {
        let text = FAKE.replace("client_id =", "clent_id =");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.exit, crate::exit::Exit::Usage);
        let m = e.message;
        assert!(m.contains("/etc/sfkeep/test.toml"), "{m}");
        assert!(m.contains("profiles.fake.clent_id"), "{m}");
        assert!(m.contains("Did you mean `client_id`?"), "{m}");
        assert!(m.contains("line 4"), "{m}");
    }

    #[test]
    fn unknown_store_key_and_grant_are_suggested() {
        let e = parse(&FAKE.replace("key_file =", "keyfile =")).unwrap_err();
        assert!(
            e.message.contains("Did you mean `key_file`?"),
            "{}",
            e.message
        );
        let e = parse(&FAKE.replace("\"jwt_bearer\"", "\"jwt-bearer\"")).unwrap_err();
        assert!(
            e.message.contains("Did you mean `jwt_bearer`?"),
            "{}",
            e.message
        );
    }

    #[test]
    fn literal_secret_is_an_error_without_the_value() {
        let text = FAKE.replace(
            "client_secret = { file = \"/STATE/client_secret\" }",
            "client_secret = \"SuperSecret123\"",
        );
        let e = parse(&text).unwrap_err();
        assert!(
            e.message.contains("profiles.fake.client_secret"),
            "{}",
            e.message
        );
        assert!(e.message.contains("{ env = \"NAME\" }"), "{}", e.message);
        assert!(!e.message.contains("SuperSecret123"), "{}", e.message);
    }

    #[test]
    fn syntax_error_does_not_echo_the_line() {
        let text = FAKE.replace(
            "client_secret = { file = \"/STATE/client_secret\" }",
            "client_secret = SuperSecret123",
        );
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("line 5"), "{}", e.message);
        assert!(!e.message.contains("SuperSecret123"), "{}", e.message);
    }

    #[test]
    fn missing_env_var_is_named_and_no_value_printed() {
        let text = FAKE.replace(
            "client_secret = { file = \"/STATE/client_secret\" }",
            "client_secret = { env = \"SFKEEP_TEST_SURELY_UNSET_VAR\" }",
        );
        let c = parse(&text).unwrap();
        let p = c.profile("fake").unwrap();
        let e = p
            .require_secret(&p.client_secret, "client_secret", "the refresh grant")
            .unwrap_err();
        assert_eq!(e.exit, crate::exit::Exit::Usage);
        assert!(
            e.message.contains("SFKEEP_TEST_SURELY_UNSET_VAR"),
            "{}",
            e.message
        );
        assert!(e.message.contains("is not set"), "{}", e.message);
    }

    #[test]
    fn missing_profile_lists_the_existing_ones() {
        let c = parse(FAKE).unwrap();
        let e = c.profile("fak").unwrap_err();
        assert!(e.message.contains("no profile `fak`"), "{}", e.message);
        assert!(e.message.contains("`fake`"), "{}", e.message);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let text = FAKE.replace("\"/STATE/tokens.enc\"", "\"tokens.enc\"");
        let c = parse(&text).unwrap();
        match &c.profile("fake").unwrap().store {
            StoreConfig::File { path, .. } => assert_eq!(path, Path::new("/etc/sfkeep/tokens.enc")),
            s => panic!("{s:?}"),
        }
    }

    /// Mutation fuzzing of the config parser (the same approach as `crates/sfkeep/tests/fuzz.rs`,
    /// which cannot reach this binary-private module): no input may panic, and no error may
    /// echo a secret-looking value from the file.
    #[test]
    fn fuzz_config_parser_never_panics_or_echoes_values() {
        let seeds: Vec<Vec<u8>> = vec![
            FAKE.as_bytes().to_vec(),
            FAKE.replace("kind = \"file\"", "kind = \"redis\"\nurl = \"redis://x\"")
                .into_bytes(),
            b"[profiles.a]\nlogin_url = 1\n".to_vec(),
            b"[profiles.a]\nclient_secret = \"SECRET-LITERAL-VALUE\"\n".to_vec(),
        ];
        let iterations: u64 = std::env::var("SFKEEP_FUZZ_CONFIG_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces: [&[u8]; 11] = [
            b"[",
            b"]",
            b"=",
            b"\"",
            b"{",
            b"}",
            b"\n",
            b"'''",
            b"\\u0000",
            b"profiles.",
            b"\xff",
        ];
        for _ in 0..iterations {
            let mut buf = seeds[(next() % seeds.len() as u64) as usize].clone();
            for _ in 0..=(next() % 6) {
                let len = buf.len();
                match next() % 4 {
                    0 if len > 0 => {
                        let i = (next() % len as u64) as usize;
                        buf[i] ^= 1 << (next() % 8);
                    }
                    1 if len > 0 => {
                        let i = (next() % len as u64) as usize;
                        let n = ((next() % 32) as usize + 1).min(len - i);
                        buf.drain(i..i + n);
                    }
                    2 => {
                        let i = (next() % (len as u64 + 1)) as usize;
                        let p = pieces[(next() % pieces.len() as u64) as usize];
                        buf.splice(i..i, p.iter().copied());
                    }
                    _ => buf.truncate((next() % (len as u64 + 1)) as usize),
                }
            }
            let text = String::from_utf8_lossy(&buf);
            if let Err(e) = parse(&text) {
                assert!(!e.message.contains("SECRET-LITERAL-VALUE"), "{}", e.message);
            }
        }
    }

    #[test]
    fn a_redis_store_parses_and_needs_a_url() {
        let text = FAKE.replace(
            "kind = \"file\"",
            "kind = \"redis\"\nurl = \"rediss://:pw@cache.internal:6380/2\"",
        );
        let c = parse(&text).unwrap();
        match &c.profile("fake").unwrap().store {
            StoreConfig::Redis { url, key_file } => {
                assert_eq!(url, "rediss://:pw@cache.internal:6380/2");
                assert!(key_file.is_some());
            }
            s => panic!("{s:?}"),
        }
        let no_url = FAKE.replace("kind = \"file\"", "kind = \"redis\"");
        let e = parse(&no_url).unwrap_err();
        assert!(e.message.contains("store.url"), "{}", e.message);
    }

    #[test]
    fn sfdx_url_parses() {
        let a =
            parse_sfdx_url("force://PlatformCLI::5Aep861abc.def@myorg.my.salesforce.com").unwrap();
        assert_eq!(a.client_id, "PlatformCLI");
        assert!(a.client_secret.is_none());
        assert_eq!(a.refresh_token.expose_secret(), "5Aep861abc.def");
        assert_eq!(a.login_url, "https://myorg.my.salesforce.com");

        let a = parse_sfdx_url("force://3MVG9x:s3cr3t:5Aep:with:colons@127.0.0.1:8080").unwrap();
        assert_eq!(a.client_secret.unwrap().expose_secret(), "s3cr3t");
        assert_eq!(a.refresh_token.expose_secret(), "5Aep:with:colons");
        assert_eq!(a.login_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn bad_sfdx_urls_never_echo_parts() {
        for raw in [
            "https://3MVG9x:s3cr3tvalue:5AepTOKENVALUE@host",
            "force://3MVG9x:s3cr3tvalue:5AepTOKENVALUE",
            "force://3MVG9x:s3cr3tvalue@host",
            "force://:s3cr3tvalue:5AepTOKENVALUE@host",
            "force://3MVG9x:s3cr3tvalue:5AepTOKENVALUE@",
            "force://3MVG9x:s3cr3tvalue:5AepTOKENVALUE@http://remote.example.com",
        ] {
            let e = parse_sfdx_url(raw).unwrap_err();
            assert_eq!(e.exit, crate::exit::Exit::Usage);
            assert!(!e.message.contains("s3cr3tvalue"), "{}", e.message);
            assert!(!e.message.contains("5AepTOKENVALUE"), "{}", e.message);
        }
    }

    #[test]
    fn suggestions_are_close_only() {
        assert_eq!(
            suggest("clent_id", PROFILE_KEYS.iter().copied()),
            Some("client_id")
        );
        assert_eq!(suggest("zzzzzz", PROFILE_KEYS.iter().copied()), None);
    }
}
