//! `sfkeep token [--json]`: a valid access token for scripts, like
//! `gcloud auth print-access-token`. The one command that prints a token: that is its purpose.

use clap::Args;
use sfkeep::token::TokenState;

use crate::commands::{JsonFlag, print_line};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
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
    // A stale token is still valid, but this process will not live to refresh it in the
    // background: refresh now, and fall back to the stale one if that fails.
    if token.record().state_at(m.server_clock().now()) == TokenState::Stale {
        match m.force_refresh().await {
            Ok(t) => token = t,
            Err(e) => {
                tracing::warn!(error = %e, "refresh-ahead failed; the current token is still valid");
            }
        }
    }
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
