//! `sfkeep.Token` and `sfkeep.Status`: what `TokenManager.token()` and `.status()` return.

use pyo3::prelude::*;

/// A valid access token and where to use it.
///
/// `access_token` is the secret itself (for an `Authorization: Bearer` header); `repr()` and
/// `str()` show only its fingerprint.
#[pyclass(frozen, name = "Token", module = "sfkeep._native")]
#[derive(Debug)]
pub struct PyToken(pub sfkeep::Token);

#[pymethods]
impl PyToken {
    /// The access token (a secret: send it, never log it).
    #[getter]
    fn access_token(&self) -> &str {
        self.0.access_token().expose_secret()
    }

    /// The instance URL API calls go to, e.g. `https://acme.my.salesforce.com`.
    #[getter]
    fn instance_url(&self) -> &str {
        self.0.instance_url()
    }

    /// The generation: pass it to `TokenManager.invalidate_if_current` after a 401.
    #[getter]
    fn generation(&self) -> u64 {
        self.0.generation()
    }

    /// When the token must no longer be used, in seconds since the Unix epoch (server clock).
    #[getter]
    fn expires_at(&self) -> f64 {
        self.0.record().expires_at.0 as f64 / 1000.0
    }

    /// The first 8 hex digits of the token's SHA-256: safe to log.
    #[getter]
    fn fingerprint(&self) -> String {
        self.0.record().fingerprint()
    }

    fn __repr__(&self) -> String {
        format!(
            "Token(instance_url={:?}, generation={}, expires_at={}, fingerprint={:?})",
            self.0.instance_url(),
            self.0.generation(),
            self.expires_at(),
            self.fingerprint()
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

/// The manager's state, as `sfkeep status` shows it. Never contains a token.
#[pyclass(frozen, get_all, name = "Status", module = "sfkeep._native")]
#[derive(Debug)]
pub struct PyStatus {
    /// `fresh`, `stale`, `expired`, `invalidated`, `missing` or `reauth_required`.
    state: String,
    /// The current token's generation.
    generation: Option<u64>,
    /// Seconds left before the current token must not be used.
    expires_in: Option<f64>,
    /// The current token's fingerprint.
    fingerprint: Option<String>,
    /// Where its expiry came from.
    expiry_source: Option<String>,
    /// The store kind: `memory`, `file` or `redis`.
    store: String,
    /// The last failure's cause, if the last token request failed.
    last_failure: Option<String>,
    /// Measured server-minus-local clock offset, in milliseconds.
    clock_offset_ms: i64,
}

impl From<sfkeep::manager::ManagerStatus> for PyStatus {
    fn from(s: sfkeep::manager::ManagerStatus) -> Self {
        Self {
            state: s.state.to_string(),
            generation: s.generation,
            expires_in: s.expires_in.map(|d| d.as_secs_f64()),
            fingerprint: s.fingerprint,
            expiry_source: s.expiry_source.map(|e| expiry_source_name(e).to_owned()),
            store: s.store.to_owned(),
            last_failure: s.last_failure.map(|c| c.as_str().to_owned()),
            clock_offset_ms: s.clock_offset_ms,
        }
    }
}

#[pymethods]
impl PyStatus {
    fn __repr__(&self) -> String {
        format!(
            "Status(state={:?}, generation={:?}, expires_in={:?}, fingerprint={:?}, store={:?}, last_failure={:?})",
            self.state,
            self.generation,
            self.expires_in,
            self.fingerprint,
            self.store,
            self.last_failure
        )
    }
}

/// The snake_case name of an expiry source, as in the library's JSON.
fn expiry_source_name(e: sfkeep::token::ExpirySource) -> &'static str {
    use sfkeep::token::ExpirySource;
    match e {
        ExpirySource::Introspection => "introspection",
        ExpirySource::SoapSessionSecondsValid => "soap_session_seconds_valid",
        ExpirySource::Configured => "configured",
    }
}
