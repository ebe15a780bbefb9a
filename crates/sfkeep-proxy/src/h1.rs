//! HTTP/1.1 message heads and body framing, parsed once (httparse) and kept as byte ranges.
//!
//! The proxy parses a client's request head once, checks it, and copies its header lines
//! through to the instance with the credential and hop-by-hop lines left out: no header map is
//! built for a forwarded request, and none for a forwarded response. Framing follows RFC 9112
//! §6 strictly on the client side (request smuggling is the risk there): `Transfer-Encoding`
//! other than `chunked`, `Transfer-Encoding` with `Content-Length`, and disagreeing or
//! non-numeric `Content-Length`s are refused.

use std::fmt;
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::Method;

/// Most header lines a head may carry (hyper's limit too).
pub(crate) const MAX_HEADERS: usize = 100;
/// The longest chunk-size line or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// The most trailer bytes accepted after a chunked body (they are read and dropped).
const MAX_TRAILERS: usize = 64 << 10;

/// A byte range in a head.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Self {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Self {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn get(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.start as usize..self.end as usize]
    }
}

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Why a request head was refused, with the status it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadError {
    pub status: u16,
    pub what: &'static str,
}

impl HeadError {
    fn bad(what: &'static str) -> Self {
        Self { status: 400, what }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

/// A parsed request head. The bytes are the head as received.
pub(crate) struct RequestHead {
    lines: Lines,
    pub method: Method,
    /// The request target (httparse admits visible ASCII only), and where its path ends.
    target: Span,
    path_end: u32,
    /// The `Host` header's value, if there is exactly one.
    host: Option<Span>,
    /// More than one `Host` header.
    pub duplicate_host: bool,
    /// The declared `Content-Length`.
    content_length: Option<u64>,
    /// `HTTP/1.0` (else 1.1).
    pub http10: bool,
    pub framing: Framing,
    /// Whether the client lets the connection stay open after this exchange.
    pub keep_alive: bool,
    /// `Connection` names header lines (hop-by-hop, not to be forwarded).
    pub connection_lists_headers: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl fmt::Debug for RequestHead {
    // Never the header values: they carry the client's credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method)
            .field("path", &self.path())
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

/// Case-insensitive header name comparison against a lowercase name.
#[inline]
pub(crate) fn name_is(name: &[u8], lower: &str) -> bool {
    name.len() == lower.len() && name.eq_ignore_ascii_case(lower.as_bytes())
}

/// The comma-separated tokens of a header value, trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Reads a `Connection` value: `close`, `keep-alive` (which only an HTTP/1.0 message needs),
/// and whether it names header lines (hop-by-hop ones, not to be passed on).
fn scan_connection(value: &[u8], http10: bool, close: &mut bool, lists_headers: &mut bool) {
    for t in tokens(value) {
        if t.eq_ignore_ascii_case(b"close") {
            *close = true;
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            *close &= !http10;
        } else if !t.is_empty() {
            *lists_headers = true;
        }
    }
}

/// A head's bytes and its header lines, as ranges into them.
struct Lines {
    bytes: Bytes,
    spans: Vec<(Span, Span)>,
}

impl Lines {
    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|(n, v)| (n.get(&self.bytes), v.get(&self.bytes)))
    }

    fn first(&self, lower: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| name_is(n, lower)).map(|(_, v)| v)
    }
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl RequestHead {
    /// Parses a complete head off the front of `buf` (the rest, a body or a pipelined request,
    /// stays). `Ok(None)`: incomplete, read more.
    pub(crate) fn parse(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Self>, HeadError> {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let status = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, buf, &mut slots);
        let len = match status {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > max_bytes {
                    Err(HeadError {
                        status: 431,
                        what: "the request head is larger than the proxy's limit",
                    })
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError {
                    status: 431,
                    what: "the request has more than 100 header lines",
                });
            }
            Err(httparse::Error::Version) => {
                return Err(HeadError {
                    status: 505,
                    what: "only HTTP/1.0 and HTTP/1.1 are served",
                });
            }
            Err(_) => return Err(HeadError::bad("malformed HTTP request head")),
        };
        if len > max_bytes {
            return Err(HeadError {
                status: 431,
                what: "the request head is larger than the proxy's limit",
            });
        }
        let base: &[u8] = buf;
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return Err(HeadError::bad("malformed HTTP request head"));
        };
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| HeadError::bad("malformed request method"))?;
        let target_span = Span::of(base, target.as_bytes());
        let http10 = version == 0;
        let mut host = None;
        let mut duplicate_host = false;
        let mut headers = Vec::with_capacity(req.headers.len());
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = http10;
        let mut expect_continue = false;
        let mut connection_lists_headers = false;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            let value = h.value;
            match name.len() {
                14 if name_is(name, "content-length") => {
                    let n = parse_length(value)
                        .ok_or(HeadError::bad("Content-Length is not a number"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(HeadError::bad("conflicting Content-Length headers"));
                    }
                    length = Some(n);
                }
                17 if name_is(name, "transfer-encoding") => {
                    if chunked || !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                        return Err(HeadError {
                            status: 501,
                            what: "only Transfer-Encoding: chunked is accepted",
                        });
                    }
                    chunked = true;
                }
                10 if name_is(name, "connection") => {
                    scan_connection(value, http10, &mut close, &mut connection_lists_headers);
                }
                4 if name_is(name, "host") => {
                    duplicate_host |= host.is_some();
                    host = Some(Span::of(base, value));
                }
                6 if name_is(name, "expect") => {
                    if value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                        expect_continue = true;
                    } else {
                        return Err(HeadError {
                            status: 417,
                            what: "only Expect: 100-continue is supported",
                        });
                    }
                }
                _ => {}
            }
            headers.push((Span::of(base, name), Span::of(base, value)));
        }
        let framing = match (chunked, length) {
            (true, Some(_)) => {
                return Err(HeadError::bad(
                    "both Transfer-Encoding and Content-Length are present",
                ));
            }
            (true, None) if http10 => {
                return Err(HeadError::bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            (true, None) => Framing::Chunked,
            (false, Some(0) | None) => Framing::Empty,
            (false, Some(n)) => Framing::Length(n),
        };
        let bytes = buf.split_to(len).freeze();
        let target = target_span;
        let path_end = target
            .get(&bytes)
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .map_or(target.end, |i| target.start + i as u32);
        Ok(Some(Self {
            lines: Lines {
                bytes,
                spans: headers,
            },
            method,
            target,
            path_end,
            host: if duplicate_host { None } else { host },
            duplicate_host,
            content_length: length,
            http10,
            framing,
            keep_alive: !close,
            connection_lists_headers,
            expect_continue: expect_continue && framing != Framing::Empty && !http10,
        }))
    }

    /// The request target as sent (origin-form path and query, or another form to refuse),
    /// without a fragment; empty if it is not text.
    pub(crate) fn target(&self) -> &str {
        let t = self.target.get(&self.lines.bytes);
        let t = match t.iter().position(|&b| b == b'#') {
            Some(i) => &t[..i],
            None => t,
        };
        std::str::from_utf8(t).unwrap_or("")
    }

    /// The request target exactly as sent (a fragment included).
    pub(crate) fn target_raw(&self) -> &str {
        std::str::from_utf8(self.target.get(&self.lines.bytes)).unwrap_or("")
    }

    /// The path: the target up to `?` (or `#`).
    pub(crate) fn path(&self) -> &str {
        let p = Span {
            start: self.target.start,
            end: self.path_end,
        };
        std::str::from_utf8(p.get(&self.lines.bytes)).unwrap_or("")
    }

    /// The query, if any.
    pub(crate) fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// The `Host` header's value (`None` if absent or repeated).
    pub(crate) fn host(&self) -> Option<&[u8]> {
        self.host.map(|s| s.get(&self.lines.bytes))
    }

    /// The raw method token.
    pub(crate) fn method_str(&self) -> &str {
        self.method.as_str()
    }

    /// Every header line, in order.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter()
    }

    /// The first value of a header (`lower` is the lowercase name).
    pub(crate) fn header(&self, lower: &str) -> Option<&[u8]> {
        self.lines.first(lower)
    }

    /// The declared body length, if any.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

