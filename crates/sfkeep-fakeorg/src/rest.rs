//! The REST API under `/services/data`: versions, the version's resources, `query` /
//! `queryAll` with `nextRecordsUrl` pagination, `sobjects/Account` CRUD and upsert by
//! `ExtId__c`, and `limits`. Every API response carries `Sforce-Limit-Info`.
//!
//! Paths are dispatched by hand rather than by the router so that both query URL shapes
//! real clients send (`/query/?q=a+b` and `/query?q=a%20b`), any `vNN.0` and trailing
//! slashes are accepted, and unknown paths get Salesforce's `NOT_FOUND` body.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::ids;
use crate::objects;
use crate::records::RecordError;
use crate::records::Row;
use crate::rendered::{RenderedRecords, json_str};
use crate::sessions::{self, AuthHeader, Refusal};
use crate::state::{Cursor, CursorRows, Inner, Org};
use crate::versions;
use crate::wire::{self, RawBody};

/// The version whose release is Winter '11, the base of the release labels.
const WINTER_11_VERSION: u32 = 20;
/// Default and bounds of the query batch size (`Sforce-Query-Options: batchSize=N`).
const DEFAULT_BATCH: usize = 2000;
const MIN_BATCH: usize = 200;
const MAX_BATCH: usize = 2000;

/// Release label of API version `v` (v20.0 = Winter '11, three releases a year).
fn release_label(v: u32) -> String {
    let n = v - WINTER_11_VERSION;
    let season = ["Winter", "Spring", "Summer"][(n % 3) as usize];
    format!("{season} '{:02}", 11 + n / 3)
}

/// `GET /services/data/` (no authentication needed, as in Salesforce).
pub async fn versions() -> Response {
    let list: Vec<Value> = (versions::FIRST_SUPPORTED..=versions::LATEST)
        .map(|v| {
            json!({
                "label": release_label(v),
                "url": format!("/services/data/v{v}.0"),
                "version": format!("{v}.0"),
            })
        })
        .collect();
    wire::json(StatusCode::OK, &Value::Array(list))
}

/// `vNN.N` → `NN.N`.
fn parse_version(seg: &str) -> Option<&str> {
    let v = seg.strip_prefix('v')?;
    let (major, minor) = v.split_once('.')?;
    (!major.is_empty()
        && !minor.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit()))
    .then_some(v)
}

fn record_error(e: RecordError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = json!({"message": e.message, "errorCode": e.code});
    if !e.fields.is_empty() {
        body["fields"] = json!(e.fields);
    }
    wire::json(status, &json!([body]))
}

fn method_not_allowed(method: &Method, allowed: &str) -> Response {
    wire::rest_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(wire::rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject from a non-object JSON value",
        )),
        Err(e) => Err(wire::rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!(
                "Unexpected character in JSON body at [line:{},column:{}]",
                e.line(),
                e.column()
            ),
        )),
    }
}

/// Everything under `/services/data/`.
pub async fn dispatch(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let rest = uri.path().trim_start_matches("/services/data");
    let mut segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(ids::percent_decode)
        .collect();
    if segs.is_empty() {
        return versions().await;
    }
    let Some(version) = parse_version(&segs[0]).map(str::to_owned) else {
        return wire::not_found();
    };
    // Versions listed by `GET /services/data/` are served; a retired one is 410 (docs/salesforce-wire.md §4.3), one
    // past the newest does not exist (404).
    match versions::major(&version) {
        Some(v) if v < versions::FIRST_SUPPORTED => {
            // UNVERIFIED body: only the 410 status of a retired version is recorded.
            return wire::rest_error(
                StatusCode::GONE,
                "UNSUPPORTED_API_VERSION",
                &format!("API version {version} is retired and no longer available"),
            );
        }
        Some(v) if v > versions::LATEST => return wire::not_found(),
        _ => {}
    }
    segs.remove(0);
    let (r, wait) = respond(&org, peer, &method, &uri, &headers, &body, &version, &segs);
    // A lagged write is answered once it commits (src/commits.rs).
    org.wait_for_commits(wait).await;
    r
}

