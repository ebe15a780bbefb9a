//! Who a profile's token acts as (what `sf org display` shows): the username, the org and user
//! ids, the instance and the API version. From the org's userinfo answer when the token was
//! verified, else from what is stored (the ids are in the identity URL of the token response,
//! the username in the profile).

use serde_json::{Value, json};
use sfkeep::client::Client;
use sfkeep::token::TokenRecord;

use crate::config::Profile;

/// Where an [`Identity`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `/services/oauth2/userinfo` answered for the token just now.
    Userinfo,
    /// The stored token's identity URL and the profile; nothing was asked of the org.
    Stored,
}

/// Who the token acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user's login name.
    pub username: Option<String>,
    /// The user's id (`005…`).
    pub user_id: Option<String>,
    /// The org's id (`00D…`).
    pub org_id: Option<String>,
    /// Where API calls go.
    pub instance_url: String,
    /// The API version the profile uses.
    pub api_version: String,
    /// Where this came from.
    pub source: Source,
}

/// `(org id, user id)` from an identity URL `…/id/ORG_ID/USER_ID`.
pub fn ids_from_identity_url(url: &str) -> Option<(String, String)> {
    let path = url::Url::parse(url).ok()?.path().to_owned();
    let mut parts = path.rsplit('/').filter(|s| !s.is_empty());
    let user = parts.next()?.to_owned();
    let org = parts.next()?.to_owned();
    (parts.next() == Some("id")).then_some((org, user))
}

impl Identity {
    /// From the stored record and the profile, without a call.
    pub fn stored(p: &Profile, rec: &TokenRecord) -> Self {
        let ids = rec.id_url.as_deref().and_then(ids_from_identity_url);
        Self {
            username: p.username.clone(),
            user_id: ids.as_ref().map(|i| i.1.clone()),
            org_id: ids.map(|i| i.0),
            instance_url: rec.instance_url.clone(),
            api_version: p.api_version.clone(),
            source: Source::Stored,
        }
    }

    /// From a userinfo answer for the token of `rec`.
    pub fn from_userinfo(p: &Profile, rec: &TokenRecord, info: &Value) -> Self {
        let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
        let stored = Self::stored(p, rec);
        Self {
            username: text("preferred_username").or(stored.username),
            user_id: text("user_id").or(stored.user_id),
            org_id: text("organization_id").or(stored.org_id),
            source: Source::Userinfo,
            ..stored
        }
    }

    /// Asks the org who the manager's token acts as (healing a dead session once, like any
    /// call), and returns it with the record the answer is for.
    pub async fn verify(p: &Profile, client: &Client) -> sfkeep::Result<(Self, TokenRecord)> {
        let info = client.get_json("/services/oauth2/userinfo").await?;
        let token = client.manager().token().await?;
        let rec = token.record().clone();
        Ok((Self::from_userinfo(p, &rec, &info), rec))
    }

    /// The JSON form (`identity` in `login`, `status` and `token --verify` results).
    pub fn to_json(&self) -> Value {
        json!({
            "username": self.username,
            "user_id": self.user_id,
            "org_id": self.org_id,
            "instance_url": self.instance_url,
            "api_version": self.api_version,
            "source": match self.source {
                Source::Userinfo => "userinfo",
                Source::Stored => "stored",
            },
        })
    }

    /// Aligned lines for a person, each `label` padded to `width`.
    pub fn lines(&self, width: usize) -> Vec<String> {
        let username = match (&self.username, self.source) {
            (Some(u), Source::Userinfo) => u.clone(),
            (Some(u), Source::Stored) => format!("{u} (from the profile)"),
            (None, _) => "unknown until verified (`sfkeep status --verify`)".to_owned(),
        };
        let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_owned());
        vec![
            format!("{:<width$}{username}", "user"),
            format!("{:<width$}{}", "user id", or_unknown(&self.user_id)),
            format!("{:<width$}{}", "org id", or_unknown(&self.org_id)),
            format!("{:<width$}{}", "instance", self.instance_url),
            format!("{:<width$}v{}", "api version", self.api_version),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_identity_url() {
        assert_eq!(
            ids_from_identity_url(
                "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6A"
            ),
            Some(("00Dxx0000001gPL".into(), "005xx000001Sv6A".into()))
        );
        assert_eq!(ids_from_identity_url("https://x/services/data"), None);
        assert_eq!(ids_from_identity_url("not a url"), None);
    }
}
