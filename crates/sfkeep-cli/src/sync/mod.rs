//! The billing sync integration: Accounts from Salesforce into a SQLite billing database,
//! incremental by a `SystemModstamp` + `Id` watermark stored with the rows it covers.
//!
//! Each page of the query is applied in one transaction together with the watermark, so the
//! sync can be killed at any moment and resumes exactly where it stopped. Upserts by Id make
//! re-applying a page harmless. The query orders by `SystemModstamp, Id`, and the next run
//! asks only for what comes after the watermark.

pub mod db;

use std::time::{Duration, Instant};

use sfkeep::client::Client;

pub use db::{BillingDb, DbError, SyncRecord, Watermark};

/// Fields synced when the user names none.
pub const DEFAULT_FIELDS: &[&str] = &[
    "Id",
    "Name",
    "AccountNumber",
    "Industry",
    "AnnualRevenue",
    "BillingCity",
    "SystemModstamp",
];

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Salesforce (or the credential) failed; the watermark is where the last committed page
    /// ended.
    #[error("{0}")]
    Salesforce(#[from] sfkeep::Error),
    /// The billing database failed.
    #[error("{0}")]
    Db(#[from] DbError),
}

/// What one sync run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncSummary {
    /// Pages applied.
    pub pages: u64,
    /// Records fetched from Salesforce.
    pub fetched: u64,
    /// New rows in the billing database.
    pub inserted: u64,
    /// Rows updated in place.
    pub updated: u64,
    /// Rows removed because their record was deleted in Salesforce.
    pub deleted: u64,
    /// Rows in the billing database at the end.
    pub total_rows: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// Progress after each page.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Records fetched so far in this run.
    pub fetched: u64,
    /// Records the query said it would return, when known.
    pub total: Option<u64>,
    /// Time since the run started.
    pub elapsed: Duration,
}

/// The SOQL for the next run after `w`. An incremental run (one with a watermark) also
/// selects `IsDeleted` and goes through queryAll, so that records deleted in Salesforce since
/// the last run come back, marked, and leave the billing DB too.
pub fn incremental_soql(fields: &[String], w: &Watermark) -> String {
    let mut select: Vec<String> = vec!["Id".into(), "SystemModstamp".into()];
    if w.id.is_some() {
        select.push("IsDeleted".into());
    }
    for f in fields {
        if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
            select.push(f.clone());
        }
    }
    let mut soql = format!("SELECT {} FROM Account", select.join(", "));
    if let (Some(ts), Some(id)) = (&w.system_modstamp, &w.id) {
        let ts = soql_datetime(ts);
        let id = id.replace('\\', "\\\\").replace('\'', "\\'");
        soql.push_str(&format!(
            " WHERE SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > '{id}')"
        ));
    }
    soql.push_str(" ORDER BY SystemModstamp ASC, Id ASC");
    soql
}

/// `2026-11-28T05:58:09.123+0000` (as Salesforce returns it) → `2026-11-28T05:58:09.123Z`
/// (as SOQL takes it).
fn soql_datetime(ts: &str) -> String {
    match ts.strip_suffix("+0000") {
        Some(base) => format!("{base}Z"),
        None => ts.to_owned(),
    }
}

/// When the Bulk API 2.0 carries the initial load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    /// For an initial load of at least [`BULK_THRESHOLD`] records.
    Auto,
    /// For every initial load.
    On,
    /// Never: REST query pages only.
    Off,
}

/// Initial loads at least this large go through Bulk API 2.0 with [`Bulk::Auto`].
pub const BULK_THRESHOLD: u64 = 10_000;

