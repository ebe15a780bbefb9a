//! A Salesforce REST client over the [`TokenManager`]: every call heals from a session death
//! exactly once, rides out transient failures where a retry cannot duplicate a write, and turns
//! Salesforce's error arrays into [`ApiError`]s.
//!
//! Retry rules (reqwest's advice: *requests should not be retried if the server cannot safely
//! handle the same request twice*):
//!
//! - **Auth retry**, any method: a 401 means the call did not run. Invalidate the token's
//!   generation, take the one shared refresh, replay once. A 401 a refresh cannot fix ("This
//!   session is not valid for use with the REST API") fails at once without a token request.
//! - **Transient retry**: connect errors, timeouts, 429, 502, 503, 504 (honouring
//!   `Retry-After`), with exponential backoff and full jitter, 3 attempts by default; only for
//!   GET, HEAD, PUT, DELETE, or calls the caller marks idempotent (an upsert by external id).
//! - `403 REQUEST_LIMIT_EXCEEDED` for the daily limit (`TotalRequests Limit exceeded.`) is
//!   never retried: nothing changes until the 24-hour window moves. The same code for a
//!   concurrency limit (`ConcurrentRequests (Concurrent API Requests) Limit exceeded.`,
//!   `ConcurrentPerOrgLongTxn Limit exceeded`) is transient: it clears as other requests finish.
//! - A [`RetryBudget`] caps retries at about 20 % of a client's calls (burst 10), so an outage
//!   does not multiply the load on an org that is already struggling.

mod bulk;
pub mod layer;
mod rest;
mod soap;

pub use bulk::BulkQuery;
pub use layer::{Idempotent, SessionLayer, TransientRetryLayer};
pub use rest::QueryPages;
pub use soap::{SoapQueryResult, parse_query_response as parse_soap_query_response};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::diagnose::Cause;
use crate::diagnose::api_error::{Api, SessionVerdict, session_verdict};
use crate::error::{Error, Result, redacted_snippet};
use crate::event::AuthEventKind;
use crate::http::{date_header, read_capped};
use crate::manager::TokenManager;

/// Default API version.
pub const DEFAULT_API_VERSION: &str = "59.0";
/// Largest API response body read into memory.
pub const MAX_API_BODY: usize = 64 * 1024 * 1024;

/// A Salesforce API error: the first element of the error array (or the status alone).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Salesforce API error {status} {error_code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `errorCode`, e.g. `INVALID_FIELD`; empty when the body was not an error array.
    pub error_code: String,
    /// `message` (or a redacted snippet of a non-JSON body).
    pub message: String,
    /// `fields`, when sent.
    pub fields: Vec<String>,
    /// `Sforce-Limit-Info` usage (used, max), when sent.
    pub api_usage: Option<(u64, u64)>,
    /// `Retry-After`, when sent with a 429 or 503.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// Parses an error response.
    pub fn from_response(status: u16, body: &[u8], api_usage: Option<(u64, u64)>) -> Self {
        let first = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()));
        match first {
            Some(e) => ApiError {
                status,
                error_code: e["errorCode"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
                fields: e["fields"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                api_usage,
                retry_after: None,
            },
            None => ApiError {
                status,
                error_code: String::new(),
                message: redacted_snippet(body),
                fields: Vec::new(),
                api_usage,
                retry_after: None,
            },
        }
    }

    /// Retrying later, unchanged, may succeed: 429, 502, 503, 504, or a concurrency limit.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, 429 | 502 | 503 | 504) || self.is_concurrency_limit()
    }

    /// `REQUEST_LIMIT_EXCEEDED` because too many requests run at once (the org's concurrent
    /// API or long-transaction limit), not because the daily allowance is spent. Recorded
    /// messages: `ConcurrentRequests (Concurrent API Requests) Limit exceeded.` and
    /// `ConcurrentPerOrgLongTxn Limit exceeded`.
    pub fn is_concurrency_limit(&self) -> bool {
        self.error_code == "REQUEST_LIMIT_EXCEEDED" && self.message.contains("Concurrent")
    }
}

