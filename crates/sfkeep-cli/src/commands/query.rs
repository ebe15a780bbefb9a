//! `sfkeep query "SOQL" [--csv] [--all-rows]`: every page of a query, healing between pages.
//!
//! Columns come in SELECT order, relationship fields flattened (`Account.Name`), and
//! `COUNT()` answers with the query's `totalSize`, in every format:
//! - text: a header and one tab-separated line per record, with `\`, tab, newline and carriage
//!   return escaped as `\\`, `\t`, `\n`, `\r` so a value never breaks a line;
//! - `--csv`: RFC 4180, through the csv crate;
//! - `--json`: the envelope with `{"total_size","done","columns","records"}` (records as the
//!   API returned them, `attributes` removed).
//!
//! The number of records goes to stderr, so stdout stays data.

use clap::Args;
use serde_json::{Value, json};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::output::{self, print_line};
use crate::session::{self, Globals};
use crate::soql::{self, Column, Source};

/// `sfkeep query` arguments.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SOQL query.
    pub soql: String,
    /// CSV with a header row.
    #[arg(long)]
    pub csv: bool,
    /// Include deleted and archived records (`queryAll`), as `sf data query --all-rows`.
    #[arg(long, visible_alias = "all")]
    pub all_rows: bool,
}

/// How rows are written.
enum Sink {
    Text,
    Csv(Box<csv::Writer<std::io::Stdout>>),
    Json(Vec<Value>),
}

impl Sink {
    fn header(&mut self, columns: &[Column]) -> CliResult<()> {
        let names = columns.iter().map(|c| c.name.as_str());
        match self {
            Sink::Text => print_line(&names.map(escape).collect::<Vec<_>>().join("\t")),
            Sink::Csv(w) => write_csv(w, names),
            Sink::Json(_) => Ok(()),
        }
    }

    fn row(&mut self, columns: &[Column], record: Value, total_size: u64) -> CliResult<()> {
        let cells = || {
            columns
                .iter()
                .map(|c| cell(&soql::value(c, &record, total_size)))
        };
        match self {
            Sink::Text => print_line(&cells().map(|c| escape(&c)).collect::<Vec<_>>().join("\t")),
            Sink::Csv(w) => write_csv(w, cells()),
            Sink::Json(records) => {
                records.push(soql::without_attributes(record));
                Ok(())
            }
        }
    }
}

fn write_csv<I, S>(w: &mut csv::Writer<std::io::Stdout>, fields: I) -> CliResult<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    w.write_record(fields)
        .and_then(|_| w.flush().map_err(csv::Error::from))
        .map_err(|e| match e.kind() {
            csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                CliError::reader_gone()
            }
            _ => CliError::unexpected(format!("cannot write CSV to stdout: {e}.")),
        })
}

/// A value as one cell: text as is, null as empty, anything else as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A cell for the tab-separated text form: nothing in it can end the line or the cell.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Runs the query and prints every record.
pub async fn run(g: &Globals, a: QueryArgs) -> CliResult<Exit> {
    let profile = session::load_profile(g)?;
    let (manager, _store) = session::manager(&profile).await?;
    let client = session::api_client(&profile, manager)?;
    let mut pages = if a.all_rows {
        client.query_all(&a.soql)
    } else {
        client.query(&a.soql)
    };
    let mut sink = if output::json() {
        Sink::Json(Vec::new())
    } else if a.csv {
        Sink::Csv(Box::new(csv::Writer::from_writer(std::io::stdout())))
    } else {
        Sink::Text
    };
    let mut columns = soql::columns(&a.soql);
    let mut header_done = false;
    let mut fetched = 0u64;
    let context = format!("running the query for {}", profile.describe());
    while let Some(page) = pages
        .next_page()
        .await
        .map_err(|e| session::grant_error(&profile, &e, &context))?
    {
        let total = pages.total_size().unwrap_or(0);
        for record in page {
            let cols = columns.get_or_insert_with(|| soql::columns_from_record(&record));
            if !header_done {
                sink.header(cols)?;
                header_done = true;
            }
            fetched += 1;
            sink.row(cols, record, total)?;
        }
    }
    let total = pages.total_size().unwrap_or(fetched);
    let columns = columns.unwrap_or_default();
    let is_count = matches!(columns.as_slice(), [c] if c.source == Source::Count);
    if !header_done && (is_count || !columns.is_empty()) {
        sink.header(&columns)?;
    }
    if is_count && fetched == 0 && !matches!(sink, Sink::Json(_)) {
        // `SELECT COUNT()` returns no records, only totalSize: in a table it is the one row.
        sink.row(&columns, Value::Null, total)?;
    }
    if let Sink::Json(records) = sink {
        output::set_result(json!({
            "total_size": total,
            "done": true,
            "columns": columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
            "records": records,
        }));
    }
    session::check_store_kept_up(&profile)?;
    eprintln!("{}", count_line(total, fetched, is_count));
    Ok(Exit::Ok)
}

/// The stderr summary: how many records the org reported and how many were printed.
fn count_line(total: u64, fetched: u64, is_count: bool) -> String {
    let s = |n: u64| if n == 1 { "" } else { "s" };
    if is_count {
        format!("{total} record{} counted", s(total))
    } else if total == fetched {
        format!("{total} record{}", s(total))
    } else {
        format!(
            "{fetched} record{} printed of {total} the org reported",
            s(fetched)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cells_cannot_break_lines() {
        assert_eq!(escape("a\tb\nc\\d\r"), "a\\tb\\nc\\\\d\\r");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn the_count_line_says_what_was_counted() {
        assert_eq!(count_line(200, 0, true), "200 records counted");
        assert_eq!(count_line(1, 1, false), "1 record");
        assert_eq!(
            count_line(5, 3, false),
            "3 records printed of 5 the org reported"
        );
    }
}
