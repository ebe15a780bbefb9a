//! `sfkeep sync accounts --to sqlite:PATH`: the billing sync integration, and `--verify`, its
//! field-by-field check against the org.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};
use crate::sync::{self, BillingDb, Phase, SyncError};

/// What to sync.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SyncObject {
    /// Account records.
    Accounts,
}

/// Bulk API use.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BulkMode {
    /// Bulk 2.0 for full reads (initial load, backfill) of 10,000 records or more.
    Auto,
    /// Bulk 2.0 for every full read.
    On,
    /// REST query only.
    Off,
}

/// `sfkeep sync` arguments.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The object to sync.
    pub object: SyncObject,
    /// The billing database: `sqlite:PATH`.
    #[arg(long, value_name = "sqlite:PATH")]
    pub to: String,
    /// Fields to sync (comma separated); `Id` and `SystemModstamp` are always included. A
    /// changed list is backfilled into every row.
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// Bulk API 2.0 use.
    #[arg(long, value_enum, default_value_t = BulkMode::Auto)]
    pub bulk: BulkMode,
    /// How far back each incremental query reaches before the watermark, for writes that
    /// Salesforce commits after later-stamped ones: `10m` (default), `90s`, `0s`.
    #[arg(long, value_name = "DURATION", value_parser = crate::commands::events::parse_since)]
    pub look_back: Option<Duration>,
    /// Sync nothing: compare every stored field of every row with the org and report the
    /// first difference (exit 1 when there is one).
    #[arg(long)]
    pub verify: bool,
}

/// Runs the sync once, to the end of the query (or the verification).
pub async fn run(g: &Globals, a: SyncArgs) -> CliResult<Exit> {
    let SyncObject::Accounts = a.object;
    let path =
        a.to.strip_prefix("sqlite:")
            .map(PathBuf::from)
            .ok_or_else(|| CliError::usage(format!("--to `{}` must be `sqlite:PATH`.", a.to)))?;
    if a.verify && (!a.fields.is_empty() || a.look_back.is_some()) {
        return Err(CliError::usage(
            "--verify compares the fields the database was synced with; drop --fields and --look-back.",
        ));
    }
    let fields: Vec<String> = if a.fields.is_empty() {
        sync::DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect()
    } else {
        a.fields
            .iter()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    };
    let profile = session::load_profile(g)?;
    let (manager, _store) = session::manager(&profile).await?;
    let client = session::api_client(&profile, manager)?;
    if a.verify {
        return verify(&client, &path).await;
    }
    let mut opts = sync::SyncOptions::new(fields)
        .bulk(match a.bulk {
            BulkMode::Auto => sync::Bulk::Auto,
            BulkMode::On => sync::Bulk::On,
            BulkMode::Off => sync::Bulk::Off,
        })
        .look_back(a.look_back.unwrap_or(sync::DEFAULT_LOOK_BACK));
    // A field the org does not have is refused before the database is opened or created.
    opts.check_fields(&client)
        .await
        .map_err(|e| sync_error(e, &path))?;
    let mut db = BillingDb::open(&path).map_err(|e| sync_error(SyncError::Db(e), &path))?;
    let mut last_phase: Option<Phase> = None;
    let mut bar = crate::ui::Progress::new();
    let summary = sync::sync_accounts(&client, &mut db, &opts, |p| {
        if last_phase.as_ref().is_some_and(|l| *l != p.phase) {
            bar.next_phase();
        }
        last_phase = Some(p.phase.clone());
        bar.update(p.fetched, p.total, &progress_line(&p));
    })
    .await;
    drop(bar);
    let summary = summary.map_err(|e| sync_error(e, &path))?;
    if crate::output::json() {
        crate::output::set_result(serde_json::to_value(&summary).unwrap_or_default());
        return Ok(Exit::Ok);
    }
    if !summary.backfilled_fields.is_empty() {
        crate::output::print_line(&format!(
            "backfilled {} into {} rows",
            summary.backfilled_fields.join(", "),
            summary.backfilled_rows
        ))?;
    }
    crate::output::print_line(&format!(
        "synced {} accounts in {} page{} ({} new, {} updated, {} deleted, {} unchanged) into {}; {} rows in total, {:.1}s",
        summary.fetched,
        summary.pages,
        if summary.pages == 1 { "" } else { "s" },
        summary.inserted,
        summary.updated,
        summary.deleted,
        summary.unchanged,
        path.display(),
        summary.total_rows,
        summary.elapsed_ms as f64 / 1000.0
    ))?;
    Ok(Exit::Ok)
}

