//! Auth events: every login, refresh, failure, invalidation, fallback and store outage.
//!
//! The library never prints. It emits [`AuthEvent`]s to [`EventSink`]s; the default sink writes
//! them through `tracing` (target `sfkeep::auth`) and counts them through the `metrics` facade.
//! The CLI adds a sink that appends them to its audit log. A token appears only as its
//! fingerprint.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::UnixMillis;
use crate::diagnose::Cause;
use crate::token::GrantKind;

/// Why a token request was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReason {
    /// No token yet.
    Startup,
    /// The token entered its refresh-ahead window.
    Proactive,
    /// The token passed its expiry.
    Expired,
    /// A 401 said the token is dead.
    Reactive401,
    /// Someone asked for a new token regardless.
    Forced,
}

impl RefreshReason {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshReason::Startup => "startup",
            RefreshReason::Proactive => "proactive",
            RefreshReason::Expired => "expired",
            RefreshReason::Reactive401 => "reactive_401",
            RefreshReason::Forced => "forced",
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthEventKind {
    /// A new token was obtained from Salesforce.
    TokenRefreshed {
        /// Why it was requested.
        reason: RefreshReason,
        /// How long the token request took.
        latency_ms: u64,
        /// The response carried a new refresh token (rotation).
        rotated: bool,
    },
    /// A newer token written by another process was adopted from the store.
    TokenAdopted,
    /// A token request failed.
    RefreshFailed {
        /// Why it was requested.
        reason: RefreshReason,
        /// What went wrong.
        cause: Cause,
        /// The server's words (OAuth error and description), never a secret.
        detail: String,
    },
    /// The primary grant failed for good and the fallback grant is being tried.
    FallbackUsed {
        /// Why the primary grant failed.
        cause: Cause,
    },
    /// A 401 invalidated the token of this generation.
    TokenInvalidated {
        /// The API that answered 401 (`rest`, `soap`, `bulk`).
        api: String,
    },
    /// The credential is dead; callers get `ReauthRequired` until someone acts.
    ReauthRequired {
        /// Why.
        cause: Cause,
    },
    /// A token request was held back by the login budget.
    LoginBudgetHeld {
        /// When the next request is allowed.
        retry_after_ms: u64,
    },
    /// A result was discarded because another writer stored a newer generation first.
    RefreshDiscarded,
    /// The token store failed.
    StoreUnavailable {
        /// What failed.
        detail: String,
    },
    /// The token store works again.
    StoreRecovered,
    /// A token this process obtained while the store was unreachable was written to the store
    /// once it answered again (compare-and-set on the generation), so the other processes adopt
    /// it instead of requesting their own. The event's generation and fingerprint are the
    /// written record's.
    TokenWrittenBack {
        /// The generation the write replaced, `None` when the store held no usable record.
        replaced: Option<u64>,
    },
    /// A stored record was not used because it belongs to another identity than this
    /// manager's tokens, or its identity URL has an unexpected shape
    /// (`src/manager/store_sync.rs`, "Identity").
    RecordRejected {
        /// Why, naming the org and user ids involved (never a token).
        detail: String,
    },
    /// An API call succeeded (the CLI records the last one for `doctor`).
    ApiCallSucceeded,
}

impl AuthEventKind {
    /// The dotted event name, e.g. `token.refreshed`.
    pub fn name(&self) -> &'static str {
        match self {
            AuthEventKind::TokenRefreshed { .. } => "token.refreshed",
            AuthEventKind::TokenAdopted => "token.adopted",
            AuthEventKind::RefreshFailed { .. } => "refresh.failed",
            AuthEventKind::FallbackUsed { .. } => "fallback.used",
            AuthEventKind::TokenInvalidated { .. } => "token.invalidated",
            AuthEventKind::ReauthRequired { .. } => "reauth.required",
            AuthEventKind::LoginBudgetHeld { .. } => "login_budget.held",
            AuthEventKind::RefreshDiscarded => "refresh.discarded",
            AuthEventKind::StoreUnavailable { .. } => "store.unavailable",
            AuthEventKind::StoreRecovered => "store.recovered",
            AuthEventKind::TokenWrittenBack { .. } => "token.written_back",
            AuthEventKind::RecordRejected { .. } => "record.rejected",
            AuthEventKind::ApiCallSucceeded => "api.succeeded",
        }
    }
}

