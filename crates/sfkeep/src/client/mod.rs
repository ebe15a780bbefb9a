//! A Salesforce REST client over the [`TokenManager`]: every call heals from a session death
//! exactly once, rides out transient failures where a retry cannot duplicate a write, and turns
//! Salesforce's error arrays into [`ApiError`]s.
//!
//! Two rules, each written once and shared with the tower layers in [`layer`] (and, for the
//! heal step, with `sfkeep-proxy`):
//!
//! - **Heal** ([`HealStep`]), any method: a 401 means the call did not run. Invalidate the
//!   token's generation, take the one shared refresh, replay once (twice when the replay's
//!   token predates a user-wide death, see [`HealStep`]). A 401 a refresh cannot fix
//!   ("This session is not valid for use with the REST API") fails at once without a token
//!   request.
//! - **Transient retry** ([`retry`]): connect errors, timeouts, 429, 502, 503, 504 and a
//!   concurrency-limit 403 (honouring `Retry-After`), with exponential backoff and full
//!   jitter, 3 attempts by default, within a [`RetryBudget`] of about 20 % of the calls; only
//!   for GET, HEAD, PUT, DELETE, or calls marked [`RequestBuilder::idempotent`] (an upsert by
//!   external id). The daily limit (`403 REQUEST_LIMIT_EXCEEDED`, `TotalRequests Limit
//!   exceeded.`) is never retried.

mod bulk;
mod heal;
pub mod layer;
mod request;
mod rest;
pub mod retry;
mod soap;

pub use crate::diagnose::api_error::ApiError;
pub use bulk::{Bulk1Batch, Bulk1Job, BulkQuery, IngestJob, IngestOperation, IngestOutcome};
pub use heal::{Heal, HealStep};
pub use layer::{Idempotent, SessionLayer, TransientRetryLayer};
pub use request::RequestBuilder;
pub use rest::QueryPages;
pub use retry::{RetryBudget, RetryPolicy};
pub use soap::{SoapQueryResult, parse_query_response as parse_soap_query_response};

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::diagnose::api_error::Api;
use crate::error::{Error, Result, redacted_snippet};
use crate::event::AuthEventKind;
use crate::http::{date_header, read_capped};
use crate::manager::TokenManager;

/// The API version a client uses unless told otherwise ([`Client::api_version`]).
pub const DEFAULT_API_VERSION: &str = "59.0";
/// Largest API response body read into memory.
pub const MAX_API_BODY: usize = 64 * 1024 * 1024;
/// A whole API call's deadline on the client [`Client::new`] builds.
pub const API_TIMEOUT: Duration = Duration::from_secs(120);
/// The connect deadline on the client [`Client::new`] builds.
pub const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// The error for this (failed) response of `api`.
    fn into_error(self, api: Api) -> Error {
        let e = ApiError::read(api, self.status, &self.body, self.api_usage)
            .with_retry_after(retry::retry_after_header(&self.headers));
        Error::Api(e)
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
    /// Report each successful call as [`AuthEventKind::ApiCallSucceeded`].
    report_success: bool,
}

