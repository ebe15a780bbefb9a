//! `sfkeep status [--json]`: the stored token's state, expiry, generation, store and
//! fingerprint. Never the token; never a request to Salesforce.

use clap::Args;
use sfkeep::clock::{Clock, SystemClock};
use sfkeep::token::TokenState;

use crate::commands::JsonFlag;
use crate::error::CliResult;
use crate::exit::Exit;
use crate::output::print_line;
use crate::session::{self, Globals};

/// `sfkeep status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    json: JsonFlag,
    /// Every profile of the config file at a glance: state, expiry, the next forecast.
    #[arg(long)]
    all: bool,
}

fn human_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

/// The state of `p`'s stored token on the server's clock, and its time left.
async fn stored_state(p: &crate::config::Profile) -> (&'static str, Option<u64>) {
    let Ok(store) = session::open_store(p) else {
        return ("unknown", None);
    };
    let rec = session::load_record(p, store.as_ref()).await.ok().flatten();
    match rec {
        None => ("missing", None),
        Some(r) => {
            let now = r.server_now(SystemClock.now());
            let state = match r.state_at(now) {
                TokenState::Fresh => "fresh",
                TokenState::Stale => "stale",
                TokenState::Expired => "expired",
            };
            (state, Some(r.remaining_at(now).as_secs()))
        }
    }
}

/// `status --all`: one line (or JSON object) per profile.
async fn all(g: &Globals, json: bool) -> CliResult<Exit> {
    let path = crate::config::locate(g.config.as_deref())?;
    let config = crate::config::Config::load(&path)?;
    let mut rows = Vec::new();
    for p in config.profiles.values() {
        let (state, left) = stored_state(p).await;
        rows.push(crate::serve::report::summary(p, state, left));
    }
    if json {
        print_line(&serde_json::json!({"profiles": rows}).to_string())?;
    } else {
        print_line(&format!(
            "{:<16} {:<16} {:<10} {:<19} next forecast",
            "profile", "state", "expires", "grant"
        ))?;
        for r in &rows {
            print_line(&crate::serve::report::summary_line(r))?;
        }
    }
    Ok(Exit::Ok)
}

/// Prints the status of the profile's stored token.
pub async fn run(g: &Globals, a: StatusArgs) -> CliResult<Exit> {
    if a.all {
        return all(g, a.json.json).await;
    }
    let p = session::load_profile(g)?;
    let store = session::open_store(&p)?;
    let rec = session::load_record(&p, store.as_ref()).await?;
    // Judged on the server's clock, as the writer of the record last measured it.
    let now = rec
        .as_ref()
        .map_or(SystemClock.now(), |r| r.server_now(SystemClock.now()));
    let state = match &rec {
        None => "missing",
        Some(r) => match r.state_at(now) {
            TokenState::Fresh => "fresh",
            TokenState::Stale => "stale",
            TokenState::Expired => "expired",
        },
    };
    let expires_in = rec.as_ref().map(|r| r.remaining_at(now).as_secs());
    let store_path = match &p.store {
        crate::config::StoreConfig::File { path, .. } => Some(path.display().to_string()),
        crate::config::StoreConfig::Redis { url, .. } => Some(crate::session::redacted_url(url)),
        crate::config::StoreConfig::Memory => None,
    };
    // The last few auth events from the audit log, when there is one (never a token: events
    // carry fingerprints only).
    let recent: Vec<crate::audit::EventRow> =
        crate::audit::AuditLog::open_existing(&crate::audit::path_for(&p))
            .ok()
            .flatten()
            .and_then(|log| {
                log.recent(&session::store_key(&p).to_string(), RECENT_EVENTS)
                    .ok()
            })
            .unwrap_or_default();
    if a.json.json {
        let v = serde_json::json!({
            "recent_events": recent.iter().map(|e| serde_json::json!({
                "at_ms": e.at, "kind": e.kind, "cause": e.cause, "generation": e.generation,
            })).collect::<Vec<_>>(),
            "profile": p.name,
            "config": p.config_path.display().to_string(),
            "state": state,
            "expires_in_secs": expires_in,
            "generation": rec.as_ref().map(|r| r.generation),
            "grant": rec.as_ref().map(|r| r.grant.as_str()),
            "expiry_source": rec.as_ref().map(|r| r.expiry_source),
            "fingerprint": rec.as_ref().map(|r| r.fingerprint()),
            "instance_url": rec.as_ref().map(|r| r.instance_url.clone()),
            "has_refresh_token": rec.as_ref().map(|r| r.refresh_token.is_some()),
            "store": store.kind(),
            "store_path": store_path,
            "store_key": session::store_key(&p).to_string(),
            "configured_instance_url": p.instance_url,
            "guardian": crate::serve::report::json_for(&p),
        });
        print_line(&v.to_string())?;
        return Ok(Exit::Ok);
    }
    let mut lines = vec![format!("profile      {}", p.describe())];
    lines.push(format!("state        {state}"));
    if let Some(r) = &rec {
        let exp = expires_in.unwrap_or(0);
        lines.push(format!(
            "expires in   {}{}",
            human_duration(exp),
            match r.expiry_source {
                sfkeep::token::ExpirySource::Introspection => " (from introspection)",
                sfkeep::token::ExpirySource::SoapSessionSecondsValid => " (from the SOAP login)",
                sfkeep::token::ExpirySource::Configured => " (assumed from the session timeout)",
            }
        ));
        lines.push(format!("generation   {}", r.generation));
        lines.push(format!("grant        {}", r.grant.as_str()));
        lines.push(format!("instance     {}", r.instance_url));
        lines.push(format!("fingerprint  {}", r.fingerprint()));
        lines.push(format!(
            "refresh tok  {}",
            if r.refresh_token.is_some() {
                "stored"
            } else {
                "none"
            }
        ));
    }
    lines.push(format!("store        {}", session::describe_store(&p)));
    if rec.is_none() {
        lines.push(match p.store {
            crate::config::StoreConfig::Memory => "note         a memory store keeps nothing between runs; set [profiles.NAME.store] kind = \"file\" to persist tokens".to_owned(),
            _ => "note         nothing stored: `sfkeep token` or `sfkeep login` gets one".to_owned(),
        });
    }
    lines.extend(crate::serve::report::lines_for(&p));
    if !recent.is_empty() {
        lines.push("recent       (audit log, newest last)".to_owned());
        for e in &recent {
            let at = sfkeep::clock::UnixMillis(e.at);
            lines.push(format!(
                "  {at}  {}{}{}",
                e.kind,
                e.cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                e.generation
                    .map(|g| format!(" gen {g}"))
                    .unwrap_or_default()
            ));
        }
    }
    print_line(&lines.join("\n"))?;
    Ok(Exit::Ok)
}

/// Events shown by `status`.
const RECENT_EVENTS: usize = 5;