/// One auth event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuthEvent {
    /// When (local clock).
    pub at: UnixMillis,
    /// What happened.
    #[serde(flatten)]
    pub kind: AuthEventKind,
    /// The grant involved.
    pub grant: Option<GrantKind>,
    /// The token generation involved.
    pub generation: Option<u64>,
    /// The fingerprint of the access token involved.
    pub fingerprint: Option<String>,
    /// The store key (a hash; never a secret).
    pub key: String,
}

impl fmt::Display for AuthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.at, self.kind.name())?;
        if let Some(g) = self.generation {
            write!(f, " gen={g}")?;
        }
        if let Some(fp) = &self.fingerprint {
            write!(f, " token={fp}")?;
        }
        Ok(())
    }
}

/// Receives auth events.
///
/// Contract: `emit` is called on the task that produced the event and must not block for
/// long (queue the work if it does I/O). It must never fail the caller.
pub trait EventSink: Send + Sync + fmt::Debug + 'static {
    /// Handles one event.
    fn emit(&self, event: &AuthEvent);
}

/// Writes events through `tracing` (target `sfkeep::auth`) and counts them through `metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl EventSink for TracingSink {
    fn emit(&self, e: &AuthEvent) {
        let name = e.kind.name();
        let grant = e.grant.map(|g| g.as_str()).unwrap_or("none");
        match &e.kind {
            AuthEventKind::TokenRefreshed {
                reason,
                latency_ms,
                rotated,
            } => {
                tracing::info!(target: "sfkeep::auth", event = name, reason = reason.as_str(), grant,
                    generation = e.generation, fingerprint = e.fingerprint.as_deref(), latency_ms, rotated, key = %e.key);
                metrics::counter!("sfkeep_token_refresh_total", "outcome" => "ok", "reason" => reason.as_str(), "grant" => grant).increment(1);
                metrics::histogram!("sfkeep_token_refresh_seconds")
                    .record(Duration::from_millis(*latency_ms).as_secs_f64());
            }
            AuthEventKind::RefreshFailed {
                reason,
                cause,
                detail,
            } => {
                tracing::warn!(target: "sfkeep::auth", event = name, reason = reason.as_str(), grant,
                    cause = cause.as_str(), detail = %detail, key = %e.key);
                metrics::counter!("sfkeep_token_refresh_total", "outcome" => "error", "reason" => reason.as_str(), "grant" => grant).increment(1);
            }
            AuthEventKind::ReauthRequired { cause } => {
                tracing::error!(target: "sfkeep::auth", event = name, grant, cause = cause.as_str(), fix = cause.fix(), key = %e.key);
                metrics::counter!("sfkeep_reauth_required_total", "cause" => cause.as_str())
                    .increment(1);
            }
            AuthEventKind::TokenInvalidated { api } => {
                tracing::info!(target: "sfkeep::auth", event = name, api = %api, generation = e.generation,
                    fingerprint = e.fingerprint.as_deref(), key = %e.key);
                metrics::counter!("sfkeep_unauthorized_total", "api" => api.clone()).increment(1);
            }
            AuthEventKind::FallbackUsed { cause } => {
                // Calls keep working on the fallback, so nothing else tells an operator that
                // the primary credential is dead and only a person can bring it back.
                tracing::warn!(target: "sfkeep::auth", event = name, grant, primary_cause = cause.as_str(),
                    fix = cause.fix(), key = %e.key);
                metrics::counter!("sfkeep_auth_events_total", "event" => name).increment(1);
            }
            AuthEventKind::RecordRejected { detail } => {
                tracing::warn!(target: "sfkeep::auth", event = name, grant, detail = %detail, key = %e.key);
                metrics::counter!("sfkeep_auth_events_total", "event" => name).increment(1);
            }
            other => {
                tracing::info!(target: "sfkeep::auth", event = name, grant, generation = e.generation,
                    fingerprint = e.fingerprint.as_deref(), detail = ?other, key = %e.key);
                metrics::counter!("sfkeep_auth_events_total", "event" => name).increment(1);
            }
        }
    }
}

/// Sends every event to several sinks.
#[derive(Debug, Clone, Default)]
pub struct FanOut(pub Vec<Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn emit(&self, event: &AuthEvent) {
        for s in &self.0 {
            s.emit(event);
        }
    }
}

/// Keeps every event in memory: for tests and for `status` output.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    events: Arc<std::sync::Mutex<Vec<AuthEvent>>>,
}

impl MemorySink {
    /// A new, empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<AuthEvent> {
        crate::sync::lock(&self.events).clone()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: &AuthEvent) {
        crate::sync::lock(&self.events).push(event.clone());
    }
}
