//! The logins a person completes elsewhere: `--web` (authorization code with PKCE, a callback
//! on 127.0.0.1) and `--device` (a code entered on another device while sfkeep polls).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sfkeep::grant::{authorization_code, device};
use sfkeep::secret::ClientSecret;
use sfkeep::store::Store;
use sfkeep::token::{GrantKind, TokenRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::commands::login::LoginArgs;
use crate::commands::login::stored::{endpoint, store_response};
use crate::config::Profile;
use crate::error::{CliError, CliResult};

fn client_secret(p: &Profile) -> CliResult<Option<ClientSecret>> {
    Ok(p.optional_secret(&p.client_secret, "client_secret")?
        .map(|s| ClientSecret::new(s.as_str())))
}

pub async fn device_flow(p: &Profile, a: &LoginArgs, store: &dyn Store) -> CliResult<TokenRecord> {
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

pub async fn web(p: &Profile, a: &LoginArgs, store: &dyn Store) -> CliResult<TokenRecord> {
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
    // Salesforce pre-fills its login page with `login_hint`: the person is led to sign in as
    // the profile's user (whom `store_response` then checks).
    let url = match (&p.username, url::Url::parse(&url)) {
        (Some(user), Ok(mut u)) => {
            u.query_pairs_mut().append_pair("login_hint", user);
            String::from(u)
        }
        _ => url,
    };
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
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
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
