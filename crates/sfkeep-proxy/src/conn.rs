//! One client connection: read a request head (with the slowloris guard), hand the request to
//! the router, write the reply, and keep the connection open when both sides allow it.
//!
//! A request body up to the replay limit is read here, whole, before routing: it is kept for
//! a replay anyway, and a body already in memory goes upstream in the same write as the head.
//! A larger or chunked body is streamed to the router as a [`ClientBody`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::body::{self, Body, BoxError};
use crate::forward;
use crate::h1::{self, Chunk, ChunkedDecoder, Framing, RequestHead, ResponseHead};
use crate::server::{self, Shape, Shared};
use crate::upstream::{Affinity, UpstreamBody};

/// Request and reply bodies up to this size are copied into the head's write.
const COALESCE: usize = 32 << 10;
/// What a client waiting on `Expect: 100-continue` is sent before its body is read.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What a handler answers.
pub(crate) struct Reply {
    pub status: u16,
    pub head: ReplyHead,
    pub body: ReplyBody,
    /// The request met a dead session and was replayed (for the access log).
    pub replayed: bool,
}

/// A reply's header lines.
pub(crate) enum ReplyHead {
    /// Made by the proxy.
    Local(HeaderMap),
    /// The instance's response head, its lines passed on filtered (see
    /// [`forward::client_lines`]). `keep_length`: the reply has no body, and the instance's
    /// `Content-Length` is passed on.
    Forwarded {
        head: ResponseHead,
        instance_base: Arc<forward::Prepared>,
        keep_length: bool,
    },
}

/// A reply's body.
pub(crate) enum ReplyBody {
    Full(Bytes),
    Stream(Body),
    Upstream(UpstreamBody),
}

impl From<http::Response<Body>> for Reply {
    fn from(r: http::Response<Body>) -> Self {
        let (parts, mut b) = r.into_parts();
        // A body made with `body::full` is ready at once: take it whole.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let body = match Pin::new(&mut b).poll_frame(&mut cx) {
            Poll::Ready(None) => ReplyBody::Full(Bytes::new()),
            Poll::Ready(Some(Ok(f))) if b.is_end_stream() && f.is_data() => {
                ReplyBody::Full(f.into_data().unwrap_or_default())
            }
            Poll::Ready(Some(Ok(f))) => {
                use futures_util::StreamExt;
                let first = futures_util::stream::once(std::future::ready(Ok(f)));
                let rest = http_body_util::BodyStream::new(b);
                ReplyBody::Stream(http_body_util::StreamBody::new(first.chain(rest)).boxed_unsync())
            }
            Poll::Ready(Some(Err(_))) => ReplyBody::Full(Bytes::new()),
            Poll::Pending => ReplyBody::Stream(b),
        };
        Self {
            status: parts.status.as_u16(),
            head: ReplyHead::Local(parts.headers),
            body,
            replayed: false,
        }
    }
}

/// A request body as the router gets it.
pub(crate) enum ReqBody {
    /// Read whole (it may be empty).
    Full(Bytes),
    /// Read as the handler polls it.
    Stream(ClientBody),
}

impl ReqBody {
    /// As one boxed body.
    pub(crate) fn into_body(self) -> Body {
        match self {
            ReqBody::Full(b) => body::full(b),
            ReqBody::Stream(s) => s.boxed_unsync(),
        }
    }
}

/// Why the client's request body could not be read: the client's fault, never the instance's.
#[derive(Debug)]
pub(crate) enum ClientBodyError {
    /// Larger than the proxy's limit.
    TooLarge,
    /// No bytes came for the head's read timeout.
    TimedOut,
    /// Malformed chunked framing.
    Malformed(h1::BadChunk),
    /// The client closed the connection before the end of its body.
    Closed,
    /// The connection failed.
    Io(std::io::Error),
}

