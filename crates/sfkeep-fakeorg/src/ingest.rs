//! Bulk API 2.0 ingest jobs as the org holds them (docs/salesforce-bulk.md): created `Open`,
//! given their CSV data in exactly one upload, closed with `UploadComplete`, then processed.
//! The org processes a job's records the moment it is closed (so a client that loses the
//! close's answer finds them written), and reports `InProgress` to the first status read
//! after that and `JobComplete` (or `Failed`) from then on, so a polling client sees one
//! round of progress.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::csvdata::{self, LineEnding};
use crate::dml::{self, Operation, Written};
use crate::records::{Accounts, RecordError};

/// The state of an ingest job (Bulk API 2.0 job states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestState {
    /// Created; takes one upload.
    Open,
    /// Closed by the client; processed, not yet reported.
    UploadComplete,
    /// Reported once while "processing".
    InProgress,
    /// Processed.
    JobComplete,
    /// Could not be processed (its data was unreadable).
    Failed,
    /// Aborted by the client.
    Aborted,
}

impl IngestState {
    /// The state's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            IngestState::Open => "Open",
            IngestState::UploadComplete => "UploadComplete",
            IngestState::InProgress => "InProgress",
            IngestState::JobComplete => "JobComplete",
            IngestState::Failed => "Failed",
            IngestState::Aborted => "Aborted",
        }
    }

    /// Whether the job's results are final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            IngestState::JobComplete | IngestState::Failed | IngestState::Aborted
        )
    }
}

/// What the client asked for when it created the job.
pub struct IngestSpec {
    /// The operation on every record.
    pub operation: Operation,
    /// `Account` (the only object the org can write).
    pub object: String,
    /// The upsert key field.
    pub external_id: Option<String>,
    /// `columnDelimiter` name (`COMMA`, …) and its byte.
    pub delimiter: (&'static str, u8),
    /// `lineEnding`.
    pub line_ending: LineEnding,
}

/// One record's outcome, with its values as uploaded.
pub struct RecordOutcome {
    /// The record's values in header order.
    pub values: Vec<String>,
    /// What was written, or why not.
    pub result: Result<Written, RecordError>,
}

/// An ingest job.
pub struct IngestJob {
    /// `750…` id.
    pub id: String,
    /// What the job does.
    pub spec: IngestSpec,
    /// Id of the creating user.
    pub created_by: String,
    /// `createdDate`.
    pub created: String,
    /// `systemModstamp`: moves with every state change.
    pub modstamp: String,
    /// Current state.
    pub state: IngestState,
    /// API version of the creating request (`59.0`).
    pub api_version: String,
    /// The uploaded CSV, until the job is processed.
    pub data: Option<Vec<u8>>,
    /// The header of the uploaded CSV, once processed.
    pub header: Vec<String>,
    /// Each record's outcome, once processed.
    pub outcomes: Vec<RecordOutcome>,
    /// Records that were never processed (an aborted or failed job's data).
    pub unprocessed: Vec<Vec<String>>,
    /// Why the job failed.
    pub error_message: Option<String>,
}

impl IngestJob {
    /// A new `Open` job.
    pub fn new(
        id: String,
        spec: IngestSpec,
        created_by: String,
        now: &str,
        api_version: &str,
    ) -> Self {
        IngestJob {
            id,
            spec,
            created_by,
            created: now.to_owned(),
            modstamp: now.to_owned(),
            state: IngestState::Open,
            api_version: api_version.to_owned(),
            data: None,
            header: Vec::new(),
            outcomes: Vec::new(),
            unprocessed: Vec::new(),
            error_message: None,
        }
    }

