//! The guardian's settings: the `[serve]` section of the config file (merged with the command
//! line) and the per-profile keys the forecasts and the keep-alive read.
//!
//! ```toml
//! [serve]
//! profiles = ["prod", "sandbox"]          # --profile NAME (repeatable) wins
//! listen = "127.0.0.1:8788"               # --listen; off loopback needs client_key_env
//! client_key_env = "SFKEEP_SERVE_KEY"     # a key every client presents (Authorization: Bearer KEY)
//! webhooks = ["https://hooks.example.com/sfkeep", { url = "https://hooks.slack.com/services/…", format = "slack" }]
//! proxy = ["prod=127.0.0.1:8787"]         # --proxy [PROFILE=]LISTEN: the proxy in the same process
//! check_interval = "5m"                   # cheap checks: token probe, keep-alive, forecasts
//! org_check_interval = "6h"               # SOQL evidence: OauthToken, User, LoginHistory, limits
//! keep_alive_margin = "3d"                # default: a tenth of the idle TTL
//! forecast_thresholds = ["14d", "3d", "1d"]
//! api_usage_thresholds = [80, 95]         # percent of the daily API request limit
//!
//! [profiles.prod]
//! refresh_token_idle_ttl = "30d"          # the app's "expire if not used for"; default 30 days
//! refresh_token_max_age = "90d"           # the app's "expire refresh token after"
//! refresh_token_expires_at = "2027-03-01T00:00:00Z"   # or the date itself
//! keep_alive = true                       # refresh before the idle TTL runs out (default on)
//! jwt_cert = "/etc/sfkeep/jwt.crt"        # the certificate uploaded to the connected app
//! password_max_age = "90d"                # the org's "User passwords expire in" ("never": off)
//! app_name = "Billing Sync"               # the connected app's name as OauthToken.AppName shows it
//! ```
//!
//! Durations are `90s`, `15m`, `12h`, `30d` (or a whole number of seconds). Errors name the
//! file and the key; nothing here is secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sfkeep::clock::UnixMillis;
use toml::Value;

use crate::error::{CliError, CliResult};

/// Keys of the `[serve]` section.
pub const SERVE_KEYS: &[&str] = &[
    "profiles",
    "listen",
    "client_key_env",
    "webhooks",
    "proxy",
    "check_interval",
    "org_check_interval",
    "keep_alive_margin",
    "forecast_thresholds",
    "api_usage_thresholds",
];

/// Salesforce's idle-TTL limit ("Expire refresh token if not used for 30 days"), assumed when a
/// refresh-token profile names none (see docs/guardian.md).
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Where `sfkeep serve` listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8788";
/// How often the cheap checks run by default.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// How often the SOQL evidence is read by default.
pub const DEFAULT_ORG_CHECK_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Forecast alert thresholds by default: 14, 3 and 1 day(s) before.
pub const DEFAULT_FORECAST_THRESHOLDS: [Duration; 3] = [
    Duration::from_secs(14 * 86_400),
    Duration::from_secs(3 * 86_400),
    Duration::from_secs(86_400),
];
/// API usage alert thresholds by default, in percent of the daily limit.
pub const DEFAULT_API_USAGE_THRESHOLDS: [u8; 2] = [80, 95];

/// The org's password expiry policy as the profile states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// "User passwords expire in" this long.
    ExpiresAfter(Duration),
    /// "Never expires" (or the user has "Password Never Expires").
    Never,
}

/// The guardian's keys of one profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileGuardian {
    /// `refresh_token_idle_ttl`: the app's idle TTL (default [`DEFAULT_IDLE_TTL`]).
    pub idle_ttl: Option<Duration>,
    /// `refresh_token_max_age`: the app's absolute refresh-token lifetime.
    pub max_age: Option<Duration>,
    /// `refresh_token_expires_at`: the absolute expiry itself.
    pub expires_at: Option<UnixMillis>,
    /// `keep_alive` (default on for refresh-token profiles).
    pub keep_alive: Option<bool>,
    /// `jwt_cert`: the certificate uploaded to the connected app.
    pub jwt_cert: Option<PathBuf>,
    /// `password_max_age`: the org's password expiry policy.
    pub password_policy: Option<PasswordPolicy>,
    /// `app_name`: the connected app's name in `OauthToken.AppName`.
    pub app_name: Option<String>,
}

