//! The billing database: a SQLite file holding Accounts, the records deleted in Salesforce
//! (tombstones), and the sync state (the watermark and the field list the rows were synced
//! with).
//!
//! - The watermark is the newest `SystemModstamp` applied. It is written in the same
//!   transaction as the rows it covers, so a crash resumes where the last committed page ended.
//! - Upserts never go back in time: a row is replaced only by a version at least as new, and a
//!   record deleted in Salesforce leaves a tombstone so an older copy cannot bring it back. So
//!   re-reading (the look-back window of docs/sync.md) is harmless, and so is an older snapshot.
//! - One writer per file: a writer holds an exclusive lock on the file while it is open; a
//!   second process is refused (`DbError::Busy`) before it reads or writes anything.
//! - A file this build cannot trust (another tool's, a newer sfkeep's, a sync state that does
//!   not parse) is refused before anything is written to it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::stamp::Stamp;

/// This tool's name in the database's metadata, to refuse a database another tool made.
pub const TOOL: &str = "sfkeep-billing-sync";
/// The schema version this build writes and reads. Version 1 (no tombstones, no field list,
/// no comparable stamps) is migrated on the first sync.
pub const SCHEMA_VERSION: i64 = 2;

/// Page size of a new billing database.
const PAGE_SIZE: i64 = 16384;

/// How long a reader waits for a writer's checkpoint before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the billing database cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The file belongs to another tool.
    #[error(
        "{path} is not a sfkeep billing database (it has tables but no sfkeep metadata); refusing to touch it. Point --to at a new file."
    )]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
    },
    /// Written by a newer sfkeep.
    #[error(
        "{path} has schema version {found}, newer than this sfkeep understands ({SCHEMA_VERSION}); nothing was changed. Upgrade sfkeep."
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// The sync state (watermark table, schema) does not read back as this tool wrote it.
    #[error(
        "{path}: the sync state is damaged ({problem}); nothing was changed. Move the file aside and sync into a new one (a full load), or restore it from a backup."
    )]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Another process is writing to this database.
    #[error(
        "another sfkeep sync is writing to {path}; this run did nothing. Run again when it has finished (one writer per billing database)."
    )]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// Nothing has been synced into this file yet (or it does not exist).
    #[error(
        "{path} holds no synced Accounts yet; run `sfkeep sync accounts --to sqlite:{path}` first."
    )]
    NotSynced {
        /// The file.
        path: PathBuf,
    },
    /// Synced by an sfkeep that did not record the field list, so the rows cannot be
    /// checked field by field until a sync has backfilled it.
    #[error(
        "{path} was synced by an older sfkeep that did not record which fields it holds; run `sfkeep sync accounts --to sqlite:{path}` once (it rewrites every row with the field list), then verify."
    )]
    FieldListUnknown {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be opened or locked.
    #[error("billing database {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed (disk full, read-only, corrupt).
    #[error(
        "billing database {path}: {source}. Nothing was half-written: the watermark moves only with the rows it covers."
    )]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The thread writing to the database went away without an answer (the runtime is
    /// shutting down).
    #[error(
        "billing database {path}: the writer stopped before finishing. Nothing was half-written: the watermark moves only with the rows it covers."
    )]
    WriterStopped {
        /// The file.
        path: PathBuf,
    },
    /// A record without the fields the sync needs.
    #[error("record {index} of a page has no {field}; refusing to apply the page")]
    BadRecord {
        /// Position in the page.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// A record whose `SystemModstamp` is not a datetime.
    #[error(
        "record {index} of a page has SystemModstamp `{value}`, which is not a datetime; refusing to apply the page"
    )]
    BadStamp {
        /// Position in the page.
        index: usize,
        /// The value.
        value: String,
    },
}

impl DbError {
    /// Another process holds the database: trying again later may work.
    pub fn is_busy(&self) -> bool {
        matches!(self, DbError::Busy { .. })
    }
}

/// One Account as the billing database stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    /// `Id`.
    pub id: String,
    /// `Name`, when present.
    pub name: Option<String>,
    /// `SystemModstamp`: the record's version.
    pub system_modstamp: Stamp,
    /// The record's fields as a JSON object (no `attributes`), keys in sorted order.
    pub json: String,
    /// Deleted in Salesforce (`IsDeleted`, seen through queryAll): the row goes away.
    pub deleted: bool,
}

