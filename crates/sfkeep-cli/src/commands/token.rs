//! `sfkeep token [--verify]`: a valid access token for scripts, like
//! `gcloud auth print-access-token`. The one command that prints a token: that is its purpose.
//!
//! Without `--verify` the token is judged locally (its stored expiry, and the audit log's
//! record of a 401 for it): fast, and no API call, but a session the org ended early (a
//! timeout, a frozen user, a logout elsewhere) still looks fine. `--verify` asks the org at
//! `/services/oauth2/userinfo` first, healing a dead session once like any call, and prints
//! a token only if the org accepted it.

use clap::Args;
use serde_json::json;
use sfkeep::token::TokenState;
use sfkeep::{Token, TokenManager};

use crate::audit::{self, AuditLog};
use crate::config::Profile;
use crate::error::CliResult;
use crate::exit::Exit;
use crate::identity::Identity;
use crate::output::{self, print_line};
use crate::session::{self, Globals};

/// `sfkeep token` arguments.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Check the token with the org (`/services/oauth2/userinfo`, healing a dead session
    /// once) before printing it; exit 3 with the cause when no working token can be had.
    #[arg(long)]
    verify: bool,
}

/// Prints the token (plain), or with `--json` the envelope around
/// `{"access_token","instance_url","generation","expires_in_secs","verified","identity"}`.
pub async fn run(g: &Globals, a: TokenArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    let (m, _store) = session::manager(&p).await?;
    let context = format!("cannot get a token for {}", p.describe());
    let mut token = local_token(&p, &m, &context).await?;
    let mut identity = None;
    if a.verify {
        let client = session::api_client(&p, m.clone())?;
        let (who, _) = Identity::verify(&p, &client)
            .await
            .map_err(|e| session::grant_error(&p, &e, &context))?;
        // The call may have healed: print what the org just accepted.
        token = m
            .token()
            .await
            .map_err(|e| session::grant_error(&p, &e, &context))?;
        identity = Some(who);
    }
    session::check_store_kept_up(&p)?;
    if output::json() {
        let expires_in = token.record().remaining_at(m.server_clock().now());
        output::set_result(json!({
            "access_token": token.access_token().expose_secret(),
            "instance_url": token.instance_url(),
            "generation": token.generation(),
            "expires_in_secs": expires_in.as_secs(),
            "verified": a.verify,
            "identity": identity.map(|i| i.to_json()),
        }));
    } else {
        print_line(token.access_token().expose_secret())?;
    }
    Ok(Exit::Ok)
}

/// The token as known locally: never one the audit log shows the org refused, and refreshed
/// now when it is due (this process will not live to refresh it in the background).
async fn local_token(p: &Profile, m: &TokenManager, context: &str) -> CliResult<Token> {
    let token = m
        .token()
        .await
        .map_err(|e| session::grant_error(p, &e, context))?;
    if seen_refused(p, token.generation(), &token.record().fingerprint()) {
        // An earlier command's call got a 401 with this very token: handing it to a script
        // would only move the failure there. Get a new one, or say why there is none.
        return m
            .force_refresh()
            .await
            .map_err(|e| session::grant_error(p, &e, context));
    }
    if token.record().state_at(m.server_clock().now()) == TokenState::Stale {
        // A stale token is still valid: refresh now, and keep the stale one if that fails.
        match m.force_refresh().await {
            Ok(t) => return Ok(t),
            Err(e) => {
                tracing::warn!(error = %e, "refresh-ahead failed; the current token is still valid");
            }
        }
    }
    Ok(token)
}

/// Whether the audit log records a 401 (`token.invalidated`) for this generation of the
/// profile's token, or for this very access token (a refresh declared or settled without a new
/// token keeps the access token at a new generation: docs/rotation-safety.md). A session
/// Salesforce refused never works again, whatever its expiry says.
fn seen_refused(p: &Profile, generation: u64, fingerprint: &str) -> bool {
    let Ok(Some(log)) = AuditLog::open_existing(&audit::path_for(p)) else {
        return false;
    };
    log.recent(&session::audit_scope(p), 50).is_ok_and(|rows| {
        rows.iter().any(|r| {
            r.kind == "token.invalidated"
                && (r.generation == Some(generation as i64)
                    || r.fingerprint.as_deref() == Some(fingerprint))
        })
    })
}
