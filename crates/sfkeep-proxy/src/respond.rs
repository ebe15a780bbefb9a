//! The answers the proxy makes itself when it refuses: in the shape the client expects (REST
//! JSON, a SOAP fault, a Bulk 1.0 `<error>`), counted.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use sfkeep::diagnose::api_error::Api;

use crate::body::{self, Body};
use crate::client_body::ClientBodyError;
use crate::shared::Shared;
use crate::soap;
use crate::stats::Counter;

/// Which kind of body a refusal should carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `[{"errorCode":…,"message":…}]` (REST).
    Rest,
    /// A SOAP fault (partner and other endpoints).
    Soap,
    /// A SOAP fault from the enterprise endpoint (`/services/Soap/c/`): its own namespace.
    SoapEnterprise,
    /// Bulk 1.0 `<error>`.
    Bulk1,
}

impl From<Api> for Shape {
    fn from(a: Api) -> Self {
        match a {
            Api::Rest => Shape::Rest,
            Api::Soap => Shape::Soap,
            Api::Bulk1 => Shape::Bulk1,
        }
    }
}

/// The shape of refusals on a path.
pub(crate) fn shape_for(path: &str) -> Shape {
    if path.starts_with("/services/Soap/c/") {
        Shape::SoapEnterprise
    } else if path.starts_with("/services/Soap/") {
        Shape::Soap
    } else if path.starts_with("/services/async/") {
        Shape::Bulk1
    } else {
        Shape::Rest
    }
}

/// A local error response in the shape the client expects.
pub(crate) fn error_response(
    status: StatusCode,
    shape: Shape,
    code: &str,
    message: &str,
) -> Response<Body> {
    let (ctype, body) = match shape {
        Shape::Rest => (
            "application/json;charset=UTF-8",
            serde_json::json!([{ "errorCode": code, "message": message }]).to_string(),
        ),
        Shape::Soap | Shape::SoapEnterprise => {
            let ns = if shape == Shape::SoapEnterprise {
                "urn:fault.enterprise.soap.sforce.com"
            } else {
                "urn:fault.partner.soap.sforce.com"
            };
            (
                "text/xml;charset=UTF-8",
                soap::fault(code, message, false, ns),
            )
        }
        Shape::Bulk1 => (
            "application/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><error xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\"><exceptionCode>{}</exceptionCode><exceptionMessage>{}</exceptionMessage></error>",
                quick_xml::escape::escape(code),
                quick_xml::escape::escape(message)
            ),
        ),
    };
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

pub(crate) fn refuse(
    sh: &Shared,
    status: StatusCode,
    shape: Shape,
    message: &str,
) -> Response<Body> {
    sh.stats.inc(Counter::rejected);
    error_response(status, shape, "SFKEEP_PROXY_REFUSED", message)
}

/// The 401 (REST), 500 fault (SOAP) or 400 (Bulk 1.0) a client without valid credentials gets:
/// what Salesforce says about an invalid session, so clients report it as such.
pub(crate) fn unauthorized(sh: &Shared, shape: Shape) -> Response<Body> {
    sh.stats.inc(Counter::unauthorized);
    match shape {
        Shape::Rest => {
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                Shape::Rest,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            r
        }
        Shape::Soap | Shape::SoapEnterprise => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            shape,
            "INVALID_SESSION_ID",
            "Invalid Session ID found in SessionHeader: Illegal Session",
        ),
        Shape::Bulk1 => error_response(
            StatusCode::BAD_REQUEST,
            Shape::Bulk1,
            "InvalidSessionId",
            "Invalid session id",
        ),
    }
}

/// The refusal for a request body that could not be read (413, 408 or 400).
pub(crate) fn body_error(
    sh: &Shared,
    shape: Shape,
    e: &(dyn std::error::Error + 'static),
) -> Response<Body> {
    match ClientBodyError::find(e) {
        Some(c) => refuse(sh, c.status(), shape, &c.to_string()),
        None => refuse(
            sh,
            StatusCode::BAD_REQUEST,
            shape,
            "the request body could not be read",
        ),
    }
}
