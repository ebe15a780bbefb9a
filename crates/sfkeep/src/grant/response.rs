use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::UnixMillis;
use crate::error::{Error, Result, redacted_snippet};
use crate::secret::{AccessToken, ClientSecret, RefreshToken};

/// A successful token response, as Salesforce sends it (`docs/salesforce-wire.md` §1.2). There is no
/// `expires_in`: the lifetime comes from introspection or configuration.
#[derive(Clone, Debug)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// A refresh token, when the grant issues one (with rotation: a new one every refresh).
    pub refresh_token: Option<RefreshToken>,
    /// Where API calls go.
    pub instance_url: String,
    /// The identity URL.
    pub id: Option<String>,
    /// When issued (server clock), if sent.
    pub issued_at: Option<UnixMillis>,
    /// Granted scopes, if sent.
    pub scope: Option<String>,
    /// The session lifetime, when the response told it (SOAP `sessionSecondsValid`).
    pub session_seconds_valid: Option<u64>,
}

/// Parses a 200 token response. `signature` is verified when both it and the secret are present.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    source_name: &str,
    client_secret: Option<&ClientSecret>,
) -> Result<TokenResponse> {
    let malformed = |problem: String| Error::MalformedResponse {
        source_name: source_name.to_owned(),
        problem,
        status,
        snippet: redacted_snippet(body),
    };
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("not a JSON object".into()))?;
    let string = |name: &str| -> Result<Option<String>> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(malformed(format!("field \"{name}\" is not a string"))),
        }
    };
    let access_token = string("access_token")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("missing field \"access_token\"".into()))?;
    let instance_url = string("instance_url")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("missing field \"instance_url\"".into()))?;
    crate::http::check_url("instance_url", &instance_url)?;
    let id = string("id")?;
    let issued_at_raw = match obj.get("issued_at") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(malformed("field \"issued_at\" is not a string".into())),
    };
    let issued_at = match &issued_at_raw {
        None => None,
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| malformed("field \"issued_at\" is not a number".into()))?;
            // Salesforce sends milliseconds; a 10-digit value is seconds from a lenient server.
            Some(UnixMillis(if n < 100_000_000_000 { n * 1000 } else { n }))
        }
    };
    if let (Some(sig), Some(secret), Some(id), Some(issued)) =
        (string("signature")?, client_secret, &id, &issued_at_raw)
        && !verify_signature(secret, id, issued, &sig)
    {
        return Err(malformed(
            "the response signature does not match (HMAC-SHA256 of id + issued_at)".into(),
        ));
    }
    Ok(TokenResponse {
        access_token: AccessToken::new(access_token),
        refresh_token: string("refresh_token")?
            .filter(|s| !s.is_empty())
            .map(RefreshToken::new),
        instance_url,
        id,
        issued_at,
        scope: string("scope")?,
        session_seconds_valid: None,
    })
}

/// `signature == Base64(HMAC-SHA256(client secret, id + issued_at))` (`docs/salesforce-wire.md` §1.9).
pub fn verify_signature(secret: &ClientSecret, id: &str, issued_at: &str, signature: &str) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
    else {
        return false;
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_reference_vector() {
        let secret = ClientSecret::new("1955279925675241571");
        assert!(verify_signature(
            &secret,
            "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
            "1278448832702",
            "/R0tuzu0y7aV2FvHpXdMdeloZ/lWl1OwWrEA7+LOsR8="
        ));
        assert!(!verify_signature(
            &secret,
            "x",
            "1",
            "/R0tuzu0y7aV2FvHpXdMdeloZ/lWl1OwWrEA7+LOsR8="
        ));
    }

    #[test]
    fn parses_the_documented_shapes_and_tolerates_missing_fields() {
        let jwt = br#"{"access_token":"a","scope":"web openid api full","instance_url":"https://x.my.salesforce.com","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer"}"#;
        let r = parse_token_response(200, jwt, "t", None).unwrap();
        assert!(r.issued_at.is_none() && r.refresh_token.is_none());
        let secs = br#"{"access_token":"a","instance_url":"https://x","issued_at":"1278448832"}"#;
        assert_eq!(
            parse_token_response(200, secs, "t", None)
                .unwrap()
                .issued_at,
            Some(UnixMillis(1_278_448_832_000))
        );
    }

    #[test]
    fn bad_bodies_are_typed_errors_without_the_token() {
        for body in [
            &b"<html>Maintenance</html>"[..],
            b"",
            br#"{"access_token":"00Dx!SECRETSECRETSECRETSECRET","instance_url""#,
            br#"{"access_token":5,"instance_url":"https://x"}"#,
            br#"{"access_token":"a"}"#,
            br#"[1,2]"#,
            br#"{"access_token":"a","instance_url":"http://evil.example.com"}"#,
        ] {
            let e = parse_token_response(200, body, "the token endpoint", None).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("SECRETSECRET"), "{shown}");
        }
    }

    #[test]
    fn a_wrong_signature_is_rejected() {
        let body = br#"{"access_token":"a","instance_url":"https://x","id":"i","issued_at":"1","signature":"AAAA"}"#;
        let e = parse_token_response(200, body, "t", Some(&ClientSecret::new("s"))).unwrap_err();
        assert!(e.to_string().contains("signature"));
    }
}
