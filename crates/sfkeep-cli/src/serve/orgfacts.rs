//! The SOQL evidence the forecasts and the status page read from the org, with a live token:
//! the integration user (`User.LastPasswordChangeDate`), its approvals (`OauthToken`), its
//! `LoginHistory`, the org's recent `SetupAuditTrail` (what the page's death causes are
//! correlated with, see [`super::death_causes`]), and the daily API limit (`/limits`). A query the org refuses becomes the
//! reason a forecast says "unknown", never a guess.

use serde::Serialize;
use serde_json::Value;
use sfkeep::clock::UnixMillis;
use sfkeep::diagnose::evidence::parse_sf_datetime;

use super::forecast::ApiUsage;

/// A stored access token is matched to an `OauthToken` row when the row's `LastUsedDate` is
/// this close to the integration's last refresh.
const LAST_USE_MATCH_MS: i64 = 120_000;

/// The integration user, as far as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserFacts {
    /// `User.Id`.
    pub id: String,
    /// `User.LastPasswordChangeDate`, or why it is missing.
    pub last_password_change: Result<UnixMillis, String>,
}

/// One `OauthToken` row: an approval of a connected app by the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// `AppName`.
    pub app_name: String,
    /// `CreatedDate`: when the user approved.
    pub created: UnixMillis,
    /// `LastUsedDate`.
    pub last_used: Option<UnixMillis>,
    /// `UseCount`.
    pub use_count: u64,
}

impl Approval {
    /// One line of evidence naming the approval (never its token).
    pub fn describe(&self) -> String {
        format!(
            "approval of {} created {}, last used {}, used {} time(s)",
            self.app_name,
            self.created,
            self.last_used
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".to_owned()),
            self.use_count
        )
    }
}

/// One `LoginHistory` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Login {
    /// `LoginTime`.
    pub at: UnixMillis,
    /// `SourceIp`.
    pub source_ip: String,
    /// `Status`.
    pub status: String,
    /// `Application`.
    pub application: String,
    /// `LoginType`.
    pub login_type: String,
}

/// One `SetupAuditTrail` row: a change an admin made in Setup (a password reset, a freeze, a
/// token revoke, an IP range change, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SetupChange {
    /// `CreatedDate`.
    pub at: UnixMillis,
    /// `Action` (e.g. `changedpassword`, `frozeuser`, `connectedapprevoketokens`).
    pub action: String,
    /// `Display`: the change in Setup's words.
    pub display: String,
}

/// What the last org check read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrgFacts {
    /// When (server clock).
    pub read_at: UnixMillis,
    /// The integration user.
    pub user: Result<UserFacts, String>,
    /// Its approvals (all apps).
    pub approvals: Result<Vec<Approval>, String>,
    /// Its recent logins, newest first.
    pub login_history: Result<Vec<Login>, String>,
    /// The org's recent Setup changes, newest first.
    pub setup_audit: Result<Vec<SetupChange>, String>,
    /// Why the daily API limit could not be read, if it could not.
    pub limits_error: Option<String>,
}

impl OrgFacts {
    /// The integration's own approval, and how it was told apart: by the profile's
    /// `app_name` and the last use matching the integration's last refresh, or as the only one.
    pub fn own_approval(
        &self,
        refresh_token_last_used: Option<UnixMillis>,
    ) -> Result<(&Approval, &'static str), String> {
        let rows = self.approvals.as_ref().map_err(Clone::clone)?;
        if let Some(last) = refresh_token_last_used
            && let Some(a) = rows
                .iter()
                .filter(|a| {
                    a.last_used
                        .is_some_and(|u| (u.0 - last.0).abs() <= LAST_USE_MATCH_MS)
                })
                .min_by_key(|a| a.last_used.map(|u| (u.0 - last.0).abs()))
        {
            return Ok((a, "its last use matches the integration's last refresh"));
        }
        match rows.as_slice() {
            [only] => Ok((only, "the user's only approval")),
            [] => Err("OauthToken shows no approval for the integration user".to_owned()),
            _ => Err(format!(
                "OauthToken shows {} approvals for the integration user and none was last used when the integration last refreshed, so which one is the integration's cannot be told",
                rows.len()
            )),
        }
    }

