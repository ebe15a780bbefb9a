//! `TokenManager.from_profile`: a manager from a profile of an sfkeep config file, built the
//! way the `sfkeep` CLI builds it (crates/sfkeep-cli/src/config/ and
//! crates/sfkeep-cli/src/session.rs), so the wheel and every CLI process of that profile share
//! one store record:
//!
//! - the same file: `config=`, else `./sfkeep.toml`, else `$XDG_CONFIG_HOME/sfkeep/sfkeep.toml`
//!   (or `~/.config/sfkeep/sfkeep.toml`); relative paths are relative to the file, `~/` is
//!   the home directory;
//! - the same secrets: references only (`{ env = "NAME" }`, `{ file = "PATH" }`), read once
//!   here; a literal secret is refused without echoing it;
//! - the same store (memory, file or Redis) and cache key (`SFKEEP_CACHE_KEY`, else the
//!   store's `key_file`), and the same store key: the library's [`KeyIdentity`] of the
//!   profile's primary grant, its username, its configured refresh token and, when it
//!   configures neither, the profile's name;
//! - the same grants: the primary and the fallback; a `refresh_token` profile without a
//!   configured refresh token uses the stored one (after `sfkeep login --web`), and with none
//!   stored starts with its fallback; a configured refresh token is refused while an earlier
//!   sfkeep's record under the app's shared key holds a different one (it may be its rotated
//!   successor: docs/token-lifecycle.md, "Store keys").
//!
//! Keys the manager does not use (the guardian's, `proxy_url`, …) are not read here: the CLI
//! checks the whole file (`sfkeep status` names a misspelt key). The spent-token ledger is the
//! CLI's file (`sfkeep::paths`), and so is the kill switch of `sfkeep logout --revoke` (its
//! marker stops the fallback grant here too: `sfkeep::manager::FallbackSwitch`). What the CLI adds that a library does not: its audit log
//! (`sfkeep events` shows the CLI's own events only).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sfkeep::TokenManager;
use sfkeep::event::EventSink;
use sfkeep::manager::{FallbackSwitch, TokenSource};
use sfkeep::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};
use sfkeep::store::{KeyIdentity, Store, StoreKey};
use sfkeep::token::{GrantKind, TokenRecord};
use std::sync::Arc;
use toml::{Table, Value};

use crate::errors::Kind;
use crate::spec::{BuildError, Credentials, SpecError, StoreSpec, probe_store};

/// The config file name looked up in the working directory and the user config dir.
use sfkeep::paths::CONFIG_FILE_NAME;
/// The API version used when a profile does not set one (as the CLI).
const DEFAULT_API_VERSION: &str = "59.0";
/// The login host used when a profile does not set one (as the CLI).
const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// The grants a profile can name, in the CLI's order.
const GRANTS: [(&str, GrantKind); 5] = [
    ("refresh_token", GrantKind::RefreshToken),
    ("jwt_bearer", GrantKind::JwtBearer),
    ("client_credentials", GrantKind::ClientCredentials),
    ("password", GrantKind::Password),
    ("soap_login", GrantKind::SoapLogin),
];

fn config_error(message: String) -> SpecError {
    SpecError {
        kind: Kind::Config,
        message,
    }
}

/// A profile, read and checked: everything its manager is built from.
#[derive(Debug)]
pub struct ProfileSpec {
    /// "profile `NAME` in FILE", for messages and `repr()`.
    pub describe: String,
    /// The login host.
    pub login_url: String,
    /// The primary grant's name.
    pub grant: &'static str,
    /// The fallback grant's name.
    pub fallback: Option<&'static str>,
    /// Secrets and names the grants are built from.
    creds: Credentials,
    /// The store.
    pub store: StoreSpec,
    /// The key the CLI keeps this profile's record under.
    key: StoreKey,
    /// The key an earlier sfkeep kept this app's record under, when it differs.
    legacy_key: Option<StoreKey>,
    /// The session timeout assumed when introspection does not tell.
    session_timeout: Option<Duration>,
}

/// Finds the config file as the CLI does: `explicit`, else `./sfkeep.toml`, else the user
/// config dir.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, SpecError> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_owned());
        }
        return Err(config_error(if p.is_dir() {
            format!(
                "TokenManager.from_profile: config={} is a directory; give the config file itself (e.g. {})",
                p.display(),
                p.join(CONFIG_FILE_NAME).display()
            )
        } else {
            format!(
                "TokenManager.from_profile: the config file {} does not exist",
                p.display()
            )
        }));
    }
    let tried = match sfkeep::paths::find_config() {
        Ok(found) => return Ok(found),
        Err(tried) => tried,
    };
    Err(config_error(format!(
        "TokenManager.from_profile: no config file found (looked at {}); pass config=PATH",
        tried.join(" and ")
    )))
}

