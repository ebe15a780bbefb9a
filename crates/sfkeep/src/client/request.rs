//! [`RequestBuilder`]: one API call, described before it is sent.

use serde_json::Value;

use super::{ApiResponse, Client};
use crate::error::Result;

/// A request on the instance, made by [`Client::request`]; [`RequestBuilder::send`] sends it
/// with the heal step and the transient retry.
///
/// ```no_run
/// # async fn f(client: sfkeep::client::Client) -> sfkeep::Result<()> {
/// let path = client.data_path("/sobjects/Account/ExtId__c/A-42");
/// let body = serde_json::json!({"Name": "Acme"});
/// // An upsert by external id: sending it twice has the effect of sending it once.
/// client
///     .request(reqwest::Method::PATCH, &path)
///     .json(&body)
///     .idempotent()
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'a> {
    client: &'a Client,
    method: reqwest::Method,
    path: &'a str,
    body: Option<&'a Value>,
    idempotent: bool,
    headers: Vec<(&'static str, String)>,
}

impl<'a> RequestBuilder<'a> {
    pub(super) fn new(client: &'a Client, method: reqwest::Method, path: &'a str) -> Self {
        Self {
            client,
            method,
            path,
            body: None,
            idempotent: false,
            headers: Vec::new(),
        }
    }

    /// Sends `body` as JSON. Defaults to no body.
    pub fn json(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Says a replay cannot duplicate an effect (an upsert by external id, a query job), so a
    /// transient failure of this POST or PATCH may be retried. GET, HEAD, PUT and DELETE are
    /// always treated as idempotent; other methods default to not idempotent.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Adds a request header, e.g. `Sforce-Query-Options: batchSize=500`. Defaults to none
    /// beyond the ones every call carries (`Authorization`, `Accept`).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends the request: a dead session heals once, a transient failure of an idempotent
    /// request is retried within the policy and budget.
    pub async fn send(self) -> Result<ApiResponse> {
        self.client
            .send(
                self.method,
                self.path,
                self.body,
                self.idempotent,
                &self.headers,
            )
            .await
    }
}
