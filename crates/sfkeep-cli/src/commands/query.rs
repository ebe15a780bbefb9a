//! `sfkeep query "SOQL" [--json|--csv]`: every page of a query, healing between pages.

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};

/// `sfkeep query` arguments.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SOQL query.
    pub soql: String,
    /// One JSON record per line (the default prints a table-like text form).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV with a header row.
    #[arg(long)]
    pub csv: bool,
    /// Include deleted and archived records (`queryAll`).
    #[arg(long)]
    pub all: bool,
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Runs the query and prints every record.
pub async fn run(g: &Globals, a: QueryArgs) -> CliResult<Exit> {
    let profile = session::load_profile(g)?;
    let (manager, _store) = session::manager(&profile).await?;
    let client = session::api_client(&profile, manager)?;
    let mut pages = if a.all {
        client.query_all(&a.soql)
    } else {
        client.query(&a.soql)
    };
    let mut header: Option<Vec<String>> = None;
    let mut n = 0u64;
    loop {
        let page = pages
            .next_page()
            .await
            .map_err(|e| CliError::from_sfkeep(&e, "running the query"))?;
        let Some(page) = page else { break };
        for rec in page {
            let mut rec = rec;
            if let Some(o) = rec.as_object_mut() {
                o.remove("attributes");
            }
            n += 1;
            if a.json {
                crate::output::print_line(&rec.to_string())?;
                continue;
            }
            let obj = rec.as_object().cloned().unwrap_or_default();
            let cols = header.get_or_insert_with(|| {
                let cols: Vec<String> = obj.keys().cloned().collect();
                let line = if a.csv {
                    cols.iter()
                        .map(|c| csv_escape(c))
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    cols.join("\t")
                };
                let _ = crate::output::print_line(&line);
                cols
            });
            let values: Vec<String> = cols
                .iter()
                .map(|c| cell(obj.get(c).unwrap_or(&serde_json::Value::Null)))
                .collect();
            let line = if a.csv {
                values
                    .iter()
                    .map(|v| csv_escape(v))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                values.join("\t")
            };
            crate::output::print_line(&line)?;
        }
    }
    if !a.json && !a.csv {
        eprintln!("{n} records");
    }
    session::check_store_kept_up(&profile)?;
    Ok(Exit::Ok)
}