/// Where keys are read: the file and `profiles.NAME`, for messages.
struct At<'a> {
    file: &'a Path,
    name: &'a str,
    table: &'a Table,
}

impl At<'_> {
    fn err(&self, key: &str, what: impl std::fmt::Display) -> SpecError {
        config_error(format!(
            "{}: `profiles.{}.{key}` {what}",
            self.file.display(),
            self.name
        ))
    }

    fn string(&self, key: &str) -> Result<Option<String>, SpecError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(key, format!("must be a string, not a {}", v.type_str()))),
        }
    }

    /// A URL sfkeep may send credentials to (https, or http to loopback only).
    fn url(&self, key: &str) -> Result<Option<String>, SpecError> {
        let v = self.string(key)?;
        if let Some(u) = &v {
            sfkeep::http::check_url(key, u)
                .map_err(|e| self.err(key, format!("is not usable: {e}")))?;
        }
        Ok(v)
    }

    fn grant(&self, key: &str) -> Result<Option<(&'static str, GrantKind)>, SpecError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        GRANTS
            .iter()
            .find(|(n, _)| *n == s)
            .copied()
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<&str> = GRANTS.iter().map(|(n, _)| *n).collect();
                self.err(
                    key,
                    format!(
                        "is `{s}`, which is not a grant; expected one of: {}",
                        names.join(", ")
                    ),
                )
            })
    }

    /// A secret: `{ env = "NAME" }` or `{ file = "PATH" }`, read now. Never shows a value.
    fn secret(&self, key: &str) -> Result<Option<String>, SpecError> {
        let Some(v) = self.table.get(key) else {
            return Ok(None);
        };
        let how = "must be a reference: { env = \"NAME\" } or { file = \"PATH\" } (a secret is never written in the config file itself)";
        let Value::Table(t) = v else {
            return Err(self.err(key, how));
        };
        let field = |k: &str| match t.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        if t.keys().any(|k| k != "env" && k != "file") {
            return Err(self.err(key, how));
        }
        match (field("env"), field("file")) {
            (Some(env), None) => match std::env::var(&env) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_owned())),
                Ok(_) => Err(self.err(
                    key,
                    format!("names the environment variable {env}, which is empty"),
                )),
                Err(_) => Err(self.err(
                    key,
                    format!("names the environment variable {env}, which is not set"),
                )),
            },
            (None, Some(file)) => {
                let path = resolve_path(&file, self.file);
                read_secret_file(&path).map(Some).map_err(|why| {
                    self.err(
                        key,
                        format!("names the file {}, which {why}", path.display()),
                    )
                })
            }
            (Some(_), Some(_)) => Err(self.err(key, "has both `env` and `file`; give exactly one")),
            (None, None) => Err(self.err(key, how)),
        }
    }
}

/// A secret file's content, trimmed; or why it cannot be used.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        std::io::ErrorKind::PermissionDenied => "cannot be read (permission denied)".to_owned(),
        _ => format!("cannot be read ({e})"),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err("is empty".into());
    }
    Ok(value.to_owned())
}

/// Expands `~/` and makes a relative path relative to the config file's directory (as the CLI).
fn resolve_path(raw: &str, config_path: &Path) -> PathBuf {
    sfkeep::paths::resolve_config_relative(raw, config_path)
}

