//! `sfkeep login --jwt | --client-credentials | --password | --soap | --sfdx-url URL | --web |
//! --device`: obtain a token with that grant and store it under the profile's store key, where
//! `sfkeep token` (and every process sharing the store) finds it. Never prints a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use sfkeep::clock::{ServerClock, SystemClock};
use sfkeep::grant::{TokenEndpoint, TokenResponse, authorization_code, device, introspect};
use sfkeep::secret::ClientSecret;
use sfkeep::store::{CasOutcome, Store};
use sfkeep::token::{self, ExpirySource, GrantKind, TokenRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::{GrantName, Profile, StoreConfig};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::output::print_line;
use crate::session::{self, Globals};

/// `sfkeep login` arguments: exactly one method.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("method")
        .required(true)
        .args(["web", "device", "jwt", "client_credentials", "password", "soap", "sfdx_url"])
))]
pub struct LoginArgs {
    /// Authorization code + PKCE in a browser, with a callback on 127.0.0.1.
    #[arg(long)]
    web: bool,
    /// Device flow: enter a code on another device; sfkeep polls.
    #[arg(long)]
    device: bool,
    /// JWT bearer with the profile's `jwt_key`.
    #[arg(long)]
    jwt: bool,
    /// Client credentials (the connected app's run-as user).
    #[arg(long)]
    client_credentials: bool,
    /// Legacy OAuth username-password flow.
    #[arg(long)]
    password: bool,
    /// Legacy SOAP login() (retired from API v65; prefer OAuth).
    #[arg(long)]
    soap: bool,
    /// An sfdx auth URL (force://clientId:clientSecret:refreshToken@instance), or `-` to read
    /// it from stdin and keep it out of the process list.
    #[arg(long, value_name = "URL")]
    sfdx_url: Option<String>,
    /// --web: callback port on 127.0.0.1; the connected app's callback URL must be
    /// http://127.0.0.1:PORT/OauthRedirect (0: any free port).
    #[arg(long, default_value_t = 1717, value_name = "PORT")]
    port: u16,
    /// --web: print the URL only, do not try to open a browser.
    #[arg(long)]
    no_browser: bool,
    /// --web / --device: give up after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,
    /// --web / --device: the OAuth scopes to ask for.
    #[arg(long, default_value = "api refresh_token")]
    scope: String,
}

/// Logs in with the chosen method and stores the token.
pub async fn run(g: &Globals, a: LoginArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    if (a.web || a.device || a.sfdx_url.is_some()) && matches!(p.store, StoreConfig::Memory) {
        // The refresh token is what these logins produce, and nothing else holds it: with a
        // memory store it would die with this process while staying valid at Salesforce.
        return Err(CliError::usage(format!(
            "{} keeps tokens in memory, so the refresh token from this login would be lost when sfkeep exits (and stay valid at Salesforce). Give the profile a persistent store first: in {} add `[profiles.{}.store]` with `kind = \"file\"`, `path = \"…/tokens.enc\"` and `key_file = \"…/cache.key\"` (32 random bytes, base64, mode 0600; or set SFKEEP_CACHE_KEY), or `kind = \"redis\"`.",
            p.describe(),
            p.config_path.display(),
            p.name
        )));
    }
    let store = session::open_store(&p)?;
    let rec = if a.web {
        web(&p, &a, store.as_ref()).await?
    } else if a.device {
        device_flow(&p, &a, store.as_ref()).await?
    } else if let Some(url) = &a.sfdx_url {
        sfdx(&p, url, store.as_ref()).await?
    } else {
        let name = if a.jwt {
            GrantName::JwtBearer
        } else if a.client_credentials {
            GrantName::ClientCredentials
        } else if a.password {
            GrantName::Password
        } else {
            warn_soap(&p);
            GrantName::SoapLogin
        };
        let grant = session::build_grant(&p, name, store.as_ref()).await?;
        let m = session::manager_with(&p, grant, None, Arc::clone(&store))?;
        let t = m.force_refresh().await.map_err(|e| {
            CliError::from_sfkeep(
                &e,
                &format!("login with {} failed for {}", name.as_str(), p.describe()),
            )
        })?;
        t.record().clone()
    };
    report(&p, &rec)?;
    Ok(Exit::Ok)
}