/// A parsed response head from the instance.
pub(crate) struct ResponseHead {
    lines: Lines,
    pub status: u16,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub reusable: bool,
    /// `Connection` names header lines (hop-by-hop, not to be passed on).
    pub connection_lists_headers: bool,
}

impl fmt::Debug for ResponseHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseHead")
            .field("status", &self.status)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

/// Why a response head from the instance could not be used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadResponse(pub &'static str);

impl fmt::Display for BadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for BadResponse {}

impl ResponseHead {
    /// Parses a complete response head off the front of `buf`. `Ok(None)`: incomplete.
    /// `head_request`: the request was a HEAD (no body follows whatever the head says).
    pub(crate) fn parse(
        buf: &mut BytesMut,
        head_request: bool,
        max_bytes: usize,
    ) -> Result<Option<Self>, BadResponse> {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .allow_obsolete_multiline_headers_in_responses(false)
            .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > max_bytes => {
                return Err(BadResponse("the instance sent a response head too large"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(BadResponse("the instance sent a malformed response head")),
        };
        // However the head arrived, in one read or many.
        if len > max_bytes {
            return Err(BadResponse("the instance sent a response head too large"));
        }
        let base: &[u8] = buf;
        let (Some(status), Some(version)) = (resp.code, resp.version) else {
            return Err(BadResponse("the instance sent a malformed response head"));
        };
        let mut headers = Vec::with_capacity(resp.headers.len());
        let mut length: Option<u64> = None;
        let mut transfer: Option<bool> = None; // Some(chunked is the last coding)
        let mut close = version == 0;
        let mut connection_lists_headers = false;
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            match name.len() {
                14 if name_is(name, "content-length") => {
                    let n = parse_length(h.value).ok_or(BadResponse(
                        "the instance sent a Content-Length that is not a number",
                    ))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(BadResponse("the instance sent conflicting Content-Lengths"));
                    }
                    length = Some(n);
                }
                17 if name_is(name, "transfer-encoding") => {
                    let last = tokens(h.value).next_back().unwrap_or_default();
                    transfer = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
                10 if name_is(name, "connection") => {
                    scan_connection(
                        h.value,
                        version == 0,
                        &mut close,
                        &mut connection_lists_headers,
                    );
                }
                _ => {}
            }
            headers.push((Span::of(base, name), Span::of(base, h.value)));
        }
        let framing = if head_request || (100..200).contains(&status) || matches!(status, 204 | 304)
        {
            Framing::Empty
        } else {
            match (transfer, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) => Framing::UntilClose,
                (None, Some(0)) => Framing::Empty,
                (None, Some(n)) => Framing::Length(n),
                (None, None) => Framing::UntilClose,
            }
        };
        let bytes = buf.split_to(len).freeze();
        Ok(Some(Self {
            lines: Lines {
                bytes,
                spans: headers,
            },
            status,
            framing,
            reusable: !close && framing != Framing::UntilClose,
            connection_lists_headers,
        }))
    }

