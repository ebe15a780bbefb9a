//! The queryable objects: Account plus the objects diagnosis reads (User, UserLogin,
//! LoginHistory, AuthSession, OauthToken, SetupAuditTrail), materialised as rows from the
//! org model, and the SOQL entry point shared by REST and SOAP.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::ids;
use crate::records::Row;
use crate::soql;
use crate::state::{Inner, Org};

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
}

/// A query's result borrowed from the org's records (see [`with_selection`]).
pub struct Selected<'a> {
    /// Canonical object name.
    pub object: &'static str,
    /// Selected fields in SELECT order (canonical names).
    pub fields: Vec<String>,
    /// Matching rows (all their fields: serialize only `fields`).
    pub rows: Vec<&'a Row>,
    /// `SELECT COUNT() …`: only `total` matters.
    pub count_only: bool,
    /// `totalSize`.
    pub total: usize,
}

/// Parses and runs `soql` and hands the matching rows, borrowed, to `f`: REST and Bulk
/// serialize them straight from the org's records instead of copying 100,000 of them first.
/// `all` includes deleted Accounts (queryAll); `current` is the caller's session token
/// (AuthSession.IsCurrent).
pub fn with_selection<T>(
    org: &Org,
    inner: &Inner,
    soql_text: &str,
    all: bool,
    current: &str,
    f: impl FnOnce(Selected<'_>) -> T,
) -> Result<T, QueryError> {
    let query = soql::parse(soql_text).map_err(|e| QueryError {
        code: e.error_code,
        message: e.message,
    })?;
    let Some(object) = OBJECTS
        .iter()
        .find(|o| o.eq_ignore_ascii_case(&query.object))
        .filter(|o| readable(inner, o, current))
    else {
        let e = query.invalid_type_error();
        return Err(QueryError {
            code: e.error_code,
            message: e.message,
        });
    };
    let rows = rows_of(org, inner, object, all, current);
    // Accounts have a fixed set of fields; the other objects' fields are their rows' keys.
    let fields = (*object == "Account").then_some(crate::records::FIELDS);
    let s = query
        .select(&rows, fields, inner.now())
        .map_err(|e| QueryError {
            code: e.error_code,
            message: e.message,
        })?;
    Ok(f(Selected {
        object,
        fields: s.fields,
        total: s.count,
        rows: s.rows,
        count_only: query.count_only,
    }))
}

/// Parses and runs `soql`, returning owned rows projected to the SELECT list. `all`
/// includes deleted Accounts (queryAll); `current` is the caller's session token
/// (AuthSession.IsCurrent).
pub fn run(
    org: &Org,
    inner: &Inner,
    soql_text: &str,
    all: bool,
    current: &str,
) -> Result<QueryResult, QueryError> {
    with_selection(org, inner, soql_text, all, current, |s| QueryResult {
        rows: soql::project(&s.fields, &s.rows),
        object: s.object.to_owned(),
        total: s.total,
        count_only: s.count_only,
    })
}

/// Whether the user of session `current` may read `object`. A user without the permission
/// behind an object (`/_fake/users/{username}/permissions`) is told it does not exist, as
/// Salesforce does (`INVALID_TYPE`), not that access is denied.
pub fn readable(inner: &Inner, object: &str, current: &str) -> bool {
    inner
        .sessions
        .get(current)
        .and_then(|s| inner.user_by_id(&s.user_id))
        .is_none_or(|i| {
            !inner.users[i]
                .unreadable_objects
                .iter()
                .any(|u| u == object)
        })
}

/// Every row of `object` as the org sees it now.
/// Accounts are borrowed, not cloned; the other objects are materialised from the org model.
pub fn rows_of<'a>(
    org: &Org,
    inner: &'a Inner,
    object: &str,
    all: bool,
    current: &str,
) -> Vec<Cow<'a, Row>> {
    let now = inner.now();
    let mut out = Vec::new();
    match object {
        "Account" => return inner.accounts.rows(all).map(Cow::Borrowed).collect(),
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
        "LoginHistory" => return inner.login_history.iter().map(Cow::Borrowed).collect(),
        "SetupAuditTrail" => return inner.audit.iter().map(Cow::Borrowed).collect(),
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
    out.into_iter().map(Cow::Owned).collect()
}

fn row(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => Row::new(),
    }
}

/// The three-character id prefix of an object's records (`null` for OauthToken, whose Id is
/// always null).
pub fn key_prefix(object: &str) -> Option<&'static str> {
    Some(match object {
        "Account" => "001",
        "User" => "005",
        "UserLogin" => "0Yw",
        "LoginHistory" => "0Ya",
        "AuthSession" => "0Ak",
        "SetupAuditTrail" => "0Ym",
        _ => return None,
    })
}

/// The record of `object` whose Id is `id` (15 or 18 characters), with every field.
pub fn row_by_id(org: &Org, inner: &Inner, object: &str, id: &str, current: &str) -> Option<Row> {
    if id.len() != 15 && id.len() != 18 {
        return None;
    }
    if !readable(inner, object, current) {
        return None;
    }
    let id15 = id.get(..15)?;
    rows_of(org, inner, object, false, current)
        .into_iter()
        .find(|r| {
            r.get("Id")
                .and_then(Value::as_str)
                .is_some_and(|rid| rid.starts_with(id15))
        })
        .map(std::borrow::Cow::into_owned)
}