/// What applying records did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// New rows.
    pub inserted: usize,
    /// Rows replaced by a newer version.
    pub updated: usize,
    /// Rows removed because the record was deleted in Salesforce.
    pub deleted: usize,
    /// Records that changed nothing: the same version again (a look-back re-read), or one
    /// older than the row or the deletion the database already holds.
    pub unchanged: usize,
}

impl Changes {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Changes) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
    }
}

impl SyncRecord {
    /// From a REST record (`attributes` dropped). `index` is its position in the page, for
    /// the error. `IsDeleted` marks the record deleted, and stays in the JSON.
    #[cfg(test)]
    pub fn from_value(index: usize, r: &Value) -> Result<Self, DbError> {
        Self::from_value_keeping(index, r, true)
    }

    /// From a REST record (`attributes` dropped); `index` is its position in the page, for the
    /// error. `IsDeleted: true` marks it deleted; the field stays in the stored JSON only when
    /// `keep_is_deleted` (the user asked for it).
    pub fn from_value_keeping(
        index: usize,
        r: &Value,
        keep_is_deleted: bool,
    ) -> Result<Self, DbError> {
        let text = |field: &'static str| {
            r[field]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(DbError::BadRecord { index, field })
        };
        let id = text("Id")?;
        let stamp = text("SystemModstamp")?;
        let system_modstamp = Stamp::parse(&stamp).ok_or(DbError::BadStamp {
            index,
            value: stamp,
        })?;
        let mut clean = r.clone();
        if let Some(o) = clean.as_object_mut() {
            o.remove("attributes");
            if !keep_is_deleted {
                o.remove("IsDeleted");
            }
        }
        Ok(SyncRecord {
            id,
            name: r["Name"].as_str().map(str::to_owned),
            system_modstamp,
            json: clean.to_string(),
            deleted: r["IsDeleted"] == Value::Bool(true),
        })
    }
}

/// Where the sync stands: the newest `SystemModstamp` applied, and the fields the rows hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The newest `SystemModstamp` applied; `None` before the first load.
    pub watermark: Option<Stamp>,
    /// The field list the rows were synced with; `None` before the first load, or in a
    /// database from sfkeep before the field list was recorded (a backfill sets it).
    pub fields: Option<Vec<String>>,
}

/// One stored row, for verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRow {
    /// `SystemModstamp` as stored.
    pub system_modstamp: String,
    /// The record's JSON.
    pub record: String,
}

/// An open transaction of the billing database (see [`BillingDb::begin`]).
pub struct Load<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
    /// Whether any tombstone may exist (false during an initial load: skips a delete per row).
    tombstones: std::cell::Cell<bool>,
}

