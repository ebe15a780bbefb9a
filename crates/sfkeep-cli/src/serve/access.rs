//! Who may read the status listener: the proxy's trust model, with the proxy's own checks
//! ([`sfkeep_proxy::BrowserGuard`], [`sfkeep_proxy::ClientKey::matches`],
//! [`sfkeep_proxy::host_is_loopback`]) and what a read-only page adds to them:
//!
//! - only `GET` and `HEAD`;
//! - with a client key every request presents it: `Authorization: Bearer KEY`, or HTTP Basic
//!   with the key as the password (so a person's browser can open the page);
//! - without one, `Host` must name a loopback address or `localhost` (a DNS-rebinding page
//!   cannot read the status through its own name);
//! - a request a page of another site makes is refused by the browser guard, except a person
//!   following a link to the page itself (a top-level navigation to `/`: its answer is the
//!   static page, which holds no data; the page's own reads are same-origin).

use base64::Engine as _;
use http::{HeaderMap, Method, Request};
use sfkeep_proxy::{BrowserGuard, ClientKey};

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not GET or HEAD.
    Method,
    /// No (or the wrong) client key.
    Key,
    /// `Host` is not loopback.
    Host,
    /// The browser guard refused it: another site's page made it.
    Browser(sfkeep_proxy::browser::BrowserRefusal),
}

impl Refusal {
    /// The status code and the one-line reason.
    pub fn status_and_reason(self) -> (u16, String) {
        match self {
            Self::Method => (405, "sfkeep serve is read-only: GET and HEAD only".into()),
            Self::Key => (
                401,
                "present the client key: Authorization: Bearer KEY (or Basic with the key as the password)".into(),
            ),
            Self::Host => (
                403,
                "the Host header does not name this loopback listener".into(),
            ),
            Self::Browser(r) => (403, r.to_string()),
        }
    }
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

/// A person following a link to the page (no data in its answer).
fn navigation_to_the_page<B>(req: &Request<B>) -> bool {
    req.uri().path() == "/"
        && req
            .headers()
            .get("sec-fetch-mode")
            .and_then(|v| v.to_str().ok())
            == Some("navigate")
        && !req.headers().contains_key(http::header::ORIGIN)
}

/// Checks one request against `guard` and `key`.
pub fn check<B>(
    req: &Request<B>,
    guard: &BrowserGuard,
    key: Option<&ClientKey>,
) -> Result<(), Refusal> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(Refusal::Method);
    }
    if !navigation_to_the_page(req) {
        guard.check_request(req).map_err(Refusal::Browser)?;
    }
    let headers = req.headers();
    match key {
        Some(k) => match presented(headers) {
            Some(p) if k.matches(&p) => Ok(()),
            _ => Err(Refusal::Key),
        },
        // HTTP/1.0 without Host: the loopback bind is the proof.
        None => match headers.get(http::header::HOST) {
            Some(h) if !sfkeep_proxy::host_is_loopback(h.as_bytes()) => Err(Refusal::Host),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfkeep_proxy::browser::BrowserRefusal;

    fn req(method: Method, path: &str, pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn get(
        path: &str,
        pairs: &[(&'static str, &str)],
        key: Option<&ClientKey>,
    ) -> Result<(), Refusal> {
        check(&req(Method::GET, path, pairs), &BrowserGuard::new(), key)
    }

    #[test]
    fn loopback_without_a_key() {
        for host in ["127.0.0.1:8788", "localhost:8788", "[::1]:8788"] {
            assert_eq!(get("/", &[("host", host)], None), Ok(()), "{host}");
        }
        assert_eq!(
            get("/api/v1/status", &[("host", "evil.example:8788")], None),
            Err(Refusal::Host)
        );
        assert_eq!(
            check(
                &req(Method::POST, "/", &[("host", "127.0.0.1")]),
                &BrowserGuard::new(),
                None
            ),
            Err(Refusal::Method)
        );
    }

    #[test]
    fn browsers_read_only_and_same_origin() {
        let cross = |mode: &str, path: &str| {
            get(
                path,
                &[
                    ("host", "127.0.0.1:1"),
                    ("sec-fetch-site", "cross-site"),
                    ("sec-fetch-mode", mode),
                ],
                None,
            )
        };
        assert_eq!(
            cross("cors", "/api/v1/status"),
            Err(Refusal::Browser(BrowserRefusal::CrossSite))
        );
        assert_eq!(
            cross("no-cors", "/metrics"),
            Err(Refusal::Browser(BrowserRefusal::CrossSite))
        );
        assert_eq!(cross("navigate", "/"), Ok(()));
        assert_eq!(
            cross("navigate", "/api/v1/status"),
            Err(Refusal::Browser(BrowserRefusal::CrossSite))
        );
        // The page's own reads.
        assert_eq!(
            get(
                "/api/v1/events",
                &[("host", "127.0.0.1:1"), ("sec-fetch-site", "same-origin")],
                None
            ),
            Ok(())
        );
        assert_eq!(
            get(
                "/api/v1/status",
                &[("host", "127.0.0.1:1"), ("origin", "http://evil.example")],
                None
            ),
            Err(Refusal::Browser(BrowserRefusal::Origin))
        );
    }

    #[test]
    fn a_key_is_required_when_set() {
        let k = ClientKey::new("a-long-random-client-key");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ops:a-long-random-client-key")
        );
        assert_eq!(
            get("/", &[("host", "10.0.0.5:1")], Some(&k)),
            Err(Refusal::Key)
        );
        assert_eq!(
            get(
                "/",
                &[("authorization", "Bearer a-long-random-client-key")],
                Some(&k)
            ),
            Ok(())
        );
        assert_eq!(get("/", &[("authorization", &basic)], Some(&k)), Ok(()));
        assert_eq!(
            get("/", &[("authorization", "Bearer wrong")], Some(&k)),
            Err(Refusal::Key)
        );
    }
}
