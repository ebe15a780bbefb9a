//! Bulk API 1.0 (`/services/async/{version}/job…`, docs/salesforce-bulk.md): a CSV job that
//! takes batches until it is closed, each batch's status and results.
//!
//! Every call carries the session in `X-SFDC-Session` and heals from a session death the way
//! Bulk API 1.0 reports it (`400` `InvalidSessionId`): one shared refresh, one replay. The job
//! and its batches belong to the org, so a death between any two steps continues the same job.
//! A batch is never added twice: a batch whose answer is lost (the connection broke after the
//! request was sent) is looked for among the job's batches before it is sent again.

use bytes::Bytes;
use quick_xml::escape::escape;
use quick_xml::events::Event;

use crate::client::{ApiResponse, Client};
use crate::diagnose::api_error::Api;
use crate::error::{Error, Result, redacted_snippet};
use crate::grant::soap_login::element_texts;

use super::poll_until;

const NS: &str = "http://www.force.com/2009/06/asyncapi/dataload";

/// A Bulk API 1.0 CSV job, made by [`Client::create_bulk1_job`].
#[derive(Debug, Clone)]
pub struct Bulk1Job {
    client: Client,
    id: String,
    /// Batches this job handle added, in order.
    batches: Vec<String>,
}

/// A batch's state as Bulk API 1.0 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulk1Batch {
    /// `751…` id.
    pub id: String,
    /// `Queued`, `InProgress`, `Completed`, `Failed` or `NotProcessed`.
    pub state: String,
    /// Why a failed batch failed.
    pub state_message: Option<String>,
    /// `numberRecordsProcessed`.
    pub processed: u64,
    /// `numberRecordsFailed`.
    pub failed: u64,
}

impl Client {
    /// Creates a Bulk API 1.0 job with CSV batches. `operation` is `insert`, `update`,
    /// `upsert` (with `external_id_field`), `delete`, `hardDelete`, `query` or `queryAll`.
    /// A session death heals; creating is not repeated after a lost answer (that would leave
    /// a second job).
    pub async fn create_bulk1_job(
        &self,
        object: &str,
        operation: &str,
        external_id_field: Option<&str>,
    ) -> Result<Bulk1Job> {
        let ext = external_id_field
            .map(|f| format!("<externalIdFieldName>{}</externalIdFieldName>", escape(f)))
            .unwrap_or_default();
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}"><operation>{}</operation><object>{}</object>{ext}<contentType>CSV</contentType></jobInfo>"#,
            escape(operation),
            escape(object)
        );
        let resp = self
            .bulk1_call(
                reqwest::Method::POST,
                "/job",
                "application/xml",
                Bytes::from(body),
            )
            .await?;
        let id = xml_field(&resp, "id")?;
        Ok(Bulk1Job {
            client: self.clone(),
            id,
            batches: Vec::new(),
        })
    }

    /// One Bulk API 1.0 call under `/services/async/{version}` with the heal step.
    async fn bulk1_call(
        &self,
        method: reqwest::Method,
        tail: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<ApiResponse> {
        let path = format!("/services/async/{}{tail}", self.version());
        let what = format!("{method} {path}");
        let http = self.http.clone();
        self.execute(Api::Bulk1, &what, |token| {
            http.request(
                method.clone(),
                format!("{}{}", token.instance_url().trim_end_matches('/'), path),
            )
            .header("X-SFDC-Session", token.access_token().expose_secret())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.clone())
        })
        .await
    }
}

impl Bulk1Job {
    /// The job id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ids of the batches this handle added, in order.
    pub fn batches(&self) -> &[String] {
        &self.batches
    }

    async fn call(
        &self,
        method: reqwest::Method,
        tail: &str,
        ct: &'static str,
        body: Bytes,
    ) -> Result<ApiResponse> {
        self.client
            .bulk1_call(method, &format!("/job/{}{tail}", self.id), ct, body)
            .await
    }

    /// Adds a batch of CSV records (header row first; at most 10,000 records and 10 MB) and
    /// returns its id. A batch whose answer is lost is found among the job's batches rather
    /// than sent twice.
    pub async fn add_batch(&mut self, csv: impl Into<Bytes>) -> Result<String> {
        let csv = csv.into();
        let id = match self
            .call(reqwest::Method::POST, "/batch", "text/csv", csv.clone())
            .await
        {
            Ok(resp) => xml_field(&resp, "id")?,
            Err(Error::Transport { .. }) => match self.landed_batch().await? {
                Some(id) => id,
                None => {
                    let resp = self
                        .call(reqwest::Method::POST, "/batch", "text/csv", csv)
                        .await?;
                    xml_field(&resp, "id")?
                }
            },
            Err(e) => return Err(e),
        };
        self.batches.push(id.clone());
        Ok(id)
    }

    /// The batch the org holds for this job that this handle did not add yet, if any.
    async fn landed_batch(&self) -> Result<Option<String>> {
        let resp = self
            .call(
                reqwest::Method::GET,
                "/batch",
                "application/xml",
                Bytes::new(),
            )
            .await?;
        let ids = all_texts(&resp.body, "id").ok_or_else(|| not_xml(&resp))?;
        Ok(ids.into_iter().find(|id| !self.batches.contains(id)))
    }