impl Load<'_> {
    fn wrap(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: self.path.to_owned(),
            source,
        }
    }

    /// Applies `records`: a live record replaces a row only with a version at least as new and
    /// never over a newer deletion; a deleted one removes an older row and leaves a tombstone.
    pub fn upsert(&self, records: &[SyncRecord]) -> Result<Changes, DbError> {
        // Insert first and update only on a conflict: one statement per new row (all of an
        // initial load) instead of an existence check plus an upsert. A single-row
        // `INSERT … VALUES`, not `INSERT … SELECT … WHERE NOT EXISTS`: SQLite gives the
        // `SELECT` form a statement journal inside a transaction, a 16 KiB page copy to a temp
        // file per row (410,000 writes for a 100,000-row load, twice its time).
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO accounts (id, name, system_modstamp, record, modstamp_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO NOTHING",
            )
            .map_err(|e| self.wrap(e))?;
        // A deletion at least as new as the record: the record is not inserted.
        let mut buried = self
            .tx
            .prepare_cached("SELECT 1 FROM tombstones WHERE id = ?1 AND modstamp_ms >= ?2")
            .map_err(|e| self.wrap(e))?;
        let mut update = self
            .tx
            .prepare_cached(
                "UPDATE accounts SET name = ?2, system_modstamp = ?3, record = ?4, modstamp_ms = ?5
                 WHERE id = ?1 AND modstamp_ms <= ?5 AND record IS NOT ?4",
            )
            .map_err(|e| self.wrap(e))?;
        let mut changes = Changes::default();
        for r in records {
            let ms = r.system_modstamp.ms();
            if r.deleted {
                if self.delete(r)? {
                    changes.deleted += 1;
                } else {
                    changes.unchanged += 1;
                }
                continue;
            }
            let stamp = r.system_modstamp.as_str();
            let is_buried = self.tombstones.get()
                && buried.exists(params![r.id, ms]).map_err(|e| self.wrap(e))?;
            if !is_buried
                && insert
                    .execute(params![r.id, r.name, stamp, r.json, ms])
                    .map_err(|e| self.wrap(e))?
                    == 1
            {
                changes.inserted += 1;
                if self.tombstones.get() {
                    // Undeleted in Salesforce after the deletion we hold.
                    self.tx
                        .prepare_cached("DELETE FROM tombstones WHERE id = ?1")
                        .and_then(|mut st| st.execute(params![r.id]))
                        .map_err(|e| self.wrap(e))?;
                }
            } else if update
                .execute(params![r.id, r.name, stamp, r.json, ms])
                .map_err(|e| self.wrap(e))?
                == 1
            {
                changes.updated += 1;
            } else {
                changes.unchanged += 1;
            }
        }
        Ok(changes)
    }

    /// Removes the row of a record deleted in Salesforce unless the row is newer (undeleted
    /// since), and keeps the deletion so an older copy is never applied again. Whether a row
    /// went away.
    fn delete(&self, r: &SyncRecord) -> Result<bool, DbError> {
        let ms = r.system_modstamp.ms();
        let removed = self
            .tx
            .prepare_cached("DELETE FROM accounts WHERE id = ?1 AND modstamp_ms <= ?2")
            .and_then(|mut st| st.execute(params![r.id, ms]))
            .map_err(|e| self.wrap(e))?;
        self.tx
            .prepare_cached(
                "INSERT INTO tombstones (id, system_modstamp, modstamp_ms)
                 SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE id = ?1)
                 ON CONFLICT(id) DO UPDATE SET system_modstamp = excluded.system_modstamp,
                   modstamp_ms = excluded.modstamp_ms
                 WHERE excluded.modstamp_ms > tombstones.modstamp_ms",
            )
            .and_then(|mut st| st.execute(params![r.id, r.system_modstamp.as_str(), ms]))
            .map_err(|e| self.wrap(e))?;
        self.tombstones.set(true);
        Ok(removed == 1)
    }

    /// Records the field list and moves the watermark forward to `newest` (never back; `None`
    /// keeps it), as part of this transaction.
    pub fn set_state(&self, newest: Option<&Stamp>, fields: &[String]) -> Result<(), DbError> {
        let current = read_state(&self.tx, self.path)?.watermark;
        let watermark = match (current, newest) {
            (Some(c), Some(n)) => Some(if *n > c { n.clone() } else { c }),
            (c, n) => c.or_else(|| n.cloned()),
        };
        let fields_json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
        self.tx
            .prepare_cached(
                "INSERT INTO watermark (object, system_modstamp, last_id, fields)
                 VALUES ('Account', ?1, NULL, ?2)
                 ON CONFLICT(object) DO UPDATE SET system_modstamp = excluded.system_modstamp,
                   fields = excluded.fields",
            )
            .and_then(|mut st| {
                st.execute(params![watermark.as_ref().map(Stamp::as_str), fields_json])
            })
            .map(drop)
            .map_err(|e| self.wrap(e))
    }

    /// Commits everything at once.
    pub fn commit(self) -> Result<(), DbError> {
        let path = self.path;
        self.tx.commit().map_err(|source| DbError::Sqlite {
            path: path.to_owned(),
            source,
        })
    }
}

/// The newest stamp among `records`.
pub fn newest(records: &[SyncRecord]) -> Option<&Stamp> {
    records.iter().map(|r| &r.system_modstamp).max()
}

