//! The cause of each session death on the timeline (docs/guardian.md, "Death causes"): for
//! every death (a 401 `INVALID_SESSION_ID`, a re-auth required) of a window, what sfkeep knows
//! of why, with one short line of evidence, never a token.
//!
//! One death is an *episode* of the audit log: from the last event that shows the token that
//! died alive (a successful call with it, its refresh or adoption) to the first event with a
//! newer token (the heal, by whichever process sharing the store made it). What the episode holds is put into `sfkeep doctor`'s facts and ranked by doctor's own
//! rules (`sfkeep::diagnose::evidence::diagnose`), nothing restated here:
//!
//! - the event itself: the token requests of the heal, as the manager classified their answers
//!   (`refresh.failed` with its cause, `token.refreshed`), and the times of the episode (the
//!   session's idle time against its timeout);
//! - the org's evidence `sfkeep serve` reads: the integration user's `LoginHistory` rows and the
//!   org's `SetupAuditTrail` rows (a password change, a freeze, a deactivation, a token revoke,
//!   an IP range change) between the last sign of life and the heal;
//! - else the latest `doctor` diagnosis the guardian ran, when it ran during that episode;
//! - else `unknown`, saying what could not be checked.
//!
//! Times: the audit log is on the local clock, the org's rows on the server's. The offset
//! measured from the `Date` header is good to a second; it is refined from the token requests
//! of the audit log whose own `LoginHistory` row is found (the org dates each to the
//! millisecond), so that a Setup change made a moment before the previous episode's heal is not
//! taken for this episode's cause. An offset that changed within the window (a server clock
//! that jumped: the simulated org's) is not reconstructed; the one measured last is used.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sfkeep::clock::UnixMillis;
use sfkeep::diagnose::evidence::{
    AuditRow, Facts, GrantAttempt, LoginRow, OrgReads, TimeoutSource, TokenProbe,
};
use sfkeep::diagnose::{Cause, Diagnosis, DiagnosisCause};
use sfkeep::token::GrantKind;

use super::orgfacts::{Login, SetupChange};
use crate::audit::EventRow;

/// A finding weaker than this names no cause.
const MIN_CONFIDENCE: f64 = 0.3;
/// A token request's `LoginHistory` row is looked for this close to where the measured offset
/// puts it.
const PAIR_WINDOW_MS: i64 = 1_500;
/// How far an org row may sit outside an episode and still count when the offset is the
/// `Date` header's (good to a second); a refined one is good to its requests' latency.
const SLACK_MEASURED_MS: i64 = 1_000;
/// A request's `LoginHistory` row is dated this close to the request's midpoint, plus half its
/// latency.
const PAIR_TOLERANCE_MS: i64 = 50;
/// The offset is refined from this many of the newest token requests (the clock as it is now).
const RECENT_REQUESTS: usize = 50;
/// An episode that never healed looks at the org's rows this long after the death.
const OPEN_EPISODE_MS: i64 = 10 * 60_000;
/// The evidence line is cut at this many characters.
const EVIDENCE_CHARS: usize = 220;

/// The cause of one death, as the status API and `sfkeep events` give it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeathCause {
    /// A `sfkeep doctor` verdict (`logged_out_elsewhere`, `app_tokens_revoked`, `user_frozen`,
    /// …), or `unknown`.
    pub cause: String,
    /// The cause in plain words.
    pub title: String,
    /// What told it: `audit_log` (the events of the death and its heal), `org` (LoginHistory,
    /// SetupAuditTrail), `diagnosis` (the latest `sfkeep doctor` run), or `unknown`.
    pub source: &'static str,
    /// One short line of evidence (never a token).
    pub evidence: String,
}

