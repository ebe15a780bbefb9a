//! SObject Collections (`/composite/sobjects`) and Composite (`/composite`) under
//! `/services/data/vXX.X` (docs/salesforce-composite.md).
//!
//! Collections write up to 200 Account records in one call and answer one SaveResult per
//! record, in order; with `allOrNone` one failure rolls every record back. Composite runs up
//! to 25 REST subrequests in order, a later one reading an earlier one's answer through
//! `@{referenceId.path}`; with `allOrNone` one failure rolls the whole request back. A
//! subrequest is answered by the REST API itself, through the `Subrequest` callback the REST
//! dispatcher hands in (so this module never imports the dispatcher).

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::FutureExt;
use serde_json::{Map, Value, json};

use crate::dml::{self, Operation};
use crate::ids;
use crate::records::{Accounts, RecordError};
use crate::state::Inner;
use crate::wire;

/// Most records of one collection call.
pub const MAX_COLLECTION_RECORDS: usize = 200;
/// Most subrequests of one composite call.
pub const MAX_SUBREQUESTS: usize = 25;

/// Runs one REST subrequest: method, URL path (with query) under `/services/data/vXX.X`, body.
pub type Subrequest<'a> = dyn FnMut(&mut Inner, &Method, &str, &[u8]) -> Response + 'a;

fn bad_request(code: &str, message: &str) -> Response {
    wire::rest_error(StatusCode::BAD_REQUEST, code, message)
}

fn save_error(e: &RecordError) -> Value {
    json!({"statusCode": e.code, "message": e.message, "fields": e.fields})
}

fn rolled_back() -> Value {
    json!({
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
        "fields": [],
    })
}

/// `composite/sobjects[/{Object}[/{externalIdField}]]`.
pub fn collections(
    inner: &mut Inner,
    version: &str,
    method: &Method,
    query: Option<&str>,
    body: &[u8],
    rest: &[&str],
) -> Response {
    let now = inner.now();
    match (method, rest) {
        (&Method::POST, []) => write_many(inner, Operation::Insert, None, body, now),
        (&Method::PATCH, []) => write_many(inner, Operation::Update, None, body, now),
        (&Method::PATCH, [object, field]) => {
            if !object.eq_ignore_ascii_case("Account") {
                return bad_request(
                    "INVALID_TYPE",
                    &format!("sObject type '{object}' is not supported."),
                );
            }
            match dml::field(field) {
                Ok(f @ ("ExtId__c" | "Id")) => {
                    write_many(inner, Operation::Upsert, Some(f), body, now)
                }
                _ => wire::rest_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &format!(
                        "Provided external ID field does not exist or is not accessible: {field}"
                    ),
                ),
            }
        }
        (&Method::DELETE, []) => delete_many(inner, query, now),
        (&Method::GET, [object]) => read_many(inner, version, object, query),
        _ => wire::not_found(),
    }
}

