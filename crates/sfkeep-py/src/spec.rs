//! The keyword constructor's settings: grants and store named the way a profile names them
//! (`grant = "jwt_bearer"`, `store = "file"`), checked once, then turned into a manager in
//! every fork epoch that needs one.

use std::sync::Arc;
use std::time::Duration;

use sfkeep::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};
use sfkeep::store::{CacheKey, EncryptedFileStore, MemoryStore, Store};
use sfkeep::{Grant, TokenManager};

use sfkeep::event::EventSink;
use sfkeep::store::StoreKey;

use crate::errors::Kind;

/// A settings error: which keyword, and what is wrong with it.
#[derive(Debug)]
pub struct SpecError {
    /// The exception class.
    pub kind: Kind,
    /// The message.
    pub message: String,
}

fn config(message: String) -> SpecError {
    SpecError {
        kind: Kind::Config,
        message: format!("TokenManager(...): {message}"),
    }
}

/// Why a recipe could not build a manager.
#[derive(Debug)]
pub enum BuildError {
    /// The library refused (a bad login URL, an unreadable store, …).
    Lib(sfkeep::Error),
    /// The settings are wrong, with the exception class to raise.
    Spec(SpecError),
    /// Only a person can give the manager a credential (`ReauthRequired`).
    Reauth {
        /// `.cause`.
        cause: &'static str,
        /// The message.
        message: String,
        /// `.fix`.
        fix: &'static str,
    },
}

impl From<sfkeep::Error> for BuildError {
    fn from(e: sfkeep::Error) -> Self {
        BuildError::Lib(e)
    }
}

impl From<SpecError> for BuildError {
    fn from(e: SpecError) -> Self {
        BuildError::Spec(e)
    }
}

/// The credentials a grant is built from (the keyword arguments, secrets included).
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Consumer key.
    pub client_id: Option<String>,
    /// Consumer secret.
    pub client_secret: Option<ClientSecret>,
    /// Refresh token.
    pub refresh_token: Option<RefreshToken>,
    /// Username.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Password>,
    /// Security token.
    pub security_token: Option<SecurityToken>,
    /// RS256 private key (PEM).
    pub private_key: Option<PrivateKeyPem>,
    /// API version for the SOAP login.
    pub api_version: String,
}

impl Credentials {
    fn need<'a, T>(&self, v: &'a Option<T>, key: &str, grant: &str) -> Result<&'a T, SpecError> {
        v.as_ref().ok_or_else(|| {
            config(format!(
                "the {grant} grant needs the keyword argument `{key}`"
            ))
        })
    }

    /// The grant named `name` (a profile's `grant` values).
    pub fn grant(&self, name: &str) -> Result<Grant, SpecError> {
        let g = name;
        Ok(match name {
            "refresh_token" => Grant::refresh_token(
                self.need(&self.client_id, "client_id", g)?.clone(),
                self.client_secret.clone(),
                self.need(&self.refresh_token, "refresh_token", g)?.clone(),
            ),
            "jwt_bearer" => Grant::jwt_bearer(
                self.need(&self.client_id, "client_id", g)?.clone(),
                self.need(&self.username, "username", g)?.clone(),
                self.need(&self.private_key, "private_key", g)?.clone(),
            ),
            "client_credentials" => Grant::client_credentials(
                self.need(&self.client_id, "client_id", g)?.clone(),
                self.need(&self.client_secret, "client_secret", g)?.clone(),
            ),
            "password" => Grant::password(
                self.need(&self.client_id, "client_id", g)?.clone(),
                self.need(&self.client_secret, "client_secret", g)?.clone(),
                self.need(&self.username, "username", g)?.clone(),
                self.need(&self.password, "password", g)?.clone(),
            )
            .with_security_token(self.security_token.clone()),
            "soap_login" => Grant::soap_login(
                self.need(&self.username, "username", g)?.clone(),
                self.need(&self.password, "password", g)?.clone(),
                self.api_version.clone(),
            )
            .with_security_token(self.security_token.clone()),
            other => {
                return Err(config(format!(
                    "unknown grant {other:?}; use one of refresh_token, jwt_bearer, client_credentials, password, soap_login"
                )));
            }
        })
    }
}

/// Where tokens are kept.
#[derive(Clone, Debug)]
pub enum StoreSpec {
    /// This process only.
    Memory,
    /// The encrypted file store, shared by this machine's processes.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Its key.
        key: Arc<CacheKey>,
    },
    /// The Redis store, shared by a fleet.
    Redis {
        /// `redis://` or `rediss://` URL.
        url: String,
        /// The key its values are encrypted with.
        key: Arc<CacheKey>,
    },
}

