//! Bulk API 1.0 under `/services/async/{version}/job…` (docs/salesforce-bulk.md): jobs in XML
//! or JSON, batches of CSV, XML or JSON records (or one SOQL statement for a query job),
//! batch status, results and the batch's request, closing and aborting. The session comes in
//! `X-SFDC-Session`; a dead one is `400 InvalidSessionId`. Every answer, errors included, is
//! in the job's format: JSON for a JSON job (or a JSON request), XML otherwise, CSV for the
//! results of a CSV job; an unknown path under `/services/async` is an XML `InvalidUrl`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::async_jobs::{
    AsyncJob, Batch, BatchRecords, BatchResult, Content, Fields, JobKind, JobState,
    MAX_BATCH_RECORDS,
};
use crate::csvdata::{self, LineEnding};
use crate::dml::{self, Operation};
use crate::ids;
use crate::objects;
use crate::records::RecordError;
use crate::sessions::{self, Refusal};
use crate::soql;
use crate::state::{Inner, Org};
use crate::versions;
use crate::wire::{self, RawBody};
use crate::xmltree::{self, xml_escape};

/// The Bulk API's XML namespace.
const NS: &str = "http://www.force.com/2009/06/asyncapi/dataload";

/// Answer format of a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Xml,
    Json,
}

fn fmt_of(json: bool) -> Format {
    if json { Format::Json } else { Format::Xml }
}

/// `2009-04-14T18:15:59.000Z`, the Bulk API's datetime format.
fn stamp(inner: &Inner) -> String {
    let s = ids::sf_datetime(inner.now());
    s.strip_suffix("+0000")
        .map_or(s.clone(), |t| format!("{t}Z"))
}

fn with_type(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An error in the Bulk API's shape.
fn error(f: Format, status: StatusCode, code: &str, message: &str) -> Response {
    match f {
        Format::Json => with_type(
            status,
            json!({"exceptionCode": code, "exceptionMessage": message}).to_string(),
            "application/json",
        ),
        Format::Xml => with_type(
            status,
            wire::async_error_xml(code, message),
            "application/xml",
        ),
    }
}

fn bad(f: Format, code: &str, message: &str) -> Response {
    error(f, StatusCode::BAD_REQUEST, code, message)
}

fn xml_value(v: &Value) -> String {
    match v {
        Value::String(s) => xml_escape(s),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn xml_fields(out: &mut String, fields: &Fields) {
    for (k, v) in fields {
        out.push_str(&format!("<{k}>{}</{k}>", xml_value(v)));
    }
}

/// A `jobInfo` or `batchInfo` document.
fn info(f: Format, root: &str, fields: Fields) -> Response {
    match f {
        Format::Json => {
            let m: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            json_ok(Value::Object(m))
        }
        Format::Xml => {
            let mut out =
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><{root} xmlns=\"{NS}\">");
            xml_fields(&mut out, &fields);
            out.push_str(&format!("</{root}>"));
            with_type(StatusCode::OK, out, "application/xml")
        }
    }
}

/// `200` with a JSON document, as the Bulk API types it (exactly `application/json`).
fn json_ok(v: Value) -> Response {
    with_type(StatusCode::OK, v.to_string(), "application/json")
}

fn created(mut r: Response) -> Response {
    *r.status_mut() = StatusCode::CREATED;
    r
}

/// The session id of a Bulk API 1.0 call: `X-SFDC-Session` (bare, or `Bearer …`), else the
/// REST `Authorization` header.
fn session_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("X-SFDC-Session").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let v = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("OAuth "))
            .unwrap_or(v)
            .trim();
        return (!v.is_empty()).then(|| v.to_owned());
    }
    match sessions::auth_header(headers) {
        sessions::AuthHeader::Token(t) => Some(t),
        _ => None,
    }
}

fn is_json_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

