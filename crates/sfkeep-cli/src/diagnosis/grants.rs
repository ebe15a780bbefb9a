//! Doctor's checks of the profile's grants, none of which can harm the integration.
//!
//! - A grant that consumes nothing (JWT bearer, client credentials, password, SOAP login) is
//!   tried once into memory: a new access token, never stored, so nothing the integration
//!   holds changes.
//! - The refresh token is checked as the integration uses it (the store's, else the
//!   profile's). Where the app may introspect, the refresh token is introspected: an inactive
//!   one is never used, and an active one is not used either while doctor has another working
//!   token to read the org with (the stored one, or another grant's). Otherwise it is
//!   refreshed through the
//!   profile's own token store with the integration's manager machinery (single-flight, the
//!   store's lock, compare-and-set on the generation), so a rotation it causes is stored like
//!   any other and no process ever presents a rotated-out token
//!   (docs/token-lifecycle.md, rotation hazards). That refresh is what the integration would
//!   do on its next call anyway.

use std::sync::Arc;

use sfkeep::diagnose::Cause;
use sfkeep::diagnose::evidence::{GrantAttempt, GrantCheck, RefreshTokenFacts};
use sfkeep::grant::introspect::TokenInfo;
use sfkeep::store::{MemoryStore, Store};
use sfkeep::token::TokenRecord;

use super::attempt::{Attempt, detail, try_build_grant};
use crate::config::{GrantName, Profile};
use crate::error::CliResult;
use crate::session::{self, Recording};

/// One grant's check and how it was made.
pub struct Checked {
    /// What happened.
    pub attempt: Attempt,
    /// How.
    pub check: GrantCheck,
}

impl Checked {
    /// As evidence.
    pub fn fact(&self) -> GrantAttempt {
        self.attempt.fact_checked(self.check)
    }

    /// The token this check obtained, when it obtained one.
    pub fn token(&self) -> Option<TokenRecord> {
        self.attempt
            .manager
            .as_ref()
            .and_then(|m| m.cached_token())
            .map(|t| t.record().clone())
    }
}

/// A dry login with grant `name` (one that consumes nothing), into memory.
pub async fn dry_login(
    p: &Profile,
    name: GrantName,
    store: &Arc<dyn Store>,
) -> CliResult<(Option<Checked>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut n = 0;
    let (m, result) = loop {
        let Some(grant) = try_build_grant(p, name, store.as_ref(), &mut notes).await? else {
            return Ok((None, notes));
        };
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let m = session::manager_with_audit(p, grant, None, memory, Recording::DoctorProbe)?;
        let result = m.token().await.map(|_| ());
        // A 5xx or a dropped connection says nothing about the grant: ask again, a little
        // later, with a new manager (a failed one cools down).
        match &result {
            Err(e) if passing(e) && n < super::probe::PASSING_RETRIES => {
                tokio::time::sleep(super::probe::retry_delay(n)).await;
                n += 1;
            }
            _ => break (m, result),
        }
    };
    let attempt = match result {
        Ok(_) => {
            notes.push(format!(
                "dry login with the {} grant: the org issued a new access token (kept in memory, never stored)",
                name.as_str()
            ));
            Attempt {
                grant: name,
                manager: Some(m),
                error: None,
            }
        }
        Err(e) => {
            notes.push(format!(
                "dry login with the {} grant failed: {}",
                name.as_str(),
                detail(&e)
            ));
            Attempt {
                grant: name,
                manager: None,
                error: Some(e),
            }
        }
    };
    Ok((
        Some(Checked {
            attempt,
            check: GrantCheck::TokenRequest,
        }),
        notes,
    ))
}

/// A token request's failure that says nothing about the grant: the server failed or did not
/// answer.
fn passing(e: &sfkeep::Error) -> bool {
    e.cause() == Some(Cause::Transient)
        || matches!(e, sfkeep::Error::TokenEndpoint { status, .. } if *status >= 500)
}

/// What introspection said about the refresh token: not asked, no answer, dead, or alive.
pub type Introspected = Option<Result<Option<TokenInfo>, String>>;

