//! Connections to the instance: an HTTP/1.1 client written for forwarding, with affinity.
//!
//! Each client connection owns at most one connection to the instance and uses it from its own
//! task: the request head is written in one go (head and a kept body in one buffer), the
//! response head is parsed once, and the body is handed to the client as it arrives. No request
//! crosses a task or a shared pool (nginx's worker does the same with its event loop).
//!
//! Upstream connections outlive their client connection: when one ends, its upstream connection
//! goes to a small idle list that the next new client connection takes from, so a client that
//! opens a connection per call does not cost a TLS handshake with the instance per call.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::Uri;
use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::body::{Body, BoxError};
use crate::config::BuildError;
use crate::h1::{self, BadResponse, Chunk, ChunkedDecoder, Framing, ResponseHead};

/// How long an upstream connection may sit in the idle list.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many idle upstream connections are kept for new client connections.
const MAX_IDLE: usize = 64;
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response head accepted from the instance.
const MAX_RESPONSE_HEAD: usize = 64 << 10;
/// How much is read from the instance at a time.
const READ_CHUNK: usize = 32 << 10;
/// Request head and kept body up to this size go out in one write.
const COALESCE: usize = 64 << 10;

/// Where a connection goes: the instance's scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
}

impl Target {
    /// The target of an absolute `http`/`https` URL.
    pub(crate) fn of(uri: &Uri) -> Option<Self> {
        let tls = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Self {
            tls,
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }
}

/// A transport to the instance.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One HTTP/1.1 connection to the instance, with what has been read from it and not used.
pub(crate) struct Conn {
    target: Target,
    io: Io,
    buf: BytesMut,
    idle_since: Instant,
}

impl Conn {
    /// Whether the instance has closed this idle connection (or sent something unasked).
    /// Answers from the runtime's readiness state: no system call while nothing happened.
    fn is_stale(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        // Ready means the end of stream, an error, or bytes nobody asked for: unusable anyway.
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_ready()
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        self.io.read_buf(&mut self.buf).await
    }
}

/// What every client connection shares: the TLS client and the idle list.
pub(crate) struct Upstream {
    tls: TlsConnector,
    idle: Mutex<Vec<Conn>>,
}

impl Upstream {
    pub(crate) fn new() -> Result<Self, BuildError> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Tls(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| BuildError::Tls(e.to_string()))?
        .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        sfkeep::sync::lock(&self.idle)
    }

    fn take_idle(&self, target: &Target) -> Option<Conn> {
        let mut idle = self.idle();
        idle.retain(|c| c.idle_since.elapsed() < IDLE_TIMEOUT);
        let i = idle.iter().rposition(|c| &c.target == target)?;
        Some(idle.swap_remove(i))
    }

    fn put_idle(&self, mut conn: Conn) {
        if conn.is_stale() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle();
        idle.retain(|c| c.idle_since.elapsed() < IDLE_TIMEOUT);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(conn);
    }

    async fn connect(&self, target: &Target) -> Result<Conn, BoxError> {
        let connecting = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
            // Requests and responses are small and latency-bound: no Nagle delay.
            tcp.set_nodelay(true)?;
            let io = if target.tls {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|_| "the instance host is not a valid TLS server name")?;
                Io::Tls(Box::new(self.tls.connect(name, tcp).await?))
            } else {
                Io::Plain(tcp)
            };
            Ok::<_, BoxError>(io)
        };
        let io = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| "connecting to the instance timed out")??;
        Ok(Conn {
            target: target.clone(),
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            idle_since: Instant::now(),
        })
    }
}

/// A request body to send.
pub(crate) enum OutBody {
    /// Kept in memory (may be empty); sent with the head.
    Full(Bytes),
    /// Streamed; `Some(length)` declared, else chunked.
    Stream(Body, Option<u64>),
}

/// The instance did not send a response head in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedOut;

/// A client connection's upstream connection (made on first use, remade after it ends).
pub(crate) struct Affinity {
    link: Link,
    /// The response-head deadline, reset per request: moving a registered timer to a later
    /// deadline costs less than registering a new one.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Drop for Affinity {
    fn drop(&mut self) {
        if let Some(conn) = self.link.held.take() {
            self.link.upstream.put_idle(conn);
        }
    }
}

