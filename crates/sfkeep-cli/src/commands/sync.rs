//! `sfkeep sync accounts --to sqlite:PATH`: the billing sync integration.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};
use crate::sync::{self, BillingDb, SyncError};

/// What to sync.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SyncObject {
    /// Account records.
    Accounts,
}

/// Bulk API use.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum BulkMode {
    /// Bulk 2.0 for initial loads of 10,000 records or more.
    Auto,
    /// Bulk 2.0 for every initial load.
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
    /// Fields to sync (comma separated); `Id` and `SystemModstamp` are always included.
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// Bulk API 2.0 use.
    #[arg(long, value_enum, default_value_t = BulkMode::Auto)]
    pub bulk: BulkMode,
}

/// Runs the sync once, to the end of the query.
pub async fn run(g: &Globals, a: SyncArgs) -> CliResult<Exit> {
    let SyncObject::Accounts = a.object;
    let path =
        a.to.strip_prefix("sqlite:")
            .map(PathBuf::from)
            .ok_or_else(|| CliError::usage(format!("--to `{}` must be `sqlite:PATH`.", a.to)))?;
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
    let mut db = BillingDb::open(&path).map_err(|e| CliError::store(e.to_string()))?;
    let tty = std::io::stderr().is_terminal();
    let bulk = match a.bulk {
        BulkMode::Auto => sync::Bulk::Auto,
        BulkMode::On => sync::Bulk::On,
        BulkMode::Off => sync::Bulk::Off,
    };
    let summary = sync::sync_accounts(&client, &mut db, &fields, bulk, |p| {
        let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
        let rate = p.fetched as f64 / p.elapsed.as_secs_f64().max(0.001);
        let eta = p
            .total
            .filter(|t| *t > p.fetched && rate > 0.0)
            .map(|t| format!(", ETA {:.0}s", (t - p.fetched) as f64 / rate))
            .unwrap_or_default();
        if tty {
            eprint!(
                "\r  synced {}{total} accounts ({rate:.0}/s{eta})   ",
                p.fetched
            );
        } else {
            eprintln!("synced {}{total} accounts ({rate:.0}/s{eta})", p.fetched);
        }
    })
    .await;
    if tty {
        eprintln!();
    }
    let summary = summary.map_err(|e| match e {
        SyncError::Salesforce(e) => CliError::from_sfkeep(
            &e,
            &format!(
                "syncing Accounts into {} (the watermark stays at the last committed page)",
                path.display()
            ),
        ),
        SyncError::Db(e) => CliError::store(e.to_string()),
    })?;
    if crate::output::json() {
        crate::output::set_result(serde_json::to_value(&summary).unwrap_or_default());
    } else {
        crate::output::print_line(&format!(
            "synced {} accounts in {} page{} ({} new, {} updated, {} deleted) into {}; {} rows in total, {:.1}s",
            summary.fetched,
            summary.pages,
            if summary.pages == 1 { "" } else { "s" },
            summary.inserted,
            summary.updated,
            summary.deleted,
            path.display(),
            summary.total_rows,
            summary.elapsed_ms as f64 / 1000.0
        ))?;
    }
    Ok(Exit::Ok)
}
