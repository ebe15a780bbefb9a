//! The OAuth 2.0 endpoints: `/services/oauth2/token` (every grant Salesforce offers that an
//! integration uses), `/authorize`, `/introspect` and `/revoke`.
//!
//! Success bodies follow docs/salesforce-wire.md §1.2 grant by grant (never `expires_in`;
//! `issued_at` in milliseconds as a string; `signature` = Base64(HMAC-SHA256(consumer
//! secret, id + issued_at))). Errors are §2's `400 {"error","error_description"}`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::Duration;

use crate::formats;
use crate::ids;
use crate::state::{AuthCode, DeviceRequest, Inner, Org, RefreshPolicy, Session, login_status};
use crate::wire::{self, RawBody};

/// The latency an injected fault adds to the token endpoint. The token handler applies it
/// itself, *after* marking a refresh token as in flight, so that a slow token endpoint
/// reproduces Salesforce's refusal of a concurrent second refresh.
#[derive(Clone, Copy, Default)]
pub struct TokenLatency(pub std::time::Duration);

/// LoginHistory.LoginType of OAuth logins (§9, RECORDED forceworkbench#772).
const OAUTH_LOGIN_TYPE: &str = "Remote Access 2.0";
/// Audiences Salesforce accepts in a JWT bearer assertion besides the org's own login URL.
const STANDARD_AUDIENCES: &[&str] = &[
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// Authorization-code and device-code lifetime.
const CODE_TTL_SECS: i64 = 15 * 60;

/// A token-endpoint error (§2).
#[derive(Debug)]
pub struct TokenError {
    /// `error`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

fn err(error: &'static str, description: &str) -> TokenError {
    TokenError {
        error,
        description: description.to_owned(),
    }
}

fn expired_token() -> TokenError {
    err("invalid_grant", "expired access/refresh token")
}
fn auth_failure() -> TokenError {
    err("invalid_grant", "authentication failure")
}
fn invalid_assertion() -> TokenError {
    err("invalid_grant", "invalid assertion")
}
fn expired_code() -> TokenError {
    err("invalid_grant", "expired authorization code")
}
fn bad_client_id() -> TokenError {
    err("invalid_client_id", "client identifier invalid")
}
fn bad_client() -> TokenError {
    err("invalid_client", "invalid client credentials")
}
fn unsupported_grant() -> TokenError {
    err("unsupported_grant_type", "grant type not supported")
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        wire::token_error(self.error, &self.description)
    }
}

/// `signature` of a token response (§1.9).
pub fn signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Form parameters of a request body. `None` when the body is not a form (a JSON body is
/// what §2 records as "grant type not supported").
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.to_ascii_lowercase().contains("json") {
        return None;
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok()
}

fn param<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    ids::pair(p, key).filter(|v| !v.is_empty())
}

/// Client id and secret from HTTP Basic or the body (§1.1).
fn client_auth(headers: &HeaderMap, p: &[(String, String)]) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        && let Some((id, secret)) = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())))
    {
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return (Some(dec(&id)), Some(dec(&secret)));
    }
    (
        param(p, "client_id").map(str::to_owned),
        param(p, "client_secret").map(str::to_owned),
    )
}