/// Everything under `/services/async/`.
pub async fn dispatch(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let path = uri.path();
    let segs: Vec<String> = path
        .trim_start_matches("/services/async")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(ids::percent_decode)
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let json_req = is_json_request(&headers);
    let f = fmt_of(json_req);
    let Some((version, rest)) = seg.split_first() else {
        return invalid_url(path);
    };
    if !matches!(rest.first(), Some(&"job")) {
        return invalid_url(path);
    }
    match versions::major(version) {
        Some(v) if (versions::FIRST_SUPPORTED..=versions::LATEST).contains(&v) => {}
        // UNVERIFIED message; the code is what a retired version gets (secondary source).
        _ => {
            return bad(
                f,
                "InvalidVersion",
                &format!("Invalid api version specified on URL: {version}"),
            );
        }
    }

    let mut inner = org.lock();
    inner.stats.api_requests += 1;
    let Some(token) = session_of(&headers) else {
        inner.stats.invalid_session_responses += 1;
        return bad(f, "InvalidSessionId", "Invalid session id");
    };
    let user_id = match sessions::validate_api(&mut inner, &token, peer.ip()) {
        Ok(s) => s.user_id,
        Err(Refusal::Invalid) => {
            inner.stats.invalid_session_responses += 1;
            return bad(f, "InvalidSessionId", "Invalid session id");
        }
        // UNVERIFIED: the Bulk API's answer to a user without "API Enabled".
        Err(Refusal::ApiDisabled) => {
            return error(
                f,
                StatusCode::FORBIDDEN,
                "API_DISABLED_FOR_ORG",
                "API is not enabled for this Organization or Partner",
            );
        }
        // UNVERIFIED: the Bulk API's answer to a session of an expired password.
        Err(Refusal::PasswordExpired) => {
            return error(
                f,
                StatusCode::FORBIDDEN,
                "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
                crate::soap::PASSWORD_EXPIRED,
            );
        }
        // UNVERIFIED: the Bulk API's answer to a session without the `api` scope.
        Err(Refusal::NotApi) => {
            return bad(
                f,
                "InvalidSessionId",
                "This session is not valid for use with the API",
            );
        }
    };
    if inner.api_used >= inner.daily_api_limit {
        // UNVERIFIED: the code is the Bulk API's documented quota error.
        return error(
            f,
            StatusCode::FORBIDDEN,
            "ExceededQuota",
            "TotalRequests Limit exceeded.",
        );
    }
    inner.api_used += 1;
    let call = Call {
        org: &org,
        version,
        token: &token,
        user_id: &user_id,
        json_req,
    };
    call.route(&mut inner, &method, &rest[1..], &body)
        .unwrap_or_else(|| invalid_url(path))
}

/// An unknown path under `/services/async`: XML whatever was asked (the message is ours).
fn invalid_url(path: &str) -> Response {
    error(
        Format::Xml,
        StatusCode::NOT_FOUND,
        "InvalidUrl",
        &format!("unknown url: {path}"),
    )
}

struct Call<'a> {
    org: &'a Org,
    version: &'a str,
    token: &'a str,
    user_id: &'a str,
    json_req: bool,
}

