//! Who may use the proxy: the client key or a proxy-local session, compared in constant time,
//! and the `Host` check that stops DNS rebinding on loopback.

use std::net::IpAddr;

use crate::ct::ct_eq;
use crate::h1::RequestHead;
use crate::shared::Shared;

/// Whether a login password carries the client key (optionally followed by a security token).
pub(crate) fn password_has_key(password: &str, key: &str) -> bool {
    let (p, k) = (password.as_bytes(), key.as_bytes());
    p.len() >= k.len() && ct_eq(&p[..k.len()], k)
}

/// `Host` must name this proxy on loopback (DNS-rebinding guard) unless a client key is set.
pub(crate) fn host_ok(sh: &Shared, head: &RequestHead) -> bool {
    if sh.client_key.is_some() {
        return true;
    }
    let Some(host) = head.host() else {
        return true; // HTTP/1.0: the connection itself is the proof (loopback bind)
    };
    // What clients told the proxy's own URL send: no parsing needed.
    if host == sh.host.as_bytes() {
        return true;
    }
    host_is_loopback(host) || host_ip(host).is_some_and(|ip| ip == sh.addr.ip())
}

/// The host name of a `Host` header value (`name[:port]`, `[v6][:port]`), without brackets.
fn host_name(host: &str) -> &str {
    let name = match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    };
    name.trim_start_matches('[').trim_end_matches(']')
}

fn host_ip(host: &[u8]) -> Option<IpAddr> {
    host_name(std::str::from_utf8(host).ok()?).parse().ok()
}

/// Whether a `Host` header value names a loopback address or `localhost` (with or without a
/// port). A loopback listener without a client key answers only such requests, so a page
/// served under another name that resolves to 127.0.0.1 (DNS rebinding) cannot use it.
pub fn host_is_loopback(host: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(host) else {
        return false;
    };
    host_name(text).eq_ignore_ascii_case("localhost")
        || host_ip(host).is_some_and(|ip| ip.is_loopback())
}

/// The bearer value or `X-SFDC-Session` value a request presents. Credentials are visible
/// ASCII: anything else presents none (and is never sliced as text).
pub(crate) fn presented_credential(head: &RequestHead) -> Option<&str> {
    if let Some(v) = head.header("authorization") {
        let v = v.trim_ascii();
        for scheme in [&b"Bearer "[..], b"OAuth "] {
            if v.len() > scheme.len() && v[..scheme.len()].eq_ignore_ascii_case(scheme) {
                return credential_text(&v[scheme.len()..]);
            }
        }
    }
    head.header("x-sfdc-session").and_then(credential_text)
}

/// A credential's text: visible ASCII, non-empty.
fn credential_text(v: &[u8]) -> Option<&str> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(|b| (0x21..0x7f).contains(b)) {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// Whether a request may use the proxy: anyone without a client key (the credential is not
/// even looked for then), else only with the key or a proxy-local session.
pub(crate) fn authorized(sh: &Shared, head: &RequestHead) -> bool {
    sh.client_key.is_none() || credential_ok(sh, presented_credential(head))
}

/// With a client key: the credential is the key or a proxy-local session. Without: anyone.
pub(crate) fn credential_ok(sh: &Shared, credential: Option<&str>) -> bool {
    let Some(key) = &sh.client_key else {
        return true;
    };
    let Some(c) = credential else {
        return false;
    };
    ct_eq(c.as_bytes(), key.expose().as_bytes()) || sh.sessions.contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_carries_the_key_as_its_prefix() {
        assert!(password_has_key("KEYsecuritytoken", "KEY"));
        assert!(!password_has_key("KE", "KEY"));
        assert!(!password_has_key("XEYsecuritytoken", "KEY"));
    }

    #[test]
    fn loopback_host_names() {
        for h in [
            "127.0.0.1:8788",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8788",
            "[::1]",
            "127.0.0.2",
        ] {
            assert!(host_is_loopback(h.as_bytes()), "{h}");
        }
        for h in [
            "evil.example:80",
            "10.0.0.5:1",
            "[::2]:1",
            "",
            "127.0.0.1.nip.io",
        ] {
            assert!(!host_is_loopback(h.as_bytes()), "{h}");
        }
        assert!(!host_is_loopback(b"\xff"));
    }
}