    /// Every header line, in order.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter()
    }

    /// The first value of a header (`lower` is the lowercase name).
    pub(crate) fn header(&self, lower: &str) -> Option<&[u8]> {
        self.lines.first(lower)
    }
}

/// What the front of a read buffer holds, response-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Not a whole head yet.
    Partial,
    /// A whole head with this status, `len` bytes long.
    Head { status: u16, len: usize },
    /// Not a response head.
    Malformed,
}

/// Looks at a response head at the front of `buf` without taking it.
pub(crate) fn peek_response(buf: &[u8]) -> Peek {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => Peek::Head {
            status: resp.code.unwrap_or(0),
            len,
        },
        Ok(httparse::Status::Partial) => Peek::Partial,
        Err(_) => Peek::Malformed,
    }
}

/// Decodes a chunked body incrementally from a read buffer.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    remaining: u64,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    DataEnd,
    Trailers,
    Done,
}

/// What one decoding step gave.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Body bytes.
    Data(Bytes),
    /// The buffer holds no complete next piece: read more.
    NeedMore,
    /// The last chunk and the trailers have been read.
    Done,
}

/// A malformed chunked body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadChunk(pub &'static str);

impl fmt::Display for BadChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for BadChunk {}

/// Takes one CRLF-terminated line off `buf` (without the CRLF), or `None` if incomplete.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, BadChunk> {
    match memchr::memchr(b'\n', buf) {
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(BadChunk("a chunked body line does not end in CRLF"));
            }
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        None if buf.len() > MAX_CHUNK_LINE => Err(BadChunk("a chunked body line is too long")),
        None => Ok(None),
    }
}

impl ChunkedDecoder {
    /// Whether the whole body has been decoded.
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The next piece of the body from `buf`, at most `max` data bytes.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut, max: usize) -> Result<Chunk, BadChunk> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Chunk::NeedMore);
                    };
                    let digits = line
                        .iter()
                        .position(|b| !b.is_ascii_hexdigit())
                        .unwrap_or(line.len());
                    if digits == 0 || digits > 15 {
                        return Err(BadChunk("a chunk size is not a hexadecimal number"));
                    }
                    let rest = line[digits..].trim_ascii_start();
                    if !rest.is_empty() && rest[0] != b';' {
                        return Err(BadChunk("a chunk size is followed by garbage"));
                    }
                    let size = std::str::from_utf8(&line[..digits])
                        .ok()
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or(BadChunk("a chunk size is not a hexadecimal number"))?;
                    if size == 0 {
                        self.state = ChunkState::Trailers;
                    } else {
                        self.remaining = size;
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::Data => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    let n = (buf.len() as u64).min(self.remaining).min(max as u64) as usize;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                    return Ok(Chunk::Data(buf.split_to(n).freeze()));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(BadChunk("a chunk is not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Chunk::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                        return Ok(Chunk::Done);
                    }
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(BadChunk("the chunked body's trailers are too large"));
                    }
                }
                ChunkState::Done => return Ok(Chunk::Done),
            }
        }
    }
}