/// The response to an API request, and the commits it must wait for: everything done under
/// the org's lock, which is released before any waiting.
#[allow(clippy::too_many_arguments)]
fn respond(
    org: &Arc<Org>,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    version: &str,
    segs: &[String],
) -> (Response, Option<crate::commits::CommitWait>) {
    let mut inner = org.lock();
    inner.stats.api_requests += 1;
    let token = match sessions::auth_header(headers) {
        AuthHeader::Token(t) => t,
        AuthHeader::Missing => return (finish(&mut inner, refused(Refusal::Invalid)), None),
        AuthHeader::Malformed => {
            let r = wire::rest_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTH_HEADER",
                "INVALID_HEADER_TYPE",
            );
            return (finish(&mut inner, r), None);
        }
    };
    let user_id = match sessions::validate_api(&mut inner, &token, peer.ip()) {
        Ok(s) => s.user_id,
        Err(refusal) => return (finish(&mut inner, refused(refusal)), None),
    };
    if inner.api_used >= inner.daily_api_limit {
        let r = wire::rest_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
        return (finish(&mut inner, r), None);
    }
    inner.api_used += 1;

    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    let ctx = Ctx {
        org,
        version,
        token: &token,
        user_id: &user_id,
    };
    let r = route(&ctx, &mut inner, method, uri, headers, body, &seg);
    let r = finish(&mut inner, r);
    (r, inner.accounts.commits_mut().take_wait())
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::Invalid => wire::invalid_session(),
        // RECORDED (jsforce PR #1301) without WWW-Authenticate.
        Refusal::NotApi => wire::rest_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "This session is not valid for use with the REST API",
        ),
        // docs/salesforce-wire.md §4.3 (RECORDED in tutorials).
        Refusal::ApiDisabled => wire::rest_error(
            StatusCode::FORBIDDEN,
            "API_DISABLED_FOR_ORG",
            "The REST API is not enabled for this Organization.",
        ),
        // The code is the WSDL's (docs/salesforce-wire.md §5.3); the status and the message
        // are UNVERIFIED.
        Refusal::PasswordExpired => wire::rest_error(
            StatusCode::FORBIDDEN,
            "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
            crate::soap::PASSWORD_EXPIRED,
        ),
    }
}

/// Adds `Sforce-Limit-Info` and counts invalid-session answers.
fn finish(inner: &mut Inner, mut r: Response) -> Response {
    // Only the refreshable session-death answer counts (it alone carries WWW-Authenticate).
    if r.headers()
        .contains_key(axum::http::header::WWW_AUTHENTICATE)
    {
        inner.stats.invalid_session_responses += 1;
    }
    let info = format!("api-usage={}/{}", inner.api_used, inner.daily_api_limit);
    if let Ok(v) = HeaderValue::from_str(&info) {
        r.headers_mut().insert("Sforce-Limit-Info", v);
    }
    r
}

struct Ctx<'a> {
    org: &'a Org,
    version: &'a str,
    token: &'a str,
    /// The session's user.
    user_id: &'a str,
}

