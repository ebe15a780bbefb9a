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

pub use db::{BillingDb, DbError, Watermark};

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

/// The SOQL for the next run after `w`.
pub fn incremental_soql(fields: &[String], w: &Watermark) -> String {
    let mut select: Vec<String> = vec!["Id".into(), "SystemModstamp".into()];
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

/// The initial load through a Bulk 2.0 query job. Its results are unordered, so rows are
/// upserted without moving the watermark, which is set once, to the newest
/// (`SystemModstamp`, `Id`) seen, after the last page. A crash before that re-runs the load;
/// the upserts make it harmless.
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
    let mut job = client.bulk_query(&soql).await?;
    let mut s = SyncSummary::default();
    let mut newest: Option<(String, String)> = None;
    while let Some(page) = job.next_page().await? {
        let rows: Vec<serde_json::Value> =
            page.into_iter().map(serde_json::Value::Object).collect();
        for r in &rows {
            if let (Some(ts), Some(id)) = (r["SystemModstamp"].as_str(), r["Id"].as_str()) {
                let key = (ts.to_owned(), id.to_owned());
                if newest.as_ref().is_none_or(|n| key > *n) {
                    newest = Some(key);
                }
            }
        }
        let inserted = db.apply_rows(&rows)? as u64;
        s.pages += 1;
        s.fetched += rows.len() as u64;
        s.inserted += inserted;
        s.updated += rows.len() as u64 - inserted;
        on_progress(Progress {
            fetched: s.fetched,
            total: None,
            elapsed: started.elapsed(),
        });
    }
    if let Some((ts, id)) = newest {
        db.set_watermark(&Watermark {
            system_modstamp: Some(ts),
            id: Some(id),
        })?;
    }
    s.total_rows = db.count()?;
    s.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(s)
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
    let mut pages = client.query(&soql);
    let mut s = SyncSummary::default();
    while let Some(page) = pages.next_page().await? {
        let inserted = db.apply_page(&page)? as u64;
        s.pages += 1;
        s.fetched += page.len() as u64;
        s.inserted += inserted;
        s.updated += page.len() as u64 - inserted;
        on_progress(Progress {
            fetched: s.fetched,
            total: pages.total_size(),
            elapsed: started.elapsed(),
        });
    }
    s.total_rows = db.count()?;
    s.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

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
