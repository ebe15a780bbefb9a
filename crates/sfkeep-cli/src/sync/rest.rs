//! A pass over REST query pages, ordered by `SystemModstamp`, each page committed with the
//! watermark (a crash resumes after the last committed page).

use std::time::{Duration, Instant};

use sfkeep::client::Client;

use super::db::{BillingDb, SyncRecord};
use super::fields::FieldList;
use super::reader::Reader;
use super::stamp::Stamp;
use super::writer::{Commit, Work, Writer};
use super::{Pass, Phase, Progress, SyncError};

/// What a pass reads and what it records.
pub enum Mode<'a> {
    /// Every live record into an empty database; the watermark moves with each page.
    Load,
    /// Every live record again, for a changed field list: the watermark stays (deletions
    /// since it are read by the incremental pass that follows); the new field list is
    /// recorded once every row has it.
    Backfill(Phase),
    /// Changes since the watermark (queryAll, so deletions come too), looking back.
    Incremental(&'a Stamp),
}

/// Runs one pass to the end of its query.
pub async fn pass(
    client: &Client,
    db: &mut BillingDb,
    fields: &FieldList,
    mode: Mode<'_>,
    look_back: Duration,
    started: Instant,
    on_progress: &mut impl FnMut(Progress),
) -> Result<Pass, SyncError> {
    let (all, from, phase) = match &mode {
        Mode::Load => (false, None, Phase::Load),
        Mode::Backfill(phase) => (false, None, phase.clone()),
        Mode::Incremental(w) => (true, Some(*w), Phase::Incremental),
    };
    let backfill = matches!(mode, Mode::Backfill(_));
    let mut reader = Reader::new(client, fields.select(all), all, from, look_back);
    let keep_is_deleted = fields.keeps_is_deleted();
    let names = fields.names().to_vec();
    let writer = Writer::start(db, Commit::PerPage)?;
    let mut fetched = 0u64;
    let fetching: Result<(), SyncError> = async {
        while let Some(page) = reader.next_page().await? {
            let records = page
                .iter()
                .enumerate()
                .map(|(i, r)| SyncRecord::from_value_keeping(i, r, keep_is_deleted))
                .collect::<Result<Vec<_>, _>>()?;
            fetched += records.len() as u64;
            let work = Work::Page {
                records,
                fields: (!backfill).then(|| names.clone()),
            };
            if !writer.send(work).await {
                return Ok(());
            }
            on_progress(Progress {
                phase: phase.clone(),
                fetched,
                total: reader.total(),
                elapsed: started.elapsed(),
                batch_size: reader.batch_size(),
            });
        }
        if backfill {
            writer
                .send(Work::State {
                    newest: None,
                    fields: names.clone(),
                })
                .await;
        }
        Ok(())
    }
    .await;
    // Every page handed over is committed with its watermark.
    let applied = writer.finish_after(fetching).await?;
    Ok(Pass {
        applied,
        fetched,
        batch_size: reader.batch_size(),
    })
}
