//! `sfkeep.TokenManager`: the library's manager, one per fork epoch.
//!
//! A Python `TokenManager` holds a *recipe* (the checked settings) and the live manager built
//! from it in the current fork epoch. After a fork, the first call in the child builds a new
//! live manager on the child's runtime; the parent's is leaked, never used or dropped there
//! (see [`crate::runtime`]). What a child inherits:
//!
//! - with a file or Redis store: the token, through the store. The child adopts the stored
//!   token without a token request;
//! - with the memory store: nothing. Each worker gets its own token (one token request each).
//!
//! Every method takes the GIL only to enter and leave: waiting for a refresh or the store
//! happens with the GIL released, so other Python threads run meanwhile. The fast path (a
//! fresh cached token) does no I/O and keeps the GIL.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use sfkeep::TokenManager;
use sfkeep::diagnose::api_error::Api;
use sfkeep::event::EventSink;

use crate::errors::{self, Context, Kind};
use crate::events::LoggingSink;
use crate::runtime::{self, ProcessRuntime};
use crate::spec::{BuildError, SpecError};
use crate::token::{PyStatus, PyToken};

/// Builds the library manager for the current epoch (called with the runtime entered and
/// the GIL released). Gets the epoch's logging sink.
pub type Recipe = Arc<dyn Fn(Arc<dyn EventSink>) -> Result<TokenManager, BuildError> + Send + Sync>;

/// A manager and the runtime it was built on.
struct Live {
    rt: Arc<ProcessRuntime>,
    manager: TokenManager,
}

/// Keeps one Salesforce credential authenticated: proactive refresh, one token request per
/// session death across threads (and, with a file or Redis store, across processes).
#[pyclass(frozen, name = "TokenManager", module = "sfkeep._native", subclass)]
pub struct PyTokenManager {
    recipe: Recipe,
    ctx: Context,
    /// What `repr()` shows: no secret.
    describe: String,
    /// Locked only while holding the GIL and never across a GIL release, so a fork (which
    /// holds the GIL) never copies it locked.
    live: Mutex<Option<Arc<Live>>>,
}

impl PyTokenManager {
    /// A manager from a recipe; builds it at once so bad settings fail here.
    pub fn create(
        py: Python<'_>,
        recipe: Recipe,
        ctx: Context,
        describe: String,
    ) -> PyResult<Self> {
        let m = Self {
            recipe,
            ctx,
            describe,
            live: Mutex::new(None),
        };
        m.live(py)?;
        Ok(m)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Live>>> {
        sfkeep::sync::lock(&self.live)
    }

    /// The live manager of this epoch, built if needed.
    fn live(&self, py: Python<'_>) -> PyResult<Arc<Live>> {
        if let Some(l) = self.slot().as_ref()
            && l.rt.is_current()
        {
            return Ok(Arc::clone(l));
        }
        let rt = runtime::current().map_err(|e| {
            errors::raise(
                py,
                Kind::Base,
                &format!("cannot start the sfkeep runtime: {e}"),
                &[],
            )
        })?;
        let recipe = Arc::clone(&self.recipe);
        let sink: Arc<dyn EventSink> = Arc::new(LoggingSink(Arc::clone(&rt.events)));
        let rt2 = Arc::clone(&rt);
        let built = py.detach(move || {
            let _entered = rt2.runtime.enter();
            recipe(sink)
        });
        rt.events.drain(py);
        let manager = built.map_err(|e| self.build_error(py, e))?;
        let live = Arc::new(Live { rt, manager });
        let mut slot = self.slot();
        match slot.as_ref() {
            // Another thread built one for this epoch meanwhile: use it, drop ours.
            Some(l) if l.rt.is_current() => Ok(Arc::clone(l)),
            _ => {
                if let Some(old) = slot.replace(Arc::clone(&live)) {
                    // The parent's: its runtime's threads do not exist here.
                    std::mem::forget(old);
                }
                Ok(live)
            }
        }
    }

    /// Runs `f` with this epoch's library manager (no I/O: the GIL stays held), then logs
    /// the events it produced.
    pub fn with_manager<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&TokenManager) -> R,
    ) -> PyResult<R> {
        let live = self.live(py)?;
        let out = f(&live.manager);
        live.rt.events.drain(py);
        Ok(out)
    }

    fn build_error(&self, py: Python<'_>, e: BuildError) -> PyErr {
        match e {
            BuildError::Lib(e) => errors::to_py(py, &e, &self.ctx),
            BuildError::Spec(s) => errors::raise(py, s.kind, &s.message, &[]),
            BuildError::Reauth {
                cause,
                message,
                fix,
            } => errors::raise(
                py,
                Kind::ReauthRequired,
                &message,
                &[
                    ("cause", errors::Attr::Str(cause.into())),
                    ("fix", errors::Attr::Str(fix.into())),
                    ("detail", errors::Attr::Str(String::new())),
                ],
            ),
        }
    }

    /// Runs `f` on the runtime with the GIL released, then logs the events it produced.
    fn blocking<T, F, Fut>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send,
        F: FnOnce(TokenManager) -> Fut + Send,
        Fut: std::future::Future<Output = sfkeep::Result<T>>,
    {
        runtime::notice_fork_without_hooks();
        let live = self.live(py)?;
        let l2 = Arc::clone(&live);
        let out = py.detach(move || l2.rt.runtime.block_on(f(l2.manager.clone())));
        live.rt.events.drain(py);
        out.map_err(|e| errors::to_py(py, &e, &self.ctx))
    }
}