impl ProfileGuardian {
    /// Parses the guardian keys of `[profiles.NAME]` (`t`), named `prefix` in messages.
    pub fn parse(t: &toml::Table, prefix: &str, config_path: &Path) -> CliResult<Self> {
        let r = Reader { config_path };
        let expires_at = match r.string(t, prefix, "refresh_token_expires_at")? {
            None => None,
            Some(s) => Some(parse_date(&s).ok_or_else(|| {
                r.err(
                    &format!("{prefix}.refresh_token_expires_at"),
                    format!("is `{s}`, not a date like \"2027-03-01T00:00:00Z\" (RFC 3339)."),
                )
            })?),
        };
        let password_policy = match t.get("password_max_age") {
            None => None,
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("never") => {
                Some(PasswordPolicy::Never)
            }
            Some(_) => r
                .duration(t, prefix, "password_max_age")?
                .map(PasswordPolicy::ExpiresAfter),
        };
        let keep_alive = match t.get("keep_alive") {
            None => None,
            Some(Value::Boolean(b)) => Some(*b),
            Some(v) => {
                return Err(r.err(
                    &format!("{prefix}.keep_alive"),
                    format!("must be true or false, found {}.", v.type_str()),
                ));
            }
        };
        Ok(Self {
            idle_ttl: r.duration(t, prefix, "refresh_token_idle_ttl")?,
            max_age: r.duration(t, prefix, "refresh_token_max_age")?,
            expires_at,
            keep_alive,
            jwt_cert: r
                .string(t, prefix, "jwt_cert")?
                .map(|s| crate::config::resolve_path(&s, config_path)),
            password_policy,
            app_name: r.string(t, prefix, "app_name")?,
        })
    }
}

/// Where a webhook's payload goes and in which form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTarget {
    /// http(s) URL (plain http only to loopback).
    pub url: url::Url,
    /// Payload form.
    pub format: WebhookFormat,
}

/// A webhook payload form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The alert as JSON (see `serve::alerts`).
    Json,
    /// `{"text": "…"}`, which Slack's (and Mattermost's, Teams') incoming webhooks accept.
    Slack,
}

/// `--proxy [PROFILE=]LISTEN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySpec {
    /// The profile it serves (`None`: the only one).
    pub profile: Option<String>,
    /// Where it listens.
    pub listen: SocketAddr,
}

impl std::str::FromStr for ProxySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (profile, addr) = match s.rsplit_once('=') {
            Some((p, a)) => (Some(p.trim().to_owned()), a),
            None => (None, s),
        };
        let listen = addr.trim().parse().map_err(|_| {
            format!(
                "`{s}` is not [PROFILE=]ADDRESS:PORT (e.g. 127.0.0.1:8787 or prod=127.0.0.1:8787)"
            )
        })?;
        Ok(Self { profile, listen })
    }
}

/// Everything `sfkeep serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    /// The profiles watched, in order.
    pub profiles: Vec<String>,
    /// The status listener.
    pub listen: SocketAddr,
    /// The environment variable holding the client key.
    pub client_key_env: Option<String>,
    /// Alert receivers.
    pub webhooks: Vec<WebhookTarget>,
    /// Proxies run in the same process.
    pub proxies: Vec<ProxySpec>,
    /// Cheap checks.
    pub check_interval: Duration,
    /// SOQL evidence.
    pub org_check_interval: Duration,
    /// Keep-alive margin (`None`: a tenth of the idle TTL).
    pub keep_alive_margin: Option<Duration>,
    /// Forecast thresholds, largest first.
    pub forecast_thresholds: Vec<Duration>,
    /// API usage thresholds in percent, smallest first.
    pub api_usage_thresholds: Vec<u8>,
}