/// Constant-time comparison of secrets (`subtle`; only the length may differ in time).
pub fn secret_eq(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

fn app_for(inner: &Inner, client_id: Option<&str>) -> Result<usize, TokenError> {
    client_id
        .and_then(|c| inner.app_by_client_id(c))
        .ok_or_else(bad_client_id)
}

fn check_secret(
    inner: &Inner,
    ai: usize,
    secret: Option<&str>,
    required: bool,
) -> Result<(), TokenError> {
    match secret {
        Some(s) if secret_eq(s, &inner.apps[ai].client_secret) => Ok(()),
        Some(_) => Err(bad_client()),
        None if required => Err(bad_client()),
        None => Ok(()),
    }
}

/// The checks every login makes once the user is known; each outcome writes LoginHistory.
fn admit(
    org: &Org,
    inner: &mut Inner,
    ui: usize,
    ai: usize,
    peer: IpAddr,
) -> Result<(), TokenError> {
    let now = inner.now();
    let user_id = inner.users[ui].id.clone();
    let app_name = inner.apps[ai].name.clone();
    let (status, error) = if !inner.users[ui].active {
        (
            login_status::INACTIVE,
            Some(err("invalid_grant", "inactive user")),
        )
    } else if inner.users[ui].frozen {
        // UNVERIFIED: the token error for a frozen user is not recorded; Salesforce treats a
        // frozen user like a failed login, so we answer "authentication failure".
        (login_status::FROZEN, Some(auth_failure()))
    } else if !inner.network.login_allowed(peer) {
        (
            login_status::RESTRICTED_IP,
            Some(err("invalid_grant", "ip restricted")),
        )
    } else if !inner.rate_limit_ok(&user_id, now) {
        // UNVERIFIED: `rate_limit_exceeded` is a documented code; its description is not recorded.
        (
            login_status::RATE_EXCEEDED,
            Some(err("rate_limit_exceeded", "ip/login rate exceeded")),
        )
    } else {
        (login_status::SUCCESS, None)
    };
    inner.log_login(
        &org.pod,
        &org.base_url,
        &user_id,
        peer,
        status,
        OAUTH_LOGIN_TYPE,
        &app_name,
    );
    match error {
        Some(e) => Err(e),
        None => {
            inner.users[ui].last_login = Some(now);
            Ok(())
        }
    }
}

/// Which fields a grant's success body carries (§1.2).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    AuthorizationCode,
    Refresh,
    Jwt,
    ClientCredentials,
    Password,
    Device,
}

/// Starts a session for the user and app and builds the success body.
#[allow(clippy::too_many_arguments)]
fn issue(
    org: &Org,
    inner: &mut Inner,
    ui: usize,
    ai: usize,
    peer: IpAddr,
    shape: Shape,
    family: Option<u64>,
    refresh_token: Option<String>,
) -> Value {
    let now = inner.now();
    let token = org.new_access_token();
    let app = &inner.apps[ai];
    let client_id = app.client_id.clone();
    let secret = app.client_secret.clone();
    let scope = app.scope().to_owned();
    let api = app.policy.api_scope;
    let user_id = inner.users[ui].id.clone();
    let session = Session {
        id: inner.next_id("0Ak", &org.pod),
        token: token.clone(),
        user_id: user_id.clone(),
        client_id: Some(client_id.clone()),
        created: now,
        last_modified: now,
        timeout_secs: inner.timeout_for(Some(&client_id)),
        source_ip: peer,
        session_type: "Oauth2",
        login_type: OAUTH_LOGIN_TYPE,
        api,
        scope: scope.clone(),
        family,
    };
    inner.issued_access.push(token.clone());
    inner.sessions.insert(token.clone(), session);

    let id = org.identity_url(&user_id);
    let issued_at = ids::epoch_ms(now).to_string();
    let mut body = Map::new();
    body.insert("access_token".into(), json!(token));
    if let Some(rt) = refresh_token {
        body.insert("refresh_token".into(), json!(rt));
    }
    // The JWT bearer sample (§1.5, DOC) has neither signature nor issued_at.
    if shape != Shape::Jwt {
        body.insert(
            "signature".into(),
            json!(signature(&secret, &id, &issued_at)),
        );
    }
    body.insert("scope".into(), json!(scope));
    body.insert("instance_url".into(), json!(org.base_url));
    body.insert("id".into(), json!(id));
    body.insert("token_type".into(), json!("Bearer"));
    if shape != Shape::Jwt {
        body.insert("issued_at".into(), json!(issued_at));
    }
    Value::Object(body)
}

/// Removes a refresh token from the in-flight set when its request ends, however it ends.
struct InflightGuard {
    org: Arc<Org>,
    token: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.org.lock().inflight_refresh.remove(&self.token);
    }
}