impl Client {
    /// A client over `manager`: API version [`DEFAULT_API_VERSION`], the default retry policy,
    /// an HTTP client with [`API_TIMEOUT`] and [`API_CONNECT_TIMEOUT`]. Fails only when the
    /// HTTP client cannot be built (no TLS roots could be loaded).
    pub fn new(manager: TokenManager) -> Result<Self> {
        let http = crate::http::build_client(crate::http::ClientOptions::new(
            API_TIMEOUT,
            API_CONNECT_TIMEOUT,
        ))?;
        Ok(Self::with_http_client(manager, http))
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
            report_success: true,
        }
    }

    /// Does not report this client's successful calls as
    /// [`AuthEventKind::ApiCallSucceeded`]: for a monitor's own reads (`sfkeep serve`'s org
    /// checks), which are not the integration's calls and must not move its last successful
    /// call. Dead sessions it meets are healed, and reported, as with any client.
    pub fn without_success_events(mut self) -> Self {
        self.report_success = false;
        self
    }

    /// Uses API version `v` (e.g. `62.0`). Defaults to [`DEFAULT_API_VERSION`].
    pub fn api_version(mut self, v: impl Into<String>) -> Self {
        self.api_version = v.into();
        self
    }

    /// Uses this retry policy. Defaults to [`RetryPolicy::default`].
    pub fn retry_policy(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Uses this HTTP client. Defaults to the one [`Client::new`] builds.
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

    /// A request to `path` (starting with `/services/`) on the instance; see
    /// [`RequestBuilder`] for the body and [`RequestBuilder::idempotent`].
    pub fn request<'a>(&'a self, method: reqwest::Method, path: &'a str) -> RequestBuilder<'a> {
        RequestBuilder::new(self, method, path)
    }

    /// Sends a request with the transient retry around the heal step.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
        headers: &[(&'static str, String)],
    ) -> Result<ApiResponse> {
        if !path.starts_with("/services/") {
            return Err(Error::Config(format!(
                "API path `{path}` must start with /services/ (absolute URLs to other hosts are refused)"
            )));
        }
        let idempotent = idempotent || retry::is_idempotent_method(&method);
        let mut run = retry::RetryRun::start(&self.retry, &self.budget, idempotent);
        loop {
            let result = self.send_healing(method.clone(), path, body, headers).await;
            let retry_after = match &result {
                Err(Error::Transport { .. }) => None,
                Err(Error::Api(e)) if e.is_transient() => e.retry_after,
                _ => return result,
            };
            match run.next_wait(retry_after) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return result,
            }
        }
    }

    /// One attempt with the heal step: on a dead session, one refresh and one replay.
    async fn send_healing(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&'static str, String)],
    ) -> Result<ApiResponse> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        self.execute(Api::Rest, &what, |token| {
            let url = format!("{}{}", token.instance_url().trim_end_matches('/'), path);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.access_token().expose_secret())
                .header(reqwest::header::ACCEPT, "application/json");
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            req
        })
        .await
    }

    /// Sends what `build` makes for the current token, healing through [`HealStep`]: a dead
    /// session (per `api`'s rules) costs one shared refresh and one replay; a second dead
    /// answer (a third after a user-wide death), or one a refresh cannot fix, is an error,
    /// never a loop.
    pub(crate) async fn execute(
        &self,
        api: Api,
        what: &str,
        build: impl Fn(&crate::manager::Token) -> reqwest::RequestBuilder,
    ) -> Result<ApiResponse> {
        let mut step = HealStep::new(api);
        loop {
            let token = self.manager.token().await?;
            let resp = build(&token)
                .send()
                .await
                .map_err(|e| Error::transport(what, e))?;
            let resp = self.read_response(resp, what).await?;
            match step.decide(&self.manager, &token, resp.status, Some(&resp.body), true) {
                Heal::Replay => continue,
                Heal::Deliver if (200..300).contains(&resp.status) => {
                    if self.report_success {
                        self.manager.emit(AuthEventKind::ApiCallSucceeded);
                    }
                    return Ok(resp);
                }
                _ => return Err(resp.into_error(api)),
            }
        }
    }

    /// Reads a response: the server's `Date` for the skew-corrected clock, the API usage for
    /// the `sf_api_usage_*` gauges, and the body (capped at [`MAX_API_BODY`]).
    async fn read_response(&self, resp: reqwest::Response, what: &str) -> Result<ApiResponse> {
        if let Some(d) = date_header(&resp) {
            self.manager.observe_server_date(&d);
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let api_usage = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info);
        if let Some((used, max)) = api_usage {
            metrics::gauge!("sf_api_usage_used").set(used as f64);
            metrics::gauge!("sf_api_usage_limit").set(max as f64);
        }
        let body = read_capped(resp, MAX_API_BODY, what).await?;
        Ok(ApiResponse {
            status,
            body,
            api_usage,
            headers,
        })
    }

    /// GET a JSON resource.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        self.request(reqwest::Method::GET, path)
            .send()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
