//! Small HTTP helpers shared by the grants and the client: URL policy and capped body reads.

use url::Url;

use crate::error::{Error, Result};

/// Largest response body sfkeep reads from the token endpoint or an error response.
pub const MAX_AUTH_BODY: usize = 1024 * 1024;

/// Checks the transport policy: `https` anywhere, plain `http` only to a loopback host.
pub fn check_url(what: &str, raw: &str) -> Result<Url> {
    let url =
        Url::parse(raw).map_err(|e| Error::Config(format!("{what} `{raw}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(Error::Config(format!(
            "{what} `{raw}` uses plain http to a non-loopback host; use https"
        ))),
        other => Err(Error::Config(format!(
            "{what} `{raw}` has scheme `{other}`; expected https (or http to loopback)"
        ))),
    }
}

/// The host is 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Reads at most `cap` bytes of a response body; a longer body is an error, not a truncation.
pub async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
    source_name: &str,
) -> Result<Vec<u8>> {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(Error::MalformedResponse {
                        source_name: source_name.to_owned(),
                        problem: format!("body larger than {cap} bytes"),
                        status,
                        snippet: crate::error::redacted_snippet(&body),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Error::transport(
                    format!("reading the body from {source_name}"),
                    &e,
                ));
            }
        }
    }
}

/// The `Date` header of a response, if any.
pub fn date_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("login_url", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("login_url", "http://localhost:1").is_ok());
        assert!(check_url("login_url", "https://login.salesforce.com").is_ok());
        let e = check_url("login_url", "http://login.salesforce.com").unwrap_err();
        assert!(e.to_string().contains("plain http"));
        assert!(check_url("login_url", "ftp://x").is_err());
    }
}
