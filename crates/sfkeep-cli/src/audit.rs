//! The audit log: every [`AuthEvent`] of every command, and the time and local source address
//! of the last successful API call, in SQLite.
//!
//! - Where: `SFKEEP_AUDIT_DB` if set; else `audit.db` next to the profile's file store; else
//!   `$XDG_STATE_HOME/sfkeep/audit.db` (or `~/.local/state/sfkeep/audit.db`).
//! - Schema-versioned through `PRAGMA user_version`. A file from a newer sfkeep is refused
//!   (`events` and `doctor` fail with a clear paragraph; other commands warn once and run
//!   without recording).
//! - Appends are cheap: one std mutex and a cached prepared statement, WAL journal, a short
//!   busy timeout; a failed append is a warning, never the caller's error.
//! - Nothing secret goes in: events carry fingerprints and hashed store keys only.
//! - Events of `sfkeep doctor`'s own dry refresh are recorded too (they are token requests the
//!   org saw), tagged `origin = 'doctor'` (also `"origin":"doctor"` in the event's JSON). They
//!   are not the integration's history: doctor's evidence and `status`'s recent list leave
//!   them out, and they never move the last successful call.
//!
//! Schema history: 1, the events and last_success tables; 2, `events.origin`.

use std::net::{ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sfkeep::clock::ServerClock;
use sfkeep::event::{AuthEvent, AuthEventKind, EventSink};

use crate::config::{Profile, StoreConfig};
use crate::error::CliError;

/// The schema this sfkeep writes and understands.
pub const SCHEMA_VERSION: i64 = 2;
/// The `origin` of events recorded by `sfkeep doctor`'s own probing.
pub const ORIGIN_DOCTOR: &str = "doctor";
/// The kind [`AuditLog::bucket_counts`] reports doctor's probe events under.
pub const PROBE_KIND: &str = "doctor.probe";
/// Overrides the audit log's location.
pub use sfkeep::paths::AUDIT_DB_ENV;

/// Where the profile's audit log lives (`sfkeep::paths`: the Python wheel finds the same).
pub fn path_for(p: &Profile) -> PathBuf {
    sfkeep::paths::audit_db(match &p.store {
        StoreConfig::File { path, .. } => Some(path.as_path()),
        StoreConfig::Memory | StoreConfig::Redis { .. } => None,
    })
}

/// `$XDG_STATE_HOME`, else `~/.local/state`: where sfkeep keeps what is not configuration.
pub(crate) fn state_dir() -> PathBuf {
    sfkeep::paths::state_dir()
}

/// An audit-log failure.
#[derive(Debug)]
pub enum AuditError {
    /// The file was written by a newer sfkeep.
    Newer {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// SQLite or the file system failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Newer { path, found } => write!(
                f,
                "the audit log {} has schema version {found}, written by a newer sfkeep; this sfkeep understands version {SCHEMA_VERSION} and will not read or change it. Upgrade sfkeep, or move the file away (or set {AUDIT_DB_ENV} to another path) to start a new log",
                path.display()
            ),
            AuditError::Io { path, message } => {
                write!(f, "the audit log {} failed: {message}", path.display())
            }
        }
    }
}

impl AuditError {
    /// As a CLI error (exit 2 for a newer file, 5 for I/O: it is local storage).
    pub fn into_cli(self) -> CliError {
        match &self {
            AuditError::Newer { .. } => CliError::usage(format!("{self}.")),
            AuditError::Io { .. } => CliError::store(format!(
                "{self}. Check the file's directory and permissions, or set {AUDIT_DB_ENV}."
            )),
        }
    }
}

/// One stored event.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EventRow {
    /// Row id (increasing).
    pub id: i64,
    /// When, local clock, ms since the epoch.
    pub at: i64,
    /// `token.refreshed`, …
    pub kind: String,
    /// The cause, when the event has one.
    pub cause: Option<String>,
    /// The grant.
    pub grant: Option<String>,
    /// The generation.
    pub generation: Option<i64>,
    /// The token fingerprint.
    pub fingerprint: Option<String>,
    /// The store key.
    pub store_key: String,
    /// The profile.
    pub profile: String,
    /// Who recorded it when not the integration: `doctor` for doctor's own dry refresh.
    pub origin: Option<String>,
    /// The whole event as JSON.
    pub event: serde_json::Value,
}

