//! `/metrics`: the guardian's state in the Prometheus text format (0.0.4). Labels are profile
//! names, kinds and states: never a token, a URL path or a user name.

use std::fmt::Write as _;

use serde_json::Value;

use super::guardian::Guardian;

/// A label value escaped as the text format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    out: String,
}

impl Family {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if l.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", l.join(","));
        }
    }
}

/// The whole page.
pub fn render(g: &Guardian) -> String {
    let views: Vec<(String, Value)> = g
        .watches
        .iter()
        .map(|w| (w.name.clone(), g.view(w)))
        .collect();
    let mut f = Family { out: String::new() };
    const STATES: [&str; 7] = [
        "fresh",
        "stale",
        "expired",
        "invalidated",
        "missing",
        "reauth_required",
        "unknown",
    ];
    f.head(
        "sfkeep_token_state",
        "gauge",
        "1 for the profile's current token state.",
    );
    for (name, v) in &views {
        let state = v["state"].as_str().unwrap_or("unknown");
        for s in STATES {
            f.sample(
                "sfkeep_token_state",
                &[("profile", name), ("state", s)],
                if s == state { 1.0 } else { 0.0 },
            );
        }
    }
    f.head(
        "sfkeep_token_expires_in_seconds",
        "gauge",
        "Seconds until the current access token must not be used.",
    );
    for (name, v) in &views {
        if let Some(s) = v["expires_in_secs"].as_u64() {
            f.sample(
                "sfkeep_token_expires_in_seconds",
                &[("profile", name)],
                s as f64,
            );
        }
    }
    f.head(
        "sfkeep_forecast_seconds",
        "gauge",
        "Seconds until a forecast death (refresh token, certificate, password, API limit).",
    );
    for (name, v) in &views {
        for fc in v["forecasts"].as_array().into_iter().flatten() {
            if let (Some(kind), Some(s)) = (fc["kind"].as_str(), fc["remaining_secs"].as_u64()) {
                f.sample(
                    "sfkeep_forecast_seconds",
                    &[("profile", name), ("kind", kind)],
                    s as f64,
                );
            }
        }
    }
    f.head(
        "sfkeep_approvals_used",
        "gauge",
        "Approvals of the profile's connected app by its user (the limit is 5).",
    );
    for (name, v) in &views {
        for fc in v["forecasts"].as_array().into_iter().flatten() {
            if let Some(n) = fc["used"].as_u64() {
                f.sample("sfkeep_approvals_used", &[("profile", name)], n as f64);
            }
        }
    }
    f.head(
        "sfkeep_api_requests_used_ratio",
        "gauge",
        "Daily API requests used, as a fraction of the limit.",
    );
    for (name, v) in &views {
        if let Some(p) = v["api_usage"]["percent"].as_f64() {
            f.sample(
                "sfkeep_api_requests_used_ratio",
                &[("profile", name)],
                p / 100.0,
            );
        }
    }
    f.head(
        "sfkeep_keepalives_total",
        "counter",
        "Keep-alive refreshes: `refreshed` by this process, `adopted` from another.",
    );
    for (name, v) in &views {
        for outcome in ["refreshed", "adopted"] {
            f.sample(
                "sfkeep_keepalives_total",
                &[("profile", name), ("outcome", outcome)],
                v["keep_alive"][outcome].as_u64().unwrap_or(0) as f64,
            );
        }
    }
    f.head(
        "sfkeep_guardian_checks_total",
        "counter",
        "Checks the guardian completed.",
    );
    for (name, v) in &views {
        f.sample(
            "sfkeep_guardian_checks_total",
            &[("profile", name)],
            v["checks"].as_u64().unwrap_or(0) as f64,
        );
    }
    f.head(
        "sfkeep_incidents_open",
        "gauge",
        "Open incidents (re-auth required, primary grant lost, forecasts past a threshold).",
    );
    for (name, v) in &views {
        f.sample(
            "sfkeep_incidents_open",
            &[("profile", name)],
            v["incidents"].as_array().map_or(0, Vec::len) as f64,
        );
    }
    let alerts = sfkeep::sync::lock(&g.alerts).clone();
    f.head(
        "sfkeep_alerts_total",
        "counter",
        "Alerts raised (firing and resolved), by profile and kind.",
    );
    let mut counts: std::collections::BTreeMap<(String, &str, &str), u64> = Default::default();
    for a in &alerts {
        let status = match a.status {
            super::alerts::AlertStatus::Firing => "firing",
            super::alerts::AlertStatus::Resolved => "resolved",
        };
        *counts
            .entry((a.profile.clone(), a.kind.as_str(), status))
            .or_default() += 1;
    }
    for ((p, k, s), n) in counts {
        f.sample(
            "sfkeep_alerts_total",
            &[("profile", &p), ("kind", k), ("status", s)],
            n as f64,
        );
    }
    let hooks = sfkeep::sync::lock(&g.webhooks).stats();
    f.head(
        "sfkeep_webhook_deliveries_total",
        "counter",
        "Webhook deliveries by receiver (scheme, host and port) and outcome.",
    );
    for h in &hooks {
        for (outcome, n) in [
            ("delivered", h.delivered),
            ("failed_attempt", h.failed_attempts),
            ("dropped", h.dropped),
        ] {
            f.sample(
                "sfkeep_webhook_deliveries_total",
                &[("target", &h.target), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    f.head(
        "sfkeep_webhook_pending",
        "gauge",
        "Alerts waiting for a receiver.",
    );
    for h in &hooks {
        f.sample(
            "sfkeep_webhook_pending",
            &[("target", &h.target)],
            h.pending as f64,
        );
    }
    f.out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
