//! One client connection: read a request head (with the slowloris guard), hand the request to
//! the dispatcher (a [`Handler`]), write the reply, and keep the connection open when both sides allow it.
//!
//! A request body up to the replay limit is read here, whole, before routing: it is kept for
//! a replay anyway, and a body already in memory goes upstream in the same write as the head.
//! A larger or chunked body is streamed to the handler as a [`ClientBody`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use crate::client_body::{ClientBody, ReqBody};
use crate::client_io::{ClientIo, TlsIo};
use crate::h1::{self, Framing, RequestHead};
use crate::reply::{Reply, ReplyBody, ReplyHead};
use crate::respond::{Shape, refuse};
use crate::rewrite;
use crate::shared::Shared;
use crate::stats::Counter;
use crate::upstream::Affinity;

/// Request and reply bodies up to this size are copied into the head's write.
const COALESCE: usize = 32 << 10;

/// What a connection hands each request to: the dispatcher, which sits above the connection
/// and is never imported by it (the split hyper keeps between `proto/h1` and its server).
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers one request. `affinity` is the connection's upstream connection.
    fn handle(
        &self,
        affinity: &mut Affinity,
        peer: SocketAddr,
        head: &RequestHead,
        body: ReqBody,
    ) -> impl std::future::Future<Output = Reply> + Send;
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

