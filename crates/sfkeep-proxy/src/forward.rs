//! Forwarding to the instance: header hygiene, token injection, and one replay after a
//! session death (salesforce-wire.md §4–§6, token-manager-design.md §2.9).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use sfkeep::Token;
use sfkeep::diagnose::api_error::{Api, SessionVerdict, session_verdict};

use crate::body::{self, Body, Prefix};
use crate::server::{Replayed, Shape, Shared, error_response, is_length_limit};
use crate::soap;
use crate::stats::Counter;
use crate::upstream::{Affinity, Target};

/// The largest error body read to decide whether a session died.
const MAX_VERDICT_BODY: usize = 256 << 10;

/// A request body, as far as a replay is concerned.
pub(crate) enum Payload {
    /// Buffered (at most `max_replay_body`): replayable.
    Bytes(Bytes),
    /// A SOAP envelope: replayable, the session id rewritten per attempt.
    Soap {
        raw: Bytes,
        env: Box<soap::Envelope>,
        ns: &'static str,
    },
    /// Too large to keep: streams once.
    Stream(Body),
}

/// Request headers never forwarded: credentials of the client's own, hop-by-hop headers, and
/// what the proxy sets itself.
fn strip_request(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization"
            | "x-sfdc-session"
            | "cookie"
            | "host"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
            | "content-length"
    ) || name.as_str().starts_with("proxy-")
}

/// Response headers never passed back.
fn strip_response(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "set-cookie"
    ) || name.as_str().starts_with("proxy-")
}

/// Removes the headers `strip` names and those listed in `Connection` (hop-by-hop too), in
/// place: cheaper than copying the rest into a new map, as most headers stay.
fn strip_headers(headers: &mut HeaderMap, strip: fn(&HeaderName) -> bool) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // The usual values name no header: skip parsing them (and the allocation).
            .filter(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    // Requests carry at most hyper's 100 headers, so rescanning after each removal is cheap.
    while let Some(name) = headers.keys().find(|n| strip(n)).cloned() {
        headers.remove(name);
    }
}

/// [`strip_headers`] for a request.
pub(crate) fn strip_request_headers(headers: &mut HeaderMap) {
    strip_headers(headers, strip_request);
}

/// What a token means for the requests forwarded with it, worked out once per token rather
/// than per request.
pub(crate) struct Prepared {
    /// The token these were made from (kept so its identity can be compared).
    token: Token,
    /// The instance URL without a trailing slash (for `Location` rewriting).
    base: String,
    /// Where connections go.
    target: Option<Target>,
    /// `Host` for the instance.
    host: Option<HeaderValue>,
    /// A path the instance URL carries before `/services/…` (normally none).
    prefix: Option<String>,
    /// `Authorization: Bearer …` (REST) and `X-SFDC-Session` (Bulk 1.0), marked sensitive.
    bearer: Option<HeaderValue>,
    session: Option<HeaderValue>,
}

impl Prepared {
    fn new(token: &Token) -> Self {
        let base = token.instance_url().trim_end_matches('/').to_owned();
        let uri: Option<Uri> = base.parse().ok();
        let target = uri.as_ref().and_then(Target::of);
        let host = uri.as_ref().and_then(|u| {
            let host = u.host()?;
            let default = match u.scheme_str() {
                Some("https") => 443,
                _ => 80,
            };
            let v = match u.port_u16() {
                Some(p) if p != default => HeaderValue::from_str(&format!("{host}:{p}")),
                _ => HeaderValue::from_str(host),
            };
            v.ok()
        });
        let prefix = uri
            .as_ref()
            .map(|u| u.path().trim_end_matches('/'))
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let secret = token.access_token().expose_secret();
        let sensitive = |v: Result<HeaderValue, _>| {
            v.ok().map(|mut v: HeaderValue| {
                v.set_sensitive(true);
                v
            })
        };
        Self {
            token: token.clone(),
            base,
            target,
            host,
            prefix,
            bearer: sensitive(HeaderValue::from_str(&format!("Bearer {secret}"))),
            session: sensitive(HeaderValue::from_str(secret)),
        }
    }

    /// The prepared values for `token`: cached, remade when the token changes.
    pub(crate) fn of(sh: &Shared, token: &Token) -> Arc<Self> {
        let mut cached = sh.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cached.as_ref()
            && std::ptr::eq(p.token.record(), token.record())
        {
            return Arc::clone(p);
        }
        let p = Arc::new(Self::new(token));
        *cached = Some(Arc::clone(&p));
        p
    }
}

