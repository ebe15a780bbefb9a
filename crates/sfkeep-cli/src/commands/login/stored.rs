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
