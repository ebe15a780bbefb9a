//! What an interrupted rotating refresh, or a store that lost the rotated refresh token,
//! leaves behind for `doctor` to find (`docs/rotation-safety.md`): the intent record nobody
//! replaced, the spent-token ledger, a logout tombstone, and the manager's own words in the
//! dry refresh and the audit log.

use super::Cause;
use super::diagnosis::{DiagnosisCause as D, Finding};
use super::facts::Facts;
use super::time_text::at_text;

/// The findings for [`D::RefreshInterrupted`] and [`D::RefreshTokenLost`].
pub(super) fn findings(f: &Facts) -> Vec<Finding> {
    // A refresh token introspection shows live is sent again by the next refresh: whatever
    // the store says, nothing was lost.
    let rt_active = f.refresh_token.as_ref().and_then(|r| r.active);
    if rt_active == Some(true) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut interrupted = words(f, Cause::RefreshInterrupted);
    if let Some(i) = &f.interrupted_refresh {
        let mut evidence = vec![format!(
            "the token store holds an unfinished rotating refresh: generation {}'s refresh token was sent by manager {} {}, and no answer replaced the record (the sender crashed, stalled past its lock, or lost the org's answer)",
            i.generation,
            i.owner,
            at_text(f.now, i.since)
        )];
        let mut confidence = 0.7;
        if rt_active == Some(false) {
            evidence.push("introspection: that refresh token is no longer active, so the org rotated it and the new refresh token was lost".into());
            confidence = 0.95;
        }
        if !interrupted.is_empty() {
            confidence = f64::max(confidence, 0.9);
        }
        evidence.append(&mut interrupted);
        out.push(Finding::new(D::RefreshInterrupted, confidence, evidence));
    } else if !interrupted.is_empty() {
        out.push(Finding::new(D::RefreshInterrupted, 0.6, interrupted));
    }
    let mut lost = words(f, Cause::RefreshTokenLost);
    if let Some(why) = &f.refresh_token_lost {
        let mut evidence = vec![why.clone()];
        evidence.append(&mut lost);
        out.push(Finding::new(D::RefreshTokenLost, 0.9, evidence));
    } else if !lost.is_empty() {
        out.push(Finding::new(D::RefreshTokenLost, 0.6, lost));
    }
    out
}

/// Where the manager itself said `cause`: the dry refresh's answer, the integration's latest
/// such event in the audit log.
fn words(f: &Facts, cause: Cause) -> Vec<String> {
    let dry = f.dry_refresh.iter().find_map(|a| match &a.outcome {
        Err((c, _)) if *c == cause => Some(a.said()),
        _ => None,
    });
    let logged = f
        .recent_events
        .iter()
        .filter(|e| !e.probe && e.cause == Some(cause))
        .max_by_key(|e| e.at)
        .map(|e| {
            format!(
                "the audit log: {} with cause {cause}, {}",
                e.kind,
                at_text(f.now, e.at)
            )
        });
    dry.into_iter().chain(logged).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixMillis;
    use crate::diagnose::evidence::{
        GrantAttempt, InterruptedRefresh, RefreshTokenFacts, diagnose,
    };
    use crate::token::GrantKind;

    fn interrupted(active: Option<bool>) -> Facts {
        Facts {
            now: UnixMillis(10_000_000),
            interrupted_refresh: Some(InterruptedRefresh {
                generation: 7,
                owner: "m-3f2a".into(),
                since: UnixMillis(9_940_000),
            }),
            refresh_token: Some(RefreshTokenFacts {
                active,
                authorized_at: None,
                expires_at: None,
                remembered_refused: false,
            }),
            dry_refresh: vec![GrantAttempt::requested(
                GrantKind::RefreshToken,
                Err((
                    Cause::RefreshTokenRevoked,
                    "introspection: not active".into(),
                )),
            )],
            ..Facts::default()
        }
    }

    #[test]
    fn an_unfinished_intent_whose_token_is_dead_is_the_verdict_with_its_evidence() {
        let d = diagnose(&interrupted(Some(false)));
        assert_eq!(d.verdict, D::RefreshInterrupted, "{d:#?}");
        let top = &d.causes[0];
        assert!(top.confidence >= 0.9, "{top:#?}");
        let ev = top.evidence.join("\n");
        assert!(ev.contains("generation 7"), "{ev}");
        assert!(ev.contains("m-3f2a"), "{ev}");
        assert!(ev.contains("1m00s ago"), "{ev}");
        assert!(ev.contains("no longer active"), "{ev}");
        assert!(!d.recoverable);
    }

    #[test]
    fn an_unfinished_intent_whose_token_is_live_is_no_finding() {
        let d = diagnose(&interrupted(Some(true)));
        assert!(
            d.causes.iter().all(|c| c.cause != D::RefreshInterrupted),
            "{d:#?}"
        );
    }

    #[test]
    fn the_managers_own_words_name_the_cause_without_a_store_record() {
        let f = Facts {
            dry_refresh: vec![GrantAttempt::requested(
                GrantKind::RefreshToken,
                Err((
                    Cause::RefreshTokenLost,
                    "the redis store lost the rotated refresh token".into(),
                )),
            )],
            refresh_token_lost: Some(
                "the token store holds no record, and the spent-token ledger saw the configured refresh token rotated away at generation 3".into(),
            ),
            ..Facts::default()
        };
        let d = diagnose(&f);
        assert_eq!(d.verdict, D::RefreshTokenLost, "{d:#?}");
        let ev = d.causes[0].evidence.join("\n");
        assert!(ev.contains("spent-token ledger"), "{ev}");
        assert!(ev.contains("lost the rotated refresh token"), "{ev}");
    }
}