fn upstream_request(
    parts: &Parts,
    prepared: &Prepared,
    api: Api,
    mut headers: HeaderMap,
    body: Body,
    length: Option<u64>,
) -> Result<Request<Body>, String> {
    let bad_url = || "the token's instance URL does not form a valid request URL".to_owned();
    let (Some(_), Some(host)) = (&prepared.target, &prepared.host) else {
        return Err(bad_url());
    };
    // Origin-form, as sent to the proxy (absolute-form was refused before this point).
    let uri = match &prepared.prefix {
        None => parts.uri.clone(),
        Some(prefix) => {
            let pq = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            format!("{prefix}{pq}").parse().map_err(|_| bad_url())?
        }
    };
    headers.insert(header::HOST, host.clone());
    let bad_token = || "the access token is not a valid header value".to_owned();
    match api {
        Api::Rest => {
            headers.insert(
                header::AUTHORIZATION,
                prepared.bearer.clone().ok_or_else(bad_token)?,
            );
        }
        Api::Bulk1 => {
            headers.insert(
                "x-sfdc-session",
                prepared.session.clone().ok_or_else(bad_token)?,
            );
        }
        Api::Soap => {
            // The session goes in the envelope; compressed faults could not be classified.
            headers.remove(header::ACCEPT_ENCODING);
        }
    }
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Ok(req)
}

fn client_response(
    sh: &Shared,
    base: &str,
    parts: http::response::Parts,
    body: Body,
) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    *resp.headers_mut() = parts.headers;
    strip_headers(resp.headers_mut(), strip_response);
    // An absolute Location on the instance would take the client away from the proxy.
    if let Some(loc) = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        && let Some(rest) = loc.strip_prefix(base)
        && (rest.is_empty() || rest.starts_with('/'))
        && let Ok(v) = HeaderValue::from_str(&format!("{}{rest}", sh.base_url))
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn no_token(sh: &Shared, api: Api, e: &sfkeep::Error) -> Response<Body> {
    sh.stats.inc(Counter::upstream_errors);
    tracing::warn!(target: "sfkeep_proxy", error = %e, "no token to forward with");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Shape::from(api),
        "SFKEEP_NO_TOKEN",
        &format!("sfkeep proxy cannot get a token for the org: {e}; run `sfkeep doctor`"),
    )
}

/// Whether `status` can mean a dead session for `api`.
fn candidate(api: Api, status: StatusCode) -> bool {
    match api {
        Api::Rest => status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
        Api::Soap => status == StatusCode::INTERNAL_SERVER_ERROR,
        Api::Bulk1 => status == StatusCode::BAD_REQUEST,
    }
}

fn attempt_body(
    payload: &mut Option<Payload>,
    token: &Token,
    method: &Method,
) -> (Body, Option<u64>, bool) {
    let needs_length = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    match payload {
        Some(Payload::Bytes(b)) => {
            let len = (!b.is_empty() || needs_length).then_some(b.len() as u64);
            (body::full(b.clone()), len, true)
        }
        Some(Payload::Soap { raw, env, ns }) => {
            let v = soap::with_session(raw, env, token.access_token().expose_secret(), ns);
            let len = v.len() as u64;
            (body::full(v), Some(len), true)
        }
        Some(Payload::Stream(_)) => match payload.take() {
            Some(Payload::Stream(s)) => (s, None, false),
            _ => (body::empty(), None, false),
        },
        None => (body::empty(), None, false),
    }
}

