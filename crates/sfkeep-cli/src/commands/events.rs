//! `sfkeep events [--since 1h] [--follow] [--patterns]`: the profile's auth events from the
//! audit log, oldest first; `--follow` keeps polling the log until Ctrl-C. With `--json`, the
//! envelope's `result.events` holds them; with `--follow`, one envelope line per new event, each
//! of the same shape. `--patterns` names the patterns in the window instead (default the last
//! 24 h), with the status page's own analysis (`serve::patterns::of_profile`) on the same
//! history: the audit log, and the `LoginHistory` rows `sfkeep serve` last read.
//!
//! Each death listed (a 401, a re-auth required) shows its cause as the status page gives it
//! (`serve::death_causes`: the events of the death and its heal, the org's evidence `sfkeep
//! serve` last read, its latest diagnosis), `death_cause` in the JSON form. `--follow` prints a
//! death before its heal is known, so without one.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use sfkeep::clock::{Clock, SystemClock};

use crate::audit::{self, AuditLog, EventRow};
use crate::config::Profile;
use crate::error::CliResult;
use crate::exit::Exit;
use crate::output::{self, print_line};
use crate::serve::api::category;
use crate::serve::death_causes::{self, DeathCause, Evidence};
use crate::session::{self, Globals};
use crate::ui::Paint;

/// How often `--follow` polls the log.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// `sfkeep events` arguments.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events this recent: `90s`, `15m`, `1h`, `2d` (default: all).
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<Duration>,
    /// Keep printing new events until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Name the patterns in the window (`--since`, default 24h) instead of listing the events:
    /// token churn, refresh storms, same-hour deaths, … as the status page shows them.
    #[arg(long, conflicts_with = "follow")]
    pub patterns: bool,
}

/// The window `--patterns` looks at without `--since` (the status page's default).
const PATTERN_WINDOW: Duration = Duration::from_secs(86_400);

/// `90s`, `15m`, `1h`, `2d`, `1h30m`.
pub fn parse_since(s: &str) -> Result<Duration, String> {
    let err = || format!("`{s}` is not a duration like 90s, 15m, 1h or 2d");
    let mut total = 0u64;
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| err())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(err()),
        };
        total = total.saturating_add(n.saturating_mul(unit));
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

fn line(r: &EventRow, death: Option<&DeathCause>, p: Paint) -> String {
    let mut s = format!("{}  {:<18}", p.dim(&audit::iso(r.at)), r.kind);
    if let Some(g) = &r.grant {
        s.push_str(&format!(" grant={g}"));
    }
    if let Some(g) = r.generation {
        s.push_str(&format!(" gen={g}"));
    }
    if let Some(f) = &r.fingerprint {
        s.push_str(&format!(" token={f}"));
    }
    if let Some(c) = &r.cause {
        s.push_str(&format!(" cause={}", p.red(c)));
    }
    for (k, v) in r.detail() {
        let v = v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        s.push_str(&format!(" {k}={v}"));
    }
    if r.is_doctor_probe() {
        // doctor's own test refresh: real traffic at the org, but not the integration's.
        s.push_str(&p.dim(" (doctor probe)"));
    }
    if let Some(d) = death {
        s.push_str(&format!(
            "\n    death cause: {} ({}: {})",
            p.red(&d.cause),
            d.source,
            d.evidence
        ));
    }
    s
}

/// The causes of the deaths among `rows`, as the status page gives them.
fn death_causes(p: &Profile, rows: &[EventRow]) -> BTreeMap<i64, DeathCause> {
    let categories: Vec<&str> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| category(r, i.checked_sub(1).map(|j| &rows[j])))
        .collect();
    if !categories.iter().any(|c| death_causes::is_death(c)) {
        return BTreeMap::new();
    }
    death_causes::of_deaths(rows, &categories, &Evidence::from_state_file(p))
}

fn print_rows(rows: &[EventRow], causes: &BTreeMap<i64, DeathCause>, p: Paint) -> CliResult<()> {
    for r in rows {
        print_line(&line(r, causes.get(&r.id), p))?;
    }
    Ok(())
}

fn rows_json(rows: &[EventRow], causes: &BTreeMap<i64, DeathCause>) -> serde_json::Value {
    serde_json::json!({"events": rows.iter().map(|r| {
        let mut v = r.to_json();
        if let (Some(d), Some(o)) = (causes.get(&r.id), v.as_object_mut()) {
            o.insert("death_cause".into(), serde_json::json!(d));
        }
        v
    }).collect::<Vec<_>>()})
}