impl Affinity {
    pub(crate) fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            link: Link {
                upstream,
                held: None,
                out: Vec::new(),
            },
            deadline: None,
        }
    }

    /// Gives back a connection whose response has been read to the end.
    pub(crate) fn put_back(&mut self, conn: Conn) {
        match &self.link.held {
            None => self.link.held = Some(conn),
            Some(_) => self.link.upstream.put_idle(conn),
        }
    }

    /// Sends a request (`head` ends with the blank line; its framing headers match `body`) and
    /// reads the response head. `timeout` bounds the wait for the response head, counted from
    /// the end of the request body, and each write to the instance: an upload takes as long as
    /// it keeps moving. A request whose write failed on a reused connection never reached the
    /// instance whole, so it is sent once more on a new connection, whatever its method.
    pub(crate) async fn send(
        &mut self,
        timeout: Duration,
        target: &Target,
        head: &[u8],
        body: OutBody,
        head_request: bool,
    ) -> Result<Result<(ResponseHead, UpstreamBody), BoxError>, TimedOut> {
        let timer = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        exchange(
            &mut self.link,
            timer.as_mut(),
            target,
            head,
            body,
            head_request,
            timeout,
        )
        .await
    }
}

/// A live connection to `target` and whether it was used before: the held one, an idle one,
/// or a new one.
async fn checkout(
    upstream: &Upstream,
    held: &mut Option<Conn>,
    target: &Target,
) -> Result<(Conn, bool), BoxError> {
    if let Some(mut c) = held.take()
        && &c.target == target
        && !c.is_stale()
    {
        return Ok((c, true));
    }
    while let Some(mut c) = upstream.take_idle(target) {
        if !c.is_stale() {
            return Ok((c, true));
        }
    }
    // Boxed: connecting (DNS, TCP, TLS) is rare but its state is large, and every request's
    // future would otherwise carry (and move) room for it.
    let c = Box::pin(upstream.connect(target)).await?;
    Ok((c, false))
}

/// The connection a client connection holds, the shared idle list, and a write buffer.
struct Link {
    upstream: Arc<Upstream>,
    held: Option<Conn>,
    out: Vec<u8>,
}

async fn exchange(
    link: &mut Link,
    mut timer: Pin<&mut tokio::time::Sleep>,
    target: &Target,
    head: &[u8],
    body: OutBody,
    head_request: bool,
    timeout: Duration,
) -> Result<Result<(ResponseHead, UpstreamBody), BoxError>, TimedOut> {
    let Link {
        upstream,
        held,
        out,
    } = link;
    let (mut conn, mut reused) = match checkout(upstream, held, target).await {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    // Whether the connection can carry another request after this one, and why writing the
    // request failed (an answer the instance sent before closing may still be there to read).
    let mut whole = true;
    let mut write_error = None;
    match body {
        OutBody::Full(body) => loop {
            match write_full(&mut conn, out, head, &body, timeout).await {
                Ok(()) => break,
                Err(_) if reused => {
                    conn = match Box::pin(upstream.connect(target)).await {
                        Ok(c) => c,
                        Err(e) => return Ok(Err(e)),
                    };
                    reused = false;
                }
                Err(e) => return Ok(Err(e.into())),
            }
        },
        OutBody::Stream(body, length) => {
            // A response can come before the body is all sent (a refusal): stop sending then.
            // A write that fails may be the instance closing after such an answer: look for it.
            match Box::pin(write_stream(&mut conn, head, body, length, timeout)).await {
                Ok(true) => {}
                Ok(false) => whole = false,
                Err(StreamFailed::Client(e)) => return Ok(Err(e)),
                Err(StreamFailed::Upstream(e)) => {
                    whole = false;
                    write_error = Some(e);
                }
            }
        }
    }
    // The response deadline starts now that the request is all sent.
    timer.as_mut().reset(tokio::time::Instant::now() + timeout);
    let resp = tokio::select! {
        biased;
        r = read_head(&mut conn, head_request) => r,
        () = timer => return Err(TimedOut),
    };
    let resp = match (resp, write_error) {
        (Err(_), Some(e)) => Err(e.into()),
        (r, _) => r,
    };
    Ok(resp.map(|resp| {
        let reusable = whole && resp.reusable;
        let body = UpstreamBody::new(conn, resp.framing, reusable, timeout);
        (resp, body)
    }))
}

/// A write to the instance that makes no progress for this long has stalled.
fn stalled() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the org's instance stopped taking the request",
    )
}