/// `(ids, allOrNone)` of a query string.
fn id_list(query: Option<&str>) -> (Vec<String>, bool) {
    let pairs = ids::query_pairs(query);
    let ids: Vec<String> = ids::pair(&pairs, "ids")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let all = ids::pair(&pairs, "allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (ids, all)
}

fn too_many() -> Response {
    // RECORDED wording (errorCode and message as clients print them).
    bad_request(
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

fn write_many(
    inner: &mut Inner,
    op: Operation,
    external_id: Option<&str>,
    body: &[u8],
    now: time::OffsetDateTime,
) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return bad_request(
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object with a records array",
        );
    };
    let Some(Value::Array(records)) = req.get("records") else {
        return bad_request(
            "INVALID_FIELD",
            "The request body must have a records array",
        );
    };
    if records.len() > MAX_COLLECTION_RECORDS {
        return too_many();
    }
    let all_or_none = req
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let snapshot = all_or_none.then(|| inner.accounts.clone());
    let results: Vec<Result<dml::Written, RecordError>> = records
        .iter()
        .map(|r| one_record(&mut inner.accounts, op, external_id, r, now))
        .collect();
    answer(inner, snapshot, results, op == Operation::Upsert)
}

fn one_record(
    accounts: &mut Accounts,
    op: Operation,
    external_id: Option<&str>,
    record: &Value,
    now: time::OffsetDateTime,
) -> Result<dml::Written, RecordError> {
    let Value::Object(m) = record else {
        return Err(RecordError::new(
            400,
            "INVALID_FIELD",
            "Each record must be a JSON object",
        ));
    };
    let ty = m
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str);
    match ty {
        None => Err(RecordError::new(
            400,
            "INVALID_TYPE",
            "Must send a concrete entity type.",
        )),
        Some(t) if !t.eq_ignore_ascii_case("Account") => Err(RecordError::new(
            400,
            "INVALID_TYPE",
            format!("sObject type '{t}' is not supported."),
        )),
        Some(_) => dml::write(accounts, op, external_id, m.clone(), now),
    }
}

/// The SaveResult list; with `allOrNone` and a failure, the snapshot is restored and every
/// record reports failure.
fn answer(
    inner: &mut Inner,
    snapshot: Option<Accounts>,
    results: Vec<Result<dml::Written, RecordError>>,
    upsert: bool,
) -> Response {
    let failed = results.iter().any(Result::is_err);
    let rollback = failed && snapshot.is_some();
    if rollback && let Some(s) = snapshot {
        inner.accounts = s;
    }
    let list: Vec<Value> = results
        .iter()
        .map(|r| match r {
            Ok(w) if rollback => json!({"id": w.id, "success": false, "errors": [rolled_back()]}),
            Ok(w) => {
                let mut v = json!({"id": w.id, "success": true, "errors": []});
                if upsert {
                    v["created"] = json!(w.created);
                }
                v
            }
            Err(e) => json!({"success": false, "errors": [save_error(e)]}),
        })
        .collect();
    wire::json(StatusCode::OK, &Value::Array(list))
}

fn delete_many(inner: &mut Inner, query: Option<&str>, now: time::OffsetDateTime) -> Response {
    let (ids, all_or_none) = id_list(query);
    if ids.len() > MAX_COLLECTION_RECORDS {
        return too_many();
    }
    let snapshot = all_or_none.then(|| inner.accounts.clone());
    let results: Vec<Result<dml::Written, RecordError>> = ids
        .iter()
        .map(|id| {
            let mut m = Map::new();
            m.insert("Id".into(), json!(id));
            dml::write(&mut inner.accounts, Operation::Delete, None, m, now)
        })
        .collect();
    let failed = results.iter().any(Result::is_err);
    if failed && let Some(s) = snapshot.clone() {
        inner.accounts = s;
    }
    let list: Vec<Value> = results
        .iter()
        .zip(&ids)
        .map(|(r, id)| match r {
            Ok(w) if failed && snapshot.is_some() => {
                json!({"id": w.id, "success": false, "errors": [rolled_back()]})
            }
            Ok(w) => json!({"id": w.id, "success": true, "errors": []}),
            Err(e) => json!({"id": id, "success": false, "errors": [save_error(e)]}),
        })
        .collect();
    wire::json(StatusCode::OK, &Value::Array(list))
}

