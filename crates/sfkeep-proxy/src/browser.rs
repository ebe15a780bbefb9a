//! The browser guard: a loopback listener that acts with the org's credentials must not act for
//! a web page.
//!
//! Any page the user has open can make the browser send "simple" cross-origin requests to
//! `http://127.0.0.1:PORT` — a form POST, a `fetch` in `no-cors` mode with a `text/plain` body —
//! without asking anyone: the page cannot read the answer, but the request is made, and a proxy
//! that injects the org's token would carry it out. Such requests carry marks a browser sets
//! and a page cannot remove: `Origin` (on every cross-origin request other than a plain GET or
//! HEAD, and on every POST) and the Fetch Metadata header `Sec-Fetch-Site`
//! (<https://www.w3.org/TR/fetch-metadata/>). Integrations (curl, requests, jsforce on Node, the
//! Java and .NET SOAP stacks) send neither. So [`BrowserGuard`] refuses:
//! - `OPTIONS`: a CORS preflight, asked for before any request a page could not make alone;
//!   refusing it means such a request is never sent at all;
//! - a request with an `Origin` header, unless the origin is allowed;
//! - a request whose `Sec-Fetch-Site` is anything but `none` (typed in the address bar) or
//!   `same-origin`, unless its `Origin` is allowed.
//!
//! A request that changes state without a body a page could not send (`POST /_sfkeep/reload`)
//! must also carry [`CONTROL_HEADER`]: a header that is not CORS-safelisted, so a browser sends it
//! only after a preflight, which the guard refuses.
//!
//! The guard is framework-free (a method and a header lookup), so every loopback listener sfkeep
//! serves applies the same rules: the proxy, and `sfkeep serve`'s status listener through
//! [`BrowserGuard::check_request`].

use std::fmt;

/// The header a state-changing control request (`POST /_sfkeep/reload`) must carry, with any
/// non-empty value. Browsers send a header like this only after a CORS preflight.
pub const CONTROL_HEADER: &str = "x-sfkeep-control";

/// Refuses requests a browser makes on behalf of a web page (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct BrowserGuard {
    /// Allowed origins, as `scheme://host[:port]` in lowercase.
    allowed: Vec<String>,
}

/// An origin given to [`BrowserGuard::allow_origin`] that is not `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an origin: write it as the browser sends it, scheme://host[:port] with no path (e.g. http://127.0.0.1:3000)"
)]
pub struct InvalidOrigin(pub String);

/// Why the guard refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrowserRefusal {
    /// An `OPTIONS` request (a CORS preflight).
    Preflight,
    /// An `Origin` header naming an origin that is not allowed.
    Origin,
    /// `Sec-Fetch-Site` says a page on another site or origin made the request.
    CrossSite,
    /// A control request without [`CONTROL_HEADER`].
    MissingControlHeader,
}

impl BrowserRefusal {
    /// The status the refusal is answered with: 405 for a preflight, else 403.
    pub fn status(self) -> http::StatusCode {
        match self {
            BrowserRefusal::Preflight => http::StatusCode::METHOD_NOT_ALLOWED,
            _ => http::StatusCode::FORBIDDEN,
        }
    }

    /// A short name for logs and metrics (never a header value).
    pub fn as_str(self) -> &'static str {
        match self {
            BrowserRefusal::Preflight => "preflight",
            BrowserRefusal::Origin => "origin",
            BrowserRefusal::CrossSite => "cross_site",
            BrowserRefusal::MissingControlHeader => "missing_control_header",
        }
    }
}

impl fmt::Display for BrowserRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrowserRefusal::Preflight => {
                "OPTIONS is refused: sfkeep answers no CORS preflight, so a web page cannot use it"
            }
            BrowserRefusal::Origin => {
                "a request from a web page (it carries an Origin header) is refused: sfkeep acts with the org's credentials; allow the origin explicitly if a page must use it"
            }
            BrowserRefusal::CrossSite => {
                "a request a browser made for another site (Sec-Fetch-Site) is refused: sfkeep acts with the org's credentials"
            }
            BrowserRefusal::MissingControlHeader => {
                "a control request must carry the X-Sfkeep-Control header (which a web page cannot send)"
            }
        })
    }
}

impl std::error::Error for BrowserRefusal {}

