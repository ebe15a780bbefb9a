//! Delivering alerts to webhooks: one queue and one worker per receiver, in order, retried with
//! backoff while the receiver is down or failing, so an alert raised during an outage arrives
//! once the receiver is back. `send` never waits: the guardian (and through it the token path)
//! only appends to a queue.
//!
//! | the receiver answers | then |
//! |---|---|
//! | 2xx (whatever the body) | delivered |
//! | nothing (refused, timeout, reset), 5xx, 408, 429 | retried after 0.5 s, doubling to [`MAX_BACKOFF`] |
//! | another 4xx | retried [`PERMANENT_ATTEMPTS`] times, then dropped with the status in `last_error` |
//!
//! A queue holds at most [`MAX_QUEUE`] alerts; beyond that the oldest is dropped (and counted).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use super::alerts::Alert;
use super::settings::{WebhookFormat, WebhookTarget};

/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// The first pause.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Attempts for an alert a receiver refuses with a 4xx other than 408 and 429.
pub const PERMANENT_ATTEMPTS: u32 = 3;
/// Alerts kept per receiver while it is down.
pub const MAX_QUEUE: usize = 1000;

/// One receiver's delivery record, for the status API and `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeliveryStats {
    /// The receiver's URL without its path and query (they may hold a token of the receiver).
    pub target: String,
    /// Alerts delivered.
    pub delivered: u64,
    /// Attempts that failed.
    pub failed_attempts: u64,
    /// Alerts given up on (refused for good, or pushed out of a full queue).
    pub dropped: u64,
    /// Alerts waiting.
    pub pending: usize,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

struct Queue {
    alerts: Mutex<VecDeque<Alert>>,
    wake: Notify,
    stats: Mutex<DeliveryStats>,
}

/// The webhook senders.
#[derive(Clone)]
pub struct Webhooks {
    queues: Arc<Vec<Arc<Queue>>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("receivers", &self.queues.len())
            .finish()
    }
}

/// The part of a URL safe to show: scheme, host and port (Slack-style URLs carry a secret
/// in the path).
pub fn display_target(u: &url::Url) -> String {
    format!(
        "{}://{}{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

impl Webhooks {
    /// Starts one worker per target.
    pub fn start(targets: &[WebhookTarget], http: reqwest::Client) -> Self {
        let mut queues = Vec::new();
        for t in targets {
            let q = Arc::new(Queue {
                alerts: Mutex::new(VecDeque::new()),
                wake: Notify::new(),
                stats: Mutex::new(DeliveryStats {
                    target: display_target(&t.url),
                    ..DeliveryStats::default()
                }),
            });
            tokio::spawn(worker(Arc::clone(&q), t.clone(), http.clone()));
            queues.push(q);
        }
        Self {
            queues: Arc::new(queues),
        }
    }

    /// Queues `alert` for every receiver. Never waits.
    pub fn send(&self, alert: &Alert) {
        for q in self.queues.iter() {
            let mut a = sfkeep::sync::lock(&q.alerts);
            if a.len() >= MAX_QUEUE {
                a.pop_front();
                sfkeep::sync::lock(&q.stats).dropped += 1;
            }
            a.push_back(alert.clone());
            drop(a);
            q.wake.notify_one();
        }
    }

    /// Each receiver's record.
    pub fn stats(&self) -> Vec<DeliveryStats> {
        self.queues
            .iter()
            .map(|q| {
                let mut s = sfkeep::sync::lock(&q.stats).clone();
                s.pending = sfkeep::sync::lock(&q.alerts).len();
                s
            })
            .collect()
    }
}

/// The request body for `format`.
pub fn body(alert: &Alert, format: WebhookFormat) -> Vec<u8> {
    let v = match format {
        WebhookFormat::Json => serde_json::to_value(alert).unwrap_or_default(),
        WebhookFormat::Slack => serde_json::json!({ "text": alert.text() }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

enum Outcome {
    Delivered,
    Retry(String),
    Refused(String),
}

async fn attempt(http: &reqwest::Client, t: &WebhookTarget, alert: &Alert) -> Outcome {
    let resp = http
        .post(t.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "User-Agent",
            concat!("sfkeep-serve/", env!("CARGO_PKG_VERSION")),
        )
        .body(body(alert, t.format))
        .send()
        .await;
    match resp {
        Err(e) => {
            // reqwest's message names the URL; keep only the host part.
            let what = if e.is_connect() {
                "connection refused or unreachable"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "the request failed"
            };
            Outcome::Retry(format!("{}: {what}", display_target(&t.url)))
        }
        Ok(r) => {
            let status = r.status();
            // The body is not read: a receiver that answers garbage with a 2xx has it.
            if status.is_success() {
                Outcome::Delivered
            } else if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Outcome::Retry(format!(
                    "{}: HTTP {}",
                    display_target(&t.url),
                    status.as_u16()
                ))
            } else {
                Outcome::Refused(format!(
                    "{}: HTTP {}",
                    display_target(&t.url),
                    status.as_u16()
                ))
            }
        }
    }
}

async fn worker(q: Arc<Queue>, t: WebhookTarget, http: reqwest::Client) {
    let mut backoff = FIRST_BACKOFF;
    let mut refusals = 0u32;
    loop {
        let next = sfkeep::sync::lock(&q.alerts).front().cloned();
        let Some(alert) = next else {
            q.wake.notified().await;
            continue;
        };
        let outcome = attempt(&http, &t, &alert).await;
        let done = {
            let mut stats = sfkeep::sync::lock(&q.stats);
            match outcome {
                Outcome::Delivered => {
                    stats.delivered += 1;
                    stats.last_error = None;
                    true
                }
                Outcome::Retry(e) => {
                    stats.failed_attempts += 1;
                    stats.last_error = Some(e);
                    false
                }
                Outcome::Refused(e) => {
                    stats.failed_attempts += 1;
                    stats.last_error = Some(e);
                    refusals += 1;
                    if refusals >= PERMANENT_ATTEMPTS {
                        stats.dropped += 1;
                        true
                    } else {
                        false
                    }
                }
            }
        };
        if done {
            let mut a = sfkeep::sync::lock(&q.alerts);
            if a.front().is_some_and(|f| f.id == alert.id) {
                a.pop_front();
            }
            backoff = FIRST_BACKOFF;
            refusals = 0;
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
