//! `sfkeep status [--verify]`: the stored token's state, expiry, generation, store and
//! fingerprint, who it acts as, and the profile's recent auth events. Never the token.
//!
//! Without `--verify` nothing is asked of the org: the state is a local estimate from the
//! stored expiry, and the output says so (with the last API call the audit log saw succeed
//! with this token, the nearest thing to a confirmation). The one exception is the org's time,
//! when the stored times contradict this host's clock (see [`org_now`]). `--verify` asks the org at
//! `/services/oauth2/userinfo`, healing a dead session once like any call, and reports what
//! the org said and when.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use sfkeep::clock::{Clock, ServerClock, SystemClock, UnixMillis};
use sfkeep::grant::TokenEndpoint;
use sfkeep::token::{ExpirySource, TokenRecord, TokenState};

use crate::audit::{self, AuditLog, EventRow};
use crate::config::{Profile, StoreConfig};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::identity::Identity;
use crate::output::{self, print_line};
use crate::session::{self, Globals};

/// Events shown by `status`.
const RECENT_EVENTS: usize = 5;
/// Width of the label column of the text form.
const LABEL: usize = 13;
/// How long `status` waits for the org's `Date` header.
const DATE_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The org's time as this host can tell it.
#[derive(Clone, Copy)]
struct OrgNow {
    now: UnixMillis,
    /// The org's clock minus this host's, when its `Date` header was read (else this host's
    /// clock stands for the org's).
    measured_offset_ms: Option<i64>,
}

/// The org's time, for judging a stored record. The record carries the clock offset its
/// *writer* measured; another host's clock error is not this one's (a writer 3 h fast made a
/// host with a correct clock call a timed-out session hours from expiry), so it is never
/// applied here (`docs/token-lifecycle.md`, "Clock skew"). This host's clock stands for the
/// org's unless the record contradicts it — issued in its future by more than the manager's own
/// tolerance (this clock is behind), or
/// expired by it (this clock may be ahead) — and then the org's `Date` header decides: one
/// unauthenticated `GET /services/data/`, at most [`DATE_PROBE_TIMEOUT`].
async fn org_now(p: &Profile, rec: Option<&TokenRecord>) -> OrgNow {
    let local = OrgNow {
        now: SystemClock.now(),
        measured_offset_ms: None,
    };
    let Some(r) = rec else {
        return local;
    };
    let contradicted = r.issued_at > local.now.plus(sfkeep::manager::FUTURE_ISSUE_TOLERANCE)
        || matches!(r.state_at(local.now), TokenState::Expired);
    if !contradicted {
        return local;
    }
    let Ok(ep) = TokenEndpoint::new(&p.login_url, ServerClock::new(Arc::new(SystemClock))) else {
        return local;
    };
    match tokio::time::timeout(DATE_PROBE_TIMEOUT, ep.probe_date()).await {
        Ok(true) => OrgNow {
            now: ep.clock().now(),
            measured_offset_ms: Some(ep.clock().offset()),
        },
        _ => local,
    }
}

/// `sfkeep status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Check the token with the org (`/services/oauth2/userinfo`, healing a dead session
    /// once) instead of estimating from its stored expiry.
    #[arg(long)]
    verify: bool,
    /// Every profile of the config file at a glance: state, expiry, the next forecast.
    #[arg(long, conflicts_with = "verify")]
    all: bool,
}

/// What `status` knows and how it knows it.
struct Report {
    record: Option<TokenRecord>,
    /// `missing`, `fresh`, `stale`, `expired` (estimated) or `valid` / `refused` (verified).
    state: &'static str,
    /// `Some(time)` when the org was asked.
    verified_at: Option<UnixMillis>,
    /// The org's refusal, when verifying failed.
    refusal: Option<CliError>,
    identity: Option<Identity>,
    /// The last API call the audit log saw succeed with the current generation.
    last_confirmed: Option<i64>,
    recent: Vec<EventRow>,
    /// The fallback grant carries the integration, and why the primary failed.
    fallback: Option<Fallback>,
    /// The org's time the record is judged at.
    now: OrgNow,
}

