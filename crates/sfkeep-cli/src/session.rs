//! From a profile to a working [`TokenManager`]: secrets resolved, grants built, store opened.
//!
//! Every grant of a profile writes to one store key, derived from the profile's primary grant
//! (the same formula the library uses by default), so `sfkeep login --jwt` stores a token that
//! `sfkeep token` then serves. The key names the identity as far as the profile does: its
//! username and its configured refresh token, or else the profile's name
//! (`sfkeep::store::KeyIdentity`), so two profiles of one connected app for two users never
//! share a record.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sfkeep::event::{AuthEvent, AuthEventKind, EventSink};
use sfkeep::secret::{ClientSecret, Password, PrivateKeyPem, RefreshToken, SecurityToken};
use sfkeep::store::{CacheKey, EncryptedFileStore, MemoryStore, Store};
use sfkeep::token::TokenRecord;
use sfkeep::{Grant, TokenManager};

use crate::config::{Config, GrantName, Profile, StoreConfig};
use crate::error::{CliError, CliResult};

/// Global options every command gets.
#[derive(Clone, Debug, Default)]
pub struct Globals {
    /// `--config`.
    pub config: Option<std::path::PathBuf>,
    /// `--profile` / `SFKEEP_PROFILE` (the last one given).
    pub profile: Option<String>,
    /// Every `--profile` given (`sfkeep serve` watches several).
    pub profiles: Vec<String>,
    /// Which of them were typed on the command line (not taken from the environment).
    /// Only the demo reads it (it refuses to run on a user's own profile), and the demo is
    /// built with the `fake-org` feature.
    #[cfg_attr(not(feature = "fake-org"), allow(dead_code))]
    pub explicit: Explicit,
}

/// The global options typed on the command line itself.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "fake-org"), allow(dead_code))]
pub struct Explicit {
    /// `--profile NAME`.
    pub profile: bool,
    /// `--config PATH`.
    pub config: bool,
}

/// HTTP client options with these timeouts, bound to [`crate::net::bind_address`] when one is
/// set.
pub fn http_options(timeout: Duration, connect: Duration) -> sfkeep::http::ClientOptions {
    sfkeep::http::ClientOptions::new(timeout, connect).local_address(crate::net::bind_address())
}

/// An HTTP client with these timeouts, bound to [`crate::net::bind_address`] when one is set.
pub fn http_client(timeout: Duration, connect: Duration) -> CliResult<reqwest::Client> {
    sfkeep::http::build_client(http_options(timeout, connect))
        .map_err(|e| CliError::unexpected(format!("{e}.")))
}

/// Why a request of the CLI's own HTTP client failed, for a message (no URL query, no secret).
pub fn transport_reason(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "transport error".to_owned()
    };
    if let Some(src) = std::error::Error::source(e) {
        s.push_str(&format!(": {src}"));
    }
    s
}

/// A REST client over `m` for profile `p`: its API version, the CLI's HTTP client.
pub fn api_client(p: &Profile, m: TokenManager) -> CliResult<sfkeep::client::Client> {
    let http = http_client(Duration::from_secs(120), Duration::from_secs(5))?;
    Ok(sfkeep::client::Client::with_http_client(m, http).api_version(p.api_version.clone()))
}

/// Loads the config file and picks the profile.
pub fn load_profile(g: &Globals) -> CliResult<Profile> {
    let path = crate::config::locate(g.config.as_deref())?;
    let config = Config::load(&path)?;
    let name = g
        .profile
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_PROFILE.to_owned());
    config.profile(&name).cloned()
}

pub use crate::store_key::store_key;
use crate::store_key::{configured_refresh_token, key_identity};

