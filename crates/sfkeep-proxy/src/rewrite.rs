//! The heads that cross the proxy: the client's lines copied to the instance without its
//! credentials and hop-by-hop lines, with the token added; the instance's lines copied back
//! without cookies and framing, `Location` pointed at the proxy. What a token means for these
//! lines is worked out once per token ([`Prepared`]).

use std::sync::{Arc, Mutex};

use http::Uri;
use sfkeep::Token;
use sfkeep::diagnose::api_error::Api;

use crate::h1::{self, RequestHead, ResponseHead, name_is, tokens};
use crate::upstream::Target;

/// Request headers never forwarded: credentials of the client's own, hop-by-hop headers, and
/// what the proxy sets itself.
fn strip_request(name: &[u8]) -> bool {
    // By length first: most lines are compared with nothing.
    let strip: &[&str] = match name.len() {
        2 => &["te"],
        4 => &["host"],
        6 => &["cookie", "expect"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive"],
        13 => &["authorization"],
        14 => &["content-length", "x-sfdc-session"],
        17 => &["transfer-encoding"],
        _ => &[],
    };
    strip.iter().any(|s| name_is(name, s)) || is_proxy_header(name)
}

/// Response headers never passed back: hop-by-hop lines, cookies (the instance's session is
/// the proxy's), and the framing lines (the proxy frames the body it sends; with
/// `keep_length`, a bodiless reply keeps the instance's `Content-Length`).
fn strip_response(name: &[u8], keep_length: bool) -> bool {
    let strip: &[&str] = match name.len() {
        2 => &["te"],
        7 => &["trailer", "upgrade"],
        10 => &["connection", "keep-alive", "set-cookie"],
        14 if !keep_length => &["content-length"],
        17 => &["transfer-encoding"],
        _ => &[],
    };
    strip.iter().any(|s| name_is(name, s)) || is_proxy_header(name)
}

fn is_proxy_header(name: &[u8]) -> bool {
    name.len() > 6 && name[..6].eq_ignore_ascii_case(b"proxy-")
}

/// The header names a `Connection` header lists (hop-by-hop too), other than the usual
/// `keep-alive` and `close`.
fn connection_listed<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<&'a [u8]> {
    headers
        .filter(|(n, _)| name_is(n, "connection"))
        .flat_map(|(_, v)| tokens(v))
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"close")
        })
        .collect()
}

/// A header value a token can be sent in: visible ASCII only.
fn header_safe(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// Where forwarded requests go: the org's instance, or (for the identity URL) the login host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dest {
    Instance,
    Identity,
}

/// One upstream URL, worked out for forwarding.
pub(crate) struct Endpoint {
    /// Where connections go; `Err` says why the URL is not used.
    target: Result<Target, &'static str>,
    /// `Host: …\r\n`.
    host_line: Vec<u8>,
    /// The URL's path, put before the request's own (normally none for the instance; the whole
    /// identity path for the identity URL).
    prefix: String,
}

impl Endpoint {
    fn of(url: &str) -> Self {
        let uri: Option<Uri> = url.parse().ok();
        let target = match uri.as_ref().and_then(Target::of) {
            // Checked again here, not only when the token was granted: a token read from a
            // shared store must not send its secret in clear text either.
            Some(_) if sfkeep::http::check_url("instance URL", url).is_err() => Err(
                "the token's URL uses plain http to a host that is not loopback: the token is never sent in clear text",
            ),
            Some(t) => Ok(t),
            None => Err("the token's URL does not form a valid request URL"),
        };
        let mut host_line = Vec::new();
        if let Some(u) = &uri
            && let Some(host) = u.host()
        {
            let default = match u.scheme_str() {
                Some("https") => 443,
                _ => 80,
            };
            let host = match u.port_u16() {
                Some(p) if p != default => format!("{host}:{p}"),
                _ => host.to_owned(),
            };
            h1::push_header(&mut host_line, b"Host", host.as_bytes());
        }
        let prefix = uri
            .as_ref()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Self {
            target: match target {
                Ok(_) if host_line.is_empty() => {
                    Err("the token's URL does not form a valid request URL")
                }
                t => t,
            },
            host_line,
            prefix,
        }
    }

    /// Where to connect, or why the URL cannot be used.
    pub(crate) fn target(&self) -> Result<&Target, &'static str> {
        self.target.as_ref().map_err(|e| *e)
    }
}

/// What a token means for the requests forwarded with it, worked out once per token rather
/// than per request.
pub(crate) struct Prepared {
    /// The token these were made from (kept so its identity can be compared).
    token: Token,
    /// The instance URL without a trailing slash (for `Location` rewriting).
    pub(crate) base: String,
    instance: Endpoint,
    /// The token's identity URL (`…/id/{org}/{user}`), if it has one.
    identity: Option<Endpoint>,
    /// `Authorization: Bearer …\r\n` (REST) and `X-SFDC-Session: …\r\n` (Bulk 1.0); `None`
    /// if the token cannot be a header value.
    bearer_line: Option<Vec<u8>>,
    session_line: Option<Vec<u8>>,
}