/// The stored token came from the profile's fallback grant: every call works, but the primary
/// credential is dead, and only a person can bring it back (docs/token-lifecycle.md).
struct Fallback {
    grant: &'static str,
    primary: &'static str,
    /// The cause of the audit log's last `fallback.used` event, when the log has one.
    cause: Option<String>,
}

impl Fallback {
    /// When `rec` came from `p`'s fallback grant.
    fn of(p: &Profile, rec: Option<&TokenRecord>) -> Option<Fallback> {
        let fallback = crate::killswitch::fallback(p)?;
        (rec?.grant == fallback).then(|| Fallback {
            grant: fallback.as_str(),
            primary: p.grant.as_str(),
            cause: None,
        })
    }

    fn to_json(&self) -> Value {
        json!({"grant": self.grant, "primary": self.primary, "primary_cause": self.cause})
    }

    fn text(&self) -> String {
        format!(
            "the {} fallback carries this integration: the primary {} grant failed ({}); calls work, but re-authorize the primary (`sfkeep doctor` says how)",
            self.grant,
            self.primary,
            self.cause
                .as_deref()
                .unwrap_or("cause not in the audit log")
        )
    }
}

/// The state of `p`'s stored token on the server's clock, and its time left.
async fn stored_state(p: &Profile) -> (&'static str, Option<u64>) {
    let Ok(store) = session::open_store(p) else {
        return ("unknown", None);
    };
    let rec = session::load_record(p, store.as_ref()).await.ok().flatten();
    match rec {
        None => ("missing", None),
        Some(r) => {
            let now = org_now(p, Some(&r)).await.now;
            (local_state(&r, now), Some(r.remaining_at(now).as_secs()))
        }
    }
}

/// `fresh`, `stale` or `expired` at the org's time `now`.
fn local_state(r: &TokenRecord, now: UnixMillis) -> &'static str {
    match r.state_at(now) {
        TokenState::Fresh => "fresh",
        TokenState::Stale => "stale",
        TokenState::Expired => "expired",
    }
}

/// `status --all`: one line (or JSON object) per profile.
async fn all(g: &Globals) -> CliResult<Exit> {
    let path = crate::config::locate(g.config.as_deref())?;
    let config = crate::config::Config::load(&path)?;
    let mut rows = Vec::new();
    for p in config.profiles.values() {
        let (state, left) = stored_state(p).await;
        rows.push(crate::serve::report::summary(p, state, left));
    }
    if output::json() {
        output::set_result(json!({"profiles": rows}));
        return Ok(Exit::Ok);
    }
    print_line(&format!(
        "{:<16} {:<16} {:<10} {:<19} next forecast",
        "profile", "state", "expires", "grant"
    ))?;
    for r in &rows {
        print_line(&crate::serve::report::summary_line(r))?;
    }
    Ok(Exit::Ok)
}

/// Prints the status of the profile's token.
pub async fn run(g: &Globals, a: StatusArgs) -> CliResult<Exit> {
    if a.all {
        return all(g).await;
    }
    let p = session::load_profile(g)?;
    let report = if a.verify {
        verified(&p).await?
    } else {
        estimated(&p).await?
    };
    if output::json() {
        output::set_result(to_json(&p, &report));
    } else {
        print_line(&to_text(&p, &report).join("\n"))?;
    }
    match report.refusal {
        Some(e) => Err(e),
        None => Ok(Exit::Ok),
    }
}

/// The local estimate: the stored record against the org's time (see [`org_now`]).
async fn estimated(p: &Profile) -> CliResult<Report> {
    let store = session::open_store(p)?;
    let record = session::load_record(p, store.as_ref()).await?;
    let now = org_now(p, record.as_ref()).await;
    let state = record
        .as_ref()
        .map_or("missing", |r| local_state(r, now.now));
    let identity = record.as_ref().map(|r| Identity::stored(p, r));
    Ok(history(
        p,
        Report {
            record,
            state,
            verified_at: None,
            refusal: None,
            identity,
            last_confirmed: None,
            recent: Vec::new(),
            fallback: None,
            now,
        },
    ))
}

