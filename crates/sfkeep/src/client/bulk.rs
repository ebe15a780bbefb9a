//! Bulk API 2.0 query jobs: create, poll with backoff, stream the CSV results page by page
//! (`Sforce-Locator`). Every call heals from a session death like any REST call (Bulk 2.0
//! reports it as the REST 401). Bulk API 2.0 ingest jobs are in `bulk/ingest.rs`, Bulk API
//! 1.0 jobs in `bulk/classic.rs`; both heal across a session death between any two steps and
//! never load data twice.

use std::time::Duration;

use serde_json::{Map, Value, json};

mod classic;
mod ingest;

pub use classic::{Bulk1Batch, Bulk1Job};
pub use ingest::{IngestJob, IngestOperation, IngestOutcome};

use super::Client;
use crate::error::{Error, Result, redacted_snippet};

/// Records per results page requested from Salesforce.
pub const DEFAULT_MAX_RECORDS: u32 = 50_000;
/// How long to wait for a job before giving up.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// A running or finished Bulk 2.0 query job.
#[derive(Debug)]
pub struct BulkQuery {
    client: Client,
    job_id: String,
    locator: Option<String>,
    started: bool,
    done: bool,
    max_records: u32,
}

impl Client {
    /// Creates a Bulk 2.0 query job for `soql` and waits until its results are ready.
    /// Creating a query job has no side effect on data, so it is retried like a GET.
    pub async fn bulk_query(&self, soql: &str) -> Result<BulkQuery> {
        let path = self.data_path("/jobs/query");
        let job = json!({"operation": "query", "query": soql});
        let created = self
            .request(reqwest::Method::POST, &path)
            .json(&job)
            .idempotent()
            .send()
            .await?
            .json()?;
        let job_id = created["id"]
            .as_str()
            .ok_or_else(|| malformed("the job creation response has no id", &created))?
            .to_owned();
        let path = self.data_path(&format!("/jobs/query/{job_id}"));
        poll_until(|| async {
            let info = self.get_json(&path).await?;
            match info["state"].as_str() {
                Some("JobComplete") => Ok(Some(())),
                Some("Failed") | Some("Aborted") => Err(malformed(
                    &format!(
                        "bulk job {job_id} ended {}: {}",
                        info["state"].as_str().unwrap_or("?"),
                        info["errorMessage"].as_str().unwrap_or("no message")
                    ),
                    &info,
                )),
                Some(_) => Ok(None),
                None => Err(malformed("the job has no state", &info)),
            }
        })
        .await?;
        Ok(BulkQuery {
            client: self.clone(),
            job_id,
            locator: None,
            started: false,
            done: false,
            max_records: DEFAULT_MAX_RECORDS,
        })
    }
}

/// The first pause between two reads of a job's state. Small jobs finish in tens of
/// milliseconds, and a job's first read usually comes before it has run: a first pause of
/// 200 ms was a third of a 100,000-record load against the simulated org (issue 19).
const FIRST_POLL_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two reads: a long job costs one read per 10 s.
const MAX_POLL_PAUSE: Duration = Duration::from_secs(10);

/// Calls `read` until it returns a final value, pausing between calls ([`FIRST_POLL_PAUSE`],
/// doubling to [`MAX_POLL_PAUSE`]: 10, 20, 40 … ms; a job that takes a minute costs about 16
/// reads, 4 more than with a first pause of 200 ms), for at most [`JOB_TIMEOUT`]: how every
/// Bulk job and batch is waited for.
async fn poll_until<T, F, Fut>(mut read: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + JOB_TIMEOUT;
    let mut pause = FIRST_POLL_PAUSE;
    loop {
        if let Some(done) = read().await? {
            return Ok(done);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::RefreshTimeout(JOB_TIMEOUT));
        }
        tokio::time::sleep(pause).await;
        pause = next_pause(pause);
    }
}

/// The pause after `pause`: twice as long, at most [`MAX_POLL_PAUSE`].
fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(MAX_POLL_PAUSE)
}

fn malformed(problem: &str, v: &Value) -> Error {
    Error::MalformedResponse {
        source_name: "the Bulk 2.0 API".into(),
        problem: problem.into(),
        status: 200,
        snippet: redacted_snippet(v.to_string().as_bytes()),
    }
}