/// The refresh token the integration uses: the store's, else the profile's.
pub fn refresh_token_in_use(p: &Profile, rec: Option<&TokenRecord>) -> Option<(String, bool)> {
    if let Some(rt) = rec.and_then(|r| r.refresh_token.as_ref()) {
        return Some((rt.expose_secret().to_owned(), true));
    }
    p.optional_secret(&p.refresh_token, "refresh_token")
        .ok()
        .flatten()
        .map(|s| (s.as_str().to_owned(), false))
}

/// Facts about the refresh token from its introspection and the store.
pub fn refresh_token_facts(
    rec: Option<&TokenRecord>,
    rt: &str,
    introspected: &Introspected,
) -> RefreshTokenFacts {
    let fp = sfkeep::secret::fingerprint(rt);
    let mut f = RefreshTokenFacts {
        remembered_refused: rec
            .and_then(|r| r.refused_refresh_token.as_deref())
            .is_some_and(|r| r == fp),
        ..RefreshTokenFacts::default()
    };
    match introspected {
        Some(Ok(Some(info))) => {
            f.active = Some(true);
            f.authorized_at = info.issued_at;
            f.expires_at = info.expires_at;
        }
        Some(Ok(None)) => f.active = Some(false),
        _ => {}
    }
    f
}

/// Checks the refresh-token grant without harm (see the module docs). `have_token`: doctor
/// already has a working token to read the org with (the stored one, or another grant's), so
/// an active refresh token need not be used at all.
pub async fn refresh_token(
    p: &Profile,
    store: &Arc<dyn Store>,
    (in_use, from_store): (&str, bool),
    introspected: &Introspected,
    have_token: bool,
) -> CliResult<(Option<Checked>, Vec<String>)> {
    let mut notes = Vec::new();
    let name = GrantName::RefreshToken;
    let whose = if from_store {
        "the refresh token in the token store (the one the integration uses)"
    } else {
        "the profile's refresh token (none is stored)"
    };
    match introspected {
        Some(Ok(None)) => {
            notes.push(format!(
                "introspection: {whose} is not active; it was not used"
            ));
            let error = sfkeep::Error::ReauthRequired {
                cause: Cause::RefreshTokenRevoked,
                detail: format!(
                    "introspection says {whose} is no longer active (revoked, expired by policy, or rotated out and reused)"
                ),
            };
            return Ok((
                Some(Checked {
                    attempt: Attempt {
                        grant: name,
                        manager: None,
                        error: Some(error),
                    },
                    check: GrantCheck::Introspection,
                }),
                notes,
            ));
        }
        Some(Ok(Some(_))) if have_token => {
            notes.push(format!(
                "introspection: {whose} is active; it was not used (doctor had a working token to read the org with, so nothing was refreshed)"
            ));
            return Ok((
                Some(Checked {
                    attempt: Attempt {
                        grant: name,
                        manager: None,
                        error: None,
                    },
                    check: GrantCheck::Introspection,
                }),
                notes,
            ));
        }
        Some(Err(e)) => notes.push(format!("introspection of the refresh token failed: {e}")),
        _ => {}
    }
    let Some(grant) = try_build_grant(p, name, store.as_ref(), &mut notes).await? else {
        return Ok((None, notes));
    };
    // Through the profile's own store, as the integration refreshes: the store's refresh
    // token, its lock and compare-and-set, a rotation stored before anyone can use it.
    let m = session::manager_with_audit(p, grant, None, Arc::clone(store), Recording::DoctorProbe)?;
    let attempt = match m.force_refresh().await {
        Ok(t) => {
            notes.push(format!(
                "refreshed through the token store as the integration would: the org issued a new access token, stored as generation {}{}",
                t.generation(),
                if t.record().refresh_token.as_ref().is_some_and(|n| n.expose_secret() != in_use) {
                    " (the refresh token rotated; the new one is stored with it)"
                } else {
                    ""
                }
            ));
            Attempt {
                grant: name,
                manager: Some(m),
                error: None,
            }
        }
        Err(e) => {
            notes.push(format!(
                "refresh through the token store failed: {}",
                detail(&e)
            ));
            Attempt {
                grant: name,
                manager: None,
                error: Some(e),
            }
        }
    };
    let check = match &attempt.error {
        Some(e) if detail(e).contains("already refused") => GrantCheck::StoreMemory,
        _ => GrantCheck::TokenRequest,
    };
    Ok((Some(Checked { attempt, check }), notes))
}
