//! Which credential a stored record belongs to: the [`StoreKey`] (derived from what the
//! configuration says about the identity, before any token exists) and the [`OrgUser`] a
//! token response names in its identity URL (after one exists).
//!
//! Two profiles of one connected app for two users must never share a key, or one would be
//! handed the other's token. The key therefore names the user where the configuration does
//! (the username), and for a refresh token the token itself, by a salted hash (see
//! [`KeyIdentity::key`] and `docs/redis-protocol.md#keys`). The org and user a record belongs
//! to are only known from a token response; the manager compares them before it adopts a
//! record (`src/manager/store_sync.rs`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::grant::Grant;
use crate::secret::RefreshToken;
use crate::token::{GrantKind, TokenRecord};

/// The identity of one credential in a store: a hash, never a secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// `hex(sha256(login_url | client_id | subject | grant))[..16]`: the key formula. Every
    /// key is this hash; [`KeyIdentity::key`] says what goes into `subject`.
    pub fn derive(login_url: &str, client_id: &str, subject: &str, grant: GrantKind) -> Self {
        let mut h = Sha256::new();
        for part in [login_url, client_id, subject, grant.as_str()] {
            h.update(part.as_bytes());
            h.update(b"|");
        }
        Self(hex(&h.finalize()[..8]))
    }

    /// The key of `grant`'s credential at `login_url`: what [`crate::TokenManagerBuilder`]
    /// uses unless told otherwise. A refresh-token grant's key names its refresh token (the
    /// one passed in: the bootstrap token, not a rotated successor), so build the grant from
    /// the same configured token in every process, or set the key explicitly.
    pub fn for_grant(login_url: &str, grant: &Grant) -> Self {
        Self::identity_of_grant(login_url, grant).key()
    }

    /// The key an earlier sfkeep gave `grant`'s credential, before keys named the identity,
    /// when it differs from [`StoreKey::for_grant`]: a record found only there is never
    /// adopted (`docs/token-lifecycle.md`, "Store keys").
    pub fn legacy_for_grant(login_url: &str, grant: &Grant) -> Option<Self> {
        let id = Self::identity_of_grant(login_url, grant);
        let legacy = id.legacy_key();
        (legacy != id.key()).then_some(legacy)
    }

    fn identity_of_grant<'a>(login_url: &'a str, grant: &'a Grant) -> KeyIdentity<'a> {
        let refresh_token = match grant {
            Grant::RefreshToken { refresh_token, .. } => Some(refresh_token),
            _ => None,
        };
        KeyIdentity::new(login_url, grant.kind())
            .client_id(grant.client_id())
            .username(grant.subject())
            .bootstrap_refresh_token(refresh_token)
    }

    /// The key of a credential of grant `kind` for the app `client_id` and the user
    /// `username`, before the grant itself is built: [`KeyIdentity::key`] without a refresh
    /// token.
    pub fn for_identity(
        login_url: &str,
        kind: GrantKind,
        client_id: Option<&str>,
        username: Option<&str>,
    ) -> Self {
        KeyIdentity::new(login_url, kind)
            .client_id(client_id)
            .username(username)
            .key()
    }

    /// A key from its string form.
    pub fn from_string(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.0)
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the configuration says about whose credential it is: the inputs of a [`StoreKey`].
/// Every setter is optional and defaults to "not configured".
#[derive(Clone, Copy)]
pub struct KeyIdentity<'a> {
    login_url: &'a str,
    kind: GrantKind,
    client_id: Option<&'a str>,
    username: Option<&'a str>,
    refresh_token: Option<&'a RefreshToken>,
    label: Option<&'a str>,
}

impl fmt::Debug for KeyIdentity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyIdentity")
            .field("login_url", &self.login_url)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("refresh_token", &self.refresh_token.map(|_| "[redacted]"))
            .field("label", &self.label)
            .finish()
    }
}