impl Prepared {
    fn new(token: &Token) -> Self {
        let base = token.instance_url().trim_end_matches('/').to_owned();
        let secret = token.access_token().expose_secret();
        let line = |name: &[u8], scheme: &str| {
            header_safe(secret).then(|| {
                let mut l = Vec::new();
                h1::push_header(&mut l, name, format!("{scheme}{secret}").as_bytes());
                l
            })
        };
        Self {
            token: token.clone(),
            instance: Endpoint::of(&base),
            identity: token.record().id_url.as_deref().map(Endpoint::of),
            base,
            bearer_line: line(b"Authorization", "Bearer "),
            session_line: line(b"X-SFDC-Session", ""),
        }
    }

    /// The endpoint for `dest`, or why there is none.
    pub(crate) fn endpoint(&self, dest: Dest) -> Result<&Endpoint, &'static str> {
        match dest {
            Dest::Instance => Ok(&self.instance),
            Dest::Identity => self
                .identity
                .as_ref()
                .ok_or("the proxy's token has no identity URL"),
        }
    }
}

/// The [`Prepared`] lines of the current token: remade only when the token changes.
#[derive(Default)]
pub(crate) struct PreparedCache(Mutex<Option<Arc<Prepared>>>);

impl PreparedCache {
    /// The prepared values for `token`.
    pub(crate) fn get(&self, token: &Token) -> Arc<Prepared> {
        let mut cached = sfkeep::sync::lock(&self.0);
        if let Some(p) = cached.as_ref()
            && std::ptr::eq(p.token.record(), token.record())
        {
            return Arc::clone(p);
        }
        let p = Arc::new(Prepared::new(token));
        *cached = Some(Arc::clone(&p));
        p
    }
}

/// How a forwarded request's body is framed.
#[derive(Clone, Copy)]
pub(crate) enum BodyFraming {
    Length(u64),
    Chunked,
    None,
}

/// Writes the request head for the instance into `out`: the client's method, `target` (the
/// canonical path and the query), its
/// header lines without credentials and hop-by-hop lines, then `Host`, the token and framing.
pub(crate) fn upstream_head(
    out: &mut Vec<u8>,
    head: &RequestHead,
    target: &str,
    endpoint: &Endpoint,
    prepared: &Prepared,
    api: Api,
    framing: BodyFraming,
) -> Result<(), &'static str> {
    out.clear();
    out.extend_from_slice(head.method_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(endpoint.prefix.as_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out.extend_from_slice(&endpoint.host_line);
    let listed = if head.connection_lists_headers {
        connection_listed(head.headers())
    } else {
        Vec::new()
    };
    for (name, value) in head.headers() {
        if strip_request(name)
            || listed.iter().any(|l| l.eq_ignore_ascii_case(name))
            // The session goes in the envelope; compressed faults could not be classified.
            || (api == Api::Soap && name_is(name, "accept-encoding"))
        {
            continue;
        }
        h1::push_header(out, name, value);
    }
    let bad_token = "the access token is not a valid header value";
    match api {
        Api::Rest => out.extend_from_slice(prepared.bearer_line.as_deref().ok_or(bad_token)?),
        Api::Bulk1 => out.extend_from_slice(prepared.session_line.as_deref().ok_or(bad_token)?),
        Api::Soap => {}
    }
    match framing {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            h1::push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyFraming::None => {}
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The instance's response header lines as the client gets them: hop-by-hop lines, cookies
/// and framing dropped (the proxy frames the body it sends), an absolute `Location` on the
/// instance pointed at the proxy. `keep_length`: the reply has no body, so the instance's
/// `Content-Length` is passed on as it is.
pub(crate) fn client_lines(
    out: &mut Vec<u8>,
    proxy_base: &str,
    instance_base: &str,
    resp: &ResponseHead,
    keep_length: bool,
) {
    let listed = if resp.connection_lists_headers {
        connection_listed(resp.headers())
    } else {
        Vec::new()
    };
    for (name, value) in resp.headers() {
        if strip_response(name, keep_length) || listed.iter().any(|l| l.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if name.len() == 8
            && name_is(name, "location")
            && let Some(rest) = value.strip_prefix(instance_base.as_bytes())
            && (rest.is_empty() || rest.starts_with(b"/"))
        {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(proxy_base.as_bytes());
            out.extend_from_slice(rest);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        h1::push_header(out, name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn credentials_hop_by_hop_and_connection_listed_lines_are_not_forwarded() {
        let mut buf = BytesMut::from(
            "GET /services/data/v59.0/limits?x=1 HTTP/1.1\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nAuthorization: Bearer c\r\nHost: 127.0.0.1\r\nProxy-Authorization: x\r\nCookie: sid=abc\r\nX-SFDC-Session: s\r\nAccept: */*\r\nAccept: text/plain\r\n\r\n",
        );
        let head = RequestHead::parse(&mut buf, 1 << 16).unwrap().unwrap();
        let mut out = Vec::new();
        let listed = connection_listed(head.headers());
        for (name, value) in head.headers() {
            if !strip_request(name) && !listed.iter().any(|l| l.eq_ignore_ascii_case(name)) {
                h1::push_header(&mut out, name, value);
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Accept: */*\r\nAccept: text/plain\r\n"
        );
    }

    #[test]
    fn a_token_with_a_line_break_is_never_a_header() {
        assert!(header_safe("00D!abc.DEF_123"));
        assert!(!header_safe("00D!abc\r\nX-Evil: 1"));
        assert!(!header_safe("a b"));
        assert!(!header_safe(""));
    }
}
