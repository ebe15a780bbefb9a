//! Body types: one boxed body for requests and responses, local or streamed.

use bytes::Bytes;
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
    /// More than `limit` bytes: what was read, chained with the rest, streaming.
    Stream(Body),
}

/// Reads up to `limit` bytes of `body`; past that, returns a body that replays what was read
/// and streams the rest.
pub(crate) async fn read_prefix<B>(mut body: B, limit: usize) -> Result<Prefix, BoxError>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            chunks.push(data);
            if total > limit {
                let head = futures_util::stream::iter(
                    chunks
                        .into_iter()
                        .map(|c| Ok::<_, BoxError>(Frame::data(c))),
                );
                let rest = BodyStream::new(body).map(|r| r.map_err(Into::into));
                return Ok(Prefix::Stream(
                    StreamBody::new(head.chain(rest)).boxed_unsync(),
                ));
            }
        }
    }
    Ok(Prefix::Whole(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut v = Vec::with_capacity(total);
            for c in chunks {
                v.extend_from_slice(&c);
            }
            Bytes::from(v)
        }
    }))
}

/// The whole body, or `None` past `limit` bytes (or on a read error).
pub(crate) async fn read_all<B>(body: B, limit: usize) -> Result<Option<Bytes>, BoxError>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    match read_prefix(body, limit).await? {
        Prefix::Whole(b) => Ok(Some(b)),
        Prefix::Stream(_) => Ok(None),
    }
}
