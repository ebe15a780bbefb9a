//! The store's traces of an interrupted rotating refresh or of a lost rotated refresh token
//! (`docs/rotation-safety.md`): the intent record nobody replaced, a logout tombstone, and the
//! spent-token ledger next to the audit log. Read only: nothing here sends a token.

use sfkeep::diagnose::evidence::{Facts, InterruptedRefresh};
use sfkeep::secret::RefreshToken;
use sfkeep::token::TokenRecord;

use crate::config::Profile;
use crate::session;

/// Fills [`Facts::interrupted_refresh`] and [`Facts::refresh_token_lost`] from the raw stored
/// record `raw` (tombstones included) of a `kind` store and the ledger; one note per trace.
pub fn rotation_facts(
    p: &Profile,
    kind: &str,
    raw: Option<&TokenRecord>,
    facts: &mut Facts,
    notes: &mut Vec<String>,
) {
    if let Some(i) = raw
        .and_then(|r| r.intent.as_ref().map(|i| (r.generation, i)))
        .filter(|(_, i)| !i.settled)
        .map(|(generation, i)| InterruptedRefresh {
            generation,
            owner: i.owner.clone(),
            since: i.since,
        })
    {
        notes.push(format!(
            "the {kind} store holds an unfinished rotating refresh (generation {}, declared by {})",
            i.generation, i.owner
        ));
        facts.interrupted_refresh = Some(i);
    }
    let configured = p
        .optional_secret(&p.refresh_token, "refresh_token")
        .ok()
        .flatten()
        .map(|s| RefreshToken::new(s.as_str().to_owned()));
    let Some(configured) = configured else {
        return;
    };
    let ledger = session::spent_ledger_path(p);
    let seen = match sfkeep::manager::seen_spent(&ledger, &configured) {
        Ok(seen) => seen,
        Err(e) => {
            notes.push(format!("the spent-token ledger cannot be read: {e}"));
            return;
        }
    };
    let Some((generation, at)) = seen else {
        return;
    };
    let holds = match raw {
        None => "holds no record".to_owned(),
        Some(t) if t.is_tombstone() && t.intent.is_none() => format!(
            "holds a logout tombstone (generation {}): this identity was logged out",
            t.generation
        ),
        // A record with a refresh token: nothing is lost.
        Some(r) if usable_refresh_token(r) => return,
        Some(_) => "holds no refresh token".to_owned(),
    };
    facts.refresh_token_lost = Some(format!(
        "the {kind} store {holds}, and the spent-token ledger ({}) saw the configured refresh token {} rotated away at generation {generation} (at {at}): the store lost the only valid refresh token",
        ledger.display(),
        configured.fingerprint()
    ));
    notes.push(format!(
        "the configured refresh token {} is spent (spent-token ledger)",
        configured.fingerprint()
    ));
}

fn usable_refresh_token(r: &TokenRecord) -> bool {
    !r.is_tombstone() && r.refresh_token.is_some()
}
