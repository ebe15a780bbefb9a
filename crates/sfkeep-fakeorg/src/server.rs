//! The HTTP server: the router, the fault-injection middleware, the Salesforce-shaped
//! fallbacks, and start-up (listener, state files, initial org).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use serde_json::json;
use tokio::net::TcpSocket;
use tower::Layer;
use tower::util::{MapRequest, MapRequestLayer};

use crate::activity::Busy;
use crate::oauth::TokenLatency;
use crate::state::{Fault, Org};
use crate::{admin, bulk_async, identity, oauth, rest, soap, wire};

/// Listen backlog: real clients open hundreds of connections at once (docs/real-clients.md#servers-under-load-from-these-clients).
pub const BACKLOG: u32 = 1024;

/// The org as a service: `router` behind a path normalizer.
pub fn app(org: Arc<Org>) -> MapRequest<Router, fn(Request) -> Request> {
    MapRequestLayer::new(collapse_slashes as fn(Request) -> Request).layer(router(org))
}

/// `//services/data/…` is `/services/data/…`. The Salesforce CLI stores an instance URL with a
/// trailing slash (`sf org login access-token`) and jsforce appends `/services/…` to it, so
/// every call it makes starts with `//`; it works against real orgs, so Salesforce's front end
/// takes repeated slashes as one (docs/salesforce-composite.md, "Records by id").
fn collapse_slashes(mut req: Request) -> Request {
    let uri = req.uri();
    if !uri.path().contains("//") {
        return req;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(u) = Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
    req
}

/// The org's routes.
pub fn router(org: Arc<Org>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/introspect", post(oauth::introspect))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .route(
            "/services/oauth2/userinfo",
            get(identity::userinfo).post(identity::userinfo),
        )
        .route(
            "/id/{*rest}",
            get(identity::identity).post(identity::identity),
        )
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route("/services/data/{*rest}", any(rest::dispatch))
        .route("/services/async", any(bulk_async::dispatch))
        .route("/services/async/{*rest}", any(bulk_async::dispatch))
        .route("/services/Soap/u/{*rest}", post(soap::handle))
        .route("/services/Soap/c/{*rest}", post(soap::handle))
        .route("/_fake", any(admin::dispatch))
        .route("/_fake/{*rest}", any(admin::dispatch))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(org.clone(), faults))
        .layer(middleware::from_fn_with_state(org.clone(), date_header))
        // Bodies are read by `wire::RawBody`, which enforces its own limit with a
        // Salesforce-shaped 413 instead of axum's plain-text rejection.
        .layer(DefaultBodyLimit::disable())
        .with_state(org)
}

/// `Date` on every response, from the org's clock (which `/_fake/clock/advance` moves), as
/// Salesforce's servers send theirs: clients measure clock skew from it. Without this, hyper
/// would stamp the host's real time and a client would "correct" away every clock advance.
async fn date_header(State(org): State<Arc<Org>>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let now = org.lock().now();
    if let Ok(v) = now.format(&fmt)
        && let Ok(v) = axum::http::HeaderValue::from_str(&v)
    {
        resp.headers_mut().insert(axum::http::header::DATE, v);
    }
    resp
}

async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/_fake") {
        return wire::admin_error(
            StatusCode::NOT_FOUND,
            "unknown admin call",
            json!({"method": method.as_str(), "path": path}),
        );
    }
    wire::error_for_path(
        path,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    wire::error_for_path(
        uri.path(),
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed"),
    )
}

/// Takes one use of the first fault matching `path`.
fn take_fault(faults: &mut Vec<Fault>, path: &str) -> Option<Fault> {
    let i = faults
        .iter()
        .position(|f| path.starts_with(&f.path_prefix) && f.count != Some(0))?;
    let f = faults[i].clone();
    if let Some(n) = faults[i].count.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(i);
        }
    }
    Some(f)
}

/// The token endpoint, whose requests are processed to the end even when the client goes away.
const TOKEN_PATH: &str = "/services/oauth2/token";

