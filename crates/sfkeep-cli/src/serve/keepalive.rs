//! Keep-alive: a refresh token that would cross its idle TTL unused is used once, a safety margin
//! before, so an integration idle for months still has a working refresh token.
//!
//! The refresh token's last use is the issue time of the newest stored record obtained with it
//! (every process of a fleet reads the same store). When that plus the idle TTL minus the
//! margin has passed, the guardian declares that stored generation dead to its manager
//! (`retire_if_current`) and asks for a token: the same path as a 401, so the manager's
//! single-flight, the store's refresh lock and its generation compare-and-set make one token
//! request for the whole fleet. A process that finds a newer generation in the store adopts it
//! instead (another process did the keep-alive), and a rotated refresh token is stored in the
//! same atomic write as the access token, before anyone else can refresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sfkeep::TokenManager;
use sfkeep::clock::UnixMillis;
use sfkeep::token::{GrantKind, TokenRecord};

/// The keep-alive schedule of one stored record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The refresh token's last use (the record's issue time, server clock).
    pub last_use: UnixMillis,
    /// When the keep-alive is due.
    pub due_at: UnixMillis,
    /// When the refresh token would die unused.
    pub dies_at: UnixMillis,
    /// The generation that would be replaced.
    pub generation: u64,
}

/// The schedule for `record`: `None` when it was not obtained with a refresh token (then the
/// store does not tell when the refresh token was last used).
pub fn plan(record: Option<&TokenRecord>, ttl: Duration, margin: Duration) -> Option<Plan> {
    let r = record.filter(|r| !r.is_tombstone())?;
    if r.grant != GrantKind::RefreshToken || r.refresh_token.is_none() {
        return None;
    }
    Some(Plan {
        last_use: r.issued_at,
        due_at: r.issued_at.plus(ttl.saturating_sub(margin)),
        dies_at: r.issued_at.plus(ttl),
        generation: r.generation,
    })
}

/// What a keep-alive did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This process made the token request.
    Refreshed {
        /// The new generation.
        generation: u64,
    },
    /// Another process (or a refresh in flight) had done it: the newer record was adopted.
    Adopted {
        /// The generation now current.
        generation: u64,
    },
}

/// Runs the keep-alive of `plan` through `manager`. `refreshes` counts the token requests
/// this process's manager made (its `token.refreshed` events): it tells a request made here
/// from a record another process stored and this one adopted.
pub async fn run(
    manager: &TokenManager,
    plan: &Plan,
    refreshes: &AtomicU64,
) -> sfkeep::Result<Outcome> {
    let before = refreshes.load(Ordering::Acquire);
    manager.retire_if_current(plan.generation);
    let t = manager.token().await?;
    if refreshes.load(Ordering::Acquire) > before {
        Ok(Outcome::Refreshed {
            generation: t.generation(),
        })
    } else {
        Ok(Outcome::Adopted {
            generation: t.generation(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_a_margin_before_the_idle_ttl() {
        let tomb = TokenRecord::tombstone(4, GrantKind::RefreshToken, UnixMillis(1_000));
        let ttl = Duration::from_secs(100);
        let margin = Duration::from_secs(10);
        assert_eq!(plan(Some(&tomb), ttl, margin), None);
        let mut r = TokenRecord {
            access_token: sfkeep::secret::AccessToken::new("00D!x"),
            refresh_token: Some(sfkeep::secret::RefreshToken::new("5Aep-test")),
            issued_at: UnixMillis(1_000),
            generation: 5,
            ..tomb
        };
        let p = plan(Some(&r), ttl, margin).unwrap();
        assert_eq!(p.due_at, UnixMillis(1_000 + 90_000));
        assert_eq!(p.dies_at, UnixMillis(1_000 + 100_000));
        assert_eq!(p.generation, 5);
        r.grant = GrantKind::JwtBearer;
        assert_eq!(plan(Some(&r), ttl, margin), None);
        assert_eq!(plan(None, ttl, margin), None);
    }
}