impl BrowserGuard {
    /// A guard that allows no origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows requests from `origin` (`scheme://host[:port]`, as browsers send it).
    /// Default: no origin is allowed.
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        self.allowed.push(normalise_origin(origin)?);
        Ok(self)
    }

    /// Checks a request given its method and a header lookup (lowercase name → first value).
    pub fn check<'a>(
        &self,
        method: &str,
        header: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<(), BrowserRefusal> {
        if method.eq_ignore_ascii_case("OPTIONS") {
            return Err(BrowserRefusal::Preflight);
        }
        let origin_allowed = match header("origin") {
            Some(o) => {
                if !self.allows(o) {
                    return Err(BrowserRefusal::Origin);
                }
                true
            }
            None => false,
        };
        if let Some(site) = header("sec-fetch-site") {
            let site = site.trim_ascii();
            let same =
                site.eq_ignore_ascii_case(b"none") || site.eq_ignore_ascii_case(b"same-origin");
            if !same && !origin_allowed {
                return Err(BrowserRefusal::CrossSite);
            }
        }
        Ok(())
    }

    /// [`BrowserGuard::check`] for a request that changes state: it must also carry
    /// [`CONTROL_HEADER`].
    pub fn check_control<'a>(
        &self,
        method: &str,
        header: impl Fn(&str) -> Option<&'a [u8]> + Copy,
    ) -> Result<(), BrowserRefusal> {
        self.check(method, header)?;
        match header(CONTROL_HEADER) {
            Some(v) if !v.trim_ascii().is_empty() => Ok(()),
            _ => Err(BrowserRefusal::MissingControlHeader),
        }
    }

    /// [`BrowserGuard::check`] for an `http::Request` (for listeners built on `http` types).
    pub fn check_request<B>(&self, req: &http::Request<B>) -> Result<(), BrowserRefusal> {
        let headers = req.headers();
        self.check(req.method().as_str(), |name| {
            headers.get(name).map(http::HeaderValue::as_bytes)
        })
    }

    fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        let Ok(origin) = normalise_origin(origin) else {
            return false;
        };
        self.allowed.contains(&origin)
    }
}

/// `scheme://host[:port]` in lowercase, or an error for anything else (`null` included: it
/// stands for many unrelated pages, so it is never allowed).
fn normalise_origin(origin: &str) -> Result<String, InvalidOrigin> {
    let bad = || InvalidOrigin(origin.chars().take(100).collect());
    let o = origin.trim();
    let (scheme, rest) = o.split_once("://").ok_or_else(bad)?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !scheme_ok || !host_ok {
        return Err(bad());
    }
    Ok(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        rest.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        g: &BrowserGuard,
        method: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), BrowserRefusal> {
        g.check(method, |n| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_bytes())
        })
    }

    #[test]
    fn integrations_pass_and_pages_do_not() {
        let g = BrowserGuard::new();
        assert_eq!(check(&g, "GET", &[]), Ok(()));
        assert_eq!(check(&g, "POST", &[("content-type", "text/xml")]), Ok(()));
        assert_eq!(check(&g, "GET", &[("sec-fetch-site", "none")]), Ok(()));
        assert_eq!(
            check(&g, "GET", &[("sec-fetch-site", "same-origin")]),
            Ok(())
        );
        assert_eq!(check(&g, "OPTIONS", &[]), Err(BrowserRefusal::Preflight));
        assert_eq!(
            check(&g, "POST", &[("origin", "http://127.0.0.1:9999")]),
            Err(BrowserRefusal::Origin)
        );
        assert_eq!(
            check(&g, "POST", &[("origin", "null")]),
            Err(BrowserRefusal::Origin)
        );
        for site in ["cross-site", "same-site", "other"] {
            assert_eq!(
                check(&g, "GET", &[("sec-fetch-site", site)]),
                Err(BrowserRefusal::CrossSite),
                "{site}"
            );
        }
    }

    #[test]
    fn an_allowed_origin_passes_and_no_other() {
        let g = BrowserGuard::new()
            .allow_origin("HTTP://127.0.0.1:3000/")
            .unwrap();
        let ok = [
            ("origin", "http://127.0.0.1:3000"),
            ("sec-fetch-site", "same-site"),
        ];
        assert_eq!(check(&g, "POST", &ok), Ok(()));
        assert_eq!(
            check(&g, "POST", &[("origin", "http://127.0.0.1:3001")]),
            Err(BrowserRefusal::Origin)
        );
        assert_eq!(check(&g, "OPTIONS", &ok), Err(BrowserRefusal::Preflight));
        for bad in ["null", "127.0.0.1:3000", "http://x/path", "http://", "*"] {
            assert!(BrowserGuard::new().allow_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_requests_need_the_control_header() {
        let g = BrowserGuard::new();
        let lookup = |h: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_bytes())
            }
        };
        assert_eq!(
            g.check_control("POST", lookup(&[])),
            Err(BrowserRefusal::MissingControlHeader)
        );
        assert_eq!(
            g.check_control("POST", lookup(&[(CONTROL_HEADER, "reload")])),
            Ok(())
        );
        let req = http::Request::builder()
            .method("POST")
            .header("Origin", "https://evil.example")
            .body(())
            .unwrap();
        assert_eq!(g.check_request(&req), Err(BrowserRefusal::Origin));
    }
}