impl EventRow {
    /// Recorded by `sfkeep doctor`'s probing, not by the integration.
    pub fn is_doctor_probe(&self) -> bool {
        self.origin.as_deref() == Some(ORIGIN_DOCTOR)
    }

    /// The event's own fields beyond the columns (`reason`, `latency_ms`, `api`, `method`,
    /// …): what `detail` holds in the JSON form.
    pub fn detail(&self) -> serde_json::Map<String, serde_json::Value> {
        const COLUMNS: [&str; 8] = [
            "kind",
            "at",
            "grant",
            "generation",
            "fingerprint",
            "key",
            "origin",
            "cause",
        ];
        let mut detail = match self.event.get("detail") {
            // A CLI action keeps its own fields under `detail` already.
            Some(serde_json::Value::Object(d)) => d.clone(),
            _ => self.event.as_object().cloned().unwrap_or_default(),
        };
        detail.retain(|k, _| !COLUMNS.contains(&k.as_str()));
        detail
    }

    /// The one JSON shape of an event, in `events`, `status` and anywhere else: the kind
    /// once, in its dotted name; the columns; the rest under `detail`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "at": iso(self.at),
            "at_ms": self.at,
            "profile": self.profile,
            "kind": self.kind,
            "cause": self.cause,
            "grant": self.grant,
            "generation": self.generation,
            "fingerprint": self.fingerprint,
            "store_key": self.store_key,
            "origin": self.origin,
            "detail": self.detail(),
        })
    }

    /// One line for a person: time, kind, cause and generation.
    pub fn summary(&self) -> String {
        let mut s = format!("{}  {}", sfkeep::clock::UnixMillis(self.at), self.kind);
        if let Some(c) = &self.cause {
            s.push_str(&format!(" ({c})"));
        }
        if let Some(g) = self.generation {
            s.push_str(&format!(" gen {g}"));
        }
        s
    }
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds.
pub fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The last successful API call.
#[derive(Clone, Debug)]
pub struct LastSuccess {
    /// Local clock, ms.
    pub at: i64,
    /// Server clock, ms (local plus the measured `Date` offset at the time).
    pub server_at: i64,
    /// The local source address.
    pub source_ip: Option<String>,
}

/// Whose events: one profile's history of one token. Two profiles on the same connected app
/// (the same store key) keep two histories; one profile keeps one per store key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The profile's name.
    pub profile: String,
    /// The profile's store key.
    pub store_key: String,
}

impl Scope {
    /// The history of `profile`'s token under `store_key` (`session::audit_scope` makes the
    /// one of a profile).
    pub fn new(profile: &str, store_key: impl ToString) -> Self {
        Self {
            profile: profile.to_owned(),
            store_key: store_key.to_string(),
        }
    }
}

/// An action of the CLI itself, recorded next to the library's events: the logins that do
/// not go through a token manager (web, device, sfdx URL), logouts, revocations, recoveries.
#[derive(Clone, Debug)]
pub struct CliEvent {
    /// `login`, `logout`, `revoke`, `recover`.
    pub kind: &'static str,
    /// The grant involved.
    pub grant: Option<String>,
    /// The token generation involved.
    pub generation: Option<u64>,
    /// The fingerprint of the access token involved.
    pub fingerprint: Option<String>,
    /// What else to keep (`method`, `stopped`, …), never a secret.
    pub detail: serde_json::Value,
}

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

