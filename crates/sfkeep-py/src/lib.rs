//! `sfkeep._native`: the extension module behind the `sfkeep` Python package.
//!
//! - [`manager`]: `TokenManager` (a keyword constructor and `from_profile`), one library
//!   manager per fork epoch;
//! - [`token`]: the `Token` and `Status` it returns;
//! - [`heal`]: the library's heal step and retry policy, for the pure-Python `requests`
//!   session: Python never classifies a response itself;
//! - [`errors`]: library errors as the exceptions of `sfkeep.errors`;
//! - [`events`]: auth events as `logging` records on `sfkeep.auth`;
//! - [`runtime`]: the per-process runtime and what `fork` does to it.
//!
//! Nothing here panics across the boundary on bad input: every failure is a Python exception
//! (and PyO3 turns an unexpected panic into `PanicException` rather than unwinding into C).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod errors;
pub mod events;
pub mod heal;
pub mod manager;
pub mod profile;
pub mod runtime;
pub mod spec;
pub mod token;

use pyo3::prelude::*;

/// Moves this process's fork epoch: registered with `os.register_at_fork(after_in_child=…)`
/// by `sfkeep/__init__.py`.
#[pyfunction]
fn _after_fork_in_child() {
    runtime::after_fork_in_child();
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<manager::PyTokenManager>()?;
    m.add_class::<token::PyToken>()?;
    m.add_class::<token::PyStatus>()?;
    m.add_class::<heal::PyHealStep>()?;
    m.add_class::<heal::PyRetryPolicy>()?;
    m.add_class::<heal::PyRetryBudget>()?;
    m.add_class::<heal::PyRetryRun>()?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(heal::api_for_path, m)?)?;
    m.add_function(wrap_pyfunction!(heal::is_idempotent_method, m)?)?;
    m.add_function(wrap_pyfunction!(heal::answer_is_transient, m)?)?;
    m.add_function(wrap_pyfunction!(heal::parse_retry_after, m)?)?;
    m.add_function(wrap_pyfunction!(heal::with_soap_session, m)?)?;
    m.add("LOGGER", events::LOGGER)?;
    Ok(())
}