impl BulkQuery {
    /// The job id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Records per page (Salesforce's `maxRecords`). Defaults to 50,000.
    pub fn max_records(mut self, n: u32) -> Self {
        self.max_records = n.max(1);
        self
    }

    /// The next page of results as records (CSV header → field names; empty cells → null),
    /// or `None` after the last page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Map<String, Value>>>> {
        match self.next_page_csv().await? {
            Some(body) => parse_csv(&body).map(Some),
            None => Ok(None),
        }
    }

    /// The next page of results as the CSV text Salesforce sent (header line first), or
    /// `None` after the last page: for callers that parse the CSV straight into their own
    /// types rather than into maps of JSON values.
    pub async fn next_page_csv(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut path = self.client.data_path(&format!(
            "/jobs/query/{}/results?maxRecords={}",
            self.job_id, self.max_records
        ));
        if let Some(l) = &self.locator {
            path.push_str(&format!(
                "&locator={}",
                url::form_urlencoded::byte_serialize(l.as_bytes()).collect::<String>()
            ));
        }
        let resp = self
            .client
            .request(reqwest::Method::GET, &path)
            .send()
            .await?;
        self.started = true;
        let locator = resp
            .headers
            .get("sforce-locator")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match locator.as_deref() {
            None | Some("null") | Some("") => self.done = true,
            Some(l) => self.locator = Some(l.to_owned()),
        }
        Ok(Some(resp.body))
    }
}

/// Parses Bulk 2.0 CSV (RFC 4180: quoted cells may hold commas, quotes and newlines).
pub fn parse_csv(body: &[u8]) -> Result<Vec<Map<String, Value>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| csv_error(&e, body))?
        .iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| csv_error(&e, body))?;
        if rec.len() != headers.len() {
            return Err(csv_error(
                &format!(
                    "a row has {} cells for {} columns",
                    rec.len(),
                    headers.len()
                ),
                body,
            ));
        }
        let mut m = Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            m.insert(
                h.clone(),
                if v.is_empty() {
                    Value::Null
                } else {
                    Value::String(v.to_owned())
                },
            );
        }
        out.push(m);
    }
    Ok(out)
}

fn csv_error(e: &dyn std::fmt::Display, body: &[u8]) -> Error {
    Error::MalformedResponse {
        source_name: "Bulk 2.0 results".into(),
        problem: format!("bad CSV: {e}"),
        status: 200,
        snippet: redacted_snippet(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_starts_at_10_ms_and_backs_off_geometrically_to_10_s() {
        let pauses: Vec<u64> =
            std::iter::successors(Some(FIRST_POLL_PAUSE), |p| Some(next_pause(*p)))
                .take(13)
                .map(|p| p.as_millis() as u64)
                .collect();
        assert_eq!(
            pauses,
            [
                10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10_000, 10_000, 10_000
            ]
        );
        // A job waited for a minute: reads at 0, then after each pause.
        let mut waited = Duration::ZERO;
        let mut reads = 1;
        let mut p = FIRST_POLL_PAUSE;
        while waited < Duration::from_secs(60) {
            waited += p;
            reads += 1;
            p = next_pause(p);
        }
        assert_eq!(reads, 16);
    }

    #[test]
    fn csv_with_embedded_newlines_quotes_and_empties() {
        let body =
            b"Id,Name,Description\n001A,\"Acme, Inc.\",\"line1\nline2 \"\"quoted\"\"\"\n001B,,x\n";
        let rows = parse_csv(body).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Name"], "Acme, Inc.");
        assert_eq!(rows[0]["Description"], "line1\nline2 \"quoted\"");
        assert_eq!(rows[1]["Name"], Value::Null);
    }

    #[test]
    fn ragged_csv_is_an_error_not_a_skipped_record() {
        assert!(parse_csv(b"Id,Name\n001A\n").is_err());
        assert!(
            parse_csv(b"Id,Name\n001A,\"unterminated\n").is_err()
                || parse_csv(b"Id,Name\n001A,\"unterminated\n").unwrap().len() == 1
        );
    }
}
