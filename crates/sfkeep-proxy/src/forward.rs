//! Forwarding to the instance: header hygiene, token injection, and one replay after a
//! session death (salesforce-wire.md §4–§6, token-manager-design.md §2.9).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use sfkeep::Token;
use sfkeep::diagnose::api_error::{Api, SessionVerdict, session_verdict};

use crate::body::Body;
use crate::conn::ClientBodyError;
use crate::conn::{Reply, ReplyBody, ReplyHead};
use crate::h1::{self, RequestHead, ResponseHead, name_is, tokens};
use crate::server::{Shape, Shared, error_response};
use crate::soap;
use crate::stats::Counter;
use crate::upstream::{Affinity, OutBody, Target, TimedOut, UpstreamBody};

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
fn strip_request(name: &[u8]) -> bool {
    // By length first: most lines are compared with nothing.
    let strip: &[&str] = match name.len() {
        2 => &["te"],
        4 => &["host"],
        6 => &["cookie", "expect"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        13 => &["authorization"],
        14 => &["content-length", "x-sfdc-session"],
        17 => &["transfer-encoding"],
        _ => &[],
    };
    strip.iter().any(|s| name_is(name, s)) || is_proxy_header(name)
}

/// Response headers never passed back: hop-by-hop lines, cookies (the instance's session is
/// the proxy's), and the framing lines (the proxy frames the body it sends; with
/// `keep_length`, a bodiless reply keeps the instance's `Content-Length`).
fn strip_response(name: &[u8], keep_length: bool) -> bool {
    let strip: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive", "set-cookie"],
        14 if !keep_length => &["content-length"],
        17 => &["transfer-encoding"],
        _ => &[],
    };
    strip.iter().any(|s| name_is(name, s)) || is_proxy_header(name)
}

fn is_proxy_header(name: &[u8]) -> bool {
    name.len() > 6 && name[..6].eq_ignore_ascii_case(b"proxy-")
}

/// The header names a `Connection` header lists (hop-by-hop too), other than the usual
/// `keep-alive` and `close`.
fn connection_listed<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<&'a [u8]> {
    headers
        .filter(|(n, _)| name_is(n, "connection"))
        .flat_map(|(_, v)| tokens(v))
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"close")
        })
        .collect()
}