/// Writes all of `b` to the client, and sends it (TLS holds back what the socket did not take).
async fn write_all(s: &ClientIo, mut b: &[u8]) -> std::io::Result<()> {
    while !b.is_empty() {
        match s.try_write(b) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::timeout(SEND_TIMEOUT, s.tcp().writable())
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
    if let ClientIo::Tls(_) = s {
        tokio::time::timeout(SEND_TIMEOUT, std::future::poll_fn(|cx| s.poll_flush(cx)))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
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
    s: &ClientIo,
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
pub(crate) async fn serve<H: Handler>(
    sh: Arc<Shared>,
    handler: Arc<H>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    state: Arc<ConnState>,
) {
    let Some(stream) = accept(&sh, stream).await else {
        return;
    };
    let stream = Arc::new(stream);
    let mut affinity = Affinity::new(Arc::clone(&sh.upstream));
    let mut buf = BytesMut::with_capacity(8 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(4 << 10);
    let mut timer = Box::pin(tokio::time::sleep(sh.header_read_timeout));
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
            // A body that came with its head is taken as it is: it is already in memory. Any
            // other body is read only when the handler asks for it, after it has decided the
            // request may go on (nothing is buffered for a client that may not use the proxy).
            Framing::Length(n) if buf.len() as u64 >= n => {
                ReqBody::Full(buf.split_to(n as usize).freeze())
            }
            framing => {
                let slot = Arc::new(Mutex::new(None));
                handback = Some(Arc::clone(&slot));
                ReqBody::Stream(ClientBody::new(
                    Arc::clone(&stream),
                    std::mem::take(&mut buf),
                    framing,
                    sh.max_body,
                    head.expect_continue,
                    slot,
                    sh.header_read_timeout,
                ))
            }
        };
        let started = access_log_enabled().then(Instant::now);
        let reply = handler.handle(&mut affinity, peer, &head, body).await;
        let mut keep_alive = head.keep_alive;
        if let Some(slot) = handback {
            // The body was read to its end: what followed it is the next request. Else where
            // the next request starts is unknown, and the connection ends after this reply.
            match sfkeep::sync::lock(&slot).take() {
                Some(rest) => buf = rest,
                None => keep_alive = false,
            }
        }
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut id_text = uuid::Uuid::encode_buffer();
        let id_text = id.hyphenated().encode_lower(&mut id_text);
        if let Some(started) = started {
            access_log(&head, id_text, reply.status, started, reply.replayed);
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
    // The upstream connection and the connection slot are free for other clients before
    // this one lingers.
    drop(affinity);
    drop(slot);
    if linger {
        linger_close(stream).await;
    }
}

/// The connection's transport: the TCP stream itself, or, when the proxy serves TLS, the
/// stream after a TLS handshake, which must end within the head's read timeout (a handshake
/// that never ends holds a connection slot like a head that never ends). `None`: it failed.
async fn accept(sh: &Shared, tcp: TcpStream) -> Option<ClientIo> {
    let Some(tls) = &sh.tls else {
        return Some(ClientIo::Plain(tcp));
    };
    match tokio::time::timeout(sh.header_read_timeout, tls.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let (tcp, session) = stream.into_inner();
            Some(ClientIo::Tls(Box::new(TlsIo::new(tcp, session))))
        }
        Ok(Err(e)) => {
            sh.stats.inc(Counter::tls_handshake_failures);
            // The reason only: a client that does not trust the CA yet ends here, and says so.
            tracing::debug!(target: "sfkeep_proxy", error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            sh.stats.inc(Counter::tls_handshake_failures);
            None
        }
    }
}

/// A client connection's place under the connection cap, given back when the connection ends
/// (before it lingers).
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    sh: Arc<Shared>,
}

impl Slot {
    pub(crate) fn new(sh: &Arc<Shared>, permit: OwnedSemaphorePermit) -> Self {
        sh.stats.inc(Counter::connections);
        sh.stats.open_connections.fetch_add(1, Ordering::Relaxed);
        Self {
            _permit: permit,
            sh: Arc::clone(sh),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sh
            .stats
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection past the cap is sent: a complete 503 that says why, and a close.
const BUSY_BODY: &str = r#"[{"errorCode":"SFKEEP_PROXY_BUSY","message":"sfkeep proxy is at its connection cap; retry shortly, or raise the cap"}]"#;

/// Answers a connection past the cap with a 503 and closes it. What the client already sent is
/// read and dropped for a moment (at most 64 KiB, 500 ms), so the close does not reset the
/// connection before the 503 is read; the connection holds no slot meanwhile. With TLS the
/// connection is closed before its handshake: answering would cost the handshake's work and
/// memory, which is what the cap bounds.
pub(crate) async fn refuse_over_capacity(sh: Arc<Shared>, stream: TcpStream, cap: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    sh.stats.inc(Counter::connections_refused);
    // One line per second at most: a flood must not become a flood of log lines.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if sh.last_busy_log.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            target: "sfkeep_proxy",
            cap,
            refused_total = sh.stats.connections_refused.load(Ordering::Relaxed),
            "connection refused: the proxy is at its connection cap"
        );
    }
    if sh.tls.is_some() {
        return;
    }
    let mut out = Vec::with_capacity(256);
    h1::push_status_line(&mut out, 503);
    h1::push_header(&mut out, b"content-type", b"application/json;charset=UTF-8");
    h1::push_header(&mut out, b"retry-after", b"1");
    h1::push_header(&mut out, b"connection", b"close");
    out.extend_from_slice(b"content-length: ");
    h1::push_decimal(&mut out, BUSY_BODY.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(BUSY_BODY.as_bytes());
    let mut s = stream;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        if s.write_all(&out).await.is_err() || s.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < (64 << 10) {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// How long, and how much, a closing connection reads and drops of what the client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// Ends a connection after a final reply: FIN first, then what the client still sends (a body
/// it was refused, say) is read and dropped for a moment, so that closing with unread bytes
/// does not send a reset that can destroy the reply before the client reads it
/// (RFC 9112 §9.6).
async fn linger_close(stream: Arc<ClientIo>) {
    use tokio::io::AsyncReadExt;
    // A request body still held elsewhere keeps a reference: then just close.
    let Ok(s) = Arc::try_unwrap(stream) else {
        return;
    };
    let Ok(mut s) = s.close_write().await else {
        return;
    };
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
    stream: &ClientIo,
    out: &mut Vec<u8>,
    affinity: &mut Affinity,
    status: http::StatusCode,
    message: &str,
) {
    let reply = refuse(sh, status, Shape::Rest, message);
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
    s: &ClientIo,
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
            rewrite::client_lines(out, proxy_base, &instance_base.base, head, *keep_length);
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
    s: &ClientIo,
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