/// Forwards once; once more after a session death when the body was kept; and, for GET and
/// HEAD only, once more after a connection failure or a 502/503/504 (a repeat cannot change
/// anything on the server, and simple clients such as simple-salesforce do not retry).
pub(crate) async fn forward(
    sh: &Arc<Shared>,
    affinity: &Arc<Affinity>,
    mut parts: Parts,
    payload: Payload,
    api: Api,
) -> Response<Body> {
    let mut token = match sh.manager.token().await {
        Ok(t) => t,
        Err(e) => return no_token(sh, api, &e),
    };
    let stream_length = match &payload {
        Payload::Stream(_) => parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok()),
        _ => None,
    };
    // Stripped once; each attempt gets a copy while another attempt may follow.
    let mut headers = std::mem::take(&mut parts.headers);
    strip_request_headers(&mut headers);
    let mut payload = Some(payload);
    let mut replayed = false;
    let safe_method = matches!(parts.method, http::Method::GET | http::Method::HEAD);
    let mut transient_retried = false;
    loop {
        let (body, mut length, replayable) = attempt_body(&mut payload, &token, &parts.method);
        if !replayable {
            length = stream_length;
        }
        let prepared = Prepared::of(sh, &token);
        // Another attempt can follow only a kept body: a replay, or a GET/HEAD retry.
        let last = payload.is_none() || (replayed && (!safe_method || transient_retried));
        let attempt_headers = if last {
            std::mem::take(&mut headers)
        } else {
            headers.clone()
        };
        let req = match upstream_request(&parts, &prepared, api, attempt_headers, body, length) {
            Ok(r) => r,
            Err(msg) => {
                sh.stats.inc(Counter::upstream_errors);
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    api.into(),
                    "SFKEEP_UPSTREAM_ERROR",
                    &msg,
                );
            }
        };
        sh.stats.inc(Counter::forwarded);
        let Some(target) = &prepared.target else {
            // upstream_request has refused such a token already.
            return error_response(
                StatusCode::BAD_GATEWAY,
                api.into(),
                "SFKEEP_UPSTREAM_ERROR",
                "the token's instance URL does not form a valid request URL",
            );
        };
        let sent = affinity.send(target, req);
        let resp = match tokio::time::timeout(sh.upstream_timeout, sent).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                if is_length_limit(e.as_ref()) {
                    sh.stats.inc(Counter::rejected);
                    return error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        api.into(),
                        "SFKEEP_PROXY_REFUSED",
                        "the request body is larger than the proxy's limit",
                    );
                }
                sh.stats.inc(Counter::upstream_errors);
                tracing::warn!(target: "sfkeep_proxy", error = %e, "request to the instance failed");
                if safe_method && !transient_retried && payload.is_some() {
                    transient_retried = true;
                    continue;
                }
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    api.into(),
                    "SFKEEP_UPSTREAM_ERROR",
                    "sfkeep proxy could not reach the org's instance",
                );
            }
            Err(_) => {
                sh.stats.inc(Counter::upstream_errors);
                return error_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    api.into(),
                    "SFKEEP_UPSTREAM_TIMEOUT",
                    "the org's instance did not answer in time",
                );
            }
        };
        if let Some(date) = resp.headers().get(header::DATE) {
            sh.observe_date(date);
        }
        let (rparts, rbody) = resp.into_parts();
        if safe_method
            && !transient_retried
            && payload.is_some()
            && matches!(rparts.status.as_u16(), 502..=504)
        {
            transient_retried = true;
            sh.stats.inc(Counter::upstream_errors);
            continue;
        }
        if !candidate(api, rparts.status) {
            let body = rbody.boxed_unsync();
            return mark(client_response(sh, &prepared.base, rparts, body), replayed);
        }
        let bytes = match body::read_prefix(rbody, MAX_VERDICT_BODY).await {
            Ok(Prefix::Whole(b)) => b,
            Ok(Prefix::Stream(s)) => {
                return mark(client_response(sh, &prepared.base, rparts, s), replayed);
            }
            Err(_) => {
                sh.stats.inc(Counter::upstream_errors);
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    api.into(),
                    "SFKEEP_UPSTREAM_ERROR",
                    "the org's instance ended its response early",
                );
            }
        };
        // A compressed error body cannot be read; REST treats any 401 as dead (one replay).
        let readable = !rparts.headers.contains_key(header::CONTENT_ENCODING);
        let verdict = if readable {
            session_verdict(api, rparts.status.as_u16(), &bytes)
        } else if api == Api::Rest && rparts.status == StatusCode::UNAUTHORIZED {
            SessionVerdict::Dead
        } else {
            SessionVerdict::Alive
        };
        if verdict == SessionVerdict::Dead {
            sh.manager
                .invalidate_if_current(token.generation(), api.as_str());
            if !replayed && payload.is_some() {
                match sh.manager.token().await {
                    Ok(t) => {
                        token = t;
                        replayed = true;
                        sh.stats.inc(Counter::replays);
                        continue;
                    }
                    Err(e) => return no_token(sh, api, &e),
                }
            }
            sh.stats.inc(Counter::passthrough_401);
            tracing::warn!(
                target: "sfkeep_proxy",
                api = api.as_str(),
                replayed,
                "session death passed to the client (body too large to replay, or dead again after the replay)"
            );
        }
        return mark(
            client_response(sh, &prepared.base, rparts, body::full(bytes)),
            replayed,
        );
    }
}

fn mark(mut r: Response<Body>, replayed: bool) -> Response<Body> {
    if replayed {
        r.extensions_mut().insert(Replayed);
    }
    r
}