/// Appends one chunk in chunked encoding.
pub(crate) fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{:X}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk (no trailers).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends a decimal number.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `HTTP/1.1 CODE REASON\r\n`.
pub(crate) fn push_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `Name: value\r\n`.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The current time as an HTTP date, formatted at most once a second per thread.
pub(crate) fn http_date() -> [u8; 29] {
    use std::cell::Cell;
    thread_local! {
        static CACHE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|c| {
        let (at, text) = c.get();
        if at == now {
            return text;
        }
        let text = format_http_date(now);
        c.set((now, text));
        text
    })
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the epoch.
fn format_http_date(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let text = format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(month - 1) as usize],
        year,
        h,
        m,
        s
    );
    let mut out = [b' '; 29];
    let n = text.len().min(29);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<RequestHead>, HeadError> {
        RequestHead::parse(&mut BytesMut::from(s), 64 << 10)
    }

    #[test]
    fn a_request_head_keeps_its_lines_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            "POST /services/data/v59.0/sobjects/Account?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}GET",
        );
        let h = RequestHead::parse(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.path(), "/services/data/v59.0/sobjects/Account");
        assert_eq!(h.target(), "/services/data/v59.0/sobjects/Account?x=1");
        assert_eq!(h.framing, Framing::Length(2));
        assert_eq!(h.header("x-a"), Some(&b"b"[..]));
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"{}GET");
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for (req, status) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417),
            ("GET / HTTP/2.0\r\n\r\n", 505),
        ] {
            assert_eq!(parse(req).unwrap_err().status, status, "{req:?}");
        }
        let same = parse("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(same.unwrap().unwrap().framing, Framing::Length(3));
    }

    #[test]
    fn connection_persistence_follows_the_version_and_the_connection_header() {
        let h = |s| parse(s).unwrap().unwrap().keep_alive;
        assert!(h("GET / HTTP/1.1\r\n\r\n"));
        assert!(!h("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!h("GET / HTTP/1.0\r\n\r\n"));
        assert!(h("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn an_oversized_or_partial_head() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a").unwrap().is_none());
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(100));
        let e = RequestHead::parse(&mut BytesMut::from(big.as_str()), 64).unwrap_err();
        assert_eq!(e.status, 431);
    }

    #[test]
    fn response_framing() {
        let f = |s: &str, head| {
            ResponseHead::parse(&mut BytesMut::from(s), head, 1 << 16)
                .unwrap()
                .unwrap()
        };
        let r = f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false);
        assert_eq!((r.framing, r.reusable), (Framing::Length(5), true));
        let r = f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(r.framing, Framing::Empty);
        let r = f(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, Framing::Chunked);
        let r = f("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((r.framing, r.reusable), (Framing::UntilClose, false));
        let r = f(
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            false,
        );
        assert_eq!((r.framing, r.reusable), (Framing::Empty, false));
        let r = f("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        assert!(!r.reusable);
        // A head over the limit is refused when it arrives whole, not only when partial.
        let big = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(200));
        assert!(ResponseHead::parse(&mut BytesMut::from(big.as_str()), false, 128).is_err());
    }

    #[test]
    fn chunked_bodies_decode_across_reads_and_bad_ones_are_refused() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        // Fed one byte at a time, the decoder gives the same body and leaves what follows.
        let mut d = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for &b in wire.iter() {
            buf.extend_from_slice(&[b]);
            while let Chunk::Data(x) = d.decode(&mut buf, usize::MAX).unwrap() {
                body.extend_from_slice(&x);
            }
        }
        assert!(d.is_done());
        assert_eq!(body, b"hello world");
        assert_eq!(&buf[..], b"NEXT");
        for bad in [
            &b"ZZ\r\n"[..],
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"5 x\r\n",
            b"1234567890abcdef0\r\n",
        ] {
            let mut d = ChunkedDecoder::default();
            let mut buf = BytesMut::from(bad);
            let r = (0..4).try_for_each(|_| d.decode(&mut buf, usize::MAX).map(|_| ()));
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            &format_http_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(&format_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &format_http_date(1_795_824_000),
            b"Sat, 28 Nov 2026 00:00:00 GMT"
        );
    }

    #[test]
    fn chunk_encoding() {
        let mut out = Vec::new();
        encode_chunk(&mut out, b"hello world, and more: 26b");
        assert_eq!(out, b"1A\r\nhello world, and more: 26b\r\n");
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 1_234_567);
        assert_eq!(out, b"01234567");
    }
}