fn read_many(inner: &Inner, version: &str, object: &str, query: Option<&str>) -> Response {
    if !object.eq_ignore_ascii_case("Account") {
        return bad_request(
            "INVALID_TYPE",
            &format!("sObject type '{object}' is not supported."),
        );
    }
    let pairs = ids::query_pairs(query);
    let (ids, _) = id_list(query);
    if ids.len() > 2000 {
        return too_many();
    }
    let fields: Vec<&str> = ids::pair(&pairs, "fields")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if fields.is_empty() {
        return bad_request("MALFORMED_QUERY", "The fields parameter is required");
    }
    let mut canonical = Vec::with_capacity(fields.len());
    for f in fields {
        match dml::field(f) {
            Ok(c) => canonical.push(c),
            Err(f) => {
                return bad_request(
                    "INVALID_FIELD",
                    &format!("No such column '{f}' on entity 'Account'."),
                );
            }
        }
    }
    let list: Vec<Value> = ids
        .iter()
        .map(|id| match inner.accounts.get(id) {
            Ok(row) => {
                let mut m = Map::new();
                let rid = row.get("Id").and_then(Value::as_str).unwrap_or(id);
                m.insert(
                    "attributes".into(),
                    json!({"type": "Account", "url": format!("/services/data/v{version}/sobjects/Account/{rid}")}),
                );
                for f in &canonical {
                    m.insert((*f).to_owned(), row.get(*f).cloned().unwrap_or(Value::Null));
                }
                Value::Object(m)
            }
            Err(_) => Value::Null,
        })
        .collect();
    wire::json(StatusCode::OK, &Value::Array(list))
}

/// A subrequest's answer as composite reports it.
struct SubAnswer {
    status: u16,
    location: Option<String>,
    body: Value,
}

fn read_answer(r: Response) -> SubAnswer {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("Location")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned);
    // The org's answers are built from memory, so their bodies are ready at once.
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .now_or_never()
        .and_then(Result::ok)
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    SubAnswer {
        status,
        location,
        body,
    }
}

/// `POST composite`.
pub fn composite(
    inner: &mut Inner,
    version: &str,
    body: &[u8],
    run: &mut Subrequest<'_>,
) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return bad_request(
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object with a compositeRequest array",
        );
    };
    let Some(Value::Array(subs)) = req.get("compositeRequest") else {
        return bad_request(
            "INVALID_INPUT",
            "The request body must have a compositeRequest array",
        );
    };
    if subs.len() > MAX_SUBREQUESTS {
        // UNVERIFIED wording; the limit of 25 is documented.
        return bad_request(
            "LIMIT_EXCEEDED",
            &format!(
                "Composite request has {} subrequests; the limit is {MAX_SUBREQUESTS}",
                subs.len()
            ),
        );
    }
    let all_or_none = req
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let snapshot = all_or_none.then(|| inner.accounts.clone());
    let prefix = format!("/services/data/v{version}");
    let mut done: Vec<(String, SubAnswer)> = Vec::new();
    let mut halted = false;
    for sub in subs {
        let reference = sub
            .get("referenceId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if halted {
            done.push((reference, halted_answer()));
            continue;
        }
        let answer = match prepare(sub, &done, &prefix) {
            Ok((method, url, body)) => {
                let mut a = read_answer(run(inner, &method, &url, &body));
                // A created record's answer names it, as the documented samples show.
                if a.status == 201
                    && a.location.is_none()
                    && let Some(id) = a.body.get("id").and_then(Value::as_str)
                {
                    let path = url.split('?').next().unwrap_or("").trim_end_matches('/');
                    a.location = Some(format!("{prefix}{path}/{id}"));
                }
                a
            }
            Err(message) => SubAnswer {
                status: 400,
                location: None,
                body: json!([{"errorCode": "PROCESSING_HALTED", "message": message}]),
            },
        };
        if answer.status >= 400 && all_or_none {
            halted = true;
        }
        done.push((reference, answer));
    }
    if halted && let Some(s) = snapshot {
        inner.accounts = s;
        for (_, a) in done.iter_mut().filter(|(_, a)| a.status < 400) {
            *a = halted_answer();
        }
    }
    let list: Vec<Value> = done
        .into_iter()
        .map(|(reference, a)| {
            let mut headers = Map::new();
            if let Some(l) = a.location {
                headers.insert("Location".into(), json!(l));
            }
            json!({"body": a.body, "httpHeaders": headers, "httpStatusCode": a.status, "referenceId": reference})
        })
        .collect();
    wire::json(StatusCode::OK, &json!({"compositeResponse": list}))
}

