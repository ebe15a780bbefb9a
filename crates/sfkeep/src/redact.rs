//! Keeping secrets out of text: what an error, a log line or `sfkeep doctor` shows of a
//! response body or a pasted error.
//!
//! A leaf module (it imports nothing of this crate), so every other module can redact
//! without depending on the error type.

/// At most 120 characters of `body`, with every run of 16 or more token-like characters
/// replaced by `[…]`, so a truncated token response can be shown without its token.
pub fn redacted_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 16 {
            out.push_str("[…]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || "!._-+/=$~".contains(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    let out: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > 120 {
        let cut: String = out.chars().take(120).collect();
        format!("{cut}…")
    } else {
        out
    }
}

/// `text` with every credential-looking value replaced, and nothing else changed: for text a
/// person pasted or a server sent that is shown back whole (`sfkeep doctor`).
///
/// Replaced: Salesforce session ids / access tokens (`00D…!…`, the org id is kept), refresh
/// tokens (`5Aep8…`), JWTs (`eyJ….….…`), the value after `Bearer`, the value of a field named
/// like a credential (`access_token`, `refresh_token`, `sessionId`, `sid`, `client_secret`,
/// `password`, …, as JSON, form, header or XML), and any long random-looking run of letters
/// and digits.
pub fn redact_secrets(text: &str) -> String {
    const KEYS: &[&str] = &[
        "access_token",
        "refresh_token",
        "id_token",
        "sessionid",
        "session_id",
        "sid",
        "client_secret",
        "password",
        "security_token",
        "assertion",
        "authorization",
        "code_verifier",
    ];
    let run_char = |c: char| c.is_ascii_alphanumeric() || "!._-".contains(c);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    // (end byte of the previous run, that run) for `Bearer x` and `key: x`.
    let mut prev: Option<(usize, &str)> = None;
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if !run_char(c) {
            out.push(c);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && run_char(chars[j].1) {
            j += 1;
        }
        let end = chars.get(j).map(|(b, _)| *b).unwrap_or(text.len());
        let run = &text[start..end];
        let between = prev.map(|(e, _)| &text[e..start]).unwrap_or("");
        let after_bearer = prev.is_some_and(|(_, p)| p.eq_ignore_ascii_case("bearer"))
            && !between.is_empty()
            && between.chars().all(char::is_whitespace);
        let after_key = prev.is_some_and(|(_, p)| KEYS.iter().any(|k| p.eq_ignore_ascii_case(k)))
            && between.chars().count() <= 4
            && between.chars().any(|c| "=:\"'>".contains(c))
            && between
                .chars()
                .all(|c| c.is_whitespace() || "=:\"'>".contains(c));
        let valueish =
            run.chars().count() >= 8 && !run.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        match secret_in(run) {
            Some(keep) => {
                out.push_str(&run[..keep]);
                out.push_str("[redacted]");
            }
            None if (after_bearer || after_key) && valueish => out.push_str("[redacted]"),
            None => out.push_str(run),
        }
        prev = Some((end, run));
        i = j;
    }
    out
}

/// A URL (a Redis URL, a proxy URL) with its password replaced by `[redacted]`, for messages;
/// text that is not a URL becomes `an unparsable URL` (it may be a secret pasted in the wrong
/// place).
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("[redacted]"));
            }
            u.to_string()
        }
        Err(_) => "an unparsable URL".into(),
    }
}

/// Where a secret starts in a run of token characters (the bytes before it are kept), or
/// `None` when the run does not look like one.
fn secret_in(run: &str) -> Option<usize> {
    let len = run.chars().count();
    // A session id: a 15- or 18-character org id (00D…), `!`, the secret part.
    if let Some(bang) = run.find('!') {
        let org = &run[..bang];
        let org_id = org.rfind("00D").is_some_and(|o| {
            let id = &org[o..];
            (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if org_id && run.len() - bang > 12 {
            return Some(bang + 1);
        }
        if len >= 32 {
            return Some(0);
        }
    }
    // A refresh token.
    if let Some(at) = run.find("5Aep8")
        && run.len() - at >= 24
    {
        return Some(at);
    }
    // A JWT: three base64url parts, the first a JSON object (`eyJ`).
    if let Some(at) = run.find("eyJ")
        && run[at..].matches('.').count() >= 2
        && run.len() - at >= 24
    {
        return Some(at);
    }
    // Anything long, random-looking and mixed: a key, a secret, a token of another shape.
    let alnum: String = run.chars().filter(char::is_ascii_alphanumeric).collect();
    let digits = alnum.chars().filter(char::is_ascii_digit).count();
    if alnum.len() >= 32 && digits >= 4 && alnum.len() - digits >= 4 {
        return Some(0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_hides_tokens_but_keeps_words() {
        let s = redacted_snippet(
            br#"{"access_token":"00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G","instance_url":"#,
        );
        assert!(!s.contains("AR8AQ"), "{s}");
        assert!(s.contains("access_token"));
        let s = redacted_snippet(b"<html><body>Service Unavailable</body></html>");
        assert_eq!(s, "<html><body>Service Unavailable</body></html>");
    }

    #[test]
    fn redact_secrets_removes_every_credential_shape_and_keeps_the_prose() {
        let sid = "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G.qz_3kT5";
        let rt = "5Aep861z_iWbuBORRQMGJwAMr9TAO17bB5r8NLggLI85E5dKY4fK3";
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIzTVZHOSJ9.c2lnbmF0dXJl";
        for (text, gone) in [
            (
                format!("INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: {sid}"),
                "AR8AQ",
            ),
            (format!("<sessionId>{sid}</sessionId>"), "AR8AQ"),
            (format!("Authorization: OAuth {sid}"), "AR8AQ"),
            (format!(r#"{{"refresh_token":"{rt}"}}"#), "iWbuB"),
            (format!("refresh with {rt} failed"), "iWbuB"),
            (format!("assertion={jwt}&grant_type=x"), "eyJpc3"),
            (format!("sent {jwt}"), "eyJpc3"),
            ("Authorization: Bearer abcd1234efgh".to_owned(), "abcd1234"),
            (
                "curl -H 'Authorization: Bearer sk_live_1234XYZ'".to_owned(),
                "1234XYZ",
            ),
            (
                r#"{"access_token":"opaque-token-123"}"#.to_owned(),
                "opaque",
            ),
            ("password=Hunter2Hunter2".to_owned(), "Hunter2"),
            (
                "client_secret F160A49033DB78167F2838298A012364DCBC151CBA663E14B8537A01DA6620CC"
                    .to_owned(),
                "F160A4",
            ),
        ] {
            let r = redact_secrets(&text);
            assert!(!r.contains(gone), "{text} -> {r}");
            assert!(r.contains("[redacted]"), "{text} -> {r}");
        }
        // The org id of a session id stays: it says which org, and is no secret.
        assert!(redact_secrets(sid).starts_with("00Dx0000000BV7z![redacted]"));
        // Prose, paths, URLs, ids and Salesforce's own words are untouched.
        for keep in [
            "a wrong password or security token; a password change resets the security token too",
            "GET http://127.0.0.1:8080/services/oauth2/userinfo failed",
            "send `Authorization: Bearer <access token>`",
            "queried the org as user 0055gSU0000001eADA",
            r#"OAuth token error `invalid_grant`: "expired access/refresh token""#,
            "LoginHistory 3s ago: \"Invalid Password\" from 127.0.0.1",
            "audit log /tmp/x/org/audit.db: last successful call 2h01m ago",
        ] {
            assert_eq!(redact_secrets(keep), keep);
        }
    }
}
