//! Incidents and the alerts they send: one alert when an incident opens, one more each time it
//! gets worse (a forecast crossing a tighter threshold), one "resolved" when it clears. Nothing
//! transient opens an incident: only a credential a person must fix (re-auth required, the
//! primary grant lost) or a forecast crossing a threshold.
//!
//! An alert carries the evidence and the fix and never a secret: its texts come from
//! forecasts and diagnoses, which name causes, dates and counts, and pass through
//! `redact_secrets` on the way out anyway.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sfkeep::clock::UnixMillis;

use super::forecast::{Forecast, ForecastKind, Outlook};

/// What an incident is about (serialized as its name, e.g. `jwt_certificate_expiry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentKind {
    /// No configured grant gets a token: a person must act.
    ReauthRequired,
    /// The primary grant failed for good; the fallback grant carries the integration.
    PrimaryGrantLost,
    /// A forecast crossed a threshold.
    Forecast(ForecastKind),
}

impl Serialize for IncidentKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl IncidentKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReauthRequired => "reauth_required",
            Self::PrimaryGrantLost => "primary_grant_lost",
            Self::Forecast(k) => k.as_str(),
        }
    }
}

/// Whether an alert opens (or worsens) an incident or closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Someone should act.
    Firing,
    /// It cleared.
    Resolved,
}

/// One alert, as sent to every webhook (the JSON form is this, serialized).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Unique per alert: `PROFILE/KIND/N/firing|resolved` (receivers may deduplicate on it).
    pub id: String,
    /// The incident it belongs to: `PROFILE/KIND/N`.
    pub incident: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The profile.
    pub profile: String,
    /// What it is about.
    pub kind: IncidentKind,
    /// When (server clock).
    pub at: UnixMillis,
    /// One line for people.
    pub summary: String,
    /// `sfkeep doctor`'s verdict, for re-auth and lost-grant incidents.
    pub verdict: Option<String>,
    /// Why.
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: String,
    /// The threshold crossed (`14d`, `3d`, `80%`, `4 of 5`), for forecasts.
    pub threshold: Option<String>,
    /// The forecast date, for dated forecasts.
    pub due_at: Option<UnixMillis>,
}

impl Alert {
    /// The Slack-compatible one-paragraph text.
    pub fn text(&self) -> String {
        let head = match self.status {
            AlertStatus::Firing => format!("🔴 sfkeep [{}] {}", self.profile, self.summary),
            AlertStatus::Resolved => {
                format!("✅ sfkeep [{}] resolved: {}", self.profile, self.summary)
            }
        };
        let mut out = vec![head];
        if let Some(v) = &self.verdict {
            out.push(format!("verdict: {v}"));
        }
        for e in self.evidence.iter().take(6) {
            out.push(format!("• {e}"));
        }
        if self.status == AlertStatus::Firing && !self.fix.is_empty() {
            out.push(format!("fix: {}", self.fix));
        }
        out.join("\n")
    }
}

/// How bad an open incident is (higher is worse); a forecast's level is the index of the
/// tightest threshold it is inside.
pub type Level = usize;

#[derive(Clone, Debug)]
struct Open {
    number: u64,
    level: Level,
    summary: String,
}

/// What an incident looks like now, as the guardian judges it.
#[derive(Clone, Debug)]
pub struct Observation {
    /// `None`: nothing wrong (closes the incident if open).
    pub level: Option<Level>,
    /// One line for people.
    pub summary: String,
    /// `sfkeep doctor`'s verdict.
    pub verdict: Option<String>,
    /// Why.
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: String,
    /// The threshold crossed.
    pub threshold: Option<String>,
    /// The forecast date.
    pub due_at: Option<UnixMillis>,
}

/// The open incidents of every profile, and their numbering.
#[derive(Debug, Default)]
pub struct Incidents {
    open: BTreeMap<(String, IncidentKind), Open>,
    next: BTreeMap<(String, IncidentKind), u64>,
}