/// Reads profile `name` of the config file (`config`, or the CLI's lookup).
pub fn load(name: &str, config: Option<&Path>) -> Result<ProfileSpec, SpecError> {
    let file = locate(config)?;
    let text = std::fs::read_to_string(&file).map_err(|e| {
        config_error(format!(
            "TokenManager.from_profile: cannot read the config file {}: {e}",
            file.display()
        ))
    })?;
    // Never show the offending line: it may hold a literal secret.
    let doc: Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        config_error(format!(
            "{} is not valid TOML{}",
            file.display(),
            line.map(|l| format!(" (line {l})")).unwrap_or_default()
        ))
    })?;
    let profiles = match doc.get("profiles") {
        Some(Value::Table(t)) => t.clone(),
        _ => Table::new(),
    };
    let Some(Value::Table(table)) = profiles.get(name) else {
        let known: Vec<String> = profiles.keys().map(|k| format!("`{k}`")).collect();
        return Err(SpecError {
            kind: Kind::Config,
            message: format!(
                "there is no profile `{name}` in {}: {}",
                file.display(),
                if known.is_empty() {
                    format!("it defines no profiles; add a [profiles.{name}] table")
                } else {
                    format!("it defines {}", known.join(", "))
                }
            ),
        });
    };
    let at = At {
        file: &file,
        name,
        table,
    };
    let login_url = at.url("login_url")?.unwrap_or(DEFAULT_LOGIN_URL.to_owned());
    let (grant, kind) = at.grant("grant")?.unwrap_or(GRANTS[0]);
    let fallback = at.grant("fallback_grant")?.map(|(n, _)| n);
    let client_id = at.string("client_id")?;
    let username = at.string("username")?;
    let refresh_token = at.secret("refresh_token")?.map(RefreshToken::new);
    let session_timeout = match table.get("session_timeout_secs") {
        None => None,
        Some(Value::Integer(n)) if *n > 0 => Some(Duration::from_secs(*n as u64)),
        Some(_) => {
            return Err(at.err(
                "session_timeout_secs",
                "must be a positive whole number of seconds",
            ));
        }
    };
    let creds = Credentials {
        client_id: client_id.clone(),
        client_secret: at.secret("client_secret")?.map(ClientSecret::new),
        refresh_token: refresh_token.clone(),
        username: username.clone(),
        password: at.secret("password")?.map(Password::new),
        security_token: at.secret("security_token")?.map(SecurityToken::new),
        private_key: at.secret("jwt_key")?.map(PrivateKeyPem::new),
        api_version: at
            .string("api_version")?
            .unwrap_or(DEFAULT_API_VERSION.to_owned()),
    };
    let store = store(&at)?;
    let identity = KeyIdentity::new(&login_url, kind)
        .client_id(client_id.as_deref())
        .username(username.as_deref())
        .bootstrap_refresh_token(refresh_token.as_ref())
        .label(Some(name));
    let key = identity.key();
    let legacy_key = Some(identity.legacy_key()).filter(|l| *l != key);
    Ok(ProfileSpec {
        describe: format!("profile `{name}` in {}", file.display()),
        login_url,
        grant,
        fallback: fallback.filter(|f| *f != grant),
        creds,
        store,
        key,
        legacy_key,
        session_timeout,
    })
}

/// `[profiles.NAME.store]`, with its cache key (`SFKEEP_CACHE_KEY` wins over `key_file`).
fn store(at: &At<'_>) -> Result<StoreSpec, SpecError> {
    let Some(v) = at.table.get("store") else {
        return Ok(StoreSpec::Memory);
    };
    let Value::Table(t) = v else {
        return Err(at.err("store", "must be a table ([profiles.NAME.store])"));
    };
    let field = |k: &str| -> Result<Option<String>, SpecError> {
        match t.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(at.err(&format!("store.{k}"), "must be a string")),
        }
    };
    let kind = field("kind")?.unwrap_or("memory".into());
    if kind == "memory" {
        return Ok(StoreSpec::Memory);
    }
    let path = field("path")?.map(|p| resolve_path(&p, at.file));
    let url = field("url")?;
    let key = match std::env::var("SFKEEP_CACHE_KEY") {
        Ok(k) => k,
        Err(_) => {
            let Some(key_file) = field("key_file")?.map(|k| resolve_path(&k, at.file)) else {
                return Err(at.err(
                    "store",
                    "is encrypted but has no key: set SFKEEP_CACHE_KEY, or add `key_file = \"PATH\"`",
                ));
            };
            read_secret_file(&key_file).map_err(|why| {
                at.err(
                    "store.key_file",
                    format!("names the file {}, which {why}", key_file.display()),
                )
            })?
        }
    };
    StoreSpec::parse(&kind, path, url, Some(&key))
        .map_err(|e| at.err("store", e.message.trim_start_matches("TokenManager(...): ")))
}

impl ProfileSpec {
    /// The exception kinds' context: the grants this profile tries.
    pub fn grant_kinds(&self) -> Vec<GrantKind> {
        std::iter::once(self.grant)
            .chain(self.fallback)
            .filter_map(|n| GRANTS.iter().find(|(g, _)| *g == n).map(|(_, k)| *k))
            .collect()
    }

    fn grant_error(&self, e: SpecError) -> SpecError {
        // The keyword constructor's words ("needs the keyword argument") are not a profile's.
        let msg = e.message;
        let msg = match msg.split_once("needs the keyword argument `") {
            Some((head, tail)) => {
                let key = tail.trim_end_matches('`');
                let key = if key == "private_key" { "jwt_key" } else { key };
                format!(
                    "{} {}needs `{key}`; add it to the profile",
                    self.describe,
                    head.trim_start_matches("TokenManager(...): ")
                )
            }
            None => format!("{}: {msg}", self.describe),
        };
        SpecError {
            kind: e.kind,
            message: msg,
        }
    }

