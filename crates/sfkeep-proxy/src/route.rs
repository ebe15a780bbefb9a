//! The dispatcher: the open-proxy guards, then each path to its handler — the local answers
//! (`local`), SOAP (session read from the envelope), or forwarding (`forward`).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use sfkeep::diagnose::api_error::Api;

use crate::auth::{authorized, credential_ok, host_ok, presented_credential};
use crate::body;
use crate::client_body::ReqBody;
use crate::conn::Handler;
use crate::forward::{self, Payload};
use crate::h1::RequestHead;
use crate::local;
use crate::reply::Reply;
use crate::respond::{Shape, body_error, error_response, refuse, shape_for, unauthorized};
use crate::shared::Shared;
use crate::soap;
use crate::stats::Counter;
use crate::upstream::Affinity;

/// A path that a server could normalise to somewhere outside `/services/`.
fn path_is_clean(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' => return false,
            // Percent-encoded `.`, `/`, `\` and NUL, in either case.
            b'%' => {
                if let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2))
                    && matches!(
                        (h, l.to_ascii_lowercase()),
                        (b'2', b'e' | b'f') | (b'5', b'c') | (b'0', b'0')
                    )
                {
                    return false;
                }
            }
            // A `.` or `..` segment.
            b'.' if b[i - 1] == b'/' => {
                let rest = &b[i + 1..];
                // `;` too: servlet containers drop path parameters, so `..;` is `..` to them.
                let seg_end = |r: &[u8]| r.is_empty() || r[0] == b'/' || r[0] == b';';
                if seg_end(rest) || (rest[0] == b'.' && seg_end(&rest[1..])) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The proxy's [`Handler`]: [`route`] over its shared state.
pub(crate) struct Router(Arc<Shared>);

impl Router {
    pub(crate) fn new(sh: Arc<Shared>) -> Self {
        Self(sh)
    }
}

impl Handler for Router {
    fn handle(
        &self,
        affinity: &mut Affinity,
        peer: SocketAddr,
        head: &RequestHead,
        body: ReqBody,
    ) -> impl std::future::Future<Output = Reply> + Send {
        route(&self.0, affinity, peer, head, body)
    }
}

/// Routes one request: the open-proxy guards, then the local answers or forwarding.
async fn route(
    sh: &Arc<Shared>,
    affinity: &mut Affinity,
    peer: SocketAddr,
    head: &RequestHead,
    body: ReqBody,
) -> Reply {
    sh.stats.inc(Counter::requests);
    let target = head.target();
    let path = head.path();
    let shape = shape_for(path);
    if head.method == Method::CONNECT {
        return refuse(
            sh,
            StatusCode::METHOD_NOT_ALLOWED,
            Shape::Rest,
            "CONNECT is not supported: sfkeep proxy forwards only to the org's instance",
        )
        .into();
    }
    if !target.starts_with('/') {
        return refuse(
            sh,
            StatusCode::BAD_REQUEST,
            Shape::Rest,
            "absolute-form request targets are not accepted: sfkeep proxy forwards only to the org's instance; send the path alone",
        )
        .into();
    }
    if head.duplicate_host {
        return refuse(
            sh,
            StatusCode::BAD_REQUEST,
            Shape::Rest,
            "more than one Host header",
        )
        .into();
    }
    if !host_ok(sh, head) {
        return refuse(
            sh,
            StatusCode::MISDIRECTED_REQUEST,
            Shape::Rest,
            "the Host header does not name this proxy: sfkeep proxy forwards only to the org's instance",
        )
        .into();
    }
    if !path_is_clean(path) {
        return refuse(
            sh,
            StatusCode::BAD_REQUEST,
            shape,
            "the request path has dot segments or encoded separators",
        )
        .into();
    }
    if head.content_length().is_some_and(|n| n > sh.max_body) {
        return refuse(
            sh,
            StatusCode::PAYLOAD_TOO_LARGE,
            shape,
            "the request body is larger than the proxy's limit",
        )
        .into();
    }
    let method = &head.method;
    match path {
        "/healthz" | "/metrics" | "/_sfkeep/reload" => {
            if !authorized(sh, head) {
                return unauthorized(sh, Shape::Rest).into();
            }
            match (path, method) {
                ("/healthz", &Method::GET | &Method::HEAD) => local::healthz(sh).into(),
                ("/metrics", &Method::GET | &Method::HEAD) => local::metrics(sh).into(),
                ("/_sfkeep/reload", &Method::POST) => {
                    if !peer.ip().is_loopback() {
                        return refuse(
                            sh,
                            StatusCode::FORBIDDEN,
                            Shape::Rest,
                            "reload is allowed from loopback only",
                        )
                        .into();
                    }
                    local::reload(sh).await.into()
                }
                _ => refuse(
                    sh,
                    StatusCode::METHOD_NOT_ALLOWED,
                    Shape::Rest,
                    "method not allowed",
                )
                .into(),
            }
        }
        "/services/oauth2/token" => {
            if method != Method::POST {
                return refuse(
                    sh,
                    StatusCode::METHOD_NOT_ALLOWED,
                    Shape::Rest,
                    "method not allowed",
                )
                .into();
            }
            local::token_shim(sh, body.into_body()).await.into()
        }
        "/services/oauth2/revoke" => {
            // Never forwarded: a client's revoke must not end the proxy's own session.
            local::revoke(sh, head, body.into_body()).await.into()
        }
        p if p.starts_with("/services/oauth2/") && p != "/services/oauth2/userinfo" => refuse(
            sh,
            StatusCode::NOT_FOUND,
            Shape::Rest,
            "sfkeep proxy answers /services/oauth2/token itself and does not forward other OAuth endpoints",
        )
        .into(),
        p if p.starts_with("/services/Soap/") => soap_request(sh, affinity, head, body).await,
        p if p.starts_with("/services/") => {
            let api = if p.starts_with("/services/async/") {
                Api::Bulk1
            } else {
                Api::Rest
            };
            if !authorized(sh, head) {
                return unauthorized(sh, api.into()).into();
            }
            let payload = match body {
                ReqBody::Full(b) if b.len() <= sh.max_replay_body => Payload::Bytes(b),
                body => match body::read_prefix(body.into_body(), sh.max_replay_body).await {
                    Ok(body::Prefix::Whole(b)) => Payload::Bytes(b),
                    Ok(body::Prefix::Stream(s)) => Payload::Stream(s),
                    Err(e) => return body_error(sh, api.into(), e.as_ref()).into(),
                },
            };
            forward::forward(sh, affinity, head, payload, api).await
        }
        _ => refuse(
            sh,
            StatusCode::NOT_FOUND,
            Shape::Rest,
            "sfkeep proxy serves /services/… (forwarded to the org's instance), /healthz, /metrics and POST /_sfkeep/reload only",
        )
        .into(),
    }
}

async fn soap_request(
    sh: &Arc<Shared>,
    affinity: &mut Affinity,
    head: &RequestHead,
    body: ReqBody,
) -> Reply {
    let shape = shape_for(head.path());
    if head.method != Method::POST {
        return refuse(
            sh,
            StatusCode::METHOD_NOT_ALLOWED,
            shape,
            "SOAP calls are POSTs",
        )
        .into();
    }
    let bytes = match body {
        ReqBody::Full(b) => b,
        body => match body::read_all(body.into_body(), usize::MAX).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return refuse(
                    sh,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    shape,
                    "the request body is larger than the proxy's limit",
                )
                .into();
            }
            Err(e) => return body_error(sh, shape, e.as_ref()).into(),
        },
    };
    let env = match soap::inspect(&bytes) {
        Ok(env) => env,
        Err(msg) => {
            sh.stats.inc(Counter::rejected);
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                shape,
                "soapenv:Client",
                &msg,
            )
            .into();
        }
    };
    let path = head.path();
    match env.operation.as_str() {
        "login" => local::soap_login(sh, path, &env).await.into(),
        op => {
            let session = env.session.as_ref().map(|(_, v)| v.as_str());
            let cred = session
                .filter(|s| !s.is_empty())
                .or_else(|| presented_credential(head));
            if !credential_ok(sh, cred) {
                return unauthorized(sh, shape).into();
            }
            if op == "logout" {
                if let Some(s) = session {
                    sh.sessions.remove(s);
                }
                let mut r = Response::new(body::full(soap::logout_response(
                    soap::session_namespace(path),
                )));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/xml;charset=UTF-8"),
                );
                return r.into();
            }
            let ns = soap::session_namespace(path);
            forward::forward(
                sh,
                affinity,
                head,
                Payload::Soap {
                    raw: bytes,
                    env: Box::new(env),
                    ns,
                },
                Api::Soap,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_separators_and_dot_segments_are_not_clean() {
        for bad in [
            "/services/%2e%2e/x",
            "/services/%2E%2E/x",
            "/services/a%2fb",
            "/services/a%2Fb",
            "/services/a%5cb",
            "/services/a%5Cb",
            "/services/a%00",
            "/services/../x",
            "/services/./x",
            "/services/a\\b",
            "/services/..;/apex/x",
            "/services/.;x/y",
            "services/x",
        ] {
            assert!(!path_is_clean(bad), "{bad}");
        }
        for good in [
            "/services/data/v59.0/query",
            "/services/data/v59.0/query%20x",
            "/services/a%2",
            "/services/a%",
            "/services/a%e2%80%a6",
            "/services/..x/y.z",
        ] {
            assert!(path_is_clean(good), "{good}");
        }
    }
}
