//! Listening: binding, the accept loop, graceful shutdown, and the handle a caller keeps.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use crate::config::Proxy;
use crate::conn::{self, ConnState};
use crate::route::Router;
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::stats::{Stats, StatsSnapshot};
use crate::upstream::Upstream;

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

    /// `http://ADDR` (`https://ADDR` with TLS): the URL to give the integration as its login
    /// and instance URL.
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
        let max_connections = self.cfg.max_connections;
        let (listener, shared) = self.bind().await?;
        let (tx, rx) = oneshot::channel::<()>();
        let s = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            serve(listener, s, max_connections, async {
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
        let max_connections = self.cfg.max_connections;
        let (listener, shared) = self.bind().await?;
        on_ready(shared.addr);
        serve(listener, shared, max_connections, shutdown).await;
        Ok(())
    }

    async fn bind(self) -> std::io::Result<(TcpListener, Arc<Shared>)> {
        let cfg = self.cfg;
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let upstream = Arc::new(Upstream::new().map_err(std::io::Error::other)?);
        let tls = match &cfg.tls {
            Some(ca) => Some(tokio_rustls::TlsAcceptor::from(
                ca.server_config(addr.ip()).map_err(std::io::Error::other)?,
            )),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            manager: cfg.manager,
            client_key: cfg.client_key,
            max_replay_body: cfg.max_replay_body,
            max_body: cfg.max_body,
            upstream_timeout: cfg.upstream_timeout,
            expected_username: cfg.expected_username,
            upstream,
            prepared: Default::default(),
            shutting_down: AtomicBool::new(false),
            tls,
            base_url: format!("{scheme}://{addr}"),
            host: addr.to_string(),
            addr,
            sessions: Sessions::default(),
            stats: Stats::default(),
            hmac_key: rand::random(),
            max_header_bytes: cfg.max_header_bytes,
            header_read_timeout: cfg.header_read_timeout,
            guard: cfg.browser_guard,
            last_busy_log: Default::default(),
            last_date: std::sync::Mutex::new(None),
            org_reach: Default::default(),
            store: cfg.store,
        });
        Ok((listener, shared))
    }
}

async fn serve(
    listener: TcpListener,
    sh: Arc<Shared>,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    // One permit per open client connection: its memory is bounded (see `conn`), so the
    // proxy's is too. A connection past the cap is told so at once and closed.
    let slots = Arc::new(Semaphore::new(max_connections));
    tracing::info!(target: "sfkeep_proxy", listen = %sh.addr, "sfkeep proxy listening");
    tokio::pin!(shutdown);
    let router = Arc::new(Router::new(Arc::clone(&sh)));
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
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tokio::spawn(conn::refuse_over_capacity(Arc::clone(&sh), stream, max_connections));
                    continue;
                };
                let slot = conn::Slot::new(&sh, permit);
                let state = Arc::new(ConnState::default());
                let task = tokio::spawn(conn::serve(Arc::clone(&sh), Arc::clone(&router), stream, peer, slot, Arc::clone(&state)));
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
