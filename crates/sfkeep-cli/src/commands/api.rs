//! `sfkeep api METHOD PATH [--body FILE|-]`: one authenticated request that heals like the
//! library (one refresh and one replay after a dead session; transient retries for idempotent
//! methods).

use std::io::Read;

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};

/// `sfkeep api` arguments.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// GET, POST, PATCH, PUT, DELETE, HEAD.
    pub method: String,
    /// A path on the instance, e.g. `/services/data/v59.0/limits` (or `limits`, relative to
    /// `/services/data/vXX.X/`).
    pub path: String,
    /// A JSON body from a file, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub body: Option<String>,
    /// Treat a POST or PATCH as safe to retry (e.g. an upsert by external id).
    #[arg(long)]
    pub idempotent: bool,
}

/// Runs the request and prints the response body.
pub async fn run(g: &Globals, a: ApiArgs) -> CliResult<Exit> {
    let method: reqwest::Method = a
        .method
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| CliError::usage(format!("`{}` is not an HTTP method.", a.method)))?;
    let body = match a.body.as_deref() {
        None => None,
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::usage(format!("cannot read the body from stdin: {e}.")))?;
            Some(s)
        }
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| CliError::usage(format!("cannot read the body file {f}: {e}.")))?,
        ),
    };
    let body: Option<serde_json::Value> = match body {
        None => None,
        Some(b) => Some(
            serde_json::from_str(&b)
                .map_err(|e| CliError::usage(format!("the body is not JSON: {e}.")))?,
        ),
    };
    if a.path.contains("://") {
        // Requests go to the profile's instance only; a URL here is a mistake, and never a
        // way to send the token somewhere else.
        return Err(CliError::usage(format!(
            "`{}` is a URL; give a path on the profile's instance instead, e.g. `sfkeep api GET limits` or `/services/data/v59.0/limits`.",
            a.path
        )));
    }
    let profile = session::load_profile(g)?;
    let (manager, _store) = session::manager(&profile).await?;
    let client = session::api_client(&profile, manager)?;
    let path = if a.path.starts_with('/') {
        a.path.clone()
    } else {
        client.data_path(&format!("/{}", a.path))
    };
    let mut request = client.request(method.clone(), &path);
    if let Some(b) = &body {
        request = request.json(b);
    }
    if a.idempotent {
        request = request.idempotent();
    }
    let resp = request
        .send()
        .await
        .map_err(|e| CliError::from_sfkeep(&e, &format!("{method} {path}")))?;
    let text = String::from_utf8_lossy(&resp.body);
    if !text.is_empty() {
        crate::output::print_line(text.trim_end())?;
    }
    session::check_store_kept_up(&profile)?;
    Ok(Exit::Ok)
}