fn grant_stat(grant: &str) -> &'static str {
    match grant {
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => "jwt_bearer",
        "client_credentials" => "client_credentials",
        "password" => "password",
        "device" => "device",
        _ => "unsupported",
    }
}

/// `POST /services/oauth2/token`. Every answer, success or error, is in the format the
/// request asks for (`format` in the body, else in the query string, else `Accept`; §1.1).
///
/// The server runs it in a task of its own (`server::faults`): it completes even when the
/// client has gone away, as Salesforce does (docs/fake-org.md, "Faults").
pub async fn token(
    State(org): State<Arc<Org>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    latency: Option<Extension<TokenLatency>>,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let latency = latency.map(|Extension(l)| l.0).unwrap_or_default();
    let params = parse_form(&headers, &body);
    let query = ids::query_pairs(uri.query());
    let format_param = params
        .as_deref()
        .and_then(|p| param(p, "format"))
        .or_else(|| param(&query, "format"));
    let fmt = formats::negotiate(format_param, &headers);
    let grant = params
        .as_deref()
        .and_then(|p| param(p, "grant_type"))
        .unwrap_or("")
        .to_owned();
    let device_authorization = grant.is_empty()
        && params.as_deref().and_then(|p| param(p, "response_type")) == Some("device_code");
    let stat = if device_authorization {
        "device"
    } else {
        grant_stat(&grant)
    };
    org.lock().count_token_request(stat);

    let mut _guard = None;
    if grant == "refresh_token"
        && let Some(rt) = params.as_deref().and_then(|p| param(p, "refresh_token"))
    {
        let mut inner = org.lock();
        if !inner.inflight_refresh.insert(rt.to_owned()) {
            inner.stats.token_errors += 1;
            // UNVERIFIED: exact body not recorded (Salesforce refuses a concurrent refresh
            // with the same token since Summer '24).
            return formats::token_error(
                "invalid_grant",
                "Token request is already being processed",
                fmt,
            );
        }
        drop(inner);
        _guard = Some(InflightGuard {
            org: org.clone(),
            token: rt.to_owned(),
        });
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let mut inner = org.lock();
    let result = match params.as_deref() {
        None => Err(unsupported_grant()),
        Some(p) if device_authorization => device_authorize(&org, &mut inner, p),
        Some(p) => {
            let (id, secret) = client_auth(&headers, p);
            let (id, secret) = (id.as_deref(), secret.as_deref());
            let peer = peer.ip();
            match grant.as_str() {
                "authorization_code" => grant_code(&org, &mut inner, p, id, secret, peer),
                "refresh_token" => grant_refresh(&org, &mut inner, p, id, secret, peer),
                "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                    grant_jwt(&org, &mut inner, p, peer)
                }
                "client_credentials" => {
                    grant_client_credentials(&org, &mut inner, id, secret, peer)
                }
                "password" => grant_password(&org, &mut inner, p, id, secret, peer),
                "device" => grant_device(&org, &mut inner, p, id, peer),
                _ => Err(unsupported_grant()),
            }
        }
    };
    match result {
        Ok(v) => formats::token_response(StatusCode::OK, &v, fmt),
        Err(e) => {
            inner.stats.token_errors += 1;
            formats::token_error(e.error, &e.description, fmt)
        }
    }
}

