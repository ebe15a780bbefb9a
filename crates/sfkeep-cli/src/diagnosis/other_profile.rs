//! When no grant of the examined profile gets a token, the org cannot be read with it, and the
//! server answers several causes alike (a password login's `authentication failure` for a
//! changed password and a frozen user; a refresh token's `expired access/refresh token` for a
//! revoke, a policy and an eviction; docs/salesforce-wire.md §2, §8.3). The org's own records
//! tell them apart (LoginHistory's Status, UserLogin.IsFrozen, User.IsActive,
//! SetupAuditTrail, OauthToken; §9), and another profile of the same config file on the same
//! org may still read them: an admin's JWT bearer profile, say. Its stored token is used when
//! the server accepts it; else a dry login with a grant that consumes nothing (JWT bearer,
//! client credentials), into memory. The integration user is read by id; what the reads can
//! see depends on that user's permissions (Manage Users, View Setup), and what they cannot
//! read is said as such.

use std::sync::Arc;

use sfkeep::diagnose::evidence::TokenProbe;
use sfkeep::store::Store;
use sfkeep::token::TokenRecord;

use super::{grants, probe, user_of};
use crate::config::{Config, GrantName, Profile};
use crate::session;

/// A token of another profile that works now, to read the org with.
pub struct Reader {
    /// The other profile's name.
    pub profile: String,
    /// Its token.
    pub record: TokenRecord,
    /// Doctor got it just now with a dry login (a token was minted).
    pub minted: bool,
}

/// The org id in an identity URL (`…/id/{orgId}/{userId}`).
fn org_of(id_url: Option<&str>) -> Option<String> {
    let mut parts = id_url?.trim_end_matches('/').rsplit('/');
    parts.next()?;
    let org = parts.next()?;
    (org.len() == 15 || org.len() == 18).then(|| org.to_owned())
}

/// The same org, when both identity URLs say which; a record without one is not trusted.
fn same_org(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((org_of(a), org_of(b)), (Some(x), Some(y)) if x == y)
}

/// A working token of another profile of `p`'s config file on the same org as
/// `integration` (its identity URL names the org), with notes on what was tried.
pub async fn find(
    p: &Profile,
    http: &reqwest::Client,
    integration: &TokenRecord,
) -> (Option<Reader>, Vec<String>) {
    let mut notes = Vec::new();
    let id_url = integration.id_url.as_deref();
    if user_of(id_url).is_none() || org_of(id_url).is_none() {
        return (None, notes);
    }
    let Ok(config) = Config::load(&p.config_path) else {
        return (None, notes);
    };
    for (name, other) in &config.profiles {
        if *name == p.name || other.login_url != p.login_url || other.username == p.username {
            continue;
        }
        let Ok(store) = session::open_store(other) else {
            continue;
        };
        let stored = session::load_raw_record(other, store.as_ref())
            .await
            .ok()
            .flatten()
            .filter(|r| !r.is_tombstone());
        if let Some(r) = stored.filter(|r| same_org(r.id_url.as_deref(), id_url)) {
            let probed = probe::stored_token(http, other, Some(&r)).await;
            if probed.probe == TokenProbe::Alive {
                notes.push(format!(
                    "read the org with the stored token of profile `{name}` (same org), since no grant of this profile gets one"
                ));
                return (
                    Some(Reader {
                        profile: name.clone(),
                        record: r,
                        minted: false,
                    }),
                    notes,
                );
            }
        }
        if let Some(r) = dry_login(other, &store, &mut notes).await
            && same_org(r.id_url.as_deref(), id_url)
        {
            notes.push(format!(
                "read the org with profile `{name}` (same org): doctor minted an access token with its grant, into memory, since no grant of this profile gets one"
            ));
            return (
                Some(Reader {
                    profile: name.clone(),
                    record: r,
                    minted: true,
                }),
                notes,
            );
        }
    }
    (None, notes)
}

/// A dry login with the first grant of `p` that consumes nothing.
async fn dry_login(
    p: &Profile,
    store: &Arc<dyn Store>,
    notes: &mut Vec<String>,
) -> Option<TokenRecord> {
    for g in [Some(p.grant), p.fallback_grant].into_iter().flatten() {
        if !matches!(g, GrantName::JwtBearer | GrantName::ClientCredentials) {
            continue;
        }
        // Its notes are about the other profile's grants: only the outcome matters here.
        let (checked, _) = grants::dry_login(p, g, store).await.ok()?;
        if let Some(t) = checked.and_then(|c| c.token()) {
            return Some(t);
        }
        notes.push(format!(
            "profile `{}` could not read the org either: its {} grant got no token",
            p.name,
            g.as_str()
        ));
    }
    None
}