impl ClientBodyError {
    /// The status a refusal gets.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            ClientBodyError::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            ClientBodyError::TimedOut => http::StatusCode::REQUEST_TIMEOUT,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The first one in an error's chain.
    pub(crate) fn find<'a>(
        e: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a ClientBodyError> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(c) = err.downcast_ref::<ClientBodyError>() {
                return Some(c);
            }
            cur = err.source();
        }
        None
    }
}

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientBodyError::TooLarge => {
                f.write_str("the request body is larger than the proxy's limit")
            }
            ClientBodyError::TimedOut => f.write_str("the request body stopped arriving"),
            ClientBodyError::Malformed(e) => write!(f, "the request body is malformed: {e}"),
            ClientBodyError::Closed => {
                f.write_str("the client closed the connection before the end of its body")
            }
            ClientBodyError::Io(e) => write!(f, "the request body could not be read: {e}"),
        }
    }
}
impl std::error::Error for ClientBodyError {}

impl ClientBody {
    fn fail(&mut self, e: ClientBodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = ClientBodyState::Done;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

/// A request body read from the client connection as it is polled.
pub(crate) struct ClientBody {
    stream: Arc<TcpStream>,
    buf: BytesMut,
    state: ClientBodyState,
    read: u64,
    limit: u64,
    continue_left: usize,
    /// Where the bytes after the body go when it ends, for the next request on the connection.
    handback: Arc<Mutex<Option<BytesMut>>>,
    /// How long the body may go without a byte, and the deadline for the next one.
    idle: std::time::Duration,
    deadline: Pin<Box<Sleep>>,
}

enum ClientBodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
}

impl ClientBody {
    fn finish(&mut self) {
        self.state = ClientBodyState::Done;
        *self.handback.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::mem::take(&mut self.buf));
    }