/// One progress line: what is being read, how far, how fast.
fn progress_line(p: &sync::Progress) -> String {
    let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
    let rate = p.fetched as f64 / p.elapsed.as_secs_f64().max(0.001);
    let eta = p
        .total
        .filter(|t| *t > p.fetched && rate > 0.0)
        .map(|t| format!(", ETA {:.0}s", (t - p.fetched) as f64 / rate))
        .unwrap_or_default();
    let pages = p
        .batch_size
        .map(|n| format!(", pages of {n}: a larger page was over the size limit"))
        .unwrap_or_default();
    let what = match &p.phase {
        Phase::Load | Phase::Incremental => "synced".to_owned(),
        Phase::Backfill { added } if added.is_empty() => {
            "backfilling the changed field list: rewrote".to_owned()
        }
        Phase::Backfill { added } => format!("backfilling {}: rewrote", added.join(", ")),
    };
    format!(
        "{what} {}{total} accounts ({rate:.0}/s{eta}{pages})",
        p.fetched
    )
}

/// The CLI error for a failed sync: what failed, where, and what to do.
fn sync_error(e: SyncError, path: &std::path::Path) -> CliError {
    let retry = e.is_retryable();
    match e {
        SyncError::Salesforce(e) => CliError::from_sfkeep(
            &e,
            &format!(
                "syncing Accounts into {} (the watermark stays at the last committed page)",
                path.display()
            ),
        ),
        SyncError::Db(e) if retry => CliError::transient(e.to_string()),
        SyncError::Db(e) => CliError::store(e.to_string()),
        e @ (SyncError::UnknownField(_) | SyncError::PageTooLarge { .. }) => {
            CliError::usage(e.to_string())
        }
        e if retry => CliError::transient(e.to_string()),
        e => CliError::unexpected(e.to_string()),
    }
}

/// `--verify`: exit 0 when the database equals the org field by field, 1 at a difference.
async fn verify(client: &sfkeep::client::Client, path: &std::path::Path) -> CliResult<Exit> {
    let db = BillingDb::open_read_only(path).map_err(|e| sync_error(SyncError::Db(e), path))?;
    let v = sync::verify(client, &db)
        .await
        .map_err(|e| sync_error(e, path))?;
    if crate::output::json() {
        crate::output::set_result(serde_json::to_value(&v).unwrap_or_default());
    } else if v.is_exact() {
        crate::output::print_line(&format!(
            "verified {} Accounts × {} fields: {} equals the org",
            v.org_records,
            v.fields.len(),
            path.display()
        ))?;
    } else {
        crate::output::print_line(&format!(
            "{} differs from the org: {} lost, {} stale, {} differing, {} extra of {} rows ({} Accounts in the org); first: {}",
            path.display(),
            v.lost,
            v.stale,
            v.differing,
            v.extra,
            v.db_rows,
            v.org_records,
            v.first_difference.as_deref().unwrap_or("?")
        ))?;
    }
    Ok(if v.is_exact() {
        Exit::Ok
    } else {
        Exit::Unexpected
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cursor that kept expiring is worth a rerun (exit 4), not a fix of the command line
    /// (exit 2, as an `INVALID_QUERY_LOCATOR` used to be); a page too wide at 200 records is the
    /// field list to change.
    #[test]
    fn an_expired_cursor_is_transient_and_a_page_too_wide_is_usage() {
        let path = std::path::Path::new("billing.db");
        let e = sync_error(SyncError::CursorExpired { restarts: 3 }, path);
        assert_eq!(e.exit, Exit::Transient, "{}", e.message);
        assert!(e.message.contains("a rerun resumes"), "{}", e.message);
        let e = sync_error(
            SyncError::PageTooLarge {
                batch: 200,
                cap: 64 * 1024 * 1024,
            },
            path,
        );
        assert_eq!(e.exit, Exit::Usage, "{}", e.message);
        assert!(e.message.contains("--fields"), "{}", e.message);
    }
}
