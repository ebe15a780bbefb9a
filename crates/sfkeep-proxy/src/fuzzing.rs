//! Entry points for the coverage-guided fuzz targets (`crates/sfkeep-proxy/fuzz`) and the
//! differential test against hyper (`tests/differential.rs`). Not an API: each function feeds
//! arbitrary bytes to one of the proxy's parsers and checks what must hold whatever the bytes
//! (no panic, and the invariants named below), panicking when it does not — a panic is what
//! the fuzzer reports.

use bytes::BytesMut;

use crate::h1::{Chunk, ChunkedDecoder, Framing, RequestHead, ResponseHead, peek_response};
use crate::path;
use crate::soap;

/// The request head parser, then the path canonicalisation and the credential reading that
/// the router applies to what it accepts.
pub fn request_head(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let before = buf.len();
    if let Ok(Some(head)) = RequestHead::parse(&mut buf, 64 << 10) {
        assert!(buf.len() < before, "a parsed head consumed no bytes");
        let _ = head.target();
        let _ = head.query();
        let _ = head.host();
        let _ = crate::auth::presented_credential(&head);
        if let Ok(p) = path::canonical(head.path()) {
            assert!(!p.contains("//"), "a canonical path keeps `//`: {p}");
            assert_eq!(
                path::canonical(&p).as_deref(),
                Ok(&*p),
                "canonical is not idempotent"
            );
        }
        for (n, v) in head.headers() {
            assert!(!n.is_empty());
            assert!(
                !v.contains(&b'\n') && !v.contains(&b'\r'),
                "a header value keeps CR/LF"
            );
        }
    }
}

/// The chunked body decoder, fed the same bytes whole and split at every eighth offset: both
/// must give the same body and the same verdict.
pub fn chunked(data: &[u8]) {
    let whole = decode_chunked(data, &[]);
    let splits: Vec<usize> = (1..data.len()).step_by(8).collect();
    let split = decode_chunked(data, &splits);
    assert_eq!(whole, split, "the decoder depends on how the bytes arrive");
}

/// The body and the bytes left after it, or `None` if the framing is malformed; `Some` with
/// `done == false` if the input ends inside the body.
fn decode_chunked(data: &[u8], splits: &[usize]) -> Option<(Vec<u8>, bool, Vec<u8>)> {
    let mut d = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut at = 0;
    let cuts = splits.iter().copied().chain(std::iter::once(data.len()));
    let mut done = false;
    'feed: for cut in cuts {
        buf.extend_from_slice(&data[at..cut]);
        at = cut;
        loop {
            match d.decode(&mut buf, 1 << 16) {
                Ok(Chunk::Data(b)) => body.extend_from_slice(&b),
                Ok(Chunk::NeedMore) => continue 'feed,
                Ok(Chunk::Done) => {
                    done = true;
                    break 'feed;
                }
                Err(_) => return None,
            }
        }
    }
    // What is left for the next message: unread input and what the decoder did not take.
    let mut rest = buf.to_vec();
    rest.extend_from_slice(&data[at..]);
    Some((body, done, rest))
}

/// The upstream response head parser and the early-answer peek: they agree on where a head
/// ends, and a head over the limit is refused however it arrives.
pub fn response_head(data: &[u8]) {
    for head_request in [false, true] {
        let mut buf = BytesMut::from(data);
        if let Ok(Some(r)) = ResponseHead::parse(&mut buf, head_request, 4096) {
            assert!(
                data.len() - buf.len() <= 4096,
                "a head over the limit was accepted"
            );
            match peek_response(data) {
                crate::h1::Peek::Head { len, status } => {
                    assert_eq!(len, data.len() - buf.len());
                    assert_eq!(status, r.status);
                }
                other => panic!("parse accepted what peek calls {other:?}"),
            }
            if head_request {
                assert_eq!(r.framing, Framing::Empty);
            }
            let _ = r.header("date");
        }
    }
}

/// The SOAP head scan, whole and incremental, and the SessionHeader splice: the splice leaves
/// exactly one session, the proxy's, and scanning a prefix never decides differently from
/// scanning the whole.
pub fn soap_head(data: &[u8]) {
    let limits = soap::HEAD_LIMITS;
    let whole = soap::scan_head(data, true, limits);
    if let Ok(soap::Scan::Head(h)) = &whole {
        assert!(h.head_len <= data.len());
        // Any prefix that decides, decides the same.
        for cut in [h.head_len, data.len() / 2] {
            if let Ok(soap::Scan::Head(p)) = soap::scan_head(&data[..cut], false, limits) {
                assert_eq!(&p, h, "a prefix of {cut} bytes read another head");
            }
        }
        let out = h
            .splice
            .apply(data, "00Dfuzz!TOKEN", "urn:partner.soap.sforce.com");
        match soap::scan_head(&out, true, limits) {
            Ok(soap::Scan::Head(again)) => {
                assert_eq!(
                    again.session.as_deref(),
                    Some("00Dfuzz!TOKEN"),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
                assert_eq!(again.operation, h.operation);
            }
            // Only the limits can refuse what the proxy itself wrote.
            Err(e) => assert!(
                e.0.contains("larger than") || e.0.contains("nests deeper"),
                "{e}: {}",
                String::from_utf8_lossy(&out)
            ),
            Ok(soap::Scan::NeedMore) => panic!("a complete request needs more"),
        }
        if h.operation == "login" {
            let _ = soap::parse_login(data);
        }
    }
}

/// A request as a parser framed it: what the proxy would act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// The method.
    pub method: String,
    /// The request target the proxy routes and forwards: as sent, without a fragment (`#…`
    /// is never sent on; hyper's `Uri` drops it too).
    pub target: String,
    /// Header lines, names lowercased, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// What the proxy's parser makes of the first request in `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A whole request.
    Framed(Framed),
    /// The bytes end before the request does.
    Incomplete,
    /// Refused, with this status.
    Refused(u16),
}

/// Frames the first request in `data` the way the proxy's connection does: the head
/// (`h1::RequestHead::parse`, 64 KiB), then the body by its `Content-Length` or chunked coding.
pub fn frame_request(data: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(data);
    let head = match RequestHead::parse(&mut buf, 64 << 10) {
        Ok(Some(h)) => h,
        Ok(None) => return Outcome::Incomplete,
        Err(e) => return Outcome::Refused(e.status),
    };
    // The router's first rule: only origin-form targets (anything else is a 400).
    if !head.target_raw().starts_with('/') {
        return Outcome::Refused(400);
    }
    let body = match head.framing {
        Framing::Empty | Framing::UntilClose => Vec::new(),
        Framing::Length(n) => {
            if (buf.len() as u64) < n {
                return Outcome::Incomplete;
            }
            buf[..n as usize].to_vec()
        }
        Framing::Chunked => match decode_chunked(&buf, &[]) {
            Some((body, true, _)) => body,
            Some((_, false, _)) => return Outcome::Incomplete,
            None => return Outcome::Refused(400),
        },
    };
    Outcome::Framed(Framed {
        method: head.method_str().to_owned(),
        target: head.target().to_owned(),
        headers: head
            .headers()
            .map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec()))
            .collect(),
        body,
    })
}