/// What the command line says (it wins over the file).
#[derive(Clone, Debug, Default)]
pub struct ServeFlags {
    /// `--profile` (repeatable).
    pub profiles: Vec<String>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--webhook` (repeatable).
    pub webhooks: Vec<String>,
    /// `--proxy` (repeatable).
    pub proxies: Vec<ProxySpec>,
    /// `--client-key-env`.
    pub client_key_env: Option<String>,
    /// `--check-interval`.
    pub check_interval: Option<Duration>,
    /// `--org-check-interval`.
    pub org_check_interval: Option<Duration>,
}

impl ServeSettings {
    /// Merges the `[serve]` table of `config_path` (if any) with `flags`.
    pub fn resolve(
        table: Option<&toml::Table>,
        config_path: &Path,
        flags: ServeFlags,
    ) -> CliResult<Self> {
        let empty = toml::Table::new();
        let t = table.unwrap_or(&empty);
        let r = Reader { config_path };
        r.check_keys(t)?;
        let profiles = if flags.profiles.is_empty() {
            r.string_list(t, "profiles")?.unwrap_or_default()
        } else {
            flags.profiles
        };
        let listen = match flags.listen {
            Some(l) => l,
            None => match r.string(t, "serve", "listen")? {
                Some(s) => s.parse().map_err(|_| {
                    r.err(
                        "serve.listen",
                        format!("is `{s}`, not an address like \"{DEFAULT_LISTEN}\"."),
                    )
                })?,
                None => DEFAULT_LISTEN.parse().expect("a valid default address"),
            },
        };
        let mut webhooks = Vec::new();
        if flags.webhooks.is_empty() {
            if let Some(v) = t.get("webhooks") {
                let Value::Array(items) = v else {
                    return Err(r.err("serve.webhooks", "must be a list of URLs or tables."));
                };
                for (i, item) in items.iter().enumerate() {
                    let key = format!("serve.webhooks[{i}]");
                    let (url, format) = match item {
                        Value::String(u) => (u.clone(), WebhookFormat::Json),
                        Value::Table(wt) => {
                            let url = r
                                .string(wt, &key, "url")?
                                .ok_or_else(|| r.err(&key, "needs `url = \"https://…\"`."))?;
                            let format = match r.string(wt, &key, "format")?.as_deref() {
                                None | Some("json") => WebhookFormat::Json,
                                Some("slack") => WebhookFormat::Slack,
                                Some(o) => {
                                    return Err(r.err(
                                        &format!("{key}.format"),
                                        format!("is `{o}`; expected \"json\" or \"slack\"."),
                                    ));
                                }
                            };
                            (url, format)
                        }
                        v => {
                            return Err(r.err(
                                &key,
                                format!("must be a URL or a table, found {}.", v.type_str()),
                            ));
                        }
                    };
                    webhooks.push(WebhookTarget {
                        url: webhook_url(&url).map_err(|e| r.err(&key, e))?,
                        format,
                    });
                }
            }
        } else {
            for w in &flags.webhooks {
                let (format, raw) = match w.strip_prefix("slack+") {
                    Some(rest) => (WebhookFormat::Slack, rest),
                    None => (WebhookFormat::Json, w.as_str()),
                };
                webhooks.push(WebhookTarget {
                    url: webhook_url(raw).map_err(|e| CliError::usage(format!("--webhook {e}")))?,
                    format,
                });
            }
        }
        let proxies = if flags.proxies.is_empty() {
            r.string_list(t, "proxy")?
                .unwrap_or_default()
                .iter()
                .map(|s| s.parse().map_err(|e: String| r.err("serve.proxy", e)))
                .collect::<CliResult<Vec<ProxySpec>>>()?
        } else {
            flags.proxies
        };
        let forecast_thresholds = match r.string_list(t, "forecast_thresholds")? {
            None => DEFAULT_FORECAST_THRESHOLDS.to_vec(),
            Some(v) => {
                let mut out = Vec::new();
                for s in v {
                    out.push(parse_duration(&s).ok_or_else(|| {
                        r.err(
                            "serve.forecast_thresholds",
                            format!("holds `{s}`, not a duration like \"14d\"."),
                        )
                    })?);
                }
                out
            }
        };
        let mut forecast_thresholds = forecast_thresholds;
        forecast_thresholds.sort_unstable_by(|a, b| b.cmp(a));
        forecast_thresholds.dedup();
        let mut api_usage_thresholds = match t.get("api_usage_thresholds") {
            None => DEFAULT_API_USAGE_THRESHOLDS.to_vec(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Integer(n) if (1..=100).contains(n) => Ok(*n as u8),
                    _ => Err(r.err(
                        "serve.api_usage_thresholds",
                        "must be a list of percentages from 1 to 100, e.g. [80, 95].",
                    )),
                })
                .collect::<CliResult<Vec<u8>>>()?,
            Some(_) => {
                return Err(r.err(
                    "serve.api_usage_thresholds",
                    "must be a list of percentages from 1 to 100, e.g. [80, 95].",
                ));
            }
        };
        api_usage_thresholds.sort_unstable();
        api_usage_thresholds.dedup();
        let check_interval = match flags.check_interval {
            Some(d) => d,
            None => r
                .duration(t, "serve", "check_interval")?
                .unwrap_or(DEFAULT_CHECK_INTERVAL),
        };
        let org_check_interval = match flags.org_check_interval {
            Some(d) => d,
            None => r
                .duration(t, "serve", "org_check_interval")?
                .unwrap_or(DEFAULT_ORG_CHECK_INTERVAL),
        };
        Ok(Self {
            profiles,
            listen,
            client_key_env: flags
                .client_key_env
                .or(r.string(t, "serve", "client_key_env")?),
            webhooks,
            proxies,
            check_interval: check_interval.max(Duration::from_millis(20)),
            org_check_interval,
            keep_alive_margin: r.duration(t, "serve", "keep_alive_margin")?,
            forecast_thresholds,
            api_usage_thresholds,
        })
    }

    /// The keep-alive margin for an idle TTL: the configured one, else a tenth of the TTL.
    pub fn margin_for(&self, ttl: Duration) -> Duration {
        self.keep_alive_margin.unwrap_or(ttl / 10).min(ttl / 2)
    }
}

