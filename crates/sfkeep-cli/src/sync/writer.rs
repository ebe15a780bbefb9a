//! The SQLite side of a sync on its own thread, fed through a bounded channel: fetching and
//! parsing the next page (HTTP, CSV/JSON) runs on one core while the current page is written
//! on another. Pages are applied in the order they were sent, so the crash guarantees are
//! those of applying them one after the other.

use super::db::{BillingDb, Changes, DbError, SyncRecord};
use super::stamp::Stamp;

/// Pages fetched ahead of the writer. Bounded so a slow disk holds back the fetching rather
/// than letting pages pile up in memory.
const PIPELINE_DEPTH: usize = 2;

/// Work for the writer thread.
pub enum Work {
    /// Apply these records. With `fields`, also record the field list and move the watermark
    /// to the newest of them (in the page's transaction when the writer commits per page); a
    /// backfill page moves nothing.
    Page {
        /// The records.
        records: Vec<SyncRecord>,
        /// The field list to record with the watermark, if the watermark moves.
        fields: Option<Vec<String>>,
    },
    /// Record the field list and move the watermark forward to `newest` (`None` keeps it).
    State {
        /// The newest stamp applied, if it moves the watermark.
        newest: Option<Stamp>,
        /// The field list the rows now hold.
        fields: Vec<String>,
    },
    /// Commit the one transaction of a [`Commit::AtEnd`] writer. A writer whose channel
    /// closes without this rolls back.
    Commit,
}

/// When the writer commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Each page in its own transaction, with its watermark: a REST pass resumes after the
    /// last committed page.
    PerPage,
    /// Everything in one transaction, committed by [`Work::Commit`]: an unordered bulk load
    /// has no watermark until its end, so it is all or nothing.
    AtEnd,
}

/// What the writer committed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Applied {
    /// Pages applied.
    pub pages: u64,
    /// What they changed.
    pub changes: Changes,
}

/// The writer thread and the channel to it.
pub struct Writer {
    tx: tokio::sync::mpsc::Sender<Work>,
    handle: tokio::task::JoinHandle<Result<Applied, DbError>>,
    path: std::path::PathBuf,
}

impl Writer {
    /// Starts a writer on a second connection to `db` (under the lock `db` holds).
    pub fn start(db: &BillingDb, commit: Commit) -> Result<Self, DbError> {
        let mut conn = db.reopen()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Work>(PIPELINE_DEPTH);
        let handle = tokio::task::spawn_blocking(move || {
            let mut a = Applied::default();
            let count = |a: &mut Applied, c: Changes| {
                a.pages += 1;
                a.changes.add(c);
            };
            match commit {
                Commit::PerPage => {
                    while let Some(work) = rx.blocking_recv() {
                        match work {
                            Work::Page { records, fields } => {
                                let c = conn.apply_records(&records, fields.as_deref())?;
                                count(&mut a, c);
                            }
                            Work::State { newest, fields } => {
                                let load = conn.begin()?;
                                load.set_state(newest.as_ref(), &fields)?;
                                load.commit()?;
                            }
                            Work::Commit => {}
                        }
                    }
                }
                Commit::AtEnd => {
                    let load = conn.begin()?;
                    while let Some(work) = rx.blocking_recv() {
                        match work {
                            Work::Page { records, fields } => {
                                let c = load.upsert(&records)?;
                                if let Some(fields) = fields {
                                    load.set_state(super::db::newest(&records), &fields)?;
                                }
                                count(&mut a, c);
                            }
                            Work::State { newest, fields } => {
                                load.set_state(newest.as_ref(), &fields)?
                            }
                            Work::Commit => {
                                load.commit()?;
                                return Ok(a);
                            }
                        }
                    }
                    // The sender went away without committing (the fetch failed): `load`
                    // rolls back as it drops.
                    a = Applied::default();
                }
            }
            Ok(a)
        });
        Ok(Writer {
            tx,
            handle,
            path: db.path().to_owned(),
        })
    }

    /// Hands `work` to the writer; `false` when the writer has stopped (on an error, which
    /// [`Writer::finish`] returns).
    pub async fn send(&self, work: Work) -> bool {
        self.tx.send(work).await.is_ok()
    }

    /// Waits for the writer once `fetching` has ended, error or not, so the database is
    /// settled before the run returns: the writer's error comes first (a fetch cut short by a
    /// stopped writer is its consequence), then the fetch's.
    pub async fn finish_after(
        self,
        fetching: Result<(), super::SyncError>,
    ) -> Result<Applied, super::SyncError> {
        let applied = self.finish().await?;
        fetching?;
        Ok(applied)
    }