/// `--patterns`: the patterns of the window, as the status page names them.
async fn patterns(g: &Globals, since: Option<Duration>) -> CliResult<Exit> {
    use crate::serve::{guardian, patterns};
    let p = session::load_profile(g)?;
    let scope = session::audit_scope(&p);
    let window = since.unwrap_or(PATTERN_WINDOW);
    let now = SystemClock.now().0 + 1;
    let from = now - window.as_millis() as i64;
    let rows = match AuditLog::open_existing(&audit::path_for(&p)).map_err(|e| e.into_cli())? {
        Some(log) => log
            .events(&scope, from, 0)
            .map_err(|e| e.into_cli())?
            .into_iter()
            .filter(|r| r.at < now)
            .collect(),
        None => Vec::new(),
    };
    let logins = guardian::read_login_history(&p);
    let (found, login_note) = match &logins {
        Some(Ok((rows_l, offset))) => (
            patterns::of_profile(&p, &rows, Some(rows_l), *offset, window, now),
            None,
        ),
        other => (
            patterns::of_profile(&p, &rows, None, 0, window, now),
            Some(match other {
                Some(Err(e)) => format!("LoginHistory could not be read by sfkeep serve: {e}"),
                _ => "LoginHistory not read: no sfkeep serve has watched this profile, so the patterns that need it (deaths after IP changes, people using the integration user) are not checked".to_owned(),
            }),
        ),
    };
    let span = sfkeep::diagnose::evidence::human_exact(window);
    if output::json() {
        output::set_result(serde_json::json!({
            "window_secs": window.as_secs(),
            "events": rows.len(),
            "patterns": found,
            "login_history": login_note.as_deref().map_or_else(
                || serde_json::json!({"read": true}),
                |n| serde_json::json!({"read": false, "why": n})
            ),
        }));
        return Ok(Exit::Ok);
    }
    let paint = Paint::stdout();
    if found.is_empty() {
        print_line(&format!(
            "No pattern in the last {span} of {} ({} events).",
            p.describe(),
            rows.len()
        ))?;
    }
    for f in &found {
        print_line(&paint.bold(f.name))?;
        print_line(&format!("  {}", f.explanation))?;
        for e in &f.evidence {
            print_line(&format!("  - {e}"))?;
        }
        print_line(&format!("  what to do: {}", f.what_to_do))?;
    }
    if let Some(n) = login_note {
        print_line(&paint.dim(&n))?;
    }
    Ok(Exit::Ok)
}

/// Prints the events.
pub async fn run(g: &Globals, a: EventsArgs) -> CliResult<Exit> {
    if a.patterns {
        return patterns(g, a.since).await;
    }
    let p = session::load_profile(g)?;
    let scope = session::audit_scope(&p);
    let path = audit::path_for(&p);
    let since_ms = a
        .since
        .map(|d| SystemClock.now().0 - d.as_millis() as i64)
        .unwrap_or(i64::MIN);
    let paint = Paint::stdout();
    let mut log = AuditLog::open_existing(&path).map_err(|e| e.into_cli())?;
    if log.is_none() && !a.follow {
        if output::json() {
            output::set_result(rows_json(&[], &BTreeMap::new()));
            return Ok(Exit::Ok);
        }
        eprintln!(
            "sfkeep: no audit log yet at {}: no command has run for {}.",
            path.display(),
            p.describe()
        );
        return Ok(Exit::Ok);
    }
    let mut last_id = 0i64;
    loop {
        if log.is_none() {
            log = AuditLog::open_existing(&path).map_err(|e| e.into_cli())?;
        }
        if let Some(l) = &log {
            let rows = l
                .events(&scope, since_ms, last_id)
                .map_err(|e| e.into_cli())?;
            if let Some(r) = rows.last() {
                last_id = r.id;
            }
            let causes = if a.follow {
                BTreeMap::new()
            } else {
                death_causes(&p, &rows)
            };
            match (output::json(), a.follow) {
                (false, _) => print_rows(&rows, &causes, paint)?,
                (true, false) => output::set_result(rows_json(&rows, &causes)),
                (true, true) => {
                    for r in &rows {
                        output::emit(rows_json(std::slice::from_ref(r), &causes))?;
                    }
                }
            }
        }
        if !a.follow {
            return Ok(Exit::Ok);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Ok),
            _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses() {
        assert_eq!(parse_since("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_since("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_since("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_since("1").is_err());
        assert!(parse_since("abc").is_err());
        assert!(parse_since("").is_err());
    }
}