fn grant_code(
    org: &Org,
    inner: &mut Inner,
    p: &[(String, String)],
    id: Option<&str>,
    secret: Option<&str>,
    peer: IpAddr,
) -> Result<Value, TokenError> {
    let ai = app_for(inner, id)?;
    let code = param(p, "code").ok_or_else(expired_code)?;
    // Codes are single use: taken out before any check, so a failed exchange burns it too.
    let c = inner.codes.remove(code).ok_or_else(expired_code)?;
    let now = inner.now();
    if c.client_id != inner.apps[ai].client_id || now - c.created > Duration::seconds(CODE_TTL_SECS)
    {
        return Err(expired_code());
    }
    if let Some(expected) = &c.redirect_uri
        && param(p, "redirect_uri") != Some(expected.as_str())
    {
        // UNVERIFIED wording.
        return Err(err(
            "invalid_grant",
            "redirect_uri must match configuration",
        ));
    }
    match &c.code_challenge {
        Some(challenge) => {
            let verifier = param(p, "code_verifier").unwrap_or("");
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.is_empty() || !secret_eq(&computed, challenge) {
                // "Invalid Code Verifier" per a Salesforce support statement; JSON shape UNVERIFIED.
                return Err(err("invalid_grant", "invalid code verifier"));
            }
            // A public client sends no secret; a confidential one may.
            check_secret(inner, ai, secret, false)?;
        }
        None => check_secret(inner, ai, secret, true)?,
    }
    let ui = inner.user_by_id(&c.user_id).ok_or_else(auth_failure)?;
    admit(org, inner, ui, ai, peer)?;
    let scope = inner.apps[ai].scope().to_owned();
    let client_id = inner.apps[ai].client_id.clone();
    let user_id = inner.users[ui].id.clone();
    let (family, rt) = inner.new_family(&client_id, &user_id, &scope, now);
    Ok(issue(
        org,
        inner,
        ui,
        ai,
        peer,
        Shape::AuthorizationCode,
        Some(family),
        Some(rt),
    ))
}

