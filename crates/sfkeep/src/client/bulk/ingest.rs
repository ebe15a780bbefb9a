//! Bulk API 2.0 ingest jobs (docs/salesforce-bulk.md): create a job, upload its CSV once,
//! close it, wait for it, read its result files.
//!
//! A job belongs to the org, not to the session that created it, so a session death between
//! any two steps is healed like any REST call (the REST 401: one shared refresh, one replay)
//! and the next step continues the same job. Data is never loaded twice:
//! - Salesforce takes exactly one upload per job. An upload whose answer is lost (the
//!   connection broke after the request was sent) is sent once more only to learn what
//!   happened: Salesforce's `Found multiple contents for job` answer means the first one
//!   landed; a `201` means it had not. No other path sends the data again.
//! - A close whose answer is lost is settled by reading the job's state, not by closing again
//!   blindly.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::client::Client;
use crate::diagnose::api_error::Api;
use crate::error::{Error, Result};

use super::{malformed, poll_until};

/// What an ingest job does to each record of its CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestOperation {
    /// Create records.
    Insert,
    /// Update records by `Id`.
    Update,
    /// Update by the named external id field, create when no record has the value.
    Upsert {
        /// The external id field (`ExtId__c`, or `Id`).
        external_id_field: String,
    },
    /// Delete records by `Id`.
    Delete,
    /// Delete records by `Id`, bypassing the recycle bin.
    HardDelete,
}

impl IngestOperation {
    fn name(&self) -> &'static str {
        match self {
            IngestOperation::Insert => "insert",
            IngestOperation::Update => "update",
            IngestOperation::Upsert { .. } => "upsert",
            IngestOperation::Delete => "delete",
            IngestOperation::HardDelete => "hardDelete",
        }
    }
}

/// A Bulk API 2.0 ingest job (`750…`), made by [`Client::create_ingest_job`].
#[derive(Debug, Clone)]
pub struct IngestJob {
    client: Client,
    id: String,
}

/// How a finished ingest job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The job id.
    pub job_id: String,
    /// `JobComplete`, `Failed` or `Aborted`.
    pub state: String,
    /// `numberRecordsProcessed`.
    pub processed: u64,
    /// `numberRecordsFailed`.
    pub failed: u64,
    /// `errorMessage` of a failed job.
    pub error_message: Option<String>,
}

impl Client {
    /// Creates an ingest job on `object` (CSV, comma-delimited, LF line endings). A session
    /// death heals; creating is not repeated after a lost answer (that would leave a second
    /// job), so a transport failure is the caller's to see.
    pub async fn create_ingest_job(
        &self,
        object: &str,
        operation: IngestOperation,
    ) -> Result<IngestJob> {
        let mut body = json!({
            "object": object,
            "operation": operation.name(),
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        });
        if let IngestOperation::Upsert { external_id_field } = &operation {
            body["externalIdFieldName"] = json!(external_id_field);
        }
        let created = self
            .request(reqwest::Method::POST, &self.data_path("/jobs/ingest"))
            .json(&body)
            .send()
            .await?
            .json()?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| malformed("the ingest job creation response has no id", &created))?
            .to_owned();
        Ok(IngestJob {
            client: self.clone(),
            id,
        })
    }

    /// The whole ingest: create the job, upload `csv` (a header row of field names, LF line
    /// endings), close, wait. Each step heals from a session death and the data is loaded at
    /// most once; see the module docs.
    pub async fn bulk_ingest(
        &self,
        object: &str,
        operation: IngestOperation,
        csv: impl Into<Bytes>,
    ) -> Result<IngestOutcome> {
        let job = self.create_ingest_job(object, operation).await?;
        job.upload(csv).await?;
        job.close().await?;
        job.wait().await
    }

    /// The job with `id` (for a caller that kept the id across a restart).
    pub fn ingest_job(&self, id: impl Into<String>) -> IngestJob {
        IngestJob {
            client: self.clone(),
            id: id.into(),
        }
    }
}

