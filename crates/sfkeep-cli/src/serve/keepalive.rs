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

/// The idle TTL the keep-alive works with, and where it came from: the profile's
/// `refresh_token_idle_ttl`, else one learned from an observed death of the refresh token by
/// the idle policy, else Salesforce's 30-day limit.
pub fn idle_ttl(profile: Option<Duration>, learned: Option<&Learned>) -> (Duration, &'static str) {
    match (profile, learned) {
        (Some(t), _) => (t, "profile"),
        (None, Some(l)) => (l.ttl(), "learned"),
        (None, None) => (crate::serve::settings::DEFAULT_IDLE_TTL, "default 30 days"),
    }
}

/// An idle TTL learned from a death: the refresh token, last used at `last_use`, was found
/// expired by the app's policy at `died_at`. The policy's TTL is at most the gap between them
/// (the token was alive at its last use and dead at the failed one), so the gap is a safe
/// upper bound to schedule against; a later, shorter death lowers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Learned {
    /// The refresh token's last use before it died (server clock).
    pub last_use: UnixMillis,
    /// When it was found dead (server clock).
    pub died_at: UnixMillis,
    /// The learned TTL, seconds.
    pub idle_ttl_secs: u64,
    /// What it was learned from.
    pub evidence: String,
}

impl Learned {
    /// Learned from a death at `died_at` of a refresh token last used at `last_use`, if the
    /// gap is positive.
    pub fn from_death(last_use: UnixMillis, died_at: UnixMillis, verdict: &str) -> Option<Self> {
        let gap = died_at.0.checked_sub(last_use.0).filter(|g| *g > 0)?;
        let secs = (gap / 1000).max(1) as u64;
        Some(Self {
            last_use,
            died_at,
            idle_ttl_secs: secs,
            evidence: format!(
                "the refresh token, last used {last_use}, was found dead on {died_at} ({verdict}): the app's idle TTL is at most {}",
                sfkeep::diagnose::evidence::human_exact(Duration::from_secs(secs))
            ),
        })
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.idle_ttl_secs)
    }
}

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

    #[test]
    fn the_ttl_comes_from_the_profile_then_a_death_then_the_default() {
        let l = Learned::from_death(
            UnixMillis(1_000),
            UnixMillis(1_000 + 11 * 86_400_000),
            "refresh_token_expired_by_policy",
        )
        .unwrap();
        assert_eq!(l.idle_ttl_secs, 11 * 86_400);
        assert!(l.evidence.ends_with("at most 11d"), "{}", l.evidence);
        let day = Duration::from_secs(86_400);
        assert_eq!(idle_ttl(Some(day), Some(&l)), (day, "profile"));
        assert_eq!(idle_ttl(None, Some(&l)), (11 * day, "learned"));
        assert_eq!(idle_ttl(None, None), (30 * day, "default 30 days"));
        assert_eq!(
            Learned::from_death(UnixMillis(5), UnixMillis(5), "x"),
            None,
            "a death at its last use says nothing"
        );
    }
}
