//! Auth events as Python `logging` records on the logger `sfkeep.auth`.
//!
//! The library emits an event on whatever thread produced it, often a runtime worker in the
//! middle of a refresh, and its sink contract forbids blocking there. Taking the GIL can
//! block for a whole switch interval, so the sink only queues the event; records are written
//! by whichever comes first of
//!
//! - the Python thread that called into sfkeep, before the call returns (so the records of a
//!   refresh a call waited for are logged before its result or exception), and
//! - a delivery thread of this process, for events nobody waits for (a background refresh).
//!
//! A record's message says what happened; its `extra` fields (`sfkeep_event`, `sfkeep_grant`,
//! `sfkeep_generation`, `sfkeep_fingerprint`, `sfkeep_cause`, `sfkeep_at_ms`) carry the same as
//! data. Like every event, they hold a token's fingerprint only, never a token.
//!
//! The queue belongs to one fork epoch (see [`crate::runtime`]): a child gets its own queue
//! and delivery thread, and never touches a lock a parent thread may have held at `fork`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use sfkeep::event::{AuthEvent, AuthEventKind, EventSink};

/// Python `logging` levels.
const DEBUG: i32 = 10;
const INFO: i32 = 20;
const WARNING: i32 = 30;
const ERROR: i32 = 40;

/// The logger's name.
pub const LOGGER: &str = "sfkeep.auth";

/// Events waiting to be logged.
#[derive(Debug, Default)]
pub struct EventQueue {
    pending: Mutex<VecDeque<AuthEvent>>,
    ready: Condvar,
}

impl EventQueue {
    /// A queue and its delivery thread.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let q = Arc::new(Self::default());
        let worker = Arc::clone(&q);
        std::thread::Builder::new()
            .name("sfkeep-log".into())
            .spawn(move || worker.deliver_forever())?;
        Ok(q)
    }

    fn push(&self, e: &AuthEvent) {
        self.lock().push_back(e.clone());
        self.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<AuthEvent>> {
        sfkeep::sync::lock(&self.pending)
    }

    /// Logs every queued event (the caller holds the GIL).
    pub fn drain(&self, py: Python<'_>) {
        let batch = std::mem::take(&mut *self.lock());
        if batch.is_empty() {
            return;
        }
        let Ok(logger) = logger(py) else { return };
        for e in &batch {
            // Logging must never turn into the caller's error: a broken handler is Python's
            // own business (it reports handler errors itself).
            let _ = log(py, logger, e);
        }
    }

    fn deliver_forever(&self) {
        loop {
            {
                let mut pending = self.lock();
                while pending.is_empty() {
                    pending = self.ready.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
            }
            // None: the interpreter is shutting down; nobody can read the records any more.
            if Python::try_attach(|py| self.drain(py)).is_none() {
                return;
            }
        }
    }
}

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER_OBJ: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER_OBJ
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("logging")?
                    .call_method1("getLogger", (LOGGER,))?
                    .unbind(),
            )
        })
        .map(|l| l.bind(py))
}

fn level(kind: &AuthEventKind) -> i32 {
    match kind {
        AuthEventKind::ReauthRequired { .. } => ERROR,
        AuthEventKind::RefreshFailed { .. }
        | AuthEventKind::StoreUnavailable { .. }
        | AuthEventKind::RecordRejected { .. }
        | AuthEventKind::LoginBudgetHeld { .. }
        | AuthEventKind::FallbackUsed { .. } => WARNING,
        AuthEventKind::ApiCallSucceeded => DEBUG,
        _ => INFO,
    }
}

/// One line: the event's name, then what it says.
fn message(e: &AuthEvent) -> String {
    let mut m = e.kind.name().to_owned();
    let mut add = |k: &str, v: &dyn std::fmt::Display| m.push_str(&format!(" {k}={v}"));
    match &e.kind {
        AuthEventKind::TokenRefreshed {
            reason,
            latency_ms,
            rotated,
        } => {
            add("reason", &reason.as_str());
            add("latency_ms", latency_ms);
            add("rotated", rotated);
        }
        AuthEventKind::RefreshFailed {
            reason,
            cause,
            detail,
        } => {
            add("reason", &reason.as_str());
            add("cause", &cause.as_str());
            add("detail", &format!("{detail:?}"));
        }
        AuthEventKind::FallbackUsed { cause } | AuthEventKind::ReauthRequired { cause } => {
            add("cause", &cause.as_str());
            add("fix", &format!("{:?}", cause.fix()));
        }
        AuthEventKind::TokenInvalidated { api } => add("api", api),
        AuthEventKind::LoginBudgetHeld { retry_after_ms } => add("retry_after_ms", retry_after_ms),
        AuthEventKind::StoreUnavailable { detail } | AuthEventKind::RecordRejected { detail } => {
            add("detail", &format!("{detail:?}"))
        }
        AuthEventKind::TokenWrittenBack {
            replaced: Some(g), ..
        } => add("replaced", g),
        _ => {}
    }
    if let Some(g) = e.grant {
        add("grant", &g.as_str());
    }
    if let Some(g) = e.generation {
        add("generation", &g);
    }
    if let Some(f) = &e.fingerprint {
        add("token", f);
    }
    m
}

fn cause_of(kind: &AuthEventKind) -> Option<&'static str> {
    match kind {
        AuthEventKind::RefreshFailed { cause, .. }
        | AuthEventKind::FallbackUsed { cause }
        | AuthEventKind::ReauthRequired { cause } => Some(cause.as_str()),
        _ => None,
    }
}

fn log(py: Python<'_>, logger: &Bound<'_, PyAny>, e: &AuthEvent) -> PyResult<()> {
    let lvl = level(&e.kind);
    if !logger.call_method1("isEnabledFor", (lvl,))?.is_truthy()? {
        return Ok(());
    }
    let extra = PyDict::new(py);
    extra.set_item("sfkeep_event", e.kind.name())?;
    extra.set_item("sfkeep_grant", e.grant.map(|g| g.as_str()))?;
    extra.set_item("sfkeep_generation", e.generation)?;
    extra.set_item("sfkeep_fingerprint", e.fingerprint.as_deref())?;
    extra.set_item("sfkeep_cause", cause_of(&e.kind))?;
    extra.set_item("sfkeep_at_ms", e.at.0)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("extra", extra)?;
    // `%s` with the message as an argument: a `%` in a server's words is not a format.
    logger.call_method("log", (lvl, "%s", message(e)), Some(&kwargs))?;
    Ok(())
}

/// The sink a manager gets: queues into its epoch's queue.
#[derive(Debug, Clone)]
pub struct LoggingSink(pub Arc<EventQueue>);

impl EventSink for LoggingSink {
    fn emit(&self, event: &AuthEvent) {
        self.0.push(event);
    }
}
