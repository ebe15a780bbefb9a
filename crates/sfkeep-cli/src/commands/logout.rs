//! `sfkeep logout [--revoke]`: forgets the profile's stored token. With `--revoke`, first
//! revokes at Salesforce the refresh token this profile owns (the stored one, else the
//! configured one) — never an access token another process may share.

use clap::Args;
use sfkeep::secret::RefreshToken;

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};

/// `sfkeep logout` arguments.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Also revoke this profile's refresh token at Salesforce (POST /services/oauth2/revoke).
    #[arg(long)]
    revoke: bool,
}

/// Revokes (if asked) and forgets.
pub async fn run(g: &Globals, a: LogoutArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    let store = session::open_store(&p)?;
    let key = session::store_key(&p);
    let rec = session::load_record(&p, store.as_ref()).await?;
    if a.revoke {
        let rt: Option<RefreshToken> = match rec.as_ref().and_then(|r| r.refresh_token.clone()) {
            Some(rt) => Some(rt),
            None => p
                .optional_secret(&p.refresh_token, "refresh_token")?
                .map(|s| RefreshToken::new(s.as_str())),
        };
        match rt {
            Some(rt) => revoke(&p, &rt).await?,
            None => eprintln!(
                "sfkeep: nothing to revoke: {} has no refresh token (stored or configured). Grants without one (JWT bearer, client credentials) have nothing long-lived to revoke; an admin can revoke the app's sessions in Setup.",
                p.describe()
            ),
        }
    }
    store.delete(&key).await.map_err(|e| {
        CliError::from_sfkeep(
            &e,
            &format!("cannot forget the stored token of {}", p.describe()),
        )
    })?;
    if rec.is_some() {
        eprintln!(
            "sfkeep: forgot the stored token of {} ({}).",
            p.describe(),
            session::describe_store(&p)
        );
    } else {
        eprintln!("sfkeep: nothing was stored for {}.", p.describe());
    }
    Ok(Exit::Ok)
}

async fn revoke(p: &crate::config::Profile, rt: &RefreshToken) -> CliResult<()> {
    let url = format!(
        "{}/services/oauth2/revoke",
        p.login_url.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| CliError::unexpected(format!("cannot build the HTTP client: {e}.")))?;
    let resp = http
        .post(&url)
        .form(&[("token", rt.expose_secret())])
        .send()
        .await
        .map_err(|e| {
            CliError::transient(format!(
                "cannot revoke the refresh token of {}: POST {url} failed ({}). Nothing was forgotten; retry when the org is reachable.",
                p.describe(),
                if e.is_timeout() { "timed out".to_owned() } else { transport_reason(&e) }
            ))
        })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    match status {
        200 => {
            eprintln!(
                "sfkeep: revoked the refresh token of {} (fingerprint {}) and its access tokens.",
                p.describe(),
                rt.fingerprint()
            );
            Ok(())
        }
        400 => {
            // `invalid_token`: already revoked or expired. Nothing left to revoke.
            eprintln!(
                "sfkeep: the org says the refresh token of {} is already invalid ({}); nothing to revoke.",
                p.describe(),
                sfkeep::error::redacted_snippet(&body)
            );
            Ok(())
        }
        s if s >= 500 => Err(CliError::transient(format!(
            "cannot revoke the refresh token of {}: the org answered HTTP {s}. Nothing was forgotten; retry later.",
            p.describe()
        ))),
        s => Err(CliError::unexpected(format!(
            "cannot revoke the refresh token of {}: the org answered HTTP {s} ({}). Nothing was forgotten.",
            p.describe(),
            sfkeep::error::redacted_snippet(&body)
        ))),
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "transport error".to_owned()
    };
    if let Some(src) = std::error::Error::source(e) {
        s.push_str(&format!(": {src}"));
    }
    s
}
