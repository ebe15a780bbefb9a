//! Bulk API 1.0 jobs and batches as the org holds them (docs/salesforce-bulk.md): a job of one
//! operation and one content type (CSV, XML or JSON) takes batches until it is closed; each
//! batch is processed the moment it arrives (its records are committed even if the client
//! never reads the answer), reported `Queued` in that answer and `Completed` (or `Failed`)
//! from the first status read on. A query job's batch is a SOQL statement whose result is
//! kept as one result set.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::dml::{self, Operation, Written};
use crate::records::{Accounts, RecordError, Row};

/// Most records one batch may hold (Bulk API limits).
pub const MAX_BATCH_RECORDS: usize = 10_000;

/// A job's `contentType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// CSV batches; job and batch information in XML.
    Csv,
    /// XML batches and answers.
    Xml,
    /// JSON batches and answers.
    Json,
}

impl Content {
    /// The `contentType` a job names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CSV" => Some(Content::Csv),
            "XML" => Some(Content::Xml),
            "JSON" => Some(Content::Json),
            _ => None,
        }
    }

    /// The job field's value.
    pub fn name(self) -> &'static str {
        match self {
            Content::Csv => "CSV",
            Content::Xml => "XML",
            Content::Json => "JSON",
        }
    }
}

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Writes records.
    Dml(Operation),
    /// `query` (`all` false) or `queryAll`.
    Query {
        /// Deleted records included.
        all: bool,
    },
}

impl JobKind {
    /// The operation a job names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(JobKind::Query { all: false }),
            "queryAll" => Some(JobKind::Query { all: true }),
            s => Operation::parse(s).map(JobKind::Dml),
        }
    }

    /// The job field's value.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Dml(op) => op.name(),
            JobKind::Query { all: false } => "query",
            JobKind::Query { all: true } => "queryAll",
        }
    }
}

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Takes batches.
    Open,
    /// Closed by the client.
    Closed,
    /// Aborted by the client.
    Aborted,
}

impl JobState {
    /// The state's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::Closed => "Closed",
            JobState::Aborted => "Aborted",
        }
    }
}

/// A batch's outcome.
pub enum BatchResult {
    /// One result per record of a DML batch, in order.
    Records(Vec<Result<Written, RecordError>>),
    /// A query's result set.
    Query {
        /// `752…` result id.
        result_id: String,
        /// Selected fields, in SELECT order.
        fields: Vec<String>,
        /// Matching records, projected.
        rows: Vec<Row>,
    },
    /// Nothing to report: the batch failed as a whole.
    None,
}

/// A batch.
pub struct Batch {
    /// `751…` id.
    pub id: String,
    /// Whether its first status read happened (the first read answers `Completed`).
    pub reported: bool,
    /// Why the whole batch failed.
    pub failure: Option<String>,
    /// `createdDate`.
    pub created: String,
    /// The request body as received.
    pub request: Vec<u8>,
    /// The outcome.
    pub result: BatchResult,
}

impl Batch {
    /// The state a status read reports.
    pub fn state(&self) -> &'static str {
        match (self.reported, &self.failure) {
            (false, _) => "Queued",
            (true, Some(_)) => "Failed",
            (true, None) => "Completed",
        }
    }

    /// `(processed, failed)` record counts as reported.
    pub fn counts(&self) -> (usize, usize) {
        if !self.reported {
            return (0, 0);
        }
        match &self.result {
            BatchResult::Records(r) => (r.len(), r.iter().filter(|x| x.is_err()).count()),
            BatchResult::Query { rows, .. } => (rows.len(), 0),
            BatchResult::None => (0, 0),
        }
    }
}

/// A job.
pub struct AsyncJob {
    /// `750…` id.
    pub id: String,
    /// Operation.
    pub kind: JobKind,
    /// `Account` for writes; any queryable object for queries.
    pub object: String,
    /// Upsert key field.
    pub external_id: Option<String>,
    /// Content type of batches and answers.
    pub content: Content,
    /// `Parallel` or `Serial`.
    pub concurrency: &'static str,
    /// Id of the creating user.
    pub created_by: String,
    /// `createdDate`.
    pub created: String,
    /// `systemModstamp`.
    pub modstamp: String,
    /// State.
    pub state: JobState,
    /// API version of the creating request.
    pub api_version: String,
    /// Batches in arrival order.
    pub batches: Vec<Batch>,
}

/// The records of a DML batch, each parsed or refused on its own.
pub type BatchRecords = Vec<Result<Map<String, Value>, RecordError>>;

