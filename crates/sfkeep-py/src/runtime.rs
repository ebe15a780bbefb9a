//! The per-process tokio runtime, and what happens to it across `fork`.
//!
//! One multi-thread runtime serves every manager of a process: it runs the refreshes (a
//! refresh is a spawned task, so a Python thread that gives up never cancels a token request)
//! and drives the sockets of token requests and of the Redis store. Python threads that wait
//! for a token block on it with the GIL released.
//!
//! A pre-fork server (gunicorn, uWSGI, `multiprocessing` with `fork`) imports the app, and
//! often makes its first token request, in the parent, then forks workers. Threads do not
//! survive `fork`: in a child, the parent's runtime has no workers, and every socket it
//! registered belongs to a reactor nobody polls. So a child never touches the parent's
//! runtime or anything built on it. The process's **fork epoch** moves in the child (through
//! `os.register_at_fork(after_in_child=…)`, registered when the module is imported, and,
//! for a `fork()` that bypasses Python's hooks, by comparing process ids on the slow path);
//! a manager whose parts were built in another epoch builds new ones (see
//! [`crate::manager`]). The parent's runtime is leaked in the child, never dropped: dropping
//! it would wait for worker threads that do not exist there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

use crate::events::EventQueue;

/// Moves once in every child after a fork.
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The runtime of the current epoch.
static CURRENT: Mutex<Option<Arc<ProcessRuntime>>> = Mutex::new(None);

/// A runtime and the process and epoch it was built in.
#[derive(Debug)]
pub struct ProcessRuntime {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// The process it was built in.
    pub pid: u32,
    /// The runtime.
    pub runtime: Runtime,
    /// This epoch's queue of auth events for Python `logging`.
    pub events: Arc<EventQueue>,
}

impl ProcessRuntime {
    /// This runtime can still be used in this process.
    pub fn is_current(&self) -> bool {
        self.epoch == FORK_EPOCH.load(Ordering::Acquire)
    }
}

/// The fork epoch this process is in (one atomic load: cheap enough for the fast path).
pub fn epoch() -> u64 {
    FORK_EPOCH.load(Ordering::Acquire)
}

/// Called in a child right after `fork` (Python's `after_in_child` hook).
pub fn after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Moves the epoch if this process is not the one the current runtime was built in: a
/// `fork()` from C that ran no Python hook. Called on slow paths only (`getpid` is a system
/// call).
pub fn notice_fork_without_hooks() {
    let stale = lock_current()
        .as_ref()
        .is_some_and(|rt| rt.pid != std::process::id() && rt.is_current());
    if stale {
        after_fork_in_child();
    }
}

/// The runtime of this process's epoch, built on first use.
///
/// Only called while holding the GIL, and the lock is never held across anything that
/// releases it: so when Python forks (the forking thread holds the GIL), no other thread is
/// inside this lock, and the child can take it.
pub fn current() -> Result<Arc<ProcessRuntime>, std::io::Error> {
    let mut slot = lock_current();
    if let Some(rt) = slot.as_ref()
        && rt.is_current()
    {
        return Ok(Arc::clone(rt));
    }
    if let Some(old) = slot.take() {
        // The parent's runtime: its threads are gone in this process. Never drop it.
        std::mem::forget(old);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Token requests and store calls are few; two workers keep one slow store call from
        // holding up a refresh, and fit a two-core machine.
        .worker_threads(2)
        .thread_name("sfkeep-runtime")
        .enable_all()
        .build()?;
    let rt = Arc::new(ProcessRuntime {
        epoch: epoch(),
        pid: std::process::id(),
        runtime,
        events: EventQueue::start()?,
    });
    *slot = Some(Arc::clone(&rt));
    Ok(rt)
}

fn lock_current() -> std::sync::MutexGuard<'static, Option<Arc<ProcessRuntime>>> {
    sfkeep::sync::lock(&CURRENT)
}