/// What the causes are worked out from, besides the audit log.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The integration user's `LoginHistory` rows, or why they could not be read.
    pub logins: Result<Vec<Login>, String>,
    /// The org's `SetupAuditTrail` rows, or why they could not be read.
    pub setup: Result<Vec<SetupChange>, String>,
    /// Server minus local clock, as last measured (ms).
    pub offset_ms: i64,
    /// The session timeout the profile says (or the default).
    pub session_timeout: Duration,
    /// Whether the profile set it.
    pub timeout_from_profile: bool,
    /// The latest `sfkeep doctor` diagnosis the guardian ran (server clock), if any.
    pub diagnosis: Option<(UnixMillis, Diagnosis)>,
}

impl Evidence {
    /// What `sfkeep serve` last wrote for `p` in its state file (for `sfkeep events`, which
    /// runs outside it), or nothing read when no guardian has watched the profile.
    pub fn from_state_file(p: &crate::config::Profile) -> Self {
        let none =
            || "no sfkeep serve has watched this profile, so the org was not read".to_owned();
        let (logins, offset_ms) = match super::guardian::read_login_history(p) {
            Some(Ok((rows, offset))) => (Ok(rows), offset),
            Some(Err(e)) => (Err(e), 0),
            None => (Err(none()), 0),
        };
        let setup = super::guardian::read_setup_audit(p).unwrap_or_else(|| Err(none()));
        let diagnosis = super::guardian::read_state(p).and_then(|(_, v)| {
            let d = v.get("diagnosis")?;
            Some((
                UnixMillis(d.get("at")?.as_i64()?),
                serde_json::from_value(d.get("diagnosis")?.clone()).ok()?,
            ))
        });
        Self {
            logins,
            setup,
            offset_ms,
            session_timeout: p
                .session_timeout
                .unwrap_or(sfkeep::token::DEFAULT_SESSION_TIMEOUT),
            timeout_from_profile: p.session_timeout.is_some(),
            diagnosis,
        }
    }
}

/// The page's category of a death: `death` (a 401) or `reauth`.
pub fn is_death(category: &str) -> bool {
    matches!(category, "death" | "reauth")
}

/// A sign of life of the event's token: a call with it worked, or the org just issued it. (An
/// adoption only read the store: the token may have been dead already.)
fn lived(r: &EventRow) -> bool {
    !r.is_doctor_probe() && matches!(r.kind.as_str(), "api.succeeded" | "token.refreshed")
}

/// A token obtained or taken up: what ends a death when it is newer than the dead one.
fn alive(r: &EventRow) -> bool {
    lived(r)
        || !r.is_doctor_probe() && matches!(r.kind.as_str(), "token.adopted" | "token.written_back")
}