impl Call<'_> {
    /// `None` for a path the Bulk API does not have.
    fn route(
        &self,
        inner: &mut Inner,
        method: &Method,
        rest: &[&str],
        body: &[u8],
    ) -> Option<Response> {
        let f = fmt_of(self.json_req);
        if let [id, ..] = rest
            && !inner.async_jobs.contains_key(*id)
        {
            // UNVERIFIED message.
            return Some(bad(f, "InvalidJob", &format!("Invalid job id: {id}")));
        }
        let job_format = |inner: &Inner, id: &str| {
            fmt_of(
                inner
                    .async_jobs
                    .get(id)
                    .is_some_and(|j| j.content == Content::Json),
            )
        };
        Some(match (method, rest) {
            (&Method::POST, []) => self.create(inner, body),
            (&Method::GET, [id]) => {
                let job = &inner.async_jobs[*id];
                info(job_format(inner, id), "jobInfo", job.info())
            }
            (&Method::POST, [id]) => self.update(inner, id, body, job_format(inner, id)),
            (&Method::POST, [id, "batch"]) => {
                self.add_batch(inner, id, body, job_format(inner, id))
            }
            (&Method::GET, [id, "batch"]) => {
                batch_list(&inner.async_jobs[*id], job_format(inner, id))
            }
            (&Method::GET, [id, "batch", bid, tail @ ..]) => {
                let jf = job_format(inner, id);
                let job = inner.async_jobs.get_mut(*id)?;
                let Some(i) = job.batches.iter().position(|b| b.id == *bid) else {
                    // UNVERIFIED message.
                    return Some(bad(jf, "InvalidBatch", &format!("Invalid batch id: {bid}")));
                };
                match tail {
                    [] => {
                        job.batches[i].reported = true;
                        info(jf, "batchInfo", job.batch_info(&job.batches[i]))
                    }
                    ["request"] => request_of(job, &job.batches[i]),
                    ["result"] => result_list(job, &job.batches[i], jf, self.version),
                    ["result", rid] => query_result(job, &job.batches[i], rid, jf, self.version),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    fn create(&self, inner: &mut Inner, body: &[u8]) -> Response {
        let f = fmt_of(self.json_req);
        let req: Map<String, Value> = if self.json_req {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => m,
                _ => return bad(f, "InvalidJob", "The job description is not a JSON object"),
            }
        } else {
            match xmltree::parse(body) {
                Ok(root) if root.name == "jobInfo" => root
                    .children
                    .iter()
                    .map(|c| (c.name.clone(), json!(c.text.trim())))
                    .collect(),
                Ok(_) => return bad(f, "InvalidXML", "The root element must be jobInfo"),
                Err(e) => return bad(f, "InvalidXML", &format!("Failed to parse XML: {}", e.0)),
            }
        };
        let text = |k: &str| req.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let Some(kind) = text("operation").and_then(JobKind::parse) else {
            return bad(f, "InvalidJob", "InvalidJob : Invalid operation");
        };
        let Some(object) = text("object") else {
            return bad(f, "InvalidJob", "InvalidJob : The object is required");
        };
        let object = match kind {
            JobKind::Query { .. } => objects::OBJECTS
                .iter()
                .find(|o| o.eq_ignore_ascii_case(object)),
            JobKind::Dml(_) => ["Account"].iter().find(|o| o.eq_ignore_ascii_case(object)),
        };
        let Some(object) = object else {
            let name = text("object").unwrap_or_default();
            return bad(f, "InvalidJob", &format!("Unable to find object: {name}"));
        };
        let default = if self.json_req { "JSON" } else { "XML" };
        let Some(content) = Content::parse(text("contentType").unwrap_or(default)) else {
            return bad(
                f,
                "InvalidJob",
                "InvalidJob : contentType must be CSV, XML or JSON",
            );
        };
        let external_id = text("externalIdFieldName").map(str::to_owned);
        if kind == JobKind::Dml(Operation::Upsert) {
            match external_id.as_deref().map(dml::field) {
                Some(Ok("ExtId__c" | "Id")) => {}
                _ => {
                    return bad(
                        f,
                        "InvalidJob",
                        "External ID was blank for Account. An External ID must be specified for upsert.",
                    );
                }
            }
        }
        // simple-salesforce sends 0 / 1 for Parallel / Serial.
        let concurrency = match req.get("concurrencyMode") {
            Some(Value::String(s)) if s == "Serial" => "Serial",
            Some(Value::Number(n)) if n.as_u64() == Some(1) => "Serial",
            _ => "Parallel",
        };
        let now = stamp(inner);
        let id = inner.next_id("750", &self.org.pod);
        let job = AsyncJob {
            id: id.clone(),
            kind,
            object: (*object).to_owned(),
            external_id: external_id.map(|e| dml::field(&e).unwrap_or("Id").to_owned()),
            content,
            concurrency,
            created_by: self.user_id.to_owned(),
            created: now.clone(),
            modstamp: now,
            state: JobState::Open,
            api_version: self.version.to_owned(),
            batches: Vec::new(),
        };
        let answer = info(
            fmt_of(content == Content::Json || self.json_req),
            "jobInfo",
            job.info(),
        );
        inner.async_jobs.insert(id, job);
        created(answer)
    }

    fn update(&self, inner: &mut Inner, id: &str, body: &[u8], f: Format) -> Response {
        let wanted = if self.json_req {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned))
        } else {
            xmltree::parse(body)
                .ok()
                .and_then(|r| r.child_text("state").map(str::to_owned))
        };
        let now = stamp(inner);
        let Some(job) = inner.async_jobs.get_mut(id) else {
            return bad(f, "InvalidJob", &format!("Invalid job id: {id}"));
        };
        // UNVERIFIED messages for the state errors; InvalidJobState is the documented code.
        match (wanted.as_deref(), job.state) {
            (Some("Closed"), JobState::Open) => job.state = JobState::Closed,
            (Some("Aborted"), JobState::Open | JobState::Closed) => job.state = JobState::Aborted,
            (Some("Closed" | "Aborted"), state) => {
                return bad(
                    f,
                    "InvalidJobState",
                    &format!(
                        "Job {id} is {}: it cannot be {}",
                        state.name(),
                        wanted.as_deref().unwrap_or_default().to_lowercase()
                    ),
                );
            }
            _ => return bad(f, "InvalidJobState", "The state must be Closed or Aborted"),
        }
        job.modstamp = now;
        info(f, "jobInfo", job.info())
    }

    fn add_batch(&self, inner: &mut Inner, id: &str, body: &[u8], f: Format) -> Response {
        let now_t = inner.now();
        let now = stamp(inner);
        let bid = inner.next_id("751", &self.org.pod);
        let Some(job) = inner.async_jobs.get(id) else {
            return bad(f, "InvalidJob", &format!("Invalid job id: {id}"));
        };
        if job.state != JobState::Open {
            return bad(
                f,
                "InvalidJobState",
                &format!(
                    "Job {id} is {}: batches can be added only to an open job",
                    job.state.name()
                ),
            );
        }
        let (kind, content) = (job.kind, job.content);
        let (failure, result) = match kind {
            JobKind::Query { all } => {
                let soql = String::from_utf8_lossy(body);
                let selected =
                    objects::with_selection(self.org, inner, soql.trim(), all, self.token, |s| {
                        (s.object, soql::project(&s.fields, &s.rows), s.fields)
                    });
                match selected {
                    Ok((object, rows, fields)) if object.eq_ignore_ascii_case(&job.object) => {
                        let result_id = inner.next_id("752", &self.org.pod);
                        (
                            None,
                            BatchResult::Query {
                                result_id,
                                fields,
                                rows,
                            },
                        )
                    }
                    Ok((object, ..)) => (
                        Some(format!(
                            "InvalidBatch : Failed to process query: the query reads {object}, the job's object is {}",
                            job.object
                        )),
                        BatchResult::None,
                    ),
                    Err(e) => (
                        Some(format!(
                            "InvalidBatch : Failed to process query: {}: {}",
                            e.code,
                            e.message.trim()
                        )),
                        BatchResult::None,
                    ),
                }
            }
            JobKind::Dml(_) => match batch_records(content, body) {
                Ok(records) if records.len() > MAX_BATCH_RECORDS => (
                    // UNVERIFIED wording of the batch-size failure.
                    Some(format!(
                        "InvalidBatch : Records in a batch cannot exceed {MAX_BATCH_RECORDS}: this batch has {}",
                        records.len()
                    )),
                    BatchResult::None,
                ),
                Ok(records) => {
                    let Inner {
                        async_jobs,
                        accounts,
                        ..
                    } = &mut *inner;
                    let job = &async_jobs[id];
                    (None, job.apply(accounts, records, now_t))
                }
                Err(message) => (Some(message), BatchResult::None),
            },
        };
        let Some(job) = inner.async_jobs.get_mut(id) else {
            return bad(f, "InvalidJob", &format!("Invalid job id: {id}"));
        };
        job.batches.push(Batch {
            id: bid,
            reported: false,
            failure,
            created: now,
            request: body.to_vec(),
            result,
        });
        let batch = job
            .batches
            .last()
            .map(|b| job.batch_info(b))
            .unwrap_or_default();
        created(info(f, "batchInfo", batch))
    }
}

/// The records of a DML batch, or the message that fails the batch as a whole.
fn batch_records(content: Content, body: &[u8]) -> Result<BatchRecords, String> {
    match content {
        Content::Csv => {
            let ending = if body.windows(2).any(|w| w == b"\r\n") {
                LineEnding::Crlf
            } else {
                LineEnding::Lf
            };
            let table = csvdata::parse(body, b',', ending).map_err(|e| e.to_string())?;
            let fields = table
                .header
                .iter()
                .map(|c| dml::field(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|c| dml::unknown_field(&c))?;
            Ok(table
                .rows
                .iter()
                .map(|r| {
                    dml::record_from_text(fields.iter().copied().zip(r.iter().map(String::as_str)))
                })
                .collect())
        }
        Content::Xml => {
            let root = xmltree::parse(body)
                .map_err(|e| format!("InvalidBatch : Failed to parse XML: {}", e.0))?;
            if root.name != "sObjects" {
                return Err(
                    "InvalidBatch : The root element of an XML batch must be sObjects".into(),
                );
            }
            let mut out = Vec::with_capacity(root.children.len());
            for s in &root.children {
                let mut pairs = Vec::with_capacity(s.children.len());
                for c in &s.children {
                    let field = dml::field(&c.name).map_err(|n| dml::unknown_field(&n))?;
                    pairs.push((field, c.text.as_str()));
                }
                out.push(dml::record_from_text(pairs));
            }
            Ok(out)
        }
        Content::Json => {
            let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
                return Err(
                    "InvalidBatch : Failed to parse JSON: a batch is a JSON array of records"
                        .into(),
                );
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let Value::Object(m) = item else {
                    return Err(
                        "InvalidBatch : Failed to parse JSON: every record must be a JSON object"
                            .into(),
                    );
                };
                let mut record = Map::new();
                for (k, v) in m {
                    if k == "attributes" {
                        continue;
                    }
                    let field = dml::field(&k).map_err(|n| dml::unknown_field(&n))?;
                    record.insert(field.to_owned(), v);
                }
                out.push(Ok(record));
            }
            Ok(out)
        }
    }
}

fn batch_list(job: &AsyncJob, f: Format) -> Response {
    match f {
        Format::Json => {
            let list: Vec<Value> = job
                .batches
                .iter()
                .map(|b| {
                    Value::Object(
                        job.batch_info(b)
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    )
                })
                .collect();
            json_ok(json!({"batchInfo": list}))
        }
        Format::Xml => {
            let mut out =
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><batchInfoList xmlns=\"{NS}\">");
            for b in &job.batches {
                out.push_str("<batchInfo>");
                xml_fields(&mut out, &job.batch_info(b));
                out.push_str("</batchInfo>");
            }
            out.push_str("</batchInfoList>");
            with_type(StatusCode::OK, out, "application/xml")
        }
    }
}