/// Writes `bytes`, each write bounded by `timeout` (progress, not total time).
async fn write_bounded(conn: &mut Conn, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    tokio::time::timeout(timeout, conn.io.write_all(bytes))
        .await
        .map_err(|_| stalled())?
}

async fn write_full(
    conn: &mut Conn,
    out: &mut Vec<u8>,
    head: &[u8],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    if body.is_empty() {
        write_bounded(conn, head, timeout).await
    } else if head.len() + body.len() <= COALESCE {
        out.clear();
        out.extend_from_slice(head);
        out.extend_from_slice(body);
        write_bounded(conn, out, timeout).await
    } else {
        write_bounded(conn, head, timeout).await?;
        write_bounded(conn, body, timeout).await
    }
}

/// Why streaming a request body upstream stopped.
enum StreamFailed {
    /// The client's body failed (too large, malformed, stalled, cut): the client's fault.
    Client(BoxError),
    /// Writing to the instance failed.
    Upstream(std::io::Error),
}

/// Writes the head and streams `body`; `false` if the instance answered (a final status)
/// before the body was all sent (the connection is then not reused).
async fn write_stream(
    conn: &mut Conn,
    head: &[u8],
    mut body: Body,
    length: Option<u64>,
    timeout: Duration,
) -> Result<bool, StreamFailed> {
    write_bounded(conn, head, timeout)
        .await
        .map_err(StreamFailed::Upstream)?;
    let chunked = length.is_none();
    let mut framed = Vec::new();
    loop {
        // Watch for an early answer while waiting for the client's next piece.
        let next = {
            // Reads into the connection's buffer, where `read_head` finds it. Informational
            // heads (100, 103) are dropped: the instance still wants the body. An end of stream
            // or an error shows up in `read_head` as a missing response.
            let early = std::future::poll_fn(|cx| {
                loop {
                    match h1::peek_response(&conn.buf) {
                        h1::Peek::Head { status, len }
                            if (100..200).contains(&status) && status != 101 =>
                        {
                            let _ = conn.buf.split_to(len);
                            continue;
                        }
                        h1::Peek::Head { .. } | h1::Peek::Malformed => return Poll::Ready(()),
                        h1::Peek::Partial => {}
                    }
                    if conn.buf.capacity() - conn.buf.len() < 4096 {
                        conn.buf.reserve(READ_CHUNK);
                    }
                    match std::pin::pin!(conn.io.read_buf(&mut conn.buf)).poll(cx) {
                        Poll::Ready(Ok(n)) if n > 0 => {}
                        Poll::Ready(_) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            });
            tokio::select! {
                biased;
                frame = body.frame() => Some(frame),
                () = early => None,
            }
        };
        let Some(frame) = next else {
            return Ok(false);
        };
        let written = match frame {
            None => {
                if chunked {
                    write_bounded(conn, h1::LAST_CHUNK, timeout)
                        .await
                        .map_err(StreamFailed::Upstream)?;
                }
                return Ok(true);
            }
            Some(Err(e)) => return Err(StreamFailed::Client(e)),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    framed.clear();
                    h1::encode_chunk(&mut framed, &data);
                    write_bounded(conn, &framed, timeout).await
                } else {
                    write_bounded(conn, &data, timeout).await
                }
            }
        };
        written.map_err(StreamFailed::Upstream)?;
    }
}

/// Reads a final response head (informational 1xx heads are skipped).
async fn read_head(conn: &mut Conn, head_request: bool) -> Result<ResponseHead, BoxError> {
    loop {
        if !conn.buf.is_empty()
            && let Some(resp) = ResponseHead::parse(&mut conn.buf, head_request, MAX_RESPONSE_HEAD)?
        {
            match resp.status {
                101 => return Err(BadResponse("the instance switched protocols").into()),
                100..=199 => continue,
                _ => return Ok(resp),
            }
        }
        if conn.read_more().await? == 0 {
            return Err(
                BadResponse("the instance closed the connection without a response").into(),
            );
        }
    }
}

/// Where a response body stands.
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// A response body from the instance, read from the connection as the client takes it.
pub(crate) struct UpstreamBody {
    conn: Option<Conn>,
    state: BodyState,
    /// Bytes already read, given out first.
    prefix: Option<Bytes>,
    reusable: bool,
    /// How long the instance may go without sending a byte of the body.
    read_timeout: Duration,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").finish_non_exhaustive()
    }
}