    /// The approvals of the profile's app: named by `app_name`, else the app of the
    /// integration's own approval, else the only app the user approved.
    pub fn app_approvals(
        &self,
        app_name: Option<&str>,
        refresh_token_last_used: Option<UnixMillis>,
    ) -> Result<(String, Vec<Approval>), String> {
        let rows = self.approvals.as_ref().map_err(Clone::clone)?;
        let app = match app_name {
            Some(a) => a.to_owned(),
            None => match self.own_approval(refresh_token_last_used) {
                Ok((a, _)) => a.app_name.clone(),
                Err(why) => {
                    let mut apps: Vec<&str> = rows.iter().map(|a| a.app_name.as_str()).collect();
                    apps.sort_unstable();
                    apps.dedup();
                    match apps.as_slice() {
                        [one] => (*one).to_owned(),
                        [] => return Ok(("the profile's app".to_owned(), Vec::new())),
                        _ => {
                            return Err(format!(
                                "{why}; the user approved {} apps ({}): set app_name in the profile",
                                apps.len(),
                                apps.join(", ")
                            ));
                        }
                    }
                }
            },
        };
        let mut mine: Vec<Approval> = rows.iter().filter(|a| a.app_name == app).cloned().collect();
        mine.sort_by_key(|a| a.created);
        Ok((app, mine))
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

async fn soql(client: &sfkeep::client::Client, q: &str) -> Result<Vec<Value>, String> {
    client
        .query(q)
        .collect_all()
        .await
        .map_err(|e| sfkeep::error::redact_secrets(&e.to_string()))
}

/// Reads the facts with `client` (whose manager must hold a live token: the caller checks,
/// so that reading the org never costs a token request).
pub async fn read(client: &sfkeep::client::Client, now: UnixMillis) -> Result<OrgFacts, String> {
    let me = client
        .get_json("/services/oauth2/userinfo")
        .await
        .map_err(|e| {
            format!(
                "userinfo failed: {}",
                sfkeep::error::redact_secrets(&e.to_string())
            )
        })?;
    let uid = s(&me, "user_id")
        .ok_or("userinfo gave no user_id")?
        .to_owned();
    let q = quote(&uid);
    let user = soql(
        client,
        &format!("SELECT Id, LastPasswordChangeDate FROM User WHERE Id = '{q}'"),
    )
    .await
    .and_then(|rows| {
        let row = rows.first().ok_or("the User row is not visible")?;
        Ok(UserFacts {
            id: uid.clone(),
            last_password_change: s(row, "LastPasswordChangeDate")
                .and_then(parse_sf_datetime)
                .ok_or_else(|| "User.LastPasswordChangeDate is empty".to_owned()),
        })
    })
    .map_err(|e| format!("reading User failed: {e}"));
    let approvals = soql(
        client,
        &format!(
            "SELECT AppName, CreatedDate, LastUsedDate, UseCount FROM OauthToken WHERE UserId = '{q}'"
        ),
    )
    .await
    .map(|rows| {
        rows.iter()
            .filter_map(|r| {
                Some(Approval {
                    app_name: s(r, "AppName").unwrap_or("").to_owned(),
                    created: parse_sf_datetime(s(r, "CreatedDate")?)?,
                    last_used: s(r, "LastUsedDate").and_then(parse_sf_datetime),
                    use_count: r.get("UseCount").and_then(Value::as_u64).unwrap_or(0),
                })
            })
            .collect()
    })
    .map_err(|e| format!("reading OauthToken failed: {e}"));
    let login_history = soql(
        client,
        &format!(
            "SELECT LoginTime, SourceIp, Status, Application, LoginType FROM LoginHistory WHERE UserId = '{q}' ORDER BY LoginTime DESC LIMIT 500"
        ),
    )
    .await
    .map(|rows| {
        rows.iter()
            .filter_map(|r| {
                Some(Login {
                    at: parse_sf_datetime(s(r, "LoginTime")?)?,
                    source_ip: s(r, "SourceIp").unwrap_or("").to_owned(),
                    status: s(r, "Status").unwrap_or("").to_owned(),
                    application: s(r, "Application").unwrap_or("").to_owned(),
                    login_type: s(r, "LoginType").unwrap_or("").to_owned(),
                })
            })
            .collect()
    })
    .map_err(|e| format!("reading LoginHistory failed: {e}"));
    let setup_audit = soql(
        client,
        "SELECT Action, Display, CreatedDate FROM SetupAuditTrail ORDER BY CreatedDate DESC LIMIT 200",
    )
    .await
    .map(|rows| {
        rows.iter()
            .filter_map(|r| {
                Some(SetupChange {
                    at: parse_sf_datetime(s(r, "CreatedDate")?)?,
                    action: s(r, "Action").unwrap_or("").to_owned(),
                    display: s(r, "Display").unwrap_or("").to_owned(),
                })
            })
            .collect()
    })
    .map_err(|e| format!("reading SetupAuditTrail failed: {e}"));
    Ok(OrgFacts {
        read_at: now,
        user,
        approvals,
        login_history,
        setup_audit,
        limits_error: None,
    })
}

/// Reads `DailyApiRequests` from `/limits`.
pub async fn api_usage(
    client: &sfkeep::client::Client,
    now: UnixMillis,
) -> Result<ApiUsage, String> {
    let v = client
        .get_json(&client.data_path("/limits"))
        .await
        .map_err(|e| {
            format!(
                "reading /limits failed: {}",
                sfkeep::error::redact_secrets(&e.to_string())
            )
        })?;
    let d = v
        .get("DailyApiRequests")
        .ok_or("/limits has no DailyApiRequests")?;
    let max = d
        .get("Max")
        .and_then(Value::as_u64)
        .ok_or("DailyApiRequests has no Max")?;
    let remaining = d
        .get("Remaining")
        .and_then(Value::as_u64)
        .ok_or("DailyApiRequests has no Remaining")?;
    Ok(ApiUsage {
        at: now,
        max,
        remaining,
    })
}