fn content_type(c: Content) -> &'static str {
    match c {
        Content::Csv => "text/csv",
        Content::Xml => "application/xml",
        Content::Json => "application/json",
    }
}

fn request_of(job: &AsyncJob, batch: &Batch) -> Response {
    let ct = match job.kind {
        JobKind::Query { .. } => "text/plain",
        JobKind::Dml(_) => content_type(job.content),
    };
    with_type(
        StatusCode::OK,
        String::from_utf8_lossy(&batch.request).into_owned(),
        ct,
    )
}

fn not_completed(f: Format) -> Response {
    bad(f, "InvalidBatch", "Batch not completed")
}

/// `…/batch/{id}/result`: the record results of a DML batch, the result ids of a query batch.
fn result_list(job: &AsyncJob, batch: &Batch, f: Format, version: &str) -> Response {
    let _ = version;
    if !batch.reported || batch.failure.is_some() {
        return not_completed(f);
    }
    match &batch.result {
        BatchResult::Query { result_id, .. } => match f {
            Format::Json => json_ok(json!([result_id])),
            Format::Xml => with_type(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><result-list xmlns=\"{NS}\"><result>{result_id}</result></result-list>"
                ),
                "application/xml",
            ),
        },
        BatchResult::Records(results) => dml_results(job.content, results),
        BatchResult::None => not_completed(f),
    }
}