    /// The job-info document; `detailed` adds the counters `GET jobs/ingest/{id}` reports.
    pub fn info(&self, detailed: bool) -> Value {
        let version = crate::versions::job_version(&self.api_version);
        let mut v = json!({
            "id": self.id,
            "operation": self.spec.operation.name(),
            "object": self.spec.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state.name(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": version,
            "lineEnding": self.spec.line_ending.name(),
            "columnDelimiter": self.spec.delimiter.0,
        });
        if let Some(ext) = &self.spec.external_id {
            v["externalIdFieldName"] = json!(ext);
        }
        if self.state == IngestState::Open {
            v["contentUrl"] = json!(format!(
                "services/data/v{}/jobs/ingest/{}/batches",
                self.api_version, self.id
            ));
        }
        if detailed {
            v["jobType"] = json!("V2Ingest");
            let reported = self.state.is_terminal();
            let processed = if reported { self.outcomes.len() } else { 0 };
            let failed = if reported { self.failed_count() } else { 0 };
            v["numberRecordsProcessed"] = json!(processed);
            v["numberRecordsFailed"] = json!(failed);
            v["retries"] = json!(0);
            v["totalProcessingTime"] = json!(0);
            v["apiActiveProcessingTime"] = json!(0);
            v["apexProcessingTime"] = json!(0);
            if let Some(m) = &self.error_message {
                v["errorMessage"] = json!(m);
            }
        }
        v
    }

    fn failed_count(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }

    /// Closes the job and processes its data against `accounts`. A job with unreadable data
    /// (or none) fails as a whole and keeps its records as unprocessed.
    pub fn close(&mut self, accounts: &mut Accounts, now: OffsetDateTime) {
        self.state = IngestState::UploadComplete;
        let Some(data) = self.data.take() else {
            self.fail(
                "InvalidBatch : The job has no data: upload CSV data before closing it".into(),
            );
            return;
        };
        let table = match csvdata::parse(&data, self.spec.delimiter.1, self.spec.line_ending) {
            Ok(t) => t,
            Err(e) => {
                self.fail(e.to_string());
                return;
            }
        };
        self.header = table.header.clone();
        let fields: Result<Vec<&'static str>, String> =
            table.header.iter().map(|c| dml::field(c)).collect();
        let fields = match fields {
            Ok(f) => f,
            Err(column) => {
                self.unprocessed = table.rows;
                self.fail(dml::unknown_field(&column));
                return;
            }
        };
        for values in table.rows {
            let result = dml::record_from_text(
                fields
                    .iter()
                    .copied()
                    .zip(values.iter().map(String::as_str)),
            )
            .and_then(|record| {
                dml::write(
                    accounts,
                    self.spec.operation,
                    self.spec.external_id.as_deref(),
                    record,
                    now,
                )
            });
            self.outcomes.push(RecordOutcome { values, result });
        }
    }

    fn fail(&mut self, message: String) {
        self.error_message = Some(message);
        self.state = IngestState::Failed;
    }

    /// Advances a processed job by one status read: `UploadComplete` → `InProgress` →
    /// `JobComplete` (a failed job is already terminal).
    pub fn poll(&mut self) {
        self.state = match self.state {
            IngestState::UploadComplete => IngestState::InProgress,
            IngestState::InProgress => IngestState::JobComplete,
            s => s,
        };
    }

    /// `successfulResults`: `sf__Id`, `sf__Created`, then the uploaded columns.
    pub fn successful_csv(&self) -> String {
        let (d, e) = (self.spec.delimiter.1, self.spec.line_ending);
        let mut out = csvdata::line(
            ["sf__Id", "sf__Created"]
                .into_iter()
                .chain(self.header.iter().map(String::as_str)),
            d,
            e,
        );
        for o in &self.outcomes {
            if let Ok(w) = &o.result {
                let created = if w.created { "true" } else { "false" };
                out.push_str(&csvdata::line(
                    [w.id.as_str(), created]
                        .into_iter()
                        .chain(o.values.iter().map(String::as_str)),
                    d,
                    e,
                ));
            }
        }
        out
    }

    /// `failedResults`: `sf__Id`, `sf__Error`, then the uploaded columns.
    pub fn failed_csv(&self) -> String {
        let (d, e) = (self.spec.delimiter.1, self.spec.line_ending);
        let mut out = csvdata::line(
            ["sf__Id", "sf__Error"]
                .into_iter()
                .chain(self.header.iter().map(String::as_str)),
            d,
            e,
        );
        let id_col = self
            .header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case("Id"));
        for o in &self.outcomes {
            if let Err(err) = &o.result {
                let id = id_col
                    .and_then(|i| o.values.get(i))
                    .map_or("", String::as_str);
                let text = dml::error_text(err);
                out.push_str(&csvdata::line(
                    [id, text.as_str()]
                        .into_iter()
                        .chain(o.values.iter().map(String::as_str)),
                    d,
                    e,
                ));
            }
        }
        out
    }