fn halted_answer() -> SubAnswer {
    SubAnswer {
        status: 400,
        location: None,
        body: json!([{"errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed."}]),
    }
}

/// Method, URL (under the version) and body of a subrequest, references resolved.
fn prepare(
    sub: &Value,
    done: &[(String, SubAnswer)],
    prefix: &str,
) -> Result<(Method, String, Vec<u8>), String> {
    let method = sub
        .get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or("Each subrequest needs a method")?;
    let url = sub
        .get("url")
        .and_then(Value::as_str)
        .ok_or("Each subrequest needs a url")?;
    let url = resolve_text(url, done)?;
    let Some(rest) = url.strip_prefix(prefix) else {
        return Err(format!("The subrequest url must start with {prefix}/"));
    };
    let body = match sub.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(b) => resolve_value(b, done)?.to_string().into_bytes(),
    };
    Ok((method, rest.to_owned(), body))
}

/// `@{ref.path}` references in `text`, replaced by the referenced values.
fn resolve_text(text: &str, done: &[(String, SubAnswer)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("Unterminated reference in {text}"))?;
        let value = lookup(&after[..end], done)?;
        match value {
            Value::String(s) => out.push_str(&s),
            v => out.push_str(&v.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_value(v: &Value, done: &[(String, SubAnswer)]) -> Result<Value, String> {
    Ok(match v {
        Value::String(s)
            if s.starts_with("@{") && s.ends_with('}') && s.matches("@{").count() == 1 =>
        {
            lookup(&s[2..s.len() - 1], done)?
        }
        Value::String(s) => Value::String(resolve_text(s, done)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, done))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), resolve_value(x, done)?)))
                .collect::<Result<_, String>>()?,
        ),
        v => v.clone(),
    })
}

/// `ref.a.b[0].c` against the answers so far.
fn lookup(path: &str, done: &[(String, SubAnswer)]) -> Result<Value, String> {
    let (reference, tail) = path.split_once('.').unwrap_or((path, ""));
    let missing = || {
        // UNVERIFIED wording.
        format!("Invalid reference specified. No value for {path} found in {reference}.")
    };
    let Some((_, answer)) = done.iter().find(|(r, _)| r == reference) else {
        return Err(missing());
    };
    if answer.status >= 400 {
        return Err(missing());
    }
    let mut v = &answer.body;
    for part in tail.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !name.is_empty() {
            v = v.get(name).ok_or_else(missing)?;
        }
        if let Some(i) = index {
            v = v.get(i).ok_or_else(missing)?;
        }
    }
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, body: Value) -> SubAnswer {
        SubAnswer {
            status,
            location: None,
            body,
        }
    }

    #[test]
    fn references_resolve_against_earlier_answers() {
        let done = vec![
            (
                "acct".to_owned(),
                answered(201, json!({"id": "001X", "success": true})),
            ),
            (
                "q".to_owned(),
                answered(200, json!({"records": [{"Id": "001Y"}]})),
            ),
            ("bad".to_owned(), answered(400, json!([{"errorCode": "X"}]))),
        ];
        assert_eq!(
            resolve_text("/sobjects/Account/@{acct.id}", &done).unwrap(),
            "/sobjects/Account/001X"
        );
        assert_eq!(lookup("q.records[0].Id", &done).unwrap(), json!("001Y"));
        assert_eq!(
            resolve_value(
                &json!({"ParentId": "@{acct.id}", "n": "x-@{acct.id}"}),
                &done
            )
            .unwrap(),
            json!({"ParentId": "001X", "n": "x-001X"})
        );
        assert!(lookup("bad.id", &done).is_err());
        assert!(lookup("nope.id", &done).is_err());
        assert!(resolve_text("@{acct.id", &done).is_err());
    }
}