fn dml_results(content: Content, results: &[Result<dml::Written, RecordError>]) -> Response {
    match content {
        Content::Csv => {
            let mut out =
                csvdata::line(["Id", "Success", "Created", "Error"], b',', LineEnding::Lf);
            for r in results {
                let line = match r {
                    Ok(w) => csvdata::line(
                        [
                            w.id.as_str(),
                            "true",
                            if w.created { "true" } else { "false" },
                            "",
                        ],
                        b',',
                        LineEnding::Lf,
                    ),
                    Err(e) => {
                        let text = dml::error_text(e);
                        csvdata::line(["", "false", "false", text.as_str()], b',', LineEnding::Lf)
                    }
                };
                out.push_str(&line);
            }
            with_type(StatusCode::OK, out, "text/csv")
        }
        Content::Json => {
            let list: Vec<Value> = results
                .iter()
                .map(|r| match r {
                    Ok(w) => json!({"success": true, "created": w.created, "id": w.id, "errors": []}),
                    Err(e) => json!({"success": false, "created": false, "id": null,
                        "errors": [{"fields": e.fields, "message": e.message, "statusCode": e.code}]}),
                })
                .collect();
            json_ok(Value::Array(list))
        }
        Content::Xml => {
            let mut out =
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><results xmlns=\"{NS}\">");
            for r in results {
                out.push_str("<result>");
                match r {
                    Ok(w) => out.push_str(&format!(
                        "<id>{}</id><success>true</success><created>{}</created>",
                        w.id, w.created
                    )),
                    Err(e) => {
                        out.push_str("<errors>");
                        for f in &e.fields {
                            out.push_str(&format!("<fields>{}</fields>", xml_escape(f)));
                        }
                        out.push_str(&format!(
                            "<message>{}</message><statusCode>{}</statusCode></errors><success>false</success><created>false</created>",
                            xml_escape(&e.message),
                            e.code
                        ));
                    }
                }
                out.push_str("</result>");
            }
            out.push_str("</results>");
            with_type(StatusCode::OK, out, "application/xml")
        }
    }
}

