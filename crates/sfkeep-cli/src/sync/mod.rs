//! The billing sync integration: Accounts from Salesforce into a SQLite billing database that
//! loses nothing (docs/sync.md has the Salesforce facts it relies on):
//!
//! - Incremental by a `SystemModstamp` watermark stored with the rows it covers. Every query
//!   looks back (`SystemModstamp >= watermark - look-back`, default 10 minutes): a record
//!   stamped in the watermark's millisecond, or stamped earlier but committed later (Salesforce
//!   stamps a write before its transaction commits), is read again instead of skipped.
//! - Re-reading is harmless: the database replaces a row only with a version at least as new,
//!   and keeps deletions, so nothing goes back in time or comes back from the dead.
//! - One writer per database (`db`), pages that shrink when one is too large (`reader`), a new
//!   query when a cursor expires, the field list kept with the watermark and new fields
//!   backfilled (`fields`), values kept exactly (`csv`), and a field-by-field verification
//!   (`verify`).
//!
//! Each page is applied in one transaction together with the watermark, so the sync can be
//! killed at any moment and resumes where it stopped.

mod bulk;
mod csv;
pub mod db;
mod fields;
#[cfg(all(test, feature = "fake-org"))]
mod org_tests;
mod reader;
mod rest;
mod stamp;
pub mod verify;
mod writer;

use std::time::{Duration, Instant};

use sfkeep::client::Client;

pub use db::{BillingDb, DbError};
pub use fields::UnknownField;
pub use verify::verify;

use fields::FieldList;

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

/// How far back each incremental query reaches before the watermark: Salesforce's limit on
/// a transaction's length (10 minutes), so a write stamped before a later-stamped one it
/// committed after is still read (docs/sync.md).
pub const DEFAULT_LOOK_BACK: Duration = Duration::from_secs(600);

/// Why a sync stopped. The watermark is where the last committed page left it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Salesforce (or the credential) failed.
    #[error("{0}")]
    Salesforce(#[from] sfkeep::Error),
    /// The billing database failed.
    #[error("{0}")]
    Db(#[from] DbError),
    /// A field the org's Account does not have.
    #[error("{0}")]
    UnknownField(#[from] UnknownField),
    /// A page of the smallest size Salesforce serves is still larger than the client reads.
    #[error(
        "a query page of {batch} Accounts (Salesforce's smallest page) is larger than the {} MiB sfkeep reads at once: the selected fields are too wide for the REST API. Select fewer long text fields with --fields",
        cap / (1024 * 1024)
    )]
    PageTooLarge {
        /// The batch size asked for.
        batch: u32,
        /// The body size limit, in bytes.
        cap: usize,
    },
    /// The query cursor kept expiring before a page could be read.
    #[error(
        "the query cursor expired (INVALID_QUERY_LOCATOR) {restarts} times in a row without the pages getting further; the pages read before are committed, and a rerun resumes after them"
    )]
    CursorExpired {
        /// New queries made.
        restarts: u32,
    },
}

impl SyncError {
    /// Running again later, unchanged, may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Salesforce(e) => e.is_retryable(),
            SyncError::Db(e) => e.is_busy(),
            SyncError::CursorExpired { .. } => true,
            _ => false,
        }
    }
}

/// What one sync run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncSummary {
    /// Pages applied.
    pub pages: u64,
    /// Records fetched from Salesforce (look-back re-reads included).
    pub fetched: u64,
    /// New rows in the billing database.
    pub inserted: u64,
    /// Rows replaced by a newer version.
    pub updated: u64,
    /// Rows removed because their record was deleted in Salesforce.
    pub deleted: u64,
    /// Records fetched that changed nothing (read again by the look-back window).
    pub unchanged: u64,
    /// Fields added to the field list since the last run, backfilled into every row.
    pub backfilled_fields: Vec<String>,
    /// Rows written by that backfill.
    pub backfilled_rows: u64,
    /// The query page size asked for after a page was too large (`None`: Salesforce's
    /// default).
    pub batch_size: Option<u32>,
    /// Rows in the billing database at the end.
    pub total_rows: u64,
    /// Wall time.
    pub elapsed_ms: u64,
}

impl SyncSummary {
    /// Rows this run changed: inserted, updated or deleted (backfill excluded): the demo's
    /// count.
    #[cfg(feature = "fake-org")]
    pub fn changed(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// Which part of a run a progress report is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The first load of an empty database.
    Load,
    /// Rewriting every row because the field list gained (or lost) fields.
    Backfill {
        /// Fields added.
        added: Vec<String>,
    },
    /// Changes since the watermark.
    Incremental,
}

/// Progress after each page.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Which part of the run.
    pub phase: Phase,
    /// Records fetched so far in this phase.
    pub fetched: u64,
    /// Records the query said it would return, when known.
    pub total: Option<u64>,
    /// Time since the run started.
    pub elapsed: Duration,
    /// The page size asked for after a page was too large.
    pub batch_size: Option<u32>,
}

