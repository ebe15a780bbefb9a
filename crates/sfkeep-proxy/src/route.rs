//! The dispatcher: the open-proxy and browser guards on the canonical path, then each path to
//! its handler — the local answers (`local`), SOAP (the session read from the head of the
//! envelope), or forwarding (`forward`). A request is judged from its head (and, for SOAP, the
//! head of its envelope) before the rest of its body is read.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use sfkeep::diagnose::api_error::Api;

use crate::auth::{authorized, credential_ok, host_ok, presented_credential};
use crate::body::{self, Prefix};
use crate::browser::BrowserRefusal;
use crate::client_body::ReqBody;
use crate::conn::Handler;
use crate::forward::{self, Payload};
use crate::h1::RequestHead;
use crate::local;
use crate::path;
use crate::reply::Reply;
use crate::respond::{Shape, body_error, error_response, refuse, shape_for, unauthorized};
use crate::rewrite::Dest;
use crate::shared::Shared;
use crate::soap;
use crate::stats::Counter;
use crate::upstream::Affinity;

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

/// Routes one request: the open-proxy and browser guards, then the local answers or
/// forwarding. No request body is read before the request is known to be allowed.
async fn route(
    sh: &Arc<Shared>,
    affinity: &mut Affinity,
    peer: SocketAddr,
    head: &RequestHead,
    body: ReqBody,
) -> Reply {
    sh.stats.inc(Counter::requests);
    let raw_target = head.target();
    if head.method == Method::CONNECT {
        return refuse(
            sh,
            StatusCode::METHOD_NOT_ALLOWED,
            Shape::Rest,
            "CONNECT is not supported: sfkeep proxy forwards only to the org's instance",
        )
        .into();
    }
    if !raw_target.starts_with('/') {
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
    let path = match path::canonical(head.path()) {
        Ok(p) => p,
        Err(e) => {
            return refuse(sh, StatusCode::BAD_REQUEST, shape_for(head.path()), e.0).into();
        }
    };
    let shape = shape_for(&path);
    let method = &head.method;
    let lookup = |name: &str| head.header(name);
    if let Err(r) = sh.guard.check(head.method_str(), lookup) {
        return browser_refused(sh, shape, r).into();
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
    // What goes upstream: the canonical path with the client's query (no copy if unchanged).
    let target: Cow<'_, str> = match (&path, head.query()) {
        (Cow::Borrowed(_), _) => Cow::Borrowed(raw_target),
        (Cow::Owned(p), None) => Cow::Borrowed(p.as_str()),
        (Cow::Owned(p), Some(q)) => Cow::Owned(format!("{p}?{q}")),
    };
    match &*path {
        "/healthz" | "/metrics" | "/_sfkeep/reload" => {
            if !authorized(sh, head) {
                return unauthorized(sh, Shape::Rest).into();
            }
            match (&*path, method) {
                ("/healthz", &Method::GET | &Method::HEAD) => local::healthz(sh).await.into(),
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
                    if let Err(r) = sh.guard.check_control(head.method_str(), lookup) {
                        return browser_refused(sh, Shape::Rest, r).into();
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
        // The identity URL the token shim hands out (`…/id/{org}/{user}`): forwarded with the
        // token to the org's identity service, for this user only.
        p if p.starts_with("/id/") => {
            if !authorized(sh, head) {
                return unauthorized(sh, Shape::Rest).into();
            }
            if !matches!(*method, Method::GET | Method::HEAD) {
                return refuse(sh, StatusCode::METHOD_NOT_ALLOWED, Shape::Rest, "method not allowed").into();
            }
            let token = match sh.manager.token().await {
                Ok(t) => t,
                Err(e) => return forward::no_token(sh, Api::Rest, &e),
            };
            let (org, user) = local::ids(&token);
            let own = format!("/id/{org}/{user}");
            let rest = p.strip_prefix(own.as_str()).filter(|r| r.is_empty() || *r == "/");
            // Salesforce accepts the 15-character org id in the identity URL too.
            let org15: String = org.chars().take(15).collect();
            let own15 = format!("/id/{org15}/{user}");
            if rest.is_none() && p != own15 && p != format!("{own15}/") {
                return refuse(
                    sh,
                    StatusCode::NOT_FOUND,
                    Shape::Rest,
                    "sfkeep proxy forwards only the identity URL of the user it is logged in as",
                )
                .into();
            }
            let query = head.query().map(|q| format!("?{q}")).unwrap_or_default();
            let payload = Payload::Bytes(Bytes::new());
            forward::forward(sh, affinity, head, Dest::Identity, &query, payload, Api::Rest).await
        }
        p if p.starts_with("/services/Soap/") => {
            soap_request(sh, affinity, head, p, &target, body).await
        }
        p if p.starts_with("/services/") => {
            let api = if p.starts_with("/services/async/") {
                Api::Bulk1
            } else {
                Api::Rest
            };
            // The credential is in the head: decided before a byte of the body is read.
            if !authorized(sh, head) {
                return unauthorized(sh, api.into()).into();
            }
            let payload = match body {
                ReqBody::Full(b) if b.len() <= sh.max_replay_body => Payload::Bytes(b),
                body => match body::read_prefix(Bytes::new(), body.into_body(), sh.max_replay_body)
                    .await
                {
                    Ok(Prefix::Whole(b)) => Payload::Bytes(b),
                    Ok(partial) => Payload::Stream(partial.into_body()),
                    Err(e) => return body_error(sh, api.into(), e.as_ref()).into(),
                },
            };
            forward::forward(sh, affinity, head, Dest::Instance, &target, payload, api).await
        }
        _ => refuse(
            sh,
            StatusCode::NOT_FOUND,
            Shape::Rest,
            "sfkeep proxy serves /services/… (forwarded to the org's instance), the identity URL /id/…, /healthz, /metrics and POST /_sfkeep/reload only",
        )
        .into(),
    }
}

/// The refusal of a request a browser made for a web page, logged (never its headers).
fn browser_refused(sh: &Shared, shape: Shape, r: BrowserRefusal) -> Response<body::Body> {
    sh.stats.inc(Counter::browser_refused);
    tracing::warn!(
        target: "sfkeep_proxy",
        refusal = r.as_str(),
        "request refused: a web browser made it for a page"
    );
    let mut resp = error_response(r.status(), shape, "SFKEEP_PROXY_REFUSED", &r.to_string());
    if r == BrowserRefusal::Preflight {
        resp.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
    }
    resp
}

/// What reading the head of a SOAP request gave: what was read, the head, and the rest of
/// the body if it has not ended.
struct SoapHead {
    read: Bytes,
    head: soap::EnvelopeHead,
    rest: Option<body::Body>,
}

/// Why a SOAP head could not be read.
enum SoapHeadError {
    /// The request itself: a fault.
    Soap(soap::SoapError),
    /// The body could not be read (too large, too slow, cut off).
    Body(body::BoxError),
}

/// Reads a SOAP request only as far as the operation's start tag (within
/// [`soap::HEAD_LIMITS`]); a head that breaks the rules is refused before the rest is read.
async fn read_soap_head(body: ReqBody) -> Result<SoapHead, SoapHeadError> {
    let limits = soap::HEAD_LIMITS;
    let mut body = match body {
        ReqBody::Full(b) => {
            return match soap::scan_head(&b, true, limits) {
                Ok(soap::Scan::Head(head)) => Ok(SoapHead {
                    read: b,
                    head,
                    rest: None,
                }),
                Ok(soap::Scan::NeedMore) => Err(SoapHeadError::Soap(soap::SoapError(
                    "the SOAP Envelope has no Body operation".into(),
                ))),
                Err(e) => Err(SoapHeadError::Soap(e)),
            };
        }
        body => body.into_body(),
    };
    let mut buf = BytesMut::new();
    let mut scanned = 0usize;
    loop {
        let frame = body.frame().await;
        let complete = match frame {
            None => true,
            Some(Err(e)) => return Err(SoapHeadError::Body(e)),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    buf.extend_from_slice(&data);
                }
                false
            }
        };
        // Scanned again only once the bytes have grown by half (or at the limit, or the
        // end): a client trickling a byte at a time costs a few scans, not one per byte.
        let grown = scanned == 0 || buf.len() >= scanned + (scanned / 2).max(512);
        if !(complete || grown || buf.len() >= limits.max_bytes) {
            continue;
        }
        scanned = buf.len();
        match soap::scan_head(&buf, complete, limits) {
            Ok(soap::Scan::NeedMore) if !complete => {}
            Ok(soap::Scan::NeedMore) => {
                return Err(SoapHeadError::Soap(soap::SoapError(
                    "the SOAP Envelope has no Body operation".into(),
                )));
            }
            Ok(soap::Scan::Head(head)) => {
                return Ok(SoapHead {
                    read: buf.freeze(),
                    head,
                    rest: (!complete).then_some(body),
                });
            }
            Err(e) => return Err(SoapHeadError::Soap(e)),
        }
    }
}

async fn soap_request(
    sh: &Arc<Shared>,
    affinity: &mut Affinity,
    head: &RequestHead,
    path: &str,
    target: &str,
    body: ReqBody,
) -> Reply {
    let shape = shape_for(path);
    if head.method != Method::POST {
        return refuse(
            sh,
            StatusCode::METHOD_NOT_ALLOWED,
            shape,
            "SOAP calls are POSTs",
        )
        .into();
    }
    let SoapHead {
        read,
        head: env,
        rest,
    } = match read_soap_head(body).await {
        Ok(h) => h,
        Err(SoapHeadError::Body(e)) => return body_error(sh, shape, e.as_ref()).into(),
        Err(SoapHeadError::Soap(e)) => {
            sh.stats.inc(Counter::rejected);
            // The reason, not the request: a parser's message can quote the client's bytes.
            tracing::warn!(
                target: "sfkeep_proxy",
                "SOAP request refused: its head is malformed or past the proxy's limits"
            );
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                shape,
                "soapenv:Client",
                &e.0,
            )
            .into();
        }
    };
    if env.operation == "login" {
        // Answered here: read whole (it is small), and parsed for the username and password.
        let whole = match rest {
            None => Ok(Prefix::Whole(read)),
            Some(rest) => body::read_prefix(read, rest, soap::MAX_LOGIN_BYTES).await,
        };
        return match whole {
            Ok(Prefix::Whole(b)) => match soap::parse_login(&b) {
                Ok((user, pass)) => local::soap_login(sh, path, user, pass).await.into(),
                Err(e) => {
                    sh.stats.inc(Counter::rejected);
                    error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        shape,
                        "soapenv:Client",
                        &e.0,
                    )
                    .into()
                }
            },
            Ok(Prefix::Partial { .. }) => refuse(
                sh,
                StatusCode::PAYLOAD_TOO_LARGE,
                shape,
                "a login() request is larger than the proxy reads (64 KiB)",
            )
            .into(),
            Err(e) => body_error(sh, shape, e.as_ref()).into(),
        };
    }
    let session = env.session.as_deref();
    let cred = session
        .filter(|s| !s.is_empty())
        .or_else(|| presented_credential(head));
    if !credential_ok(sh, cred) {
        return unauthorized(sh, shape).into();
    }
    let ns = soap::session_namespace(path);
    if env.operation == "logout" {
        if let Some(s) = session {
            sh.sessions.remove(s);
        }
        let mut r = Response::new(body::full(soap::logout_response(ns)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml;charset=UTF-8"),
        );
        return r.into();
    }
    let splice = env.splice;
    let payload = match rest {
        None => Payload::Soap {
            body: read,
            splice,
            ns,
        },
        Some(rest) => match body::read_prefix(read, rest, sh.max_replay_body).await {
            Ok(Prefix::Whole(b)) => Payload::Soap {
                body: b,
                splice,
                ns,
            },
            Ok(Prefix::Partial { read, rest }) => Payload::SoapStream {
                read,
                splice,
                rest,
                ns,
            },
            Err(e) => return body_error(sh, shape, e.as_ref()).into(),
        },
    };
    forward::forward(
        sh,
        affinity,
        head,
        Dest::Instance,
        target,
        payload,
        Api::Soap,
    )
    .await
}
