//! Tokens obtained outside a token manager (web, device, sfdx URL): made into a record and
//! written with compare-and-set under the profile's store key, where every command and every
//! process sharing the store finds them.

use std::sync::Arc;
use std::time::Duration;

use sfkeep::clock::{ServerClock, SystemClock};
use sfkeep::grant::{TokenEndpoint, TokenResponse, introspect};
use sfkeep::secret::ClientSecret;
use sfkeep::store::{CasOutcome, Store};
use sfkeep::token::{self, ExpirySource, GrantKind, TokenRecord};

use crate::config::Profile;
use crate::error::{CliError, CliResult};
use crate::session;

pub fn endpoint(login_url: &str, p: &Profile) -> CliResult<TokenEndpoint> {
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
pub async fn store_response(
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
    check_user(p, &resp).await?;
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
        intent: None,
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

/// What userinfo said about a token from an interactive login.
enum Who {
    /// It acts as this username.
    User(String),
    /// The org did not say (the reason, no secret in it).
    Unknown(String),
}

/// Asks the org's userinfo whom the new access token acts as.
async fn who_is(resp: &TokenResponse) -> Who {
    let raw = format!(
        "{}/services/oauth2/userinfo",
        resp.instance_url.trim_end_matches('/')
    );
    let url = match sfkeep::http::check_url("the instance URL of the token response", &raw) {
        Ok(u) => u,
        Err(e) => return Who::Unknown(e.to_string()),
    };
    let http = match session::http_client(Duration::from_secs(15), Duration::from_secs(5)) {
        Ok(h) => h,
        Err(e) => return Who::Unknown(e.to_string()),
    };
    let answer = http
        .get(url)
        .bearer_auth(resp.access_token.expose_secret())
        .send()
        .await;
    let answer = match answer {
        Ok(a) if a.status().is_success() => a,
        Ok(a) => return Who::Unknown(format!("userinfo answered HTTP {}", a.status().as_u16())),
        Err(e) => {
            return Who::Unknown(format!(
                "userinfo failed ({})",
                session::transport_reason(&e)
            ));
        }
    };
    match answer.json::<serde_json::Value>().await {
        Ok(v) => match v
            .get("preferred_username")
            .and_then(serde_json::Value::as_str)
        {
            Some(u) => Who::User(u.to_owned()),
            None => Who::Unknown("userinfo named no preferred_username".to_owned()),
        },
        Err(_) => Who::Unknown("userinfo did not answer JSON".to_owned()),
    }
}

/// A person may sign in to the browser (or approve a device code) as someone other than the
/// profile's user — their own admin account, say. That token stored under this profile's key
/// would be handed to every process sharing the store, acting as the wrong user: so when the
/// profile names its user, the new token must act as that user, or nothing is stored and the
/// new refresh token is revoked at once (it would otherwise stay valid at Salesforce, held by
/// no one). When the org will not say who it is, the login goes on with a warning.
async fn check_user(p: &Profile, resp: &TokenResponse) -> CliResult<()> {
    let Some(want) = p.username.as_deref() else {
        return Ok(());
    };
    match who_is(resp).await {
        Who::User(got) if got.eq_ignore_ascii_case(want) => Ok(()),
        Who::User(got) => {
            let revoked = revoke_unwanted(p, resp).await;
            Err(CliError::usage(format!(
                "the login acted as `{got}`, but {} is for `{want}`: nothing was stored{revoked}. Log in again as `{want}` (a private browser window avoids a session of another user).",
                p.describe()
            )))
        }
        Who::Unknown(why) => {
            crate::output::warn(&format!(
                "could not check that the new token acts as `{want}` ({why}); it is stored. `sfkeep status --verify` asks the org again."
            ));
            Ok(())
        }
    }
}

/// Revokes the refresh token (else the access token) of a login that is not kept; returns a
/// clause for the message.
async fn revoke_unwanted(p: &Profile, resp: &TokenResponse) -> String {
    let token = match &resp.refresh_token {
        Some(rt) => rt.expose_secret().to_owned(),
        None => resp.access_token.expose_secret().to_owned(),
    };
    let token = zeroize::Zeroizing::new(token);
    let url = format!(
        "{}/services/oauth2/revoke",
        p.login_url.trim_end_matches('/')
    );
    let Ok(http) = session::http_client(Duration::from_secs(10), Duration::from_secs(3)) else {
        return " (and its token could not be revoked: no HTTP client)".to_owned();
    };
    match http
        .post(&url)
        .form(&[("token", token.as_str())])
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => " and the new token was revoked".to_owned(),
        Ok(r) => format!(
            " (revoking the new token answered HTTP {}; it expires on its own or an admin can revoke it)",
            r.status().as_u16()
        ),
        Err(_) => " (the new token could not be revoked: the org did not answer)".to_owned(),
    }
}