fn warn_soap(p: &Profile) {
    eprintln!(
        "sfkeep: warning: SOAP login() is legacy: Salesforce retires it from API version 65.0 (profile `{}` uses {}), and it needs the user's password and security token on this machine. Move to OAuth: a connected app with the JWT bearer grant (`grant = \"jwt_bearer\"`, `jwt_key = {{ file = \"…\" }}`) needs no password and no refresh token; `sfkeep login --web` gets a refresh token once. `sfkeep proxy` can answer SOAP login() locally so the integration keeps working unchanged.",
        p.name, p.api_version
    );
}

fn report(p: &Profile, rec: &TokenRecord) -> CliResult<()> {
    let now = rec.server_now(sfkeep::clock::Clock::now(&SystemClock));
    let secs = rec.remaining_at(now).as_secs();
    print_line(&format!(
        "Logged in: {} with {}; instance {}; generation {}, token fingerprint {}, valid for about {}m; stored in {}.",
        p.describe(),
        rec.grant.as_str(),
        rec.instance_url,
        rec.generation,
        rec.fingerprint(),
        secs / 60,
        session::describe_store(p)
    ))
}

fn endpoint(login_url: &str, p: &Profile) -> CliResult<TokenEndpoint> {
    TokenEndpoint::new(login_url, ServerClock::new(Arc::new(SystemClock)))
        .map_err(|e| CliError::from_sfkeep(&e, &format!("setting up {}", p.describe())))
}

fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// Turns a token response obtained outside the manager (web, device, sfdx) into a record and
/// writes it with compare-and-set under the profile's key.
async fn store_response(
    p: &Profile,
    store: &dyn Store,
    ep: &TokenEndpoint,
    resp: TokenResponse,
    grant: GrantKind,
    client_id: &str,
    client_secret: Option<&ClientSecret>,
) -> CliResult<TokenRecord> {
    let now = ep.clock().now();
    let issued_at = resp
        .issued_at
        .unwrap_or(now)
        .min(now)
        .max(now.minus(Duration::from_secs(60)));
    let mut expires_at =
        issued_at.plus(p.session_timeout.unwrap_or(token::DEFAULT_SESSION_TIMEOUT));
    let mut source = ExpirySource::Configured;
    if let Some(secs) = resp.session_seconds_valid {
        expires_at = issued_at.plus(Duration::from_secs(secs));
        source = ExpirySource::SoapSessionSecondsValid;
    } else if let Some(secret) = client_secret
        && let Ok(introspect::Introspection::Active { exp: Some(exp) }) =
            introspect::access_token(ep, client_id, secret, &resp.access_token).await
        && exp > now
    {
        expires_at = exp;
        source = ExpirySource::Introspection;
    }
    let key = session::store_key(p);
    let context = format!("cannot store the new token of {}", p.describe());
    let mut expected = store
        .load(&key)
        .await
        .map_err(|e| CliError::from_sfkeep(&e, &context))?
        .map(|r| r.generation);
    let mut rec = TokenRecord {
        access_token: resp.access_token,
        refresh_token: resp.refresh_token,
        instance_url: resp.instance_url,
        id_url: resp.id,
        scope: resp.scope,
        issued_at,
        expires_at,
        refresh_at: token::refresh_at(issued_at, expires_at, jitter()),
        expiry_source: source,
        generation: 0,
        grant,
        refused_refresh_token: None,
        server_offset_ms: ep.clock().offset(),
    };
    for _ in 0..3 {
        rec.generation = expected.unwrap_or(0) + 1;
        match store
            .compare_and_set(&key, expected, &rec)
            .await
            .map_err(|e| CliError::from_sfkeep(&e, &context))?
        {
            CasOutcome::Written => return Ok(rec),
            CasOutcome::Conflict(other) => expected = other.map(|r| r.generation),
        }
    }
    Err(CliError::store(format!(
        "{context}: other processes kept writing the same store key. Retry."
    )))
}

