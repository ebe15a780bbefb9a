//! `sfkeep login --sfdx-url URL|-`: imports the whole sfdx auth URL, as `sf org login
//! sfdx-url` does. The refresh token is checked with one refresh and stored; the client id,
//! the client secret (to a 0600 file next to the config) and the instance become the profile's
//! settings, so every later refresh uses what the URL said instead of what the profile had.
//! Only what differs is changed, and each change is printed.

use std::path::PathBuf;

use sfkeep::grant::TokenResponse;
use sfkeep::store::Store;
use sfkeep::token::{GrantKind, TokenRecord};
use zeroize::Zeroizing;

use crate::commands::login::stored::{endpoint, store_response};
use crate::config::edit::{self, Edit};
use crate::config::{Config, GrantName, Profile, SfdxAuth};
use crate::error::{CliError, CliResult};

/// What an import did.
pub struct Imported {
    /// The profile as the config file now has it.
    pub profile: Profile,
    /// The stored record.
    pub record: TokenRecord,
    /// The config changes, as printed.
    pub changes: Vec<String>,
}

/// Imports the URL into `p`.
pub async fn import(p: &Profile, raw: &str, store: &dyn Store) -> CliResult<Imported> {
    let raw = read_url(raw)?;
    let auth = crate::config::parse_sfdx_url(&raw)?;
    let ep = endpoint(&auth.login_url, p)?;
    let context = format!("login with the sfdx auth URL failed for {}", p.describe());
    let resp = sfkeep::grant::refresh_token::request(
        &ep,
        &auth.client_id,
        auth.client_secret.as_ref(),
        &auth.refresh_token,
    )
    .await
    .map_err(|e| CliError::from_sfkeep(&e, &context))?;
    let edits = plan(p, &auth, &resp.instance_url)?;
    let p = if edits.is_empty() {
        p.clone()
    } else {
        apply(p, &auth, &edits)?
    };
    // Salesforce returns no refresh token on a refresh without rotation: keep the URL's.
    let resp = TokenResponse {
        refresh_token: resp
            .refresh_token
            .clone()
            .or_else(|| Some(auth.refresh_token.clone())),
        ..resp
    };
    let record = store_response(
        &p,
        store,
        &ep,
        resp,
        GrantKind::RefreshToken,
        &auth.client_id,
        auth.client_secret.as_ref(),
    )
    .await?;
    Ok(Imported {
        profile: p,
        record,
        changes: edits.iter().map(Edit::describe).collect(),
    })
}

fn read_url(raw: &str) -> CliResult<Zeroizing<String>> {
    if raw != "-" {
        return Ok(Zeroizing::new(raw.to_owned()));
    }
    let mut s = Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
        .map_err(|e| CliError::usage(format!("cannot read the sfdx auth URL from stdin: {e}.")))?;
    Ok(s)
}

/// What must change in the profile for later refreshes to use the URL's client and instance.
fn plan(p: &Profile, auth: &SfdxAuth, instance_url: &str) -> CliResult<Vec<Edit>> {
    let mut edits = Vec::new();
    if p.login_url.trim_end_matches('/') != auth.login_url {
        edits.push(Edit::Set("login_url", auth.login_url.clone()));
    }
    if p.client_id.as_deref() != Some(auth.client_id.as_str()) {
        edits.push(Edit::Set("client_id", auth.client_id.clone()));
    }
    if p.grant != GrantName::RefreshToken {
        edits.push(Edit::Set(
            "grant",
            GrantName::RefreshToken.as_str().to_owned(),
        ));
    }
    if let Some(u) = &p.instance_url
        && u.trim_end_matches('/') != instance_url.trim_end_matches('/')
    {
        edits.push(Edit::Set("instance_url", instance_url.to_owned()));
    }
    // A configured refresh token would win over the stored one: the URL's is stored.
    let configured_rt = p.optional_secret(&p.refresh_token, "refresh_token")?;
    if configured_rt.is_some_and(|rt| rt.as_str() != auth.refresh_token.expose_secret()) {
        edits.push(Edit::Remove("refresh_token"));
    }
    let configured_secret = p.optional_secret(&p.client_secret, "client_secret")?;
    match (&auth.client_secret, configured_secret) {
        (Some(url), Some(ours)) if url.expose_secret() == ours.as_str() => {}
        (Some(_), _) => edits.push(Edit::SecretFile("client_secret", secret_path(p))),
        // The URL's app has no secret (the sf CLI's own): sending one would be refused.
        (None, Some(_)) => edits.push(Edit::Remove("client_secret")),
        (None, None) => {}
    }
    Ok(edits)
}

/// Where the URL's client secret is kept: next to the config, named after the profile.
fn secret_path(p: &Profile) -> PathBuf {
    let dir = p.config_path.parent().unwrap_or(std::path::Path::new("."));
    dir.join(format!("{}.client_secret", p.name))
}

/// Writes the secret file (if any) and the config changes, says what changed, and reloads the
/// profile.
fn apply(p: &Profile, auth: &SfdxAuth, edits: &[Edit]) -> CliResult<Profile> {
    for e in edits {
        if let (Edit::SecretFile(_, path), Some(secret)) = (e, &auth.client_secret) {
            edit::write_atomically(path, secret.expose_secret().as_bytes(), Some(0o600)).map_err(
                |err| {
                    CliError::usage(format!(
                        "cannot write the client secret from the sfdx URL to {}: {err}.",
                        path.display()
                    ))
                },
            )?;
        }
    }
    edit::apply(&p.config_path, &p.name, edits)?;
    eprintln!(
        "sfkeep: imported the sfdx URL into [profiles.{}] of {}: {}. Later refreshes use these.",
        p.name,
        p.config_path.display(),
        edits
            .iter()
            .map(Edit::describe)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if p.fallback_grant.is_some() && edits.iter().any(|e| matches!(e, Edit::Set("client_id", _))) {
        crate::output::warn(
            "the profile's fallback grant uses `client_id` too, which is now the sfdx URL's app; give the fallback its own profile if it needs the old app.",
        );
    }
    Config::load(&p.config_path)?.profile(&p.name).cloned()
}
