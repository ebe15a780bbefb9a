//! The client's auth and retry behaviour as tower layers, for users with their own hyper (or
//! any `tower::Service`) stack. They run the same code as [`Client`](super::Client):
//!
//! - [`SessionLayer`]: fills in the instance (for path-only request URIs), injects the current
//!   token (`Authorization: Bearer`, or `X-SFDC-Session` for Bulk 1.0), and heals through
//!   [`HealStep`]: after an answer that means the session is dead, that token's generation is
//!   invalidated, the one shared refresh taken and the request replayed once. Answers a
//!   refresh cannot fix pass through untouched.
//! - [`TransientRetryLayer`]: the [`retry`] policy: connect errors, 429, 502,
//!   503, 504 and a concurrency-limit 403, with `Retry-After` and full-jitter backoff, within a
//!   [`RetryBudget`] shared by the layer's services; only for GET, HEAD, PUT and DELETE (or
//!   requests carrying the [`Idempotent`] extension).
//!
//! Replaying needs the request body twice, so both layers require `B: Clone` (e.g.
//! `http_body_util::Full<Bytes>`). Bodies of answers that may mean a dead session (401, 403,
//! Bulk 1.0's 400, SOAP's 500) or a transient failure (403, 429, 502, 503, 504) are buffered,
//! up to 64 KiB, to read them; all other answers stream through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};

use super::heal::{Heal, HealStep};
use super::retry::{self, RetryBudget, RetryPolicy, RetryRun};
use crate::diagnose::api_error::Api;
use crate::manager::TokenManager;

/// A boxed error, as tower services usually have.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of [`SessionService`] and [`TransientRetry`]: the inner body, or the
/// buffered one of an answer that had to be read.
pub type SessionBody<B> = Either<B, Full<Bytes>>;

const MAX_INSPECTED_BODY: usize = 64 * 1024;

/// Reads a whole (small) answer body, at most [`MAX_INSPECTED_BODY`] bytes.
async fn buffer<RB>(status: u16, body: RB) -> Result<Bytes, BoxError>
where
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    Ok(Limited::new(body, MAX_INSPECTED_BODY)
        .collect()
        .await
        .map_err(|e| -> BoxError { format!("reading a {status} answer: {e}").into() })?
        .to_bytes())
}

/// Adds Salesforce authentication with one healing replay. See the module docs.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    manager: TokenManager,
    api: Api,
}

impl SessionLayer {
    /// A layer for the REST / Bulk 2.0 API (Bearer token).
    pub fn new(manager: TokenManager) -> Self {
        Self {
            manager,
            api: Api::Rest,
        }
    }

    /// A layer for Bulk 1.0 (`X-SFDC-Session`, `InvalidSessionId` answers).
    pub fn bulk1(manager: TokenManager) -> Self {
        Self {
            manager,
            api: Api::Bulk1,
        }
    }
}

impl<S> tower_layer::Layer<S> for SessionLayer {
    type Service = SessionService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
            api: self.api,
        }
    }
}

/// The service [`SessionLayer`] makes.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    manager: TokenManager,
    api: Api,
}

fn authorize<B>(
    mut req: http::Request<B>,
    token: &crate::manager::Token,
    api: Api,
) -> Result<http::Request<B>, BoxError> {
    if req.uri().authority().is_none() {
        let base: http::Uri = token.instance_url().parse()?;
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = base.scheme().cloned();
        parts.authority = base.authority().cloned();
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = http::Uri::from_parts(parts)?;
    }
    let h = req.headers_mut();
    h.remove(http::header::AUTHORIZATION);
    h.remove("x-sfdc-session");
    let secret = token.access_token().expose_secret();
    match api {
        Api::Bulk1 => {
            let mut v = http::HeaderValue::from_str(secret)?;
            v.set_sensitive(true);
            h.insert("x-sfdc-session", v);
        }
        _ => {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {secret}"))?;
            v.set_sensitive(true);
            h.insert(http::header::AUTHORIZATION, v);
        }
    }
    Ok(req)
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for SessionService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Clone + Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = http::Response<SessionBody<RB>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone serves the replay.
        let inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, inner);
        let manager = self.manager.clone();
        let api = self.api;
        Box::pin(async move {
            let mut step = HealStep::new(api);
            loop {
                let token = manager.token().await?;
                let attempt = authorize(req.clone(), &token, api)?;
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let resp = inner.call(attempt).await.map_err(Into::into)?;
                if let Some(date) = resp
                    .headers()
                    .get(http::header::DATE)
                    .and_then(|v| v.to_str().ok())
                {
                    manager.observe_server_date(date);
                }
                let status = resp.status().as_u16();
                if !step.inspects(status) {
                    return Ok(resp.map(Either::Left));
                }
                let (parts, body) = resp.into_parts();
                let bytes = buffer(status, body).await?;
                match step.decide(&manager, &token, status, Some(&bytes), true) {
                    Heal::Replay => continue,
                    Heal::Deliver | Heal::DeadAgain | Heal::Unfixable(_) => {
                        return Ok(http::Response::from_parts(
                            parts,
                            Either::Right(Full::new(bytes)),
                        ));
                    }
                }
            }
        })
    }
}

/// Marks a POST or PATCH as safe to retry (e.g. an upsert by external id): put it in the
/// request's extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Idempotent;

/// Retries transient failures of idempotent requests. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct TransientRetryLayer {
    policy: RetryPolicy,
    budget: Arc<RetryBudget>,
}

impl TransientRetryLayer {
    /// With this policy (attempts and backoff) and a budget of its own, shared by every
    /// service the layer makes.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            budget: Arc::new(RetryBudget::new()),
        }
    }

    /// Draws retries from `budget` (e.g. one shared with other layers). Defaults to a budget
    /// of the layer's own.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = budget;
        self
    }
}

impl<S> tower_layer::Layer<S> for TransientRetryLayer {
    type Service = TransientRetry<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TransientRetry {
            inner,
            policy: self.policy,
            budget: Arc::clone(&self.budget),
        }
    }
}

/// The service [`TransientRetryLayer`] makes.
#[derive(Clone, Debug)]
pub struct TransientRetry<S> {
    inner: S,
    policy: RetryPolicy,
    budget: Arc<RetryBudget>,
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for TransientRetry<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Clone + Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = http::Response<SessionBody<RB>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, inner);
        let policy = self.policy;
        let budget = Arc::clone(&self.budget);
        let idempotent = req.extensions().get::<Idempotent>().is_some()
            || retry::is_idempotent_method(req.method());
        Box::pin(async move {
            let mut run = RetryRun::start(&policy, &budget, idempotent);
            loop {
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let result = inner
                    .call(req.clone())
                    .await
                    .map_err(Into::<BoxError>::into);
                let (answer, retry_after) = match result {
                    Err(e) => (Err(e), None),
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        if !retry::may_be_transient(status) {
                            return Ok(resp.map(Either::Left));
                        }
                        let retry_after = retry::retry_after_header(resp.headers());
                        let (parts, body) = resp.into_parts();
                        let bytes = buffer(status, body).await?;
                        let transient = retry::answer_is_transient(status, &bytes);
                        let resp =
                            http::Response::from_parts(parts, Either::Right(Full::new(bytes)));
                        if !transient {
                            return Ok(resp);
                        }
                        (Ok(resp), retry_after)
                    }
                };
                match run.next_wait(retry_after) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return answer,
                }
            }
        })
    }
}