/// A job's or batch's fields in wire order, as text (XML) and as JSON values.
pub type Fields = Vec<(&'static str, Value)>;

impl AsyncJob {
    /// The `jobInfo` fields, in the order of Salesforce's samples.
    pub fn info(&self) -> Fields {
        let count = |s: &str| self.batches.iter().filter(|b| b.state() == s).count();
        let (processed, failed) = self.batches.iter().fold((0, 0), |(p, f), b| {
            let (bp, bf) = b.counts();
            (p + bp, f + bf)
        });
        let mut v: Fields = vec![
            ("id", json!(self.id)),
            ("operation", json!(self.kind.name())),
            ("object", json!(self.object)),
            ("createdById", json!(self.created_by)),
            ("createdDate", json!(self.created)),
            ("systemModstamp", json!(self.modstamp)),
            ("state", json!(self.state.name())),
        ];
        if let Some(e) = &self.external_id {
            v.push(("externalIdFieldName", json!(e)));
        }
        v.extend([
            ("concurrencyMode", json!(self.concurrency)),
            ("contentType", json!(self.content.name())),
            ("numberBatchesQueued", json!(count("Queued"))),
            ("numberBatchesInProgress", json!(0)),
            ("numberBatchesCompleted", json!(count("Completed"))),
            ("numberBatchesFailed", json!(count("Failed"))),
            ("numberBatchesTotal", json!(self.batches.len())),
            ("numberRecordsProcessed", json!(processed)),
            ("numberRetries", json!(0)),
            (
                "apiVersion",
                json!(crate::versions::job_version(&self.api_version)),
            ),
            ("numberRecordsFailed", json!(failed)),
            ("totalProcessingTime", json!(0)),
            ("apiActiveProcessingTime", json!(0)),
            ("apexProcessingTime", json!(0)),
        ]);
        v
    }

    /// The `batchInfo` fields of `batch`.
    pub fn batch_info(&self, batch: &Batch) -> Fields {
        let (processed, failed) = batch.counts();
        let mut v: Fields = vec![
            ("id", json!(batch.id)),
            ("jobId", json!(self.id)),
            ("state", json!(batch.state())),
        ];
        if batch.reported
            && let Some(m) = &batch.failure
        {
            v.push(("stateMessage", json!(m)));
        }
        v.extend([
            ("createdDate", json!(batch.created)),
            ("systemModstamp", json!(batch.created)),
            ("numberRecordsProcessed", json!(processed)),
            ("numberRecordsFailed", json!(failed)),
            ("totalProcessingTime", json!(0)),
            ("apiActiveProcessingTime", json!(0)),
            ("apexProcessingTime", json!(0)),
        ]);
        v
    }

    /// Writes the records of a DML batch (each committed as it is applied). `records` holds
    /// either the records or the message that fails the batch as a whole.
    pub fn apply(
        &self,
        accounts: &mut Accounts,
        records: BatchRecords,
        now: OffsetDateTime,
    ) -> BatchResult {
        let JobKind::Dml(op) = self.kind else {
            return BatchResult::None;
        };
        let results = records
            .into_iter()
            .map(|r| {
                r.and_then(|rec| dml::write(accounts, op, self.external_id.as_deref(), rec, now))
            })
            .collect();
        BatchResult::Records(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: JobKind) -> AsyncJob {
        AsyncJob {
            id: "750".into(),
            kind,
            object: "Account".into(),
            external_id: None,
            content: Content::Csv,
            concurrency: "Parallel",
            created_by: "005".into(),
            created: "t".into(),
            modstamp: "t".into(),
            state: JobState::Open,
            api_version: "59.0".into(),
            batches: Vec::new(),
        }
    }

    #[test]
    fn a_batch_is_queued_until_read_then_completed_or_failed() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(1, "5g00", now);
        let mut j = job(JobKind::Dml(Operation::Insert));
        let mut rec = Map::new();
        rec.insert("Name".into(), json!("A"));
        let result = j.apply(&mut a, vec![Ok(rec), Ok(Map::new())], now);
        assert_eq!(a.live_count(), 2);
        j.batches.push(Batch {
            id: "751".into(),
            reported: false,
            failure: None,
            created: "t".into(),
            request: Vec::new(),
            result,
        });
        assert_eq!(j.batches[0].state(), "Queued");
        assert_eq!(j.batches[0].counts(), (0, 0));
        j.batches[0].reported = true;
        assert_eq!(j.batches[0].state(), "Completed");
        assert_eq!(j.batches[0].counts(), (2, 1));
        let info: Map<String, Value> = j
            .info()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(info["numberBatchesCompleted"], 1);
        assert_eq!(info["numberRecordsFailed"], 1);
        j.batches[0].failure = Some("InvalidBatch : x".into());
        let b: Map<String, Value> = j
            .batch_info(&j.batches[0])
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(b["state"], "Failed");
        assert_eq!(b["stateMessage"], "InvalidBatch : x");
    }

    #[test]
    fn kinds_and_contents_round_trip() {
        for k in [
            "insert",
            "update",
            "upsert",
            "delete",
            "hardDelete",
            "query",
            "queryAll",
        ] {
            assert_eq!(JobKind::parse(k).unwrap().name(), k);
        }
        assert!(JobKind::parse("merge").is_none());
        for c in ["CSV", "XML", "JSON"] {
            assert_eq!(Content::parse(c).unwrap().name(), c);
        }
    }
}