fn route(
    ctx: &Ctx<'_>,
    inner: &mut Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    seg: &[&str],
) -> Response {
    let get_only = |f: &dyn Fn() -> Response| {
        if method == Method::GET || method == Method::HEAD {
            f()
        } else {
            method_not_allowed(method, "GET,HEAD")
        }
    };
    match seg {
        [] => get_only(&|| resources(ctx, inner)),
        [kind @ ("query" | "queryAll")] => {
            if method != Method::GET && method != Method::HEAD {
                return method_not_allowed(method, "GET,HEAD");
            }
            let pairs = ids::query_pairs(uri.query());
            let Some(q) = ids::pair(&pairs, "q").filter(|q| !q.trim().is_empty()) else {
                return wire::rest_error(
                    StatusCode::BAD_REQUEST,
                    "MALFORMED_QUERY",
                    "A query string has to be specified",
                );
            };
            if ids::pair(&pairs, "columns").is_some_and(|c| c.eq_ignore_ascii_case("true")) {
                return crate::columns::answer(ctx.org, inner, q, *kind == "queryAll", ctx.token);
            }
            query(ctx, inner, kind, q, batch_size(headers))
        }
        [kind @ ("query" | "queryAll"), locator] => {
            if method != Method::GET && method != Method::HEAD {
                return method_not_allowed(method, "GET,HEAD");
            }
            next_page(ctx, inner, kind, locator)
        }
        ["limits"] => get_only(&|| limits(inner)),
        ["sobjects"] => get_only(&|| describe_global()),
        ["jobs", "query", rest @ ..] => crate::bulk::route(
            ctx.org,
            inner,
            ctx.version,
            ctx.token,
            method,
            uri,
            body,
            rest,
        ),
        ["jobs", "ingest", rest @ ..] => {
            crate::bulk_ingest::route(ctx.org, inner, ctx.version, ctx.user_id, method, body, rest)
        }
        ["composite"] if method == Method::POST => {
            let mut run = |inner: &mut Inner, m: &Method, url: &str, b: &[u8]| {
                subrequest(ctx, inner, m, url, b)
            };
            crate::composite::composite(inner, ctx.version, body, &mut run)
        }
        ["composite"] => method_not_allowed(method, "POST"),
        ["composite", "sobjects", rest @ ..] => {
            crate::composite::collections(inner, ctx.version, method, uri.query(), body, rest)
        }
        ["sobjects", obj, "describe"] if obj.eq_ignore_ascii_case("Account") => {
            get_only(&crate::describe::account)
        }
        ["sobjects", obj, kind @ ("updated" | "deleted")]
            if obj.eq_ignore_ascii_case("Account") =>
        {
            let kind = if *kind == "updated" {
                crate::replication::Kind::Updated
            } else {
                crate::replication::Kind::Deleted
            };
            get_only(&|| crate::replication::answer(inner, kind, uri.query()))
        }
        ["sobjects", obj, rest @ ..] if obj.eq_ignore_ascii_case("Account") => {
            account(ctx, inner, method, body, rest)
        }
        ["sobjects", obj, id] => {
            let Some(object) = objects::OBJECTS
                .iter()
                .find(|o| o.eq_ignore_ascii_case(obj))
            else {
                return wire::not_found();
            };
            get_only(&|| record_by_id(ctx, inner, object, id, uri.query()))
        }
        _ => wire::not_found(),
    }
}

/// A composite subrequest: `url` is the path (and query) under `/services/data/vXX.X`.
fn subrequest(
    ctx: &Ctx<'_>,
    inner: &mut Inner,
    method: &Method,
    url: &str,
    body: &[u8],
) -> Response {
    let Ok(uri) = format!("/services/data/v{}{url}", ctx.version).parse::<Uri>() else {
        return wire::not_found();
    };
    let path = uri.path().trim_start_matches("/services/data");
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .skip(1)
        .map(ids::percent_decode)
        .collect();
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    // A composite may not nest another composite.
    if seg.first() == Some(&"composite") && seg.len() == 1 {
        return wire::rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "A composite subrequest cannot be a composite request",
        );
    }
    route(ctx, inner, method, &uri, &HeaderMap::new(), body, &seg)
}

/// `GET sobjects/{Object}/{id}` for the objects other than Account (User, the diagnosis
/// objects): every field, or those named in `?fields=`.
fn record_by_id(
    ctx: &Ctx<'_>,
    inner: &Inner,
    object: &str,
    id: &str,
    query: Option<&str>,
) -> Response {
    let Some(mut row) = objects::row_by_id(ctx.org, inner, object, id, ctx.token) else {
        return wire::not_found();
    };
    let pairs = ids::query_pairs(query);
    if let Some(fields) = ids::pair(&pairs, "fields") {
        let wanted: Vec<&str> = fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        if let Some(bad) = wanted
            .iter()
            .find(|w| !row.keys().any(|k| k.eq_ignore_ascii_case(w)))
        {
            return wire::rest_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                &format!("No such column '{bad}' on entity '{object}'."),
            );
        }
        row.retain(|k, _| k == "Id" || wanted.iter().any(|w| w.eq_ignore_ascii_case(k)));
    }
    wire::json(
        StatusCode::OK,
        &Value::Object(with_attributes(ctx.version, object, row)),
    )
}

fn resources(ctx: &Ctx<'_>, inner: &Inner) -> Response {
    let d = format!("/services/data/v{}", ctx.version);
    let user = inner
        .sessions
        .get(ctx.token)
        .map(|s| s.user_id.clone())
        .unwrap_or_default();
    wire::json(
        StatusCode::OK,
        &json!({
            "sobjects": format!("{d}/sobjects"),
            "identity": ctx.org.identity_url(&user),
            "query": format!("{d}/query"),
            "queryAll": format!("{d}/queryAll"),
            "limits": format!("{d}/limits"),
            "composite": format!("{d}/composite"),
            "jobs": format!("{d}/jobs"),
        }),
    )
}