impl AuditLog {
    /// Opens (creating it and its directory if needed) and migrates the log at `path`.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(path, e))?;
        }
        let conn = Connection::open(path).map_err(|e| io(path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::init(path, conn)
    }

    /// Opens an existing log for reading; `Ok(None)` when there is none yet.
    pub fn open_existing(path: &Path) -> Result<Option<Self>, AuditError> {
        if !path.exists() {
            return Ok(None);
        }
        Self::open(path).map(Some)
    }

    fn init(path: &Path, conn: Connection) -> Result<Self, AuditError> {
        conn.busy_timeout(Duration::from_millis(500))
            .map_err(|e| io(path, e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| io(path, format!("not an sfkeep audit log ({e})")))?;
        if version > SCHEMA_VERSION {
            return Err(AuditError::Newer {
                path: path.to_owned(),
                found: version,
            });
        }
        let _ = conn.pragma_update(None, "journal_mode", "WAL");
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        if version < SCHEMA_VERSION {
            Self::migrate(path, &conn)?;
        }
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    /// Brings the schema to [`SCHEMA_VERSION`], in one write transaction that re-reads the
    /// version, so processes opening an old file at once migrate it exactly once.
    fn migrate(path: &Path, conn: &Connection) -> Result<(), AuditError> {
        conn.execute_batch("BEGIN IMMEDIATE;")
            .map_err(|e| io(path, e))?;
        let step = || -> rusqlite::Result<()> {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version < 1 {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS events (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     at INTEGER NOT NULL,
                     kind TEXT NOT NULL,
                     cause TEXT,
                     grant_kind TEXT,
                     generation INTEGER,
                     fingerprint TEXT,
                     store_key TEXT NOT NULL,
                     profile TEXT NOT NULL,
                     json TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS events_key_at ON events(store_key, at);
                 CREATE TABLE IF NOT EXISTS last_success (
                     store_key TEXT PRIMARY KEY,
                     profile TEXT NOT NULL,
                     at INTEGER NOT NULL,
                     server_at INTEGER NOT NULL,
                     source_ip TEXT
                 );",
                )?;
            }
            if version < 2 {
                conn.execute_batch("ALTER TABLE events ADD COLUMN origin TEXT;")?;
            }
            if version < SCHEMA_VERSION {
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            Ok(())
        };
        match step() {
            Ok(()) => conn.execute_batch("COMMIT;").map_err(|e| io(path, e)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK;");
                Err(io(path, e))
            }
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        sfkeep::sync::lock(&self.conn)
    }

    /// Appends one event of the integration; for `api.succeeded` also records the last
    /// success.
    #[cfg(test)]
    pub fn append(
        &self,
        profile: &str,
        e: &AuthEvent,
        server_at: i64,
        source_ip: Option<&str>,
    ) -> Result<(), AuditError> {
        self.append_from(profile, e, server_at, source_ip, None)
    }

    /// Appends one event recorded by `origin` (`None`: the integration). Only the
    /// integration's `api.succeeded` moves the last success.
    pub fn append_from(
        &self,
        profile: &str,
        e: &AuthEvent,
        server_at: i64,
        source_ip: Option<&str>,
        origin: Option<&str>,
    ) -> Result<(), AuditError> {
        let mut v = serde_json::to_value(e).map_err(|x| io(&self.path, x))?;
        if let (Some(o), Some(m)) = (origin, v.as_object_mut()) {
            m.insert("origin".into(), serde_json::Value::String(o.to_owned()));
        }
        let json = v.to_string();
        let cause = match &e.kind {
            AuthEventKind::RefreshFailed { cause, .. }
            | AuthEventKind::FallbackUsed { cause }
            | AuthEventKind::ReauthRequired { cause } => Some(cause.as_str()),
            _ => None,
        };
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "INSERT INTO events (at, kind, cause, grant_kind, generation, fingerprint, store_key, profile, json, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(|x| io(&self.path, x))?;
        st.execute(params![
            e.at.0,
            e.kind.name(),
            cause,
            e.grant.map(|g| g.as_str()),
            e.generation.map(|g| g as i64),
            e.fingerprint,
            e.key,
            profile,
            json,
            origin
        ])
        .map_err(|x| io(&self.path, x))?;
        if origin.is_none() && matches!(e.kind, AuthEventKind::ApiCallSucceeded) {
            let mut st = conn
                .prepare_cached(
                    "INSERT INTO last_success (store_key, profile, at, server_at, source_ip)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(store_key) DO UPDATE SET profile = ?2, at = ?3, server_at = ?4, source_ip = ?5",
                )
                .map_err(|x| io(&self.path, x))?;
            st.execute(params![e.key, profile, e.at.0, server_at, source_ip])
                .map_err(|x| io(&self.path, x))?;
        }
        Ok(())
    }

    /// Events of `scope` at or after `since_ms` with id above `after_id`, oldest first.
    pub fn events(
        &self,
        scope: &Scope,
        since_ms: i64,
        after_id: i64,
    ) -> Result<Vec<EventRow>, AuditError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT id, at, kind, cause, grant_kind, generation, fingerprint, store_key, profile, json, origin
                 FROM events WHERE store_key = ?1 AND profile = ?2 AND at >= ?3 AND id > ?4 ORDER BY id LIMIT 10000",
            )
            .map_err(|x| io(&self.path, x))?;
        let rows = st
            .query_map(
                params![scope.store_key, scope.profile, since_ms, after_id],
                |r| {
                    let json: String = r.get(9)?;
                    Ok(EventRow {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        kind: r.get(2)?,
                        cause: r.get(3)?,
                        grant: r.get(4)?,
                        generation: r.get(5)?,
                        fingerprint: r.get(6)?,
                        store_key: r.get(7)?,
                        profile: r.get(8)?,
                        origin: r.get(10)?,
                        event: serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
                    })
                },
            )
            .map_err(|x| io(&self.path, x))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|x| io(&self.path, x))
    }

    /// How many events `scope` has in `[since_ms, until_ms)`: the integration's and doctor's
    /// probes (the status page draws both).
    pub fn count(&self, scope: &Scope, since_ms: i64, until_ms: i64) -> Result<u64, AuditError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM events WHERE store_key = ?1 AND profile = ?4 AND at >= ?2 AND at < ?3",
                params![scope.store_key, since_ms, until_ms, scope.profile],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|x| io(&self.path, x))
    }

    /// The events of `scope` in `[since_ms, until_ms)` counted per bucket of `bucket_ms` and
    /// kind: `(bucket index, kind, count)`, doctor's probes under [`PROBE_KIND`]. For windows
    /// too large to send event by event (`sfkeep serve`'s status page).
    pub fn bucket_counts(
        &self,
        scope: &Scope,
        since_ms: i64,
        until_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, String, u64)>, AuditError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT (at - ?2) / ?4 AS b,
                        CASE WHEN origin IS NULL THEN kind ELSE ?6 END AS k, COUNT(*) FROM events
                 WHERE store_key = ?1 AND profile = ?5 AND at >= ?2 AND at < ?3
                 GROUP BY b, k ORDER BY b",
            )
            .map_err(|x| io(&self.path, x))?;
        let rows = st
            .query_map(
                params![
                    scope.store_key,
                    since_ms,
                    until_ms,
                    bucket_ms.max(1),
                    scope.profile,
                    PROBE_KIND
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?.max(0) as u64,
                    ))
                },
            )
            .map_err(|x| io(&self.path, x))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|x| io(&self.path, x))
    }

    /// The integration's newest `n` events of `scope`, oldest first (doctor's probes left
    /// out).
    pub fn recent(&self, scope: &Scope, n: usize) -> Result<Vec<EventRow>, AuditError> {
        let first_id: i64 = self
            .conn()
            .query_row(
                "SELECT COALESCE(MIN(id), 0) FROM (SELECT id FROM events WHERE store_key = ?1 AND profile = ?2 AND origin IS NULL ORDER BY id DESC LIMIT ?3)",
                params![scope.store_key, scope.profile, n as i64],
                |r| r.get(0),
            )
            .map_err(|x| io(&self.path, x))?;
        if first_id == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .events(scope, 0, first_id - 1)?
            .into_iter()
            .filter(|r| r.origin.is_none())
            .collect())
    }

    /// The fingerprint of the newest event of `scope` that names a token.
    fn last_fingerprint(&self, scope: &Scope) -> Result<Option<String>, AuditError> {
        self.conn()
            .query_row(
                "SELECT fingerprint FROM events WHERE store_key = ?1 AND profile = ?2 AND fingerprint IS NOT NULL ORDER BY id DESC LIMIT 1",
                params![scope.store_key, scope.profile],
                |r| r.get(0),
            )
            .optional()
            .map_err(|x| io(&self.path, x))
    }

    /// Appends an action of the CLI itself (`login`, `logout`, …) to `scope`'s history.
    pub fn append_cli(&self, scope: &Scope, e: &CliEvent, at_ms: i64) -> Result<(), AuditError> {
        let json = serde_json::json!({
            "kind": e.kind,
            "at": at_ms,
            "grant": e.grant,
            "generation": e.generation,
            "fingerprint": e.fingerprint,
            "detail": e.detail,
        })
        .to_string();
        self.conn()
            .execute(
                "INSERT INTO events (at, kind, cause, grant_kind, generation, fingerprint, store_key, profile, json, origin)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5, ?6, ?7, ?8, NULL)",
                params![
                    at_ms,
                    e.kind,
                    e.grant,
                    e.generation.map(|g| g as i64),
                    e.fingerprint,
                    scope.store_key,
                    scope.profile,
                    json
                ],
            )
            .map(|_| ())
            .map_err(|x| io(&self.path, x))
    }

    /// Deletes `scope`'s events older than `before_ms` (the retention setting); returns how
    /// many. The last successful call is kept whatever its age: doctor needs it.
    pub fn prune(&self, scope: &Scope, before_ms: i64) -> Result<usize, AuditError> {
        self.conn()
            .execute(
                "DELETE FROM events WHERE store_key = ?1 AND profile = ?2 AND at < ?3",
                params![scope.store_key, scope.profile, before_ms],
            )
            .map_err(|x| io(&self.path, x))
    }

    /// The last successful API call of `store_key`.
    pub fn last_success(&self, store_key: &str) -> Result<Option<LastSuccess>, AuditError> {
        self.conn()
            .query_row(
                "SELECT at, server_at, source_ip FROM last_success WHERE store_key = ?1",
                params![store_key],
                |r| {
                    Ok(LastSuccess {
                        at: r.get(0)?,
                        server_at: r.get(1)?,
                        source_ip: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|x| io(&self.path, x))
    }
}

/// The local address this machine uses to reach `url`'s host (no packet is sent: a UDP
/// socket is connected only to ask the routing table).
pub fn source_ip_for(url: &str) -> Option<String> {
    if let Some(ip) = crate::net::bind_address() {
        return Some(ip.to_string());
    }
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.trim_matches(['[', ']']).to_owned();
    let port = u.port_or_known_default().unwrap_or(443);
    let addr = (host.as_str(), port).to_socket_addrs().ok()?.next()?;
    let sock = if addr.is_ipv4() {
        UdpSocket::bind("0.0.0.0:0")
    } else {
        UdpSocket::bind("[::]:0")
    }
    .ok()?;
    sock.connect(addr).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

/// Appends every event to the audit log.
#[derive(Debug)]
pub struct AuditSink {
    log: Arc<AuditLog>,
    profile: String,
    /// The org's host, to find the local source address.
    url: String,
    clock: OnceLock<ServerClock>,
    source_ip: OnceLock<Option<String>>,
    warned: AtomicBool,
    /// `Some(ORIGIN_DOCTOR)` for doctor's probing managers.
    origin: Option<&'static str>,
}

impl AuditSink {
    /// A sink for `profile` appending to `log`.
    pub fn new(log: Arc<AuditLog>, p: &Profile) -> Self {
        Self {
            log,
            profile: p.name.clone(),
            url: p
                .instance_url
                .clone()
                .unwrap_or_else(|| p.login_url.clone()),
            clock: OnceLock::new(),
            source_ip: OnceLock::new(),
            warned: AtomicBool::new(false),
            origin: None,
        }
    }

    /// For doctor's own probing managers (`session::Recording::DoctorProbe`): their
    /// events are recorded tagged `origin = 'doctor'`, so they are never taken for the
    /// integration's history (doctor's evidence, `status`), and their `api.succeeded` are
    /// left out, so they never move the integration's "last successful call".
    pub fn without_success_records(mut self) -> Self {
        self.origin = Some(ORIGIN_DOCTOR);
        self
    }

    /// Gives the sink the manager's server clock, so the last success is dated on the
    /// server's clock (local time plus the measured `Date` offset).
    pub fn set_server_clock(&self, clock: ServerClock) {
        let _ = self.clock.set(clock);
    }
}

impl AuditSink {
    /// Whether `event` is worth a line: an adoption only when it changed the token this
    /// profile's history last named (every CLI command adopts the stored token when it starts,
    /// and a line per command would push real failures out of `status`).
    fn worth_recording(&self, event: &AuthEvent) -> bool {
        match event.kind {
            AuthEventKind::ApiCallSucceeded => self.origin.is_none(),
            AuthEventKind::TokenAdopted => {
                let scope = Scope::new(&self.profile, &event.key);
                self.log.last_fingerprint(&scope).ok().flatten() != event.fingerprint
            }
            _ => true,
        }
    }
}

/// The fingerprint of an empty access token: what a logout tombstone would show. Such an
/// event names no token, so it is recorded without a fingerprint.
fn tombstone_fingerprint() -> &'static str {
    static FP: OnceLock<String> = OnceLock::new();
    FP.get_or_init(|| sfkeep::secret::AccessToken::new(String::new()).fingerprint())
}

impl EventSink for AuditSink {
    fn emit(&self, event: &AuthEvent) {
        if !self.worth_recording(event) {
            return;
        }
        let mut event = std::borrow::Cow::Borrowed(event);
        if event.fingerprint.as_deref() == Some(tombstone_fingerprint()) {
            event.to_mut().fingerprint = None;
        }
        let success = matches!(event.kind, AuthEventKind::ApiCallSucceeded);
        let server_at = self
            .clock
            .get()
            .map(|c| event.at.0 + c.offset())
            .unwrap_or(event.at.0);
        let ip = if success {
            self.source_ip
                .get_or_init(|| source_ip_for(&self.url))
                .as_deref()
        } else {
            None
        };
        if let Err(e) = self
            .log
            .append_from(&self.profile, &event, server_at, ip, self.origin)
            && !self.warned.swap(true, Ordering::AcqRel)
        {
            crate::output::warn(&format!("not recording auth events: {e}."));
        }
    }
}

/// How long events are kept when the profile does not say (`audit_retention_days`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Opens the profile's audit log for writing and drops `scope`'s events older than the
/// profile's retention. Warns (once) and returns `None` when the log cannot be used:
/// recording must never stop a command.
pub fn open_for_recording(p: &Profile, scope: &Scope) -> Option<Arc<AuditLog>> {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let path = path_for(p);
    match AuditLog::open(&path) {
        Ok(l) => {
            let now = sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock).0;
            let keep = p.audit_retention.unwrap_or(DEFAULT_RETENTION).as_millis() as i64;
            let _ = l.prune(scope, now.saturating_sub(keep));
            Some(Arc::new(l))
        }
        Err(e) => {
            if !WARNED.swap(true, Ordering::AcqRel) {
                crate::output::warn(&format!("not recording auth events: {e}."));
            }
            None
        }
    }
}

/// Records one action of the CLI in `p`'s audit log (best effort, like every record).
pub fn record_cli(p: &Profile, scope: &Scope, event: CliEvent) {
    if let Some(log) = open_for_recording(p, scope) {
        let now = sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock).0;
        if let Err(e) = log.append_cli(scope, &event, now) {
            crate::output::warn(&format!("not recording auth events: {e}."));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfkeep::clock::UnixMillis;

    fn event(kind: AuthEventKind, at: i64) -> AuthEvent {
        AuthEvent {
            at: UnixMillis(at),
            kind,
            grant: Some(sfkeep::token::GrantKind::RefreshToken),
            generation: Some(3),
            fingerprint: Some("abcd1234".into()),
            key: "k1".into(),
        }
    }

    #[test]
    fn appends_reads_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("audit.db");
        let log = AuditLog::open(&path).unwrap();
        log.append(
            "p",
            &event(
                AuthEventKind::ReauthRequired {
                    cause: sfkeep::diagnose::Cause::InactiveUser,
                },
                10,
            ),
            10,
            None,
        )
        .unwrap();
        log.append(
            "p",
            &event(AuthEventKind::ApiCallSucceeded, 20),
            25,
            Some("127.0.0.1"),
        )
        .unwrap();
        let rows = log.events(&Scope::new("p", "k1"), 0, 0).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cause.as_deref(), Some("inactive_user"));
        assert_eq!(rows[1].kind, "api.succeeded");
        assert_eq!(rows[1].event["kind"], "api_call_succeeded");
        assert!(log.events(&Scope::new("p", "k1"), 15, 0).unwrap().len() == 1);
        let last = log.last_success("k1").unwrap().unwrap();
        assert_eq!((last.at, last.server_at), (20, 25));
        assert_eq!(last.source_ip.as_deref(), Some("127.0.0.1"));
        drop(log);

        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        drop(conn);
        let e = AuditLog::open(&path).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("schema version 7") && msg.contains("newer sfkeep"),
            "{msg}"
        );
    }

    #[test]
    fn a_version_1_log_is_migrated_and_doctor_probes_stay_out_of_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        // A log written by the previous sfkeep: schema 1, no `origin`.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
                 kind TEXT NOT NULL, cause TEXT, grant_kind TEXT, generation INTEGER,
                 fingerprint TEXT, store_key TEXT NOT NULL, profile TEXT NOT NULL, json TEXT NOT NULL);
             CREATE TABLE last_success (store_key TEXT PRIMARY KEY, profile TEXT NOT NULL,
                 at INTEGER NOT NULL, server_at INTEGER NOT NULL, source_ip TEXT);
             INSERT INTO events (at, kind, store_key, profile, json)
                 VALUES (5, 'token.refreshed', 'k1', 'p', '{}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);

        let log = AuditLog::open(&path).unwrap();
        let probe = |kind, at| {
            log.append_from("p", &event(kind, at), at, None, Some(ORIGIN_DOCTOR))
                .unwrap()
        };
        probe(
            AuthEventKind::ReauthRequired {
                cause: sfkeep::diagnose::Cause::AuthenticationFailure,
            },
            10,
        );
        probe(AuthEventKind::ApiCallSucceeded, 11);
        log.append("p", &event(AuthEventKind::ApiCallSucceeded, 20), 20, None)
            .unwrap();

        let all = log.events(&Scope::new("p", "k1"), 0, 0).unwrap();
        assert_eq!(all.len(), 4, "{all:?}");
        assert_eq!(all[0].origin, None);
        assert!(all[1].is_doctor_probe() && all[2].is_doctor_probe());
        assert_eq!(all[1].event["origin"], "doctor");
        assert!(all[3].event.get("origin").is_none());
        // Only the integration's call is the last success; `recent` is its history only.
        assert_eq!(log.last_success("k1").unwrap().unwrap().at, 20);
        let recent: Vec<String> = log
            .recent(&Scope::new("p", "k1"), 5)
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(recent, ["token.refreshed", "api.succeeded"]);
        assert_eq!(log.recent(&Scope::new("p", "k1"), 1).unwrap().len(), 1);
        drop(log);
        let v: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        // Opening again is a no-op.
        AuditLog::open(&path).unwrap();
    }

    fn sink(log: &Arc<AuditLog>, profile: &str) -> AuditSink {
        AuditSink {
            log: Arc::clone(log),
            profile: profile.to_owned(),
            url: "http://127.0.0.1:1".to_owned(),
            clock: OnceLock::new(),
            source_ip: OnceLock::new(),
            warned: AtomicBool::new(false),
            origin: None,
        }
    }

    #[test]
    fn an_adoption_is_recorded_only_when_it_changes_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(&dir.path().join("audit.db")).unwrap());
        let s = sink(&log, "p");
        let refreshed = AuthEventKind::TokenRefreshed {
            reason: sfkeep::event::RefreshReason::Startup,
            latency_ms: 5,
            rotated: false,
        };
        s.emit(&event(refreshed, 1));
        // Every later command adopts the same stored token: nothing new to say.
        s.emit(&event(AuthEventKind::TokenAdopted, 2));
        s.emit(&event(AuthEventKind::TokenAdopted, 3));
        // Another process stored a new one: that adoption is news.
        let mut newer = event(AuthEventKind::TokenAdopted, 4);
        newer.fingerprint = Some("99999999".into());
        s.emit(&newer);
        let kinds: Vec<String> = log
            .events(&Scope::new("p", "k1"), 0, 0)
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["token.refreshed", "token.adopted"]);
    }

    #[test]
    fn two_profiles_on_one_app_keep_two_histories_and_a_tombstone_names_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(&dir.path().join("audit.db")).unwrap());
        let mut tomb = event(AuthEventKind::TokenAdopted, 1);
        tomb.fingerprint = Some(tombstone_fingerprint().to_owned());
        sink(&log, "a").emit(&tomb);
        sink(&log, "b").emit(&event(AuthEventKind::ApiCallSucceeded, 2));
        let a = log.events(&Scope::new("a", "k1"), 0, 0).unwrap();
        let b = log.events(&Scope::new("b", "k1"), 0, 0).unwrap();
        assert_eq!((a.len(), b.len()), (1, 1));
        assert_eq!(
            a[0].fingerprint, None,
            "the empty token's fingerprint is not a token"
        );
        assert_eq!(b[0].kind, "api.succeeded");
    }

    #[test]
    fn an_event_has_one_json_shape_with_the_kind_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
        let scope = Scope::new("p", "k1");
        log.append(
            "p",
            &event(AuthEventKind::TokenInvalidated { api: "rest".into() }, 5),
            5,
            None,
        )
        .unwrap();
        log.append_cli(
            &scope,
            &CliEvent {
                kind: "login",
                grant: Some("jwt_bearer".into()),
                generation: Some(4),
                fingerprint: Some("abcd1234".into()),
                detail: serde_json::json!({"method": "jwt_bearer"}),
            },
            6,
        )
        .unwrap();
        let rows = log.events(&scope, 0, 0).unwrap();
        let json: Vec<serde_json::Value> = rows.iter().map(EventRow::to_json).collect();
        assert_eq!(json[0]["kind"], "token.invalidated");
        assert_eq!(json[0]["detail"], serde_json::json!({"api": "rest"}));
        assert_eq!(json[1]["kind"], "login");
        assert_eq!(
            json[1]["detail"],
            serde_json::json!({"method": "jwt_bearer"})
        );
        for j in &json {
            let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 12, "{j}");
            assert!(
                !j["detail"].as_object().unwrap().contains_key("kind"),
                "{j}"
            );
        }
    }

    #[test]
    fn retention_prunes_only_old_events_of_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
        for (profile, at) in [("p", 10), ("p", 20), ("q", 10)] {
            log.append(
                profile,
                &event(AuthEventKind::ApiCallSucceeded, at),
                at,
                None,
            )
            .unwrap();
        }
        assert_eq!(log.prune(&Scope::new("p", "k1"), 15).unwrap(), 1);
        assert_eq!(log.events(&Scope::new("p", "k1"), 0, 0).unwrap().len(), 1);
        assert_eq!(log.events(&Scope::new("q", "k1"), 0, 0).unwrap().len(), 1);
        assert!(
            log.last_success("k1").unwrap().is_some(),
            "the last success is kept"
        );
    }
}
