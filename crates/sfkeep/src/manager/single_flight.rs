//! One shared run of an async job at a time: callers that arrive while it runs join it
//! instead of starting their own.
//!
//! The primitive under the manager's refresh, shaped like smithy-rs's `ExpiringCache`: it
//! knows nothing about tokens, expiry or stores; the policy on top of it
//! ([`super::refresh`]) decides when a job is needed. Two differences: what is shared is the
//! job in flight, not its value (the manager keeps the value, for its lock-free fast path);
//! and the job runs in a spawned task, so a caller that goes away (a dropped future, a
//! timeout) never cancels it — a token request the server has received may rotate the
//! refresh token, and its answer must be stored whoever is still waiting.

use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::sync::lock;

/// A job in flight; clones await the same output.
pub(crate) type Flight<T> = Shared<BoxFuture<'static, T>>;

/// At most one job at a time; see the module docs.
pub(crate) struct SingleFlight<T: Clone> {
    slot: Arc<Mutex<Option<Flight<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new(Mutex::new(None)),
        }
    }

    /// The job in flight, or a new one: `start` runs under the slot's lock (so no second job
    /// can start meanwhile) and either answers at once (`Err`: no job is needed, e.g. another
    /// one just finished) or returns the job to spawn. A job that panics or is aborted ends
    /// with `aborted(description)`. Must be called inside a Tokio runtime.
    pub(crate) fn join_or_start<J>(
        &self,
        start: impl FnOnce() -> Result<J, T>,
        aborted: fn(String) -> T,
    ) -> Result<Flight<T>, T>
    where
        J: std::future::Future<Output = T> + Send + 'static,
    {
        let mut slot = lock(&self.slot);
        if let Some(f) = slot.as_ref() {
            return Ok(f.clone());
        }
        let job = start()?;
        let clear = ClearOnDrop(Arc::clone(&self.slot));
        let task = tokio::spawn(async move {
            let _clear = clear;
            job.await
        });
        let flight = async move { task.await.unwrap_or_else(|e| aborted(e.to_string())) }
            .boxed()
            .shared();
        *slot = Some(flight.clone());
        Ok(flight)
    }

    /// Whether a job is in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> bool {
        lock(&self.slot).is_some()
    }
}

/// Empties the slot when the job ends, however it ends (a panic included), so the next
/// caller starts a new job. It takes the slot's lock after `join_or_start` released it: the
/// flight is in the slot by then.
struct ClearOnDrop<T>(Arc<Mutex<Option<Flight<T>>>>);

impl<T> Drop for ClearOnDrop<T> {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    fn aborted(e: String) -> Result<u32, String> {
        Err(e)
    }

    #[tokio::test]
    async fn callers_during_a_job_join_it() {
        let sf = SingleFlight::<Result<u32, String>>::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = oneshot::channel::<()>();
        let mut gate = Some(gate);
        let mut flights = Vec::new();
        for _ in 0..5 {
            let runs = Arc::clone(&runs);
            let gate = gate.take();
            let f = sf
                .join_or_start(
                    move || {
                        Ok(async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            let _ = gate.expect("only the first caller starts").await;
                            Ok(7)
                        })
                    },
                    aborted,
                )
                .unwrap();
            flights.push(f);
        }
        assert!(sf.in_flight());
        release.send(()).unwrap();
        for f in flights {
            assert_eq!(f.await, Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!sf.in_flight(), "the slot is cleared when the job ends");
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_cancel_the_job() {
        let sf = SingleFlight::<Result<u32, String>>::new();
        let (release, gate) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel::<()>();
        let f = sf
            .join_or_start(
                move || {
                    Ok(async move {
                        let _ = gate.await;
                        let _ = done_tx.send(());
                        Ok(1)
                    })
                },
                aborted,
            )
            .unwrap();
        drop(f);
        release.send(()).unwrap();
        done.await.expect("the job ran to its end");
    }

    #[tokio::test]
    async fn start_may_answer_without_a_job() {
        let sf = SingleFlight::<Result<u32, String>>::new();
        let r = sf.join_or_start(|| Err::<std::future::Ready<_>, _>(Ok(3)), aborted);
        assert!(matches!(r, Err(Ok(3))));
        assert!(!sf.in_flight());
    }

    #[tokio::test]
    async fn a_panicking_job_ends_the_flight_with_the_abort_value() {
        let sf = SingleFlight::<Result<u32, String>>::new();
        let f = sf
            .join_or_start(
                || {
                    Ok(async {
                        if true {
                            panic!("boom");
                        }
                        Ok(0)
                    })
                },
                aborted,
            )
            .unwrap();
        assert!(f.await.is_err());
        assert!(!sf.in_flight(), "the next caller starts a new job");
    }
}
