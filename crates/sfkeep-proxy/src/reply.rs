//! What a handler answers: a status, header lines (made locally, or the instance's passed
//! through filtered) and a body (whole, streamed, or read from the instance as it comes).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::BodyExt;

use crate::body::Body;
use crate::h1::ResponseHead;
use crate::rewrite::Prepared;
use crate::upstream::UpstreamBody;

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
    Local(http::HeaderMap),
    /// The instance's response head, its lines passed on filtered (see
    /// [`crate::rewrite::client_lines`]). `keep_length`: the reply has no body, and the instance's
    /// `Content-Length` is passed on.
    Forwarded {
        head: ResponseHead,
        instance_base: Arc<Prepared>,
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
