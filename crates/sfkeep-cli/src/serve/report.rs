//! What `sfkeep status` shows of the guardian: the forecasts, keep-alive and incidents that
//! `sfkeep serve` last wrote for a profile (its state file), dated, and the one-line summary
//! per profile of `status --all`. Reading only: no request to Salesforce.

use serde_json::{Value, json};
use sfkeep::clock::{Clock, SystemClock, UnixMillis};

use crate::config::Profile;

/// The guardian's last word on `p` for `status --json`, or `None` when no `sfkeep serve` has
/// watched it.
pub fn json_for(p: &Profile) -> Option<Value> {
    let (written, v) = super::guardian::read_state(p)?;
    Some(json!({
        "written_at": written,
        "written_at_iso": written.to_string(),
        "age_secs": (SystemClock.now().0 - written.0).max(0) / 1000,
        "state": v["state"],
        "forecasts": v["forecasts"],
        "keep_alive": v["keep_alive"],
        "incidents": v["incidents"],
        "diagnosis": v["diagnosis"],
        "api_usage": v["api_usage"],
    }))
}

fn forecast_line(f: &Value) -> String {
    let title = f["title"].as_str().unwrap_or("?");
    let what = match f["status"].as_str() {
        Some("dated") => format!(
            "{} ({} left)",
            f["at_iso"].as_str().unwrap_or("?"),
            sfkeep::diagnose::evidence::human_exact(std::time::Duration::from_secs(
                f["remaining_secs"].as_u64().unwrap_or(0)
            ))
        ),
        Some("count") => format!(
            "{} of {} in use",
            f["used"].as_u64().unwrap_or(0),
            f["limit"].as_u64().unwrap_or(0)
        ),
        Some("clear") => "nothing coming".to_owned(),
        _ => format!("unknown: {}", f["why"].as_str().unwrap_or("")),
    };
    format!("  {title:<44} {what}")
}

/// Text lines for `sfkeep status`.
pub fn lines_for(p: &Profile) -> Vec<String> {
    let Some((written, v)) = super::guardian::read_state(p) else {
        return vec![
            "forecasts    none yet: run `sfkeep serve` for this profile (keep-alive, forecasts, alerts)"
                .to_owned(),
        ];
    };
    let age = sfkeep::diagnose::evidence::human_exact(std::time::Duration::from_millis(
        (SystemClock.now().0 - written.0).max(0) as u64,
    ));
    let mut out = vec![format!("forecasts    (from sfkeep serve, {age} ago)")];
    for f in v["forecasts"].as_array().into_iter().flatten() {
        out.push(forecast_line(f));
    }
    if let Some(plan) = v["keep_alive"]["plan"].as_object()
        && v["keep_alive"]["enabled"] == json!(true)
    {
        out.push(format!(
            "keep-alive   next at {} (idle TTL {}, {})",
            UnixMillis(plan["due_at"].as_i64().unwrap_or(0)),
            sfkeep::diagnose::evidence::human_exact(std::time::Duration::from_secs(
                v["keep_alive"]["idle_ttl_secs"].as_u64().unwrap_or(0)
            )),
            v["keep_alive"]["idle_ttl_source"]
                .as_str()
                .unwrap_or("default 30 days")
        ));
    }
    for i in v["incidents"].as_array().into_iter().flatten() {
        out.push(format!(
            "incident     {}",
            i["summary"].as_str().unwrap_or("")
        ));
    }
    out
}

/// `status --all`: one summary per profile, from the store and the guardian's state file.
pub fn summary(p: &Profile, state: &str, expires_in: Option<u64>) -> Value {
    let g = json_for(p);
    let soonest = g
        .as_ref()
        .and_then(|g| g["forecasts"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["status"] == "dated")
        .min_by_key(|f| f["remaining_secs"].as_u64().unwrap_or(u64::MAX));
    json!({
        "profile": p.name,
        "state": state,
        "expires_in_secs": expires_in,
        "grant": p.grant.as_str(),
        "store": crate::session::describe_store(p),
        "next_forecast": soonest,
        "incidents": g.as_ref().map(|g| g["incidents"].clone()),
        "guardian_seen": g.is_some(),
    })
}

/// One text line of `status --all`.
pub fn summary_line(v: &Value) -> String {
    let next = match v["next_forecast"].as_object() {
        Some(f) => format!(
            "{} {}",
            f["kind"].as_str().unwrap_or(""),
            f["at_iso"].as_str().unwrap_or("")
        ),
        None if v["guardian_seen"] == json!(true) => "no dated forecast".to_owned(),
        None => "not watched by sfkeep serve".to_owned(),
    };
    let incidents = v["incidents"].as_array().map_or(0, Vec::len);
    format!(
        "{:<16} {:<16} {:<10} {:<19} {}{}",
        v["profile"].as_str().unwrap_or(""),
        v["state"].as_str().unwrap_or(""),
        v["expires_in_secs"]
            .as_u64()
            .map(|s| sfkeep::diagnose::evidence::human(std::time::Duration::from_secs(s)))
            .unwrap_or_else(|| "-".to_owned()),
        v["grant"].as_str().unwrap_or(""),
        next,
        if incidents > 0 {
            format!("  ({incidents} open incident(s))")
        } else {
            String::new()
        }
    )
}
