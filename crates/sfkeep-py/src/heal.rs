//! The library's rules for one request, for the pure-Python `requests` session: which answers
//! mean a dead session, when to replay, what is transient, who may be retried, how long to
//! wait. Python sends; these decide. No response is ever classified in Python.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use std::sync::Arc;

use sfkeep::client::{Heal, HealStep, RetryBudget, RetryPolicy, retry};
use sfkeep::diagnose::api_error::Api;

use crate::manager::{PyTokenManager, parse_api};
use crate::token::PyToken;

/// Which API a path on the instance belongs to: `"soap"` for `/services/Soap/…`, `"bulk"` for
/// Bulk 1.0 (`/services/async/…`), else `"rest"` (REST, Bulk 2.0, Apex REST).
#[pyfunction]
pub fn api_for_path(path: &str) -> &'static str {
    Api::for_path(path).as_str()
}

/// GET, HEAD, PUT and DELETE: sending them twice has the effect of sending them once.
#[pyfunction]
pub fn is_idempotent_method(method: &str) -> bool {
    http::Method::from_bytes(method.as_bytes()).is_ok_and(|m| retry::is_idempotent_method(&m))
}

/// Whether an answer is transient (429, 502, 503, 504, a concurrency limit): the library
/// client's rule.
#[pyfunction]
pub fn answer_is_transient(status: u16, body: &[u8]) -> bool {
    retry::answer_is_transient(status, body)
}

/// `Retry-After` (delay-seconds or an HTTP date) as seconds to wait from now.
#[pyfunction]
pub fn parse_retry_after(value: &str) -> Option<f64> {
    retry::parse_retry_after(value, std::time::SystemTime::now()).map(|d| d.as_secs_f64())
}

/// One request's heal step (the library's `HealStep`): at most one replay after a dead
/// session.
///
/// For each answer: if `inspects(status)` is false, deliver it as is (it may stream);
/// otherwise read the body and call `decide`, which says `"deliver"`, `"replay"` (the token's
/// generation is invalidated: take a token again and send once more), `"dead_again"` (dead
/// after the replay, or not replayable: deliver) or `"unfixable"` (a refresh cannot fix it:
/// deliver; the cause names why).
#[pyclass(frozen, name = "HealStep", module = "sfkeep._native")]
pub struct PyHealStep(Mutex<HealStep>);

#[pymethods]
impl PyHealStep {
    /// A step for a request to `api` (`"rest"`, `"soap"` or `"bulk"`).
    #[new]
    fn new(py: Python<'_>, api: &str) -> PyResult<Self> {
        Ok(Self(Mutex::new(HealStep::new(parse_api(py, api)?))))
    }

    /// An answer with `status` may mean a dead session: read its body and call `decide`.
    fn inspects(&self, status: u16) -> bool {
        self.step().inspects(status)
    }

    /// What to do with an answer to a request sent with `token`. `body`: the answer's body
    /// (its first 64 KiB are enough), or `None` when it cannot be read. Returns
    /// `(action, cause)`.
    #[pyo3(signature = (manager, token, status, body, replayable = true))]
    fn decide(
        &self,
        py: Python<'_>,
        manager: &PyTokenManager,
        token: &PyToken,
        status: u16,
        body: Option<&[u8]>,
        replayable: bool,
    ) -> PyResult<(&'static str, Option<&'static str>)> {
        let mut step = *self.step();
        let heal =
            manager.with_manager(py, |m| step.decide(m, &token.0, status, body, replayable))?;
        *self.step() = step;
        Ok(match heal {
            Heal::Deliver => ("deliver", None),
            Heal::Replay => ("replay", None),
            Heal::DeadAgain => ("dead_again", None),
            Heal::Unfixable(c) => ("unfixable", Some(c.as_str())),
        })
    }
}

impl PyHealStep {
    fn step(&self) -> std::sync::MutexGuard<'_, HealStep> {
        sfkeep::sync::lock(&self.0)
    }
}

/// How many attempts transient failures get, and how long to wait between them.
#[pyclass(frozen, name = "RetryPolicy", module = "sfkeep._native")]
pub struct PyRetryPolicy(RetryPolicy);

