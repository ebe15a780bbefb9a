//! `sfkeep login [--web | --device | --jwt | --client-credentials | --password | --soap |
//! --sfdx-url URL]`: obtain a token and store it under the profile's store key, where
//! `sfkeep token` (and every process sharing the store) finds it. Without a flag, the profile's
//! `grant` logs in. Then the org is asked who the token acts as (what `sf org display` shows),
//! and the login is recorded in the audit log. Never prints a token.

mod browser;
mod sfdx;
mod stored;

use std::sync::Arc;

use clap::{ArgGroup, Args};
use serde_json::json;
use sfkeep::clock::{Clock, SystemClock};
use sfkeep::token::TokenRecord;

use crate::audit::{self, CliEvent};
use crate::config::{GrantName, Profile, StoreConfig};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::identity::Identity;
use crate::output::{self, print_line};
use crate::session::{self, Globals};

/// `sfkeep login` arguments: at most one method; none means the profile's `grant`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("method")
        .required(false)
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

/// How this login is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Web,
    Device,
    SfdxUrl,
    Grant(GrantName),
}

impl Method {
    fn of(a: &LoginArgs, p: &Profile) -> Self {
        match a {
            _ if a.web => Method::Web,
            _ if a.device => Method::Device,
            _ if a.sfdx_url.is_some() => Method::SfdxUrl,
            _ if a.jwt => Method::Grant(GrantName::JwtBearer),
            _ if a.client_credentials => Method::Grant(GrantName::ClientCredentials),
            _ if a.password => Method::Grant(GrantName::Password),
            _ if a.soap => Method::Grant(GrantName::SoapLogin),
            _ => Method::Grant(p.grant),
        }
    }

    /// `method` in the audit log and the JSON result.
    fn name(self) -> &'static str {
        match self {
            Method::Web => "web",
            Method::Device => "device",
            Method::SfdxUrl => "sfdx_url",
            Method::Grant(g) => g.as_str(),
        }
    }

    /// These produce a refresh token that nothing else holds.
    fn needs_persistent_store(self) -> bool {
        matches!(self, Method::Web | Method::Device | Method::SfdxUrl)
    }
}

/// Logs in with the chosen method and stores the token.
pub async fn run(g: &Globals, a: LoginArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    let method = Method::of(&a, &p);
    if method.needs_persistent_store() && matches!(p.store, StoreConfig::Memory) {
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
    let (p, rec, changes) = match method {
        Method::Web => (
            p.clone(),
            browser::web(&p, &a, store.as_ref()).await?,
            vec![],
        ),
        Method::Device => (
            p.clone(),
            browser::device_flow(&p, &a, store.as_ref()).await?,
            vec![],
        ),
        Method::SfdxUrl => {
            let url = a.sfdx_url.as_deref().unwrap_or("-");
            let i = sfdx::import(&p, url, store.as_ref()).await?;
            (i.profile, i.record, i.changes)
        }
        Method::Grant(name) => {
            let rec = with_grant(&p, name, &store).await?;
            (p, rec, vec![])
        }
    };
    audit::record_cli(
        &p,
        &session::audit_scope(&p),
        CliEvent {
            kind: "login",
            grant: Some(rec.grant.as_str().to_owned()),
            generation: Some(rec.generation),
            fingerprint: Some(rec.fingerprint()),
            detail: json!({"method": method.name()}),
        },
    );
    if let Some(was) = crate::killswitch::enable(&p) {
        eprintln!("sfkeep: {}", crate::killswitch::enabled_note(&p, &was));
    }
    let identity = who(&p, &rec).await;
    report(&p, method, &rec, &identity, &changes)?;
    Ok(Exit::Ok)
}

/// Logs in with one of the profile's grants through a token manager (which records its own
/// events).
async fn with_grant(
    p: &Profile,
    name: GrantName,
    store: &Arc<dyn sfkeep::store::Store>,
) -> CliResult<TokenRecord> {
    if name == GrantName::SoapLogin {
        warn_soap(p);
    }
    let grant = session::build_grant(p, name, store.as_ref()).await?;
    let m = session::manager_with(p, grant, None, Arc::clone(store))?;
    let context = format!("login with {} failed for {}", name.as_str(), p.describe());
    let t = m
        .force_refresh()
        .await
        .map_err(|e| session::grant_error(p, &e, &context))?;
    session::check_store_kept_up(p)?;
    Ok(t.record().clone())
}

/// Who the new token acts as, from the org; from what is stored if the org will not say.
async fn who(p: &Profile, rec: &TokenRecord) -> Identity {
    let asked = async {
        let (m, _) = session::manager(p).await.ok()?;
        let client = session::api_client(p, m).ok()?;
        Identity::verify(p, &client).await.ok().map(|(who, _)| who)
    };
    match asked.await {
        Some(who) => who,
        None => {
            output::warn(
                "the org did not say who the token acts as (userinfo); showing what is stored.",
            );
            Identity::stored(p, rec)
        }
    }
}

fn warn_soap(p: &Profile) {
    output::warn(&format!(
        "SOAP login() is legacy: Salesforce retires it from API version 65.0 (profile `{}` uses {}), and it needs the user's password and security token on this machine. Move to OAuth: a connected app with the JWT bearer grant (`grant = \"jwt_bearer\"`, `jwt_key = {{ file = \"…\" }}`) needs no password and no refresh token; `sfkeep login --web` gets a refresh token once. `sfkeep proxy` can answer SOAP login() locally so the integration keeps working unchanged.",
        p.name, p.api_version
    ));
}

fn report(
    p: &Profile,
    method: Method,
    rec: &TokenRecord,
    who: &Identity,
    changes: &[String],
) -> CliResult<()> {
    let now = rec.server_now(SystemClock.now());
    let secs = rec.remaining_at(now).as_secs();
    if output::json() {
        output::set_result(json!({
            "profile": p.name,
            "config": p.config_path.display().to_string(),
            "method": method.name(),
            "grant": rec.grant.as_str(),
            "generation": rec.generation,
            "fingerprint": rec.fingerprint(),
            "expires_in_secs": secs,
            "store": session::describe_store(p),
            "identity": who.to_json(),
            "config_changes": changes,
        }));
        return Ok(());
    }
    let mut lines = vec![format!(
        "Logged in: {} with {}; generation {}, token fingerprint {}, valid for about {}m; stored in {}.",
        p.describe(),
        rec.grant.as_str(),
        rec.generation,
        rec.fingerprint(),
        secs / 60,
        session::describe_store(p)
    )];
    lines.extend(who.lines(13));
    print_line(&lines.join("\n"))
}
