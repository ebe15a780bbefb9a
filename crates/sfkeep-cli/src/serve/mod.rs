//! `sfkeep serve`: the guardian. One long-running process for one or more profiles that keeps
//! their refresh tokens alive, forecasts the deaths that come on a schedule, tells a person
//! (webhooks) when only a person can act, and serves what it knows on a loopback listener:
//! `/healthz`, `/metrics`, `/api/v1/status`, `/api/v1/events` and the status page at `/`.
//!
//! ```text
//! sfkeep serve [--profile NAME]... [--listen ADDR] [--webhook URL]... [--proxy [PROFILE=]LISTEN]
//! ```
//!
//! When ready it prints one JSON line naming its listen address:
//! `{"listen":"127.0.0.1:8788","url":"http://127.0.0.1:8788","profiles":["prod"],"proxies":{"prod":"http://127.0.0.1:8787"}}`.
//! SIGTERM or Ctrl-C stops it gracefully; SIGHUP re-reads the config file (`[serve]` and the
//! profiles' guardian keys). The facts the forecasts rely on, with their sources, are in
//! docs/guardian.md.
//!
//! Modules, one concept each: [`settings`] (config and flags), [`guardian`] (the watches and
//! their checks), [`keepalive`], [`forecast`] (with [`orgfacts`] and [`cert`] as inputs),
//! [`death_causes`] (why each death on the timeline happened),
//! [`alerts`] (incidents) and [`webhook`] (delivery), [`patterns`], and the listener: [`api`],
//! [`access`], [`metrics`], [`page`].

pub mod access;
pub mod alerts;
pub mod api;
pub mod cert;
pub mod death_causes;
pub mod forecast;
pub mod guardian;
pub mod keepalive;
pub mod metrics;
pub mod orgfacts;
pub mod page;
pub mod patterns;
pub mod report;
pub mod settings;
pub mod webhook;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sfkeep_proxy::{ClientKey, Proxy};

use crate::config::{Config, Profile};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::Globals;
use settings::{ProxySpec, ServeFlags, ServeSettings};

/// The shortest client key accepted (as for the proxy).
const MIN_CLIENT_KEY_CHARS: usize = 16;

/// `sfkeep serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the status listener listens (default 127.0.0.1:8788). Off loopback it needs
    /// --client-key-env.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Send alerts to this http(s) URL as JSON; prefix `slack+` for Slack's `{"text": …}`
    /// form. Repeatable.
    #[arg(long, value_name = "URL")]
    pub webhook: Vec<String>,
    /// Run the auth-injecting proxy for a profile in the same process, on the same token
    /// manager: `[PROFILE=]LISTEN`. Repeatable.
    #[arg(long, value_name = "[PROFILE=]LISTEN")]
    pub proxy: Vec<ProxySpec>,
    /// The environment variable holding the client key every client of the listener (and of
    /// the proxies) presents.
    #[arg(long, value_name = "ENV_VAR")]
    pub client_key_env: Option<String>,
    /// How often the cheap checks run (token probe, keep-alive, forecasts): `90s`, `5m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub check_interval: Option<Duration>,
    /// How often the org's evidence is read (OauthToken, User, LoginHistory, limits).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub org_check_interval: Option<Duration>,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    settings::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{s}` is not a duration like 500ms, 90s or 5m"))
}

fn load(g: &Globals) -> CliResult<Config> {
    let path = crate::config::locate(g.config.as_deref())?;
    Config::load(&path)
}

