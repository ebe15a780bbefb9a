//! Who may read the status listener, with the proxy's trust model: loopback by default (any
//! local process may read it, as it could read the profile), a client key required off
//! loopback, and read-only to browsers.
//!
//! - With a client key every request presents it: `Authorization: Bearer KEY`, or HTTP Basic
//!   with the key as the password (so a person's browser can open the page); compared in
//!   constant time.
//! - Without one, `Host` must name a loopback address or `localhost` (a DNS-rebinding page
//!   cannot read the status through its own name).
//! - Only `GET` and `HEAD`; a request a page of another site makes (`Sec-Fetch-Site:
//!   cross-site` or `same-site`) is refused unless it is a person following a link to the page
//!   itself (a top-level navigation).

use std::net::IpAddr;

use base64::Engine as _;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not GET or HEAD.
    Method,
    /// No (or the wrong) client key.
    Key,
    /// `Host` is not loopback.
    Host,
    /// A cross-site request that is not a navigation.
    CrossSite,
}

impl Refusal {
    /// The status code and the one-line reason.
    pub fn status_and_reason(self) -> (u16, &'static str) {
        match self {
            Self::Method => (405, "sfkeep serve is read-only: GET and HEAD only"),
            Self::Key => (
                401,
                "present the client key: Authorization: Bearer KEY (or Basic with the key as the password)",
            ),
            Self::Host => (403, "the Host header does not name this loopback listener"),
            Self::CrossSite => (403, "cross-site requests are refused"),
        }
    }
}

/// Constant-time equality of two secrets: compares their SHA-256 digests.
fn same(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The key a request presents, as bearer or as a Basic password.
fn presented(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, rest) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        return text.split_once(':').map(|(_, p)| p.to_owned());
    }
    None
}

fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return true; // HTTP/1.0: the loopback bind is the proof
    };
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks one request.
pub fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    key: Option<&str>,
) -> Result<(), Refusal> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Refusal::Method);
    }
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    if matches!(site, "cross-site" | "same-site") {
        let navigate =
            headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) == Some("navigate");
        if !(navigate && path == "/") {
            return Err(Refusal::CrossSite);
        }
    }
    match key {
        Some(k) => match presented(headers) {
            Some(p) if same(p.as_bytes(), k.as_bytes()) => Ok(()),
            _ => Err(Refusal::Key),
        },
        None if host_is_loopback(headers) => Ok(()),
        None => Err(Refusal::Host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn loopback_without_a_key() {
        assert_eq!(
            check(&Method::GET, "/", &h(&[("host", "127.0.0.1:8788")]), None),
            Ok(())
        );
        assert_eq!(
            check(&Method::GET, "/", &h(&[("host", "localhost:8788")]), None),
            Ok(())
        );
        assert_eq!(
            check(&Method::GET, "/", &h(&[("host", "[::1]:8788")]), None),
            Ok(())
        );
        assert_eq!(
            check(
                &Method::GET,
                "/api/v1/status",
                &h(&[("host", "evil.example:8788")]),
                None
            ),
            Err(Refusal::Host)
        );
        assert_eq!(
            check(&Method::POST, "/", &h(&[("host", "127.0.0.1")]), None),
            Err(Refusal::Method)
        );
    }

    #[test]
    fn browsers_read_only_and_same_origin() {
        let cross = |mode: &str, path: &str| {
            check(
                &Method::GET,
                path,
                &h(&[
                    ("host", "127.0.0.1:1"),
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-mode", mode),
                ]),
                None,
            )
        };
        assert_eq!(cross("cors", "/api/v1/status"), Err(Refusal::CrossSite));
        assert_eq!(cross("no-cors", "/metrics"), Err(Refusal::CrossSite));
        assert_eq!(cross("navigate", "/"), Ok(()));
        assert_eq!(cross("navigate", "/api/v1/status"), Err(Refusal::CrossSite));
    }

    #[test]
    fn a_key_is_required_when_set() {
        let k = Some("a-long-random-client-key");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ops:a-long-random-client-key")
        );
        assert_eq!(
            check(&Method::GET, "/", &h(&[("host", "10.0.0.5:1")]), k),
            Err(Refusal::Key)
        );
        assert_eq!(
            check(
                &Method::GET,
                "/",
                &h(&[("authorization", "Bearer a-long-random-client-key")]),
                k
            ),
            Ok(())
        );
        assert_eq!(
            check(&Method::GET, "/", &h(&[("authorization", &basic)]), k),
            Ok(())
        );
        assert_eq!(
            check(
                &Method::GET,
                "/",
                &h(&[("authorization", "Bearer wrong")]),
                k
            ),
            Err(Refusal::Key)
        );
    }
}