/// Applies injected faults to everything but the admin API, and counts the request as in
/// flight until its processing ends (`/_fake/stats` `requests_in_flight`).
///
/// A token request runs in a task of its own: Salesforce completes a token request it has
/// received (a refresh token it rotates stays rotated) whether or not the client is still
/// there, while hyper drops a handler whose client disconnected. Without the task, a killed or
/// stalled client's refresh would never rotate anything, and the window in which a new refresh
/// token exists only in a dead process could not be tested (docs/fake-org.md, "Faults").
async fn faults(State(org): State<Arc<Org>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_fake") {
        return next.run(req).await;
    }
    let busy = org.activity.request();
    let fault = take_fault(&mut org.lock().faults, &path);
    if path != TOKEN_PATH {
        return apply_fault(org, fault, path, req, next, busy).await;
    }
    let work = tokio::spawn(apply_fault(org, fault, path.clone(), req, next, busy));
    match work.await {
        Ok(resp) => resp,
        // The task panicked: answer as Salesforce's front end does for an internal failure.
        Err(_) => fault_response(&path, StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Processes `req` under `fault` (if any). `busy` is dropped as soon as the request has been
/// processed, so a test waiting for `requests_in_flight` to reach 0 does not also wait out a
/// latency injected after the commit.
async fn apply_fault(
    org: Arc<Org>,
    fault: Option<Fault>,
    path: String,
    mut req: Request,
    next: Next,
    busy: Busy,
) -> Response {
    let Some(fault) = fault else {
        let resp = next.run(req).await;
        drop(busy);
        return resp;
    };
    let latency = Duration::from_millis(fault.latency_ms.unwrap_or(0));
    if fault.after_commit {
        // Processed and committed first; then the answer is late, or lost.
        let resp = next.run(req).await;
        let held = fault.hold.then(|| org.activity.hold());
        drop(busy);
        tokio::time::sleep(latency).await;
        if let Some(release) = held {
            release.await;
        }
        return if fault.reset || fault.reset_after {
            reset()
        } else {
            resp
        };
    }
    if fault.reset {
        tokio::time::sleep(latency).await;
        return reset();
    }
    if fault.reset_after {
        tokio::time::sleep(latency).await;
        // Processed to the end (so its effects are committed), then the answer is lost.
        let _processed = next.run(req).await;
        return reset();
    }
    if let Some(status) = fault.status {
        tokio::time::sleep(latency).await;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        if fault.html {
            return html_page(status);
        }
        if status == StatusCode::UNAUTHORIZED {
            org.lock().stats.invalid_session_responses += 1;
        }
        return fault_response(&path, status);
    }
    if path == TOKEN_PATH {
        req.extensions_mut().insert(TokenLatency(latency));
    } else {
        tokio::time::sleep(latency).await;
    }
    let resp = next.run(req).await;
    drop(busy);
    resp
}

/// A response whose body fails at once: hyper gives up on the connection before the
/// head is flushed, so the client sees the connection drop with no response.
fn reset() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    Response::new(Body::from_stream(stream))
}

/// A load balancer's error page: not JSON, not XML.
fn html_page(status: StatusCode) -> Response {
    let body = format!(
        "<html><head><title>{0}</title></head><body><h1>{0}</h1><p>The server is temporarily unable to service your request. Please try again later.</p></body></html>",
        status
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    resp
}

/// What Salesforce sends with `status` on the API at `path`.
fn fault_response(path: &str, status: StatusCode) -> Response {
    if path.starts_with("/services/oauth2") {
        // UNVERIFIED: the body Salesforce's token endpoint sends when it fails internally.
        return wire::token_json(
            status,
            &json!({"error": "unknown_error", "error_description": "retry your request"}),
        );
    }
    let (code, message) = match status.as_u16() {
        401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
        403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        404 => ("NOT_FOUND", "The requested resource does not exist"),
        500 => (
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-123456789)",
        ),
        503 => ("SERVER_UNAVAILABLE", "Server temporarily unavailable"),
        _ => ("UNKNOWN_EXCEPTION", "Injected failure"),
    };
    if path.starts_with("/services/Soap") {
        use crate::soapxml::{FaultKind, Flavour};
        let flavour = Flavour::from_path(path);
        // The request body is not read here, so no session id is known to the fault.
        let body = if code == "INVALID_SESSION_ID" {
            crate::soapxml::invalid_session_fault(flavour, None)
        } else {
            crate::soapxml::fault(flavour, FaultKind::UnexpectedError, code, message)
        };
        return wire::soap(StatusCode::INTERNAL_SERVER_ERROR, body);
    }
    if status == StatusCode::UNAUTHORIZED {
        return wire::invalid_session();
    }
    wire::rest_error(status, code, message)
}

/// Binds `addr` with a backlog of [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_counts_down() {
        let mut faults = vec![Fault {
            path_prefix: "/services/data".into(),
            status: Some(503),
            count: Some(2),
            latency_ms: None,
            reset: false,
            reset_after: false,
            after_commit: false,
            hold: false,
            html: false,
        }];
        assert!(take_fault(&mut faults, "/services/oauth2/token").is_none());
        assert!(take_fault(&mut faults, "/services/data/v59.0/query").is_some());
        assert!(take_fault(&mut faults, "/services/data/v59.0/query").is_some());
        assert!(take_fault(&mut faults, "/services/data/v59.0/query").is_none());
        assert!(faults.is_empty());
    }
}
