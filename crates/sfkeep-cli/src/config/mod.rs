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
//!   for a secret key is an error. Any secret file sfkeep reads (a JWT key, a refresh token, the
//!   cache key) that group or others can read gets the same warning.
//! - Unknown keys are errors naming the file, the key, its line and the nearest known key.
//! - Relative paths are relative to the config file's directory; `~/` is the home directory.
//! - Lookup: `--config PATH`, else `./sfkeep.toml`, else `$XDG_CONFIG_HOME/sfkeep/sfkeep.toml`
//!   (or `~/.config/sfkeep/sfkeep.toml`).
//!
//! Reading a file is three steps, each in its own module: [`schema`] (serde, unknown keys
//! refused), [`messages`] (what a person reads when that fails), [`validate`] (what the values
//! mean). Nothing here ever formats a secret's value into a message.

pub mod edit;
mod messages;
mod profile;
mod schema;
mod sfdx;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::config::messages::suggest;
use crate::config::profile::io_reason;
pub use crate::config::profile::{GrantName, Profile, SecretRef, StoreConfig, read_secret_file};
pub use crate::config::sfdx::{SfdxAuth, parse_sfdx_url};
pub use crate::config::validate::resolve_path;
use crate::error::{CliError, CliResult};

/// The profile used when neither `--profile` nor `SFKEEP_PROFILE` names one.
pub const DEFAULT_PROFILE: &str = "default";
/// The config file name looked up in the working directory and the user config dir.
pub use sfkeep::paths::CONFIG_FILE_NAME;

/// A parsed config file.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// The `[serve]` section, read by `sfkeep serve` (`serve::settings`).
    pub serve: Option<toml::Table>,
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

    /// Parses `text`, read from `path` (used for messages and relative paths): TOML syntax
    /// first, then the schema, then each profile's values.
    pub fn parse(text: &str, path: &Path) -> CliResult<Self> {
        // Never show the offending line in a message: it may hold a literal secret.
        let doc: toml::Table =
            toml::from_str(text).map_err(|e| messages::syntax_error(text, path, &e))?;
        let raw: schema::RawFile = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| messages::schema_error(text, path, &doc, e))?;
        let profiles = raw
            .profiles
            .into_iter()
            .map(|(name, p)| Ok((name.clone(), validate::profile(path, &name, p)?)))
            .collect::<CliResult<_>>()?;
        Ok(Self {
            path: path.to_owned(),
            profiles,
            serve: raw.serve,
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
    let tried = match sfkeep::paths::find_config() {
        Ok(found) => return Ok(found),
        Err(tried) => tried,
    };
    Err(CliError::usage(format!(
        "no config file found (looked at {}). Create one with a [profiles.default] table, or pass --config PATH.",
        tried.join(" and ")
    )))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::profile::SecretRef;

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
        assert_eq!(p.api_version, validate::DEFAULT_API_VERSION);
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
}