/// The salt label of the refresh-token fingerprint inside a key (its format version).
const RT_FINGERPRINT_LABEL: &[u8] = b"sfkeep store key v2: refresh token";

impl<'a> KeyIdentity<'a> {
    /// A credential of grant `kind` at `login_url`, nothing else known.
    pub fn new(login_url: &'a str, kind: GrantKind) -> Self {
        Self {
            login_url,
            kind,
            client_id: None,
            username: None,
            refresh_token: None,
            label: None,
        }
    }

    /// The connected app's consumer key (default: none). Ignored for the SOAP login.
    pub fn client_id(mut self, client_id: Option<&'a str>) -> Self {
        self.client_id = client_id;
        self
    }

    /// The user the credential is for, when configured (default: none).
    pub fn username(mut self, username: Option<&'a str>) -> Self {
        self.username = username;
        self
    }

    /// The configured (bootstrap) refresh token, for the refresh-token grant (default: none;
    /// ignored for other grants). Not a rotated successor: the key must stay the same across
    /// rotations.
    pub fn bootstrap_refresh_token(mut self, token: Option<&'a RefreshToken>) -> Self {
        self.refresh_token = token;
        self
    }

    /// A name that tells this credential apart from others of the same app when the
    /// configuration names neither a user nor a refresh token (the CLI: the profile's name;
    /// default: none). Ignored when either is configured, and for grants that name their user.
    pub fn label(mut self, label: Option<&'a str>) -> Self {
        self.label = label;
        self
    }