/// An open incident, for the status API.
#[derive(Clone, Debug, Serialize)]
pub struct OpenIncident {
    /// `PROFILE/KIND/N`.
    pub id: String,
    /// What it is about.
    pub kind: IncidentKind,
    /// Its level.
    pub level: Level,
    /// Its last summary.
    pub summary: String,
}

impl Incidents {
    /// Applies an observation; returns the alert to send, if any.
    pub fn observe(
        &mut self,
        profile: &str,
        kind: IncidentKind,
        now: UnixMillis,
        o: Observation,
    ) -> Option<Alert> {
        let key = (profile.to_owned(), kind);
        let alert = |number: u64, status: AlertStatus, o: Observation| {
            let incident = format!("{profile}/{}/{number}", kind.as_str());
            Alert {
                id: format!(
                    "{incident}/{}/{}",
                    match status {
                        AlertStatus::Firing => "firing",
                        AlertStatus::Resolved => "resolved",
                    },
                    o.level.unwrap_or(0)
                ),
                incident,
                status,
                profile: profile.to_owned(),
                kind,
                at: now,
                summary: o.summary,
                verdict: o.verdict,
                evidence: o.evidence,
                fix: o.fix,
                threshold: o.threshold,
                due_at: o.due_at,
            }
        };
        match (self.open.get_mut(&key), o.level) {
            (None, None) => None,
            (None, Some(level)) => {
                let n = self.next.entry(key.clone()).or_insert(0);
                *n += 1;
                let number = *n;
                self.open.insert(
                    key,
                    Open {
                        number,
                        level,
                        summary: o.summary.clone(),
                    },
                );
                Some(alert(number, AlertStatus::Firing, o))
            }
            (Some(open), Some(level)) => {
                open.summary = o.summary.clone();
                if level > open.level {
                    open.level = level;
                    let number = open.number;
                    Some(alert(number, AlertStatus::Firing, o))
                } else {
                    None
                }
            }
            (Some(_), None) => {
                let open = self.open.remove(&key)?;
                let mut o = o;
                if o.summary.is_empty() {
                    o.summary = open.summary;
                }
                Some(alert(open.number, AlertStatus::Resolved, o))
            }
        }
    }

    /// Whether `kind` is open for `profile`.
    pub fn is_open(&self, profile: &str, kind: IncidentKind) -> bool {
        self.open.contains_key(&(profile.to_owned(), kind))
    }

    /// The open incidents of `profile`.
    pub fn open_for(&self, profile: &str) -> Vec<OpenIncident> {
        self.open
            .iter()
            .filter(|((p, _), _)| p == profile)
            .map(|((p, k), o)| OpenIncident {
                id: format!("{p}/{}/{}", k.as_str(), o.number),
                kind: *k,
                level: o.level,
                summary: o.summary.clone(),
            })
            .collect()
    }
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else {
        format!("{s}s")
    }
}

