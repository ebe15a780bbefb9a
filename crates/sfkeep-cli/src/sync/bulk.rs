//! A full read through a Bulk API 2.0 query job: an initial load, or a backfill of a changed
//! field list. Its results are unordered, so everything goes into one transaction committed
//! after the last page, with the watermark (an initial load) or the field list (both): a crash
//! before the commit leaves the database as it was, and the next run reads again.

use std::time::Instant;

use sfkeep::client::Client;

use super::db::BillingDb;
use super::fields::FieldList;
use super::stamp::Stamp;
use super::writer::{Commit, Work, Writer};
use super::{Pass, Phase, Progress, SyncError, csv};

/// Records per Bulk 2.0 results page. Smaller than Salesforce's default of 50,000 so the
/// writer starts on the first page sooner and fetching overlaps writing for more of the load;
/// 10 results calls for 100,000 records instead of 2.
pub const BULK_PAGE_RECORDS: u32 = 10_000;

/// Reads every live record through a Bulk 2.0 job. A `backfill` keeps the watermark where it
/// is (deletions since it are read by the incremental pass that follows).
pub async fn load(
    client: &Client,
    db: &mut BillingDb,
    fields: &FieldList,
    backfill: bool,
    phase: Phase,
    started: Instant,
    on_progress: &mut impl FnMut(Progress),
) -> Result<Pass, SyncError> {
    // Bulk 2.0 query jobs take no ORDER BY, and need none: the load is one transaction.
    let mut job = client
        .bulk_query(&fields.select(false))
        .await?
        .max_records(BULK_PAGE_RECORDS);
    let writer = Writer::start(db, Commit::AtEnd)?;
    let mut fetched = 0u64;
    let fetching: Result<(), SyncError> = async {
        let mut newest: Option<Stamp> = None;
        while let Some(page) = job.next_page_csv().await? {
            let records = csv::records(&page, fields)?;
            if let Some(n) = super::db::newest(&records)
                && newest.as_ref().is_none_or(|w| n > w)
            {
                newest = Some(n.clone());
            }
            fetched += records.len() as u64;
            let work = Work::Page {
                records,
                fields: None,
            };
            if !writer.send(work).await {
                return Ok(());
            }
            on_progress(Progress {
                phase: phase.clone(),
                fetched,
                total: None,
                elapsed: started.elapsed(),
                batch_size: None,
            });
        }
        let state = Work::State {
            newest: if backfill { None } else { newest },
            fields: fields.names().to_vec(),
        };
        if writer.send(state).await {
            writer.send(Work::Commit).await;
        }
        Ok(())
    }
    .await;
    // The load is committed whole, or (cut short) rolled back whole.
    let applied = writer.finish_after(fetching).await?;
    Ok(Pass {
        applied,
        fetched,
        batch_size: None,
    })
}
