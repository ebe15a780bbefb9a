//! The validation pass: from the schema's raw values to a [`Profile`], checking what serde
//! cannot (URLs, API versions, grant names with a suggestion, stores, secret references) and
//! resolving relative paths against the config file. One small function per key family.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::messages::suggest;
use crate::config::profile::{GrantName, Profile, SecretRef, StoreConfig};
use crate::config::schema::{RawProfile, RawSecret, RawStore};
use crate::error::{CliError, CliResult};

/// The API version used when a profile does not set one: the library's default.
pub const DEFAULT_API_VERSION: &str = sfkeep::client::DEFAULT_API_VERSION;
/// API versions up to this one are retired (Summer '25 retired 21.0 to 30.0).
const LAST_RETIRED_API_VERSION: u32 = 30;
/// The login host used when a profile does not set one.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";

/// Where a profile's keys are being checked: the file and `profiles.NAME`.
struct Place<'a> {
    file: &'a Path,
    prefix: String,
}

impl Place<'_> {
    /// "FILE: `profiles.NAME.KEY` WHAT".
    fn err(&self, key: &str, what: impl std::fmt::Display) -> CliError {
        CliError::usage(format!(
            "{}: `{}.{key}` {what}",
            self.file.display(),
            self.prefix
        ))
    }
}

/// Validates the profile `name` read from `file`.
pub fn profile(file: &Path, name: &str, raw: RawProfile) -> CliResult<Profile> {
    let at = Place {
        file,
        prefix: format!("profiles.{name}"),
    };
    let guardian = raw.guardian_keys();
    let login_url = url(&at, "login_url", raw.login_url)?.unwrap_or(DEFAULT_LOGIN_URL.to_owned());
    Ok(Profile {
        guardian,
        name: name.to_owned(),
        config_path: file.to_owned(),
        login_url,
        instance_url: url(&at, "instance_url", raw.instance_url)?,
        proxy_url: url(&at, "proxy_url", raw.proxy_url)?,
        api_version: api_version(&at, raw.api_version)?,
        client_id: raw.client_id,
        client_secret: secret(&at, "client_secret", raw.client_secret)?,
        username: raw.username,
        refresh_token: secret(&at, "refresh_token", raw.refresh_token)?,
        jwt_key: secret(&at, "jwt_key", raw.jwt_key)?,
        password: secret(&at, "password", raw.password)?,
        security_token: secret(&at, "security_token", raw.security_token)?,
        grant: grant(&at, "grant", raw.grant)?.unwrap_or(GrantName::RefreshToken),
        fallback_grant: grant(&at, "fallback_grant", raw.fallback_grant)?,
        session_timeout: session_timeout(&at, raw.session_timeout_secs)?,
        store: store(&at, raw.store)?,
        audit_retention: retention(&at, raw.audit_retention_days)?,
    })
}

/// A URL sfkeep may send credentials to: https, or http to loopback only.
fn url(at: &Place<'_>, key: &str, value: Option<String>) -> CliResult<Option<String>> {
    if let Some(u) = &value {
        sfkeep::http::check_url(key, u).map_err(|e| at.err(key, format!("is not usable: {e}.")))?;
    }
    Ok(value)
}

fn api_version(at: &Place<'_>, value: Option<String>) -> CliResult<String> {
    let v = value.unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());
    let Some(major) = parse_api_version(&v) else {
        return Err(at.err(
            "api_version",
            format!("is `{v}`; expected a version like \"59.0\"."),
        ));
    };
    if major <= LAST_RETIRED_API_VERSION {
        return Err(at.err(
            "api_version",
            format!(
                "is `{v}`, a retired version (Salesforce retired 30.0 and older in Summer '25); use 31.0 or later, e.g. \"{DEFAULT_API_VERSION}\"."
            ),
        ));
    }
    Ok(v)
}

/// The major number of a `MAJOR.MINOR` version, both parts digits only.
fn parse_api_version(s: &str) -> Option<u32> {
    let (major, minor) = s.split_once('.')?;
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| major.parse().ok())?
}