async fn sfdx(p: &Profile, raw: &str, store: &dyn Store) -> CliResult<TokenRecord> {
    let raw = if raw == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
            CliError::usage(format!("cannot read the sfdx auth URL from stdin: {e}."))
        })?;
        zeroize::Zeroizing::new(s)
    } else {
        zeroize::Zeroizing::new(raw.to_owned())
    };
    let auth = crate::config::parse_sfdx_url(&raw)?;
    if p.client_id.as_deref() != Some(auth.client_id.as_str())
        || p.login_url.trim_end_matches('/') != auth.login_url
        || p.grant != GrantName::RefreshToken
    {
        eprintln!(
            "sfkeep: note: later refreshes use the profile's settings. For them to use this login, set in [profiles.{}] of {}: grant = \"refresh_token\", login_url = \"{}\", client_id = \"{}\"{}, and no refresh_token (the stored one is used).",
            p.name,
            p.config_path.display(),
            auth.login_url,
            auth.client_id,
            if auth.client_secret.is_some() {
                ", client_secret = { env = \"…\" } (the URL carries one)"
            } else {
                ""
            }
        );
    }
    let ep = endpoint(&auth.login_url, p)?;
    let resp = sfkeep::grant::refresh_token::request(
        &ep,
        &auth.client_id,
        auth.client_secret.as_ref(),
        &auth.refresh_token,
    )
    .await
    .map_err(|e| {
        CliError::from_sfkeep(
            &e,
            &format!("login with the sfdx auth URL failed for {}", p.describe()),
        )
    })?;
    // Salesforce returns no refresh token on a refresh without rotation: keep the URL's.
    let resp = TokenResponse {
        refresh_token: resp
            .refresh_token
            .clone()
            .or_else(|| Some(auth.refresh_token.clone())),
        ..resp
    };
    store_response(
        p,
        store,
        &ep,
        resp,
        GrantKind::RefreshToken,
        &auth.client_id,
        auth.client_secret.as_ref(),
    )
    .await
}

fn client_secret(p: &Profile) -> CliResult<Option<ClientSecret>> {
    Ok(p.optional_secret(&p.client_secret, "client_secret")?
        .map(|s| ClientSecret::new(s.as_str())))
}

async fn device_flow(p: &Profile, a: &LoginArgs, store: &dyn Store) -> CliResult<TokenRecord> {
    let client_id = p
        .require(&p.client_id, "client_id", "the device flow")?
        .to_owned();
    let ep = endpoint(&p.login_url, p)?;
    let context = format!("device login failed for {}", p.describe());
    let auth = device::start(&ep, &client_id, &a.scope)
        .await
        .map_err(|e| CliError::from_sfkeep(&e, &context))?;
    eprintln!(
        "To log in, open {} on any device and enter the code {} (waiting up to {}s).",
        auth.verification_uri, auth.user_code, a.timeout
    );
    let interval = Duration::from_secs(auth.interval.max(1));
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    loop {
        if let Some(resp) = device::poll(&ep, &client_id, &auth.device_code)
            .await
            .map_err(|e| CliError::from_sfkeep(&e, &context))?
        {
            let secret = client_secret(p)?;
            return store_response(
                p,
                store,
                &ep,
                resp,
                GrantKind::Device,
                &client_id,
                secret.as_ref(),
            )
            .await;
        }
        if Instant::now() + interval > deadline {
            return Err(CliError::reauth(format!(
                "{context}: nobody approved the code {} within {}s. Run `sfkeep login --device` again (or raise --timeout).",
                auth.user_code, a.timeout
            )));
        }
        tokio::time::sleep(interval).await;
    }
}