/// Whether a family's refresh token has expired under `policy` at `now`.
fn policy_expired(
    policy: &RefreshPolicy,
    created: time::OffsetDateTime,
    last_used: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> bool {
    match policy {
        RefreshPolicy::ValidUntilRevoked => false,
        RefreshPolicy::ImmediatelyExpire => true,
        RefreshPolicy::ExpireAfterSeconds(n) => now - created >= Duration::seconds(*n as i64),
        RefreshPolicy::ExpireIfUnusedSeconds(n) => now - last_used >= Duration::seconds(*n as i64),
    }
}

fn grant_refresh(
    org: &Org,
    inner: &mut Inner,
    p: &[(String, String)],
    id: Option<&str>,
    secret: Option<&str>,
    peer: IpAddr,
) -> Result<Value, TokenError> {
    let ai = app_for(inner, id)?;
    // The secret is optional for the refresh flow (public clients such as the CLI's device
    // login refresh without one), but a wrong one is refused.
    check_secret(inner, ai, secret, false)?;
    let rt = param(p, "refresh_token").ok_or_else(expired_token)?;
    let (family_id, rotated_out) = inner
        .refresh
        .get(rt)
        .map(|e| (e.family, e.rotated_out))
        .ok_or_else(expired_token)?;
    let now = inner.now();
    let policy = inner.apps[ai].policy.refresh_token_policy.clone();
    let fam = inner.families.get(&family_id).ok_or_else(expired_token)?;
    if fam.client_id != inner.apps[ai].client_id || fam.revoked {
        return Err(expired_token());
    }
    if rotated_out {
        // §8.2: reuse of a rotated-out token revokes the current one and its access tokens.
        inner.stats.refresh_token_reuse_detected += 1;
        inner.revoke_family(family_id);
        return Err(expired_token());
    }
    if policy_expired(&policy, fam.created, fam.last_used, now) {
        return Err(expired_token());
    }
    let user_id = fam.user_id.clone();
    let ui = inner.user_by_id(&user_id).ok_or_else(expired_token)?;
    admit(org, inner, ui, ai, peer)?;
    if let Some(f) = inner.families.get_mut(&family_id) {
        f.last_used = now;
        f.use_count += 1;
    }
    let new_rt = inner.apps[ai]
        .policy
        .rotate_refresh_tokens
        .then(|| inner.rotate(family_id));
    Ok(issue(
        org,
        inner,
        ui,
        ai,
        peer,
        Shape::Refresh,
        Some(family_id),
        new_rt,
    ))
}

/// A JWT `exp`, in seconds since the epoch. Salesforce takes it as a number or as a string of
/// digits (simple-salesforce writes a string) and sets no upper bound: the Salesforce CLI
/// (sfdx-core) writes `Date.now() + 300`, milliseconds, which read as seconds is a date
/// thousands of years ahead, and logs in fine (docs/salesforce-jwt-bearer.md). Only an `exp`
/// already past is refused.
fn jwt_exp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// The unverified payload of a JWT (to find the app whose key verifies it).
fn jwt_payload(assertion: &str) -> Option<Value> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn grant_jwt(
    org: &Org,
    inner: &mut Inner,
    p: &[(String, String)],
    peer: IpAddr,
) -> Result<Value, TokenError> {
    let assertion = param(p, "assertion").ok_or_else(invalid_assertion)?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid_assertion())?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(invalid_assertion());
    }
    let claims = jwt_payload(assertion).ok_or_else(invalid_assertion)?;
    let iss = claims.get("iss").and_then(Value::as_str);
    let ai = app_for(inner, iss)?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(inner.apps[ai].public_key_pem.as_bytes())
        .map_err(|_| invalid_assertion())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // exp and aud are checked below against the org's clock and URLs.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|_| invalid_assertion())?;

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let aud_ok = audiences.iter().any(|a| {
        let a = a.trim_end_matches('/');
        a == org.base_url || STANDARD_AUDIENCES.contains(&a)
    });
    if !aud_ok {
        return Err(err("invalid_grant", "Audience validation failed"));
    }
    let now = inner.now().unix_timestamp();
    let exp = claims
        .get("exp")
        .and_then(jwt_exp)
        .ok_or_else(invalid_assertion)?;
    if exp <= now {
        // RECORDED for the JWT flow (newrelic-salesforce-exporter#31); that an expired
        // assertion is what triggers it is our reading.
        return Err(expired_code());
    }
    if let Some(jti) = claims.get("jti").and_then(Value::as_str)
        && !inner.used_jti.insert(jti.to_owned())
    {
        return Err(err("invalid_request", "jti already in use"));
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let ui = inner.user_by_name(sub).ok_or_else(invalid_assertion)?;
    if !inner.apps[ai].policy.jwt_preapproved {
        return Err(err("invalid_grant", "user hasn't approved this consumer"));
    }
    admit(org, inner, ui, ai, peer)?;
    Ok(issue(org, inner, ui, ai, peer, Shape::Jwt, None, None))
}

fn grant_client_credentials(
    org: &Org,
    inner: &mut Inner,
    id: Option<&str>,
    secret: Option<&str>,
    peer: IpAddr,
) -> Result<Value, TokenError> {
    let ai = app_for(inner, id)?;
    check_secret(inner, ai, secret, true)?;
    // The app's "Run As" user is the integration user.
    admit(org, inner, 0, ai, peer)?;
    Ok(issue(
        org,
        inner,
        0,
        ai,
        peer,
        Shape::ClientCredentials,
        None,
        None,
    ))
}

fn grant_password(
    org: &Org,
    inner: &mut Inner,
    p: &[(String, String)],
    id: Option<&str>,
    secret: Option<&str>,
    peer: IpAddr,
) -> Result<Value, TokenError> {
    let ai = app_for(inner, id)?;
    check_secret(inner, ai, secret, true)?;
    let username = param(p, "username").unwrap_or("");
    let ui = inner.user_by_name(username).ok_or_else(auth_failure)?;
    let presented = param(p, "password").unwrap_or("");
    let u = &inner.users[ui];
    let expected = format!("{}{}", u.password, u.security_token);
    if !secret_eq(presented, &expected) {
        let (user_id, app_name) = (u.id.clone(), inner.apps[ai].name.clone());
        inner.log_login(
            &org.pod,
            &org.base_url,
            &user_id,
            peer,
            login_status::INVALID_PASSWORD,
            OAUTH_LOGIN_TYPE,
            &app_name,
        );
        return Err(auth_failure());
    }
    if inner.password_expired(ui) {
        // UNVERIFIED: the OAuth username-password flow's answer to an expired password is not
        // recorded; like the other refused logins it says "authentication failure".
        let (user_id, app_name) = (inner.users[ui].id.clone(), inner.apps[ai].name.clone());
        inner.log_login(
            &org.pod,
            &org.base_url,
            &user_id,
            peer,
            login_status::PASSWORD_EXPIRED,
            OAUTH_LOGIN_TYPE,
            &app_name,
        );
        return Err(auth_failure());
    }
    admit(org, inner, ui, ai, peer)?;
    Ok(issue(org, inner, ui, ai, peer, Shape::Password, None, None))
}

