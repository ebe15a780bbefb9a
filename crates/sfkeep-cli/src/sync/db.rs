//! The billing database: a SQLite file holding Accounts and the sync watermark.
//!
//! The watermark (`SystemModstamp`, `Id` of the last row applied) is written in the same
//! transaction as the rows it covers, so a crash at any point resumes exactly where the last
//! committed page ended: no record lost, none applied twice out of order.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// This tool's name in the database's metadata, to refuse a database another tool made.
pub const TOOL: &str = "sfkeep-billing-sync";
/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// Page size of a new billing database.
const PAGE_SIZE: i64 = 16384;

/// Why the billing database cannot be used.
#[derive(Debug, thiserror::Error)]
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
        "{path} has schema version {found}, newer than this sfkeep understands ({SCHEMA_VERSION}); upgrade sfkeep."
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
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
}

/// One Account as the billing database stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    /// `Id`.
    pub id: String,
    /// `Name`, when present.
    pub name: Option<String>,
    /// `SystemModstamp` (Salesforce format).
    pub system_modstamp: String,
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
    /// Rows updated in place.
    pub updated: usize,
    /// Rows removed because the record was deleted in Salesforce.
    pub deleted: usize,
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
                .map(str::to_owned)
                .ok_or(DbError::BadRecord { index, field })
        };
        let id = text("Id")?;
        let system_modstamp = text("SystemModstamp")?;
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

/// An open transaction of the billing database (see [`BillingDb::begin`]).
pub struct Load<'a> {
    tx: rusqlite::Transaction<'a>,
    path: &'a Path,
}

impl Load<'_> {
    fn wrap(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: self.path.to_owned(),
            source,
        }
    }

    /// Upserts `records`, and removes those deleted in Salesforce.
    pub fn upsert(&self, records: &[SyncRecord]) -> Result<Changes, DbError> {
        // Insert first and update only on a conflict: one statement per new row (all of an
        // initial load) instead of an existence check plus an upsert.
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO accounts (id, name, system_modstamp, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO NOTHING",
            )
            .map_err(|e| self.wrap(e))?;
        let mut update = self
            .tx
            .prepare_cached(
                "UPDATE accounts SET name = ?2, system_modstamp = ?3, record = ?4 WHERE id = ?1",
            )
            .map_err(|e| self.wrap(e))?;
        let mut remove = self
            .tx
            .prepare_cached("DELETE FROM accounts WHERE id = ?1")
            .map_err(|e| self.wrap(e))?;
        let mut changes = Changes::default();
        for r in records {
            if r.deleted {
                changes.deleted += remove.execute(params![r.id]).map_err(|e| self.wrap(e))?;
                continue;
            }
            let p = params![r.id, r.name, r.system_modstamp, r.json];
            if insert.execute(p).map_err(|e| self.wrap(e))? == 1 {
                changes.inserted += 1;
            } else {
                update.execute(p).map_err(|e| self.wrap(e))?;
                changes.updated += 1;
            }
        }
        Ok(changes)
    }

    /// Moves the watermark, as part of this transaction.
    pub fn set_watermark(&self, w: &Watermark) -> Result<(), DbError> {
        write_watermark(
            &self.tx,
            self.path,
            w.system_modstamp.as_deref(),
            w.id.as_deref(),
        )
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

fn write_watermark(
    conn: &Connection,
    path: &Path,
    system_modstamp: Option<&str>,
    id: Option<&str>,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO watermark (object, system_modstamp, last_id) VALUES ('Account', ?1, ?2)
         ON CONFLICT(object) DO UPDATE SET system_modstamp = excluded.system_modstamp,
           last_id = excluded.last_id",
    )
    .and_then(|mut st| st.execute(params![system_modstamp, id]))
    .map(drop)
    .map_err(|source| DbError::Sqlite {
        path: path.to_owned(),
        source,
    })
}

/// Where the last committed page ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watermark {
    /// `SystemModstamp` of the last row applied (Salesforce format).
    pub system_modstamp: Option<String>,
    /// Its `Id`.
    pub id: Option<String>,
}