/// A header value a token can be sent in: visible ASCII only.
fn header_safe(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// What a token means for the requests forwarded with it, worked out once per token rather
/// than per request.
pub(crate) struct Prepared {
    /// The token these were made from (kept so its identity can be compared).
    token: Token,
    /// The instance URL without a trailing slash (for `Location` rewriting).
    pub(crate) base: String,
    /// Where connections go; `Err` says why the token's instance URL is not used.
    target: Result<Target, &'static str>,
    /// `Host: …\r\n` for the instance.
    host_line: Vec<u8>,
    /// A path the instance URL carries before `/services/…` (normally none).
    prefix: String,
    /// `Authorization: Bearer …\r\n` (REST) and `X-SFDC-Session: …\r\n` (Bulk 1.0); `None`
    /// if the token cannot be a header value.
    bearer_line: Option<Vec<u8>>,
    session_line: Option<Vec<u8>>,
}

impl Prepared {
    fn new(token: &Token) -> Self {
        let base = token.instance_url().trim_end_matches('/').to_owned();
        let uri: Option<Uri> = base.parse().ok();
        let target = match uri.as_ref().and_then(Target::of) {
            // Checked again here, not only when the token was granted: a token read from a
            // shared store must not send its secret in clear text either.
            Some(_) if sfkeep::http::check_url("instance URL", &base).is_err() => Err(
                "the token's instance URL uses plain http to a host that is not loopback: the token is never sent in clear text",
            ),
            Some(t) => Ok(t),
            None => Err("the token's instance URL does not form a valid request URL"),
        };
        let mut host_line = Vec::new();
        if let Some(u) = &uri
            && let Some(host) = u.host()
        {
            let default = match u.scheme_str() {
                Some("https") => 443,
                _ => 80,
            };
            let host = match u.port_u16() {
                Some(p) if p != default => format!("{host}:{p}"),
                _ => host.to_owned(),
            };
            h1::push_header(&mut host_line, b"Host", host.as_bytes());
        }
        let prefix = uri
            .as_ref()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let secret = token.access_token().expose_secret();
        let line = |name: &[u8], scheme: &str| {
            header_safe(secret).then(|| {
                let mut l = Vec::new();
                h1::push_header(&mut l, name, format!("{scheme}{secret}").as_bytes());
                l
            })
        };
        Self {
            token: token.clone(),
            base,
            target,
            host_line,
            prefix,
            bearer_line: line(b"Authorization", "Bearer "),
            session_line: line(b"X-SFDC-Session", ""),
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

/// How a forwarded request's body is framed.
#[derive(Clone, Copy)]
enum BodyFraming {
    Length(u64),
    Chunked,
    None,
}

/// Writes the request head for the instance into `out`: the client's method and target, its
/// header lines without credentials and hop-by-hop lines, then `Host`, the token and framing.
fn upstream_head(
    out: &mut Vec<u8>,
    head: &RequestHead,
    prepared: &Prepared,
    api: Api,
    framing: BodyFraming,
) -> Result<(), &'static str> {
    out.clear();
    out.extend_from_slice(head.method_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(prepared.prefix.as_bytes());
    out.extend_from_slice(head.target().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out.extend_from_slice(&prepared.host_line);
    let listed = if head.connection_lists_headers {
        connection_listed(head.headers())
    } else {
        Vec::new()
    };
    for (name, value) in head.headers() {
        if strip_request(name)
            || listed.iter().any(|l| l.eq_ignore_ascii_case(name))
            // The session goes in the envelope; compressed faults could not be classified.
            || (api == Api::Soap && name_is(name, "accept-encoding"))
        {
            continue;
        }
        h1::push_header(out, name, value);
    }
    let bad_token = "the access token is not a valid header value";
    match api {
        Api::Rest => out.extend_from_slice(prepared.bearer_line.as_deref().ok_or(bad_token)?),
        Api::Bulk1 => out.extend_from_slice(prepared.session_line.as_deref().ok_or(bad_token)?),
        Api::Soap => {}
    }
    match framing {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            h1::push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyFraming::None => {}
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The instance's response header lines as the client gets them: hop-by-hop lines, cookies
/// and framing dropped (the proxy frames the body it sends), an absolute `Location` on the
/// instance pointed at the proxy. `keep_length`: the reply has no body, so the instance's
/// `Content-Length` is passed on as it is.
pub(crate) fn client_lines(
    out: &mut Vec<u8>,
    proxy_base: &str,
    instance_base: &str,
    resp: &ResponseHead,
    keep_length: bool,
) {
    let listed = if resp.connection_lists_headers {
        connection_listed(resp.headers())
    } else {
        Vec::new()
    };
    for (name, value) in resp.headers() {
        if strip_response(name, keep_length) || listed.iter().any(|l| l.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if name.len() == 8
            && name_is(name, "location")
            && let Some(rest) = value.strip_prefix(instance_base.as_bytes())
            && (rest.is_empty() || rest.starts_with(b"/"))
        {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(proxy_base.as_bytes());
            out.extend_from_slice(rest);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        h1::push_header(out, name, value);
    }
}

fn no_token(sh: &Shared, api: Api, e: &sfkeep::Error) -> Reply {
    sh.stats.inc(Counter::upstream_errors);
    tracing::warn!(target: "sfkeep_proxy", error = %e, "no token to forward with");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Shape::from(api),
        "SFKEEP_NO_TOKEN",
        &format!("sfkeep proxy cannot get a token for the org: {e}; run `sfkeep doctor`"),
    )
    .into()
}

fn upstream_error(api: Api, status: StatusCode, code: &str, message: &str) -> Reply {
    error_response(status, api.into(), code, message).into()
}

/// Whether `status` can mean a dead session for `api`.
fn candidate(api: Api, status: u16) -> bool {
    match api {
        Api::Rest => status == 401 || status == 403,
        Api::Soap => status == 500,
        Api::Bulk1 => status == 400,
    }
}

/// The body for one attempt, and how it is framed.
fn attempt_body(
    payload: &mut Option<Payload>,
    token: &Token,
    method: &Method,
    stream_length: Option<u64>,
) -> (OutBody, BodyFraming) {
    let needs_length = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    match payload {
        Some(Payload::Bytes(b)) => {
            let framing = if !b.is_empty() || needs_length {
                BodyFraming::Length(b.len() as u64)
            } else {
                BodyFraming::None
            };
            (OutBody::Full(b.clone()), framing)
        }
        Some(Payload::Soap { raw, env, ns }) => {
            let v = soap::with_session(raw, env, token.access_token().expose_secret(), ns);
            let len = v.len() as u64;
            (OutBody::Full(Bytes::from(v)), BodyFraming::Length(len))
        }
        Some(Payload::Stream(_)) => match payload.take() {
            Some(Payload::Stream(s)) => {
                let framing = stream_length.map_or(BodyFraming::Chunked, BodyFraming::Length);
                (OutBody::Stream(s, stream_length), framing)
            }
            _ => (OutBody::Full(Bytes::new()), BodyFraming::None),
        },
        None => (OutBody::Full(Bytes::new()), BodyFraming::None),
    }
}

/// The reply carrying the instance's response.
fn relay(
    prepared: &Arc<Prepared>,
    head_request: bool,
    resp: ResponseHead,
    body: ReplyBody,
    replayed: bool,
) -> Reply {
    Reply {
        status: resp.status,
        head: ReplyHead::Forwarded {
            keep_length: head_request || resp.status == 304,
            instance_base: Arc::clone(prepared),
            head: resp,
        },
        body,
        replayed,
    }
}

/// Small bodies are read whole, so the upstream connection is free again at once.
const READ_WHOLE: usize = 64 << 10;

/// The body as a reply body: whole if small (the connection goes back to `affinity`), else
/// streaming from the instance.
async fn reply_body(affinity: &mut Affinity, mut body: UpstreamBody) -> Result<ReplyBody, ()> {
    match body.read_up_to(READ_WHOLE).await {
        Ok(Some(bytes)) => {
            if let Some(conn) = body.take_conn() {
                affinity.put_back(conn);
            }
            Ok(ReplyBody::Full(bytes))
        }
        Ok(None) => Ok(ReplyBody::Upstream(body)),
        Err(_) => Err(()),
    }
}

/// Forwards once; once more after a session death when the body was kept; and, for GET and
/// HEAD only, once more after a connection failure or a 502/503/504 (a repeat cannot change
/// anything on the server, and simple clients such as simple-salesforce do not retry).
pub(crate) async fn forward(
    sh: &Arc<Shared>,
    affinity: &mut Affinity,
    head: &RequestHead,
    payload: Payload,
    api: Api,
) -> Reply {
    let mut token = match sh.manager.token().await {
        Ok(t) => t,
        Err(e) => return no_token(sh, api, &e),
    };
    let stream_length = match &payload {
        Payload::Stream(_) => head.content_length(),
        _ => None,
    };
    let mut payload = Some(payload);
    let mut replayed = false;
    let safe_method = matches!(head.method, Method::GET | Method::HEAD);
    let head_request = head.method == Method::HEAD;
    let mut transient_retried = false;
    let mut out = Vec::with_capacity(1024);
    let early_end = || {
        upstream_error(
            api,
            StatusCode::BAD_GATEWAY,
            "SFKEEP_UPSTREAM_ERROR",
            "the org's instance ended its response early",
        )
    };
    loop {
        let (body, framing) = attempt_body(&mut payload, &token, &head.method, stream_length);
        let prepared = Prepared::of(sh, &token);
        let target = match &prepared.target {
            Ok(t) if !prepared.host_line.is_empty() => t,
            Ok(_) => {
                sh.stats.inc(Counter::upstream_errors);
                let msg = "the token's instance URL does not form a valid request URL";
                return upstream_error(api, StatusCode::BAD_GATEWAY, "SFKEEP_UPSTREAM_ERROR", msg);
            }
            Err(msg) => {
                sh.stats.inc(Counter::upstream_errors);
                return upstream_error(api, StatusCode::BAD_GATEWAY, "SFKEEP_UPSTREAM_ERROR", msg);
            }
        };
        if let Err(msg) = upstream_head(&mut out, head, &prepared, api, framing) {
            sh.stats.inc(Counter::upstream_errors);
            return upstream_error(api, StatusCode::BAD_GATEWAY, "SFKEEP_UPSTREAM_ERROR", msg);
        }
        sh.stats.inc(Counter::forwarded);
        let sent = affinity
            .send(sh.upstream_timeout, target, &out, body, head_request)
            .await;
        let (resp, rbody) = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                // The client's body failed while it streamed upstream: the client's fault.
                if let Some(c) = ClientBodyError::find(e.as_ref()) {
                    sh.stats.inc(Counter::rejected);
                    return upstream_error(api, c.status(), "SFKEEP_PROXY_REFUSED", &c.to_string());
                }
                sh.stats.inc(Counter::upstream_errors);
                tracing::warn!(target: "sfkeep_proxy", error = %e, "request to the instance failed");
                if safe_method && !transient_retried && payload.is_some() {
                    transient_retried = true;
                    continue;
                }
                return upstream_error(
                    api,
                    StatusCode::BAD_GATEWAY,
                    "SFKEEP_UPSTREAM_ERROR",
                    "sfkeep proxy could not reach the org's instance",
                );
            }
            Err(TimedOut) => {
                sh.stats.inc(Counter::upstream_errors);
                return upstream_error(
                    api,
                    StatusCode::GATEWAY_TIMEOUT,
                    "SFKEEP_UPSTREAM_TIMEOUT",
                    "the org's instance did not answer in time",
                );
            }
        };
        if let Some(date) = resp.header("date") {
            sh.observe_date(date);
        }
        if safe_method
            && !transient_retried
            && payload.is_some()
            && matches!(resp.status, 502..=504)
        {
            transient_retried = true;
            sh.stats.inc(Counter::upstream_errors);
            continue;
        }
        if !candidate(api, resp.status) {
            let Ok(body) = reply_body(affinity, rbody).await else {
                sh.stats.inc(Counter::upstream_errors);
                return early_end();
            };
            return relay(&prepared, head_request, resp, body, replayed);
        }
        let mut rbody = rbody;
        let bytes = match rbody.read_up_to(MAX_VERDICT_BODY).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                let body = ReplyBody::Upstream(rbody);
                return relay(&prepared, head_request, resp, body, replayed);
            }
            Err(_) => {
                sh.stats.inc(Counter::upstream_errors);
                return early_end();
            }
        };
        if let Some(conn) = rbody.take_conn() {
            affinity.put_back(conn);
        }
        // A compressed error body cannot be read; REST treats any 401 as dead (one replay).
        let readable = resp.header("content-encoding").is_none();
        let verdict = if readable {
            session_verdict(api, resp.status, &bytes)
        } else if api == Api::Rest && resp.status == 401 {
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
        let body = ReplyBody::Full(bytes);
        return relay(&prepared, head_request, resp, body, replayed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn credentials_hop_by_hop_and_connection_listed_lines_are_not_forwarded() {
        let mut buf = BytesMut::from(
            "GET /services/data/v59.0/limits?x=1 HTTP/1.1\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nAuthorization: Bearer c\r\nHost: 127.0.0.1\r\nProxy-Authorization: x\r\nCookie: sid=abc\r\nX-SFDC-Session: s\r\nAccept: */*\r\nAccept: text/plain\r\n\r\n",
        );
        let head = RequestHead::parse(&mut buf, 1 << 16).unwrap().unwrap();
        let mut out = Vec::new();
        let listed = connection_listed(head.headers());
        for (name, value) in head.headers() {
            if !strip_request(name) && !listed.iter().any(|l| l.eq_ignore_ascii_case(name)) {
                h1::push_header(&mut out, name, value);
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Accept: */*\r\nAccept: text/plain\r\n"
        );
    }

    #[test]
    fn a_token_with_a_line_break_is_never_a_header() {
        assert!(header_safe("00D!abc.DEF_123"));
        assert!(!header_safe("00D!abc\r\nX-Evil: 1"));
        assert!(!header_safe("a b"));
        assert!(!header_safe(""));
    }
}
