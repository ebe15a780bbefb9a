//! What the proxy answers itself: the SOAP login and OAuth token shims, revoke, `/healthz`,
//! `/metrics` and reload.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use sha2::Sha256;

use crate::auth::{credential_ok, password_has_key, presented_credential};
use crate::body::{self, Body};
use crate::ct::ct_eq;
use crate::h1::RequestHead;
use crate::respond::{Shape, error_response, unauthorized};
use crate::shared::Shared;
use crate::soap;
use crate::stats::Counter;

/// The largest token request read.
const MAX_TOKEN_REQUEST: usize = 64 << 10;

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(body::full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

fn xml(status: StatusCode, text: String) -> Response<Body> {
    let mut r = Response::new(body::full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    r
}

/// `(orgId, userId)` from the token's identity URL (`…/id/{org}/{user}`).
pub(crate) fn ids(token: &sfkeep::Token) -> (String, String) {
    let mut org = "00D000000000000AAA".to_owned();
    let mut user = "005000000000000AAA".to_owned();
    if let Some(id) = &token.record().id_url {
        let mut parts = id.trim_end_matches('/').rsplit('/');
        if let (Some(u), Some(o), Some("id")) = (parts.next(), parts.next(), parts.next()) {
            user = u.to_owned();
            org = o.to_owned();
        }
    }
    (org, user)
}

fn username_ok(sh: &Shared, username: &str) -> bool {
    match &sh.expected_username {
        Some(want) => want.eq_ignore_ascii_case(username.trim()),
        None => true,
    }
}

/// A partner/enterprise `login()`, answered with a proxy-local session.
pub(crate) async fn soap_login(
    sh: &Arc<Shared>,
    path: &str,
    username: String,
    password: String,
) -> Response<Body> {
    let key_ok = match &sh.client_key {
        Some(k) => password_has_key(&password, k.expose()),
        None => true,
    };
    if !key_ok || !username_ok(sh, &username) {
        sh.stats.inc(Counter::unauthorized);
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            soap::fault(
                "INVALID_LOGIN",
                "Invalid username, password, security token; or user locked out.",
                true,
                soap::fault_namespace(path),
            ),
        );
    }
    let token = match sh.manager.token().await {
        Ok(t) => t,
        Err(e) => {
            sh.stats.inc(Counter::upstream_errors);
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Shape::Soap,
                "SFKEEP_NO_TOKEN",
                &format!("sfkeep proxy cannot get a token for the org: {e}; run `sfkeep doctor`"),
            );
        }
    };
    let mut segs = path.trim_start_matches("/services/Soap/").split('/');
    let kind = match segs.next() {
        Some("c") => "c",
        _ => "u",
    };
    let version = segs
        .next()
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .unwrap_or(sfkeep::client::DEFAULT_API_VERSION);
    let (org, user_id) = ids(&token);
    let session = sh.sessions.issue(&org);
    let rec = token.record();
    let seconds = rec.expires_at.since(rec.issued_at).as_secs().max(60);
    let org15: String = org.chars().take(15).collect();
    let username = sh.expected_username.clone().unwrap_or(username);
    let namespace = if kind == "c" {
        "urn:enterprise.soap.sforce.com"
    } else {
        "urn:partner.soap.sforce.com"
    };
    sh.stats.inc(Counter::local_logins);
    xml(
        StatusCode::OK,
        soap::login_response(&soap::LoginResult {
            namespace,
            server_url: &format!("{}/services/Soap/{kind}/{version}/{org15}", sh.base_url),
            metadata_server_url: &format!("{}/services/Soap/m/{version}/{org15}", sh.base_url),
            session_id: &session,
            user_id: &user_id,
            org_id: &org,
            username: &username,
            session_seconds_valid: seconds,
        }),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

/// `POST /services/oauth2/token` (password, refresh_token, JWT bearer or client_credentials
/// grant), answered with a
/// proxy-local token whose `instance_url` is the proxy.
pub(crate) async fn token_shim(sh: &Arc<Shared>, body: Body) -> Response<Body> {
    let bytes: Bytes = match body::read_all(body, MAX_TOKEN_REQUEST).await {
        Ok(Some(b)) => b,
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
            );
        }
    };
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&bytes) {
        Ok(f) => f,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body is not a form",
            );
        }
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let key = sh.client_key.as_ref().map(|k| k.expose());
    let secret_is_key = |v: Option<&str>| match (key, v) {
        (Some(k), Some(v)) => ct_eq(v.as_bytes(), k.as_bytes()),
        _ => false,
    };
    let authenticated = match field("grant_type") {
        Some("password") => {
            username_ok(sh, field("username").unwrap_or(""))
                && match key {
                    None => true,
                    Some(k) => {
                        password_has_key(field("password").unwrap_or(""), k)
                            || secret_is_key(field("client_secret"))
                    }
                }
        }
        // JWT bearer and client credentials: the client's assertion or secret authenticates it
        // to the proxy at most, and is never forwarded; the answer carries the proxy's session.
        // The assertion's subject must be the profile's user, as a password login's username
        // must; with a client key, the key comes as `client_secret`.
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let subject = field("assertion").and_then(jwt_subject);
            subject.as_deref().is_some_and(|s| username_ok(sh, s))
                && (key.is_none() || secret_is_key(field("client_secret")))
        }
        Some("client_credentials") => key.is_none() || secret_is_key(field("client_secret")),
        Some("refresh_token") => match key {
            None => true,
            Some(_) => {
                secret_is_key(field("client_secret"))
                    || secret_is_key(field("refresh_token"))
                    || field("refresh_token").is_some_and(|r| sh.sessions.contains(r))
            }
        },
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            );
        }
    };
    if !authenticated {
        sh.stats.inc(Counter::unauthorized);
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "authentication failure",
        );
    }
    let token = match sh.manager.token().await {
        Ok(t) => t,
        Err(e) => {
            sh.stats.inc(Counter::upstream_errors);
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &format!("sfkeep proxy cannot get a token for the org: {e}"),
            );
        }
    };
    let (org, user) = ids(&token);
    let access = sh.sessions.issue(&org);
    let id = format!("{}/id/{org}/{user}", sh.base_url);
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&sh.hmac_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    sh.stats.inc(Counter::local_logins);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": access,
            "instance_url": sh.base_url,
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }),
    )
}

