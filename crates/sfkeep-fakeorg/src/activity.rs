//! What the org is busy with right now: connections open and API requests being processed.
//! `GET /_fake/stats` reports both, so a test that killed a client can wait until the org has
//! dealt with everything that client sent before it reads the org's state — a request the org
//! received is processed even when its client is gone, and under load that happens after the
//! client's death (docs/fake-org.md). Counting is lock-free: the org's mutex is not needed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The counters, and the answers held back until a test releases them.
#[derive(Debug)]
pub struct Activity {
    connections: AtomicU64,
    requests: AtomicU64,
    held: AtomicU64,
    /// Bumped by every release; a held answer waits for a value above the one it saw.
    releases: tokio::sync::watch::Sender<u64>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            held: AtomicU64::new(0),
            releases: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Activity {
    /// Connections accepted and not yet closed (the caller's own included).
    pub fn connections_open(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests outside the admin API whose processing has not finished.
    pub fn requests_in_flight(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Answers processed and held back (a fault with `hold`) that no release has let go yet.
    pub fn answers_held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets every answer held so far go (`POST /_fake/faults/release`).
    pub fn release_held(&self) {
        self.releases.send_modify(|n| *n += 1);
    }

    /// Returns a future that resolves at the next release after this call. The answer counts
    /// as held from this call on, so a test that sees `answers_held` go up may release it
    /// without a race.
    pub fn hold(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.releases.subscribe();
        let seen = *rx.borrow_and_update();
        self.held.fetch_add(1, Ordering::SeqCst);
        let me = Arc::clone(self);
        async move {
            // The sender lives as long as `me`: `wait_for` ends at a release.
            let _ = rx.wait_for(|n| *n > seen).await;
            me.held.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Counts a request until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }
}

/// One request being processed; dropping it (done, or cancelled) uncounts it.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The org's listener: a TCP listener whose connections are counted while they are open.
pub struct CountingListener {
    inner: TcpListener,
    activity: Arc<Activity>,
}

impl CountingListener {
    /// Counts the connections `inner` accepts in `activity`.
    pub fn new(inner: TcpListener, activity: Arc<Activity>) -> Self {
        CountingListener { inner, activity }
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        self.activity.connections.fetch_add(1, Ordering::SeqCst);
        (
            CountedStream {
                stream,
                activity: self.activity.clone(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection, uncounted when it is dropped (closed).
pub struct CountedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.activity.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
