//! Bulk API 2.0 jobs as the org holds them: their state, and their results rendered as CSV.

use serde_json::{Value, json};

use crate::records::{Picker, Row};

/// A query job.
pub struct QueryJob {
    /// `750…` job id.
    pub id: String,
    /// `query` or `queryAll`.
    pub operation: String,
    /// Queried object.
    pub object: String,
    /// Id of the user whose session created the job.
    pub created_by: String,
    /// `createdDate`, in Salesforce's datetime format.
    pub created: String,
    /// `UploadComplete`, `JobComplete` or `Aborted`.
    pub state: &'static str,
    /// The query's result, run when the job was created.
    pub results: CsvResults,
    /// API version of the creating request (`59.0`).
    pub api_version: String,
    /// Whether the job's status has been read once: the second read reports completion.
    pub polled: bool,
}

impl QueryJob {
    /// The job-info document; `detailed` adds what `GET jobs/query/{id}` reports.
    pub fn info(&self, detailed: bool) -> Value {
        let version = crate::versions::job_version(&self.api_version);
        let mut v = json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": version,
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if detailed {
            v["jobType"] = json!("V2Query");
            v["numberRecordsProcessed"] = json!(self.results.len());
            v["retries"] = json!(0);
            v["totalProcessingTime"] = json!(0);
        }
        v
    }
}

/// A job's results rendered as CSV once, when the job runs: each results page is then the
/// header plus a slice of lines, not a fresh rendering of every cell.
pub struct CsvResults {
    /// The header line, ending with `\n`.
    pub header: String,
    /// Every record's line, each ending with `\n`.
    pub lines: String,
    /// Where each line starts in `lines`, plus `lines.len()` at the end.
    pub starts: Vec<usize>,
}

impl CsvResults {
    /// Renders the `fields` (canonical names) of `rows` of `object`.
    pub fn render(object: &str, fields: &[String], rows: &[&Row]) -> Self {
        let mut header = fields
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(",");
        header.push('\n');
        let mut lines = String::with_capacity(rows.len() * 24 * fields.len().max(1));
        let mut starts = Vec::with_capacity(rows.len() + 1);
        let names: Vec<&str> = fields.iter().map(String::as_str).collect();
        let picker = Picker::new(object, &names);
        let mut values = Vec::with_capacity(names.len());
        for row in rows {
            starts.push(lines.len());
            picker.pick(row, &mut values);
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    lines.push(',');
                }
                csv_cell(&mut lines, v);
            }
            lines.push('\n');
        }
        starts.push(lines.len());
        CsvResults {
            header,
            lines,
            starts,
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }
}

/// Appends one cell: empty for null, otherwise quoted with quotes doubled.
fn csv_cell(out: &mut String, v: &Value) {
    let other;
    let text = match v {
        Value::Null => return,
        Value::String(s) => s.as_str(),
        v => {
            other = v.to_string();
            other.as_str()
        }
    };
    crate::csvdata::push_quoted(out, text);
}