/// Runs one sync to the end: an initial load (through Bulk API 2.0 when `bulk` says so), or
/// an incremental pass after the watermark.
pub async fn sync_accounts(
    client: &Client,
    db: &mut BillingDb,
    fields: &[String],
    bulk: Bulk,
    on_progress: impl FnMut(Progress),
) -> Result<SyncSummary, SyncError> {
    let watermark = db.watermark()?;
    let initial = watermark.id.is_none();
    let use_bulk = initial
        && match bulk {
            Bulk::Off => false,
            Bulk::On => true,
            Bulk::Auto => {
                let mut count = client.query("SELECT COUNT() FROM Account");
                count.next_page().await?;
                count.total_size().unwrap_or(0) >= BULK_THRESHOLD
            }
        };
    if use_bulk {
        bulk_load(client, db, fields, on_progress).await
    } else {
        rest_pass(client, db, fields, &watermark, on_progress).await
    }
}

/// Records per Bulk 2.0 results page. Smaller than Salesforce's default of 50,000 so the
/// writer starts on the first page sooner and fetching overlaps writing for more of the load;
/// 10 results calls for 100,000 records instead of 2.
pub const BULK_PAGE_RECORDS: u32 = 10_000;

/// Pages fetched ahead of the writer. Bounded so a slow disk holds back the fetching rather
/// than letting pages pile up in memory.
const PIPELINE_DEPTH: usize = 2;

/// Work for the writer thread.
enum Work {
    /// Upsert these records (one transaction per page when the writer commits per page),
    /// moving the watermark to the last of them when `move_watermark`.
    Page {
        records: Vec<SyncRecord>,
        move_watermark: bool,
    },
    /// Set the watermark.
    Watermark(Watermark),
    /// Commit the one transaction of a [`Commit::AtEnd`] writer. A writer whose channel
    /// closes without this rolls back.
    Commit,
}

/// When the writer commits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Each page in its own transaction, with its watermark: a REST pass resumes after the
    /// last committed page.
    PerPage,
    /// Everything in one transaction, committed by [`Work::Commit`]: an unordered bulk load
    /// has no watermark until its end, so it is all or nothing.
    AtEnd,
}

/// What the writer committed.
#[derive(Default)]
struct Applied {
    pages: u64,
    inserted: u64,
    updated: u64,
    deleted: u64,
}

/// The SQLite side of a sync on its own thread, fed through a bounded channel: fetching and
/// parsing the next page (HTTP, CSV/JSON) runs on one core while the current page is written
/// on another. Pages are applied in the order they were sent, so the crash guarantees are
/// those of applying them one after the other.
struct Writer {
    tx: tokio::sync::mpsc::Sender<Work>,
    handle: tokio::task::JoinHandle<Result<Applied, DbError>>,
    path: std::path::PathBuf,
}

