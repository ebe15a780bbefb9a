//! Forwarding to the instance: header hygiene, token injection, and one replay after a
//! session death (docs/salesforce-wire.md §4–§6, docs/architecture.md#one-rule-one-place).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use sfkeep::Token;
use sfkeep::client::{Heal, HealStep};
use sfkeep::diagnose::api_error::Api;

use crate::body::Body;
use crate::client_body::ClientBodyError;
use crate::h1::{RequestHead, ResponseHead};
use crate::reply::{Reply, ReplyBody, ReplyHead};
use crate::respond::{Shape, error_response};
use crate::rewrite::{BodyFraming, Dest, Prepared, upstream_head};
use crate::shared::Shared;
use crate::soap;
use crate::stats::Counter;
use crate::upstream::{Affinity, OutBody, TimedOut, UpstreamBody};

/// The largest error body read to decide whether a session died.
const MAX_VERDICT_BODY: usize = 256 << 10;

/// A request body, as far as a replay is concerned.
pub(crate) enum Payload {
    /// Buffered (at most `max_replay_body`): replayable.
    Bytes(Bytes),
    /// A SOAP request, whole: replayable, the proxy's SessionHeader spliced in per attempt.
    Soap {
        body: Bytes,
        splice: soap::Splice,
        ns: &'static str,
    },
    /// A SOAP request too large to keep: the proxy's SessionHeader spliced into what was
    /// `read` (the head is in it), then the `rest` streams, once.
    SoapStream {
        read: Bytes,
        splice: soap::Splice,
        rest: Body,
        ns: &'static str,
    },
    /// Too large to keep: streams once.
    Stream(Body),
}