/// The `sub` claim of a JWT, read without checking its signature (the proxy cannot: it does not
/// hold the client's certificate, and it does not need to — the assertion never leaves it).
fn jwt_subject(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")?.as_str().map(str::to_owned)
}

/// `/services/oauth2/revoke`: forgets a proxy-local credential; never reaches Salesforce.
pub(crate) async fn revoke(sh: &Arc<Shared>, head: &RequestHead, body: Body) -> Response<Body> {
    let query_token = head
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|f| f.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v));
    let header_cred = presented_credential(head).map(str::to_owned);
    let form_token = match body::read_all(body, MAX_TOKEN_REQUEST).await {
        Ok(Some(b)) => serde_urlencoded::from_bytes::<Vec<(String, String)>>(&b)
            .ok()
            .and_then(|f| f.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v)),
        _ => None,
    };
    let Some(token) = form_token.or(query_token).or(header_cred) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "this token type is not supported",
        );
    };
    if !credential_ok(sh, Some(&token)) {
        return unauthorized(sh, Shape::Rest);
    }
    sh.sessions.remove(&token);
    Response::new(body::empty())
}

/// `/healthz`: the token's state, the store's and the org's (see [`crate::health`]); never the
/// token. 503 with the reasons when not ok.
pub(crate) async fn healthz(sh: &Arc<Shared>) -> Response<Body> {
    let h = crate::health::check(
        &sh.manager,
        sh.store.as_deref(),
        sh.org_reach.last_failure(),
    )
    .await;
    let mut body = h.body;
    body["proxy"] =
        serde_json::json!({ "listen": sh.addr.to_string(), "client_key": sh.client_key.is_some() });
    json(
        if h.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

/// `/metrics`: Prometheus text.
pub(crate) fn metrics(sh: &Arc<Shared>) -> Response<Body> {
    let mut r = Response::new(body::full(sh.stats.prometheus()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `POST /_sfkeep/reload`: a forced refresh (what `sfkeep recover` and SIGHUP do).
pub(crate) async fn reload(sh: &Arc<Shared>) -> Response<Body> {
    sh.stats.inc(Counter::reloads);
    match sh.manager.force_refresh().await {
        Ok(t) => json(
            StatusCode::OK,
            &serde_json::json!({ "reloaded": true, "generation": t.generation() }),
        ),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "reloaded": false, "error": e.to_string() }),
        ),
    }
}
