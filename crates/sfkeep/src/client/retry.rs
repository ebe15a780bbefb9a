//! The one retry policy for transient failures, used by [`Client`](super::Client) and by the
//! [`TransientRetryLayer`](super::TransientRetryLayer):
//!
//! - **What is transient**: a connection that failed or timed out, 429, 502, 503, 504, and a
//!   `403 REQUEST_LIMIT_EXCEEDED` for a concurrency limit (it clears as other requests finish).
//!   The daily limit (`TotalRequests Limit exceeded.`, the same code) is never retried: nothing
//!   changes until the 24-hour window moves. The classification is [`ApiError::cause`]'s,
//!   so the client's errors and the layer's retries agree.
//! - **Who may be retried**: GET, HEAD, PUT and DELETE, or a request the caller marks
//!   idempotent (an upsert by external id). reqwest's advice: *requests should not be retried
//!   if the server cannot safely handle the same request twice*.
//! - **How long to wait**: the server's `Retry-After` (seconds or an HTTP date), capped; else
//!   exponential backoff with full jitter ([`RetryPolicy::backoff`]).
//! - **How much**: a [`RetryBudget`] caps retries at about 20 % of the calls (burst 10), so an
//!   outage does not multiply the load on an org that is already struggling.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use crate::diagnose::api_error::ApiError;

/// How many attempts transient failures get, and how they back off.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry). Defaults to 3.
    pub max_attempts: u32,
    /// First backoff ceiling. Defaults to 200 ms.
    pub base: Duration,
    /// Backoff ceiling, and the longest `Retry-After` honoured. Defaults to 20 s.
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

/// Bounds retries to a share of traffic, so an outage does not turn every caller into three
/// (tower's `TpsBudget`, AWS's retry quota). Every first attempt deposits
/// [`RATIO_PER_MILLE`](Self::RATIO_PER_MILLE)/1000 of a token; a retry withdraws one; with too
/// few tokens, no retry. Shared by a client's (or a layer's) clones.
#[derive(Debug)]
pub struct RetryBudget {
    /// Tokens × 1000.
    balance: AtomicI64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudget {
    /// Retries allowed per first attempt, over time: 20 %.
    pub const RATIO_PER_MILLE: i64 = 200;
    /// Retries that can be spent at once after a quiet spell, and the starting balance.
    pub const BURST: i64 = 10;

    /// A full budget.
    pub fn new() -> Self {
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

/// GET, HEAD, PUT and DELETE: sending them twice has the effect of sending them once.
pub fn is_idempotent_method(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::PUT | http::Method::DELETE
    )
}

/// An answer with `status` may be transient; its body decides ([`answer_is_transient`]). Other
/// answers never are.
pub fn may_be_transient(status: u16) -> bool {
    matches!(status, 403 | 429 | 502 | 503 | 504)
}

/// Whether an answer is transient, by the same rule as [`ApiError::is_transient`].
pub fn answer_is_transient(status: u16, body: &[u8]) -> bool {
    may_be_transient(status) && ApiError::from_response(status, body, None).is_transient()
}

/// `Retry-After` as a wait from `now`: delay-seconds (`120`) or an HTTP date
/// (`Fri, 31 Dec 1999 23:59:59 GMT`, RFC 9110 §10.2.3). A date in the past is no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a header map, as a wait from now.
pub fn retry_after_header(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

/// One call's retries under a policy and a budget: [`RetryRun::start`] before the first
/// attempt, [`RetryRun::next_wait`] after each transient failure.
#[derive(Debug)]
pub struct RetryRun<'a> {
    policy: RetryPolicy,
    budget: BudgetRef<'a>,
    idempotent: bool,
    attempts: u32,
}

/// The budget a run draws on: borrowed from a client, or shared by reference count (a run that
/// outlives any borrow, such as the Python wheel's, crates/sfkeep-py).
#[derive(Debug)]
enum BudgetRef<'a> {
    Borrowed(&'a RetryBudget),
    Shared(std::sync::Arc<RetryBudget>),
}

impl std::ops::Deref for BudgetRef<'_> {
    type Target = RetryBudget;

    fn deref(&self) -> &RetryBudget {
        match self {
            BudgetRef::Borrowed(b) => b,
            BudgetRef::Shared(b) => b,
        }
    }
}

impl<'a> RetryRun<'a> {
    /// Starts a call (it earns the budget its share). `idempotent`: sending the request twice
    /// cannot duplicate an effect ([`is_idempotent_method`], or the caller says so).
    pub fn start(policy: &'a RetryPolicy, budget: &'a RetryBudget, idempotent: bool) -> Self {
        Self::begin(*policy, BudgetRef::Borrowed(budget), idempotent)
    }

