//! Bulk API 2.0 ingest jobs under `/services/data/vXX.X/jobs/ingest` (docs/salesforce-bulk.md):
//! create, upload the CSV once (`PUT …/batches`), close (`PATCH {"state":"UploadComplete"}`)
//! or abort, poll, read the successful / failed / unprocessed records, delete. Errors are the
//! REST API's JSON array; session death is the REST 401.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::csvdata::{self, LineEnding};
use crate::dml::{self, Operation};
use crate::ids;
use crate::ingest::{IngestJob, IngestSpec, IngestState};
use crate::state::{Inner, Org};
use crate::wire;

fn job_error(code: &str, message: &str) -> Response {
    wire::json(
        StatusCode::BAD_REQUEST,
        &json!([{"errorCode": code, "message": message}]),
    )
}

fn invalid_state(job: &IngestJob, what: &str) -> Response {
    // UNVERIFIED wording: the errorCode and that a wrong-state call is a 400 follow the
    // recorded "Found multiple contents" answer; the message is ours.
    job_error(
        "INVALIDJOBSTATE",
        &format!("Job {} is in state {}: {what}", job.id, job.state.name()),
    )
}

/// Routes `jobs/ingest[/{id}[/batches|/successfulResults|/failedResults|/unprocessedrecords]]`.
pub fn route(
    org: &Org,
    inner: &mut Inner,
    version: &str,
    user_id: &str,
    method: &Method,
    body: &[u8],
    rest: &[&str],
) -> Response {
    match (method, rest) {
        (&Method::POST, []) => create(org, inner, version, user_id, body),
        (&Method::GET, []) => {
            let mut jobs: Vec<&IngestJob> = inner.ingest_jobs.values().collect();
            jobs.sort_by(|a, b| a.id.cmp(&b.id));
            let records: Vec<Value> = jobs.iter().map(|j| j.info(false)).collect();
            wire::json(
                StatusCode::OK,
                &json!({"done": true, "records": records, "nextRecordsUrl": null}),
            )
        }
        (_, [id, ..]) if !inner.ingest_jobs.contains_key(*id) => wire::not_found(),
        (&Method::GET, [id]) => {
            let job = inner.ingest_jobs.get_mut(*id).map(|j| {
                j.poll();
                j.info(true)
            });
            job.map_or_else(wire::not_found, |info| wire::json(StatusCode::OK, &info))
        }
        (&Method::PUT, [id, "batches"]) => upload(inner, id, body),
        (&Method::PATCH, [id]) => set_state(inner, id, body),
        (&Method::DELETE, [id]) => {
            let deletable = inner
                .ingest_jobs
                .get(*id)
                .is_some_and(|j| j.state != IngestState::Open);
            if deletable {
                inner.ingest_jobs.remove(*id);
                wire::empty(StatusCode::NO_CONTENT)
            } else {
                match inner.ingest_jobs.get(*id) {
                    Some(j) => {
                        invalid_state(j, "an open job cannot be deleted; close or abort it first")
                    }
                    None => wire::not_found(),
                }
            }
        }
        (
            &Method::GET,
            [
                id,
                kind @ ("successfulResults" | "failedResults" | "unprocessedrecords"),
            ],
        ) => {
            let Some(job) = inner.ingest_jobs.get(*id) else {
                return wire::not_found();
            };
            if !job.state.is_terminal() {
                return invalid_state(job, "results are available once the job is complete");
            }
            let csv = match *kind {
                "successfulResults" => job.successful_csv(),
                "failedResults" => job.failed_csv(),
                _ => job.unprocessed_csv(),
            };
            let mut r = (StatusCode::OK, csv).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
            r
        }
        (_, [_] | [_, "batches"]) => wire::rest_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            &format!("HTTP Method '{method}' not allowed"),
        ),
        _ => wire::not_found(),
    }
}