    /// A batch's current state.
    pub async fn batch(&self, batch_id: &str) -> Result<Bulk1Batch> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("/batch/{batch_id}"),
                "application/xml",
                Bytes::new(),
            )
            .await?;
        let names = [
            "id",
            "state",
            "stateMessage",
            "numberRecordsProcessed",
            "numberRecordsFailed",
        ];
        let v = element_texts(&resp.body, &names).ok_or_else(|| not_xml(&resp))?;
        let num = |i: usize| {
            v[i].as_deref()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Bulk1Batch {
            id: v[0].clone().unwrap_or_else(|| batch_id.to_owned()),
            state: v[1].clone().ok_or_else(|| not_xml(&resp))?,
            state_message: v[2].clone(),
            processed: num(3),
            failed: num(4),
        })
    }

    /// Polls a batch (backing off from 10 ms to 10 s) until it is `Completed`, `Failed` or
    /// `NotProcessed`, for at most 10 minutes.
    pub async fn wait_batch(&self, batch_id: &str) -> Result<Bulk1Batch> {
        poll_until(|| async {
            let b = self.batch(batch_id).await?;
            let done = matches!(b.state.as_str(), "Completed" | "Failed" | "NotProcessed");
            Ok(done.then_some(b))
        })
        .await
    }

    /// A completed batch's results: for a DML job the CSV `"Id","Success","Created","Error"`,
    /// one row per record in upload order; for a query job the CSV of its records.
    pub async fn batch_results(&self, batch_id: &str) -> Result<Vec<u8>> {
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("/batch/{batch_id}/result"),
                "application/xml",
                Bytes::new(),
            )
            .await?;
        if !resp.body.trim_ascii_start().starts_with(b"<") {
            return Ok(resp.body);
        }
        // A query batch answers with its result ids; its records are behind each.
        let mut out = Vec::new();
        for (i, rid) in all_texts(&resp.body, "result")
            .ok_or_else(|| not_xml(&resp))?
            .iter()
            .enumerate()
        {
            let page = self
                .call(
                    reqwest::Method::GET,
                    &format!("/batch/{batch_id}/result/{rid}"),
                    "application/xml",
                    Bytes::new(),
                )
                .await?;
            // Each result set repeats the header line.
            let body = if i == 0 {
                &page.body[..]
            } else {
                page.body
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(&[][..], |n| &page.body[n + 1..])
            };
            out.extend_from_slice(body);
        }
        Ok(out)
    }

    async fn set_state(&self, state: &str) -> Result<()> {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}"><state>{state}</state></jobInfo>"#
        );
        let sent = self
            .call(
                reqwest::Method::POST,
                "",
                "application/xml",
                Bytes::from(body.clone()),
            )
            .await;
        match sent {
            Ok(_) => Ok(()),
            // A close or abort whose answer is lost: the job's state says whether it landed.
            Err(Error::Transport { .. }) => {
                if self.state().await? == "Open" {
                    self.call(
                        reqwest::Method::POST,
                        "",
                        "application/xml",
                        Bytes::from(body),
                    )
                    .await
                    .map(|_| ())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the job: no more batches.
    pub async fn close(&self) -> Result<()> {
        self.set_state("Closed").await
    }

    /// Aborts the job: batches not yet processed never are.
    pub async fn abort(&self) -> Result<()> {
        self.set_state("Aborted").await
    }

    /// The job's state (`Open`, `Closed`, `Aborted`, `Failed`).
    pub async fn state(&self) -> Result<String> {
        let resp = self
            .call(reqwest::Method::GET, "", "application/xml", Bytes::new())
            .await?;
        xml_field(&resp, "state")
    }
}

fn not_xml(resp: &ApiResponse) -> Error {
    Error::MalformedResponse {
        source_name: "the Bulk API".into(),
        problem: "not the XML document expected".into(),
        status: resp.status,
        snippet: redacted_snippet(&resp.body),
    }
}

/// The text of the first `name` element of an answer.
fn xml_field(resp: &ApiResponse, name: &str) -> Result<String> {
    element_texts(&resp.body, &[name])
        .and_then(|mut v| v.remove(0))
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| not_xml(resp))
}

/// The text of every `name` element (`batchInfoList/batchInfo/id`, `result-list/result`).
/// `None` if the body is not well-formed XML.
fn all_texts(body: &[u8], name: &str) -> Option<Vec<String>> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut out = Vec::new();
    let mut inside = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let local = e.local_name();
                let local: &str = local.as_ref();
                inside = local == name;
                if inside {
                    out.push(String::new());
                }
            }
            Ok(Event::Text(t)) if inside => {
                if let Some(s) = out.last_mut() {
                    s.push_str(t.xml10_content().trim());
                }
            }
            Ok(Event::End(_)) => inside = false,
            Ok(Event::Eof) => return Some(out),
            Ok(_) => {}
            Err(_) => return None,
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_id_of_a_list_is_read() {
        let list = br#"<?xml version="1.0" encoding="UTF-8"?><batchInfoList xmlns="http://www.force.com/2009/06/asyncapi/dataload"><batchInfo><id>751A</id><jobId>750J</jobId><state>Completed</state></batchInfo><batchInfo><id>751B</id><jobId>750J</jobId></batchInfo></batchInfoList>"#;
        assert_eq!(all_texts(list, "id").unwrap(), ["751A", "751B"]);
        assert_eq!(
            all_texts(
                b"<result-list><result>752X</result></result-list>",
                "result"
            )
            .unwrap(),
            ["752X"]
        );
        assert!(all_texts(b"<a><b></a>", "b").is_none());
    }
}
