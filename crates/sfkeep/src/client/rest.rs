use serde_json::Value;

use super::Client;
use crate::error::{Error, Result, redacted_snippet};

/// The pages of a query. Call [`QueryPages::next_page`] until it returns `None`; a session
/// death between two pages heals like any call, and no record is skipped.
#[derive(Debug)]
pub struct QueryPages {
    client: Client,
    next: Option<String>,
    total_size: Option<u64>,
    batch_size: Option<u32>,
}

impl QueryPages {
    pub(super) fn new(client: Client, first: String) -> Self {
        Self {
            client,
            next: Some(first),
            total_size: None,
            batch_size: None,
        }
    }

    /// Asks for pages of `n` records (`Sforce-Query-Options: batchSize=n`, which Salesforce
    /// takes from 200 to 2,000 and treats as a preference). Default: none sent, so Salesforce's
    /// default of 2,000.
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// `totalSize` as the first page reported it.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }

    /// The next page of records, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>> {
        let Some(path) = self.next.take() else {
            return Ok(None);
        };
        let mut request = self.client.request(reqwest::Method::GET, &path);
        if let Some(n) = self.batch_size {
            request = request.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        let page = request.send().await?.json()?;
        let malformed = |problem: &str| Error::MalformedResponse {
            source_name: "the query API".into(),
            problem: problem.into(),
            status: 200,
            snippet: redacted_snippet(page.to_string().as_bytes()),
        };
        let records = page["records"]
            .as_array()
            .ok_or_else(|| malformed("no \"records\" array"))?
            .clone();
        if self.total_size.is_none() {
            self.total_size = page["totalSize"].as_u64();
        }
        let done = page["done"]
            .as_bool()
            .ok_or_else(|| malformed("no \"done\" flag"))?;
        if !done {
            let next = page["nextRecordsUrl"]
                .as_str()
                .ok_or_else(|| malformed("done is false but there is no nextRecordsUrl"))?;
            // A next page on another host would send our token there: refuse.
            if !next.starts_with("/services/") {
                return Err(malformed(
                    "nextRecordsUrl points outside this instance; refused",
                ));
            }
            self.next = Some(next.to_owned());
        }
        Ok(Some(records))
    }

    /// Every remaining record.
    pub async fn collect_all(mut self) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}