    /// Waits until everything sent is committed (or the writer failed).
    pub async fn finish(self) -> Result<Applied, DbError> {
        drop(self.tx);
        match self.handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(DbError::WriterStopped { path: self.path }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> SyncRecord {
        SyncRecord {
            id: id.into(),
            name: None,
            system_modstamp: Stamp::parse("2026-01-01T00:00:00.000+0000").unwrap(),
            json: "{}".into(),
            deleted: false,
        }
    }

    fn fields() -> Vec<String> {
        vec!["Id".into(), "SystemModstamp".into()]
    }

    /// Sends pages of `pages` then the state (watermark at 001B's stamp) to an at-end writer.
    async fn send_load(writer: &Writer, pages: &[&[&str]]) {
        for ids in pages {
            let work = Work::Page {
                records: ids.iter().map(|id| record(id)).collect(),
                fields: None,
            };
            assert!(writer.send(work).await);
        }
        let state = Work::State {
            newest: Some(record("001B").system_modstamp),
            fields: fields(),
        };
        assert!(writer.send(state).await);
    }

    #[tokio::test]
    async fn a_load_that_is_not_committed_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        let writer = Writer::start(&db, Commit::AtEnd).unwrap();
        send_load(&writer, &[&["001A"], &["001B"]]).await;
        // The fetch failed here: no Commit.
        writer.finish().await.unwrap();
        assert_eq!(db.count().unwrap(), 0);
        assert_eq!(db.state().unwrap(), Default::default());

        let writer = Writer::start(&db, Commit::AtEnd).unwrap();
        send_load(&writer, &[&["001A", "001B"]]).await;
        assert!(writer.send(Work::Commit).await);
        let applied = writer.finish().await.unwrap();
        assert_eq!((applied.pages, applied.changes.inserted), (1, 2));
        assert_eq!(db.count().unwrap(), 2);
        let state = db.state().unwrap();
        assert_eq!(state.watermark, Some(record("001B").system_modstamp));
        assert_eq!(state.fields, Some(fields()));
    }

    #[tokio::test]
    async fn a_writer_that_fails_stops_with_its_error_and_the_watermark_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let mut db = BillingDb::open(&path).unwrap();
        db.apply_records(&[record("001A")], Some(&fields()))
            .unwrap();
        // Every later insert fails, as on a full or read-only disk.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER full BEFORE INSERT ON accounts
                 BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
            )
            .unwrap();
        let before = db.state().unwrap();
        for commit in [Commit::PerPage, Commit::AtEnd] {
            let writer = Writer::start(&db, commit).unwrap();
            for id in ["001B", "001C", "001D", "001E"] {
                let work = Work::Page {
                    records: vec![record(id)],
                    fields: Some(fields()),
                };
                if !writer.send(work).await {
                    break;
                }
            }
            let _ = writer.send(Work::Commit).await;
            let e = writer.finish().await.expect_err("the writer fails");
            assert!(e.to_string().contains("disk is full"), "{e}");
            assert_eq!(db.count().unwrap(), 1);
            assert_eq!(db.state().unwrap(), before);
        }
    }

    #[tokio::test]
    async fn pages_written_one_by_one_move_the_watermark_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        let writer = Writer::start(&db, Commit::PerPage).unwrap();
        let stamps = [
            "2026-01-01T00:00:01.000+0000",
            "2026-01-01T00:00:02.000+0000",
            "2026-01-01T00:00:03.000+0000",
        ];
        for (id, stamp) in ["001A", "001B", "001A"].into_iter().zip(stamps) {
            let mut r = record(id);
            r.system_modstamp = Stamp::parse(stamp).unwrap();
            r.json = format!("{{\"v\":\"{stamp}\"}}");
            let work = Work::Page {
                records: vec![r],
                fields: Some(fields()),
            };
            assert!(writer.send(work).await);
        }
        let applied = writer.finish().await.unwrap();
        assert_eq!(
            (
                applied.pages,
                applied.changes.inserted,
                applied.changes.updated
            ),
            (3, 2, 1)
        );
        assert_eq!(db.count().unwrap(), 2);
        assert_eq!(
            db.state().unwrap().watermark.map(|s| s.as_str().to_owned()),
            Some(stamps[2].to_owned())
        );
    }
}