/// `…/batch/{id}/result/{resultId}`: a query's records in the job's format.
fn query_result(job: &AsyncJob, batch: &Batch, rid: &str, f: Format, version: &str) -> Response {
    if !batch.reported || batch.failure.is_some() {
        return not_completed(f);
    }
    let BatchResult::Query {
        result_id,
        fields,
        rows,
    } = &batch.result
    else {
        return bad(f, "InvalidBatch", "The batch is not a query batch");
    };
    if result_id != rid {
        // UNVERIFIED message.
        return bad(f, "InvalidBatch", &format!("Invalid result id: {rid}"));
    }
    match job.content {
        Content::Csv => {
            let mut out = csvdata::line(fields.iter().map(String::as_str), b',', LineEnding::Lf);
            for row in rows {
                let values: Vec<String> = fields
                    .iter()
                    .map(|k| match row.get(k) {
                        Some(Value::String(s)) => s.clone(),
                        None | Some(Value::Null) => String::new(),
                        Some(v) => v.to_string(),
                    })
                    .collect();
                out.push_str(&csvdata::line(
                    values.iter().map(String::as_str),
                    b',',
                    LineEnding::Lf,
                ));
            }
            with_type(StatusCode::OK, out, "text/csv")
        }
        Content::Json => {
            let list: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let mut m = Map::new();
                    let mut attrs = json!({"type": job.object});
                    if let Some(id) = row.get("Id").and_then(Value::as_str) {
                        attrs["url"] = json!(format!(
                            "/services/data/v{version}/sobjects/{}/{id}",
                            job.object
                        ));
                    }
                    m.insert("attributes".into(), attrs);
                    for k in fields {
                        m.insert(k.clone(), row.get(k).cloned().unwrap_or(Value::Null));
                    }
                    Value::Object(m)
                })
                .collect();
            json_ok(Value::Array(list))
        }
        Content::Xml => {
            let mut out = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><queryResult xmlns=\"{NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
            );
            for row in rows {
                out.push_str(&format!(
                    "<records xsi:type=\"sObject\"><type>{}</type>",
                    job.object
                ));
                for k in fields {
                    match row.get(k) {
                        None | Some(Value::Null) => {
                            out.push_str(&format!("<{k} xsi:nil=\"true\"/>"))
                        }
                        Some(v) => out.push_str(&format!("<{k}>{}</{k}>", xml_value(v))),
                    }
                }
                out.push_str("</records>");
            }
            out.push_str("</queryResult>");
            with_type(StatusCode::OK, out, "application/xml")
        }
    }
}