impl IngestJob {
    /// The job id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn path(&self, tail: &str) -> String {
        self.client
            .data_path(&format!("/jobs/ingest/{}{tail}", self.id))
    }

    /// One PUT of the CSV with the heal step (no transient retry: see the module docs).
    async fn put_data(&self, csv: &Bytes) -> Result<()> {
        let path = self.path("/batches");
        let what = format!("PUT {path}");
        let http = self.client.http.clone();
        self.client
            .execute(Api::Rest, &what, |token| {
                http.put(format!(
                    "{}{}",
                    token.instance_url().trim_end_matches('/'),
                    path
                ))
                .bearer_auth(token.access_token().expose_secret())
                .header(reqwest::header::CONTENT_TYPE, "text/csv")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(csv.clone())
            })
            .await
            .map(|_| ())
    }

    /// Uploads the job's CSV. Salesforce takes one upload per job; an upload whose answer is
    /// lost is settled without ever loading the data twice (module docs).
    pub async fn upload(&self, csv: impl Into<Bytes>) -> Result<()> {
        let csv = csv.into();
        match self.put_data(&csv).await {
            Err(Error::Transport { .. }) => match self.put_data(&csv).await {
                // The first upload never arrived; this one did.
                Ok(()) => Ok(()),
                // The first upload landed: Salesforce refuses a second one.
                Err(Error::Api(e)) if is_second_upload(&e) => Ok(()),
                Err(e) => Err(e),
            },
            other => other,
        }
    }

    /// Closes the job (`UploadComplete`): Salesforce starts processing it. A close whose
    /// answer is lost is settled by reading the job's state.
    pub async fn close(&self) -> Result<()> {
        let path = self.path("");
        let body = json!({"state": "UploadComplete"});
        let sent = self
            .client
            .request(reqwest::Method::PATCH, &path)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(Error::Transport { .. }) => {
                let info = self.client.get_json(&path).await?;
                if info["state"].as_str() == Some("Open") {
                    // The close never arrived.
                    self.client
                        .request(reqwest::Method::PATCH, &path)
                        .json(&body)
                        .send()
                        .await
                        .map(|_| ())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Aborts the job: data not yet processed is never processed.
    pub async fn abort(&self) -> Result<()> {
        self.client
            .request(reqwest::Method::PATCH, &self.path(""))
            .json(&json!({"state": "Aborted"}))
            .send()
            .await
            .map(|_| ())
    }

    /// The job's current information (`state`, `numberRecordsProcessed`, …).
    pub async fn info(&self) -> Result<Value> {
        self.client.get_json(&self.path("")).await
    }

    /// Polls the job (backing off from 10 ms to 10 s) until it is `JobComplete`, `Failed` or
    /// `Aborted`, for at most 10 minutes.
    pub async fn wait(&self) -> Result<IngestOutcome> {
        poll_until(|| async {
            let info = self.info().await?;
            let state = info["state"]
                .as_str()
                .ok_or_else(|| malformed("the ingest job has no state", &info))?;
            if !matches!(state, "JobComplete" | "Failed" | "Aborted") {
                return Ok(None);
            }
            let count = |k: &str| {
                info[k]
                    .as_u64()
                    .or_else(|| info[k].as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or(0)
            };
            Ok(Some(IngestOutcome {
                job_id: self.id.clone(),
                state: state.to_owned(),
                processed: count("numberRecordsProcessed"),
                failed: count("numberRecordsFailed"),
                error_message: info["errorMessage"].as_str().map(str::to_owned),
            }))
        })
        .await
    }

    async fn results(&self, kind: &str) -> Result<Vec<u8>> {
        Ok(self
            .client
            .request(reqwest::Method::GET, &self.path(&format!("/{kind}")))
            .send()
            .await?
            .body)
    }

    /// `successfulResults`: `sf__Id`, `sf__Created`, then the uploaded columns (CSV).
    pub async fn successful_results(&self) -> Result<Vec<u8>> {
        self.results("successfulResults").await
    }

    /// `failedResults`: `sf__Id`, `sf__Error`, then the uploaded columns (CSV).
    pub async fn failed_results(&self) -> Result<Vec<u8>> {
        self.results("failedResults").await
    }

    /// `unprocessedrecords`: the uploaded rows that were never processed (CSV).
    pub async fn unprocessed_records(&self) -> Result<Vec<u8>> {
        self.results("unprocessedrecords").await
    }
}

/// Salesforce's answer to a second upload to one job (docs/salesforce-bulk.md).
fn is_second_upload(e: &crate::client::ApiError) -> bool {
    e.status == 400 && e.message.starts_with("Found multiple contents for job")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_second_upload_answer_is_recognised() {
        let body = br#"[{"errorCode":"INVALIDJOBSTATE","message":"Found multiple contents for job: <7505g000000XYZ>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job."}]"#;
        let e = crate::client::ApiError::from_response(400, body, None);
        assert!(is_second_upload(&e));
        let other = crate::client::ApiError::from_response(
            400,
            br#"[{"errorCode":"INVALIDJOBSTATE","message":"Job is closed"}]"#,
            None,
        );
        assert!(!is_second_upload(&other));
        assert_eq!(
            IngestOperation::Upsert {
                external_id_field: "ExtId__c".into()
            }
            .name(),
            "upsert"
        );
    }
}