fn describe_global() -> Response {
    let sobjects: Vec<Value> = objects::OBJECTS
        .iter()
        .map(|o| json!({"name": o, "label": o, "queryable": true, "createable": *o == "Account"}))
        .collect();
    wire::json(
        StatusCode::OK,
        &json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}),
    )
}

fn limits(inner: &Inner) -> Response {
    let max = inner.daily_api_limit;
    let remaining = max.saturating_sub(inner.api_used);
    let mr = |m: u64, r: u64| json!({"Max": m, "Remaining": r});
    wire::json(
        StatusCode::OK,
        &json!({
            "ConcurrentAsyncGetReportInstances": mr(200, 200),
            "ConcurrentSyncReportRuns": mr(20, 20),
            "DailyApiRequests": mr(max, remaining),
            "DailyAsyncApexExecutions": mr(250000, 250000),
            "DailyBulkApiBatches": mr(15000, 15000),
            "DailyBulkApiRequests": mr(10000, 10000),
            "DailyBulkV2QueryFileStorageMB": mr(976562, 976562),
            "DailyBulkV2QueryJobs": mr(10000, 10000),
            "DataStorageMB": mr(5, 5),
            "FileStorageMB": mr(20, 20),
            "HourlyODataCallout": mr(20000, 20000),
            "PermissionSets": {"Max": 1500, "Remaining": 1500, "CreateCustom": mr(1000, 1000)},
            "SingleEmail": mr(15, 15),
        }),
    )
}

/// `Sforce-Query-Options: batchSize=N`, clamped to Salesforce's 200..2000.
fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("Sforce-Query-Options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        })
        .map(|n| n.clamp(MIN_BATCH, MAX_BATCH))
        .unwrap_or(DEFAULT_BATCH)
}

/// One page of a query in the REST API's shape and key order.
fn query_page(total: usize, next: Option<&str>, records: &str) -> Response {
    let mut body = String::with_capacity(records.len() + 128);
    body.push_str(&format!(
        "{{\"totalSize\":{total},\"done\":{}",
        next.is_none()
    ));
    if let Some(next) = next {
        body.push_str(&format!(",\"nextRecordsUrl\":{}", json_str(next)));
    }
    body.push_str(",\"records\":[");
    body.push_str(records);
    body.push_str("]}");
    wire::json_text(StatusCode::OK, body)
}

