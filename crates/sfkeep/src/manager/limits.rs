//! The two limits that keep a dead credential from causing a request storm: the [`Cooldown`]
//! after a failed token request and the [`LoginBudget`] of token requests per rolling hour.
//!
//! Both are plain values over the local clock (ms), without I/O, so their arithmetic is unit
//! tested here; the manager emits the events.
//!
//! | after | next token request allowed |
//! |---|---|
//! | a success | at once |
//! | a failure only a person can fix, or one that will not change (`ReauthRequired`, not retryable) | after [`FAILURE_COOLDOWN`] |
//! | the n-th transient failure in a row | after [`TRANSIENT_BACKOFF`] × 2^(n−1), at most [`FAILURE_COOLDOWN`] |
//! | `budget` requests within the last hour | once the oldest of them is an hour old |
//!
//! A cooldown withholds token requests, not the store: another process (a `login`, a
//! `recover`, a member whose credential still works) may store a newer token meanwhile. While
//! it lasts, a caller that needs a token reads the store at most every [`COOLDOWN_STORE_READ`]
//! and adopts a newer usable record, which ends the cooldown.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::UnixMillis;
use crate::diagnose::Cause;
use crate::error::Error;
use crate::sync::lock;

/// Minimum gap after a failed token request before the next one (per manager).
pub const FAILURE_COOLDOWN: Duration = Duration::from_secs(30);
/// First gap after a transient failure; doubles up to [`FAILURE_COOLDOWN`].
pub const TRANSIENT_BACKOFF: Duration = Duration::from_secs(1);
/// While a cooldown lasts, how often a caller may read the store for a newer token.
pub const COOLDOWN_STORE_READ: Duration = Duration::from_secs(1);
/// Default login budget: token requests per rolling hour, far under Salesforce's ~3,600.
pub const DEFAULT_LOGIN_BUDGET: u32 = 600;

/// The last failure of a token request, and when the next one may be sent.
#[derive(Clone, Debug)]
struct Failure {
    error: Error,
    next_attempt: UnixMillis,
    consecutive: u32,
    /// When the store may next be read for a newer token.
    next_store_read: UnixMillis,
}

/// The gap after failed token requests; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Cooldown {
    failure: Mutex<Option<Failure>>,
}

impl Cooldown {
    /// The gap after the `consecutive`-th failure in a row, of which `error` is the last.
    pub(crate) fn gap(error: &Error, consecutive: u32) -> Duration {
        if error.is_reauth_required() || !error.is_retryable() {
            return FAILURE_COOLDOWN;
        }
        let doublings = consecutive.saturating_sub(1).min(5);
        (TRANSIENT_BACKOFF * 2u32.pow(doublings)).min(FAILURE_COOLDOWN)
    }

    /// Records a failed token request at local time `now`.
    pub(crate) fn record(&self, error: &Error, now: UnixMillis) {
        let mut f = lock(&self.failure);
        let consecutive = f.as_ref().map_or(1, |f| f.consecutive + 1);
        *f = Some(Failure {
            error: error.clone(),
            next_attempt: now.plus(Self::gap(error, consecutive)),
            consecutive,
            next_store_read: now.plus(COOLDOWN_STORE_READ),
        });
    }

    /// A success (or `recover`): the next request may go at once.
    pub(crate) fn clear(&self) {
        *lock(&self.failure) = None;
    }

    /// The error to return instead of a request at local time `now`, while the gap lasts:
    /// `ReauthRequired` as it was, anything else as [`Error::CoolingDown`].
    pub(crate) fn check(&self, now: UnixMillis) -> Option<Error> {
        let f = lock(&self.failure);
        let f = f.as_ref().filter(|f| now < f.next_attempt)?;
        Some(match &f.error {
            e @ Error::ReauthRequired { .. } => e.clone(),
            e => Error::CoolingDown {
                cause: e.cause().unwrap_or(Cause::Unknown),
                remaining: f.next_attempt.since(now),
                last_error: e.to_string(),
            },
        })
    }