/// The error for a failed response of `api`: REST error arrays, SOAP faults, Bulk 1.0 XML.
fn api_error(
    api: Api,
    status: u16,
    body: &[u8],
    usage: Option<(u64, u64)>,
    headers: &reqwest::header::HeaderMap,
) -> ApiError {
    let mut e = match api {
        Api::Rest => ApiError::from_response(status, body, usage),
        Api::Soap | Api::Bulk1 => {
            let text = String::from_utf8_lossy(body);
            let code = crate::diagnose::api_error::soap_fault_code(&text)
                .map(str::to_owned)
                .or_else(|| between(&text, "<exceptionCode>", "</exceptionCode>"))
                .unwrap_or_default();
            let message = between(&text, "<faultstring>", "</faultstring>")
                .or_else(|| between(&text, "<exceptionMessage>", "</exceptionMessage>"))
                .map(|m| redacted_snippet(m.as_bytes()))
                .unwrap_or_else(|| redacted_snippet(body));
            ApiError {
                status,
                error_code: code,
                message,
                fields: Vec::new(),
                api_usage: usage,
                retry_after: None,
            }
        }
    };
    e.retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    e
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(text[start..end].to_owned())
}

/// Parses `Sforce-Limit-Info: api-usage=18/5000[; per-app-api-usage=…]`.
pub fn parse_limit_info(v: &str) -> Option<(u64, u64)> {
    let rest = v.split("api-usage=").nth(1)?;
    let rest = rest.split([';', ' ']).next()?;
    let (used, max) = rest.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

/// A response body with its status.
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `Sforce-Limit-Info` usage.
    pub api_usage: Option<(u64, u64)>,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl ApiResponse {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| Error::MalformedResponse {
            source_name: "the REST API".into(),
            problem: format!("not JSON ({e})"),
            status: self.status,
            snippet: redacted_snippet(&self.body),
        })
    }
}

/// How many attempts transient failures get, and how they back off.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry). Defaults to 3.
    pub max_attempts: u32,
    /// First backoff ceiling. Defaults to 200 ms.
    pub base: Duration,
    /// Backoff ceiling. Defaults to 20 s.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based): full jitter under an exponential
    /// ceiling, or the server's `Retry-After` (capped).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        let jittered = ceiling.mul_f64(fastrand::f64());
        retry_after.map(|r| r.min(self.cap)).unwrap_or(jittered)
    }
}

/// A REST client that heals.
#[derive(Clone, Debug)]
pub struct Client {
    manager: TokenManager,
    http: reqwest::Client,
    api_version: String,
    retry: RetryPolicy,
    budget: Arc<RetryBudget>,
}

/// Bounds retries to a share of traffic, so an outage does not turn every caller into three
/// (tower's `TpsBudget`, AWS's retry quota). Every first attempt deposits `RATIO` of a token;
/// a retry withdraws one; with too few tokens, no retry. Shared by a client's clones.
#[derive(Debug)]
pub struct RetryBudget {
    /// Tokens × 1000.
    balance: AtomicI64,
}

impl RetryBudget {
    /// Retries allowed per first attempt, over time: 20 %.
    pub const RATIO_PER_MILLE: i64 = 200;
    /// Retries that can be spent at once after a quiet spell, and the starting balance.
    pub const BURST: i64 = 10;

    fn new() -> Self {
        Self {
            balance: AtomicI64::new(Self::BURST * 1000),
        }
    }

    fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b + Self::RATIO_PER_MILLE).min(Self::BURST * 1000))
            });
    }

    /// Takes one retry's worth, if there is one.
    fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= 1000).then_some(b - 1000)
            })
            .is_ok()
    }
}