    fn effective_client_id(&self) -> &'a str {
        match self.kind {
            GrantKind::SoapLogin => "",
            _ => self.client_id.unwrap_or(""),
        }
    }

    fn effective_refresh_token(&self) -> Option<&'a RefreshToken> {
        match self.kind {
            GrantKind::RefreshToken => self.refresh_token,
            _ => None,
        }
    }

    /// Whether the grant names its user itself (JWT bearer, password, SOAP login): their keys
    /// always carried the username.
    fn grant_names_user(&self) -> bool {
        matches!(
            self.kind,
            GrantKind::JwtBearer | GrantKind::Password | GrantKind::SoapLogin
        )
    }

    /// The key. `subject` in [`StoreKey::derive`] is:
    ///
    /// - for a grant that names its user (JWT bearer, password, SOAP login): the username, as
    ///   it always was;
    /// - for any other grant (refresh token, client credentials) with a username or a
    ///   refresh token configured: `v2|<len>:<username>|<fingerprint>`, where the fingerprint
    ///   is `hex(HMAC-SHA256(label | login_url | client_id, refresh_token))`: a salted hash,
    ///   so the key cannot be matched against a table of tokens of other apps, and the key
    ///   itself keeps only 64 bits of the outer hash;
    /// - with neither configured but a [`KeyIdentity::label`]: `v2|label:<len>:<label>`;
    /// - with none of them: empty, as before (nothing in the configuration tells such a
    ///   credential apart from another of the same app; the manager still checks the org and
    ///   user of what it adopts).
    pub fn key(&self) -> StoreKey {
        StoreKey::derive(
            self.login_url,
            self.effective_client_id(),
            &self.subject(),
            self.kind,
        )
    }

    /// The key this credential had before keys named the identity (the username counted only
    /// for grants that name a user; the refresh token never). Equal to [`KeyIdentity::key`]
    /// when the formula did not change for it.
    pub fn legacy_key(&self) -> StoreKey {
        let subject = if self.grant_names_user() {
            self.username.unwrap_or("")
        } else {
            ""
        };
        StoreKey::derive(
            self.login_url,
            self.effective_client_id(),
            subject,
            self.kind,
        )
    }

    fn subject(&self) -> String {
        if self.grant_names_user() {
            return self.username.unwrap_or("").to_owned();
        }
        let rt = self.effective_refresh_token();
        if self.username.is_none() && rt.is_none() {
            return match self.label {
                Some(l) => format!("v2|label:{}:{l}", l.len()),
                None => String::new(),
            };
        }
        let user = self.username.unwrap_or("");
        let fp = rt
            .map(|t| self.refresh_token_fingerprint(t))
            .unwrap_or_default();
        format!("v2|{}:{user}|{fp}", user.len())
    }

    fn refresh_token_fingerprint(&self, token: &RefreshToken) -> String {
        let mut salt = RT_FINGERPRINT_LABEL.to_vec();
        for part in [self.login_url, self.effective_client_id()] {
            salt.push(b'|');
            salt.extend_from_slice(part.as_bytes());
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&salt).expect("HMAC takes any key length");
        mac.update(token.expose_secret().as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// The org and user a token belongs to, from the identity URL of its token response
/// (`https://login.salesforce.com/id/{orgId}/{userId}`; `docs/salesforce-wire.md` §3.3).
/// Ids are compared on their 15-character case-sensitive form, so the 15- and 18-character
/// spellings of one id are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrgUser {
    org_id: String,
    user_id: String,
}

impl OrgUser {
    /// Parses an identity URL. Anything but `http(s)://host/…/id/<org id>/<user id>` (an org
    /// id `00D…` and a user id `005…`, 15 or 18 letters and digits, no query) is an error:
    /// a record is never attributed on a guess.
    pub fn from_id_url(url: &str) -> Result<Self, IdUrlError> {
        let bad = |what: IdUrlProblem| IdUrlError {
            url: url.to_owned(),
            problem: what,
        };
        let parsed = url::Url::parse(url).map_err(|_| bad(IdUrlProblem::NotAUrl))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(bad(IdUrlProblem::NotAUrl));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad(IdUrlProblem::UnexpectedPath));
        }
        let segments: Vec<&str> = parsed
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let [.., id, org, user] = segments.as_slice() else {
            return Err(bad(IdUrlProblem::UnexpectedPath));
        };
        if *id != "id" {
            return Err(bad(IdUrlProblem::UnexpectedPath));
        }
        let org = salesforce_id(org, "00D").ok_or_else(|| bad(IdUrlProblem::BadOrgId))?;
        let user = salesforce_id(user, "005").ok_or_else(|| bad(IdUrlProblem::BadUserId))?;
        Ok(Self {
            org_id: org,
            user_id: user,
        })
    }

    /// The identity of `record`: `None` when it has no identity URL (a SOAP login, a logout
    /// tombstone), else what [`OrgUser::from_id_url`] makes of it.
    pub fn of_record(record: &TokenRecord) -> Option<Result<Self, IdUrlError>> {
        record.id_url.as_deref().map(Self::from_id_url)
    }

    /// The org id (15 characters).
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The user id (15 characters).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl fmt::Display for OrgUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "org {} user {}", self.org_id, self.user_id)
    }
}

/// The 15-character form of a Salesforce id with key prefix `prefix`, if `s` is one.
fn salesforce_id(s: &str, prefix: &str) -> Option<String> {
    let ok = matches!(s.len(), 15 | 18)
        && s.starts_with(prefix)
        && s.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| s[..15].to_owned())
}

/// An identity URL that does not have the shape sfkeep attributes records by.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the identity URL `{url}` {problem}")]
pub struct IdUrlError {
    url: String,
    problem: IdUrlProblem,
}

impl IdUrlError {
    /// What is wrong with it.
    pub fn problem(&self) -> IdUrlProblem {
        self.problem
    }
}

