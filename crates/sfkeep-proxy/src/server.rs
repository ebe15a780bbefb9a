//! Listening, routing, the open-proxy guards, client authentication and the access log.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use sfkeep::TokenManager;
use sfkeep::diagnose::api_error::Api;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::body::{self, Body};
use crate::config::{ClientKey, Proxy};
use crate::conn::{self, ClientBodyError, ConnState, Reply, ReqBody};
use crate::forward::{self, Payload};
use crate::h1::RequestHead;
use crate::local::{self, Sessions};
use crate::soap;
use crate::stats::{Counter, Stats, StatsSnapshot};
use crate::upstream::{Affinity, Upstream};

/// Everything a request handler reads.
pub(crate) struct Shared {
    pub manager: TokenManager,
    pub client_key: Option<ClientKey>,
    pub max_replay_body: usize,
    pub max_body: u64,
    pub upstream_timeout: Duration,
    pub expected_username: Option<String>,
    /// The connector and idle upstream connections.
    pub upstream: Arc<Upstream>,
    /// Header lines and target for the current token (see [`forward::Prepared`]).
    pub prepared: std::sync::Mutex<Option<Arc<forward::Prepared>>>,
    /// Set when the proxy stops: connections end after the reply in progress.
    pub shutting_down: AtomicBool,
    /// `http://ADDR`, what clients are told to use.
    pub base_url: String,
    /// `ADDR`, the `Host` those clients send.
    pub host: String,
    pub addr: SocketAddr,
    pub sessions: Sessions,
    pub stats: Stats,
    pub hmac_key: [u8; 32],
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    /// The last `Date` seen from the instance (it changes once a second).
    pub last_date: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Shared {
    /// Feeds the instance's `Date` to the manager's skew correction, once per distinct value.
    pub(crate) fn observe_date(&self, date: &[u8]) {
        {
            let mut last = self.last_date.lock().unwrap_or_else(|p| p.into_inner());
            if last.as_deref() == Some(date) {
                return;
            }
            *last = Some(date.to_vec());
        }
        if let Ok(d) = std::str::from_utf8(date) {
            self.manager.observe_server_date(d);
        }
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct ProxyHandle {
    addr: SocketAddr,
    url: String,
    shared: Arc<SharedDebug>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// `Shared` without a Debug impl of its own.
pub(crate) struct SharedDebug(Arc<Shared>);
impl std::fmt::Debug for SharedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.0.addr)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the URL to give the integration as its login and instance URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The counters since start.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.0.stats.snapshot()
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Proxy {
    /// Binds and serves in a background task; returns at once with the bound address.
    pub async fn spawn(self) -> std::io::Result<ProxyHandle> {
        let (listener, shared) = self.bind().await?;
        let (tx, rx) = oneshot::channel::<()>();
        let s = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            serve(listener, s, async {
                let _ = rx.await;
            })
            .await
        });
        Ok(ProxyHandle {
            addr: shared.addr,
            url: shared.base_url.clone(),
            shared: Arc::new(SharedDebug(shared)),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Binds and serves until `shutdown` completes. `on_ready` is told the bound address.
    pub async fn run(
        self,
        on_ready: impl FnOnce(SocketAddr),
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (listener, shared) = self.bind().await?;
        on_ready(shared.addr);
        serve(listener, shared, shutdown).await;
        Ok(())
    }

    async fn bind(self) -> std::io::Result<(TcpListener, Arc<Shared>)> {
        let cfg = self.cfg;
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let upstream = Arc::new(Upstream::new().map_err(std::io::Error::other)?);
        let shared = Arc::new(Shared {
            manager: cfg.manager,
            client_key: cfg.client_key,
            max_replay_body: cfg.max_replay_body,
            max_body: cfg.max_body,
            upstream_timeout: cfg.upstream_timeout,
            expected_username: cfg.expected_username,
            upstream,
            prepared: std::sync::Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            base_url: format!("http://{addr}"),
            host: addr.to_string(),
            addr,
            sessions: Sessions::default(),
            stats: Stats::default(),
            hmac_key: rand::random(),
            max_header_bytes: cfg.max_header_bytes,
            header_read_timeout: cfg.header_read_timeout,
            last_date: std::sync::Mutex::new(None),
        });
        Ok((listener, shared))
    }
}

async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tracing::info!(target: "sfkeep_proxy", listen = %sh.addr, "sfkeep proxy listening");
    tokio::pin!(shutdown);
    // Every connection task, to end the idle ones at shutdown (pruned as connections end).
    let mut conns: Vec<(Weak<ConnState>, tokio::task::AbortHandle)> = Vec::new();
    let mut prune_at = 64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(target: "sfkeep_proxy", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::new(ConnState::default());
                let task = tokio::spawn(conn::serve(Arc::clone(&sh), stream, peer, Arc::clone(&state)));
                if conns.len() >= prune_at {
                    conns.retain(|(w, _)| w.strong_count() > 0);
                    prune_at = (conns.len() * 2).max(64);
                }
                conns.push((Arc::downgrade(&state), task.abort_handle()));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    sh.shutting_down.store(true, Ordering::Release);
    // Connections waiting for a request end now; those mid-request finish it (up to 5 s).
    for (w, task) in &conns {
        if w.upgrade().is_some_and(|s| !s.busy.load(Ordering::Acquire)) {
            task.abort();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        conns.retain(|(w, _)| w.strong_count() > 0);
        if conns.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (_, task) in conns {
        task.abort();
    }
}

/// The access log line for one request (never headers, bodies or queries).
pub(crate) fn access_log(
    head: &RequestHead,
    request_id: &str,
    status: u16,
    started: Instant,
    replayed: bool,
) {
    let mut path = head.path();
    let long = path.len() > 200;
    if long {
        let mut cut = 200;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path = &path[..cut];
    }
    tracing::info!(
        target: "sfkeep_proxy::access",
        request_id = %request_id,
        method = %head.method_str(),
        path = %format_args!("{path}{}", if long { "…" } else { "" }),
        status,
        latency_us = started.elapsed().as_micros() as u64,
        replayed,
    );
}

/// Whether the access log is on (its fields cost a clock read: only then).
pub(crate) fn access_log_enabled() -> bool {
    tracing::enabled!(target: "sfkeep_proxy::access", tracing::Level::INFO)
}

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

fn shape_for(path: &str) -> Shape {
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

/// `Host` must name this proxy on loopback (DNS-rebinding guard) unless a client key is set.
fn host_ok(sh: &Shared, head: &RequestHead) -> bool {
    if sh.client_key.is_some() {
        return true;
    }
    let Some(host) = head.host() else {
        return true; // HTTP/1.0: the connection itself is the proof (loopback bind)
    };
    // What clients told the proxy's own URL send: no parsing needed.
    if host == sh.host.as_bytes() {
        return true;
    }
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == sh.addr.ip(),
        Err(_) => false,
    }
}

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

/// The bearer value or `X-SFDC-Session` value a request presents. Credentials are visible
/// ASCII: anything else presents none (and is never sliced as text).
pub(crate) fn presented_credential(head: &RequestHead) -> Option<&str> {
    if let Some(v) = head.header("authorization") {
        let v = v.trim_ascii();
        for scheme in [&b"Bearer "[..], b"OAuth "] {
            if v.len() > scheme.len() && v[..scheme.len()].eq_ignore_ascii_case(scheme) {
                return credential_text(&v[scheme.len()..]);
            }
        }
    }
    head.header("x-sfdc-session").and_then(credential_text)
}

/// A credential's text: visible ASCII, non-empty.
fn credential_text(v: &[u8]) -> Option<&str> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(|b| (0x21..0x7f).contains(b)) {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// Whether a request may use the proxy: anyone without a client key (the credential is not
/// even looked for then), else only with the key or a proxy-local session.
fn authorized(sh: &Shared, head: &RequestHead) -> bool {
    sh.client_key.is_none() || credential_ok(sh, presented_credential(head))
}

/// With a client key: the credential is the key or a proxy-local session. Without: anyone.
pub(crate) fn credential_ok(sh: &Shared, credential: Option<&str>) -> bool {
    let Some(key) = &sh.client_key else {
        return true;
    };
    let Some(c) = credential else {
        return false;
    };
    local::ct_eq(c.as_bytes(), key.expose().as_bytes()) || sh.sessions.contains(c)
}

/// Routes one request: the open-proxy guards, then the local answers or forwarding.
pub(crate) async fn route(
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