/// The record an earlier sfkeep stored for this profile under the app's shared key (before
/// keys named the identity), when the key changed for it and that key holds a token. It is
/// never adopted: nothing in it says whose it is.
async fn legacy_record(p: &Profile, store: &dyn Store) -> CliResult<Option<TokenRecord>> {
    let rt = configured_refresh_token(p);
    let id = key_identity(p, rt.as_ref());
    let legacy = id.legacy_key();
    if legacy == id.key() {
        return Ok(None);
    }
    let r = store.load(&legacy).await.map_err(|e| {
        CliError::from_sfkeep(&e, &format!("reading the token store of {}", p.describe()))
    })?;
    // An unreadable record there is not this profile's business: no warning.
    let _ = store.take_warnings();
    Ok(r.filter(|r| !r.is_tombstone() && r.refresh_token.is_some()))
}

/// Refuses to send the configured refresh token while an earlier sfkeep's record under the
/// app's shared key holds a different one and this profile's own key holds none: that record
/// may hold the rotated successor of the configured token (sending the configured one would
/// then make Salesforce revoke the whole token family), or another user's token. sfkeep can
/// tell neither from the record, so it uses neither (docs/token-lifecycle.md, "Store keys").
async fn check_legacy_record(
    p: &Profile,
    configured: &RefreshToken,
    store: &dyn Store,
) -> CliResult<()> {
    if load_record(p, store)
        .await?
        .is_some_and(|r| r.refresh_token.is_some())
    {
        return Ok(());
    }
    let Some(old) = legacy_record(p, store).await? else {
        return Ok(());
    };
    if old.refresh_token.as_ref() == Some(configured) {
        // The configured token is the stored one: nothing rotated, and it is this profile's.
        return Ok(());
    }
    Err(CliError::reauth(format!(
        "the token store of {} ({}) holds a refresh token that an earlier sfkeep stored under the shared key {} of this connected app, which does not record whose it is. It is not the configured refresh token: either another profile's user stored it, or the app rotates refresh tokens and the configured one is already spent, and sending a spent one makes Salesforce revoke every token of its family. sfkeep sends neither. Authorize this profile anew with `sfkeep login --web` or `--device` (its token is then stored under the profile's own key {}); the old record is left as it is.",
        p.describe(),
        describe_store(p),
        key_identity(p, Some(configured)).legacy_key(),
        store_key(p),
    )))
}

/// Whose events in the audit log are the profile's: its name and its store key.
pub fn audit_scope(p: &Profile) -> crate::audit::Scope {
    crate::audit::Scope::new(&p.name, store_key(p))
}

/// `file (PATH)` or `memory`.
pub fn describe_store(p: &Profile) -> String {
    match &p.store {
        StoreConfig::Memory => "memory".into(),
        StoreConfig::File { path, .. } => format!("file ({})", path.display()),
        StoreConfig::Redis { url, .. } => format!("redis ({})", redacted_url(url)),
    }
}

/// A Redis URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    sfkeep::error::redacted_url(url)
}

