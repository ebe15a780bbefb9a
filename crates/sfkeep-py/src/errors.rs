//! From the library's [`sfkeep::Error`] to the Python exceptions of `sfkeep.errors`.
//!
//! | library error | Python exception |
//! |---|---|
//! | `ReauthRequired`, or a cooldown after a failure only a person can fix | `ReauthRequired` (`.cause` as `sfkeep doctor` names it, `.fix`) |
//! | `StoreUnavailable`, `Store` | `StoreUnavailable` |
//! | `Transport`, `RefreshTimeout`, `LoginBudgetExhausted`, a transient token-endpoint failure or cooldown | `TransientError` |
//! | `Config` | `ConfigError` (also a `ValueError`) |
//! | `MalformedResponse` | `MalformedResponse` |
//! | `Api` | `ApiError` (`.status`, `.error_code`) |
//!
//! Every message is the library's own, which never contains a secret. The classes are defined
//! in Python (`python/sfkeep/errors.py`) so they carry docstrings and keyword attributes.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use sfkeep::Error;
use sfkeep::diagnose::evidence::{self, Facts, GrantAttempt};
use sfkeep::diagnose::{Cause, DiagnosisCause};
use sfkeep::token::GrantKind;

/// The exception classes, by name.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `sfkeep.SfkeepError`, the base.
    Base,
    /// `sfkeep.ReauthRequired`.
    ReauthRequired,
    /// `sfkeep.StoreUnavailable`.
    StoreUnavailable,
    /// `sfkeep.TransientError`.
    Transient,
    /// `sfkeep.ConfigError`.
    Config,
    /// `sfkeep.MalformedResponse`.
    Malformed,
    /// `sfkeep.ApiError`.
    Api,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Base => "SfkeepError",
            Kind::ReauthRequired => "ReauthRequired",
            Kind::StoreUnavailable => "StoreUnavailable",
            Kind::Transient => "TransientError",
            Kind::Config => "ConfigError",
            Kind::Malformed => "MalformedResponse",
            Kind::Api => "ApiError",
        }
    }

    fn class<'py>(self, py: Python<'py>) -> PyResult<&'py Bound<'py, PyType>> {
        static CLASSES: [PyOnceLock<Py<PyType>>; 7] = [
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
        ];
        CLASSES[self as usize].import(py, "sfkeep.errors", self.class_name())
    }
}

/// An exception of `kind` with `message` and keyword attributes.
pub fn raise(py: Python<'_>, kind: Kind, message: &str, attrs: &[(&str, Attr)]) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        for (k, v) in attrs {
            match v {
                Attr::Str(s) => kwargs.set_item(k, s)?,
                Attr::OptStr(s) => kwargs.set_item(k, s.as_deref())?,
                Attr::Bool(b) => kwargs.set_item(k, b)?,
                Attr::Int(i) => kwargs.set_item(k, i)?,
            }
        }
        let value = kind.class(py)?.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(value))
    };
    // If even building the exception fails (the Python package is broken), that error says
    // what is wrong; it never becomes a panic.
    build().unwrap_or_else(|e| e)
}

/// A keyword attribute of an exception.
#[derive(Debug)]
pub enum Attr {
    /// A string.
    Str(String),
    /// A string or `None`.
    OptStr(Option<String>),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
}

/// What the manager knows that the error alone does not: which grants it tries, for naming a
/// credential failure the way `sfkeep doctor` does.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The primary grant, then the fallback grant, if any.
    pub grants: Vec<GrantKind>,
}

/// Converts a library error into the matching Python exception.
pub fn to_py(py: Python<'_>, e: &Error, ctx: &Context) -> PyErr {
    let message = e.to_string();
    let cause = e.cause();
    let common = |extra: Vec<(&'static str, Attr)>| {
        let mut attrs = vec![
            (
                "token_error",
                Attr::OptStr(cause.map(|c| c.as_str().to_owned())),
            ),
            ("retryable", Attr::Bool(e.is_retryable())),
        ];
        attrs.extend(extra);
        attrs
    };
    match e {
        _ if e.is_reauth_required() => {
            let c = cause.unwrap_or(Cause::Unknown);
            let detail = match e {
                Error::ReauthRequired { detail, .. } => detail.clone(),
                Error::CoolingDown { last_error, .. } => last_error.clone(),
                _ => message.clone(),
            };
            let (named, fix) = diagnosed(c, &detail, ctx);
            raise(
                py,
                Kind::ReauthRequired,
                &message,
                &common(vec![
                    ("cause", Attr::Str(named)),
                    ("fix", Attr::Str(fix)),
                    ("detail", Attr::Str(detail)),
                ]),
            )
        }
        Error::StoreUnavailable | Error::Store { .. } => {
            raise(py, Kind::StoreUnavailable, &message, &common(vec![]))
        }
        Error::Config(_) => raise(py, Kind::Config, &message, &common(vec![])),
        // A body over the size cap was a MalformedResponse before the library named it.
        Error::MalformedResponse { .. } | Error::ResponseTooLarge { .. } => {
            raise(py, Kind::Malformed, &message, &common(vec![]))
        }
        Error::Api(a) => raise(
            py,
            Kind::Api,
            &message,
            &common(vec![
                ("status", Attr::Int(i64::from(a.status))),
                ("error_code", Attr::Str(a.error_code.clone())),
            ]),
        ),
        _ if e.is_retryable() => raise(py, Kind::Transient, &message, &common(vec![])),
        _ => raise(py, Kind::Base, &message, &common(vec![])),
    }
}

/// The cause as `sfkeep doctor` names it, and its fix: a token endpoint's words name a class
/// of failure (a frozen user is refused as a plain "authentication failure"), the diagnosis
/// names what to do about it. Same rules as doctor's dry refresh.
fn diagnosed(cause: Cause, detail: &str, ctx: &Context) -> (String, String) {
    let facts = Facts {
        dry_refresh: ctx
            .grants
            .iter()
            .map(|&grant| GrantAttempt::requested(grant, Err((cause, detail.to_owned()))))
            .collect(),
        ..Facts::default()
    };
    let d = evidence::diagnose(&facts);
    if d.verdict == DiagnosisCause::Unknown || d.verdict == DiagnosisCause::Healthy {
        return (cause.as_str().to_owned(), cause.fix().to_owned());
    }
    (d.verdict.as_str().to_owned(), d.top().fix.clone())
}
