//! One grant's check, as `sfkeep doctor` and `sfkeep recover` record it, and building a
//! profile's grants for that.

use sfkeep::Grant;
use sfkeep::TokenManager;
use sfkeep::diagnose::Cause;
use sfkeep::diagnose::evidence::{GrantAttempt, GrantCheck};
use sfkeep::store::Store;

use crate::config::{GrantName, Profile};
use crate::error::CliResult;
use crate::exit::Exit;
use crate::session;

/// The grants of a profile, primary first.
pub fn grants_of(p: &Profile) -> Vec<GrantName> {
    let mut v = vec![p.grant];
    if let Some(f) = p.fallback_grant
        && f != p.grant
    {
        v.push(f);
    }
    v
}

/// The outcome of trying one grant.
pub struct Attempt {
    /// Which grant.
    pub grant: GrantName,
    /// The manager that tried it (holding the token when it worked).
    pub manager: Option<TokenManager>,
    /// The library error, when it failed.
    pub error: Option<sfkeep::Error>,
}

impl Attempt {
    /// As evidence: a token request's outcome.
    pub fn fact(&self) -> GrantAttempt {
        self.fact_checked(GrantCheck::TokenRequest)
    }

    /// As evidence, checked the way `check` says.
    pub fn fact_checked(&self, check: GrantCheck) -> GrantAttempt {
        GrantAttempt {
            grant: self.grant.kind(),
            outcome: match &self.error {
                None => Ok(()),
                Some(e) => Err((e.cause().unwrap_or(Cause::Unknown), detail(e))),
            },
            check,
        }
    }
}

/// What the server said, without the library's fix sentence.
pub fn detail(e: &sfkeep::Error) -> String {
    match e {
        sfkeep::Error::ReauthRequired { detail, .. } => detail.clone(),
        sfkeep::Error::TokenEndpoint { detail, status, .. } => format!("HTTP {status}: {detail}"),
        other => other.to_string(),
    }
}

/// Builds grant `name`; `Ok(None)` (with a note) when the profile cannot use it at all now
/// (e.g. no refresh token stored), a usage error when the config is broken.
pub async fn try_build_grant(
    p: &Profile,
    name: GrantName,
    store: &dyn Store,
    notes: &mut Vec<String>,
) -> CliResult<Option<Grant>> {
    match session::build_grant(p, name, store).await {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.exit == Exit::ReauthRequired => {
            notes.push(format!(
                "the {} grant cannot run: {}",
                name.as_str(),
                e.message
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