impl Writer {
    fn start(db: &BillingDb, commit: Commit) -> Result<Self, DbError> {
        let mut conn = db.reopen()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Work>(PIPELINE_DEPTH);
        let handle = tokio::task::spawn_blocking(move || {
            let mut a = Applied::default();
            let count = |a: &mut Applied, c: db::Changes| {
                a.pages += 1;
                a.inserted += c.inserted as u64;
                a.updated += c.updated as u64;
                a.deleted += c.deleted as u64;
            };
            match commit {
                Commit::PerPage => {
                    while let Some(work) = rx.blocking_recv() {
                        match work {
                            Work::Page {
                                records,
                                move_watermark,
                            } => {
                                let c = conn.apply_records(&records, move_watermark)?;
                                count(&mut a, c);
                            }
                            Work::Watermark(w) => conn.set_watermark(&w)?,
                            Work::Commit => {}
                        }
                    }
                }
                Commit::AtEnd => {
                    let load = conn.begin()?;
                    while let Some(work) = rx.blocking_recv() {
                        match work {
                            Work::Page { records, .. } => {
                                let c = load.upsert(&records)?;
                                count(&mut a, c);
                            }
                            Work::Watermark(w) => load.set_watermark(&w)?,
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
    async fn send(&self, work: Work) -> bool {
        self.tx.send(work).await.is_ok()
    }

    /// Waits until everything sent is committed (or the writer failed).
    async fn finish(self) -> Result<Applied, DbError> {
        drop(self.tx);
        match self.handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(DbError::WriterStopped { path: self.path }),
        }
    }
}

/// The initial load through a Bulk 2.0 query job. Its results are unordered, so the
/// watermark is set once, to the newest (`SystemModstamp`, `Id`) seen, after the last page,
/// in the one transaction that holds every row of the load: a crash before its commit
/// leaves the database as it was, and the next run loads again.
async fn bulk_load(
    client: &Client,
    db: &mut BillingDb,
    fields: &[String],
    mut on_progress: impl FnMut(Progress),
) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    let soql = incremental_soql(fields, &Watermark::default());
    // Bulk 2.0 query jobs do not take ORDER BY.
    let soql = soql.split(" ORDER BY ").next().unwrap_or(&soql).to_owned();
    let kinds = field_kinds(client).await?;
    let mut job = client
        .bulk_query(&soql)
        .await?
        .max_records(BULK_PAGE_RECORDS);
    let writer = Writer::start(db, Commit::AtEnd)?;
    let mut fetched = 0u64;
    let fetching: Result<(), SyncError> = async {
        let mut newest: Option<(String, String)> = None;
        while let Some(page) = job.next_page_csv().await? {
            let records = csv_records(&page, &kinds)?;
            if let Some(r) = records
                .iter()
                .max_by(|a, b| (&a.system_modstamp, &a.id).cmp(&(&b.system_modstamp, &b.id)))
                && newest
                    .as_ref()
                    .is_none_or(|(ts, id)| (&r.system_modstamp, &r.id) > (ts, id))
            {
                newest = Some((r.system_modstamp.clone(), r.id.clone()));
            }
            fetched += records.len() as u64;
            let work = Work::Page {
                records,
                move_watermark: false,
            };
            if !writer.send(work).await {
                return Ok(());
            }
            on_progress(Progress {
                fetched,
                total: None,
                elapsed: started.elapsed(),
            });
        }
        if let Some((ts, id)) = newest {
            let w = Watermark {
                system_modstamp: Some(ts),
                id: Some(id),
            };
            writer.send(Work::Watermark(w)).await;
        }
        writer.send(Work::Commit).await;
        Ok(())
    }
    .await;
    // The writer is done before this returns, error or not: the load is committed whole,
    // or (cut short) rolled back whole.
    let applied = writer.finish().await?;
    fetching?;
    summary(db, applied, fetched, started)
}

async fn rest_pass(
    client: &Client,
    db: &mut BillingDb,
    fields: &[String],
    watermark: &Watermark,
    mut on_progress: impl FnMut(Progress),
) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    let soql = incremental_soql(fields, watermark);
    let incremental = watermark.id.is_some();
    let mut pages = if incremental {
        client.query_all(&soql)
    } else {
        client.query(&soql)
    };
    let keep_is_deleted = fields.iter().any(|f| f.eq_ignore_ascii_case("IsDeleted"));
    let writer = Writer::start(db, Commit::PerPage)?;
    let mut fetched = 0u64;
    let fetching: Result<(), SyncError> = async {
        while let Some(page) = pages.next_page().await? {
            let records = page
                .iter()
                .enumerate()
                .map(|(i, r)| SyncRecord::from_value_keeping(i, r, keep_is_deleted))
                .collect::<Result<Vec<_>, _>>()?;
            fetched += records.len() as u64;
            let work = Work::Page {
                records,
                move_watermark: true,
            };
            if !writer.send(work).await {
                return Ok(());
            }
            on_progress(Progress {
                fetched,
                total: pages.total_size(),
                elapsed: started.elapsed(),
            });
        }
        Ok(())
    }
    .await;
    // The writer is done before this returns, error or not: every page handed over is
    // committed with its watermark (or the database error is what this returns).
    let applied = writer.finish().await?;
    fetching?;
    summary(db, applied, fetched, started)
}

fn summary(
    db: &BillingDb,
    applied: Applied,
    fetched: u64,
    started: Instant,
) -> Result<SyncSummary, SyncError> {
    Ok(SyncSummary {
        pages: applied.pages,
        fetched,
        inserted: applied.inserted,
        updated: applied.updated,
        deleted: applied.deleted,
        total_rows: db.count()?,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// How a CSV cell becomes a JSON value, by the field's describe type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    /// `double`, `currency`, `percent`, `int`, `long`: a JSON number.
    Number,
    /// `boolean`: `true` / `false`.
    Boolean,
    /// Everything else (strings, ids, picklists, dates): a JSON string.
    Text,
}

/// The Account fields that are not text, from `sobjects/Account/describe`: Bulk 2.0 sends
/// every value as CSV text, and without the types a load would store `"10000.0"` where a
/// REST pass stores `10000.0`.
async fn field_kinds(
    client: &Client,
) -> Result<std::collections::HashMap<String, FieldKind>, SyncError> {
    let describe = client
        .get_json(&client.data_path("/sobjects/Account/describe"))
        .await?;
    Ok(describe["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let kind = match f["type"].as_str()? {
                "double" | "currency" | "percent" | "int" | "long" => FieldKind::Number,
                "boolean" => FieldKind::Boolean,
                _ => return None,
            };
            Some((f["name"].as_str()?.to_owned(), kind))
        })
        .collect())
}

/// Parses a Bulk 2.0 results page (RFC 4180 CSV, header line first; an empty cell is null)
/// straight into records for the database, without a map of JSON values per record. `kinds`
/// names the fields whose text is a number or a boolean (see [`field_kinds`]).
fn csv_records(
    body: &[u8],
    kinds: &std::collections::HashMap<String, FieldKind>,
) -> Result<Vec<SyncRecord>, SyncError> {
    let bad = |problem: String| {
        SyncError::Salesforce(sfkeep::Error::MalformedResponse {
            source_name: "Bulk 2.0 results".into(),
            problem,
            status: 200,
            snippet: sfkeep::error::redacted_snippet(body),
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("bad CSV: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let id_col = column("Id");
    let stamp_col = column("SystemModstamp");
    let name_col = column("Name");
    // The stored JSON has its keys sorted, as a serde_json map writes them, so a row loaded
    // from CSV is stored exactly as the same row fetched over REST would be.
    let mut order: Vec<usize> = (0..headers.len()).collect();
    order.sort_by(|a, b| headers[*a].cmp(&headers[*b]));
    order.dedup_by(|a, b| headers[*a] == headers[*b]);
    let keys: Vec<String> = order
        .iter()
        .map(|&i| format!("{}:", serde_json::Value::from(headers[i].as_str())))
        .collect();
    let column_kinds: Vec<FieldKind> = order
        .iter()
        .map(|&i| kinds.get(&headers[i]).copied().unwrap_or(FieldKind::Text))
        .collect();
    let mut out = Vec::new();
    let mut rec = csv::StringRecord::new();
    while reader
        .read_record(&mut rec)
        .map_err(|e| bad(format!("bad CSV: {e}")))?
    {
        let index = out.len();
        if rec.len() != headers.len() {
            return Err(bad(format!(
                "bad CSV: a row has {} cells for {} columns",
                rec.len(),
                headers.len()
            )));
        }
        let cell = |col: Option<usize>| col.map(|i| &rec[i]).filter(|v| !v.is_empty());
        let id = cell(id_col).ok_or(DbError::BadRecord { index, field: "Id" })?;
        let system_modstamp = cell(stamp_col).ok_or(DbError::BadRecord {
            index,
            field: "SystemModstamp",
        })?;
        let mut json = String::with_capacity(rec.as_slice().len() + 16 * keys.len() + 2);
        json.push('{');
        for (n, ((&i, key), kind)) in order.iter().zip(&keys).zip(&column_kinds).enumerate() {
            if n > 0 {
                json.push(',');
            }
            json.push_str(key);
            match (&rec[i], kind) {
                ("", _) => json.push_str("null"),
                (v, FieldKind::Number) => push_json_number(&mut json, v)
                    .map_err(|()| bad(format!("row {index}: `{}` is not a number", headers[i])))?,
                ("true" | "false", FieldKind::Boolean) => json.push_str(&rec[i]),
                (v, _) => push_json_str(&mut json, v),
            }
        }
        json.push('}');
        out.push(SyncRecord {
            id: id.to_owned(),
            name: cell(name_col).map(str::to_owned),
            system_modstamp: system_modstamp.to_owned(),
            json,
            deleted: false,
        });
    }
    Ok(out)
}

/// Appends the CSV text of a number as the JSON number REST would send: the text itself when
/// it is already a JSON number literal (`10000.0`), else the value it parses to.
fn push_json_number(out: &mut String, s: &str) -> Result<(), ()> {
    if serde_json::from_str::<serde_json::Number>(s).is_ok() {
        out.push_str(s);
        return Ok(());
    }
    let n = s.parse::<f64>().map_err(|_| ())?;
    let n = serde_json::Number::from_f64(n).ok_or(())?;
    out.push_str(&n.to_string());
    Ok(())
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> std::collections::HashMap<String, FieldKind> {
        [
            ("AnnualRevenue".to_owned(), FieldKind::Number),
            ("IsActive__c".to_owned(), FieldKind::Boolean),
        ]
        .into()
    }

    #[test]
    fn csv_pages_become_the_same_records_as_rest_pages() {
        let csv = b"\"Id\",\"SystemModstamp\",\"Name\",\"BillingCity\",\"AnnualRevenue\",\"IsActive__c\"\n\
            \"001A\",\"2026-01-01T00:00:00.000+0000\",\"Acme, \"\"the\"\" one\nline 2\",\"\",\"5.0\",\"true\"\n\
            \"001B\",\"2026-01-01T00:00:01.000+0000\",\"back\\slash\ttab\",\"Paris\",,\"false\"\n";
        let records = csv_records(csv, &kinds()).unwrap();
        assert_eq!(records.len(), 2);
        // Typed as REST sends them: a number, a boolean, null for an empty cell.
        let rest = serde_json::json!({
            "attributes": {"type": "Account"},
            "Id": "001A", "SystemModstamp": "2026-01-01T00:00:00.000+0000",
            "Name": "Acme, \"the\" one\nline 2", "BillingCity": null, "AnnualRevenue": 5.0,
            "IsActive__c": true,
        });
        assert_eq!(records[0], SyncRecord::from_value(0, &rest).unwrap());
        assert_eq!(records[1].name.as_deref(), Some("back\\slash\ttab"));
        let back: serde_json::Value = serde_json::from_str(&records[1].json).unwrap();
        assert_eq!(back["Name"], "back\\slash\ttab");
        assert_eq!(back["AnnualRevenue"], serde_json::Value::Null);
    }

    #[test]
    fn bad_csv_pages_are_refused_whole() {
        let no_id = b"Id,SystemModstamp\n001A,t1\n,t2\n";
        assert!(matches!(
            csv_records(no_id, &kinds()),
            Err(SyncError::Db(DbError::BadRecord {
                index: 1,
                field: "Id"
            }))
        ));
        let ragged = b"Id,SystemModstamp\n001A,t1\n001B\n";
        assert!(matches!(
            csv_records(ragged, &kinds()),
            Err(SyncError::Salesforce(_))
        ));
        let not_a_number = b"Id,SystemModstamp,AnnualRevenue\n001A,t1,lots\n";
        assert!(matches!(
            csv_records(not_a_number, &kinds()),
            Err(SyncError::Salesforce(_))
        ));
    }

    fn record(id: &str) -> SyncRecord {
        SyncRecord {
            id: id.into(),
            name: None,
            system_modstamp: "t".into(),
            json: "{}".into(),
            deleted: false,
        }
    }

    #[tokio::test]
    async fn a_load_that_is_not_committed_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        let writer = Writer::start(&db, Commit::AtEnd).unwrap();
        for id in ["001A", "001B"] {
            let work = Work::Page {
                records: vec![record(id)],
                move_watermark: false,
            };
            assert!(writer.send(work).await);
        }
        let w = Watermark {
            system_modstamp: Some("t".into()),
            id: Some("001B".into()),
        };
        assert!(writer.send(Work::Watermark(w.clone())).await);
        // The fetch failed here: no Commit.
        writer.finish().await.unwrap();
        assert_eq!(db.count().unwrap(), 0);
        assert_eq!(db.watermark().unwrap(), Watermark::default());

        let writer = Writer::start(&db, Commit::AtEnd).unwrap();
        let work = Work::Page {
            records: vec![record("001A"), record("001B")],
            move_watermark: false,
        };
        assert!(writer.send(work).await);
        assert!(writer.send(Work::Watermark(w.clone())).await);
        assert!(writer.send(Work::Commit).await);
        let applied = writer.finish().await.unwrap();
        assert_eq!((applied.pages, applied.inserted), (1, 2));
        assert_eq!(db.count().unwrap(), 2);
        assert_eq!(db.watermark().unwrap(), w);
    }

    #[tokio::test]
    async fn a_writer_that_fails_stops_with_its_error_and_the_watermark_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let mut db = BillingDb::open(&path).unwrap();
        db.apply_records(&[record("001A")], true).unwrap();
        // Every later insert fails, as on a full or read-only disk.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER full BEFORE INSERT ON accounts
                 BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
            )
            .unwrap();
        for commit in [Commit::PerPage, Commit::AtEnd] {
            let writer = Writer::start(&db, commit).unwrap();
            for id in ["001B", "001C", "001D", "001E"] {
                let work = Work::Page {
                    records: vec![record(id)],
                    move_watermark: true,
                };
                if !writer.send(work).await {
                    break;
                }
            }
            let _ = writer.send(Work::Commit).await;
            let e = writer.finish().await.err().expect("the writer fails");
            assert!(e.to_string().contains("disk is full"), "{e}");
            assert_eq!(db.count().unwrap(), 1);
            assert_eq!(db.watermark().unwrap().id.as_deref(), Some("001A"));
        }
    }

    #[tokio::test]
    async fn pages_written_one_by_one_move_the_watermark_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = BillingDb::open(&dir.path().join("b.db")).unwrap();
        let writer = Writer::start(&db, Commit::PerPage).unwrap();
        for id in ["001A", "001B", "001A"] {
            let work = Work::Page {
                records: vec![record(id)],
                move_watermark: true,
            };
            assert!(writer.send(work).await);
        }
        let applied = writer.finish().await.unwrap();
        assert_eq!(
            (applied.pages, applied.inserted, applied.updated),
            (3, 2, 1)
        );
        assert_eq!(db.count().unwrap(), 2);
        assert_eq!(db.watermark().unwrap().id.as_deref(), Some("001A"));
    }

    #[test]
    fn the_first_run_selects_everything_and_later_runs_start_after_the_watermark() {
        let fields = vec!["Name".to_owned()];
        assert_eq!(
            incremental_soql(&fields, &Watermark::default()),
            "SELECT Id, SystemModstamp, Name FROM Account ORDER BY SystemModstamp ASC, Id ASC"
        );
        let w = Watermark {
            system_modstamp: Some("2026-11-28T05:58:09.123+0000".into()),
            id: Some("001x'".into()),
        };
        let q = incremental_soql(&fields, &w);
        assert!(q.contains("SystemModstamp > 2026-11-28T05:58:09.123Z OR (SystemModstamp = 2026-11-28T05:58:09.123Z AND Id > '001x\\'')"), "{q}");
    }
}
