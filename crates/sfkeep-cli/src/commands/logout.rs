//! `sfkeep logout [--revoke]`: forgets the profile's stored token. With `--revoke`, first
//! revokes at Salesforce what this profile owns: its refresh token (the stored one, else the
//! configured one), which takes its access tokens with it, and the stored access token when a
//! grant without a refresh token (JWT bearer, client credentials, password, SOAP) made it.
//! Never an access token this profile did not store. With `--revoke` it is also a kill switch:
//! the profile's fallback grant is disabled until `sfkeep login` or `sfkeep recover`
//! (`killswitch.rs`), so nothing logs straight back in.

use clap::Args;
use serde_json::{Value, json};
use sfkeep::secret::RefreshToken;

use crate::audit::{self, CliEvent};
use crate::config::Profile;
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::killswitch;
use crate::output;
use crate::session::{self, Globals};

/// `sfkeep logout` arguments.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Also revoke this profile's refresh token at Salesforce (POST /services/oauth2/revoke),
    /// and disable its fallback grant until `sfkeep login` or `sfkeep recover`.
    #[arg(long)]
    revoke: bool,
}

/// Revokes (if asked) and forgets.
pub async fn run(g: &Globals, a: LogoutArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    let store = session::open_store(&p)?;
    let key = session::store_key(&p);
    let rec = session::load_record(&p, store.as_ref()).await?;
    let mut revoked = Vec::new();
    // The kill switch first: once the refresh token is revoked, a running proxy's next 401
    // would otherwise mint a new token with the fallback grant (killswitch.rs).
    let was_disabled = killswitch::disabled(&p).is_some();
    let stopped = if a.revoke {
        killswitch::disable(&p)?
    } else {
        None
    };
    let revoking = revoke_all(&p, rec.as_ref(), a.revoke, &mut revoked).await;
    if let Err(e) = revoking {
        if !was_disabled {
            killswitch::enable(&p);
        }
        return Err(e);
    }
    // A tombstone rather than a deleted key: a process that kept an older token in memory
    // through a store outage cannot write it back after this logout.
    let now = sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock);
    sfkeep::store::forget(store.as_ref(), &key, 0, p.grant.kind(), now)
        .await
        .map_err(|e| {
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
        if !a.revoke && rotated_away(&p, rec.as_ref()) {
            // What the logout costs under rotation (docs/rotation-safety.md).
            eprintln!(
                "sfkeep: the stored refresh token was the only valid one (it rotated away from the configured one): the next command needs `sfkeep login`; the configured refresh token is spent and is not sent again."
            );
        }
    } else {
        eprintln!("sfkeep: nothing was stored for {}.", p.describe());
    }
    match stopped {
        Some(kind) => eprintln!(
            "sfkeep: disabled the {} fallback grant of {}: no sfkeep command, proxy or serve of this profile on this host gets a token with it until `sfkeep login` or `sfkeep recover`.",
            kind.as_str(),
            p.describe()
        ),
        None if a.revoke => eprintln!(
            "sfkeep: {} has no fallback grant: nothing can log in again without a person.",
            p.describe()
        ),
        None => {}
    }
    let stopped = stopped.map(|k| k.as_str());
    record(&p, rec.as_ref(), &revoked, stopped);
    output::set_result(json!({
        "profile": p.name,
        "forgot": rec.is_some(),
        "store": session::describe_store(&p),
        "revoked": revoked,
        "fallback_disabled": stopped,
    }));
    Ok(Exit::Ok)
}

/// With `revoke`: revokes what the profile owns at the org, adding each outcome to `revoked`.
async fn revoke_all(
    p: &Profile,
    rec: Option<&sfkeep::token::TokenRecord>,
    revoke_asked: bool,
    revoked: &mut Vec<Value>,
) -> CliResult<()> {
    if revoke_asked {
        let rt: Option<RefreshToken> = match rec.and_then(|r| r.refresh_token.clone()) {
            Some(rt) => Some(rt),
            None => p
                .optional_secret(&p.refresh_token, "refresh_token")?
                .map(|s| RefreshToken::new(s.as_str())),
        };
        // An access token from another grant is not tied to the refresh token: revoking the
        // refresh token would leave it working until it times out.
        let own_access_token = rec
            .filter(|r| r.grant != sfkeep::token::GrantKind::RefreshToken)
            .map(|r| r.access_token.clone());
        if let Some(at) = &own_access_token {
            revoked.push(
                revoke(
                    p,
                    Revoked::StoredAccessToken,
                    at.expose_secret(),
                    &at.fingerprint(),
                )
                .await?,
            );
        }
        match rt {
            Some(rt) => revoked.push(
                revoke(
                    p,
                    Revoked::RefreshToken,
                    rt.expose_secret(),
                    &rt.fingerprint(),
                )
                .await?,
            ),
            None if own_access_token.is_some() => {}
            None => eprintln!(
                "sfkeep: nothing to revoke: {} has no refresh token (stored or configured) and no stored access token.",
                p.describe()
            ),
        }
    }
    Ok(())
}