    /// `unprocessedrecords`: the uploaded columns of the records never processed.
    pub fn unprocessed_csv(&self) -> String {
        let (d, e) = (self.spec.delimiter.1, self.spec.line_ending);
        let mut out = if self.header.is_empty() {
            String::new()
        } else {
            csvdata::line(self.header.iter().map(String::as_str), d, e)
        };
        for values in &self.unprocessed {
            out.push_str(&csvdata::line(values.iter().map(String::as_str), d, e));
        }
        out
    }

    /// Aborts an open (or closed but unreported) job: an open job's data is never processed.
    pub fn abort(&mut self) {
        if let Some(data) = self.data.take()
            && let Ok(t) = csvdata::parse(&data, self.spec.delimiter.1, self.spec.line_ending)
        {
            self.header = t.header;
            self.unprocessed = t.rows;
        }
        self.state = IngestState::Aborted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(op: Operation, ext: Option<&str>) -> IngestJob {
        IngestJob::new(
            "750".into(),
            IngestSpec {
                operation: op,
                object: "Account".into(),
                external_id: ext.map(str::to_owned),
                delimiter: ("COMMA", b','),
                line_ending: LineEnding::Lf,
            },
            "005".into(),
            "2026-01-01T00:00:00.000+0000",
            "59.0",
        )
    }

    #[test]
    fn a_closed_job_writes_its_records_and_reports_each() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(1, "5g00", now);
        let mut j = job(Operation::Insert, None);
        j.data = Some(b"Name,AnnualRevenue\nA,10\n,5\nB,lots\n".to_vec());
        j.close(&mut a, now);
        assert_eq!(j.state, IngestState::UploadComplete);
        assert_eq!(a.live_count(), 2);
        j.poll();
        assert_eq!(j.info(true)["numberRecordsProcessed"], 0);
        j.poll();
        assert_eq!(j.state, IngestState::JobComplete);
        assert_eq!(j.info(true)["numberRecordsProcessed"], 3);
        assert_eq!(j.info(true)["numberRecordsFailed"], 2);
        let ok = j.successful_csv();
        assert!(
            ok.starts_with("\"sf__Id\",\"sf__Created\",\"Name\",\"AnnualRevenue\"\n"),
            "{ok}"
        );
        assert_eq!(ok.lines().count(), 2);
        let failed = j.failed_csv();
        assert!(
            failed.contains("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"),
            "{failed}"
        );
        assert!(
            failed.contains("INVALID_TYPE_ON_FIELD_IN_RECORD"),
            "{failed}"
        );
    }

    #[test]
    fn unreadable_data_fails_the_job_and_writes_nothing() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(1, "5g00", now);
        let mut j = job(Operation::Insert, None);
        j.data = Some(b"Name,Nope\nA,B\n".to_vec());
        j.close(&mut a, now);
        assert_eq!(j.state, IngestState::Failed);
        assert_eq!(
            j.info(true)["errorMessage"],
            "InvalidBatch : Field name not found : Nope"
        );
        assert_eq!(j.unprocessed_csv(), "\"Name\",\"Nope\"\n\"A\",\"B\"\n");
        assert_eq!(a.live_count(), 1);
        let mut j = job(Operation::Insert, None);
        j.data = Some(b"Name\r\nA\r\n".to_vec());
        j.close(&mut a, now);
        assert_eq!(
            j.error_message.as_deref(),
            Some(
                "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"
            )
        );
    }

    #[test]
    fn upsert_by_external_id_updates_or_creates() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(1, "5g00", now);
        let mut j = job(Operation::Upsert, Some("ExtId__c"));
        j.data = Some(b"ExtId__c,Name\nEXT-000001,Renamed\nEXT-NEW,New\n".to_vec());
        j.close(&mut a, now);
        let created: Vec<bool> = j
            .outcomes
            .iter()
            .map(|o| o.result.as_ref().unwrap().created)
            .collect();
        assert_eq!(created, [false, true]);
        assert_eq!(a.get_by_ext("EXT-000001").unwrap()["Name"], "Renamed");
    }
}
