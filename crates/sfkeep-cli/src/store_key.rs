//! The store key of a profile: which stored identity its tokens belong to. Shared by the
//! session (which opens the store) and the kill switch (one marker per stored identity).

use sfkeep::secret::RefreshToken;
use sfkeep::store::{KeyIdentity, StoreKey};

use crate::config::Profile;

/// The profile's store key (a hash, safe to show): the one the library derives for the
/// profile's primary grant, naming its username and its configured refresh token.
pub fn store_key(p: &Profile) -> StoreKey {
    let rt = configured_refresh_token(p);
    key_identity(p, rt.as_ref()).key()
}

/// What the profile says about whose credential it is.
pub(crate) fn key_identity<'a>(p: &'a Profile, rt: Option<&'a RefreshToken>) -> KeyIdentity<'a> {
    KeyIdentity::new(&p.login_url, p.grant.kind())
        .client_id(p.client_id.as_deref())
        .username(p.username.as_deref())
        .bootstrap_refresh_token(rt)
        .label(Some(&p.name))
}

/// The configured refresh token, for the key. One that cannot be read (a missing file or
/// variable: the grant reports it) stands as its source, so the key is still this profile's
/// own and never the key of a profile that configures none.
pub(crate) fn configured_refresh_token(p: &Profile) -> Option<RefreshToken> {
    let r = p.refresh_token.as_ref()?;
    Some(match p.optional_secret(&p.refresh_token, "refresh_token") {
        Ok(Some(v)) => RefreshToken::new(v.as_str()),
        _ => RefreshToken::new(format!("unreadable:{}", r.source())),
    })
}