/// Whether the stored record's refresh token is not the configured one: it rotated, so the
/// configured one is spent and the stored one was the only valid refresh token.
fn rotated_away(p: &Profile, rec: Option<&sfkeep::token::TokenRecord>) -> bool {
    let Some(stored) = rec.and_then(|r| r.refresh_token.as_ref()) else {
        return false;
    };
    // A configured secret that cannot be read now says nothing either way.
    let configured = p
        .optional_secret(&p.refresh_token, "refresh_token")
        .ok()
        .flatten();
    configured.is_some_and(|c| c.as_str() != stored.expose_secret())
}

/// The logout and each revocation, in the audit log.
fn record(
    p: &Profile,
    rec: Option<&sfkeep::token::TokenRecord>,
    revoked: &[Value],
    fallback_disabled: Option<&str>,
) {
    let scope = session::audit_scope(p);
    for r in revoked {
        audit::record_cli(
            p,
            &scope,
            CliEvent {
                kind: "revoke",
                grant: rec.map(|r| r.grant.as_str().to_owned()),
                generation: rec.map(|r| r.generation),
                fingerprint: r["fingerprint"].as_str().map(str::to_owned),
                detail: json!({"token": r["token"], "outcome": r["outcome"]}),
            },
        );
    }
    audit::record_cli(
        p,
        &scope,
        CliEvent {
            kind: "logout",
            grant: rec.map(|r| r.grant.as_str().to_owned()),
            generation: rec.map(|r| r.generation),
            fingerprint: rec.map(|r| r.fingerprint()),
            detail: json!({"forgot": rec.is_some(), "fallback_disabled": fallback_disabled}),
        },
    );
}

/// Which token is revoked.
#[derive(Clone, Copy)]
enum Revoked {
    /// The profile's refresh token: its access tokens go with it.
    RefreshToken,
    /// The stored access token of a grant without a refresh token.
    StoredAccessToken,
}

/// Revokes one token; returns `{"token","fingerprint","outcome"}` (the fingerprint of the
/// revoked token; `outcome` is `revoked` or `already_invalid`).
async fn revoke(p: &Profile, which: Revoked, secret: &str, fingerprint: &str) -> CliResult<Value> {
    let what = match which {
        Revoked::RefreshToken => "refresh token",
        Revoked::StoredAccessToken => "stored access token",
    };
    let url = format!(
        "{}/services/oauth2/revoke",
        p.login_url.trim_end_matches('/')
    );
    let http = session::http_client(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(3),
    )?;
    let resp = http
        .post(&url)
        .form(&[("token", secret)])
        .send()
        .await
        .map_err(|e| {
            CliError::transient(format!(
                "cannot revoke the {what} of {}: POST {url} failed ({}). Nothing was forgotten; retry when the org is reachable.",
                p.describe(),
                if e.is_timeout() { "timed out".to_owned() } else { session::transport_reason(&e) }
            ))
        })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let token = match which {
        Revoked::RefreshToken => "refresh_token",
        Revoked::StoredAccessToken => "access_token",
    };
    let outcome = |o: &str| json!({"token": token, "fingerprint": fingerprint, "outcome": o});
    match status {
        200 => {
            let tail = match which {
                Revoked::RefreshToken => " and its access tokens",
                Revoked::StoredAccessToken => "",
            };
            eprintln!(
                "sfkeep: revoked the {what} of {} (fingerprint {fingerprint}){tail}.",
                p.describe(),
            );
            Ok(outcome("revoked"))
        }
        400 => {
            // `invalid_token`: already revoked or expired. Nothing left to revoke.
            eprintln!(
                "sfkeep: the org says the {what} of {} is already invalid ({}); nothing to revoke.",
                p.describe(),
                sfkeep::error::redacted_snippet(&body)
            );
            Ok(outcome("already_invalid"))
        }
        s if s >= 500 => Err(CliError::transient(format!(
            "cannot revoke the {what} of {}: the org answered HTTP {s}. Nothing was forgotten; retry later.",
            p.describe()
        ))),
        s => Err(CliError::unexpected(format!(
            "cannot revoke the {what} of {}: the org answered HTTP {s} ({}). Nothing was forgotten.",
            p.describe(),
            sfkeep::error::redacted_snippet(&body)
        ))),
    }
}
