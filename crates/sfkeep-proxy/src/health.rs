//! `/healthz` of the proxy and of `sfkeep serve`: whether this process can serve the org now,
//! judged from the store and the org, not only from the token it holds in memory.
//!
//! Not ok (HTTP 503, with every reason in the body) when:
//! - the token manager needs a person (`reauth_required`);
//! - the store cannot be read within [`STORE_CHECK_TIMEOUT`] (`store_unreachable`);
//! - the store holds a newer generation than the one this process serves and this process
//!   cannot adopt it: it is expired, or another identity's (`store_ahead`). A newer usable
//!   record is fine: the process adopts it at its next token use;
//! - the last token request failed for a reason that passes (the org unreachable, a 5xx), or
//!   the last API call to the instance failed in transport (`org_unreachable`).
//!
//! The body never holds a token: generations, fingerprints and causes only.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use sfkeep::TokenManager;
use sfkeep::diagnose::Cause;
use sfkeep::manager::TokenStatus;
use sfkeep::store::Store;
use sfkeep::token::TokenState;

/// How long `/healthz` waits for the store.
pub const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The last API call's transport outcome: the reason it failed, cleared by any answer.
#[derive(Debug, Default)]
pub struct OrgReach {
    last_failure: Mutex<Option<String>>,
}

impl OrgReach {
    /// A request to the org's instance got no answer (`why`: no URL, no token).
    pub fn failed(&self, why: &str) {
        *sfkeep::sync::lock(&self.last_failure) = Some(why.to_owned());
    }

    /// The instance answered (whatever the status).
    pub fn answered(&self) {
        let mut f = sfkeep::sync::lock(&self.last_failure);
        if f.is_some() {
            *f = None;
        }
    }

    /// Why the last call failed in transport, if it did.
    pub fn last_failure(&self) -> Option<String> {
        sfkeep::sync::lock(&self.last_failure).clone()
    }
}

/// The verdict: `ok`, and the JSON body (`status`: `ok` or `unhealthy`; `problems`: one
/// `{"check", "why"}` per failed check; `token` and `store`: what was seen).
#[derive(Debug, Clone)]
pub struct Health {
    /// Every check passed.
    pub ok: bool,
    /// The body `/healthz` answers with.
    pub body: Value,
}

/// Checks `manager`, its `store` (when it has a shared one) and the org; `api_failure` is the
/// last API call's transport failure ([`OrgReach::last_failure`]), if any.
pub async fn check(
    manager: &TokenManager,
    store: Option<&dyn Store>,
    api_failure: Option<String>,
) -> Health {
    let s = manager.status();
    let mut problems: Vec<Value> = Vec::new();
    let mut problem = |check: &str, why: String| problems.push(json!({"check": check, "why": why}));
    if s.state == TokenStatus::ReauthRequired {
        problem(
            "reauth_required",
            format!(
                "the token manager needs a person ({}): run `sfkeep doctor`",
                s.last_failure
                    .map_or("unknown".to_owned(), |c| c.to_string())
            ),
        );
    } else if s.last_failure == Some(Cause::Transient) {
        problem(
            "org_unreachable",
            "the last token request to the org failed (no answer, or a server error)".to_owned(),
        );
    }
    if let Some(why) = api_failure {
        problem(
            "org_unreachable",
            format!("the last API call to the org's instance failed: {why}"),
        );
    }
    let served = s.generation;
    let mut store_seen = Value::Null;
    if let Some(store) = store {
        match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.load(manager.store_key())).await {
            Err(_) => problem(
                "store_unreachable",
                format!(
                    "the {} store did not answer within {}s",
                    store.kind(),
                    STORE_CHECK_TIMEOUT.as_secs()
                ),
            ),
            Ok(Err(e)) => problem(
                "store_unreachable",
                format!("the {} store cannot be read: {e}", store.kind()),
            ),
            Ok(Ok(stored)) => {
                let rec = stored.filter(|r| !r.is_tombstone());
                store_seen = json!({
                    "kind": store.kind(),
                    "generation": rec.as_ref().map(|r| r.generation),
                });
                if let Some(r) = rec.filter(|r| served.is_none_or(|g| r.generation > g)) {
                    let now = manager.server_clock().now();
                    let other_identity = manager
                        .cached_token()
                        .is_some_and(|t| t.record().id_url != r.id_url);
                    let why = if r.state_at(now) == TokenState::Expired && r.intent.is_none() {
                        Some("it is expired")
                    } else if other_identity {
                        Some("it is another identity's")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        problem(
                            "store_ahead",
                            format!(
                                "the store holds generation {}, newer than the generation {} this process serves, and {why}: this process cannot adopt it",
                                r.generation,
                                served.map_or("(none)".to_owned(), |g| g.to_string())
                            ),
                        );
                    }
                }
            }
        }
    }
    let ok = problems.is_empty();
    Health {
        ok,
        body: json!({
            "status": if ok { "ok" } else { "unhealthy" },
            "problems": problems,
            "token": {
                "state": s.state.as_str(),
                "generation": served,
                "expires_in": s.expires_in.map(|d| d.as_secs()),
                "store": s.store,
                "last_failure": s.last_failure.map(|c| c.to_string()),
            },
            "store": store_seen,
        }),
    }
}