impl Client {
    /// A client over `manager`, API version 59.0, default retry policy.
    pub fn new(manager: TokenManager) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self::with_http_client(manager, http)
    }

    /// Like [`Client::new`], over `http` from the start: building the default client only to
    /// replace it would load the system's root certificates for nothing (~10 ms).
    pub fn with_http_client(manager: TokenManager, http: reqwest::Client) -> Self {
        Self {
            manager,
            http,
            api_version: DEFAULT_API_VERSION.into(),
            retry: RetryPolicy::default(),
            budget: Arc::new(RetryBudget::new()),
        }
    }

    /// Uses API version `v` (e.g. `62.0`). Defaults to 59.0.
    pub fn api_version(mut self, v: impl Into<String>) -> Self {
        self.api_version = v.into();
        self
    }

    /// Uses this retry policy. Defaults to [`RetryPolicy::default`].
    pub fn retry_policy(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Uses this HTTP client.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The API version in use.
    pub fn version(&self) -> &str {
        &self.api_version
    }

    /// The HTTP client.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The token manager.
    pub fn manager(&self) -> &TokenManager {
        &self.manager
    }

    /// `/services/data/vXX.X` + `rest`.
    pub fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}{}", self.api_version, rest)
    }

    /// Sends a request to `path` (starting with `/services/`) on the instance.
    /// `idempotent`: the caller says a replay cannot duplicate an effect (e.g. upsert by
    /// external id); GET, HEAD, PUT and DELETE are always treated as idempotent.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<ApiResponse> {
        if !path.starts_with("/services/") {
            return Err(Error::Config(format!(
                "API path `{path}` must start with /services/ (absolute URLs to other hosts are refused)"
            )));
        }
        let retryable = idempotent
            || matches!(
                method,
                reqwest::Method::GET
                    | reqwest::Method::HEAD
                    | reqwest::Method::PUT
                    | reqwest::Method::DELETE
            );
        let mut attempt = 0u32;
        self.budget.deposit();
        loop {
            let result = self.send_healing(method.clone(), path, body).await;
            let (transient, retry_after) = match &result {
                Err(Error::Transport { .. }) => (true, None),
                Err(Error::Api(e)) if e.is_transient() => (true, e.retry_after),
                _ => (false, None),
            };
            attempt += 1;
            if !(transient && retryable && attempt < self.retry.max_attempts) {
                return result;
            }
            if !self.budget.withdraw() {
                metrics::counter!("sfkeep_retry_budget_exhausted_total").increment(1);
                return result;
            }
            tokio::time::sleep(self.retry.backoff(attempt - 1, retry_after)).await;
        }
    }

    /// One attempt with the auth retry: on a dead session, one refresh and one replay.
    async fn send_healing(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        self.execute(Api::Rest, &what, |token| {
            let url = format!("{}{}", token.instance_url().trim_end_matches('/'), path);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.access_token().expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            req
        })
        .await
    }

    /// Sends what `build` makes for the current token; if the response says the session is
    /// dead (per `api`'s rules), invalidates that token's generation, takes the one shared
    /// refresh, and replays once. A second dead answer, or one a refresh cannot fix, is an
    /// error: never a loop.
    pub(crate) async fn execute(
        &self,
        api: Api,
        what: &str,
        build: impl Fn(&crate::manager::Token) -> reqwest::RequestBuilder,
    ) -> Result<ApiResponse> {
        let mut replayed = false;
        loop {
            let token = self.manager.token().await?;
            let resp = build(&token)
                .send()
                .await
                .map_err(|e| Error::transport(what, &e))?;
            if let Some(d) = date_header(&resp) {
                self.manager.observe_server_date(&d);
            }
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let usage = headers
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_limit_info);
            if let Some((used, max)) = usage {
                metrics::gauge!("sf_api_usage_used").set(used as f64);
                metrics::gauge!("sf_api_usage_limit").set(max as f64);
            }
            let body_bytes = read_capped(resp, MAX_API_BODY, what).await?;
            match session_verdict(api, status, &body_bytes) {
                SessionVerdict::Alive => {}
                SessionVerdict::Dead if !replayed => {
                    self.manager
                        .invalidate_if_current(token.generation(), api.as_str());
                    replayed = true;
                    continue;
                }
                SessionVerdict::Dead | SessionVerdict::Unfixable(_) => {
                    return Err(Error::Api(api_error(
                        api,
                        status,
                        &body_bytes,
                        usage,
                        &headers,
                    )));
                }
            }
            if (200..300).contains(&status) {
                self.manager.emit(AuthEventKind::ApiCallSucceeded);
                return Ok(ApiResponse {
                    status,
                    body: body_bytes,
                    api_usage: usage,
                    headers,
                });
            }
            return Err(Error::Api(api_error(
                api,
                status,
                &body_bytes,
                usage,
                &headers,
            )));
        }
    }

    /// GET a JSON resource.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        self.send(reqwest::Method::GET, path, None, false)
            .await?
            .json()
    }

    /// A SOQL query, page by page across `nextRecordsUrl`.
    pub fn query(&self, soql: &str) -> QueryPages {
        QueryPages::new(
            self.clone(),
            self.data_path(&format!("/query?q={}", urlencode(soql))),
        )
    }

    /// Like [`Client::query`], including deleted and archived records.
    pub fn query_all(&self, soql: &str) -> QueryPages {
        QueryPages::new(
            self.clone(),
            self.data_path(&format!("/queryAll?q={}", urlencode(soql))),
        )
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether an error from the client means the session cannot be used with this API.
pub fn is_session_unusable(e: &Error) -> bool {
    matches!(e, Error::Api(a) if a.status == 401) || e.cause() == Some(Cause::SessionNotValidForApi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_budget_allows_a_burst_then_a_fifth_of_traffic() {
        let b = RetryBudget::new();
        let burst = (0..100).take_while(|_| b.withdraw()).count();
        assert_eq!(burst, RetryBudget::BURST as usize);
        for _ in 0..50 {
            b.deposit();
        }
        let later = (0..100).take_while(|_| b.withdraw()).count();
        assert_eq!(later, 10, "50 calls earn 10 retries");
    }

    #[test]
    fn limit_info_parses_both_documented_forms() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_limit_info(
                "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
            ),
            Some((25, 5000))
        );
        assert_eq!(parse_limit_info("garbage"), None);
    }

    #[test]
    fn error_arrays_and_html_become_api_errors() {
        let e = ApiError::from_response(
            400,
            br#"[{"message":"Required fields are missing: [Name]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Name"]}]"#,
            None,
        );
        assert_eq!(e.error_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.fields, vec!["Name"]);
        let e =
            ApiError::from_response(503, b"<html><body>Service Unavailable</body></html>", None);
        assert!(e.is_transient());
        assert!(e.message.contains("Service Unavailable"));
    }

    #[test]
    fn the_daily_limit_is_final_and_a_concurrency_limit_is_transient() {
        let daily = ApiError::from_response(
            403,
            br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
            None,
        );
        assert!(!daily.is_transient());
        let daily = Error::Api(daily);
        assert_eq!(daily.cause(), Some(Cause::RequestLimitExceeded));
        assert!(!daily.is_retryable());
        for message in [
            "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            "ConcurrentPerOrgLongTxn Limit exceeded",
        ] {
            let body =
                format!(r#"[{{"message":"{message}","errorCode":"REQUEST_LIMIT_EXCEEDED"}}]"#);
            let e = ApiError::from_response(403, body.as_bytes(), None);
            assert!(e.is_concurrency_limit() && e.is_transient(), "{message}");
            let e = Error::Api(e);
            assert_eq!(e.cause(), Some(Cause::Transient), "{message}");
            assert!(e.is_retryable(), "{message}");
        }
    }
}