    /// Counts `n` more bytes; false past the limit.
    fn count(&mut self, n: usize) -> bool {
        self.read += n as u64;
        self.read <= self.limit
    }
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        while this.continue_left > 0 {
            let from = CONTINUE.len() - this.continue_left;
            match this.stream.try_write(&CONTINUE[from..]) {
                Ok(n) => this.continue_left -= n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = ready!(this.stream.poll_write_ready(cx)) {
                        return this.fail(ClientBodyError::Io(e));
                    }
                }
                Err(e) => return this.fail(ClientBodyError::Io(e)),
            }
        }
        loop {
            match &mut this.state {
                ClientBodyState::Done => return Poll::Ready(None),
                ClientBodyState::Length(rem) => {
                    if !this.buf.is_empty() {
                        let n = (this.buf.len() as u64).min(*rem) as usize;
                        *rem -= n as u64;
                        let data = this.buf.split_to(n).freeze();
                        if *rem == 0 {
                            this.finish();
                        }
                        if !this.count(n) {
                            return this.fail(ClientBodyError::TooLarge);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                ClientBodyState::Chunked(d) => match d.decode(&mut this.buf, 64 << 10) {
                    Ok(Chunk::Data(data)) => {
                        if !this.count(data.len()) {
                            return this.fail(ClientBodyError::TooLarge);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Chunk::Done) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Chunk::NeedMore) => {}
                    Err(e) => return this.fail(ClientBodyError::Malformed(e)),
                },
            }
            if this.buf.capacity() - this.buf.len() < 4096 {
                this.buf.reserve(32 << 10);
            }
            match this.stream.try_read_buf(&mut this.buf) {
                Ok(0) => return this.fail(ClientBodyError::Closed),
                Ok(_) => {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(next);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    match this.stream.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return this.fail(ClientBodyError::Io(e)),
                        Poll::Pending => {
                            ready!(this.deadline.as_mut().poll(cx));
                            return this.fail(ClientBodyError::TimedOut);
                        }
                    }
                }
                Err(e) => return this.fail(ClientBodyError::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, ClientBodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            ClientBodyState::Length(n) => SizeHint::with_exact(n),
            ClientBodyState::Done => SizeHint::with_exact(0),
            ClientBodyState::Chunked(_) => SizeHint::default(),
        }
    }
}

/// What a connection tells the server about itself (for graceful shutdown).
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// Between reading a request head and finishing its reply.
    pub busy: AtomicBool,
}

/// How long a client may leave the proxy's reply unread before its connection is dropped
/// (nginx's `send_timeout` has the same default): it holds a task and an upstream connection.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes all of `b` to the client.
async fn write_all(s: &TcpStream, mut b: &[u8]) -> std::io::Result<()> {
    while !b.is_empty() {
        match s.try_write(b) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::timeout(SEND_TIMEOUT, s.writable())
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why reading a head stopped.
enum HeadWait {
    Read(usize),
    TimedOut,
    Failed,
}

/// Reads more of a head (or a kept body) into `buf`, or times out.
fn poll_read_or_timeout(
    s: &TcpStream,
    buf: &mut BytesMut,
    timer: Pin<&mut Sleep>,
    cx: &mut Context<'_>,
) -> Poll<HeadWait> {
    loop {
        match s.try_read_buf(buf) {
            Ok(n) => return Poll::Ready(HeadWait::Read(n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Poll::Ready(HeadWait::Failed),
        }
        match s.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(HeadWait::Failed),
            Poll::Pending => break,
        }
    }
    match timer.poll(cx) {
        Poll::Ready(()) => Poll::Ready(HeadWait::TimedOut),
        Poll::Pending => Poll::Pending,
    }
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 << 10);
    }
}

/// What the writer needs to know about the request a reply answers.
struct Exchange {
    head_request: bool,
    http10: bool,
    keep_alive: bool,
}

/// Serves one client connection until it closes, fails, times out or is told to stop.
pub(crate) async fn serve(
    sh: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ConnState>,
) {
    let stream = Arc::new(stream);
    let mut affinity = Affinity::new(Arc::clone(&sh.upstream));
    let mut buf = BytesMut::with_capacity(8 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(4 << 10);
    let mut timer = Box::pin(tokio::time::sleep(sh.header_read_timeout));
    let eager = (sh.max_replay_body as u64).min(sh.max_body);
    let linger = 'conn: loop {
        state.busy.store(false, Ordering::Release);
        if sh.shutting_down.load(Ordering::Acquire) {
            break 'conn false;
        }
        // The head: the slowloris guard covers the wait for it, an idle keep-alive included.
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + sh.header_read_timeout);
        let head = loop {
            if !buf.is_empty() {
                match RequestHead::parse(&mut buf, sh.max_header_bytes) {
                    Ok(Some(h)) => break h,
                    Ok(None) => {}
                    Err(e) => {
                        refuse_and_close(
                            &sh,
                            &stream,
                            &mut out,
                            &mut affinity,
                            http::StatusCode::from_u16(e.status)
                                .unwrap_or(http::StatusCode::BAD_REQUEST),
                            &format!("malformed request: {e}"),
                        )
                        .await;
                        break 'conn true;
                    }
                }
            }
            reserve(&mut buf);
            let got = std::future::poll_fn(|cx| {
                poll_read_or_timeout(&stream, &mut buf, timer.as_mut(), cx)
            })
            .await;
            match got {
                HeadWait::Read(0) | HeadWait::Failed => break 'conn false,
                HeadWait::Read(_) => {}
                HeadWait::TimedOut => {
                    if !buf.is_empty() {
                        refuse_and_close(
                            &sh,
                            &stream,
                            &mut out,
                            &mut affinity,
                            http::StatusCode::REQUEST_TIMEOUT,
                            "the request head did not arrive in time",
                        )
                        .await;
                        break 'conn true;
                    }
                    break 'conn false;
                }
            }
        };
        state.busy.store(true, Ordering::Release);
        let mut handback = None;
        let body = match head.framing {
            Framing::Empty => ReqBody::Full(Bytes::new()),
            Framing::Length(n) if n <= eager => {
                let n = n as usize;
                if head.expect_continue
                    && buf.len() < n
                    && write_all(&stream, CONTINUE).await.is_err()
                {
                    break 'conn false;
                }
                // A body that stops arriving is cut off like a head that does (slowloris);
                // memory grows as bytes arrive, not as the client declares.
                while buf.len() < n {
                    reserve(&mut buf);
                    timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + sh.header_read_timeout);
                    let got = std::future::poll_fn(|cx| {
                        poll_read_or_timeout(&stream, &mut buf, timer.as_mut(), cx)
                    })
                    .await;
                    match got {
                        HeadWait::Read(0) | HeadWait::Failed => break 'conn false,
                        HeadWait::Read(_) => {}
                        HeadWait::TimedOut => {
                            refuse_and_close(
                                &sh,
                                &stream,
                                &mut out,
                                &mut affinity,
                                http::StatusCode::REQUEST_TIMEOUT,
                                "the request body did not arrive in time",
                            )
                            .await;
                            break 'conn true;
                        }
                    }
                }
                ReqBody::Full(buf.split_to(n).freeze())
            }
            framing => {
                let slot = Arc::new(Mutex::new(None));
                handback = Some(Arc::clone(&slot));
                ReqBody::Stream(ClientBody {
                    stream: Arc::clone(&stream),
                    buf: std::mem::take(&mut buf),
                    state: match framing {
                        Framing::Chunked => ClientBodyState::Chunked(ChunkedDecoder::default()),
                        Framing::Length(n) => ClientBodyState::Length(n),
                        _ => ClientBodyState::Done,
                    },
                    read: 0,
                    limit: sh.max_body,
                    continue_left: if head.expect_continue {
                        CONTINUE.len()
                    } else {
                        0
                    },
                    handback: slot,
                    idle: sh.header_read_timeout,
                    deadline: Box::pin(tokio::time::sleep(sh.header_read_timeout)),
                })
            }
        };
        let started = server::access_log_enabled().then(Instant::now);
        let reply = server::route(&sh, &mut affinity, peer, &head, body).await;
        let mut keep_alive = head.keep_alive;
        if let Some(slot) = handback {
            // The body was read to its end: what followed it is the next request. Else where
            // the next request starts is unknown, and the connection ends after this reply.
            match slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(rest) => buf = rest,
                None => keep_alive = false,
            }
        }
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut id_text = uuid::Uuid::encode_buffer();
        let id_text = id.hyphenated().encode_lower(&mut id_text);
        if let Some(started) = started {
            server::access_log(&head, id_text, reply.status, started, reply.replayed);
        }
        let ex = Exchange {
            head_request: head.method == http::Method::HEAD,
            http10: head.http10,
            keep_alive: keep_alive && !sh.shutting_down.load(Ordering::Acquire),
        };
        drop(head);
        match write_reply(
            &stream,
            &mut out,
            &sh.base_url,
            reply,
            &ex,
            Some(id_text.as_bytes()),
            &mut affinity,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => break 'conn true,
            Err(_) => break 'conn false,
        }
    };
    // The upstream connection is free for other clients before this one lingers.
    drop(affinity);
    if linger {
        linger_close(stream).await;
    }
}

