//! Named patterns in a profile's auth events, each explained in plain words with what to do.
//! The status page shows them and `sfkeep events --patterns` prints the same ones: both call
//! [`find`] on the audit log's rows (and, when `sfkeep serve` has read it, the integration
//! user's `LoginHistory`).
//!
//! | pattern | rule |
//! |---|---|
//! | token churn | more than 3× the token requests the session timeout explains (and at least 6) |
//! | refresh storm | one session death answered by several token requests: two refreshes of the same generation, or 3 within a minute for fewer than 2 deaths (a death after a death, each answered once, is not a storm) |
//! | same-hour deaths | session deaths in the same hour of the day on 3 or more days |
//! | logout elsewhere, repeatedly | 3 or more sessions dead well before their timeout (with a person's logins in LoginHistory as evidence) |
//! | deaths after IP changes | a session death within an hour after the integration's source IP changed (LoginHistory) |
//! | rising 401s | the last quarter of the window has at least twice the 401s of the quarters before, and at least 4 |

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::orgfacts::Login;
use crate::audit::EventRow;

/// A pattern found, with its evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pattern {
    /// Stable id: `token_churn`, `refresh_storm`, …
    pub id: &'static str,
    /// Its name for people.
    pub name: &'static str,
    /// What it means, in plain words.
    pub explanation: &'static str,
    /// What to do.
    pub what_to_do: &'static str,
    /// The facts that matched.
    pub evidence: Vec<String>,
}

fn is_death(r: &EventRow) -> bool {
    match r.kind.as_str() {
        "token.invalidated" => r.event.get("api").and_then(|v| v.as_str()) != Some("keep_alive"),
        "reauth.required" => true,
        _ => false,
    }
}

fn is_401(r: &EventRow) -> bool {
    is_death(r) && r.kind == "token.invalidated"
}

fn ts(ms: i64) -> String {
    sfkeep::clock::UnixMillis(ms).to_string()
}

/// The patterns of `profile`'s history: its events of the window `[now - window, now)`
/// (oldest first, local clock) and, when known, the integration user's `LoginHistory` (server
/// clock, `clock_offset_ms` ahead of the local one). The status page (`/api/v1/events`) and
/// `sfkeep events --patterns` both call this, so they name the same patterns for the same
/// history.
pub fn of_profile(
    profile: &crate::config::Profile,
    events: &[EventRow],
    logins: Option<&[Login]>,
    clock_offset_ms: i64,
    window: Duration,
    now_ms: i64,
) -> Vec<Pattern> {
    let session_timeout = profile
        .session_timeout
        .unwrap_or(sfkeep::token::DEFAULT_SESSION_TIMEOUT);
    let local: Option<Vec<Login>> = logins.map(|rows| {
        rows.iter()
            .map(|l| Login {
                at: sfkeep::clock::UnixMillis(l.at.0 - clock_offset_ms),
                ..l.clone()
            })
            .collect()
    });
    find(events, local.as_deref(), session_timeout, window, now_ms)
}

