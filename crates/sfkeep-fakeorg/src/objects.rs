//! The queryable objects: Account plus the objects diagnosis reads (User, UserLogin,
//! LoginHistory, AuthSession, OauthToken, SetupAuditTrail), materialised as rows from the
//! org model, and the SOQL entry point shared by REST and SOAP.

use serde_json::{Value, json};

use crate::ids;
use crate::soql;
use crate::state::{Inner, Org, Row};

/// Canonical names of the objects a query may read.
pub const OBJECTS: &[&str] = &[
    "Account",
    "User",
    "UserLogin",
    "LoginHistory",
    "AuthSession",
    "OauthToken",
    "SetupAuditTrail",
];

/// A failed query: errorCode and message, as REST and SOAP both report them.
#[derive(Debug)]
pub struct QueryError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD` or `INVALID_TYPE`.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// The result of a query.
pub struct QueryResult {
    /// Canonical object name.
    pub object: String,
    /// Matching rows, projected to the SELECT list.
    pub rows: Vec<Row>,
    /// `SELECT COUNT() …`: only `totalSize` matters.
    pub count_only: bool,
    /// `totalSize`.
    pub total: usize,
    /// Selected fields in SELECT order (canonical names).
    pub fields: Vec<String>,
}

/// Parses and runs `soql`. `all` includes deleted Accounts (queryAll); `current` is the
/// caller's session token (AuthSession.IsCurrent).
pub fn run(
    org: &Org,
    inner: &Inner,
    soql_text: &str,
    all: bool,
    current: &str,
) -> Result<QueryResult, QueryError> {
    let query = soql::parse(soql_text).map_err(|e| QueryError {
        code: e.error_code,
        message: e.message,
    })?;
    let Some(object) = OBJECTS
        .iter()
        .find(|o| o.eq_ignore_ascii_case(&query.object))
    else {
        let e = query.invalid_type_error();
        return Err(QueryError {
            code: e.error_code,
            message: e.message,
        });
    };
    let rows = rows_of(org, inner, object, all, current);
    let now = inner.now();
    let to_err = |e: soql::SoqlError| QueryError {
        code: e.error_code,
        message: e.message,
    };
    let count = if query.count_only {
        Some(query.count(&rows, now).map_err(to_err)?)
    } else {
        None
    };
    let fields = query.select_fields(&rows).map_err(to_err)?;
    let rows = query.execute(&rows, now).map_err(to_err)?;
    Ok(QueryResult {
        fields,
        object: (*object).to_owned(),
        total: count.unwrap_or(rows.len()),
        rows,
        count_only: query.count_only,
    })
}

/// Every row of `object` as the org sees it now.
pub fn rows_of(org: &Org, inner: &Inner, object: &str, all: bool, current: &str) -> Vec<Row> {
    let now = inner.now();
    let mut out = Vec::new();
    match object {
        "Account" => return inner.accounts.rows(all),
        "User" => {
            for u in &inner.users {
                out.push(row(json!({
                    "Id": u.id,
                    "Username": u.username,
                    "Name": u.full_name(),
                    "FirstName": u.first_name,
                    "LastName": u.last_name,
                    "Email": u.email,
                    "ProfileId": u.profile_id,
                    "IsActive": u.active,
                    "LastPasswordChangeDate": ids::sf_datetime(u.last_password_change),
                    "LastLoginDate": u.last_login.map(ids::sf_datetime),
                })));
            }
        }
        "UserLogin" => {
            for u in &inner.users {
                out.push(row(json!({
                    "Id": u.login_id,
                    "UserId": u.id,
                    "IsFrozen": u.frozen,
                    "IsPasswordLocked": false,
                    "LastModifiedDate": ids::sf_datetime(u.login_modified),
                })));
            }
        }
        "LoginHistory" => out = inner.login_history.clone(),
        "SetupAuditTrail" => out = inner.audit.clone(),
        "AuthSession" => {
            let mut sessions: Vec<_> = inner
                .sessions
                .values()
                .filter(|s| now < s.expires_at())
                .collect();
            sessions.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
            for s in sessions {
                out.push(row(json!({
                    "Id": s.id,
                    "UsersId": s.user_id,
                    "CreatedDate": ids::sf_datetime(s.created),
                    "LastModifiedDate": ids::sf_datetime(s.last_modified),
                    "NumSecondsValid": s.timeout_secs,
                    "SourceIp": s.source_ip.to_string(),
                    // UNVERIFIED: "Oauth2" for OAuth sessions; the docs list UI/Content/API/Visualforce.
                    "SessionType": s.session_type,
                    "LoginType": s.login_type,
                    "IsCurrent": s.token == current,
                    "ParentId": s.id,
                })));
            }
        }
        "OauthToken" => {
            let mut fams: Vec<_> = inner.families.values().filter(|f| !f.revoked).collect();
            fams.sort_by_key(|f| f.id);
            for f in fams {
                let app = inner
                    .app_by_client_id(&f.client_id)
                    .map(|i| inner.apps[i].name.clone());
                out.push(row(json!({
                    // The doc: "Id (reserved; always null)".
                    "Id": null,
                    "AppName": app,
                    "UserId": f.user_id,
                    "UseCount": f.use_count,
                    "LastUsedDate": ids::sf_datetime(f.last_used),
                    "CreatedDate": ids::sf_datetime(f.created),
                })));
            }
        }
        _ => {}
    }
    let _ = org;
    out
}

fn row(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => Row::new(),
    }
}
