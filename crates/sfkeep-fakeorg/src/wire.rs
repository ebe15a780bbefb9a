//! Response builders with Salesforce's status codes, headers and body shapes
//! (docs/salesforce-wire.md). Every error the org sends goes through here, so no
//! framework or Rust error text ever reaches the wire.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The content type Salesforce sends on JSON responses.
pub const JSON_CT: &str = "application/json;charset=UTF-8";
/// The content type Salesforce sends on SOAP responses.
pub const XML_CT: &str = "text/xml;charset=UTF-8";
/// Largest request body the org reads (bytes), except a Bulk API 2.0 upload.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;
/// Largest Bulk API 2.0 upload (`PUT …/jobs/ingest/{id}/batches`): 150 MB once Salesforce has
/// base64-encoded it, so 100 MB of CSV (docs/salesforce-bulk.md).
pub const INGEST_UPLOAD_LIMIT: usize = 100 * 1024 * 1024;

/// The body limit for a request to `path`.
fn body_limit(path: &str) -> usize {
    if path.contains("/jobs/ingest/") && path.trim_end_matches('/').ends_with("/batches") {
        INGEST_UPLOAD_LIMIT
    } else {
        BODY_LIMIT
    }
}

/// A JSON response with Salesforce's content type.
pub fn json(status: StatusCode, value: &Value) -> Response {
    let mut r = (status, value.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT));
    r
}

/// A JSON response from text already serialized (query pages rendered from stored records).
pub fn json_text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT));
    r
}

/// A token-endpoint style JSON response (`Cache-Control: no-cache, no-store`, §2).
pub fn token_json(status: StatusCode, value: &Value) -> Response {
    let mut r = json(status, value);
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// `400 {"error":..,"error_description":..}` from the OAuth endpoints.
pub fn token_error(error: &str, description: &str) -> Response {
    token_json(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

/// A REST error: a JSON array with one `{"message","errorCode"}` element (§4).
pub fn rest_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, &json!([{"message": message, "errorCode": code}]))
}

/// `401 [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]` with
/// `WWW-Authenticate: Token` (§4.1, RECORDED).
pub fn invalid_session() -> Response {
    let mut r = rest_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    r
}

/// `404 NOT_FOUND` as the REST API sends it.
pub fn not_found() -> Response {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// A SOAP envelope with the SOAP content type.
pub fn soap(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(XML_CT));
    r
}

/// A JSON error from the admin API (`{"error": ..}` plus details).
pub fn admin_error(status: StatusCode, error: &str, detail: Value) -> Response {
    let mut body = json!({"error": error});
    if let (Some(obj), Value::Object(extra)) = (body.as_object_mut(), detail) {
        obj.extend(extra);
    }
    json(status, &body)
}

/// A Bulk API 1.0 error document (`<error>` in the Bulk API's namespace).
pub fn async_error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><error xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\"><exceptionCode>{}</exceptionCode><exceptionMessage>{}</exceptionMessage></error>",
        quick_xml::escape::escape(code),
        quick_xml::escape::escape(message)
    )
}

/// The shape of an error depends on which API the path belongs to.
pub fn error_for_path(path: &str, status: StatusCode, code: &str, message: &str) -> Response {
    if path.starts_with("/_fake") {
        admin_error(status, message, json!({"code": code}))
    } else if path.starts_with("/services/oauth2") {
        token_json(
            status,
            &json!({"error": "invalid_request", "error_description": message}),
        )
    } else if path.starts_with("/services/async") {
        let mut r = (status, async_error_xml(code, message)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        r
    } else if path.starts_with("/services/Soap") {
        use crate::soapxml::{FaultKind, Flavour};
        let body = crate::soapxml::fault(
            Flavour::from_path(path),
            FaultKind::UnexpectedError,
            code,
            message,
        );
        soap(StatusCode::INTERNAL_SERVER_ERROR, body)
    } else {
        rest_error(status, code, message)
    }
}

/// A request body read up to its limit (`body_limit`), chunked or not. Too large → 413 in the
/// shape of the API the request was sent to.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let path = req.uri().path().to_owned();
        let limit = body_limit(&path);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(&path));
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(b) => Ok(RawBody(b)),
            // Either the limit was hit mid-stream (chunked) or the client went away; in the
            // second case nobody reads the answer.
            Err(_) => Err(too_large(&path)),
        }
    }
}

/// 413 in the shape of the API at `path`. The errorCode is UNVERIFIED (Salesforce's
/// exact body for oversized requests is not recorded).
pub fn too_large(path: &str) -> Response {
    error_for_path(
        path,
        StatusCode::PAYLOAD_TOO_LARGE,
        "REQUEST_ENTITY_TOO_LARGE",
        "Request body exceeds the maximum size",
    )
}

/// An empty-bodied response.
pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}