/// How long, and how much, a closing connection reads and drops of what the client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// Ends a connection after a final reply: FIN first, then what the client still sends (a body
/// it was refused, say) is read and dropped for a moment, so that closing with unread bytes
/// does not send a reset that can destroy the reply before the client reads it
/// (RFC 9112 §9.6).
async fn linger_close(stream: Arc<TcpStream>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A request body still held elsewhere keeps a reference: then just close.
    let Ok(mut s) = Arc::try_unwrap(stream) else {
        return;
    };
    if s.shutdown().await.is_err() {
        return;
    }
    let mut sink = vec![0u8; 16 << 10];
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < LINGER_BYTES {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Answers a request the connection cannot go on from (malformed, or too slow) with a
/// REST-shaped refusal that closes the connection.
async fn refuse_and_close(
    sh: &Shared,
    stream: &TcpStream,
    out: &mut Vec<u8>,
    affinity: &mut Affinity,
    status: http::StatusCode,
    message: &str,
) {
    let reply = server::refuse(sh, status, Shape::Rest, message);
    let _ = write_reply(
        stream,
        out,
        &sh.base_url,
        reply.into(),
        &CLOSE,
        None,
        affinity,
    )
    .await;
}

/// The exchange for a refusal that ends the connection.
const CLOSE: Exchange = Exchange {
    head_request: false,
    http10: false,
    keep_alive: false,
};

/// Writes `reply`; `Ok(true)` if the connection may carry another request.
async fn write_reply(
    s: &TcpStream,
    out: &mut Vec<u8>,
    proxy_base: &str,
    reply: Reply,
    ex: &Exchange,
    request_id: Option<&[u8]>,
    affinity: &mut Affinity,
) -> std::io::Result<bool> {
    let status = reply.status;
    let bodiless_status = (100..200).contains(&status) || status == 204 || status == 304;
    let no_body = ex.head_request || bodiless_status;
    out.clear();
    h1::push_status_line(out, status);
    let forwarded = match &reply.head {
        ReplyHead::Local(headers) => {
            for (name, value) in headers {
                h1::push_header(out, name.as_str().as_bytes(), value.as_bytes());
            }
            h1::push_header(out, b"date", &h1::http_date());
            false
        }
        ReplyHead::Forwarded {
            head,
            instance_base,
            keep_length,
        } => {
            forward::client_lines(out, proxy_base, &instance_base.base, head, *keep_length);
            true
        }
    };
    if let Some(id) = request_id {
        h1::push_header(out, b"x-sfkeep-request-id", id);
    }
    let length: Option<u64> = match &reply.body {
        ReplyBody::Full(b) => Some(b.len() as u64),
        ReplyBody::Stream(b) => b.size_hint().exact(),
        ReplyBody::Upstream(b) => b.remaining_length(),
    };
    let mut keep_alive = ex.keep_alive;
    let mut chunked = false;
    // A forwarded bodiless reply carries the instance's own length line already.
    if !(bodiless_status || (no_body && forwarded)) {
        match length {
            Some(n) => {
                out.extend_from_slice(b"content-length: ");
                h1::push_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            None if no_body => {}
            None if ex.http10 => keep_alive = false,
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
        }
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if ex.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        write_all(s, out).await?;
        if let ReplyBody::Upstream(mut b) = reply.body
            && let Some(conn) = b.take_conn()
        {
            affinity.put_back(conn);
        }
        return Ok(keep_alive);
    }
    match reply.body {
        ReplyBody::Full(b) => {
            if b.len() <= COALESCE {
                out.extend_from_slice(&b);
                write_all(s, out).await?;
            } else {
                write_all(s, out).await?;
                write_all(s, &b).await?;
            }
        }
        ReplyBody::Stream(mut body) => {
            write_all(s, out).await?;
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() else {
                    continue;
                };
                write_piece(s, out, &data, chunked).await?;
            }
            if chunked {
                write_all(s, h1::LAST_CHUNK).await?;
            }
        }
        ReplyBody::Upstream(mut body) => {
            write_all(s, out).await?;
            while let Some(piece) = body.next().await {
                write_piece(s, out, &piece.map_err(std::io::Error::other)?, chunked).await?;
            }
            if chunked {
                write_all(s, h1::LAST_CHUNK).await?;
            }
            if let Some(conn) = body.take_conn() {
                affinity.put_back(conn);
            }
        }
    }
    Ok(keep_alive)
}

async fn write_piece(
    s: &TcpStream,
    out: &mut Vec<u8>,
    data: &[u8],
    chunked: bool,
) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if chunked {
        out.clear();
        h1::encode_chunk(out, data);
        write_all(s, out).await
    } else {
        write_all(s, data).await
    }
}
