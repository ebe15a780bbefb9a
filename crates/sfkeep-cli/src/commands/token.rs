//! `sfkeep token [--json]`: a valid access token for scripts, like
//! `gcloud auth print-access-token`. The one command that prints a token: that is its purpose.

use clap::Args;
use sfkeep::token::TokenState;

use crate::audit::{self, AuditLog};
use crate::commands::JsonFlag;
use crate::config::Profile;
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::output::print_line;
use crate::session::{self, Globals};

/// `sfkeep token` arguments.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    json: JsonFlag,
}

/// Prints the token (plain) or `{"access_token","instance_url","generation","expires_in_secs"}`.
pub async fn run(g: &Globals, a: TokenArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    let (m, _store) = session::manager(&p).await?;
    let context = format!("cannot get a token for {}", p.describe());
    let mut token = m
        .token()
        .await
        .map_err(|e| CliError::from_sfkeep(&e, &context))?;
    if seen_refused(&p, token.generation()) {
        // An earlier command's call got a 401 with this very token: handing it to a script
        // would only move the failure there. Get a new one, or say why there is none.
        token = m
            .force_refresh()
            .await
            .map_err(|e| CliError::from_sfkeep(&e, &context))?;
    } else if token.record().state_at(m.server_clock().now()) == TokenState::Stale {
        // A stale token is still valid, but this process will not live to refresh it in the
        // background: refresh now, and fall back to the stale one if that fails.
        match m.force_refresh().await {
            Ok(t) => token = t,
            Err(e) => {
                tracing::warn!(error = %e, "refresh-ahead failed; the current token is still valid");
            }
        }
    }
    session::check_store_kept_up(&p)?;
    if a.json.json {
        let expires_in = token.record().remaining_at(m.server_clock().now());
        let v = serde_json::json!({
            "access_token": token.access_token().expose_secret(),
            "instance_url": token.instance_url(),
            "generation": token.generation(),
            "expires_in_secs": expires_in.as_secs(),
        });
        print_line(&v.to_string())?;
    } else {
        print_line(token.access_token().expose_secret())?;
    }
    Ok(Exit::Ok)
}

/// Whether the audit log records a 401 (`token.invalidated`) for this generation of the
/// profile's token. A session Salesforce refused never works again, whatever its expiry says.
fn seen_refused(p: &Profile, generation: u64) -> bool {
    let Ok(Some(log)) = AuditLog::open_existing(&audit::path_for(p)) else {
        return false;
    };
    let key = session::store_key(p).to_string();
    log.recent(&key, 50).is_ok_and(|rows| {
        rows.iter()
            .any(|r| r.kind == "token.invalidated" && r.generation == Some(generation as i64))
    })
}