/// Judges a forecast against the thresholds (`dated`: largest first; `api`: percent,
/// smallest first).
pub fn judge_forecast(
    f: &Forecast,
    now: UnixMillis,
    dated: &[Duration],
    api_percent: Option<f64>,
    api: &[u8],
) -> Observation {
    let mut o = Observation {
        level: None,
        summary: String::new(),
        verdict: None,
        evidence: f.evidence.clone(),
        fix: f.fix.clone(),
        threshold: None,
        due_at: None,
    };
    match &f.outlook {
        Outlook::Dated { at } => {
            o.due_at = Some(*at);
            let left = Duration::from_millis((at.0 - now.0).max(0) as u64);
            o.summary = format!(
                "{} on {at} ({} left)",
                f.kind.title(),
                sfkeep::diagnose::evidence::human_exact(left)
            );
            for (i, t) in dated.iter().enumerate() {
                if left <= *t {
                    o.level = Some(i);
                    o.threshold = Some(short(*t));
                }
            }
            if f.kind == ForecastKind::ApiRequestsExhausted
                && let Some(p) = api_percent
            {
                // The daily limit: percent thresholds rank above the date ones.
                for (i, t) in api.iter().enumerate() {
                    if p >= f64::from(*t) {
                        o.level = Some(dated.len() + i);
                        o.threshold = Some(format!("{t}%"));
                    }
                }
                o.summary = format!("{:.0} % of the daily API requests used; {}", p, o.summary);
            }
        }
        Outlook::Count { used, limit } => {
            o.summary = format!(
                "{used} of {limit} approvals of the app by the integration user are in use"
            );
            if *used + 1 >= *limit {
                o.level = Some(used + 1 - limit);
                o.threshold = Some(format!("{used} of {limit}"));
            }
        }
        Outlook::Clear | Outlook::Unknown { .. } => {
            o.summary = f.kind.title().to_owned();
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn dated(at_days: i64) -> Forecast {
        Forecast {
            kind: ForecastKind::JwtCertificateExpiry,
            outlook: Outlook::Dated {
                at: UnixMillis(at_days * DAY),
            },
            evidence: vec!["NotAfter".into()],
            fix: "rotate".into(),
        }
    }

    fn thresholds() -> Vec<Duration> {
        super::super::settings::DEFAULT_FORECAST_THRESHOLDS.to_vec()
    }

    #[test]
    fn one_alert_per_threshold_then_one_resolved() {
        let mut inc = Incidents::default();
        let k = IncidentKind::Forecast(ForecastKind::JwtCertificateExpiry);
        let mut sent = Vec::new();
        // 20 days left, then 10 (crosses 14d), 9, 2 (crosses 3d), then a new cert.
        for (now, at) in [(0, 20), (10, 20), (11, 20), (18, 20), (19, 400)] {
            let o = judge_forecast(&dated(at), UnixMillis(now * DAY), &thresholds(), None, &[]);
            sent.extend(inc.observe("p", k, UnixMillis(now * DAY), o));
        }
        let got: Vec<(AlertStatus, Option<String>)> = sent
            .iter()
            .map(|a| (a.status, a.threshold.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (AlertStatus::Firing, Some("14d".into())),
                (AlertStatus::Firing, Some("3d".into())),
                (AlertStatus::Resolved, None)
            ]
        );
        assert_eq!(sent[0].incident, sent[2].incident);
        assert!(!inc.is_open("p", k));
        // A new incident gets a new number.
        let o = judge_forecast(&dated(30), UnixMillis(29 * DAY), &thresholds(), None, &[]);
        let a = inc.observe("p", k, UnixMillis(29 * DAY), o).unwrap();
        assert_eq!(a.incident, "p/jwt_certificate_expiry/2");
        assert_eq!(a.threshold.as_deref(), Some("1d"));
    }

    #[test]
    fn approvals_warn_at_four_of_five() {
        let f = |used| Forecast {
            kind: ForecastKind::ApprovalLimit,
            outlook: Outlook::Count { used, limit: 5 },
            evidence: vec![],
            fix: String::new(),
        };
        let j = |used| judge_forecast(&f(used), UnixMillis(0), &thresholds(), None, &[]).level;
        assert_eq!((j(3), j(4), j(5)), (None, Some(0), Some(1)));
    }

    #[test]
    fn api_usage_percent_thresholds() {
        let f = Forecast {
            kind: ForecastKind::ApiRequestsExhausted,
            outlook: Outlook::Dated {
                at: UnixMillis(100 * DAY),
            },
            evidence: vec![],
            fix: String::new(),
        };
        let o = judge_forecast(&f, UnixMillis(0), &thresholds(), Some(85.0), &[80, 95]);
        assert_eq!(o.threshold.as_deref(), Some("80%"));
        let o2 = judge_forecast(&f, UnixMillis(0), &thresholds(), Some(96.0), &[80, 95]);
        assert!(o2.level > o.level);
    }
}