/// Reads and checks the sync state.
fn read_state(conn: &Connection, path: &Path) -> Result<SyncState, DbError> {
    let corrupt = |problem: String| DbError::CorruptState {
        path: path.to_owned(),
        problem,
    };
    // A version 1 database has no field list column: its list is unknown.
    let has_fields = columns(conn, "watermark")
        .map_err(|e| corrupt(format!("the watermark table cannot be read: {e}")))?
        .iter()
        .any(|c| c == "fields");
    let sql = if has_fields {
        "SELECT object, system_modstamp, fields FROM watermark"
    } else {
        "SELECT object, system_modstamp, NULL FROM watermark"
    };
    let mut st = conn
        .prepare(sql)
        .map_err(|e| corrupt(format!("the watermark table cannot be read: {e}")))?;
    let rows: Vec<(Option<String>, Option<String>, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| corrupt(format!("the watermark table cannot be read: {e}")))?;
    let mut state = SyncState::default();
    for (object, stamp, fields) in rows {
        if object.as_deref() != Some("Account") {
            return Err(corrupt(format!(
                "the watermark table has a row for {object:?}, not Account"
            )));
        }
        state.watermark =
            match stamp {
                None => None,
                Some(s) => Some(Stamp::parse(&s).ok_or_else(|| {
                    corrupt(format!("the watermark `{s}` is not a SystemModstamp"))
                })?),
            };
        state.fields = match fields {
            None => None,
            Some(f) => {
                let list: Vec<String> = serde_json::from_str(&f).map_err(|_| {
                    corrupt(format!("the field list `{f}` is not a JSON list of names"))
                })?;
                if !["Id", "SystemModstamp"]
                    .iter()
                    .all(|k| list.iter().any(|n| n == k))
                {
                    return Err(corrupt(format!(
                        "the field list `{f}` lacks Id or SystemModstamp"
                    )));
                }
                Some(list)
            }
        };
    }
    Ok(state)
}

/// The columns of `table`, in order.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// An open billing database.
#[derive(Debug)]
pub struct BillingDb {
    conn: Connection,
    path: PathBuf,
    /// The writer's exclusive lock on the file (an OS lock, released when the process ends,
    /// however it ends); `None` for a reader or the writer's second connection.
    _lock: Option<File>,
}