/// An open billing database.
#[derive(Debug)]
pub struct BillingDb {
    conn: Connection,
    path: PathBuf,
}

impl BillingDb {
    /// Opens (creating if missing) the database at `path`; refuses foreign or newer ones.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let wrap = |source| DbError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        // Takes effect only on a new, empty file (before WAL mode is set); an existing
        // database keeps its page size. Larger pages: fewer b-tree pages and writes per row.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        // In WAL mode, NORMAL syncs at checkpoints rather than at every commit: a commit is
        // durable against a crash of this process (SIGKILL) — the WAL is in the OS's hands —
        // and the database stays consistent after a power loss, which may only undo the
        // last pages, watermark included, so the next run fetches them again.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        let db = BillingDb {
            conn,
            path: path.to_owned(),
        };
        db.check_or_init()?;
        Ok(db)
    }

    /// A second connection to the same database, for a writer thread (the caller's keeps
    /// reading). The file was checked when `self` was opened.
    pub fn reopen(&self) -> Result<Self, DbError> {
        let wrap = |source| DbError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let conn = Connection::open(&self.path).map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(wrap)?;
        Ok(BillingDb {
            conn,
            path: self.path.clone(),
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

    fn check_or_init(&self) -> Result<(), DbError> {
        let has_meta: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='sfkeep_meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.wrap(e))?
            > 0;
        if !has_meta {
            let tables: i64 = self
                .conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type='table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.wrap(e))?;
            if tables > 0 {
                return Err(DbError::ForeignDatabase {
                    path: self.path.clone(),
                });
            }
            self.conn
                .execute_batch(&format!(
                    "BEGIN;
                     CREATE TABLE sfkeep_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                     INSERT INTO sfkeep_meta VALUES ('tool', '{TOOL}'), ('schema_version', '{SCHEMA_VERSION}');
                     CREATE TABLE accounts (
                         id TEXT PRIMARY KEY,
                         name TEXT,
                         system_modstamp TEXT NOT NULL,
                         record TEXT NOT NULL
                     );
                     CREATE TABLE watermark (
                         object TEXT PRIMARY KEY,
                         system_modstamp TEXT,
                         last_id TEXT
                     );
                     COMMIT;"
                ))
                .map_err(|e| self.wrap(e))?;
            return Ok(());
        }
        let tool: Option<String> = self
            .conn
            .query_row("SELECT value FROM sfkeep_meta WHERE key='tool'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.wrap(e))?;
        if tool.as_deref() != Some(TOOL) {
            return Err(DbError::ForeignDatabase {
                path: self.path.clone(),
            });
        }
        let version: i64 = self
            .conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM sfkeep_meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.wrap(e))?;
        if version > SCHEMA_VERSION {
            return Err(DbError::NewerSchema {
                path: self.path.clone(),
                found: version,
            });
        }
        Ok(())
    }

    /// The watermark for Accounts.
    pub fn watermark(&self) -> Result<Watermark, DbError> {
        let w = self
            .conn
            .query_row(
                "SELECT system_modstamp, last_id FROM watermark WHERE object='Account'",
                [],
                |r| {
                    Ok(Watermark {
                        system_modstamp: r.get(0)?,
                        id: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.wrap(e))?;
        Ok(w.unwrap_or_default())
    }

    /// Upserts one page of REST records and moves the watermark to its last record,
    /// atomically; a page with a bad record is refused whole. Returns how many rows were
    /// inserted (the rest updated).
    #[cfg(test)]
    pub fn apply_page(&mut self, records: &[Value]) -> Result<usize, DbError> {
        Ok(self.apply_page_changes(records)?.inserted)
    }

    /// [`BillingDb::apply_page`], with every change counted.
    #[cfg(test)]
    pub fn apply_page_changes(&mut self, records: &[Value]) -> Result<Changes, DbError> {
        let records = records
            .iter()
            .enumerate()
            .map(|(i, r)| SyncRecord::from_value(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        self.apply_records(&records, true)
    }

    /// Moves the watermark.
    pub fn set_watermark(&mut self, w: &Watermark) -> Result<(), DbError> {
        let path = self.path.clone();
        write_watermark(
            &self.conn,
            &path,
            w.system_modstamp.as_deref(),
            w.id.as_deref(),
        )
    }

    /// Upserts `records` in one transaction, moving the watermark to the last of them when
    /// `move_watermark`. Returns how many rows were inserted (the rest updated).
    pub fn apply_records(
        &mut self,
        records: &[SyncRecord],
        move_watermark: bool,
    ) -> Result<Changes, DbError> {
        let load = self.begin()?;
        let changes = load.upsert(records)?;
        if let Some(last) = records.last().filter(|_| move_watermark) {
            write_watermark(
                &load.tx,
                load.path,
                Some(&last.system_modstamp),
                Some(&last.id),
            )?;
        }
        load.commit()?;
        Ok(changes)
    }

    /// Starts a transaction that may span many pages: nothing of it is visible, nor survives
    /// a crash, until [`Load::commit`]; dropping it rolls everything back.
    pub fn begin(&mut self) -> Result<Load<'_>, DbError> {
        let path = &self.path;
        let tx = self.conn.transaction().map_err(|source| DbError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Ok(Load { tx, path })
    }

    /// Rows in the accounts table.
    pub fn count(&self) -> Result<u64, DbError> {
        self.conn
            .query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.wrap(e))
    }

    /// Every (Id, SystemModstamp), sorted by Id: for comparing with the org (the demo's check).
    #[cfg(feature = "fake-org")]
    pub fn fingerprints(&self) -> Result<Vec<(String, String)>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT id, system_modstamp FROM accounts ORDER BY id")
            .map_err(|e| self.wrap(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.wrap(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.wrap(e))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_and_watermark_move_together_and_upserts_do_not_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("billing.db");
        let mut db = BillingDb::open(&path).unwrap();
        let page = vec![
            json!({"Id":"001A","Name":"a","SystemModstamp":"2026-01-01T00:00:00.000+0000"}),
            json!({"Id":"001B","Name":"b","SystemModstamp":"2026-01-01T00:00:01.000+0000"}),
        ];
        assert_eq!(db.apply_page(&page).unwrap(), 2);
        assert_eq!(db.apply_page(&page).unwrap(), 0);
        assert_eq!(db.count().unwrap(), 2);
        assert_eq!(db.watermark().unwrap().id.as_deref(), Some("001B"));
        drop(db);
        let db = BillingDb::open(&path).unwrap();
        assert_eq!(db.count().unwrap(), 2);
    }

    #[test]
    fn refuses_foreign_and_newer_databases() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("other.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER);")
            .unwrap();
        assert!(matches!(
            BillingDb::open(&foreign),
            Err(DbError::ForeignDatabase { .. })
        ));
        let newer = dir.path().join("newer.db");
        drop(BillingDb::open(&newer).unwrap());
        Connection::open(&newer)
            .unwrap()
            .execute(
                "UPDATE sfkeep_meta SET value='99' WHERE key='schema_version'",
                [],
            )
            .unwrap();
        let e = BillingDb::open(&newer).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    #[test]
    fn a_bad_record_leaves_the_database_and_watermark_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        let page = vec![
            json!({"Id":"001A","SystemModstamp":"x"}),
            json!({"Name":"no id"}),
        ];
        assert!(db.apply_page(&page).is_err());
        assert_eq!(db.count().unwrap(), 0);
        assert_eq!(db.watermark().unwrap(), Watermark::default());
    }

    #[test]
    fn a_read_only_database_fails_clearly_without_moving_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.db");
        let mut db = BillingDb::open(&path).unwrap();
        db.apply_page(&[json!({"Id":"001A","SystemModstamp":"t1"})])
            .unwrap();
        drop(db);
        let mut ro = BillingDb {
            conn: Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap(),
            path: path.clone(),
        };
        let e = ro
            .apply_page(&[json!({"Id":"001B","SystemModstamp":"t2"})])
            .unwrap_err();
        assert!(e.to_string().contains("Nothing was half-written"), "{e}");
        assert_eq!(ro.watermark().unwrap().id.as_deref(), Some("001A"));
    }
}