fn resolve(
    g: &Globals,
    config: &Config,
    a: &ServeArgs,
) -> CliResult<(ServeSettings, Vec<Profile>)> {
    // `--profile` (repeatable), else `[serve] profiles`, else `default`.
    let mut profiles = g.profiles.clone();
    if profiles.is_empty()
        && config
            .serve
            .as_ref()
            .is_none_or(|t| !t.contains_key("profiles"))
    {
        profiles.push(crate::config::DEFAULT_PROFILE.to_owned());
    }
    let flags = ServeFlags {
        profiles,
        listen: a.listen,
        webhooks: a.webhook.clone(),
        proxies: a.proxy.clone(),
        client_key_env: a.client_key_env.clone(),
        check_interval: a.check_interval,
        org_check_interval: a.org_check_interval,
    };
    let s = ServeSettings::resolve(config.serve.as_ref(), &config.path, flags)?;
    if s.profiles.is_empty() {
        return Err(CliError::usage(format!(
            "sfkeep serve has no profile to watch: pass --profile NAME or set `profiles = [\"NAME\"]` under [serve] in {}.",
            config.path.display()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for name in &s.profiles {
        if seen.insert(name.clone()) {
            out.push(config.profile(name)?.clone());
        }
    }
    for p in &s.proxies {
        match &p.profile {
            None if out.len() != 1 => {
                return Err(CliError::usage(format!(
                    "--proxy {} names no profile, and sfkeep serve watches {}: write --proxy PROFILE={}.",
                    p.listen,
                    out.len(),
                    p.listen
                )));
            }
            Some(name) if !out.iter().any(|q| &q.name == name) => {
                return Err(CliError::usage(format!(
                    "--proxy {name}={} names a profile sfkeep serve does not watch; add --profile {name}.",
                    p.listen
                )));
            }
            _ => {}
        }
    }
    Ok((s, out))
}

fn client_key(var: Option<&str>) -> CliResult<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    let key = std::env::var(var).map_err(|_| {
        CliError::usage(format!(
            "the client key variable `{var}` is not set; export the key in it (e.g. `export {var}=$(openssl rand -base64 24)`)."
        ))
    })?;
    let key = key.trim().to_owned();
    if key.chars().count() < MIN_CLIENT_KEY_CHARS {
        return Err(CliError::usage(format!(
            "the client key in `{var}` has {} characters; use at least {MIN_CLIENT_KEY_CHARS} random ones.",
            key.chars().count()
        )));
    }
    Ok(Some(key))
}

/// Runs the guardian until SIGTERM / Ctrl-C.
pub async fn run(g: &Globals, a: ServeArgs) -> CliResult<Exit> {
    let config = load(g)?;
    let (settings, profiles) = resolve(g, &config, &a)?;
    let key = client_key(settings.client_key_env.as_deref())?;
    if !settings.listen.ip().is_loopback() && key.is_none() {
        return Err(CliError::usage(format!(
            "cannot listen on {} without a client key: off loopback, clients must present one. Put a random key in an environment variable and name it with --client-key-env VAR (or `client_key_env` under [serve]).",
            settings.listen
        )));
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}.", settings.listen)))?;
    let listen = listener
        .local_addr()
        .map_err(|e| CliError::unexpected(format!("the listener has no address: {e}.")))?;
    let proxies_wanted = settings.proxies.clone();
    let (guardian, receivers) =
        guardian::Guardian::build(settings, config.path.clone(), profiles).await?;

    // Proxies on the same managers.
    let mut proxies = Vec::new();
    let mut proxy_urls = BTreeMap::new();
    for spec in &proxies_wanted {
        let w = match &spec.profile {
            Some(n) => guardian.watches.iter().find(|w| &w.name == n),
            None => guardian.watches.first(),
        }
        .ok_or_else(|| CliError::usage("--proxy names a profile that is not watched."))?;
        let p = guardian.profile(w);
        let handle = Proxy::builder(w.manager.clone())
            .listen(spec.listen)
            .client_key(key.clone().map(ClientKey::new))
            .expected_username(p.username.clone())
            .health_store(Some(std::sync::Arc::clone(w.store())))
            .build()
            .map_err(|e| match e {
                sfkeep_proxy::BuildError::ClientKeyRequired(addr) => CliError::usage(format!(
                    "cannot run the proxy on {addr} without a client key: set --client-key-env VAR."
                )),
                e => CliError::usage(format!("cannot start the proxy: {e}.")),
            })?
            .spawn()
            .await
            .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}.", spec.listen)))?;
        proxy_urls.insert(w.name.clone(), handle.url().to_owned());
        proxies.push(handle);
    }

    guardian.spawn(receivers);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = api::router(Arc::clone(&guardian), key);
    let server = tokio::spawn(api::serve(listener, router, async move {
        let _ = stop_rx.await;
    }));
    ready_line(&serde_json::json!({
        "listen": listen.to_string(),
        "url": format!("http://{listen}"),
        "profiles": guardian.watches.iter().map(|w| w.name.clone()).collect::<Vec<_>>(),
        "proxies": proxy_urls,
    }))?;
    wait_for_stop(g, &guardian, &a).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    for p in proxies {
        p.shutdown().await;
    }
    Ok(Exit::Ok)
}

/// Prints the one ready line and flushes it (a supervisor reads it to learn the address).
fn ready_line(v: &serde_json::Value) -> CliResult<()> {
    use std::io::Write;
    if crate::output::json() {
        // With --json every line on stdout is an envelope; the ready object is its result.
        return crate::output::emit(v.clone());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")
        .and_then(|_| out.flush())
        .map_err(|e| CliError::unexpected(format!("cannot write the ready line: {e}.")))
}

/// Waits for SIGTERM or Ctrl-C; SIGHUP reloads the config meanwhile.
async fn wait_for_stop(g: &Globals, guardian: &Arc<guardian::Guardian>, a: &ServeArgs) {
    crate::signals::until_stopped(|| async {
        match load(g).and_then(|c| resolve(g, &c, a)) {
            Ok((s, profiles)) => {
                for note in guardian.reload(s, &profiles) {
                    eprintln!("sfkeep serve: SIGHUP: {note}");
                }
                eprintln!("sfkeep serve: SIGHUP: configuration reloaded");
            }
            Err(e) => eprintln!(
                "sfkeep serve: SIGHUP: the configuration was not reloaded: {}",
                e.message
            ),
        }
    })
    .await;
}