/// When the Bulk API 2.0 carries a full read (an initial load, a backfill).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    /// For a full read of at least [`BULK_THRESHOLD`] records.
    Auto,
    /// For every full read.
    On,
    /// Never: REST query pages only.
    Off,
}

/// Full reads at least this large go through Bulk API 2.0 with [`Bulk::Auto`].
pub const BULK_THRESHOLD: u64 = 10_000;

/// How a sync runs. Builder-style: `SyncOptions::new(fields).look_back(d)`.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    fields: Vec<String>,
    bulk: Bulk,
    look_back: Duration,
    /// The fields as the org has them, once checked.
    resolved: Option<FieldList>,
}

impl SyncOptions {
    /// Syncs `fields` (`Id` and `SystemModstamp` are always added).
    pub fn new(fields: Vec<String>) -> Self {
        SyncOptions {
            fields,
            bulk: Bulk::Auto,
            look_back: DEFAULT_LOOK_BACK,
            resolved: None,
        }
    }

    /// Checks the fields against the org's Account now, before a database is opened (a
    /// field the org does not have is refused without creating or touching one).
    /// [`sync_accounts`] checks them itself when this was not called.
    pub async fn check_fields(&mut self, client: &Client) -> Result<(), SyncError> {
        self.resolved = Some(FieldList::resolve(client, &self.fields).await?);
        Ok(())
    }

    /// When Bulk API 2.0 is used. Default [`Bulk::Auto`].
    pub fn bulk(mut self, bulk: Bulk) -> Self {
        self.bulk = bulk;
        self
    }

    /// How far back each incremental query reaches. Default [`DEFAULT_LOOK_BACK`].
    pub fn look_back(mut self, d: Duration) -> Self {
        self.look_back = d;
        self
    }
}

/// What one pass (a load, a backfill, an incremental read) did.
#[derive(Default)]
struct Pass {
    applied: writer::Applied,
    fetched: u64,
    batch_size: Option<u32>,
}

/// Runs one sync to the end: an initial load (through Bulk API 2.0 when `opts` says so), or
/// a backfill if the field list changed and then an incremental pass from the watermark.
/// The fields are checked against the org before anything is written.
pub async fn sync_accounts(
    client: &Client,
    db: &mut BillingDb,
    opts: &SyncOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    let fields = match &opts.resolved {
        Some(f) => f.clone(),
        None => FieldList::resolve(client, &opts.fields).await?,
    };
    let state = db.state()?;
    let mut summary = SyncSummary::default();
    let progress = &mut on_progress;
    let add = |summary: &mut SyncSummary, pass: Pass| {
        let c = pass.applied.changes;
        summary.pages += pass.applied.pages;
        summary.fetched += pass.fetched;
        summary.inserted += c.inserted as u64;
        summary.updated += c.updated as u64;
        summary.deleted += c.deleted as u64;
        summary.unchanged += c.unchanged as u64;
        summary.batch_size = summary.batch_size.or(pass.batch_size);
    };
    match &state.watermark {
        None => {
            let pass = if full_read_through_bulk(client, opts.bulk).await? {
                bulk::load(client, db, &fields, false, Phase::Load, started, progress).await?
            } else {
                let mode = rest::Mode::Load;
                rest::pass(client, db, &fields, mode, opts.look_back, started, progress).await?
            };
            add(&mut summary, pass);
        }
        Some(watermark) => {
            if !state.fields.as_deref().is_some_and(|f| fields.same_as(f)) {
                let added = fields.added_to(state.fields.as_deref().unwrap_or_default());
                let phase = Phase::Backfill {
                    added: added.clone(),
                };
                let pass = if full_read_through_bulk(client, opts.bulk).await? {
                    bulk::load(client, db, &fields, true, phase, started, progress).await?
                } else {
                    let mode = rest::Mode::Backfill(phase);
                    rest::pass(client, db, &fields, mode, opts.look_back, started, progress).await?
                };
                let c = pass.applied.changes;
                summary.backfilled_fields = added;
                summary.backfilled_rows = (c.inserted + c.updated) as u64;
                summary.pages += pass.applied.pages;
                summary.fetched += pass.fetched;
                summary.batch_size = pass.batch_size;
            }
            let mode = rest::Mode::Incremental(watermark);
            let pass =
                rest::pass(client, db, &fields, mode, opts.look_back, started, progress).await?;
            add(&mut summary, pass);
        }
    }
    summary.total_rows = db.count()?;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Whether a full read goes through Bulk API 2.0.
async fn full_read_through_bulk(client: &Client, bulk: Bulk) -> Result<bool, SyncError> {
    Ok(match bulk {
        Bulk::Off => false,
        Bulk::On => true,
        Bulk::Auto => {
            let mut count = client.query("SELECT COUNT() FROM Account");
            count.next_page().await?;
            count.total_size().unwrap_or(0) >= BULK_THRESHOLD
        }
    })
}
