//! A client's request body: read whole before routing when it is small, else read from the
//! connection as the handler polls it, with the body limit, the idle deadline, `100 Continue`
//! and chunked decoding, handing back what follows it to the connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::Sleep;

use crate::body::{self, Body, BoxError};
use crate::client_io::ClientIo;
use crate::h1::{self, Chunk, ChunkedDecoder, Framing};

/// What a client waiting on `Expect: 100-continue` is sent before its body is read.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

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
    stream: Arc<ClientIo>,
    buf: BytesMut,
    state: ClientBodyState,
    read: u64,
    limit: u64,
    continue_left: usize,
    /// `100 Continue` is written but may still sit in the TLS session.
    continue_unflushed: bool,
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
    /// A body framed by `framing` whose first bytes are in `buf`; `limit` bytes at most,
    /// `idle` at most between two reads; `100 Continue` is sent first if `expect_continue`.
    /// What follows the body goes to `handback` when it ends.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        stream: Arc<ClientIo>,
        buf: BytesMut,
        framing: Framing,
        limit: u64,
        expect_continue: bool,
        handback: Arc<Mutex<Option<BytesMut>>>,
        idle: std::time::Duration,
    ) -> Self {
        Self {
            stream,
            buf,
            state: match framing {
                Framing::Chunked => ClientBodyState::Chunked(ChunkedDecoder::default()),
                Framing::Length(n) => ClientBodyState::Length(n),
                Framing::Empty | Framing::UntilClose => ClientBodyState::Done,
            },
            read: 0,
            limit,
            continue_left: if expect_continue { CONTINUE.len() } else { 0 },
            continue_unflushed: expect_continue,
            handback,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn finish(&mut self) {
        self.state = ClientBodyState::Done;
        *sfkeep::sync::lock(&self.handback) = Some(std::mem::take(&mut self.buf));
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
        if this.continue_unflushed {
            if let Err(e) = ready!(this.stream.poll_flush(cx)) {
                return this.fail(ClientBodyError::Io(e));
            }
            this.continue_unflushed = false;
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
