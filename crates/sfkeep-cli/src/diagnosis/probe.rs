//! The first round of doctor's checks, none of which uses anything up: the stored token at
//! `/services/oauth2/userinfo` (which also gives the server's `Date`, for clock skew), and
//! introspection of the stored access token and of the refresh token the integration uses
//! (docs/salesforce-wire.md §3.1, §3.4). Each returns its notes, so they run concurrently.

use serde_json::Value;
use sfkeep::clock::{Clock, SystemClock, parse_http_date};
use sfkeep::diagnose::evidence::TokenProbe;
use sfkeep::grant::TokenEndpoint;
use sfkeep::grant::introspect::{self, TokenInfo, TokenKind};
use sfkeep::secret::ClientSecret;
use sfkeep::token::TokenRecord;

use crate::config::Profile;

/// What the probe of the stored token found.
pub struct StoredProbe {
    /// The verdict on the stored token.
    pub probe: TokenProbe,
    /// Server minus local clock (ms) from the answer's `Date`.
    pub offset_ms: Option<i64>,
    /// The user id userinfo named, when the token was accepted.
    pub user_id: Option<String>,
    /// What was checked, for the person.
    pub note: String,
}

fn date_offset(resp: &reqwest::Response) -> Option<i64> {
    let date = resp.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    let server = parse_http_date(date)?;
    // `Date` has a one-second resolution: the server's clock is on average half a second
    // past it, and an offset under two seconds is noise.
    let off = server.0 + 500 - SystemClock.now().0;
    Some(if off.abs() < 2_000 { 0 } else { off })
}

/// How often doctor asks again after an answer that says nothing (a 5xx, a 429, a dropped
/// connection): a short 503 storm must not read as a diagnosis. Nothing is retried when the
/// org answers, so a healthy run makes no extra request.
pub const PASSING_RETRIES: u32 = 3;

/// The wait before retry `n` (0-based): 150 ms, doubling.
pub fn retry_delay(n: u32) -> std::time::Duration {
    std::time::Duration::from_millis(150 << n.min(4))
}

/// An answer that says nothing about the token or the org: ask again.
fn passing_status(s: reqwest::StatusCode) -> bool {
    s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// Sends `req`, again up to [`PASSING_RETRIES`] times while the answer is passing (see
/// [`passing_status`]) or the connection fails. The last answer or error is returned.
pub async fn send_retrying(req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    for n in 0..PASSING_RETRIES {
        let Some(attempt) = req.try_clone() else {
            break;
        };
        match attempt.send().await {
            Ok(r) if !passing_status(r.status()) => return Ok(r),
            Err(e) if e.is_builder() => return Err(e),
            _ => tokio::time::sleep(retry_delay(n)).await,
        }
    }
    req.send().await
}

/// Probes the stored token at the instance's userinfo endpoint (or, without a token, asks the
/// login host for its `Date`). A 401 or 403 refuses the token; any other failure (a 5xx, a
/// 429, a network error) says nothing about it.
pub async fn stored_token(
    http: &reqwest::Client,
    p: &Profile,
    rec: Option<&TokenRecord>,
) -> StoredProbe {
    let host = rec.map(|r| r.instance_url.as_str()).unwrap_or(&p.login_url);
    let url = format!("{}/services/oauth2/userinfo", host.trim_end_matches('/'));
    let mut req = http.get(&url);
    if let Some(r) = rec {
        req = req.bearer_auth(r.access_token.expose_secret());
    }
    let resp = match send_retrying(req).await {
        Ok(r) => r,
        Err(e) => {
            return StoredProbe {
                probe: TokenProbe::Unreachable(format!("GET {url} failed: {e}")),
                offset_ms: None,
                user_id: None,
                note: format!("probe failed: GET {url}: {e}"),
            };
        }
    };
    let offset_ms = date_offset(&resp);
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(2000).collect();
    let (probe, user_id, note) = match (rec.is_some(), status) {
        (false, _) => (TokenProbe::Missing, None, "no token is stored".to_owned()),
        (true, 200..=299) => {
            let uid = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("user_id").and_then(Value::as_str).map(str::to_owned));
            (
                TokenProbe::Alive,
                uid,
                "the stored token is accepted at /services/oauth2/userinfo".to_owned(),
            )
        }
        (true, 401 | 403) => (
            TokenProbe::Rejected { status, body },
            None,
            format!("the stored token is refused at /services/oauth2/userinfo (HTTP {status})"),
        ),
        (true, _) => (
            TokenProbe::Unreachable(format!(
                "GET {url} answered HTTP {status}, which says nothing about the token"
            )),
            None,
            format!(
                "the probe of the stored token got HTTP {status} from /services/oauth2/userinfo (not an answer about the token)"
            ),
        ),
    };
    StoredProbe {
        probe,
        offset_ms,
        user_id,
        note,
    }
}

/// The profile's consumer key and secret, when introspection is possible at all.
pub fn introspection_client(p: &Profile) -> Option<(String, ClientSecret)> {
    let cid = p.client_id.clone()?;
    let secret = p
        .optional_secret(&p.client_secret, "client_secret")
        .ok()
        .flatten()?;
    Some((cid, ClientSecret::new(secret.as_str())))
}

/// The introspection endpoint of the profile's login host.
pub fn endpoint(p: &Profile, http: &reqwest::Client) -> Option<TokenEndpoint> {
    TokenEndpoint::with_client(
        &p.login_url,
        sfkeep::clock::ServerClock::new(std::sync::Arc::new(SystemClock)),
        http.clone(),
    )
    .ok()
}

/// Introspects `token` (never using it). `None`: not asked (no client secret). `Some(Err)`:
/// asked, no usable answer (the text says why).
pub async fn introspect(
    ep: Option<&TokenEndpoint>,
    client: Option<&(String, ClientSecret)>,
    token: Option<&str>,
    kind: TokenKind,
) -> Option<Result<Option<TokenInfo>, String>> {
    let (ep, (cid, secret), token) = (ep?, client?, token?);
    Some(
        introspect::token_info(ep, cid, secret, token, kind)
            .await
            .map_err(|e| e.to_string()),
    )
}