impl StoreSpec {
    /// The file of a file store (`None` for memory and Redis).
    pub fn file_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The store named `kind` with its settings.
    pub fn parse(
        kind: &str,
        path: Option<std::path::PathBuf>,
        redis_url: Option<String>,
        cache_key: Option<&str>,
    ) -> Result<Self, SpecError> {
        let key = |store: &str| -> Result<Arc<CacheKey>, SpecError> {
            let text = match cache_key {
                Some(k) => k.to_owned(),
                None => std::env::var("SFKEEP_CACHE_KEY").map_err(|_| {
                    config(format!(
                        "the {store} store is encrypted: pass cache_key= (base64 of 32 bytes) or set SFKEEP_CACHE_KEY"
                    ))
                })?,
            };
            CacheKey::from_base64(&text)
                .map(Arc::new)
                .map_err(|e| config(format!("cache_key: {e}")))
        };
        match kind {
            "memory" => Ok(StoreSpec::Memory),
            "file" => Ok(StoreSpec::File {
                path: path.ok_or_else(|| config("store=\"file\" needs store_path=".into()))?,
                key: key("file")?,
            }),
            "redis" => Ok(StoreSpec::Redis {
                url: redis_url.ok_or_else(|| config("store=\"redis\" needs redis_url=".into()))?,
                key: key("redis")?,
            }),
            other => Err(config(format!(
                "unknown store {other:?}; use memory, file or redis"
            ))),
        }
    }

    /// `memory`, `file (PATH)` or `redis`, for messages.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Memory => "memory".into(),
            StoreSpec::File { path, .. } => format!("file ({})", path.display()),
            StoreSpec::Redis { .. } => "redis".into(),
        }
    }

    /// Opens the store (inside the runtime: the Redis client belongs to it).
    pub fn open(&self) -> sfkeep::Result<Arc<dyn Store>> {
        Ok(match self {
            StoreSpec::Memory => Arc::new(MemoryStore::new()),
            StoreSpec::File { path, key } => {
                Arc::new(EncryptedFileStore::new(path.clone(), (**key).clone()))
            }
            StoreSpec::Redis { url, key } => {
                Arc::new(sfkeep::store::RedisStore::new(url, (**key).clone())?)
            }
        })
    }
}

/// Everything the keyword constructor was given.
#[derive(Clone, Debug)]
pub struct ManagerSpec {
    /// The login host.
    pub login_url: String,
    /// The primary grant.
    pub grant: Grant,
    /// The fallback grant.
    pub fallback: Option<Grant>,
    /// The store.
    pub store: StoreSpec,
    /// The session timeout assumed when introspection does not tell.
    pub session_timeout: Option<Duration>,
    /// The `username` keyword argument: it names the user in the store key of a grant that
    /// does not name one (as a CLI profile's `username` does).
    pub username: Option<String>,
}

impl ManagerSpec {
    /// The manager, its events going to `sink`; its store read once first, so a store that
    /// holds a record this key cannot decrypt fails here, not as a silent new login.
    pub fn build(&self, sink: Arc<dyn EventSink>) -> Result<TokenManager, BuildError> {
        let store = self.store.open()?;
        let mut b = TokenManager::builder(self.login_url.clone())
            .grant(self.grant.clone())
            .store(Arc::clone(&store))
            .event_sink(sink);
        if let Some(f) = &self.fallback {
            b = b.fallback_grant(f.clone());
        }
        if let Some(t) = self.session_timeout {
            b = b.session_timeout(t);
        }
        if let Some(u) = &self.username {
            b = b.key_username(u.clone());
        }
        let m = b.build()?;
        probe_store(store.as_ref(), m.store_key(), &self.store.describe())?;
        Ok(m)
    }
}

/// Reads the manager's record once: a record this key cannot decrypt is an error naming the
/// store, not a miss that would cost a token request per process. A store that does not
/// answer is left to the manager (it serves from memory and reports the outage).
pub fn probe_store(store: &dyn Store, key: &StoreKey, describe: &str) -> Result<(), BuildError> {
    let handle = tokio::runtime::Handle::current();
    let loaded = handle.block_on(store.load(key));
    if let Err(e) = loaded {
        if store.kind() == "redis" {
            return Ok(());
        }
        return Err(e.into());
    }
    if let Some(w) = store.take_warnings().first() {
        return Err(sfkeep::Error::Store {
            store: store.kind(),
            message: format!(
                "the token store {describe} holds a record sfkeep cannot read: {}. Use the cache key it was written with, or discard the record with `sfkeep logout`",
                w.0
            ),
        }
        .into());
    }
    Ok(())
}