/// What is wrong with an identity URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdUrlProblem {
    /// Not an absolute http(s) URL.
    #[error("is not an http(s) URL")]
    NotAUrl,
    /// The path does not end in `/id/<org id>/<user id>`, or it has a query.
    #[error("does not end in /id/<org id>/<user id>")]
    UnexpectedPath,
    /// The org id is not a 15- or 18-character id starting `00D`.
    #[error("has no org id (00D…, 15 or 18 characters) where one belongs")]
    BadOrgId,
    /// The user id is not a 15- or 18-character id starting `005`.
    #[error("has no user id (005…, 15 or 18 characters) where one belongs")]
    BadUserId,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "https://login.salesforce.com";

    fn rt(s: &str) -> RefreshToken {
        RefreshToken::new(s)
    }

    #[test]
    fn legacy_formula_is_unchanged_where_the_configuration_names_no_one() {
        // The pinned value of the first key format (a store written before keeps working).
        let k = StoreKey::derive(LOGIN, "cid", "", GrantKind::RefreshToken);
        let id = KeyIdentity::new(LOGIN, GrantKind::RefreshToken).client_id(Some("cid"));
        assert_eq!(id.key(), k);
        assert_eq!(id.legacy_key(), k);
        let jwt = KeyIdentity::new(LOGIN, GrantKind::JwtBearer)
            .client_id(Some("cid"))
            .username(Some("u@x"));
        assert_eq!(
            jwt.key(),
            StoreKey::derive(LOGIN, "cid", "u@x", GrantKind::JwtBearer)
        );
        assert_eq!(jwt.key(), jwt.legacy_key());
    }

    #[test]
    fn two_refresh_tokens_or_two_users_of_one_app_get_two_keys() {
        let base = KeyIdentity::new(LOGIN, GrantKind::RefreshToken).client_id(Some("cid"));
        let (a, b) = (rt("5Aep861_a"), rt("5Aep861_b"));
        let ka = base.bootstrap_refresh_token(Some(&a)).key();
        let kb = base.bootstrap_refresh_token(Some(&b)).key();
        assert_ne!(ka, kb);
        assert_ne!(ka, base.key());
        assert_eq!(
            base.bootstrap_refresh_token(Some(&a)).legacy_key(),
            base.key()
        );
        let ua = base.username(Some("a@x")).key();
        let ub = base.username(Some("b@x")).key();
        assert_ne!(ua, ub);
        assert_ne!(ua, base.key());
        let cc = KeyIdentity::new(LOGIN, GrantKind::ClientCredentials).client_id(Some("cid"));
        assert_ne!(
            cc.username(Some("a@x")).key(),
            cc.username(Some("b@x")).key()
        );
        // The refresh token counts only for its grant.
        assert_eq!(cc.bootstrap_refresh_token(Some(&a)).key(), cc.key());
        // The same inputs, the same key (every process of a fleet).
        assert_eq!(base.bootstrap_refresh_token(Some(&a)).key(), ka);
    }

    #[test]
    fn a_label_counts_only_where_the_configuration_names_no_one() {
        let base = KeyIdentity::new(LOGIN, GrantKind::RefreshToken).client_id(Some("cid"));
        let (a, b) = (base.label(Some("a")), base.label(Some("b")));
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), base.key());
        assert_eq!(a.legacy_key(), base.key());
        let cc = KeyIdentity::new(LOGIN, GrantKind::ClientCredentials).client_id(Some("cid"));
        assert_ne!(cc.label(Some("a")).key(), cc.label(Some("b")).key());
        // A configured user or refresh token is the identity; the label then does not count.
        assert_eq!(a.username(Some("u@x")).key(), b.username(Some("u@x")).key());
        let t = rt("tok");
        assert_eq!(
            a.bootstrap_refresh_token(Some(&t)).key(),
            b.bootstrap_refresh_token(Some(&t)).key()
        );
        let jwt = KeyIdentity::new(LOGIN, GrantKind::JwtBearer)
            .client_id(Some("cid"))
            .username(Some("u@x"));
        assert_eq!(jwt.label(Some("a")).key(), jwt.key());
        // A label cannot pose as a username.
        assert_ne!(
            base.label(Some("x")).key(),
            base.username(Some("label:1:x")).key()
        );
    }

    #[test]
    fn username_and_fingerprint_cannot_be_shifted_into_each_other() {
        let base = KeyIdentity::new(LOGIN, GrantKind::RefreshToken).client_id(Some("cid"));
        let t = rt("tok");
        let fp = base.refresh_token_fingerprint(&t);
        let crafted = format!("a|{fp}");
        assert_ne!(
            base.username(Some("a"))
                .bootstrap_refresh_token(Some(&t))
                .key(),
            base.username(Some(&crafted)).key()
        );
    }

    #[test]
    fn the_fingerprint_is_salted_by_the_app_and_never_the_token() {
        let t = rt("5Aep861secretvalue");
        let a = KeyIdentity::new(LOGIN, GrantKind::RefreshToken).client_id(Some("app1"));
        let b = KeyIdentity::new(LOGIN, GrantKind::RefreshToken).client_id(Some("app2"));
        let (fa, fb) = (
            a.refresh_token_fingerprint(&t),
            b.refresh_token_fingerprint(&t),
        );
        assert_ne!(fa, fb);
        assert_ne!(fa, hex(&Sha256::digest(t.expose_secret().as_bytes())));
        let shown = format!(
            "{:?} {}",
            a.bootstrap_refresh_token(Some(&t)),
            a.bootstrap_refresh_token(Some(&t)).key()
        );
        assert!(!shown.contains("secretvalue"), "{shown}");
    }

    #[test]
    fn for_grant_names_the_refresh_token_it_was_built_with() {
        let g = |t: &str| Grant::refresh_token("cid", None, rt(t));
        assert_ne!(
            StoreKey::for_grant(LOGIN, &g("a")),
            StoreKey::for_grant(LOGIN, &g("b"))
        );
        assert_eq!(
            StoreKey::for_grant(LOGIN, &g("a")),
            KeyIdentity::new(LOGIN, GrantKind::RefreshToken)
                .client_id(Some("cid"))
                .bootstrap_refresh_token(Some(&rt("a")))
                .key()
        );
    }

    #[test]
    fn identity_urls_parse_only_in_their_documented_shape() {
        let a = OrgUser::from_id_url(
            "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU",
        )
        .unwrap();
        let a15 =
            OrgUser::from_id_url("https://test.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P")
                .unwrap();
        assert_eq!(a, a15);
        assert_eq!(a.org_id(), "00Dx0000000BV7z");
        assert_eq!(a.user_id(), "005x00000012Q9P");
        assert!(
            OrgUser::from_id_url("http://127.0.0.1:8080/id/00Dx0000000BV7z/005x00000012Q9P/")
                .is_ok()
        );
        let problem = |u: &str| OrgUser::from_id_url(u).unwrap_err().problem();
        assert_eq!(problem("i"), IdUrlProblem::NotAUrl);
        assert_eq!(
            problem("ftp://h/id/00Dx0000000BV7z/005x00000012Q9P"),
            IdUrlProblem::NotAUrl
        );
        assert_eq!(
            problem("https://h/x/00Dx0000000BV7z/005x00000012Q9P"),
            IdUrlProblem::UnexpectedPath
        );
        assert_eq!(
            problem("https://h/id/00Dx0000000BV7z"),
            IdUrlProblem::UnexpectedPath
        );
        assert_eq!(
            problem("https://h/id/00Dx0000000BV7z/005x00000012Q9P?u=1"),
            IdUrlProblem::UnexpectedPath
        );
        assert_eq!(
            problem("https://h/id/001x0000000BV7z/005x00000012Q9P"),
            IdUrlProblem::BadOrgId
        );
        assert_eq!(
            problem("https://h/id/00Dx0000000BV7z/005x0000"),
            IdUrlProblem::BadUserId
        );
        assert_eq!(
            problem("https://h/id/00Dx0000000BV7z/005x00000012Q9%21"),
            IdUrlProblem::BadUserId
        );
        let e = OrgUser::from_id_url("https://h/id/00D/005").unwrap_err();
        assert!(e.to_string().contains("https://h/id/00D/005"), "{e}");
    }
}
