//! Connections to the instance, with affinity: each client connection owns one HTTP/1
//! connection to the instance and drives it from its own task.
//!
//! A pooled client (hyper-util's) runs every upstream connection in a task of its own and
//! hands each request over through a channel and each response back through a oneshot, and
//! checks connections in and out of a shared, hashed pool per request. Here the client
//! connection's task polls the upstream connection itself — while it waits for the response
//! head, and from the response body as the server writes it — so a request crosses no task
//! and touches no shared pool, much like one nginx worker's event loop.
//!
//! Upstream connections outlive their client connection: when one ends, its upstream
//! connection goes to a small idle list that the next new client connection takes from, so
//! a client that opens a connection per call does not cost a TLS handshake with the instance
//! per call.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::body::{Body, BoxError};
use crate::config::BuildError;

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;
type Connector = HttpsConnector<HttpConnector>;

/// How long an upstream connection may sit in the idle list.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many idle upstream connections are kept for new client connections.
const MAX_IDLE: usize = 64;

/// Where a connection goes: the instance's scheme and authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    scheme: Scheme,
    authority: Authority,
}

impl Target {
    /// The target of an absolute `http`/`https` URL.
    pub(crate) fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme()?.clone();
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return None;
        }
        Some(Self {
            scheme,
            authority: uri.authority()?.clone(),
        })
    }

    /// What the connector is given.
    fn uri(&self) -> Option<Uri> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .ok()
    }
}

/// One HTTP/1 connection to the instance.
struct Live {
    target: Target,
    sender: http1::SendRequest<Body>,
    conn: http1::Connection<Io, Body>,
    idle_since: Instant,
}

impl Live {
    /// Drives the connection; `true` once it has ended (closed, failed or unusable).
    fn poll_conn(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.conn).poll(cx).is_ready()
    }
}

/// What every client connection shares: the connector and the idle list.
pub(crate) struct Upstream {
    connector: Connector,
    idle: Mutex<Vec<Live>>,
}

impl Upstream {
    pub(crate) fn new() -> Result<Self, BuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Requests and responses are small and latency-bound: no Nagle delay.
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| BuildError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            connector,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Live>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_idle(&self, target: &Target) -> Option<Live> {
        let mut idle = self.idle();
        idle.retain(|l| l.idle_since.elapsed() < IDLE_TIMEOUT);
        let i = idle.iter().rposition(|l| &l.target == target)?;
        Some(idle.swap_remove(i))
    }

    fn put_idle(&self, mut live: Live) {
        if live.sender.is_closed() {
            return;
        }
        live.idle_since = Instant::now();
        let mut idle = self.idle();
        idle.retain(|l| l.idle_since.elapsed() < IDLE_TIMEOUT);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(live);
    }

    async fn connect(&self, target: &Target) -> Result<Live, BoxError> {
        let uri = target
            .uri()
            .ok_or("the instance URL has no valid authority")?;
        let io = self.connector.clone().call(uri).await?;
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        Ok(Live {
            target: target.clone(),
            sender,
            conn,
            idle_since: Instant::now(),
        })
    }
}

/// A client connection's upstream connection (made on first use, remade after it ends).
pub(crate) struct Affinity {
    upstream: Arc<Upstream>,
    live: Mutex<Option<Live>>,
}

impl Drop for Affinity {
    fn drop(&mut self) {
        let live = self
            .live
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(live) = live {
            self.upstream.put_idle(live);
        }
    }
}

/// Whether the held connection can take a request now.
enum Readiness {
    Ready,
    /// None held, or it ended: make or take another.
    Gone,
}

impl Affinity {
    pub(crate) fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            live: Mutex::new(None),
        }
    }

    fn live(&self) -> MutexGuard<'_, Option<Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drives the held connection, if any (it reads what the instance sent and writes what is
    /// queued); drops it once it has ended.
    fn drive(&self, cx: &mut Context<'_>) {
        let mut live = self.live();
        if let Some(l) = live.as_mut()
            && l.poll_conn(cx)
        {
            *live = None;
        }
    }

    /// Waits until the held connection to `target` can take a request.
    fn poll_ready(&self, cx: &mut Context<'_>, target: &Target) -> Poll<Readiness> {
        let mut guard = self.live();
        let Some(l) = guard.as_mut() else {
            return Poll::Ready(Readiness::Gone);
        };
        // A new token may name another instance.
        if &l.target != target || l.poll_conn(cx) {
            *guard = None;
            return Poll::Ready(Readiness::Gone);
        }
        match l.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Readiness::Ready),
            Poll::Ready(Err(_)) => {
                *guard = None;
                Poll::Ready(Readiness::Gone)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A connection to `target` in `self.live`: an idle one if one is alive, else a new one.
    async fn establish(&self, target: &Target) -> Result<(), BoxError> {
        while let Some(mut l) = self.upstream.take_idle(target) {
            // An idle connection the instance closed meanwhile ends on its first poll.
            let alive = std::future::poll_fn(|cx| Poll::Ready(!l.poll_conn(cx))).await;
            if alive && !l.sender.is_closed() {
                *self.live() = Some(l);
                return Ok(());
            }
        }
        let l = self.upstream.connect(target).await?;
        *self.live() = Some(l);
        Ok(())
    }

    /// Sends `req` (origin-form URI, `Host` set) to `target` on this client connection's
    /// upstream connection. A request that never left (the connection had ended meanwhile) is
    /// sent once more on a new connection, whatever its method.
    pub(crate) async fn send(
        self: &Arc<Self>,
        target: &Target,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, BoxError> {
        let mut resent = false;
        // Let every other client connection with a request ready read it before this one
        // writes upstream: the writes to the instance then come in a burst, and the instance is
        // woken once per burst rather than once per request. Waking a process that sleeps costs
        // the sender kernel time (an interrupt to another core); on the 2-core bench this cut
        // system time per request and raised throughput more than the extra task poll costs
        // (BENCHMARKS.md, Proxy).
        tokio::task::yield_now().await;
        loop {
            let ready = std::future::poll_fn(|cx| self.poll_ready(cx, target)).await;
            if let Readiness::Gone = ready {
                // Boxed: connecting (DNS, TCP, TLS) is rare but its state is large, and every
                // request's future would otherwise carry (and move) room for it.
                Box::pin(self.establish(target)).await?;
                continue;
            }
            let sent = match self.live().as_mut() {
                Some(l) => l.sender.try_send_request(req),
                None => continue,
            };
            let mut sent = std::pin::pin!(sent);
            let res = std::future::poll_fn(|cx| {
                self.drive(cx);
                sent.as_mut().poll(cx)
            })
            .await;
            match res {
                Ok(resp) => {
                    return Ok(resp.map(|inner| UpstreamBody {
                        inner,
                        affinity: Arc::clone(self),
                    }));
                }
                Err(mut e) => {
                    // A failed connection is never reused.
                    *self.live() = None;
                    match e.take_message() {
                        Some(r) if !resent => {
                            resent = true;
                            req = r;
                        }
                        _ => return Err(Box::new(e.into_error())),
                    }
                }
            }
        }
    }
}

/// A response body from the instance; polling it drives the upstream connection that feeds it.
pub(crate) struct UpstreamBody {
    inner: Incoming,
    affinity: Arc<Affinity>,
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.affinity.drive(cx);
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