async fn web(p: &Profile, a: &LoginArgs, store: &dyn Store) -> CliResult<TokenRecord> {
    let client_id = p
        .require(&p.client_id, "client_id", "the web login")?
        .to_owned();
    let secret = client_secret(p)?;
    let ep = endpoint(&p.login_url, p)?;
    let listener = TcpListener::bind(("127.0.0.1", a.port)).await.map_err(|e| {
        CliError::usage(format!(
            "cannot listen for the login callback on 127.0.0.1:{}: {e}. Free the port or pass --port (it must match the connected app's callback URL).",
            a.port
        ))
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::unexpected(format!("cannot read the callback address: {e}.")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/OauthRedirect");
    let verifier = authorization_code::PkceVerifier::generate();
    let state = authorization_code::PkceVerifier::generate()
        .expose_secret()
        .chars()
        .take(24)
        .collect::<String>();
    let url = authorization_code::authorize_url(
        &ep,
        &client_id,
        &redirect_uri,
        &a.scope,
        &state,
        &verifier,
    );
    eprintln!(
        "Open this URL in a browser to log in (waiting up to {}s):\n  {url}",
        a.timeout
    );
    if !a.no_browser {
        open_browser(&url);
    }
    let context = format!("web login failed for {}", p.describe());
    let code = tokio::time::timeout(
        Duration::from_secs(a.timeout),
        wait_for_code(&listener, &state),
    )
    .await
    .map_err(|_| {
        CliError::reauth(format!(
            "{context}: no browser came back to {redirect_uri} within {}s. Run `sfkeep login --web` again.",
            a.timeout
        ))
    })?
    .map_err(|m| CliError::reauth(format!("{context}: {m}")))?;
    let code = zeroize::Zeroizing::new(code);
    let resp = authorization_code::exchange(
        &ep,
        &client_id,
        secret.as_ref(),
        &code,
        &redirect_uri,
        &verifier,
    )
    .await
    .map_err(|e| CliError::from_sfkeep(&e, &context))?;
    store_response(
        p,
        store,
        &ep,
        resp,
        GrantKind::AuthorizationCode,
        &client_id,
        secret.as_ref(),
    )
    .await
}

/// Opens `url` with `xdg-open` (or `open` on macOS) when one exists; never fails the login.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(opener).is_file()))
        .unwrap_or(false);
    if !found {
        return;
    }
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Serves the callback until a request with the right `state` brings a code (or an error).
async fn wait_for_code(listener: &TcpListener, state: &str) -> Result<String, String> {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/OauthRedirect" {
            respond(&mut conn, "404 Not Found", "Not the sfkeep login callback.").await;
            continue;
        }
        let params: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        if params.get("state").map(String::as_str) != Some(state) {
            respond(
                &mut conn,
                "400 Bad Request",
                "This login callback does not belong to the running `sfkeep login --web` (state mismatch); ignored.",
            )
            .await;
            continue;
        }
        if let Some(err) = params.get("error") {
            let desc = params
                .get("error_description")
                .map(|d| sfkeep::error::redacted_snippet(d.as_bytes()))
                .unwrap_or_default();
            respond(
                &mut conn,
                "200 OK",
                "Login failed; see the terminal for what to do.",
            )
            .await;
            let cause = sfkeep::diagnose::token_error::classify_oauth_error(err, &desc);
            return Err(format!(
                "the org refused the login: {err} {desc}. {}",
                cause.fix()
            ));
        }
        match params.get("code") {
            Some(code) if !code.is_empty() => {
                respond(
                    &mut conn,
                    "200 OK",
                    "sfkeep is logged in. You can close this tab.",
                )
                .await;
                return Ok(code.clone());
            }
            _ => {
                respond(&mut conn, "400 Bad Request", "No authorization code.").await;
            }
        }
    }
}

async fn respond(conn: &mut tokio::net::TcpStream, status: &str, text: &str) {
    let body = format!(
        "<!doctype html><html><head><title>sfkeep</title></head><body><p>{text}</p></body></html>"
    );
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}
