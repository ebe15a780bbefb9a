//! `sfkeep proxy [--listen 127.0.0.1:PORT] [--client-key-env VAR] [--tls]`: the auth-injecting
//! reverse proxy on loopback, for integrations in any language. Prints one JSON ready line
//! (`{"url": …}`, plus `"ca"` with `--tls`), serves until SIGINT/SIGTERM, and re-authenticates
//! on SIGHUP (as `sfkeep recover` does through `POST /_sfkeep/reload`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use sfkeep_proxy::{ClientKey, LocalCa, Proxy};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};

/// The shortest client key accepted.
const MIN_CLIENT_KEY_CHARS: usize = 16;

/// `sfkeep proxy` arguments.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where to listen. Anything but loopback requires --client-key-env.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// A key every client must present (`Authorization: Bearer KEY`, or as the password of a
    /// shimmed login). Read from the environment variable named here, never from the command
    /// line, so it stays out of the process list.
    #[arg(long, value_name = "ENV_VAR")]
    pub client_key_env: Option<String>,
    /// Request bodies up to this many bytes are kept for one replay after a session death.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_replay_body: usize,
    /// A web origin (`scheme://host[:port]`) whose pages may use the proxy. By default every
    /// request a browser makes for a page (it carries `Origin` or a cross-site
    /// `Sec-Fetch-Site`) is refused. Repeatable.
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// The most client connections open at once; past it a new connection gets a 503.
    #[arg(long, default_value_t = sfkeep_proxy::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Serve HTTPS on loopback, with a certificate from a CA made on this machine (kept in
    /// --tls-dir, 0600, and valid only for loopback names). Point https-only clients at its
    /// `ca.pem` (REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS); the ready line names it.
    #[arg(long)]
    pub tls: bool,
    /// Where the local CA lives with --tls [default: $XDG_STATE_HOME/sfkeep/proxy-ca].
    #[arg(long, value_name = "DIR", requires = "tls")]
    pub tls_dir: Option<PathBuf>,
}

/// Runs the proxy until a stop signal.
pub async fn run(g: &Globals, a: ProxyArgs) -> CliResult<Exit> {
    let profile = session::load_profile(g)?;
    let (manager, store) = session::manager(&profile).await?;
    let key = match &a.client_key_env {
        None => None,
        Some(var) => {
            let key = std::env::var(var).map_err(|_| {
                CliError::usage(format!(
                    "--client-key-env names `{var}`, which is not set; export the key in it."
                ))
            })?;
            // Anyone who can reach the port and guess the key acts as the integration user.
            if key.chars().count() < MIN_CLIENT_KEY_CHARS {
                return Err(CliError::usage(format!(
                    "the client key in `{var}` has {} characters; use at least {MIN_CLIENT_KEY_CHARS} random ones, e.g. `export {var}=$(openssl rand -base64 24)`.",
                    key.chars().count()
                )));
            }
            Some(ClientKey::new(key))
        }
    };
    let mut guard = sfkeep_proxy::BrowserGuard::new();
    for origin in &a.allow_origin {
        guard = guard
            .allow_origin(origin)
            .map_err(|e| CliError::usage(format!("--allow-origin: {e}.")))?;
    }
    // Get a token first: a proxy that cannot authenticate should say so now, not on the first call.
    manager.token().await.map_err(|e| {
        session::grant_error(
            &profile,
            &e,
            &format!("starting the proxy for {}", profile.describe()),
        )
    })?;
    let ca = if a.tls {
        let dir = a
            .tls_dir
            .clone()
            .unwrap_or_else(|| crate::audit::state_dir().join("sfkeep").join("proxy-ca"));
        Some(LocalCa::load_or_create(&dir).map_err(|e| CliError::usage(format!("--tls: {e}.")))?)
    } else {
        None
    };
    let ca_path = ca.as_ref().map(LocalCa::cert_path);
    let proxy = Proxy::builder(manager.clone())
        .listen(a.listen)
        .client_key(key)
        .max_replay_body(a.max_replay_body)
        .max_connections(a.max_connections)
        .browser_guard(guard)
        .expected_username(profile.username.clone())
        .tls(ca)
        .health_store(Some(store))
        .build()
        .map_err(|e| match e {
            sfkeep_proxy::BuildError::ClientKeyRequired(addr) => CliError::usage(format!(
                "cannot listen on {addr} without a client key: off loopback, clients must present one. Put a random key in an environment variable and name it with --client-key-env VAR (e.g. `export SFKEEP_PROXY_KEY=$(openssl rand -base64 24)` and `--client-key-env SFKEEP_PROXY_KEY`)."
            )),
            e => CliError::usage(format!("cannot start the proxy: {e}.")),
        })?;
    let reload = manager.clone();
    let stop = crate::signals::until_stopped(move || {
        let reload = reload.clone();
        async move {
            match reload.force_refresh().await {
                Ok(_) => eprintln!("sfkeep proxy: SIGHUP: re-authenticated"),
                Err(e) => eprintln!("sfkeep proxy: SIGHUP: re-authentication failed: {e}"),
            }
        }
    });
    proxy
        .run(
            |addr| {
                let ready = match &ca_path {
                    None => serde_json::json!({"url": format!("http://{addr}")}),
                    Some(ca) => serde_json::json!({
                        "url": format!("https://{addr}"),
                        "ca": ca.display().to_string(),
                    }),
                };
                let _ = if crate::output::json() {
                    crate::output::emit(ready)
                } else {
                    crate::output::print_line(&ready.to_string())
                };
            },
            stop,
        )
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}.", a.listen)))?;
    Ok(Exit::Ok)
}