fn query(ctx: &Ctx<'_>, inner: &mut Inner, kind: &str, soql: &str, batch: usize) -> Response {
    let selected =
        objects::with_selection(ctx.org, inner, soql, kind == "queryAll", ctx.token, |s| {
            let records = (!s.count_only)
                .then(|| RenderedRecords::render(ctx.version, s.object, &s.fields, &s.rows));
            (s.object, s.total, records)
        });
    let (object, total, records) = match selected {
        Ok(r) => r,
        Err(e) => return wire::rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let Some(records) = records else {
        return query_page(total, None, "");
    };
    let total = records.len();
    if total <= batch {
        return query_page(total, None, records.slice(0, total));
    }
    let first = records.slice(0, batch).to_owned();
    let cursor = inner.store_cursor(
        &ctx.org.pod,
        Cursor {
            object: object.to_owned(),
            rows: CursorRows::Rest(records),
            batch,
        },
    );
    let next = format!("/services/data/v{}/{kind}/{cursor}-{batch}", ctx.version);
    query_page(total, Some(&next), &first)
}

fn next_page(ctx: &Ctx<'_>, inner: &mut Inner, kind: &str, locator: &str) -> Response {
    let invalid = || {
        wire::rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((cursor, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let Some(c) = inner.cursors.get(cursor) else {
        return invalid();
    };
    let total = c.rows.len();
    if offset >= total {
        return invalid();
    }
    let end = (offset + c.batch).min(total);
    let next =
        (end < total).then(|| format!("/services/data/v{}/{kind}/{cursor}-{end}", ctx.version));
    match &c.rows {
        CursorRows::Rest(records) => query_page(total, next.as_deref(), records.slice(offset, end)),
        // A SOAP cursor continued over REST: its rows are projected but not yet rendered.
        CursorRows::Soap(rows) => {
            let fields: Vec<String> = rows
                .first()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            let refs: Vec<&Row> = rows[offset..end].iter().collect();
            let page = RenderedRecords::render(ctx.version, &c.object, &fields, &refs);
            query_page(total, next.as_deref(), page.slice(0, page.len()))
        }
    }
}

/// Adds `attributes` the way the REST API does.
pub fn with_attributes(version: &str, object: &str, mut row: Row) -> Row {
    let id = row
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut attrs = json!({"type": object});
    if !id.is_empty() {
        attrs["url"] = json!(format!("/services/data/v{version}/sobjects/{object}/{id}"));
    }
    row.insert("attributes".into(), attrs);
    row
}

fn account(
    ctx: &Ctx<'_>,
    inner: &mut Inner,
    method: &Method,
    body: &[u8],
    rest: &[&str],
) -> Response {
    let now = inner.now();
    match rest {
        [] => match *method {
            Method::POST => {
                let body = match json_body(body) {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                match inner.accounts.create(&body, now) {
                    Ok(id) => wire::json(
                        StatusCode::CREATED,
                        &json!({"id": id, "success": true, "errors": []}),
                    ),
                    Err(e) => record_error(e),
                }
            }
            Method::GET | Method::HEAD => wire::json(
                StatusCode::OK,
                &json!({
                    "objectDescribe": {"name": "Account", "label": "Account", "keyPrefix": "001",
                        "queryable": true, "createable": true, "updateable": true, "deletable": true,
                        "urls": {"sobject": format!("/services/data/v{}/sobjects/Account", ctx.version)}},
                    "recentItems": [],
                }),
            ),
            _ => method_not_allowed(method, "GET,HEAD,POST"),
        },
        [id] => match *method {
            Method::GET | Method::HEAD => match inner.accounts.get(id) {
                Ok(row) => wire::json(
                    StatusCode::OK,
                    &Value::Object(with_attributes(ctx.version, "Account", row)),
                ),
                Err(e) => record_error(e),
            },
            Method::PATCH => {
                let body = match json_body(body) {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                match inner.accounts.update(id, &body, now) {
                    Ok(()) => wire::empty(StatusCode::NO_CONTENT),
                    Err(e) => record_error(e),
                }
            }
            Method::DELETE => match inner.accounts.delete(id, now) {
                Ok(()) => wire::empty(StatusCode::NO_CONTENT),
                Err(e) => record_error(e),
            },
            _ => method_not_allowed(method, "GET,PATCH,DELETE,HEAD"),
        },
        [field, value] if field.eq_ignore_ascii_case("ExtId__c") => match *method {
            Method::GET | Method::HEAD => match inner.accounts.get_by_ext(value) {
                Ok(row) => wire::json(
                    StatusCode::OK,
                    &Value::Object(with_attributes(ctx.version, "Account", row)),
                ),
                Err(e) => record_error(e),
            },
            Method::PATCH | Method::POST => {
                let body = match json_body(body) {
                    Ok(b) => b,
                    Err(r) => return r,
                };
                // Since API v46 an upsert answers 201 (created) or 200 (updated), each with a
                // body carrying `created`.
                match inner.accounts.upsert_ext(value, &body, now) {
                    Ok((id, created)) => wire::json(
                        if created {
                            StatusCode::CREATED
                        } else {
                            StatusCode::OK
                        },
                        &json!({"id": id, "success": true, "errors": [], "created": created}),
                    ),
                    Err(e) => record_error(e),
                }
            }
            _ => method_not_allowed(method, "GET,PATCH,HEAD,POST"),
        },
        [field, _] => wire::rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {field}"),
        ),
        _ => wire::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_versions() {
        assert_eq!(release_label(20), "Winter '11");
        assert_eq!(release_label(21), "Spring '11");
        assert_eq!(release_label(59), "Winter '24");
        assert_eq!(parse_version("v59.0"), Some("59.0"));
        assert_eq!(parse_version("v50.0"), Some("50.0"));
        assert_eq!(parse_version("59.0"), None);
        assert_eq!(parse_version("vX.0"), None);
    }
}