pub(crate) fn no_token(sh: &Shared, api: Api, e: &sfkeep::Error) -> Reply {
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
        Some(Payload::Soap { body, splice, ns }) => {
            let v = splice.apply(body, token.access_token().expose_secret(), ns);
            let len = v.len() as u64;
            (OutBody::Full(Bytes::from(v)), BodyFraming::Length(len))
        }
        Some(Payload::SoapStream { .. }) => match payload.take() {
            Some(Payload::SoapStream {
                read,
                splice,
                rest,
                ns,
            }) => {
                let first =
                    Bytes::from(splice.apply(&read, token.access_token().expose_secret(), ns));
                // The client's length, less the bytes replaced, plus the ones put in.
                let length = stream_length
                    .and_then(|n| n.checked_sub(read.len() as u64))
                    .map(|n| n + first.len() as u64);
                let body = crate::body::Prefix::Partial { read: first, rest }.into_body();
                let framing = length.map_or(BodyFraming::Chunked, BodyFraming::Length);
                (OutBody::Stream(body, length), framing)
            }
            _ => (OutBody::Full(Bytes::new()), BodyFraming::None),
        },
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

/// Forwards `head` to `dest` with `target_path` (put after the destination URL's own path) once; once more after a session death when the body was kept; and, for GET and
/// HEAD only, once more after a connection failure or a 502/503/504 (a repeat cannot change
/// anything on the server, and simple clients such as simple-salesforce do not retry).
pub(crate) async fn forward(
    sh: &Arc<Shared>,
    affinity: &mut Affinity,
    head: &RequestHead,
    dest: Dest,
    target_path: &str,
    payload: Payload,
    api: Api,
) -> Reply {
    let mut token = match sh.manager.token().await {
        Ok(t) => t,
        Err(e) => return no_token(sh, api, &e),
    };
    let stream_length = match &payload {
        Payload::Stream(_) | Payload::SoapStream { .. } => head.content_length(),
        _ => None,
    };
    let mut payload = Some(payload);
    // The one heal step of the workspace (docs/architecture.md#one-rule-one-place): which
    // answers are read, what a dead session is, invalidate, replay once.
    let mut step = HealStep::new(api);
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
        let prepared = sh.prepared.get(&token);
        let (endpoint, target) = match prepared
            .endpoint(dest)
            .and_then(|e| e.target().map(|t| (e, t)))
        {
            Ok(x) => x,
            Err(msg) => {
                sh.stats.inc(Counter::upstream_errors);
                return upstream_error(api, StatusCode::BAD_GATEWAY, "SFKEEP_UPSTREAM_ERROR", msg);
            }
        };
        if let Err(msg) = upstream_head(
            &mut out,
            head,
            target_path,
            endpoint,
            &prepared,
            api,
            framing,
        ) {
            sh.stats.inc(Counter::upstream_errors);
            return upstream_error(api, StatusCode::BAD_GATEWAY, "SFKEEP_UPSTREAM_ERROR", msg);
        }
        sh.stats.inc(Counter::forwarded);
        let sent = affinity
            .send(sh.upstream_timeout, target, &out, body, head_request)
            .await;
        let (resp, rbody) = match sent {
            Ok(Ok(r)) => {
                sh.org_reach.answered();
                r
            }
            Ok(Err(e)) => {
                // The client's body failed while it streamed upstream: the client's fault.
                if let Some(c) = ClientBodyError::find(e.as_ref()) {
                    sh.stats.inc(Counter::rejected);
                    return upstream_error(api, c.status(), "SFKEEP_PROXY_REFUSED", &c.to_string());
                }
                sh.stats.inc(Counter::upstream_errors);
                sh.org_reach
                    .failed("no answer from the instance (the connection failed)");
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
                sh.org_reach.failed(&format!(
                    "the instance did not answer within {}s",
                    sh.upstream_timeout.as_secs()
                ));
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
        if !step.inspects(resp.status) {
            let Ok(body) = reply_body(affinity, rbody).await else {
                sh.stats.inc(Counter::upstream_errors);
                return early_end();
            };
            return relay(&prepared, head_request, resp, body, step.replayed());
        }
        let mut rbody = rbody;
        let bytes = match rbody.read_up_to(MAX_VERDICT_BODY).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                let body = ReplyBody::Upstream(rbody);
                return relay(&prepared, head_request, resp, body, step.replayed());
            }
            Err(_) => {
                sh.stats.inc(Counter::upstream_errors);
                return early_end();
            }
        };
        if let Some(conn) = rbody.take_conn() {
            affinity.put_back(conn);
        }
        // A compressed error body cannot be read (the step then treats a REST 401 as dead).
        let readable = resp.header("content-encoding").is_none();
        let dead = token.generation();
        let heal = step.decide(
            &sh.manager,
            &token,
            resp.status,
            readable.then_some(&bytes[..]),
            payload.is_some(),
        );
        if matches!(heal, Heal::Replay | Heal::DeadAgain) {
            // One line per heal: the session this request met is dead, and its generation was
            // invalidated if it was still current.
            tracing::warn!(
                target: "sfkeep_proxy",
                api = api.as_str(),
                status = resp.status,
                generation = dead,
                "the org refused the proxy's session: healing"
            );
        }
        match heal {
            Heal::Replay => match sh.manager.token().await {
                Ok(t) => {
                    token = t;
                    sh.stats.inc(Counter::replays);
                    // One line per replay, naming the token generation it uses.
                    tracing::info!(
                        target: "sfkeep_proxy",
                        api = api.as_str(),
                        generation = token.generation(),
                        "replaying the request once with the new session"
                    );
                    continue;
                }
                Err(e) => return no_token(sh, api, &e),
            },
            Heal::DeadAgain => {
                sh.stats.inc(Counter::passthrough_401);
                tracing::warn!(
                    target: "sfkeep_proxy",
                    api = api.as_str(),
                    replayed = step.replayed(),
                    "session death passed to the client (body too large to replay, or dead again after the replay)"
                );
            }
            Heal::Deliver | Heal::Unfixable(_) => {}
        }
        let body = ReplyBody::Full(bytes);
        return relay(&prepared, head_request, resp, body, step.replayed());
    }
}