/// Opens the profile's store.
pub fn open_store(p: &Profile) -> CliResult<Arc<dyn Store>> {
    match &p.store {
        StoreConfig::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreConfig::File { path, key_file } => {
            let key = cache_key(p, key_file.as_deref())?;
            Ok(Arc::new(EncryptedFileStore::new(path.clone(), key)))
        }
        StoreConfig::Redis { url, key_file } => {
            let key = cache_key(p, key_file.as_deref())?;
            let store = sfkeep::store::RedisStore::new(url, key).map_err(|e| {
                CliError::usage(format!(
                    "the redis store of {} (`{}`): {e}.",
                    p.describe(),
                    p.key_path("store.url")
                ))
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// The env var that holds the cache key (base64 of 32 bytes); it wins over a key file.
const CACHE_KEY_ENV: &str = "SFKEEP_CACHE_KEY";

/// The cache key: `SFKEEP_CACHE_KEY`, else the key file, read like every other secret file
/// (a file other users can read is a warning, as for a JWT key or a refresh token).
fn cache_key(p: &Profile, key_file: Option<&std::path::Path>) -> CliResult<CacheKey> {
    let bad_key = |source: String, e: sfkeep::Error| {
        CliError::usage(format!(
            "cannot load the cache key for the store of {} from {source}: {e}. {MAKE_CACHE_KEY}",
            p.describe()
        ))
    };
    if let Ok(v) = std::env::var(CACHE_KEY_ENV) {
        return CacheKey::from_base64(&v).map_err(|e| bad_key(format!("${CACHE_KEY_ENV}"), e));
    }
    let Some(k) = key_file else {
        return Err(CliError::usage(format!(
            "the store of {} is encrypted but has no key: set {CACHE_KEY_ENV}, or add `key_file = \"PATH\"` to [profiles.{}.store]. {MAKE_CACHE_KEY}",
            p.describe(),
            p.name
        )));
    };
    let what = format!(
        "the cache key file {} (`{}` in {})",
        k.display(),
        p.key_path("store.key_file"),
        p.config_path.display()
    );
    if !k.exists() {
        return Err(CliError::usage(format!(
            "{what} does not exist. Create one with `(umask 077; head -c 32 /dev/urandom | base64 > {})`, or set {CACHE_KEY_ENV}.",
            k.display()
        )));
    }
    let text = crate::config::read_secret_file(k, &p.key_path("store.key_file"), &what)?;
    CacheKey::from_base64(&text).map_err(|e| bad_key(k.display().to_string(), e))
}

/// How to make a cache key, for messages.
const MAKE_CACHE_KEY: &str = "A cache key is 32 random bytes in base64: `(umask 077; head -c 32 /dev/urandom | base64 > cache.key)`.";

/// A library error from getting or using a token of `p`, as the CLI says it: like
/// [`CliError::from_sfkeep`], and when the org refused the consumer key or secret, which value
/// sfkeep sent and where it came from (the key's value, the secret's source only).
pub fn grant_error(p: &Profile, e: &sfkeep::Error, context: &str) -> CliError {
    let err = CliError::from_sfkeep(e, context);
    match e.cause() {
        Some(sfkeep::diagnose::Cause::InvalidClient) => match &p.client_secret {
            Some(r) => err.with_note(&format!(
                "The secret sent came from {} (`{}` in {}).",
                r.source(),
                p.key_path("client_secret"),
                p.config_path.display()
            )),
            None => err.with_note(&format!(
                "{} has no `client_secret`; add one if the connected app requires it.",
                p.describe()
            )),
        },
        Some(sfkeep::diagnose::Cause::InvalidClientId) => err.with_note(&format!(
            "The key sent was `{}` (`{}` in {}).",
            p.client_id.as_deref().unwrap_or(""),
            p.key_path("client_id"),
            p.config_path.display()
        )),
        _ => err,
    }
}

/// Loads the profile's stored record, with store errors as exit 5.
pub async fn load_record(p: &Profile, store: &dyn Store) -> CliResult<Option<TokenRecord>> {
    // A logout tombstone holds no token: nothing is stored.
    Ok(load_raw_record(p, store)
        .await?
        .filter(|r| !r.is_tombstone()))
}

/// What the store holds for the profile, tombstones included (a logout, or the placeholder of
/// a refresh declared over an empty store); the store's warnings are printed.
pub async fn load_raw_record(p: &Profile, store: &dyn Store) -> CliResult<Option<TokenRecord>> {
    let r = store.load(&store_key(p)).await.map_err(|e| {
        CliError::from_sfkeep(&e, &format!("reading the token store of {}", p.describe()))
    })?;
    for w in store.take_warnings() {
        crate::output::warn(&w.0);
    }
    Ok(r)
}

fn client_id(p: &Profile, why: &str) -> CliResult<String> {
    p.require(&p.client_id, "client_id", why).map(str::to_owned)
}

fn username(p: &Profile, why: &str) -> CliResult<String> {
    p.require(&p.username, "username", why).map(str::to_owned)
}

/// Builds a grant from the profile's settings. For `refresh_token` without a configured
/// refresh token, the stored record's one is used (after `login --web`, `--device` or
/// `--sfdx-url`).
pub async fn build_grant(p: &Profile, name: GrantName, store: &dyn Store) -> CliResult<Grant> {
    let why = format!("the {} grant", name.as_str());
    Ok(match name {
        GrantName::RefreshToken => {
            let client_id = client_id(p, &why)?;
            let client_secret = p
                .optional_secret(&p.client_secret, "client_secret")?
                .map(|s| ClientSecret::new(s.as_str()));
            let refresh_token = match p.optional_secret(&p.refresh_token, "refresh_token")? {
                Some(s) => {
                    let configured = RefreshToken::new(s.as_str());
                    check_legacy_record(p, &configured, store).await?;
                    configured
                }
                None => match load_record(p, store).await?.and_then(|r| r.refresh_token) {
                    Some(rt) => rt,
                    None => {
                        let old = match legacy_record(p, store).await? {
                            Some(_) => format!(
                                " The store holds a refresh token an earlier sfkeep stored under the shared key of this connected app; it is not used, because nothing in it says it is `{}`'s.",
                                p.username.as_deref().unwrap_or_default()
                            ),
                            None => String::new(),
                        };
                        return Err(CliError::reauth(format!(
                            "{} uses the refresh_token grant but has no `refresh_token` and none is stored.{old} Log in once with `sfkeep login --web`, `--device` or `--sfdx-url URL` (or add `refresh_token = {{ env = \"NAME\" }}`).",
                            p.describe()
                        )));
                    }
                },
            };
            Grant::refresh_token(client_id, client_secret, refresh_token)
        }
        GrantName::JwtBearer => Grant::jwt_bearer(
            client_id(p, &why)?,
            username(p, &why)?,
            PrivateKeyPem::new(p.require_secret(&p.jwt_key, "jwt_key", &why)?.as_str()),
        ),
        GrantName::ClientCredentials => Grant::client_credentials(
            client_id(p, &why)?,
            ClientSecret::new(
                p.require_secret(&p.client_secret, "client_secret", &why)?
                    .as_str(),
            ),
        ),
        GrantName::Password => Grant::password(
            client_id(p, &why)?,
            ClientSecret::new(
                p.require_secret(&p.client_secret, "client_secret", &why)?
                    .as_str(),
            ),
            username(p, &why)?,
            Password::new(p.require_secret(&p.password, "password", &why)?.as_str()),
        )
        .with_security_token(
            p.optional_secret(&p.security_token, "security_token")?
                .map(|s| SecurityToken::new(s.as_str())),
        ),
        GrantName::SoapLogin => Grant::soap_login(
            username(p, &why)?,
            Password::new(p.require_secret(&p.password, "password", &why)?.as_str()),
            p.api_version.clone(),
        )
        .with_security_token(
            p.optional_secret(&p.security_token, "security_token")?
                .map(|s| SecurityToken::new(s.as_str())),
        ),
    })
}

/// Set when the token store failed during this run (see [`check_store_kept_up`]).
static STORE_FAILED: OnceLock<String> = OnceLock::new();

/// Remembers store trouble the manager would otherwise only log: a CLI process lives for one
/// command, so a token it could not persist is a token the next invocation requests again.
/// Also warns when the manager did not use a stored record (`record.rejected`), and when the
/// fallback grant carried the command because the primary failed (`fallback.used`): the
/// command succeeds, and without the warning nothing but the audit log would say that the
/// primary credential is dead.
#[derive(Debug)]
struct StoreFailureSink;

impl EventSink for StoreFailureSink {
    fn emit(&self, event: &AuthEvent) {
        match &event.kind {
            AuthEventKind::StoreUnavailable { detail } => {
                let _ = STORE_FAILED.set(detail.clone());
            }
            // A record the manager would not use (another identity's, or nobody can tell
            // whose): said, not only recorded.
            AuthEventKind::RecordRejected { detail } => crate::output::warn(&format!("{detail}.")),
            AuthEventKind::FallbackUsed { cause } => crate::output::warn(&format!(
                "the primary grant failed ({cause}); the fallback grant carries this integration until a person re-authorizes the primary (`sfkeep doctor` says how)."
            )),
            _ => {}
        }
    }
}

/// Exit 5 when the token store failed during this run. The library carries on from memory
/// (right for a long-lived process); a CLI invocation that did would make every later one
/// log in again, spending the org's login limit in silence.
pub fn check_store_kept_up(p: &Profile) -> CliResult<()> {
    match STORE_FAILED.get() {
        None => Ok(()),
        Some(detail) => Err(CliError::store(format!(
            "the token store of {} ({}) failed: {detail}. A token obtained now was not saved: the next command requests one again, and if the org rotates refresh tokens the new refresh token ends with this process (the next command then says refresh_interrupted and never resends the old one; re-authorize with `sfkeep login` once the store works). Check the store's path and permissions, the cache key (SFKEEP_CACHE_KEY or `{}`), or that Redis is up.",
            p.describe(),
            describe_store(p),
            p.key_path("store.key_file")
        ))),
    }
}

/// Reads the profile's record once before any token request: a store that fails, or holds a
/// record this key cannot decrypt, is exit 5 now rather than a silent login per command.
pub async fn probe_store(p: &Profile, store: &dyn Store) -> CliResult<()> {
    store.load(&store_key(p)).await.map_err(|e| {
        CliError::from_sfkeep(&e, &format!("reading the token store of {}", p.describe()))
    })?;
    let warnings = store.take_warnings();
    if let Some(w) = warnings.first() {
        return Err(CliError::store(format!(
            "the token store of {} ({}) holds a record sfkeep cannot read: {}. Use the cache key it was written with (SFKEEP_CACHE_KEY or `{}`), or discard the record with `sfkeep logout`.",
            p.describe(),
            describe_store(p),
            w.0,
            p.key_path("store.key_file")
        )));
    }
    Ok(())
}

/// A manager for `p` with an explicit primary grant (and the profile's fallback, if any).
pub fn manager_with(
    p: &Profile,
    primary: Grant,
    fallback: Option<Grant>,
    store: Arc<dyn Store>,
) -> CliResult<TokenManager> {
    manager_with_audit(p, primary, fallback, store, Recording::Integration)
}

/// Where the profile's spent-token ledger lives: outside the store it protects, in the audit
/// log's directory (docs/rotation-safety.md; `sfkeep::paths`, so the Python wheel's
/// `from_profile` finds the same file).
pub fn spent_ledger_path(p: &Profile) -> std::path::PathBuf {
    crate::audit::path_for(p).with_file_name(sfkeep::paths::SPENT_LEDGER_FILE)
}

/// Whose events a manager's audit records are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recording {
    /// The integration's own: evidence for doctor, shown by `status`.
    Integration,
    /// doctor's test refreshes and calls: recorded tagged as probes, never taken for the
    /// integration's history, never its "last successful call".
    DoctorProbe,
}

/// Like [`manager_with`], with the audit records tagged as `recording` says.
pub fn manager_with_audit(
    p: &Profile,
    primary: Grant,
    fallback: Option<Grant>,
    store: Arc<dyn Store>,
    recording: Recording,
) -> CliResult<TokenManager> {
    manager_with_sinks(p, primary, fallback, store, recording, &[])
}

/// Like [`manager_with_audit`], with more event sinks (`sfkeep serve` watches the events).
pub fn manager_with_sinks(
    p: &Profile,
    primary: Grant,
    fallback: Option<Grant>,
    store: Arc<dyn Store>,
    recording: Recording,
    sinks: &[Arc<dyn EventSink>],
) -> CliResult<TokenManager> {
    build_manager(p, primary, fallback, store, recording, sinks, None)
}

/// The one place managers are built; `guard` (the kill switch of `logout --revoke`, see
/// `killswitch.rs`) sits between the manager and the token endpoint when given.
fn build_manager(
    p: &Profile,
    primary: Grant,
    fallback: Option<Grant>,
    store: Arc<dyn Store>,
    recording: Recording,
    sinks: &[Arc<dyn EventSink>],
    guard: Option<Arc<sfkeep::manager::FallbackSwitch>>,
) -> CliResult<TokenManager> {
    let audit = crate::audit::open_for_recording(p, &audit_scope(p)).map(|log| {
        let sink = crate::audit::AuditSink::new(log, p);
        Arc::new(match recording {
            Recording::Integration => sink,
            Recording::DoctorProbe => sink.without_success_records(),
        })
    });
    let mut b = TokenManager::builder(p.login_url.clone())
        .grant(primary)
        .store(store)
        .store_key(store_key(p))
        .spent_ledger(spent_ledger_path(p))
        .event_sink(Arc::new(StoreFailureSink))
        // Built on the first token request: `sfkeep token` serving a fresh stored token
        // loads no root certificates and touches no network (issue 19).
        .http_client_options(http_options(
            Duration::from_secs(10),
            Duration::from_secs(3),
        ));
    if let Some(a) = &audit {
        b = b.event_sink(Arc::clone(a) as Arc<dyn EventSink>);
    }
    for sink in sinks {
        b = b.event_sink(Arc::clone(sink));
    }
    if !crate::logging_requested() {
        // The CLI reports failures itself, as one paragraph; the library's log lines would
        // only repeat them. SFKEEP_LOG / RUST_LOG turn them back on.
        b = b.without_tracing_sink();
    }
    if let Some(f) = fallback {
        b = b.fallback_grant(f);
    }
    if let Some(t) = p.session_timeout {
        b = b.session_timeout(t);
    }
    if recording == Recording::DoctorProbe {
        // Doctor introspects the tokens it obtains itself, alongside its other reads: one
        // round trip fewer on its critical path.
        b = b.introspect(false);
    }
    if let Some(g) = &guard {
        b = b.token_source(Arc::clone(g) as Arc<dyn sfkeep::manager::TokenSource>);
    }
    let m = b
        .build()
        .map_err(|e| CliError::from_sfkeep(&e, &format!("setting up {}", p.describe())))?;
    if let Some(g) = &guard {
        g.attach(&m);
    }
    if let Some(a) = audit {
        a.set_server_clock(m.server_clock().clone());
    }
    Ok(m)
}

/// The profile's manager: its primary grant, its fallback grant, its store.
pub async fn manager(p: &Profile) -> CliResult<(TokenManager, Arc<dyn Store>)> {
    manager_observed(p, &[]).await
}

/// [`manager`] with more event sinks.
pub async fn manager_observed(
    p: &Profile,
    sinks: &[Arc<dyn EventSink>],
) -> CliResult<(TokenManager, Arc<dyn Store>)> {
    let store = open_store(p)?;
    probe_store(p, store.as_ref()).await?;
    let fallback = match p.fallback_grant {
        Some(f) if f != p.grant => Some(build_grant(p, f, store.as_ref()).await?),
        _ => None,
    };
    let (primary, fallback) = match (build_grant(p, p.grant, store.as_ref()).await, fallback) {
        (Ok(primary), fallback) => (primary, fallback),
        // No refresh token yet (nobody ran `login --web`): the fallback is what the profile
        // has for exactly this, so start with it rather than refuse.
        (Err(e), Some(fallback)) if e.exit == crate::exit::Exit::ReauthRequired => (fallback, None),
        (Err(e), _) => return Err(e),
    };
    // The integration's managers honour the kill switch; `login` and `recover` (a person
    // acting, with the grant they chose) do not.
    let guard = crate::killswitch::switch_for(p).map(Arc::new);
    let m = build_manager(
        p,
        primary,
        fallback,
        Arc::clone(&store),
        Recording::Integration,
        sinks,
        guard,
    )?;
    Ok((m, store))
}