#[pymethods]
impl PyTokenManager {
    /// A manager from keyword arguments, named as in a profile (see `from_profile`).
    #[new]
    #[pyo3(signature = (
        *,
        login_url,
        grant = "refresh_token",
        fallback_grant = None,
        client_id = None,
        client_secret = None,
        refresh_token = None,
        username = None,
        password = None,
        security_token = None,
        private_key = None,
        api_version = "59.0",
        store = "memory",
        store_path = None,
        redis_url = None,
        cache_key = None,
        session_timeout = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        login_url: String,
        grant: &str,
        fallback_grant: Option<&str>,
        client_id: Option<String>,
        client_secret: Option<String>,
        refresh_token: Option<String>,
        username: Option<String>,
        password: Option<String>,
        security_token: Option<String>,
        private_key: Option<String>,
        api_version: &str,
        store: &str,
        store_path: Option<std::path::PathBuf>,
        redis_url: Option<String>,
        cache_key: Option<String>,
        session_timeout: Option<f64>,
    ) -> PyResult<Self> {
        use sfkeep::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};
        let creds = crate::spec::Credentials {
            client_id,
            client_secret: client_secret.map(ClientSecret::new),
            refresh_token: refresh_token.map(RefreshToken::new),
            username,
            password: password.map(Password::new),
            security_token: security_token.map(SecurityToken::new),
            private_key: private_key.map(PrivateKeyPem::new),
            api_version: api_version.to_owned(),
        };
        let spec_err = |e: SpecError| errors::raise(py, e.kind, &e.message, &[]);
        let primary = creds.grant(grant).map_err(spec_err)?;
        let fallback = match fallback_grant {
            Some(f) if f != grant => Some(creds.grant(f).map_err(spec_err)?),
            _ => None,
        };
        let store_spec =
            crate::spec::StoreSpec::parse(store, store_path, redis_url, cache_key.as_deref())
                .map_err(spec_err)?;
        let session_timeout = match session_timeout {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                return Err(spec_err(SpecError {
                    kind: Kind::Config,
                    message: format!(
                        "TokenManager(...): session_timeout must be a positive number of seconds, not {s}"
                    ),
                }));
            }
            Some(s) => Some(std::time::Duration::from_secs_f64(s)),
            None => None,
        };
        let ctx = Context {
            grants: std::iter::once(primary.kind())
                .chain(fallback.as_ref().map(|f| f.kind()))
                .collect(),
        };
        let describe = format!(
            "login_url={login_url:?}, grant={grant:?}, fallback_grant={:?}, store={store:?}",
            fallback.as_ref().map(|f| f.kind().as_str())
        );
        let spec = crate::spec::ManagerSpec {
            login_url,
            grant: primary,
            fallback,
            store: store_spec,
            session_timeout,
            username: creds.username.clone(),
        };
        let recipe: Recipe = Arc::new(move |sink| spec.build(sink));
        Self::create(py, recipe, ctx, describe)
    }

    /// A manager from profile `name` of an sfkeep config file, built as the `sfkeep` CLI builds
    /// it: the same file lookup (`config`, else `./sfkeep.toml`, else the user config dir), the
    /// same secrets, grants, store and store key, so this process and the profile's CLI
    /// processes share one token. `name` defaults to `$SFKEEP_PROFILE`, else `default`.
    #[staticmethod]
    #[pyo3(signature = (name = None, config = None))]
    fn from_profile(
        py: Python<'_>,
        name: Option<String>,
        config: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let name = name
            .or_else(|| {
                std::env::var("SFKEEP_PROFILE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "default".to_owned());
        let spec = crate::profile::load(&name, config.as_deref())
            .map_err(|e| errors::raise(py, e.kind, &e.message, &[]))?;
        let ctx = Context {
            grants: spec.grant_kinds(),
        };
        let describe = format!(
            "{}, login_url={:?}, grant={:?}, fallback_grant={:?}, store={:?}",
            spec.describe,
            spec.login_url,
            spec.grant,
            spec.fallback,
            spec.store.describe()
        );
        let recipe: Recipe = Arc::new(move |sink| spec.build(sink));
        Self::create(py, recipe, ctx, describe)
    }

    /// A valid token. A fresh cached token is returned at once; otherwise this waits (with
    /// the GIL released) for the one shared refresh.
    ///
    /// Raises `ReauthRequired` (with `.cause` and `.fix`) when only a person can revive the
    /// credential, `TransientError` when the org or the network failed, `StoreUnavailable`
    /// when the shared store is down and refreshing without it is unsafe.
    fn token(&self, py: Python<'_>) -> PyResult<PyToken> {
        let live = self.live(py)?;
        let cached = {
            // Entered: a stale token starts its background refresh on this runtime.
            let _entered = live.rt.runtime.enter();
            live.manager.cached_token()
        };
        if let Some(t) = cached {
            live.rt.events.drain(py);
            return Ok(PyToken(t));
        }
        self.blocking(py, |m| async move { m.token().await })
            .map(PyToken)
    }

    /// Declares the token of `generation` dead after a 401 from `api` (`"rest"`, `"soap"` or
    /// `"bulk"`). A no-op when a newer token is current already, so many 401s from requests
    /// that were in flight cause one refresh. Returns whether it invalidated anything.
    #[pyo3(signature = (generation, api = "rest"))]
    fn invalidate_if_current(&self, py: Python<'_>, generation: u64, api: &str) -> PyResult<bool> {
        let api = parse_api(py, api)?;
        self.with_manager(py, |m| m.invalidate_if_current(generation, api))
    }

    /// Gets a new token now, whatever the state of the current one (clears any cooldown).
    fn force_refresh(&self, py: Python<'_>) -> PyResult<PyToken> {
        self.blocking(py, |m| async move { m.force_refresh().await })
            .map(PyToken)
    }

    /// Records the server's `Date` header of any response, to correct clock skew (the JWT
    /// assertion's times and every expiry are on the server's clock).
    fn observe_server_date(&self, py: Python<'_>, date: &str) -> PyResult<()> {
        self.live(py)?.manager.observe_server_date(date);
        Ok(())
    }

    /// The current state (never a token).
    fn status(&self, py: Python<'_>) -> PyResult<PyStatus> {
        let live = self.live(py)?;
        Ok(live.manager.status().into())
    }

    fn __repr__(&self) -> String {
        format!("TokenManager({})", self.describe)
    }
}

/// `"rest"`, `"soap"` or `"bulk"`.
pub fn parse_api(py: Python<'_>, api: &str) -> PyResult<Api> {
    match api {
        "rest" => Ok(Api::Rest),
        "soap" => Ok(Api::Soap),
        "bulk" => Ok(Api::Bulk1),
        other => Err(errors::raise(
            py,
            Kind::Config,
            &format!(
                "unknown api {other:?}: use \"rest\" (REST and Bulk 2.0), \"soap\" or \"bulk\" (Bulk 1.0)"
            ),
            &[],
        )),
    }
}
