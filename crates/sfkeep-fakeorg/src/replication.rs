//! The replication calls of the REST API (docs/salesforce-composite.md, "getUpdated and
//! getDeleted"): `sobjects/Account/updated/?start=&end=` lists the ids of the Accounts created
//! or changed in the window, `sobjects/Account/deleted/?start=&end=` the deleted ones with the
//! time of deletion. Both windows are whole minutes (seconds are dropped from `start` and
//! `end`), `end` past the org's clock is cut to it, and `start` may reach back 30 days.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::ids;
use crate::soql;
use crate::state::Inner;
use crate::wire;

/// How far back `start` may reach.
const MAX_AGE_DAYS: i64 = 30;

/// Which call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// getUpdated.
    Updated,
    /// getDeleted.
    Deleted,
}

fn replication_error(message: &str) -> Response {
    // UNVERIFIED wording; INVALID_REPLICATION_DATE is the API's code for a bad window.
    wire::rest_error(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", message)
}

fn minute(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(t)
}

/// Answers getUpdated or getDeleted for Account.
pub fn answer(inner: &Inner, kind: Kind, query: Option<&str>) -> Response {
    let pairs = ids::query_pairs(query);
    let param = |k: &str| ids::pair(&pairs, k).map(str::trim);
    let (Some(start), Some(end)) = (param("start"), param("end")) else {
        return wire::rest_error(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "start and end are required",
        );
    };
    let (Some(start), Some(end)) = (soql::parse_datetime(start), soql::parse_datetime(end)) else {
        return wire::rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "start and end must be ISO 8601 date-times, e.g. 2026-01-31T09:30:00Z",
        );
    };
    let now = inner.now();
    let start = minute(start);
    let end = minute(end.min(now));
    if end <= start {
        return replication_error("The end date must be later than the start date");
    }
    let earliest = minute(now - Duration::days(MAX_AGE_DAYS));
    if start < earliest {
        return replication_error(&format!(
            "start date cannot be more than {MAX_AGE_DAYS} days ago"
        ));
    }
    let stamp_in_window = |row: &crate::records::Row| {
        row.get("SystemModstamp")
            .and_then(Value::as_str)
            .and_then(soql::parse_datetime)
            .filter(|t| *t >= start && *t < end)
    };
    let covered = ids::sf_datetime(end);
    match kind {
        Kind::Updated => {
            let ids: Vec<&str> = inner
                .accounts
                .rows(false)
                .filter(|r| stamp_in_window(r).is_some())
                .filter_map(|r| r.get("Id").and_then(Value::as_str))
                .collect();
            wire::json(
                StatusCode::OK,
                &json!({"ids": ids, "latestDateCovered": covered}),
            )
        }
        Kind::Deleted => {
            let deleted: Vec<Value> = inner
                .accounts
                .rows(true)
                .filter(|r| r.get("IsDeleted") == Some(&Value::Bool(true)))
                .filter_map(|r| {
                    let when = stamp_in_window(r)?;
                    Some(json!({"id": r.get("Id")?, "deletedDate": ids::sf_datetime(when)}))
                })
                .collect();
            wire::json(
                StatusCode::OK,
                &json!({
                    "deletedRecords": deleted,
                    "earliestDateAvailable": ids::sf_datetime(earliest),
                    "latestDateCovered": covered,
                }),
            )
        }
    }
}