/// Server minus local clock refined from the token requests of the audit log and their own
/// `LoginHistory` rows, and how far it may still be off; `None` when no request's row is found.
///
/// Each recent token request (its local time minus half its latency) is paired with each
/// `LoginHistory` row within [`PAIR_WINDOW_MS`] of where the measured offset puts it; each pair
/// proposes an offset, and the one most requests agree with (a row within their latency) wins:
/// a row of another process's request nearby proposes an offset few others agree with.
pub fn refined_offset(rows: &[EventRow], logins: &[Login], measured: i64) -> Option<(i64, i64)> {
    let requests: Vec<(i64, i64)> = rows
        .iter()
        .rev()
        .filter(|r| r.kind == "token.refreshed")
        .take(RECENT_REQUESTS)
        .map(|r| {
            let latency = r
                .event
                .get("latency_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .max(0);
            (r.at - latency / 2, latency)
        })
        .collect();
    let mut times: Vec<i64> = logins.iter().map(|l| l.at.0).collect();
    times.sort_unstable();
    let near = |t: i64, within: i64| -> Option<i64> {
        let k = times.partition_point(|&x| x < t - within);
        times.get(k).copied().filter(|&x| x <= t + within)
    };
    let agreeing = |offset: i64| -> Vec<(i64, i64)> {
        requests
            .iter()
            .filter_map(|&(mid, latency)| {
                let within = PAIR_TOLERANCE_MS + latency / 2;
                near(mid + offset, within).map(|x| (x - mid, latency))
            })
            .collect()
    };
    let mut best: Option<Vec<(i64, i64)>> = None;
    for &(mid, _) in &requests {
        let lo = times.partition_point(|&x| x < mid + measured - PAIR_WINDOW_MS);
        for &x in times[lo..]
            .iter()
            .take_while(|&&x| x <= mid + measured + PAIR_WINDOW_MS)
        {
            let pairs = agreeing(x - mid);
            if best.as_ref().is_none_or(|b| pairs.len() > b.len()) {
                best = Some(pairs);
            }
        }
    }
    let mut pairs = best.filter(|b| !b.is_empty())?;
    pairs.sort_unstable();
    let offset = pairs[pairs.len() / 2].0;
    let latency = pairs.iter().map(|p| p.1).max().unwrap_or(0);
    Some((offset, PAIR_TOLERANCE_MS + latency / 2))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

fn cut(s: &str) -> String {
    let s = sfkeep::error::redact_secrets(s);
    if s.chars().count() <= EVIDENCE_CHARS {
        return s;
    }
    let mut out: String = s.chars().take(EVIDENCE_CHARS - 1).collect();
    out.push('…');
    out
}

/// The causes of the deaths among `rows` (oldest first, as the audit log gives them), by event
/// id. `categories[i]` is the page's category of `rows[i]`.
pub fn of_deaths(
    rows: &[EventRow],
    categories: &[&str],
    ev: &Evidence,
) -> BTreeMap<i64, DeathCause> {
    let logins: &[Login] = ev.logins.as_deref().unwrap_or(&[]);
    let (offset, slack) =
        refined_offset(rows, logins, ev.offset_ms).unwrap_or((ev.offset_ms, SLACK_MEASURED_MS));
    let slack = slack.min(SLACK_MEASURED_MS);
    let server = |local: i64| UnixMillis(local + offset);
    let mut out = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if !categories.get(i).is_some_and(|c| is_death(c)) || r.is_doctor_probe() {
            continue;
        }
        // The episode of the token that died (its generation): from its last sign of life to
        // the first newer token (the heal, maybe by another process sharing the store, maybe
        // before this process saw its 401).
        let g = r.generation;
        let newer = |e: &EventRow| g.is_none_or(|g| e.generation.is_some_and(|n| n > g));
        let start = g
            .and_then(|g| {
                rows[..i]
                    .iter()
                    .rposition(|e| lived(e) && e.generation == Some(g))
            })
            .or_else(|| rows[..i].iter().rposition(lived));
        let from = start.map_or(0, |s| s + 1);
        let heal = (from..rows.len()).find(|&j| j != i && alive(&rows[j]) && newer(&rows[j]));
        let last = heal.map_or(i, |h| h.max(i));
        let lo = start.map(|s| server(rows[s].at).0 - slack);
        let hi = match heal {
            Some(_) => server(rows[last].at).0 + slack,
            None => server(r.at).0 + OPEN_EPISODE_MS,
        };
        let within = |t: UnixMillis, hi: i64| lo.is_none_or(|lo| t.0 >= lo) && t.0 <= hi;
        // The heal's token requests, as the manager classified their answers: the latest of
        // each grant.
        let episode = &rows[from..=last];
        let mut attempts: Vec<GrantAttempt> = Vec::new();
        for e in episode.iter().filter(|e| !e.is_doctor_probe()) {
            // A newer token adopted from the store was got by a token request that worked,
            // maybe before this episode (another process healed first): its grant's.
            let grant = e.grant.clone().or_else(|| {
                let made = rows
                    .iter()
                    .find(|m| m.kind == "token.refreshed" && m.generation == e.generation)?;
                made.grant.clone()
            });
            let Some(grant) = grant.as_deref().and_then(parse::<GrantKind>) else {
                continue;
            };
            let outcome = match e.kind.as_str() {
                "token.refreshed" => Ok(()),
                "token.adopted" | "token.written_back" if newer(e) => Ok(()),
                "refresh.failed" => {
                    let Some(c) = e.cause.as_deref().and_then(parse::<Cause>) else {
                        continue;
                    };
                    let said = e
                        .event
                        .get("detail")
                        .and_then(Value::as_str)
                        .unwrap_or(c.as_str());
                    Err((c, cut(said)))
                }
                _ => continue,
            };
            attempts.retain(|a| a.grant != grant);
            attempts.push(GrantAttempt::requested(grant, outcome));
        }
        // The facts of this death, with the Setup changes made up to `setup_hi` (a change can
        // only end sessions after it; refused logins come until the heal).
        let facts = |setup_hi: i64| Facts {
            now: server(r.at),
            session_timeout: ev.session_timeout,
            session_timeout_source: if ev.timeout_from_profile {
                TimeoutSource::Profile
            } else {
                TimeoutSource::Default
            },
            last_success_at: start.map(|s| server(rows[s].at)),
            probe: TokenProbe::Rejected {
                status: 401,
                body: "INVALID_SESSION_ID".to_owned(),
            },
            dry_refresh: attempts.clone(),
            org_queried: ev.logins.is_ok() || ev.setup.is_ok(),
            reads: OrgReads {
                login_history: ev.logins.is_ok(),
                setup_audit: ev.setup.is_ok(),
                ..OrgReads::default()
            },
            login_history: logins
                .iter()
                .filter(|l| within(l.at, hi))
                .map(|l| LoginRow {
                    at: l.at,
                    source_ip: l.source_ip.clone(),
                    status: l.status.clone(),
                })
                .collect(),
            setup_audit: ev
                .setup
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .filter(|s| within(s.at, setup_hi))
                .map(|s| AuditRow {
                    at: s.at,
                    action: s.action.clone(),
                    display: s.display.clone(),
                })
                .collect(),
            ..Facts::default()
        };
        // The changes made before the death first; one within the clock's uncertainty after
        // it only when nothing in the org before it explains the death.
        let death = server(r.at).0;
        let before = named(&sfkeep::diagnose::evidence::diagnose(&facts(death)));
        let found = match before {
            Some(c) if c.source == "org" => Some(c),
            before => {
                named(&sfkeep::diagnose::evidence::diagnose(&facts(death + slack))).or(before)
            }
        };
        let cause = match found {
            Some(c) => c,
            None => from_diagnosis(
                ev,
                server(r.at),
                heal.filter(|&h| h > i).map(|h| server(rows[h].at)),
            )
            .unwrap_or_else(|| unknown(ev, r)),
        };
        out.insert(r.id, cause);
    }
    out
}

/// The top finding of `d` as a death's cause, when it names one.
fn named(d: &Diagnosis) -> Option<DeathCause> {
    let f = d.causes.first().filter(|f| {
        f.confidence >= MIN_CONFIDENCE
            && !matches!(f.cause, DiagnosisCause::Unknown | DiagnosisCause::Healthy)
    })?;
    let from_org = f
        .evidence
        .iter()
        .find(|e| e.starts_with("SetupAuditTrail") || e.starts_with("LoginHistory"));
    let line = from_org.cloned().unwrap_or_else(|| {
        // The session's idle time against its timeout, and what the org does not
        // show; else what the heal's token requests were told.
        let timing: Vec<&str> = f
            .evidence
            .iter()
            .filter(|e| e.contains("last used") || e.contains("shows in the org"))
            .map(String::as_str)
            .collect();
        if timing.is_empty() {
            f.evidence
                .iter()
                .find(|e| e.contains("dry refresh"))
                .or(f.evidence.first())
                .cloned()
                .unwrap_or_default()
                .replace("a dry refresh with", "the heal's token request with")
        } else {
            timing.join("; ")
        }
    });
    Some(DeathCause {
        cause: f.cause.as_str().to_owned(),
        title: f.cause.title().to_owned(),
        source: if from_org.is_some() {
            "org"
        } else {
            "audit_log"
        },
        evidence: cut(&line),
    })
}

/// The latest doctor diagnosis, when it ran during the episode (after the death, before the
/// heal).
fn from_diagnosis(
    ev: &Evidence,
    death: UnixMillis,
    healed: Option<UnixMillis>,
) -> Option<DeathCause> {
    let (at, d) = ev.diagnosis.as_ref()?;
    if at.0 < death.0 || healed.is_some_and(|h| at.0 > h.0) {
        return None;
    }
    let f = d
        .causes
        .iter()
        .find(|c| !matches!(c.cause, DiagnosisCause::Healthy | DiagnosisCause::Unknown))?;
    Some(DeathCause {
        cause: f.cause.as_str().to_owned(),
        title: f.cause.title().to_owned(),
        source: "diagnosis",
        evidence: cut(&format!(
            "sfkeep doctor at {at}: {}",
            f.evidence.first().map(String::as_str).unwrap_or("")
        )),
    })
}

/// Nothing tells: said plainly, with what could not be checked.
fn unknown(ev: &Evidence, r: &EventRow) -> DeathCause {
    let mut missing = Vec::new();
    if let Err(e) = &ev.logins {
        missing.push(format!("LoginHistory ({e})"));
    }
    if let Err(e) = &ev.setup {
        missing.push(format!("SetupAuditTrail ({e})"));
    }
    let mut line = if r.kind == "reauth.required" {
        format!(
            "the manager said {} and nothing in the audit log or the org's evidence names more",
            r.cause.as_deref().unwrap_or("re-auth required")
        )
    } else {
        "a 401 with no heal, org row or diagnosis that tells why".to_owned()
    };
    if !missing.is_empty() {
        line.push_str(&format!("; not checked: {}", missing.join(", ")));
    }
    if ev.diagnosis.is_none() {
        line.push_str("; no sfkeep doctor run covers it");
    }
    DeathCause {
        cause: "unknown".to_owned(),
        title: "unknown".to_owned(),
        source: "unknown",
        evidence: cut(&line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: i64 = 1_800_000_000_000;
    /// Server minus local clock in these histories.
    const OFFSET: i64 = 7_260_000;

    fn row(id: i64, at: i64, kind: &str, generation: i64, grant: &str, event: Value) -> EventRow {
        EventRow {
            id,
            at: T + at,
            kind: kind.into(),
            cause: event
                .get("cause")
                .and_then(Value::as_str)
                .map(str::to_owned),
            grant: (!grant.is_empty()).then(|| grant.to_owned()),
            generation: Some(generation),
            fingerprint: None,
            store_key: "k".into(),
            profile: "p".into(),
            origin: None,
            event,
        }
    }

    fn ok(id: i64, at: i64, generation: i64) -> EventRow {
        row(
            id,
            at,
            "api.succeeded",
            generation,
            "",
            json!({"api": "rest"}),
        )
    }

    fn died(id: i64, at: i64, generation: i64) -> EventRow {
        row(
            id,
            at,
            "token.invalidated",
            generation,
            "",
            json!({"api": "rest"}),
        )
    }

    fn healed(id: i64, at: i64, generation: i64, grant: &str) -> EventRow {
        row(
            id,
            at,
            "token.refreshed",
            generation,
            grant,
            json!({"reason": "reactive401", "latency_ms": 20}),
        )
    }

    fn failed(id: i64, at: i64, generation: i64, grant: &str, cause: &str) -> EventRow {
        row(
            id,
            at,
            "refresh.failed",
            generation,
            grant,
            json!({"cause": cause, "detail": "invalid_grant"}),
        )
    }

    /// The org's row of a token request the audit log dates `at` (local, latency 20 ms).
    fn login(at: i64, status: &str) -> Login {
        Login {
            at: UnixMillis(T + at - 10 + OFFSET),
            source_ip: "127.0.0.1".into(),
            status: status.into(),
            application: "sfkeep Integration".into(),
            login_type: "Remote Access 2.0".into(),
        }
    }

    fn setup(at: i64, action: &str, display: &str) -> SetupChange {
        SetupChange {
            at: UnixMillis(T + at + OFFSET),
            action: action.into(),
            display: display.into(),
        }
    }

    fn evidence(logins: Vec<Login>, setup: Vec<SetupChange>, measured: i64) -> Evidence {
        Evidence {
            logins: Ok(logins),
            setup: Ok(setup),
            offset_ms: measured,
            session_timeout: Duration::from_secs(7_200),
            timeout_from_profile: false,
            diagnosis: None,
        }
    }

    fn causes(rows: &[EventRow], ev: &Evidence) -> BTreeMap<i64, DeathCause> {
        let cats: Vec<&str> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| super::super::api::category(r, i.checked_sub(1).map(|j| &rows[j])))
            .collect();
        of_deaths(rows, &cats, ev)
    }

    #[test]
    fn a_death_with_no_setup_change_well_within_the_timeout_is_a_logout() {
        let rows = [
            healed(1, 0, 1, "refresh_token"),
            ok(2, 100, 1),
            died(3, 60_000, 1),
            healed(4, 60_050, 2, "refresh_token"),
            ok(5, 60_100, 2),
        ];
        let ev = evidence(
            vec![login(0, "Success"), login(60_050, "Success")],
            vec![],
            OFFSET + 400,
        );
        let c = &causes(&rows, &ev)[&3];
        assert_eq!(c.cause, "logged_out_elsewhere", "{c:?}");
        assert_eq!(c.source, "audit_log");
    }

    /// A process that died on a token another process had already replaced, and healed by
    /// adopting the newer one from the store: the other process's token request is the heal.
    #[test]
    fn a_heal_by_adoption_counts_the_request_that_made_the_token() {
        let rows = [
            healed(1, 0, 1, "refresh_token"),
            ok(2, 100, 1),
            died(3, 60_000, 1),
            healed(4, 60_050, 2, "refresh_token"),
            row(5, 60_070, "token.adopted", 1, "", json!({})),
            died(6, 60_080, 1),
            row(7, 60_090, "token.adopted", 2, "", json!({})),
        ];
        let ev = evidence(
            vec![login(0, "Success"), login(60_050, "Success")],
            vec![],
            OFFSET,
        );
        let c = causes(&rows, &ev);
        assert_eq!(c[&3].cause, "logged_out_elsewhere", "{:?}", c[&3]);
        assert_eq!(c[&6].cause, "logged_out_elsewhere", "{:?}", c[&6]);
    }

    #[test]
    fn a_death_idle_past_the_timeout_is_a_timeout() {
        let rows = [
            healed(1, 0, 1, "refresh_token"),
            ok(2, 100, 1),
            died(3, 7_300_000, 1),
            healed(4, 7_300_050, 2, "refresh_token"),
        ];
        let ev = evidence(
            vec![login(0, "Success"), login(7_300_050, "Success")],
            vec![],
            OFFSET,
        );
        assert_eq!(causes(&rows, &ev)[&3].cause, "session_timeout");
    }

    /// A revoke, its heal by the fallback grant, and a freeze 100 ms later: with the offset
    /// refined from the token requests' own rows (the measured one is 600 ms off), the revoke
    /// is the first death's cause and the freeze the second's, each from the org's row.
    #[test]
    fn adjacent_setup_changes_go_to_their_own_deaths() {
        let rows = [
            healed(1, 0, 1, "refresh_token"),
            ok(2, 100, 1),
            died(3, 10_000, 1),
            failed(4, 10_020, 1, "refresh_token", "refresh_token_revoked"),
            healed(5, 10_060, 2, "jwt_bearer"),
            ok(6, 10_100, 2),
            died(7, 10_400, 2),
            failed(8, 10_420, 2, "refresh_token", "authentication_failure"),
            failed(9, 10_440, 2, "jwt_bearer", "authentication_failure"),
            row(
                10,
                10_450,
                "reauth.required",
                2,
                "",
                json!({"cause": "authentication_failure"}),
            ),
        ];
        let ev = evidence(
            vec![
                login(0, "Success"),
                login(10_020, "Success"),
                login(10_060, "Success"),
                login(10_420, "User Is Frozen"),
                login(10_440, "User Is Frozen"),
            ],
            vec![
                setup(
                    9_900,
                    "connectedapprevoketokens",
                    "Revoked all OAuth tokens",
                ),
                setup(10_200, "frozeuser", "Froze user integration@example.com"),
            ],
            OFFSET - 600,
        );
        let (offset, slack) =
            refined_offset(&rows, ev.logins.as_deref().unwrap(), ev.offset_ms).unwrap();
        assert_eq!(offset, OFFSET);
        assert!(slack < 100, "{slack}");
        let c = causes(&rows, &ev);
        assert_eq!(c[&3].cause, "app_tokens_revoked", "{:?}", c[&3]);
        assert_eq!(c[&3].source, "org");
        assert!(
            c[&3].evidence.contains("Revoked all OAuth tokens"),
            "{:?}",
            c[&3]
        );
        for id in [7, 10] {
            assert_eq!(c[&id].cause, "user_frozen", "{:?}", c[&id]);
            assert!(c[&id].evidence.contains("Froze user"), "{:?}", c[&id]);
        }
    }

    /// A process that took up the revoked token from the store just before it was replaced
    /// dies on it a moment before the user is frozen: the revoke (before its death) is its
    /// cause, not the freeze made within the clock's uncertainty after it.
    #[test]
    fn a_change_just_after_a_death_is_not_its_cause() {
        let rows = [
            healed(1, 0, 1, "refresh_token"),
            ok(2, 100, 1),
            died(3, 200, 1),
            failed(4, 220, 1, "refresh_token", "refresh_token_revoked"),
            healed(5, 260, 2, "jwt_bearer"),
            ok(6, 300, 2),
            row(7, 310, "token.adopted", 1, "", json!({})),
            died(8, 320, 1),
            row(9, 325, "token.adopted", 2, "", json!({})),
        ];
        let ev = evidence(
            vec![
                login(0, "Success"),
                login(260, "Success"),
                login(345, "User Is Frozen"),
            ],
            vec![
                setup(150, "connectedapprevoketokens", "Revoked all OAuth tokens"),
                setup(340, "frozeuser", "Froze user integration@example.com"),
            ],
            OFFSET,
        );
        let c = causes(&rows, &ev);
        for id in [3, 8] {
            assert_eq!(c[&id].cause, "app_tokens_revoked", "{:?}", c[&id]);
        }
    }

    #[test]
    fn nothing_that_tells_is_unknown_and_says_what_was_not_checked() {
        let rows = [ok(1, 0, 1), died(2, 1_000, 1)];
        let mut ev = evidence(vec![], vec![], OFFSET);
        ev.logins = Err("reading LoginHistory failed: INVALID_TYPE".into());
        let c = &causes(&rows, &ev)[&2];
        assert_eq!((c.cause.as_str(), c.source), ("unknown", "unknown"));
        assert!(c.evidence.contains("not checked: LoginHistory"), "{c:?}");
    }

    #[test]
    fn a_diagnosis_run_during_the_death_names_it_when_nothing_else_does() {
        let rows = [ok(1, 0, 1), died(2, 1_000, 1)];
        let mut ev = evidence(vec![], vec![], OFFSET);
        let finding = sfkeep::diagnose::Finding::new(
            DiagnosisCause::UserDeactivated,
            0.9,
            vec!["User.IsActive is false".into()],
        );
        let d = Diagnosis::ranked(vec![finding], Some(false));
        ev.diagnosis = Some((UnixMillis(T + 2_000 + OFFSET), d.clone()));
        let c = &causes(&rows, &ev)[&2];
        assert_eq!(
            (c.cause.as_str(), c.source),
            ("user_deactivated", "diagnosis")
        );
        // One from before the death does not cover it.
        ev.diagnosis = Some((UnixMillis(T + 500 + OFFSET), d));
        assert_eq!(causes(&rows, &ev)[&2].cause, "unknown");
    }
}