fn session_timeout(at: &Place<'_>, value: Option<i64>) -> CliResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(n) if n > 0 => Ok(Some(Duration::from_secs(n as u64))),
        Some(n) => Err(at.err(
            "session_timeout_secs",
            format!("must be a positive whole number of seconds, found {n}."),
        )),
    }
}

fn retention(at: &Place<'_>, value: Option<i64>) -> CliResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(n) if (1..=36_500).contains(&n) => Ok(Some(Duration::from_secs(n as u64 * 86_400))),
        Some(n) => Err(at.err(
            "audit_retention_days",
            format!("must be a whole number of days from 1 to 36500, found {n}."),
        )),
    }
}

fn grant(at: &Place<'_>, key: &str, value: Option<String>) -> CliResult<Option<GrantName>> {
    let Some(s) = value else { return Ok(None) };
    GrantName::parse(&s).map(Some).ok_or_else(|| {
        let names: Vec<&str> = GrantName::ALL.iter().map(|g| g.as_str()).collect();
        let near = suggest(&s, names.iter().copied())
            .map(|n| format!(" Did you mean `{n}`?"))
            .unwrap_or_default();
        at.err(
            key,
            format!(
                "is `{s}`, which is not a grant.{near} Expected one of: {}.",
                names.join(", ")
            ),
        )
    })
}

fn secret(at: &Place<'_>, key: &str, value: Option<RawSecret>) -> CliResult<Option<SecretRef>> {
    let Some(raw) = value else { return Ok(None) };
    let full = format!("{}.{key}", at.prefix);
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    match (nonempty(raw.env), nonempty(raw.file)) {
        (Some(env), None) => Ok(Some(SecretRef::Env(env))),
        (None, Some(file)) => Ok(Some(SecretRef::File(resolve_path(&file, at.file)))),
        (Some(_), Some(_)) => Err(CliError::usage(format!(
            "{}: `{full}` has both `env` and `file`; give exactly one.",
            at.file.display()
        ))),
        (None, None) => Err(CliError::usage(format!(
            "{}: `{full}` must name an environment variable or a file: {{ env = \"NAME\" }} or {{ file = \"PATH\" }}.",
            at.file.display()
        ))),
    }
}

fn store(at: &Place<'_>, value: Option<RawStore>) -> CliResult<StoreConfig> {
    let Some(raw) = value else {
        return Ok(StoreConfig::Memory);
    };
    let key_file = raw.key_file.map(|k| resolve_path(&k, at.file));
    match raw.kind.as_deref() {
        None | Some("memory") => Ok(StoreConfig::Memory),
        Some("file") => Ok(StoreConfig::File {
            path: raw.path.map(|p| resolve_path(&p, at.file)).ok_or_else(|| {
                at.err(
                    "store.path",
                    "is missing; a file store needs the path of its data file.",
                )
            })?,
            key_file,
        }),
        Some("redis") => Ok(StoreConfig::Redis {
            url: raw.url.ok_or_else(|| {
                at.err(
                    "store.url",
                    "is missing; a redis store needs `url = \"redis://host:6379\"` (or rediss:// for TLS).",
                )
            })?,
            key_file,
        }),
        Some(other) => Err(at.err(
            "store.kind",
            format!("is `{other}`; expected `memory`, `file` or `redis`."),
        )),
    }
}

/// Expands `~/` and makes a relative path relative to the config file's directory.
pub fn resolve_path(raw: &str, config_path: &Path) -> PathBuf {
    sfkeep::paths::resolve_config_relative(raw, config_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_major_dot_minor() {
        assert_eq!(parse_api_version("59.0"), Some(59));
        assert_eq!(parse_api_version("59"), None);
        assert_eq!(parse_api_version("59.0.1"), None);
        assert_eq!(parse_api_version("v59.0"), None);
        assert_eq!(parse_api_version(".0"), None);
    }
}