#[pymethods]
impl PyRetryPolicy {
    /// `max_attempts` in all (1 = no retry); backoff from `base` seconds, capped at `cap`.
    #[new]
    #[pyo3(signature = (max_attempts = None, base = None, cap = None))]
    fn new(max_attempts: Option<u32>, base: Option<f64>, cap: Option<f64>) -> PyResult<Self> {
        let d = RetryPolicy::default();
        let secs = |v: Option<f64>, default: Duration, name: &str| match v {
            None => Ok(default),
            Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
            Some(s) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "RetryPolicy: {name} must be a non-negative number of seconds, not {s}"
            ))),
        };
        Ok(Self(RetryPolicy {
            max_attempts: max_attempts.unwrap_or(d.max_attempts).max(1),
            base: secs(base, d.base, "base")?,
            cap: secs(cap, d.cap, "cap")?,
        }))
    }

    /// Attempts in all.
    #[getter]
    fn max_attempts(&self) -> u32 {
        self.0.max_attempts
    }

    /// Seconds to wait before retry number `attempt` (0-based): full jitter under an
    /// exponential ceiling, or the server's `Retry-After` (capped).
    #[pyo3(signature = (attempt, retry_after = None))]
    fn backoff(&self, attempt: u32, retry_after: Option<f64>) -> f64 {
        let ra = retry_after
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        self.0.backoff(attempt, ra).as_secs_f64()
    }
}

/// Bounds retries to a share of traffic (the library's `RetryBudget`): every call deposits a
/// fifth of a retry, every retry withdraws one, and a full budget holds 10 (the burst). A
/// session has its own unless it is given one; sessions given the same budget share it.
#[pyclass(frozen, name = "RetryBudget", module = "sfkeep._native")]
pub struct PyRetryBudget(pub Arc<RetryBudget>);

#[pymethods]
impl PyRetryBudget {
    /// A full budget.
    #[new]
    fn new() -> Self {
        Self(Arc::new(RetryBudget::new()))
    }

    /// Retries a quiet spell allows at once, and what a new budget holds.
    #[classattr]
    const BURST: i64 = RetryBudget::BURST;

    /// Retries earned per call, in thousandths (200: a fifth).
    #[classattr]
    const RATIO_PER_MILLE: i64 = RetryBudget::RATIO_PER_MILLE;

    fn __repr__(&self) -> String {
        "RetryBudget(20 % of calls, burst 10)".into()
    }
}

/// One call's retries under a policy and a budget (the library's `RetryRun`): create it
/// before the first attempt (the call earns the budget its share), ask `next_wait` after each
/// transient failure.
#[pyclass(frozen, name = "RetryRun", module = "sfkeep._native")]
pub struct PyRetryRun(Mutex<retry::RetryRun<'static>>);

#[pymethods]
impl PyRetryRun {
    /// A call under `policy` and `budget`; `idempotent`: sending it twice cannot duplicate an
    /// effect (GET, HEAD, PUT, DELETE with a body that can be sent again).
    #[new]
    fn new(policy: &PyRetryPolicy, budget: &PyRetryBudget, idempotent: bool) -> Self {
        Self(Mutex::new(retry::RetryRun::start_shared(
            policy.0,
            Arc::clone(&budget.0),
            idempotent,
        )))
    }

    /// After an attempt that failed transiently (`retry_after`: the server's `Retry-After` in
    /// seconds, if it sent one): seconds to wait before the next attempt, or `None` to give up
    /// and return the failure (not idempotent, attempts used up, or the budget spent).
    #[pyo3(signature = (retry_after = None))]
    fn next_wait(&self, retry_after: Option<f64>) -> Option<f64> {
        let ra = retry_after
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        self.run().next_wait(ra).map(|d| d.as_secs_f64())
    }

    /// Attempts so far that failed transiently.
    #[getter]
    fn failed_attempts(&self) -> u32 {
        self.run().failed_attempts()
    }
}

impl PyRetryRun {
    fn run(&self) -> std::sync::MutexGuard<'_, retry::RetryRun<'static>> {
        sfkeep::sync::lock(&self.0)
    }
}

/// `body` with the text of its SOAP `SessionHeader`'s `sessionId` element replaced by
/// `token`'s access token; `None` when the envelope has no `sessionId` element.
#[pyfunction]
pub fn with_soap_session(body: &[u8], token: &PyToken) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let (start, end) = session_id_span(text)?;
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(token.0.access_token().expose_secret().as_bytes());
    out.extend_from_slice(&body[end..]);
    Some(out)
}

/// The byte range of the first `sessionId` element's text, whatever its namespace prefix.
fn session_id_span(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = text[from..].find("sessionId") {
        let at = from + i;
        from = at + "sessionId".len();
        let lt = text[..at].rfind('<')?;
        let name = &text[lt + 1..at];
        // `<sessionId`, `<prefix:sessionId`; not a closing tag or some fooSessionId.
        if !(name.is_empty() || name.ends_with(':') && !name.contains(['/', ' ', '>'])) {
            continue;
        }
        let after = text[from..].chars().next()?;
        if after != '>' && !after.is_whitespace() {
            continue;
        }
        let open_end = from + text[from..].find('>')? + 1;
        let close = open_end + text[open_end..].find("</")?;
        return Some((open_end, close));
    }
    None
}