fn device_authorize(
    org: &Org,
    inner: &mut Inner,
    p: &[(String, String)],
) -> Result<Value, TokenError> {
    let ai = app_for(inner, param(p, "client_id"))?;
    let now = inner.now();
    let device_code = ids::random_token_chars(64);
    let user_code = ids::random_hex_upper(8);
    inner.devices.push(DeviceRequest {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        client_id: inner.apps[ai].client_id.clone(),
        approved_by: None,
        created: now,
    });
    Ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{}/setup/connect", org.base_url),
        "interval": 5,
    }))
}

fn grant_device(
    org: &Org,
    inner: &mut Inner,
    p: &[(String, String)],
    id: Option<&str>,
    peer: IpAddr,
) -> Result<Value, TokenError> {
    let ai = app_for(inner, id)?;
    let code = param(p, "code").ok_or_else(expired_code)?;
    let now = inner.now();
    let i = inner
        .devices
        .iter()
        .position(|d| d.device_code == code && d.client_id == inner.apps[ai].client_id)
        .ok_or_else(expired_code)?;
    if now - inner.devices[i].created > Duration::seconds(CODE_TTL_SECS) {
        inner.devices.remove(i);
        return Err(expired_code());
    }
    let Some(user_id) = inner.devices[i].approved_by.clone() else {
        // sfdx-core keys on status 400 + error "authorization_pending"; description UNVERIFIED.
        return Err(err("authorization_pending", "authorization pending"));
    };
    inner.devices.remove(i);
    let ui = inner.user_by_id(&user_id).ok_or_else(auth_failure)?;
    admit(org, inner, ui, ai, peer)?;
    let scope = inner.apps[ai].scope().to_owned();
    let client_id = inner.apps[ai].client_id.clone();
    let (family, rt) = inner.new_family(&client_id, &user_id, &scope, now);
    Ok(issue(
        org,
        inner,
        ui,
        ai,
        peer,
        Shape::Device,
        Some(family),
        Some(rt),
    ))
}

