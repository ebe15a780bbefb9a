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
    /// A path on the profile's instance: one under `/services/` as is (e.g.
    /// `/services/data/v59.0/limits`, `/services/apexrest/…`), anything else relative to
    /// `/services/data/vXX.X/` with the profile's API version (`limits`, `/limits`,
    /// `sobjects/Account`). The leading slash is optional either way.
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
    let path = instance_path(&a.path, |rest| client.data_path(rest));
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
        .map_err(|e| session::grant_error(&profile, &e, &format!("{method} {path}")))?;
    let text = String::from_utf8_lossy(&resp.body);
    if crate::output::json() {
        // The body as JSON when it is JSON, else as text: the envelope stays one document.
        let body = serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|_| serde_json::Value::String(text.into_owned()));
        crate::output::set_result(serde_json::json!({
            "method": method.as_str(),
            "path": path,
            "status": resp.status,
            "body": body,
        }));
    } else if !text.is_empty() {
        crate::output::print_line(text.trim_end())?;
    }
    session::check_store_kept_up(&profile)?;
    Ok(Exit::Ok)
}

/// The instance path for what was typed: under `/services/` as is, anything else under the
/// versioned data path (`data_path("/limits")` → `/services/data/v59.0/limits`).
fn instance_path(typed: &str, data_path: impl Fn(&str) -> String) -> String {
    let rest = typed.trim_start_matches('/');
    if rest == "services" || rest.starts_with("services/") {
        format!("/{rest}")
    } else {
        data_path(&format!("/{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_the_version_prefix_once() {
        let data = |rest: &str| format!("/services/data/v59.0{rest}");
        assert_eq!(instance_path("limits", data), "/services/data/v59.0/limits");
        assert_eq!(
            instance_path("/limits", data),
            "/services/data/v59.0/limits"
        );
        assert_eq!(
            instance_path("services/data/v59.0/limits", data),
            "/services/data/v59.0/limits"
        );
        assert_eq!(
            instance_path("/services/apexrest/Orders", data),
            "/services/apexrest/Orders"
        );
        assert_eq!(
            instance_path("servicesX", data),
            "/services/data/v59.0/servicesX"
        );
    }
}
