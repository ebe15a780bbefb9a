//! Bulk API 2.0 query jobs under `/services/data/vXX.X/jobs/query`: create, get, list,
//! abort, delete, and CSV results paged with `Sforce-Locator`. The query runs when the job
//! is created; the job reports `UploadComplete` on creation and `JobComplete` afterwards,
//! so a polling client sees one round of progress. Session death is the REST 401 (docs/salesforce-wire.md §6.2).

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids;
use crate::jobs::{CsvResults, QueryJob};
use crate::objects;
use crate::state::{Inner, Org};
use crate::wire;

/// Routes `jobs/query[/{id}[/results]]`.
#[allow(clippy::too_many_arguments)]
pub fn route(
    org: &Org,
    inner: &mut Inner,
    version: &str,
    token: &str,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    rest: &[&str],
) -> Response {
    match (method, rest) {
        (&Method::POST, []) => create(org, inner, version, token, body),
        (&Method::GET, []) => {
            let jobs: Vec<Value> = inner.bulk_jobs.values().map(|j| j.info(false)).collect();
            wire::json(
                StatusCode::OK,
                &json!({"done": true, "records": jobs, "nextRecordsUrl": null}),
            )
        }
        (&Method::GET, [id]) => match inner.bulk_jobs.get_mut(*id) {
            Some(job) => {
                if job.polled && job.state == "UploadComplete" {
                    job.state = "JobComplete";
                }
                job.polled = true;
                wire::json(StatusCode::OK, &job.info(true))
            }
            None => wire::not_found(),
        },
        (&Method::PATCH, [id]) => match inner.bulk_jobs.get_mut(*id) {
            Some(job) => {
                job.state = "Aborted";
                wire::json(StatusCode::OK, &job.info(false))
            }
            None => wire::not_found(),
        },
        (&Method::DELETE, [id]) => match inner.bulk_jobs.remove(*id) {
            Some(_) => wire::empty(StatusCode::NO_CONTENT),
            None => wire::not_found(),
        },
        (&Method::GET, [id, "results"]) => match inner.bulk_jobs.get_mut(*id) {
            Some(job) => results(job, uri),
            None => wire::not_found(),
        },
        _ => wire::not_found(),
    }
}

fn create(org: &Org, inner: &mut Inner, version: &str, token: &str, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return wire::rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character in JSON body",
        );
    };
    let operation = req
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("query");
    if operation != "query" && operation != "queryAll" {
        return wire::rest_error(StatusCode::BAD_REQUEST, "INVALIDJOB", "Invalid operation");
    }
    let Some(soql) = req.get("query").and_then(Value::as_str) else {
        return wire::rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "The query is required",
        );
    };
    // UNVERIFIED: job-creation errors reuse the REST query error codes.
    let selected = objects::with_selection(org, inner, soql, operation == "queryAll", token, |s| {
        (s.object, CsvResults::render(s.object, &s.fields, &s.rows))
    });
    let (object, results) = match selected {
        Ok(r) => r,
        Err(e) => return wire::rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let now = inner.now();
    let id = inner.next_id("750", &org.pod);
    let created_by = inner
        .sessions
        .get(token)
        .map(|s| s.user_id.clone())
        .unwrap_or_default();
    let job = QueryJob {
        id: id.clone(),
        operation: operation.to_owned(),
        object: object.to_owned(),
        created_by,
        created: ids::sf_datetime(now),
        state: "UploadComplete",
        results,
        api_version: version.to_owned(),
        polled: false,
    };
    let info = job.info(false);
    inner.bulk_jobs.insert(id, job);
    wire::json(StatusCode::OK, &info)
}

fn results(job: &mut QueryJob, uri: &Uri) -> Response {
    job.state = "JobComplete";
    let pairs = ids::query_pairs(uri.query());
    let r = &job.results;
    let offset = ids::pair(&pairs, "locator")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0)
        .min(r.len());
    let max = ids::pair(&pairs, "maxRecords")
        .and_then(|m| m.parse::<usize>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(50_000);
    let end = offset.saturating_add(max).min(r.len());
    let lines = &r.lines[r.starts[offset]..r.starts[end]];
    let mut csv = String::with_capacity(r.header.len() + lines.len());
    csv.push_str(&r.header);
    csv.push_str(lines);
    let locator = if end < r.len() {
        end.to_string()
    } else {
        "null".to_owned()
    };
    let mut r = (StatusCode::OK, csv).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    if let Ok(v) = HeaderValue::from_str(&locator) {
        h.insert("Sforce-Locator", v);
    }
    if let Ok(v) = HeaderValue::from_str(&(end - offset).to_string()) {
        h.insert("Sforce-NumberOfRecords", v);
    }
    r
}