/// Asks the org. A refusal is reported with the state it leaves (`refused`) and becomes the
/// command's error, so the exit code says what the org said.
async fn verified(p: &Profile) -> CliResult<Report> {
    let (m, store) = session::manager(p).await?;
    let client = session::api_client(p, m)?;
    let now = SystemClock.now();
    let context = format!("verifying the token of {}", p.describe());
    let (state, record, identity, refusal) = match Identity::verify(p, &client).await {
        Ok((who, rec)) => ("valid", Some(rec), Some(who), None),
        Err(e) => {
            let rec = session::load_record(p, store.as_ref()).await.ok().flatten();
            (
                "refused",
                rec,
                None,
                Some(session::grant_error(p, &e, &context)),
            )
        }
    };
    session::check_store_kept_up(p)?;
    let org_time = org_now(p, record.as_ref()).await;
    Ok(history(
        p,
        Report {
            record,
            state,
            verified_at: Some(now),
            refusal,
            identity,
            last_confirmed: None,
            recent: Vec::new(),
            fallback: None,
            now: org_time,
        },
    ))
}

/// Adds what the audit log knows: recent events, and the last call that worked with the
/// current generation (never a token: events carry fingerprints only).
fn history(p: &Profile, mut r: Report) -> Report {
    r.fallback = Fallback::of(p, r.record.as_ref());
    let Some(log) = AuditLog::open_existing(&audit::path_for(p)).ok().flatten() else {
        return r;
    };
    let scope = session::audit_scope(p);
    r.recent = log.recent(&scope, RECENT_EVENTS).unwrap_or_default();
    if let Some(f) = r.fallback.as_mut() {
        f.cause = log
            .events(&scope, 0, 0)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|e| e.kind == "fallback.used")
            .and_then(|e| e.cause.clone());
    }
    if let Some(rec) = &r.record {
        r.last_confirmed = log
            .events(&scope, 0, 0)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|e| e.kind == "api.succeeded" && e.generation == Some(rec.generation as i64))
            .map(|e| e.at);
    }
    r
}

fn to_json(p: &Profile, r: &Report) -> Value {
    let rec = r.record.as_ref();
    let now = r.now.now;
    json!({
        "profile": p.name,
        "config": p.config_path.display().to_string(),
        "state": r.state,
        "checked": if r.verified_at.is_some() { "verified" } else { "local_estimate" },
        "verified_at": r.verified_at.map(|t| audit::iso(t.0)),
        "last_confirmed_by_api_call": r.last_confirmed.map(audit::iso),
        "refusal": r.refusal.as_ref().map(|e| json!({"cause": e.cause, "message": e.message})),
        "expires_in_secs": rec.map(|r| r.remaining_at(now).as_secs()),
        "generation": rec.map(|r| r.generation),
        "grant": rec.map(|r| r.grant.as_str()),
        "expiry_source": rec.map(|r| r.expiry_source),
        "fingerprint": rec.map(|r| r.fingerprint()),
        "instance_url": rec.map(|r| r.instance_url.clone()),
        "has_refresh_token": rec.map(|r| r.refresh_token.is_some()),
        "identity": r.identity.as_ref().map(Identity::to_json),
        "store": store_kind(&p.store),
        "store_path": store_location(&p.store),
        "store_key": session::store_key(p).to_string(),
        "configured_instance_url": p.instance_url,
        "recent_events": r.recent.iter().map(EventRow::to_json).collect::<Vec<_>>(),
        "fallback": r.fallback.as_ref().map(Fallback::to_json),
        "guardian": crate::serve::report::json_for(p),
    })
}