    fn begin(policy: RetryPolicy, budget: BudgetRef<'a>, idempotent: bool) -> Self {
        budget.deposit();
        Self {
            policy,
            budget,
            idempotent,
            attempts: 0,
        }
    }
}

impl RetryRun<'static> {
    /// [`RetryRun::start`] on a budget shared by reference count: the run borrows nothing.
    pub fn start_shared(
        policy: RetryPolicy,
        budget: std::sync::Arc<RetryBudget>,
        idempotent: bool,
    ) -> Self {
        Self::begin(policy, BudgetRef::Shared(budget), idempotent)
    }
}

impl RetryRun<'_> {
    /// After an attempt that failed transiently (the server said wait `retry_after`, if it
    /// did): how long to wait before the next attempt, or `None` to give up and return the
    /// failure (not idempotent, attempts used up, or the budget spent).
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.attempts += 1;
        if !self.idempotent || self.attempts >= self.policy.max_attempts {
            return None;
        }
        if !self.budget.withdraw() {
            metrics::counter!("sfkeep_retry_budget_exhausted_total").increment(1);
            return None;
        }
        Some(self.policy.backoff(self.attempts - 1, retry_after))
    }

    /// Attempts made so far that failed transiently.
    pub fn failed_attempts(&self) -> u32 {
        self.attempts
    }
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
    fn a_run_stops_at_the_attempt_limit_for_non_idempotent_calls_and_on_an_empty_budget() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_secs(1),
        };
        let budget = RetryBudget::new();
        let mut run = RetryRun::start(&policy, &budget, true);
        assert!(run.next_wait(None).is_some(), "a second attempt");
        assert_eq!(
            run.next_wait(Some(Duration::from_millis(60))),
            Some(Duration::from_millis(60)),
            "a third attempt, after the server's Retry-After"
        );
        assert_eq!(run.next_wait(None), None, "the third attempt was the last");
        assert_eq!(run.failed_attempts(), 3);
        let mut post = RetryRun::start(&policy, &budget, false);
        assert_eq!(post.next_wait(None), None);

        let empty = RetryBudget::new();
        while empty.withdraw() {}
        let mut run = RetryRun::start(&policy, &empty, true);
        assert_eq!(run.next_wait(None), None, "no budget, no retry");
    }

    #[test]
    fn runs_on_a_shared_budget_spend_one_budget() {
        let policy = RetryPolicy {
            max_attempts: 100,
            base: Duration::ZERO,
            cap: Duration::ZERO,
        };
        let budget = std::sync::Arc::new(RetryBudget::new());
        let mut a = RetryRun::start_shared(policy, std::sync::Arc::clone(&budget), true);
        let first = std::iter::from_fn(|| a.next_wait(None)).count();
        assert_eq!(
            first,
            RetryBudget::BURST as usize,
            "the burst, then nothing"
        );
        let mut b = RetryRun::start_shared(policy, std::sync::Arc::clone(&budget), true);
        assert_eq!(
            b.next_wait(None),
            None,
            "b's share (a fifth) is not a whole retry"
        );
        assert!(
            !budget.withdraw(),
            "the budget the runs spent is the caller's"
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy::default();
        let budget = RetryBudget::new();
        let mut run = RetryRun::start(&policy, &budget, true);
        assert_eq!(
            run.next_wait(Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            policy.backoff(0, Some(Duration::from_secs(3600))),
            policy.cap
        );
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn transient_answers_are_the_client_errors_that_are_transient() {
        let concurrent = br#"[{"message":"ConcurrentRequests (Concurrent API Requests) Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        let daily = br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(answer_is_transient(403, concurrent));
        assert!(!answer_is_transient(403, daily));
        assert!(!answer_is_transient(403, b"Forbidden"));
        for s in [429, 502, 503, 504] {
            assert!(answer_is_transient(s, b"<html>busy</html>"), "{s}");
        }
        assert!(!answer_is_transient(500, b""));
        assert!(!answer_is_transient(401, b""));
        assert!(is_idempotent_method(&http::Method::PUT));
        assert!(!is_idempotent_method(&http::Method::POST));
        assert!(!is_idempotent_method(&http::Method::PATCH));
    }
}