/// Finds the patterns in `events` (one profile, oldest first, the integration's own: doctor's
/// probes are left out) over a window of `window` ending at `now`.
pub fn find(
    events: &[EventRow],
    logins: Option<&[Login]>,
    session_timeout: Duration,
    window: Duration,
    now_ms: i64,
) -> Vec<Pattern> {
    let events: Vec<&EventRow> = events.iter().filter(|e| !e.is_doctor_probe()).collect();
    let mut out = Vec::new();
    let refreshes: Vec<&&EventRow> = events
        .iter()
        .filter(|e| e.kind == "token.refreshed")
        .collect();

    // Token churn.
    let expected = (window.as_secs_f64() / session_timeout.as_secs_f64().max(60.0)).ceil() + 1.0;
    if refreshes.len() >= 6 && refreshes.len() as f64 > 3.0 * expected {
        out.push(Pattern {
            id: "token_churn",
            name: "token churn",
            explanation: "The integration gets new tokens far more often than the session timeout explains: something throws tokens away (a process per call, a cache that is not shared, a restart loop) or sessions keep dying.",
            what_to_do: "Share one token store between the integration's processes (file or Redis store), keep processes running, and look at the deaths on the timeline.",
            evidence: vec![format!(
                "{} token requests in {}; a {} session timeout explains about {}",
                refreshes.len(),
                sfkeep::diagnose::evidence::human_exact(window),
                sfkeep::diagnose::evidence::human_exact(session_timeout),
                expected as u64
            )],
        });
    }

    // Refresh storm.
    let mut storm = Vec::new();
    let mut by_gen: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in &refreshes {
        if let Some(g) = r.generation {
            by_gen.entry(g).or_default().push(r.at);
        }
    }
    for (g, ats) in &by_gen {
        if ats.len() >= 2 && ats.windows(2).any(|w| w[1] - w[0] <= 300_000) {
            storm.push(format!(
                "{} token requests produced generation {g} (at {}): processes refreshed the same session each on its own",
                ats.len(),
                ts(ats[0])
            ));
        }
    }
    // 3 token requests within a minute, counted against the deaths they answered: the deaths
    // since the token request before the first of them (in the log's order: a death and the
    // refresh that answers it can share a millisecond).
    let at_index: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == "token.refreshed")
        .map(|(i, _)| i)
        .collect();
    for k in 0..at_index.len().saturating_sub(2) {
        let (first, last) = (events[at_index[k]], events[at_index[k + 2]]);
        if last.at - first.at > 60_000 {
            continue;
        }
        let since = if k == 0 { 0 } else { at_index[k - 1] + 1 };
        let deaths = events[since..=at_index[k + 2]]
            .iter()
            .filter(|e| is_death(e))
            .count();
        if deaths < 2 {
            storm.push(format!(
                "3 token requests within {} s at {} for {} session death(s)",
                (last.at - first.at) / 1000,
                ts(first.at),
                deaths
            ));
            break;
        }
    }
    if !storm.is_empty() {
        storm.truncate(5);
        out.push(Pattern {
            id: "refresh_storm",
            name: "refresh storm",
            explanation: "One session death was answered by several token requests: a process that does not share the token store (or its lock) refreshes on its own. With refresh-token rotation this revokes the whole token family.",
            what_to_do: "Point every process of the integration at one store ([profiles.NAME.store] kind = \"file\" on one machine, \"redis\" for a fleet) so one refresh serves all.",
            evidence: storm,
        });
    }

    // Same-hour deaths.
    let deaths: Vec<&&EventRow> = events.iter().filter(|e| is_death(e)).collect();
    let mut by_hour: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for d in &deaths {
        let day = d.at.div_euclid(86_400_000);
        let hour = d.at.rem_euclid(86_400_000) / 3_600_000;
        by_hour.entry(hour).or_default().insert(day);
    }
    if let Some((hour, days)) = by_hour.iter().find(|(_, d)| d.len() >= 3) {
        out.push(Pattern {
            id: "same_hour_deaths",
            name: "a death at the same hour every day",
            explanation: "Sessions die around the same hour on several days: a scheduled job (a nightly logout, a password reset, a deploy) or a policy, not chance.",
            what_to_do: "Look for what runs at that hour (scheduled Apex, an admin script, the org's session settings, a deploy pipeline) and stop it ending the integration user's sessions.",
            evidence: vec![format!(
                "session deaths between {hour:02}:00 and {hour:02}:59 UTC on {} different days",
                days.len()
            )],
        });
    }

    // Repeated logout elsewhere: deaths well before the token's expected end.
    let mut issued: BTreeMap<i64, i64> = BTreeMap::new();
    let mut early = Vec::new();
    for e in &events {
        match (e.kind.as_str(), e.generation) {
            ("token.refreshed", Some(g)) => {
                issued.insert(g, e.at);
            }
            ("token.invalidated", Some(g)) if is_death(e) => {
                if let Some(at) = issued.get(&g)
                    && e.at - at < (session_timeout.as_millis() as i64) * 3 / 4
                {
                    early.push(e.at);
                }
            }
            _ => {}
        }
    }
    if early.len() >= 3 {
        let mut evidence = vec![format!(
            "{} sessions died before three quarters of their {} timeout (latest at {})",
            early.len(),
            sfkeep::diagnose::evidence::human_exact(session_timeout),
            ts(*early.last().unwrap_or(&0))
        )];
        if let Some(rows) = logins {
            let people: Vec<&Login> = rows
                .iter()
                .filter(|l| l.login_type == "Application" || l.application == "Browser")
                .collect();
            if !people.is_empty() {
                evidence.push(format!(
                    "LoginHistory shows {} interactive login(s) as the integration user (latest from {})",
                    people.len(),
                    people[0].source_ip
                ));
            }
        }
        out.push(Pattern {
            id: "logout_elsewhere",
            name: "repeated logout elsewhere",
            explanation: "Sessions keep dying long before they would time out: someone logs the integration user out, or uses it interactively (a UI logout ends all its sessions), or an admin revokes them.",
            what_to_do: "Give people their own users; make the integration user API-only; check LoginHistory for interactive logins and SetupAuditTrail for revokes.",
            evidence,
        });
    }

    // Deaths after IP changes.
    if let Some(rows) = logins {
        let mut ok: Vec<&Login> = rows.iter().filter(|l| l.status == "Success").collect();
        ok.sort_by_key(|l| l.at);
        let changes: Vec<(i64, &str, &str)> = ok
            .windows(2)
            .filter(|w| w[0].source_ip != w[1].source_ip)
            .map(|w| (w[1].at.0, w[0].source_ip.as_str(), w[1].source_ip.as_str()))
            .collect();
        let hits: Vec<String> = changes
            .iter()
            .filter(|(at, _, _)| deaths.iter().any(|d| d.at >= *at && d.at - at <= 3_600_000))
            .map(|(at, from, to)| format!("the source IP moved from {from} to {to} at {}, and a session died within the hour", ts(*at)))
            .collect();
        if !hits.is_empty() {
            out.push(Pattern {
                id: "deaths_after_ip_change",
                name: "deaths that follow IP changes",
                explanation: "Sessions die soon after the integration's source address changes: sessions locked to the IP they started from, or login IP ranges that do not cover every egress address.",
                what_to_do: "Give the integration a fixed egress IP, add its addresses to the profile's Login IP Ranges, or relax \"Lock sessions to the IP address from which they originated\" for it.",
                evidence: hits,
            });
        }
    }

    // Rising 401s.
    let start = now_ms - window.as_millis() as i64;
    let quarter = (window.as_millis() as i64 / 4).max(1);
    let mut q = [0u64; 4];
    for e in events.iter().filter(|e| is_401(e) && e.at >= start) {
        let i = ((e.at - start) / quarter).clamp(0, 3) as usize;
        q[i] += 1;
    }
    let before = (q[0] + q[1] + q[2]) as f64 / 3.0;
    if q[3] >= 4 && q[3] as f64 >= 2.0 * before.max(0.5) {
        out.push(Pattern {
            id: "rising_401s",
            name: "rising 401s",
            explanation: "Session deaths (401 INVALID_SESSION_ID) are becoming more frequent: something changed recently — a deploy, a new process, a policy.",
            what_to_do: "Line the rise up with your deploys and the org's SetupAuditTrail; `sfkeep doctor` names the cause of the latest death.",
            evidence: vec![format!(
                "401s per quarter of the window, oldest first: {} · {} · {} · {}",
                q[0], q[1], q[2], q[3]
            )],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, at: i64, kind: &str, generation: Option<i64>, api: Option<&str>) -> EventRow {
        EventRow {
            id,
            at,
            kind: kind.to_owned(),
            cause: None,
            grant: Some("refresh_token".into()),
            generation,
            fingerprint: None,
            store_key: "k".into(),
            profile: "p".into(),
            origin: None,
            event: match api {
                Some(a) => serde_json::json!({"api": a}),
                None => serde_json::json!({}),
            },
        }
    }

    const H: i64 = 3_600_000;

    #[test]
    fn a_healthy_history_names_nothing() {
        // A refresh every two hours for a day, one timeout death.
        let mut e = Vec::new();
        for i in 0..12 {
            e.push(ev(i, i * 2 * H, "token.refreshed", Some(i + 1), None));
        }
        e.push(ev(100, 23 * H, "token.invalidated", Some(12), Some("rest")));
        let p = find(
            &e,
            None,
            Duration::from_secs(7200),
            Duration::from_secs(86_400),
            24 * H,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn two_processes_on_separate_stores_make_a_storm() {
        let e = vec![
            ev(1, 0, "token.refreshed", Some(1), None),
            ev(2, 1_000, "token.refreshed", Some(1), None),
            ev(3, H, "token.invalidated", Some(1), Some("rest")),
            ev(4, H + 200, "token.refreshed", Some(2), None),
            ev(5, H + 400, "token.refreshed", Some(2), None),
        ];
        let p = find(
            &e,
            None,
            Duration::from_secs(7200),
            Duration::from_secs(86_400),
            2 * H,
        );
        assert_eq!(
            p.iter().map(|p| p.id).collect::<Vec<_>>(),
            ["refresh_storm"]
        );
    }

    #[test]
    fn deaths_in_quick_succession_each_answered_once_are_not_a_storm() {
        // The demo's history: a death every second or so, each healed by one token request
        // (the revoked app's by the JWT fallback after the refresh token failed).
        let mut e = vec![ev(1, 0, "token.refreshed", Some(1), None)];
        for g in 1..6 {
            e.push(ev(
                2 * g,
                g * 1_000,
                "token.invalidated",
                Some(g),
                Some("rest"),
            ));
            e.push(ev(
                2 * g + 1,
                g * 1_000 + 100,
                "token.refreshed",
                Some(g + 1),
                None,
            ));
        }
        let mut failed = ev(20, 7_000, "refresh.failed", Some(6), None);
        failed.cause = Some("app_tokens_revoked".into());
        e.push(ev(19, 6_900, "token.invalidated", Some(6), Some("rest")));
        e.push(failed);
        e.push(ev(21, 7_100, "fallback.used", Some(6), None));
        e.push(ev(22, 7_200, "token.refreshed", Some(7), None));
        let none = find(
            &e,
            None,
            Duration::from_secs(7200),
            Duration::from_secs(86_400),
            H,
        );
        assert!(none.iter().all(|p| p.id != "refresh_storm"), "{none:?}");
        // The same requests for one death are a storm.
        let one_death: Vec<EventRow> = e
            .iter()
            .filter(|r| r.kind != "token.invalidated" || r.id == 2)
            .cloned()
            .collect();
        let p = find(
            &one_death,
            None,
            Duration::from_secs(7200),
            Duration::from_secs(86_400),
            H,
        );
        let storm = p.iter().find(|p| p.id == "refresh_storm").expect("a storm");
        assert!(
            storm.evidence[0].contains("for 1 session death(s)"),
            "{:?}",
            storm.evidence
        );
    }

    #[test]
    fn same_hour_logouts_and_rising_401s() {
        let mut e = Vec::new();
        let mut id = 0;
        for day in 0..4 {
            let base = day * 24 * H + 3 * H;
            id += 1;
            e.push(ev(
                id,
                base - 10 * 60_000,
                "token.refreshed",
                Some(day + 1),
                None,
            ));
            id += 1;
            e.push(ev(
                id,
                base,
                "token.invalidated",
                Some(day + 1),
                Some("rest"),
            ));
        }
        let p = find(
            &e,
            None,
            Duration::from_secs(7200),
            Duration::from_secs(4 * 86_400),
            4 * 24 * H,
        );
        let ids: Vec<&str> = p.iter().map(|p| p.id).collect();
        assert!(ids.contains(&"same_hour_deaths"), "{ids:?}");
        assert!(ids.contains(&"logout_elsewhere"), "{ids:?}");
        assert!(!ids.contains(&"rising_401s"), "{ids:?}");
        for i in 0..6 {
            e.push(ev(
                100 + i,
                4 * 24 * H - H + i * 1000,
                "token.invalidated",
                None,
                Some("rest"),
            ));
        }
        let p = find(
            &e,
            None,
            Duration::from_secs(7200),
            Duration::from_secs(4 * 86_400),
            4 * 24 * H,
        );
        assert!(p.iter().any(|p| p.id == "rising_401s"), "{p:?}");
    }
}