/// Checks a webhook URL: http(s), plain http only to a loopback host, no credentials in it.
pub fn webhook_url(raw: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(raw.trim())
        .map_err(|e| format!("is not a URL ({e}); give an https:// address."))?;
    match u.scheme() {
        "https" => {}
        "http" => {
            let loopback = match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if !loopback {
                return Err(format!(
                    "`{}` uses plain http to a host that is not loopback; alerts leave the machine only over https.",
                    u.host_str().unwrap_or("")
                ));
            }
        }
        s => {
            return Err(format!(
                "has the scheme `{s}`; a webhook is an http(s) URL."
            ));
        }
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host.".to_owned());
    }
    Ok(u)
}

/// `90s`, `15m`, `12h`, `30d`, `1h30m`, or whole seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    let (mut total, mut num, mut any) = (0u64, String::new(), false);
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.saturating_add(num.parse::<u64>().ok()?.saturating_mul(unit));
        num.clear();
        any = true;
    }
    (any && num.is_empty()).then(|| Duration::from_secs(total))
}

/// An RFC 3339 date.
pub fn parse_date(s: &str) -> Option<UnixMillis> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(UnixMillis((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// Reads typed values with messages naming the file and key.
struct Reader<'a> {
    config_path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, key: &str, what: impl std::fmt::Display) -> CliError {
        CliError::usage(format!("{}: `{key}` {what}", self.config_path.display()))
    }

    fn check_keys(&self, t: &toml::Table) -> CliResult<()> {
        for k in t.keys() {
            if !SERVE_KEYS.contains(&k.as_str()) {
                let near = crate::config::suggest(k, SERVE_KEYS.iter().copied())
                    .map(|s| format!(" Did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(self.err(
                    &format!("serve.{k}"),
                    format!(
                        "is not a key of [serve].{near} Known keys there: {}.",
                        SERVE_KEYS.join(", ")
                    ),
                ));
            }
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

    fn string_list(&self, t: &toml::Table, key: &str) -> CliResult<Option<Vec<String>>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(self.err(
                        &format!("serve.{key}"),
                        format!("must be a list of strings, found a {}.", v.type_str()),
                    )),
                })
                .collect::<CliResult<Vec<String>>>()
                .map(Some),
            Some(v) => Err(self.err(
                &format!("serve.{key}"),
                format!("must be a list of strings, found {}.", v.type_str()),
            )),
        }
    }

    fn duration(&self, t: &toml::Table, prefix: &str, key: &str) -> CliResult<Option<Duration>> {
        let bad = |found: String| {
            self.err(
                &format!("{prefix}.{key}"),
                format!("is {found}, not a duration like \"30d\", \"12h\" or \"90s\"."),
            )
        };
        match t.get(key) {
            None => Ok(None),
            Some(Value::Integer(n)) if *n > 0 => Ok(Some(Duration::from_secs(*n as u64))),
            Some(Value::String(s)) => match parse_duration(s) {
                Some(d) if !d.is_zero() => Ok(Some(d)),
                _ => Err(bad(format!("`{s}`"))),
            },
            Some(v) => Err(bad(v.type_str().to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn profile_keys_parse() {
        let t = table(
            r#"
refresh_token_idle_ttl = "30d"
refresh_token_max_age = 7776000
refresh_token_expires_at = "2027-03-01T00:00:00Z"
keep_alive = false
jwt_cert = "certs/jwt.crt"
password_max_age = "never"
app_name = "Billing Sync"
"#,
        );
        let g = ProfileGuardian::parse(&t, "profiles.p", Path::new("/etc/sfkeep/s.toml")).unwrap();
        assert_eq!(g.idle_ttl, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(g.max_age, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(g.expires_at, Some(UnixMillis(1_803_859_200_000)));
        assert_eq!(g.keep_alive, Some(false));
        assert_eq!(g.jwt_cert, Some(PathBuf::from("/etc/sfkeep/certs/jwt.crt")));
        assert_eq!(g.password_policy, Some(PasswordPolicy::Never));
        assert_eq!(g.app_name.as_deref(), Some("Billing Sync"));
        assert_eq!(ProfileGuardian::default().idle_ttl, None);
    }

    #[test]
    fn bad_profile_keys_name_file_and_key() {
        for (text, key) in [
            (
                "refresh_token_idle_ttl = \"soon\"",
                "refresh_token_idle_ttl",
            ),
            (
                "refresh_token_expires_at = \"March\"",
                "refresh_token_expires_at",
            ),
            ("keep_alive = \"yes\"", "keep_alive"),
            ("password_max_age = -3", "password_max_age"),
        ] {
            let e = ProfileGuardian::parse(&table(text), "profiles.p", Path::new("/x.toml"))
                .unwrap_err();
            assert!(e.message.contains("/x.toml"), "{}", e.message);
            assert!(
                e.message.contains(&format!("profiles.p.{key}")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn serve_section_merges_with_flags() {
        let t = table(
            r#"
profiles = ["a", "b"]
listen = "127.0.0.1:9000"
webhooks = ["https://hooks.example.com/x", { url = "http://127.0.0.1:9/y", format = "slack" }]
proxy = "a=127.0.0.1:8787"
check_interval = "30s"
forecast_thresholds = ["1d", "14d"]
api_usage_thresholds = [95, 80]
"#,
        );
        let s =
            ServeSettings::resolve(Some(&t), Path::new("/c.toml"), ServeFlags::default()).unwrap();
        assert_eq!(s.profiles, ["a", "b"]);
        assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.webhooks.len(), 2);
        assert_eq!(s.webhooks[1].format, WebhookFormat::Slack);
        assert_eq!(s.proxies[0].profile.as_deref(), Some("a"));
        assert_eq!(s.check_interval, Duration::from_secs(30));
        assert_eq!(
            s.forecast_thresholds,
            [
                Duration::from_secs(14 * 86_400),
                Duration::from_secs(86_400)
            ]
        );
        assert_eq!(s.api_usage_thresholds, [80, 95]);
        assert_eq!(
            s.margin_for(DEFAULT_IDLE_TTL),
            Duration::from_secs(3 * 86_400)
        );

        let flags = ServeFlags {
            profiles: vec!["c".into()],
            webhooks: vec!["slack+https://hooks.example.com/z".into()],
            ..ServeFlags::default()
        };
        let s = ServeSettings::resolve(Some(&t), Path::new("/c.toml"), flags).unwrap();
        assert_eq!(s.profiles, ["c"]);
        assert_eq!(s.webhooks.len(), 1);
        assert_eq!(s.webhooks[0].format, WebhookFormat::Slack);
    }

    #[test]
    fn bad_webhooks_and_keys_are_refused() {
        for bad in [
            "ftp://example.com/x",
            "http://hooks.example.com/x",
            "not a url",
            "mailto:ops@example.com",
        ] {
            assert!(webhook_url(bad).is_err(), "{bad}");
        }
        assert!(webhook_url("http://127.0.0.1:9/x").is_ok());
        assert!(webhook_url("http://localhost:9/x").is_ok());
        let e = ServeSettings::resolve(
            Some(&table("webhook = []")),
            Path::new("/c.toml"),
            ServeFlags::default(),
        )
        .unwrap_err();
        assert!(
            e.message.contains("Did you mean `webhooks`?"),
            "{}",
            e.message
        );
        let e = ServeSettings::resolve(
            Some(&table("webhooks = [\"ftp://x/y\"]")),
            Path::new("/c.toml"),
            ServeFlags::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("serve.webhooks[0]"), "{}", e.message);
    }
}
