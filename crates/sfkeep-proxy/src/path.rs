//! The request path as the instance would read it, worked out before routing.
//!
//! The router decides from the path whether a request is answered locally (the OAuth token and
//! revoke shims, the SOAP login shim) or forwarded with the org's token. If the proxy read a
//! path one way and Salesforce another, a request meant for a local answer would be forwarded
//! with the token: `/services//oauth2/revoke` would revoke the proxy's own session,
//! `/services/soap/u/59.0` would skip the login shim. So the path is first refused if a server
//! could normalise it out of `/services/` (dot segments, encoded separators, backslashes), then
//! made canonical: runs of `/` collapse to one, and the API prefixes (`services`, `oauth2`,
//! `Soap`, `async`, `data`) are matched without regard to case and spelled one way. The router
//! matches the canonical path, and the canonical path is what is forwarded, so the instance
//! sees the request the router judged.

use std::borrow::Cow;

/// The second segments under `/services/` the router tells apart, in their canonical spelling.
const API_PREFIXES: [&str; 4] = ["oauth2", "Soap", "async", "data"];

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UncleanPath(pub &'static str);

/// The canonical form of `path` (the part of the target before `?`), borrowed when it is
/// already canonical (the usual case: no allocation).
pub(crate) fn canonical(path: &str) -> Result<Cow<'_, str>, UncleanPath> {
    if !is_clean(path) {
        return Err(UncleanPath(
            "the request path has dot segments or encoded separators",
        ));
    }
    let collapsed = collapse_slashes(path);
    let mut segs = collapsed.splitn(4, '/').skip(1);
    let (Some(first), second) = (segs.next(), segs.next()) else {
        return Ok(collapsed);
    };
    let first_name = first.split(';').next().unwrap_or(first);
    if !first_name.eq_ignore_ascii_case("services") {
        return Ok(collapsed);
    }
    // Salesforce is a Java stack: `;params` are dropped from a segment and `%6F` may be an `o`.
    // Neither has any use in these two segments, and either could hide a prefix from the router.
    let hides = |s: &str| s.contains(';') || s.contains('%');
    if hides(first) || second.is_some_and(hides) {
        return Err(UncleanPath(
            "the request path's API prefix carries path parameters or percent-encoding",
        ));
    }
    let second_canon = second.and_then(|s| {
        API_PREFIXES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(s))
            .copied()
    });
    let needs_case = first != "services" || second_canon.is_some_and(|c| Some(c) != second);
    if !needs_case {
        return Ok(collapsed);
    }
    let mut out = String::with_capacity(collapsed.len());
    out.push_str("/services");
    if let Some(second) = second {
        out.push('/');
        out.push_str(second_canon.unwrap_or(second));
    }
    let consumed = 1 + first.len() + second.map_or(0, |s| 1 + s.len());
    out.push_str(&collapsed[consumed..]);
    Ok(Cow::Owned(out))
}

fn collapse_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    Cow::Owned(out)
}

/// Whether no server could normalise `path` to somewhere else: it starts with `/` and has no
/// dot segment, backslash, or percent-encoded `.`, `/`, `\` or NUL.
fn is_clean(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' => return false,
            // Percent-encoded `.`, `/`, `\` and NUL, in either case.
            b'%' => {
                if let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2))
                    && matches!(
                        (h, l.to_ascii_lowercase()),
                        (b'2', b'e' | b'f') | (b'5', b'c') | (b'0', b'0')
                    )
                {
                    return false;
                }
            }
            // A `.` or `..` segment.
            b'.' if b[i - 1] == b'/' => {
                let rest = &b[i + 1..];
                // `;` too: servlet containers drop path parameters, so `..;` is `..` to them.
                let seg_end = |r: &[u8]| r.is_empty() || r[0] == b'/' || r[0] == b';';
                if seg_end(rest) || (rest[0] == b'.' && seg_end(&rest[1..])) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_separators_and_dot_segments_are_not_clean() {
        for bad in [
            "/services/%2e%2e/x",
            "/services/%2E%2E/x",
            "/services/a%2fb",
            "/services/a%2Fb",
            "/services/a%5cb",
            "/services/a%5Cb",
            "/services/a%00",
            "/services/../x",
            "/services/./x",
            "/services/a\\b",
            "/services/..;/apex/x",
            "/services/.;x/y",
            "services/x",
        ] {
            assert!(canonical(bad).is_err(), "{bad}");
        }
        for good in [
            "/services/data/v59.0/query",
            "/services/data/v59.0/query%20x",
            "/services/data/a%2",
            "/services/data/a%",
            "/services/data/a%e2%80%a6",
            "/services/data/..x/y.z",
        ] {
            assert!(matches!(canonical(good), Ok(Cow::Borrowed(_))), "{good}");
        }
    }

    #[test]
    fn the_api_prefix_is_read_as_salesforce_reads_it() {
        for (raw, want) in [
            ("/services//oauth2/token", "/services/oauth2/token"),
            ("//services/oauth2//revoke", "/services/oauth2/revoke"),
            ("/services/OAuth2/token", "/services/oauth2/token"),
            ("/SERVICES/oauth2/token", "/services/oauth2/token"),
            ("/services/soap/u/59.0", "/services/Soap/u/59.0"),
            ("/services/SOAP/c/59.0", "/services/Soap/c/59.0"),
            ("/services/Async/59.0/job", "/services/async/59.0/job"),
            ("/services/DATA/v59.0//query", "/services/data/v59.0/query"),
            ("/services/apexrest/x", "/services/apexrest/x"),
            ("/healthz", "/healthz"),
            ("/services", "/services"),
            ("/services/", "/services/"),
        ] {
            assert_eq!(canonical(raw).unwrap(), want, "{raw}");
        }
        for hidden in [
            "/services/oauth2;x/token",
            "/services;x/oauth2/token",
            "/services/%6Fauth2/token",
            "/services/Soap%2F/u",
        ] {
            assert!(canonical(hidden).is_err(), "{hidden}");
        }
    }
}