fn store_kind(s: &StoreConfig) -> &'static str {
    match s {
        StoreConfig::Memory => "memory",
        StoreConfig::File { .. } => "file",
        StoreConfig::Redis { .. } => "redis",
    }
}

fn store_location(s: &StoreConfig) -> Option<String> {
    match s {
        StoreConfig::File { path, .. } => Some(path.display().to_string()),
        StoreConfig::Redis { url, .. } => Some(session::redacted_url(url)),
        StoreConfig::Memory => None,
    }
}

fn line(label: &str, value: impl std::fmt::Display) -> String {
    format!("{label:<LABEL$}{value}")
}

fn to_text(p: &Profile, r: &Report) -> Vec<String> {
    let mut lines = vec![line("profile", p.describe()), line("state", state_text(r))];
    if let Some(f) = &r.fallback {
        lines.push(line("warning", f.text()));
    }
    if let Some(rec) = &r.record {
        lines.extend(record_lines(rec, r.now));
    }
    if let Some(who) = &r.identity {
        lines.extend(who.lines(LABEL));
    }
    lines.push(line("store", session::describe_store(p)));
    if r.record.is_none() {
        lines.push(line("note", match p.store {
            StoreConfig::Memory => "a memory store keeps nothing between runs; set [profiles.NAME.store] kind = \"file\" to persist tokens",
            _ => "nothing stored: `sfkeep token` or `sfkeep login` gets one",
        }));
    }
    lines.extend(crate::serve::report::lines_for(p));
    if !r.recent.is_empty() {
        lines.push(line("recent", "(audit log, newest last)"));
        lines.extend(r.recent.iter().map(|e| format!("  {}", e.summary())));
    }
    lines
}

/// `fresh (local estimate …)`, `valid (verified with the org at …)`, `refused (…)`.
fn state_text(r: &Report) -> String {
    match (r.verified_at, &r.refusal) {
        (Some(at), None) => format!("{} (verified with the org at {at})", r.state),
        (Some(at), Some(e)) => format!(
            "{} (the org refused it at {at}: {})",
            r.state,
            e.cause.as_deref().unwrap_or("see below")
        ),
        (None, _) if r.record.is_none() => r.state.to_owned(),
        (None, _) => {
            let confirmed = match r.last_confirmed {
                Some(at) => format!("; an API call last worked with it at {}", UnixMillis(at)),
                None => String::new(),
            };
            format!(
                "{} (local estimate from the stored expiry, not checked with the org{confirmed}; `--verify` asks the org)",
                r.state
            )
        }
    }
}

fn record_lines(r: &TokenRecord, org: OrgNow) -> Vec<String> {
    let mut lines = record_facts(r, org.now);
    // Said only when the org's clock was read: the stored times contradicted this host's.
    if let Some(ms) = org.measured_offset_ms {
        lines.push(line(
            "clock",
            match ms {
                0 => "this host's clock agrees with the org's (its Date header)".to_owned(),
                ms => format!(
                    "this host's clock is {} {} the org's (its Date header); the expiry above is on the org's clock",
                    sfkeep::diagnose::evidence::human(Duration::from_millis(ms.unsigned_abs())),
                    if ms > 0 { "behind" } else { "ahead of" }
                ),
            },
        ));
    }
    lines
}

fn record_facts(r: &TokenRecord, now: UnixMillis) -> Vec<String> {
    let source = match r.expiry_source {
        ExpirySource::Introspection => " (from introspection)",
        ExpirySource::SoapSessionSecondsValid => " (from the SOAP login)",
        ExpirySource::Configured => " (assumed from the session timeout)",
    };
    vec![
        line(
            "expires in",
            format!(
                "{}{source}",
                sfkeep::diagnose::evidence::human(r.remaining_at(now))
            ),
        ),
        line("generation", r.generation),
        line("grant", r.grant.as_str()),
        line("fingerprint", r.fingerprint()),
        line(
            "refresh tok",
            if r.refresh_token.is_some() {
                "stored"
            } else {
                "none"
            },
        ),
    ]
}