fn create(org: &Org, inner: &mut Inner, version: &str, user_id: &str, body: &[u8]) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return wire::rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character in JSON body",
        );
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    // UNVERIFIED messages for the job-creation errors below; the errorCode is the one the
    // org's query jobs use.
    let Some(operation) = text("operation").and_then(Operation::parse) else {
        return job_error(
            "INVALIDJOB",
            "InvalidJob : Invalid operation: operation must be insert, update, upsert, delete or hardDelete",
        );
    };
    let Some(object) = text("object") else {
        return job_error("INVALIDJOB", "InvalidJob : The object is required");
    };
    if !object.eq_ignore_ascii_case("Account") {
        return job_error(
            "INVALIDJOB",
            &format!("InvalidJob : Invalid object: {object}"),
        );
    }
    if text("contentType").is_some_and(|c| c != "CSV") {
        return job_error("INVALIDJOB", "InvalidJob : contentType must be CSV");
    }
    let Some(line_ending) = LineEnding::parse(text("lineEnding").unwrap_or("LF")) else {
        return job_error("INVALIDJOB", "InvalidJob : lineEnding must be LF or CRLF");
    };
    let delim_name = text("columnDelimiter").unwrap_or("COMMA");
    let Some((delim_name, delim)) = csvdata::DELIMITERS
        .iter()
        .find(|(n, _)| *n == delim_name)
        .copied()
    else {
        return job_error(
            "INVALIDJOB",
            &format!("InvalidJob : Invalid columnDelimiter: {delim_name}"),
        );
    };
    let external_id = text("externalIdFieldName").map(str::to_owned);
    if operation == Operation::Upsert {
        match external_id.as_deref().map(dml::field) {
            Some(Ok("ExtId__c" | "Id")) => {}
            Some(_) => {
                return job_error(
                    "INVALIDJOB",
                    "InvalidJob : The external ID field is not an external ID of Account",
                );
            }
            None => {
                return job_error(
                    "INVALIDJOB",
                    "InvalidJob : External ID was blank for Account. An External ID must be specified for upsert.",
                );
            }
        }
    }
    let now = ids::sf_datetime(inner.now());
    let id = inner.next_id("750", &org.pod);
    let job = IngestJob::new(
        id.clone(),
        IngestSpec {
            operation,
            object: "Account".into(),
            external_id: external_id.map(|e| dml::field(&e).unwrap_or("Id").to_owned()),
            delimiter: (delim_name, delim),
            line_ending,
        },
        user_id.to_owned(),
        &now,
        version,
    );
    let info = job.info(false);
    inner.ingest_jobs.insert(id, job);
    wire::json(StatusCode::OK, &info)
}

fn upload(inner: &mut Inner, id: &str, body: &[u8]) -> Response {
    let Some(job) = inner.ingest_jobs.get_mut(id) else {
        return wire::not_found();
    };
    if job.state != IngestState::Open {
        return invalid_state(job, "data can be uploaded only to an open job");
    }
    if job.data.is_some() {
        // RECORDED (a live org's answer, quoted in public client code): one upload per job.
        return job_error(
            "INVALIDJOBSTATE",
            &format!(
                "Found multiple contents for job: <{id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
            ),
        );
    }
    // The size limit is enforced while the body is read (`wire::RawBody`).
    job.data = Some(body.to_vec());
    wire::empty(StatusCode::CREATED)
}

fn set_state(inner: &mut Inner, id: &str, body: &[u8]) -> Response {
    let wanted = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned));
    let now = inner.now();
    let stamp = ids::sf_datetime(now);
    let Inner {
        ingest_jobs,
        accounts,
        ..
    } = inner;
    let Some(job) = ingest_jobs.get_mut(id) else {
        return wire::not_found();
    };
    match wanted.as_deref() {
        Some("UploadComplete") if job.state == IngestState::Open => job.close(accounts, now),
        Some("UploadComplete") => return invalid_state(job, "only an open job can be closed"),
        Some("Aborted") if !job.state.is_terminal() => job.abort(),
        Some("Aborted") => return invalid_state(job, "a finished job cannot be aborted"),
        _ => {
            return job_error(
                "INVALIDJOBSTATE",
                "The state must be UploadComplete or Aborted",
            );
        }
    }
    job.modstamp = stamp;
    wire::json(StatusCode::OK, &job.info(false))
}