/// The most data handed out per piece.
const MAX_PIECE: usize = 64 << 10;

impl UpstreamBody {
    fn new(conn: Conn, framing: Framing, reusable: bool, read_timeout: Duration) -> Self {
        let state = match framing {
            Framing::Empty => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyState::UntilClose,
        };
        Self {
            conn: Some(conn),
            state,
            prefix: None,
            reusable,
            read_timeout,
        }
    }

    /// The bytes still to come, when known (for `Content-Length`).
    pub(crate) fn remaining_length(&self) -> Option<u64> {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        match self.state {
            BodyState::Done => Some(prefix),
            BodyState::Length(n) => Some(prefix + n),
            _ => None,
        }
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, BoxError>> {
        if let Some(p) = self.prefix.take() {
            return Some(Ok(p));
        }
        loop {
            let conn = self.conn.as_mut()?;
            match &mut self.state {
                BodyState::Done => return None,
                BodyState::Length(rem) => {
                    if !conn.buf.is_empty() {
                        let n = (conn.buf.len() as u64).min(*rem) as usize;
                        *rem -= n as u64;
                        if *rem == 0 {
                            self.state = BodyState::Done;
                        }
                        return Some(Ok(conn.buf.split_to(n).freeze()));
                    }
                }
                BodyState::Chunked(d) => match d.decode(&mut conn.buf, MAX_PIECE) {
                    Ok(Chunk::Data(b)) => return Some(Ok(b)),
                    Ok(Chunk::Done) => {
                        self.state = BodyState::Done;
                        return None;
                    }
                    Ok(Chunk::NeedMore) => {}
                    Err(e) => return Some(Err(self.fail(e.into()))),
                },
                BodyState::UntilClose => {
                    if !conn.buf.is_empty() {
                        return Some(Ok(conn.buf.split().freeze()));
                    }
                }
            }
            let read = tokio::time::timeout(self.read_timeout, conn.read_more()).await;
            let Ok(read) = read else {
                let stalled = BadResponse("the org's instance stopped sending its response");
                return Some(Err(self.fail(stalled.into())));
            };
            match read {
                Ok(0) => {
                    if let BodyState::UntilClose = self.state {
                        self.state = BodyState::Done;
                        self.conn = None;
                        return None;
                    }
                    return Some(Err(
                        self.fail(BadResponse("the instance ended its response early").into())
                    ));
                }
                Ok(_) => {}
                Err(e) => return Some(Err(self.fail(e.into()))),
            }
        }
    }

    fn fail(&mut self, e: BoxError) -> BoxError {
        self.conn = None;
        self.state = BodyState::Done;
        e
    }

    /// Reads the whole body if it is at most `limit` bytes; else keeps what was read (given out
    /// first by [`Self::next`]) and returns `None`.
    pub(crate) async fn read_up_to(&mut self, limit: usize) -> Result<Option<Bytes>, BoxError> {
        if let Some(n) = self.remaining_length()
            && n > limit as u64
        {
            return Ok(None);
        }
        let mut acc = BytesMut::new();
        let mut first: Option<Bytes> = None;
        while let Some(piece) = self.next().await {
            let piece = piece?;
            let have = first.as_ref().map_or(0, Bytes::len) + acc.len();
            if have + piece.len() > limit {
                if let Some(f) = first.take() {
                    acc = BytesMut::from(&f[..]);
                }
                acc.extend_from_slice(&piece);
                self.prefix = Some(acc.freeze());
                return Ok(None);
            }
            match first.take() {
                // The usual case: one piece, no copy.
                None if acc.is_empty() => first = Some(piece),
                None => acc.extend_from_slice(&piece),
                Some(f) => {
                    acc.extend_from_slice(&f);
                    acc.extend_from_slice(&piece);
                }
            }
        }
        Ok(Some(first.unwrap_or_else(|| acc.freeze())))
    }

    /// The connection, once the body has been read to its end and the connection can carry
    /// another request.
    pub(crate) fn take_conn(&mut self) -> Option<Conn> {
        match self.state {
            BodyState::Done if self.reusable && self.prefix.is_none() => self.conn.take(),
            _ => None,
        }
    }
}
