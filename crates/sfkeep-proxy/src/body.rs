//! Body types: one boxed body for requests and responses, local or streamed.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every request and response the proxy sends.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// What reading the first `limit` bytes of a body gave.
pub(crate) enum Prefix {
    /// The whole body, at most `limit` bytes.
    Whole(Bytes),
    /// More than `limit` bytes: what was read, and the rest still to come.
    Partial { read: Bytes, rest: Body },
}

impl Prefix {
    /// The whole body again as one body: what was read, then the rest.
    pub(crate) fn into_body(self) -> Body {
        match self {
            Prefix::Whole(b) => full(b),
            Prefix::Partial { read, rest } => {
                let head = futures_util::stream::once(std::future::ready(Ok::<_, BoxError>(
                    Frame::data(read),
                )));
                StreamBody::new(head.chain(BodyStream::new(rest))).boxed_unsync()
            }
        }
    }
}

/// Bytes read so far, kept in one buffer; the first piece is kept as it came (no copy) until
/// a second one arrives.
struct Accumulator {
    first: Option<Bytes>,
    buf: BytesMut,
}

impl Accumulator {
    fn new(read: Bytes) -> Self {
        Self {
            first: (!read.is_empty()).then_some(read),
            buf: BytesMut::new(),
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.buf.len()
    }

    fn push(&mut self, data: Bytes, hint: usize) {
        if self.first.is_none() && self.buf.is_empty() {
            self.first = Some(data);
            return;
        }
        if let Some(f) = self.first.take() {
            self.buf.reserve(hint.max(f.len() + data.len()));
            self.buf.extend_from_slice(&f);
        }
        self.buf.extend_from_slice(&data);
    }

    fn into_bytes(self) -> Bytes {
        self.first.unwrap_or_else(|| self.buf.freeze())
    }
}

/// Reads `body` up to `limit` bytes in all, after the bytes already `read` from it. Past the
/// limit, returns what was read and the rest unread. Memory grows as bytes arrive, into one
/// buffer (no second copy at the end).
pub(crate) async fn read_prefix<B>(
    read: Bytes,
    mut body: B,
    limit: usize,
) -> Result<Prefix, BoxError>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let hint = body
        .size_hint()
        .exact()
        .map_or(0, |n| (n as usize).saturating_add(read.len()).min(limit));
    let mut acc = Accumulator::new(read);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Into::into)?.into_data() else {
            continue;
        };
        if acc.len() + data.len() > limit {
            acc.push(data, 0);
            let rest = BodyStream::new(body).map(|r| r.map_err(Into::into));
            return Ok(Prefix::Partial {
                read: acc.into_bytes(),
                rest: StreamBody::new(rest).boxed_unsync(),
            });
        }
        acc.push(data, hint);
    }
    Ok(Prefix::Whole(acc.into_bytes()))
}

/// The whole body, or `None` past `limit` bytes.
pub(crate) async fn read_all<B>(body: B, limit: usize) -> Result<Option<Bytes>, BoxError>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    match read_prefix(Bytes::new(), body, limit).await? {
        Prefix::Whole(b) => Ok(Some(b)),
        Prefix::Partial { .. } => Ok(None),
    }
}