fn redirect(target: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = target.to_owned();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().copied())
        .finish();
    url.push(if target.contains('?') { '&' } else { '?' });
    url.push_str(&query);
    let mut r = wire::empty(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `GET /services/oauth2/authorize`: the integration user approves at once and the browser
/// is redirected to `redirect_uri?code=…&state=…`. With `login_hint=USERNAME` (Salesforce
/// pre-fills the login page with it) that user logs in and approves instead, so tests can hold
/// refresh tokens of two users of one app; an unknown one is `access_denied`.
pub async fn authorize(State(org): State<Arc<Org>>, uri: Uri) -> Response {
    let p = ids::query_pairs(uri.query());
    let Some(redirect_uri) = param(&p, "redirect_uri") else {
        return wire::token_error(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    };
    let state = param(&p, "state");
    let with_state = |mut v: Vec<(&'static str, String)>| {
        if let Some(s) = state {
            v.push(("state", s.to_owned()));
        }
        v
    };
    let send = |v: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        redirect(redirect_uri, &pairs)
    };
    let mut inner = org.lock();
    if app_for(&inner, param(&p, "client_id")).is_err() {
        return send(with_state(vec![
            ("error", "invalid_client_id".into()),
            ("error_description", "client identifier invalid".into()),
        ]));
    }
    if param(&p, "response_type") != Some("code") {
        return send(with_state(vec![
            ("error", "unsupported_response_type".into()),
            ("error_description", "response type not supported".into()),
        ]));
    }
    let challenge = param(&p, "code_challenge").map(str::to_owned);
    if challenge.is_some() && param(&p, "code_challenge_method").is_some_and(|m| m != "S256") {
        return send(with_state(vec![
            ("error", "invalid_request".into()),
            (
                "error_description",
                "code_challenge_method must be S256".into(),
            ),
        ]));
    }
    let code = format!("aPrx{}", ids::random_token_chars(60));
    let now = inner.now();
    let user = match param(&p, "login_hint") {
        None => Some(0),
        Some(name) => inner.user_by_name(name),
    };
    let Some(user) = user else {
        return send(with_state(vec![
            ("error", "access_denied".into()),
            ("error_description", "end-user denied authorization".into()),
        ]));
    };
    let user_id = inner.users[user].id.clone();
    inner.codes.insert(
        code.clone(),
        AuthCode {
            client_id: param(&p, "client_id").unwrap_or_default().to_owned(),
            user_id,
            redirect_uri: Some(redirect_uri.to_owned()),
            code_challenge: challenge,
            created: now,
        },
    );
    drop(inner);
    send(with_state(vec![("code", code)]))
}

/// `POST /services/oauth2/introspect` (§3.1): times in seconds; `{"active":false}` for
/// unknown or dead tokens and for other apps' tokens unless the caller may introspect all.
pub async fn introspect(
    State(org): State<Arc<Org>>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let Some(p) = parse_form(&headers, &body) else {
        return wire::token_error("invalid_request", "invalid request body");
    };
    let (id, secret) = client_auth(&headers, &p);
    let inner = org.lock();
    let ai = match app_for(&inner, id.as_deref()) {
        Ok(ai) => ai,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_secret(&inner, ai, secret.as_deref(), true) {
        return e.into_response();
    }
    let token = param(&p, "token").unwrap_or("");
    let now = inner.now();
    let caller = inner.apps[ai].client_id.clone();
    let all = inner.apps[ai].policy.introspect_all;
    let inactive = json!({"active": false});
    let visible = |client: Option<&str>| all || client == Some(caller.as_str());

    if let Some(s) = inner.sessions.get(token) {
        let user_ok = inner
            .user_by_id(&s.user_id)
            .is_some_and(|i| inner.users[i].active && !inner.users[i].frozen);
        if now >= s.expires_at() || !user_ok || !visible(s.client_id.as_deref()) {
            return wire::token_json(StatusCode::OK, &inactive);
        }
        let username = inner
            .user_by_id(&s.user_id)
            .map(|i| inner.users[i].username.clone());
        let mut v = json!({
            "active": true,
            "scope": s.scope,
            "username": username,
            "sub": org.identity_url(&s.user_id),
            "token_type": "access_token",
            "exp": s.expires_at().unix_timestamp(),
            "iat": s.created.unix_timestamp(),
            "nbf": s.created.unix_timestamp(),
        });
        if let Some(c) = &s.client_id {
            v["client_id"] = json!(c);
        }
        return wire::token_json(StatusCode::OK, &v);
    }
    if let Some(e) = inner.refresh.get(token) {
        let Some(f) = inner.families.get(&e.family) else {
            return wire::token_json(StatusCode::OK, &inactive);
        };
        let policy = inner
            .app_by_client_id(&f.client_id)
            .map(|i| inner.apps[i].policy.refresh_token_policy.clone())
            .unwrap_or(RefreshPolicy::ValidUntilRevoked);
        if e.rotated_out
            || f.revoked
            || policy_expired(&policy, f.created, f.last_used, now)
            || !visible(Some(&f.client_id))
        {
            return wire::token_json(StatusCode::OK, &inactive);
        }
        let username = inner
            .user_by_id(&f.user_id)
            .map(|i| inner.users[i].username.clone());
        let mut v = json!({
            "active": true,
            "scope": f.scope,
            "client_id": f.client_id,
            "username": username,
            "sub": org.identity_url(&f.user_id),
            "token_type": "refresh_token",
            "iat": f.created.unix_timestamp(),
            "nbf": f.created.unix_timestamp(),
        });
        let exp = match policy {
            RefreshPolicy::ExpireAfterSeconds(n) => Some(f.created + Duration::seconds(n as i64)),
            RefreshPolicy::ExpireIfUnusedSeconds(n) => {
                Some(f.last_used + Duration::seconds(n as i64))
            }
            _ => None,
        };
        if let Some(exp) = exp {
            v["exp"] = json!(exp.unix_timestamp());
        }
        return wire::token_json(StatusCode::OK, &v);
    }
    wire::token_json(StatusCode::OK, &inactive)
}

/// `POST /services/oauth2/revoke` (form) or `GET …?token=` (§3.2). Revoking a refresh
/// token revokes its access tokens too.
pub async fn revoke(
    State(org): State<Arc<Org>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let mut p = ids::query_pairs(uri.query());
    if method == Method::POST {
        p.extend(parse_form(&headers, &body).unwrap_or_default());
    }
    let token = param(&p, "token").unwrap_or("").to_owned();
    let mut inner = org.lock();
    if inner.sessions.remove(&token).is_some() {
        return wire::empty(StatusCode::OK);
    }
    if let Some(e) = inner.refresh.get(&token) {
        let family = e.family;
        let live = !e.rotated_out && inner.families.get(&family).is_some_and(|f| !f.revoked);
        // UNVERIFIED: a refresh token that is already revoked (or rotated out) is answered
        // like any token the org no longer honours, `invalid_token` (§3.2's error).
        if live {
            inner.revoke_family(family);
            return wire::empty(StatusCode::OK);
        }
    }
    wire::token_error("invalid_token", "Token was invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_test_vector() {
        // docs/salesforce-wire.md §1.9 (self-computed, not a Salesforce recording).
        assert_eq!(
            signature(
                "1955279925675241571",
                "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
                "1278448832702"
            ),
            "/R0tuzu0y7aV2FvHpXdMdeloZ/lWl1OwWrEA7+LOsR8="
        );
    }

    #[test]
    fn policies() {
        let t0 = time::OffsetDateTime::now_utc();
        let later = t0 + Duration::seconds(100);
        assert!(!policy_expired(
            &RefreshPolicy::ValidUntilRevoked,
            t0,
            t0,
            later
        ));
        assert!(policy_expired(
            &RefreshPolicy::ImmediatelyExpire,
            t0,
            t0,
            t0
        ));
        assert!(policy_expired(
            &RefreshPolicy::ExpireAfterSeconds(100),
            t0,
            later,
            later
        ));
        assert!(!policy_expired(
            &RefreshPolicy::ExpireIfUnusedSeconds(100),
            t0,
            later,
            later
        ));
        assert!(policy_expired(
            &RefreshPolicy::ExpireIfUnusedSeconds(100),
            t0,
            t0,
            later
        ));
    }

    #[test]
    fn jwt_exp_is_read_as_salesforce_reads_it() {
        let now = 1_800_000_000i64;
        assert_eq!(jwt_exp(&json!(now)), Some(now));
        assert_eq!(jwt_exp(&json!(now.to_string())), Some(now));
        assert_eq!(jwt_exp(&json!(now * 1000 + 300)), Some(now * 1000 + 300));
        assert_eq!(jwt_exp(&json!(now as f64)), Some(now));
        assert_eq!(jwt_exp(&json!("soon")), None);
        assert_eq!(jwt_exp(&json!(null)), None);
    }
}