    /// The manager, its events going to `sink` (called in every fork epoch that needs one,
    /// inside the runtime).
    pub fn build(&self, sink: Arc<dyn EventSink>) -> Result<TokenManager, BuildError> {
        let store = self.store.open()?;
        probe_store(store.as_ref(), &self.key, &self.store.describe())?;
        let fallback = match self.fallback {
            Some(f) => Some(self.creds.grant(f).map_err(|e| self.grant_error(e))?),
            None => None,
        };
        // The kill switch (`sfkeep logout --revoke`): the CLI's marker for this stored identity
        // stops the fallback grant here as in every CLI process.
        let switch = fallback.as_ref().map(|f| {
            Arc::new(FallbackSwitch::new(
                sfkeep::paths::fallback_disabled(self.store.file_path(), self.key.as_str()),
                f.kind(),
                self.describe.clone(),
            ))
        });
        let (primary, fallback) = match (self.primary(store.as_ref()), fallback) {
            (Ok(p), f) => (p, f),
            // No refresh token yet: the fallback is what the profile has for exactly this.
            (Err(BuildError::Reauth { .. }), Some(f)) => (f, None),
            (Err(e), _) => return Err(e),
        };
        let mut b = TokenManager::builder(self.login_url.clone())
            .grant(primary)
            .store(store)
            .store_key(self.key.clone())
            // The CLI's ledger for this store (`sfkeep::paths`): after a store loss, neither
            // presents a configured refresh token the other saw rotated away.
            .spent_ledger(sfkeep::paths::spent_ledger(self.store.file_path()))
            .event_sink(sink);
        if let Some(f) = fallback {
            b = b.fallback_grant(f);
        }
        if let Some(t) = self.session_timeout {
            b = b.session_timeout(t);
        }
        if let Some(s) = &switch {
            b = b.token_source(Arc::clone(s) as Arc<dyn TokenSource>);
        }
        let m = b.build()?;
        if let Some(s) = &switch {
            s.attach(&m);
        }
        Ok(m)
    }

    fn block_on_load(store: &dyn Store, key: &StoreKey) -> Result<Option<TokenRecord>, BuildError> {
        let r = tokio::runtime::Handle::current().block_on(store.load(key))?;
        let _ = store.take_warnings();
        Ok(r.filter(|r| !r.is_tombstone()))
    }

    /// The primary grant; for `refresh_token`, the configured refresh token (checked against
    /// an earlier sfkeep's record) or else the stored one.
    fn primary(&self, store: &dyn Store) -> Result<sfkeep::Grant, BuildError> {
        if self.grant != "refresh_token" {
            return Ok(self
                .creds
                .grant(self.grant)
                .map_err(|e| self.grant_error(e))?);
        }
        let own = Self::block_on_load(store, &self.key)?.and_then(|r| r.refresh_token);
        let legacy = match &self.legacy_key {
            Some(k) => Self::block_on_load(store, k)?.and_then(|r| r.refresh_token),
            None => None,
        };
        let mut creds = self.creds.clone();
        match (&self.creds.refresh_token, own, legacy) {
            (Some(configured), None, Some(old)) if old != *configured => {
                return Err(BuildError::Reauth {
                    cause: "unowned_stored_token",
                    fix: "Authorize the profile anew: `sfkeep login --web` or `--device`.",
                    message: format!(
                        "the token store of {} ({}) holds a refresh token that an earlier sfkeep stored under the shared key of this connected app, which does not record whose it is, and it is not the configured one: it may be the configured token's rotated successor (sending a spent one makes Salesforce revoke its whole family) or another user's. sfkeep sends neither. Authorize this profile anew with `sfkeep login --web` or `--device`",
                        self.describe,
                        self.store.describe()
                    ),
                });
            }
            (Some(_), _, _) => {}
            (None, Some(stored), _) => creds.refresh_token = Some(stored),
            (None, None, _) => {
                return Err(BuildError::Reauth {
                    cause: "no_refresh_token",
                    fix: "Log in once: `sfkeep login --web`, `--device` or `--sfdx-url URL`.",
                    message: format!(
                        "{} uses the refresh_token grant but has no `refresh_token` and none is stored. Log in once with `sfkeep login --web`, `--device` or `--sfdx-url URL` (or add `refresh_token = {{ env = \"NAME\" }}`)",
                        self.describe
                    ),
                });
            }
        }
        Ok(creds.grant(self.grant).map_err(|e| self.grant_error(e))?)
    }
}