    /// During a cooldown at local time `now`: whether a caller may read the store for a newer
    /// token now (at most once per [`COOLDOWN_STORE_READ`]); if so, the next read is due later.
    pub(crate) fn may_read_store(&self, now: UnixMillis) -> bool {
        let mut f = lock(&self.failure);
        match f.as_mut() {
            Some(f) if now >= f.next_store_read => {
                f.next_store_read = now.plus(COOLDOWN_STORE_READ);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The last failure, until a success clears it.
    pub(crate) fn last_error(&self) -> Option<Error> {
        lock(&self.failure).as_ref().map(|f| f.error.clone())
    }
}

/// Token requests allowed per rolling hour; see the module docs.
#[derive(Debug)]
pub(crate) struct LoginBudget {
    per_hour: u32,
    /// When each request of the last hour was sent (local clock), oldest first.
    sent: Mutex<VecDeque<UnixMillis>>,
}

/// The budget's window.
const HOUR: Duration = Duration::from_secs(3600);

impl LoginBudget {
    pub(crate) fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// The budget per rolling hour.
    pub(crate) fn per_hour(&self) -> u32 {
        self.per_hour
    }

    /// Spends one request at local time `now`, or says how long until one is free.
    pub(crate) fn spend(&self, now: UnixMillis) -> Result<(), Duration> {
        let mut sent = lock(&self.sent);
        while sent.front().is_some_and(|t| now.since(*t) >= HOUR) {
            sent.pop_front();
        }
        match sent.front() {
            Some(oldest) if sent.len() as u32 >= self.per_hour => {
                Err(HOUR.saturating_sub(now.since(*oldest)))
            }
            None if self.per_hour == 0 => Err(HOUR),
            _ => {
                sent.push_back(now);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> Error {
        Error::TokenEndpoint {
            cause: Cause::Transient,
            status: 503,
            detail: "unavailable".into(),
        }
    }

    fn dead() -> Error {
        Error::ReauthRequired {
            cause: Cause::RefreshTokenRevoked,
            detail: "expired access/refresh token".into(),
        }
    }

    #[test]
    fn transient_failures_double_the_gap_up_to_the_cooldown() {
        let gaps: Vec<u64> = (1..=8)
            .map(|n| Cooldown::gap(&transient(), n).as_secs())
            .collect();
        assert_eq!(gaps, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_failure_only_a_person_can_fix_waits_the_full_cooldown_at_once() {
        assert_eq!(Cooldown::gap(&dead(), 1), FAILURE_COOLDOWN);
    }

    #[test]
    fn the_cooldown_grows_with_each_failure_and_a_success_resets_it() {
        let c = Cooldown::default();
        let t0 = UnixMillis(1_000_000);
        assert!(c.check(t0).is_none());
        c.record(&transient(), t0);
        match c.check(t0) {
            Some(Error::CoolingDown {
                remaining, cause, ..
            }) => {
                assert_eq!(remaining, Duration::from_secs(1));
                assert_eq!(cause, Cause::Transient);
            }
            other => panic!("expected CoolingDown, got {other:?}"),
        }
        assert!(c.check(t0.plus(Duration::from_secs(1))).is_none());
        let t1 = t0.plus(Duration::from_secs(1));
        c.record(&transient(), t1);
        assert!(c.check(t1.plus(Duration::from_millis(1999))).is_some());
        assert!(c.check(t1.plus(Duration::from_secs(2))).is_none());
        c.clear();
        assert!(c.check(t1).is_none());
        assert!(c.last_error().is_none());
        // After the reset the next failure starts again at the first gap.
        c.record(&transient(), t1);
        assert!(c.check(t1.plus(Duration::from_secs(1))).is_none());
    }

    #[test]
    fn reauth_required_is_returned_as_it_was_during_the_cooldown() {
        let c = Cooldown::default();
        let t0 = UnixMillis(0);
        c.record(&dead(), t0);
        assert!(matches!(
            c.check(t0.plus(Duration::from_secs(29))),
            Some(Error::ReauthRequired {
                cause: Cause::RefreshTokenRevoked,
                ..
            })
        ));
        assert!(c.check(t0.plus(FAILURE_COOLDOWN)).is_none());
        assert!(c.last_error().is_some_and(|e| e.is_reauth_required()));
    }

    #[test]
    fn during_a_cooldown_the_store_is_read_at_most_once_a_second() {
        let c = Cooldown::default();
        let t0 = UnixMillis(0);
        c.record(&dead(), t0);
        assert!(!c.may_read_store(t0), "the failed refresh has just read it");
        let t1 = t0.plus(COOLDOWN_STORE_READ);
        assert!(c.may_read_store(t1));
        assert!(!c.may_read_store(t1.plus(Duration::from_millis(999))));
        assert!(c.may_read_store(t1.plus(COOLDOWN_STORE_READ)));
        c.clear();
        assert!(c.may_read_store(t1));
    }

    #[test]
    fn the_budget_is_a_rolling_hour() {
        let b = LoginBudget::new(3);
        let t0 = UnixMillis(10_000_000);
        let min = Duration::from_secs(60);
        assert_eq!(b.spend(t0), Ok(()));
        assert_eq!(b.spend(t0.plus(min * 10)), Ok(()));
        assert_eq!(b.spend(t0.plus(min * 20)), Ok(()));
        // Full: free again when the first request is an hour old.
        assert_eq!(b.spend(t0.plus(min * 30)), Err(min * 30));
        assert_eq!(b.spend(t0.plus(min * 59)), Err(min));
        assert_eq!(b.spend(t0.plus(min * 60)), Ok(()));
        // The window rolled: the second one is the oldest now.
        assert_eq!(b.spend(t0.plus(min * 61)), Err(min * 9));
        assert_eq!(b.spend(t0.plus(min * 70)), Ok(()));
    }

    #[test]
    fn a_zero_budget_refuses_every_request() {
        let b = LoginBudget::new(0);
        assert_eq!(b.spend(UnixMillis(0)), Err(HOUR));
        assert_eq!(b.per_hour(), 0);
    }
}