impl BillingDb {
    /// Opens the database at `path` for writing, creating it if missing: takes the one-writer
    /// lock, then checks the file (refusing a foreign, newer or damaged one untouched), then
    /// creates or migrates the schema.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let io = |source| DbError::Io {
            path: path.to_owned(),
            source,
        };
        // flock(2)-style lock on the database file itself: independent of SQLite's own
        // byte-range locks, held by this open file until the process exits (even killed).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DbError::Busy {
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let wrap = |source| DbError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(wrap)?;
        let db = BillingDb {
            conn,
            path: path.to_owned(),
            _lock: Some(file),
        };
        match db.inspect()? {
            Version::Empty => db.create()?,
            Version::V1 => {
                db.check_v1()?;
                db.migrate_v1()?;
                db.check_v2()?;
            }
            Version::V2 => db.check_v2()?,
        }
        // In WAL mode, NORMAL syncs at checkpoints rather than at every commit: a commit is
        // durable against a crash of this process (SIGKILL) — the WAL is in the OS's hands —
        // and the database stays consistent after a power loss, which may only undo the
        // last pages, watermark included, so the next run fetches them again.
        db.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        db.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        Ok(db)
    }

    /// Opens an existing database to read (verification): no lock, nothing written.
    pub fn open_read_only(path: &Path) -> Result<Self, DbError> {
        if !path.exists() {
            return Err(DbError::NotSynced {
                path: path.to_owned(),
            });
        }
        let wrap = |source| DbError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(wrap)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(wrap)?;
        let db = BillingDb {
            conn,
            path: path.to_owned(),
            _lock: None,
        };
        match db.inspect()? {
            Version::Empty => Err(DbError::NotSynced {
                path: path.to_owned(),
            }),
            Version::V1 => {
                db.check_v1()?;
                Ok(db)
            }
            Version::V2 => {
                db.check_v2()?;
                Ok(db)
            }
        }
    }

    /// A second connection to the same database, for a writer thread (the caller's keeps
    /// reading) under the lock the caller holds. The file was checked when `self` was opened.
    pub fn reopen(&self) -> Result<Self, DbError> {
        let wrap = |source| DbError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let conn = Connection::open(&self.path).map_err(wrap)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        Ok(BillingDb {
            conn,
            path: self.path.clone(),
            _lock: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wrap(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, problem: impl Into<String>) -> DbError {
        DbError::CorruptState {
            path: self.path.clone(),
            problem: problem.into(),
        }
    }

    /// What the file is, from its metadata; refuses foreign and newer ones. Reads only.
    fn inspect(&self) -> Result<Version, DbError> {
        let tables: Vec<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut st| {
                st.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.wrap(e))?;
        if tables.is_empty() {
            return Ok(Version::Empty);
        }
        if !tables.iter().any(|t| t == "sfkeep_meta") {
            return Err(DbError::ForeignDatabase {
                path: self.path.clone(),
            });
        }
        let meta = |key: &str| -> Result<Option<String>, DbError> {
            self.conn
                .query_row("SELECT value FROM sfkeep_meta WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.corrupt(format!("the metadata table cannot be read: {e}")))
        };
        if meta("tool")?.as_deref() != Some(TOOL) {
            return Err(DbError::ForeignDatabase {
                path: self.path.clone(),
            });
        }
        let version = meta("schema_version")?;
        match version.as_deref().map(str::parse::<i64>) {
            Some(Ok(1)) => Ok(Version::V1),
            Some(Ok(SCHEMA_VERSION)) => Ok(Version::V2),
            Some(Ok(found)) if found > SCHEMA_VERSION => Err(DbError::NewerSchema {
                path: self.path.clone(),
                found,
            }),
            _ => Err(self.corrupt(format!(
                "schema version {version:?} is not one sfkeep wrote"
            ))),
        }
    }

    fn expect_columns(&self, table: &str, expected: &[&str]) -> Result<(), DbError> {
        let found = columns(&self.conn, table).map_err(|e| self.wrap(e))?;
        if found.is_empty() {
            return Err(self.corrupt(format!("the {table} table is missing")));
        }
        if let Some(missing) = expected.iter().find(|c| !found.iter().any(|f| f == *c)) {
            return Err(self.corrupt(format!("the {table} table has no {missing} column")));
        }
        Ok(())
    }

    fn check_v1(&self) -> Result<(), DbError> {
        self.expect_columns("accounts", &["id", "name", "system_modstamp", "record"])?;
        self.expect_columns("watermark", &["object", "system_modstamp", "last_id"])?;
        read_state(&self.conn, &self.path).map(drop)
    }

    fn check_v2(&self) -> Result<(), DbError> {
        self.expect_columns(
            "accounts",
            &["id", "name", "system_modstamp", "record", "modstamp_ms"],
        )?;
        self.expect_columns("watermark", &["object", "system_modstamp", "fields"])?;
        self.expect_columns("tombstones", &["id", "system_modstamp", "modstamp_ms"])?;
        read_state(&self.conn, &self.path).map(drop)
    }

    /// A new, empty file: the page size (only settable before the first table), then the
    /// schema, in one transaction.
    fn create(&self) -> Result<(), DbError> {
        // Larger pages: fewer b-tree pages and writes per row.
        self.conn
            .pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(|e| self.wrap(e))?;
        self.conn
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE sfkeep_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO sfkeep_meta VALUES ('tool', '{TOOL}'), ('schema_version', '{SCHEMA_VERSION}');
                 CREATE TABLE accounts (
                     id TEXT PRIMARY KEY,
                     name TEXT,
                     system_modstamp TEXT NOT NULL,
                     record TEXT NOT NULL,
                     modstamp_ms INTEGER NOT NULL DEFAULT 0
                 );
                 CREATE TABLE watermark (
                     object TEXT PRIMARY KEY,
                     system_modstamp TEXT,
                     last_id TEXT,
                     fields TEXT
                 );
                 CREATE TABLE tombstones (
                     id TEXT PRIMARY KEY,
                     system_modstamp TEXT NOT NULL,
                     modstamp_ms INTEGER NOT NULL
                 );
                 COMMIT;"
            ))
            .map_err(|e| self.wrap(e))
    }

    /// Version 1 → 2, in one transaction. Old rows get stamp 0 (any version replaces them),
    /// and no field list, so the next sync backfills every row with the list it is given.
    fn migrate_v1(&self) -> Result<(), DbError> {
        self.conn
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 ALTER TABLE accounts ADD COLUMN modstamp_ms INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE watermark ADD COLUMN fields TEXT;
                 CREATE TABLE tombstones (
                     id TEXT PRIMARY KEY,
                     system_modstamp TEXT NOT NULL,
                     modstamp_ms INTEGER NOT NULL
                 );
                 UPDATE sfkeep_meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';
                 COMMIT;"
            ))
            .map_err(|e| self.wrap(e))
    }

    /// The sync state.
    pub fn state(&self) -> Result<SyncState, DbError> {
        read_state(&self.conn, &self.path)
    }

    /// Upserts one page of REST records and moves the watermark to its newest record,
    /// atomically; a page with a bad record is refused whole.
    #[cfg(test)]
    pub fn apply_page(&mut self, records: &[Value]) -> Result<Changes, DbError> {
        let records = records
            .iter()
            .enumerate()
            .map(|(i, r)| SyncRecord::from_value(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let fields: Vec<String> = vec!["Id".into(), "SystemModstamp".into()];
        self.apply_records(&records, Some(&fields))
    }

    /// Applies `records` in one transaction; with `fields`, also records the field list and
    /// moves the watermark to the newest of them (a backfill page moves nothing).
    pub fn apply_records(
        &mut self,
        records: &[SyncRecord],
        fields: Option<&[String]>,
    ) -> Result<Changes, DbError> {
        let load = self.begin()?;
        let changes = load.upsert(records)?;
        if let Some(fields) = fields {
            load.set_state(newest(records), fields)?;
        }
        load.commit()?;
        Ok(changes)
    }

    /// Starts a transaction that may span many pages: nothing of it is visible, nor survives
    /// a crash, until [`Load::commit`]; dropping it rolls everything back.
    pub fn begin(&mut self) -> Result<Load<'_>, DbError> {
        let path = &self.path;
        let wrap = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        let tombstones = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM tombstones)", [], |r| {
                r.get::<_, bool>(0)
            })
            .map_err(wrap)?;
        Ok(Load {
            tx,
            path,
            tombstones: std::cell::Cell::new(tombstones),
        })
    }

    /// Rows in the accounts table.
    pub fn count(&self) -> Result<u64, DbError> {
        self.conn
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.wrap(e))
    }

    /// The stored row of `id`.
    pub fn row(&self, id: &str) -> Result<Option<StoredRow>, DbError> {
        self.conn
            .prepare_cached("SELECT system_modstamp, record FROM accounts WHERE id = ?1")
            .and_then(|mut st| {
                st.query_row([id], |r| {
                    Ok(StoredRow {
                        system_modstamp: r.get(0)?,
                        record: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.wrap(e))
    }

    /// Calls `f` with every stored Id.
    pub fn for_each_id(&self, mut f: impl FnMut(&str)) -> Result<(), DbError> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM accounts")
            .map_err(|e| self.wrap(e))?;
        let mut rows = st.query([]).map_err(|e| self.wrap(e))?;
        while let Some(r) = rows.next().map_err(|e| self.wrap(e))? {
            let id: String = r.get(0).map_err(|e| self.wrap(e))?;
            f(&id);
        }
        Ok(())
    }
}

/// What a file holds, by its metadata.
enum Version {
    /// No tables: a new file.
    Empty,
    /// Schema version 1.
    V1,
    /// This build's schema.
    V2,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-01-01T00:00:00.000+0000";
    const T1: &str = "2026-01-01T00:00:01.000+0000";
    const T2: &str = "2026-01-01T00:00:02.000+0000";

    fn rec(id: &str, stamp: &str, name: &str, deleted: bool) -> Value {
        json!({"Id": id, "Name": name, "SystemModstamp": stamp, "IsDeleted": deleted})
    }

    fn name_of(db: &BillingDb, id: &str) -> Option<String> {
        db.row(id).unwrap().map(|r| {
            serde_json::from_str::<Value>(&r.record).unwrap()["Name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    }

    #[test]
    fn pages_and_watermark_move_together_and_upserts_do_not_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("billing.db");
        let mut db = BillingDb::open(&path).unwrap();
        let page = vec![rec("001A", T0, "a", false), rec("001B", T1, "b", false)];
        assert_eq!(db.apply_page(&page).unwrap().inserted, 2);
        let again = db.apply_page(&page).unwrap();
        assert_eq!((again.inserted, again.unchanged), (0, 2));
        assert_eq!(db.count().unwrap(), 2);
        assert_eq!(db.state().unwrap().watermark.unwrap().as_str(), T1);
        // An older page never moves the watermark back.
        db.apply_page(&[rec("001A", T0, "a", false)]).unwrap();
        assert_eq!(db.state().unwrap().watermark.unwrap().as_str(), T1);
        drop(db);
        let db = BillingDb::open(&path).unwrap();
        assert_eq!(db.count().unwrap(), 2);
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one_nor_brings_back_a_deleted_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        db.apply_page(&[rec("001A", T1, "new", false), rec("001B", T1, "b", false)])
            .unwrap();
        // An older snapshot arrives late (a second writer, a replayed page).
        let c = db
            .apply_page(&[rec("001A", T0, "old", false), rec("001B", T0, "b0", false)])
            .unwrap();
        assert_eq!((c.updated, c.unchanged), (0, 2));
        assert_eq!(name_of(&db, "001A").as_deref(), Some("new"));
        // Deleted at T2; an older copy of it (T1) must not resurrect it.
        let c = db.apply_page(&[rec("001B", T2, "b", true)]).unwrap();
        assert_eq!(c.deleted, 1);
        let c = db.apply_page(&[rec("001B", T1, "b", false)]).unwrap();
        assert_eq!((c.inserted, c.unchanged), (0, 1));
        assert_eq!(name_of(&db, "001B"), None);
        // A deletion older than the row (undeleted and changed since) removes nothing.
        let c = db.apply_page(&[rec("001A", T0, "new", true)]).unwrap();
        assert_eq!((c.deleted, c.unchanged), (0, 1));
        assert_eq!(name_of(&db, "001A").as_deref(), Some("new"));
        // Undeleted in Salesforce after the deletion: newer than the tombstone, it comes back.
        let t3 = "2026-01-01T00:00:03.000+0000";
        let c = db.apply_page(&[rec("001B", t3, "back", false)]).unwrap();
        assert_eq!(c.inserted, 1);
        assert_eq!(name_of(&db, "001B").as_deref(), Some("back"));
        // The same version with other content (a backfill with more fields) replaces it.
        let c = db
            .apply_page(&[
                json!({"Id": "001B", "Name": "back", "SystemModstamp": t3, "Industry": null}),
            ])
            .unwrap();
        assert_eq!(c.updated, 1);
    }

    #[test]
    fn refuses_foreign_newer_and_damaged_databases_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("other.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER);")
            .unwrap();
        let before = std::fs::read(&foreign).unwrap();
        assert!(matches!(
            BillingDb::open(&foreign),
            Err(DbError::ForeignDatabase { .. })
        ));
        assert_eq!(
            std::fs::read(&foreign).unwrap(),
            before,
            "not even WAL mode"
        );

        let damage = |name: &str, sql: &str| {
            let path = dir.path().join(name);
            let mut db = BillingDb::open(&path).unwrap();
            db.apply_page(&[rec("001A", T0, "a", false)]).unwrap();
            drop(db);
            let c = Connection::open(&path).unwrap();
            c.execute_batch(sql).unwrap();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            drop(c);
            let before = std::fs::read(&path).unwrap();
            let e = BillingDb::open(&path).unwrap_err();
            assert_eq!(std::fs::read(&path).unwrap(), before, "{name} untouched");
            let r = BillingDb::open_read_only(&path).unwrap_err();
            assert_eq!(e.to_string(), r.to_string());
            e
        };
        let e = damage(
            "newer.db",
            "UPDATE sfkeep_meta SET value='99' WHERE key='schema_version'",
        );
        assert!(matches!(e, DbError::NewerSchema { found: 99, .. }), "{e}");
        for (name, sql, says) in [
            (
                "stamp.db",
                "UPDATE watermark SET system_modstamp = 'yesterday'",
                "`yesterday` is not a SystemModstamp",
            ),
            (
                "fields.db",
                "UPDATE watermark SET fields = 'Id,Name'",
                "not a JSON list",
            ),
            (
                "nokey.db",
                "UPDATE watermark SET fields = '[\"Name\"]'",
                "lacks Id",
            ),
            (
                "object.db",
                "INSERT INTO watermark VALUES ('Contact', NULL, NULL, NULL)",
                "not Account",
            ),
            (
                "dropped.db",
                "DROP TABLE watermark",
                "watermark table is missing",
            ),
            (
                "column.db",
                "ALTER TABLE tombstones DROP COLUMN modstamp_ms",
                "tombstones table has no modstamp_ms",
            ),
            (
                "version.db",
                "UPDATE sfkeep_meta SET value='two' WHERE key='schema_version'",
                "schema version",
            ),
        ] {
            let e = damage(name, sql);
            assert!(matches!(e, DbError::CorruptState { .. }), "{name}: {e}");
            assert!(e.to_string().contains(says), "{name}: {e}");
            assert!(e.to_string().contains("nothing was changed"), "{e}");
        }
    }

    #[test]
    fn a_version_1_database_is_migrated_and_its_fields_are_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE sfkeep_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO sfkeep_meta VALUES ('tool', '{TOOL}'), ('schema_version', '1');
                 CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, system_modstamp TEXT NOT NULL, record TEXT NOT NULL);
                 CREATE TABLE watermark (object TEXT PRIMARY KEY, system_modstamp TEXT, last_id TEXT);
                 INSERT INTO accounts VALUES ('001A', 'a', '{T1}', '{{\"Id\":\"001A\"}}');
                 INSERT INTO watermark VALUES ('Account', '{T1}', '001A');"
            ))
            .unwrap();
        let ro = BillingDb::open_read_only(&path).unwrap();
        assert_eq!(ro.state().unwrap().fields, None);
        drop(ro);
        let mut db = BillingDb::open(&path).unwrap();
        let state = db.state().unwrap();
        assert_eq!(state.watermark.unwrap().as_str(), T1);
        assert_eq!(state.fields, None, "a backfill will record it");
        // The old row (stamp unknown) takes any version.
        let c = db.apply_page(&[rec("001A", T0, "a0", false)]).unwrap();
        assert_eq!(c.updated, 1);
    }

    #[test]
    fn a_second_writer_is_refused_and_a_reader_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let mut first = BillingDb::open(&path).unwrap();
        first.apply_page(&[rec("001A", T0, "a", false)]).unwrap();
        let e = BillingDb::open(&path).unwrap_err();
        assert!(e.is_busy(), "{e}");
        assert!(
            e.to_string().contains("another sfkeep sync is writing"),
            "{e}"
        );
        assert_eq!(
            BillingDb::open_read_only(&path).unwrap().count().unwrap(),
            1
        );
        drop(first);
        assert!(
            BillingDb::open(&path).is_ok(),
            "the lock goes with its holder"
        );
    }

    #[test]
    fn a_bad_record_leaves_the_database_and_watermark_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        for page in [
            vec![
                json!({"Id":"001A","SystemModstamp":T0}),
                json!({"Name":"no id"}),
            ],
            vec![
                json!({"Id":"001A","SystemModstamp":T0}),
                json!({"Id":"001B","SystemModstamp":"t2"}),
            ],
        ] {
            assert!(db.apply_page(&page).is_err());
            assert_eq!(db.count().unwrap(), 0);
            assert_eq!(db.state().unwrap(), SyncState::default());
        }
    }

    #[test]
    fn a_read_only_database_fails_clearly_without_moving_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let mut db = BillingDb::open(&path).unwrap();
        db.apply_page(&[rec("001A", T0, "a", false)]).unwrap();
        drop(db);
        let mut ro = BillingDb {
            conn: Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap(),
            path: path.clone(),
            _lock: None,
        };
        let e = ro.apply_page(&[rec("001B", T1, "b", false)]).unwrap_err();
        assert!(e.to_string().contains("Nothing was half-written"), "{e}");
        assert_eq!(ro.state().unwrap().watermark.unwrap().as_str(), T0);
    }
}
