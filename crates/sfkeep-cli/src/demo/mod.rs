//! `sfkeep demo`: the story sfkeep exists for, on the embedded simulated org.
//!
//! A billing integration syncs Accounts into SQLite while the org kills its session in every
//! way Salesforce can: inactivity timeout, logout elsewhere, password change, a move to
//! another IP with sessions locked to IP, an admin revoking the app's tokens, and a frozen user
//! (the one cause that cannot heal by itself: it is diagnosed, then the script unfreezes the
//! user and recovers). 503s and connection resets are thrown in. A naive client that logs in
//! once and caches its session forever runs beside it. At the end the org and the billing
//! database are compared record by record; the demo exits 0 only if nothing was lost.

mod naive;
mod org;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sfkeep::TokenManager;
use sfkeep::client::Client;
use sfkeep::diagnose::evidence::{self, Facts, PastEvent};
use sfkeep::diagnose::{Diagnosis, DiagnosisCause};
use sfkeep::event::{AuthEvent, AuthEventKind, MemorySink};
use sfkeep::store::{MemoryStore, Store};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::sync::{self, BillingDb};
use org::DemoOrg;

/// `sfkeep demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Accounts in the simulated org.
    #[arg(long, default_value_t = 20_000)]
    pub accounts: usize,
    /// Accounts changed between two deaths.
    #[arg(long, default_value_t = 500)]
    pub changes: usize,
    /// Keep the billing database here instead of a temporary file.
    #[arg(long, value_name = "PATH")]
    pub db: Option<std::path::PathBuf>,
}

/// One line of the timeline.
#[derive(Debug, Clone, serde::Serialize)]
struct Step {
    at_ms: u64,
    event: String,
    cause: String,
    healed_by: String,
    synced: u64,
    naive_client: String,
    /// The lines printed under the row (what sfkeep said, the diagnosis, evidence, the fix).
    notes: Vec<String>,
}

/// What the demo proves.
#[derive(Debug, serde::Serialize)]
struct Report {
    timeline: Vec<Step>,
    records_in_org: usize,
    records_in_billing_db: usize,
    /// How many fields `sync --verify` compared in every row.
    verified_fields: usize,
    /// The first difference `sync --verify` found, if any.
    first_difference: Option<String>,
    lost: usize,
    stale: usize,
    duplicated: usize,
    token_requests: serde_json::Value,
    invalid_session_errors_seen_by_integration: u64,
    invalid_session_responses_at_org: u64,
    naive_client_first_failure: Option<String>,
    naive_client_soap_logins: u64,
    verdict: String,
    elapsed_ms: u64,
}

struct Run {
    org: DemoOrg,
    store: Arc<MemoryStore>,
    sink: MemorySink,
    client: Client,
    db: BillingDb,
    opts: sync::SyncOptions,
    naive: naive::NaiveClient,
    started: Instant,
    timeline: Vec<Step>,
    integration_invalid_session_errors: u64,
}

/// One line of the timeline: on stdout with the final table (the story reads as one block,
/// and `sfkeep demo > demo.txt` keeps all of it); on stderr with `--json`.
fn say(line: &str) {
    if crate::output::json() {
        eprintln!("{line}");
    } else {
        let _ = crate::output::print_line(line);
    }
}

/// The integration's token manager: refresh token first, JWT bearer as the fallback, one
/// shared store (so a manager on a new address adopts the current token).
fn build_manager(
    org: &DemoOrg,
    store: &Arc<MemoryStore>,
    sink: &MemorySink,
    bind: Option<std::net::IpAddr>,
) -> CliResult<TokenManager> {
    let info = org.info();
    let mut b = TokenManager::builder(info.login_url.clone())
        .grant(org.refresh_grant()?)
        .fallback_grant(org.jwt_grant()?)
        .store(store.clone() as Arc<dyn Store>)
        .event_sink(Arc::new(sink.clone()))
        .without_tracing_sink();
    if let Some(ip) = bind {
        b = b.http_client(bound_client(ip)?);
    }
    b.build()
        .map_err(|e| CliError::unexpected(format!("cannot build the token manager: {e}")))
}

impl Run {
    async fn sync_pass(&mut self) -> CliResult<u64> {
        match sync::sync_accounts(&self.client, &mut self.db, &self.opts, |_| {}).await {
            // Changed rows, not fetched ones: the look-back window reads recent rows again.
            Ok(s) => Ok(s.changed()),
            Err(sync::SyncError::Salesforce(e)) => {
                if e.to_string().contains("INVALID_SESSION_ID") {
                    self.integration_invalid_session_errors += 1;
                }
                Err(CliError::reauth(format!("{e}")))
            }
            Err(e) => Err(CliError::store(e.to_string())),
        }
    }

    /// Runs one chaos step: `kill` damages the session, the sync heals, the timeline records
    /// how.
    async fn step(&mut self, event: &str, cause: &str) -> CliResult<()> {
        let before = self.org.stats().await?;
        let events_before = self.sink.events().len();
        self.org.touch(self.org_changes()).await?;
        let synced = self.sync_pass().await?;
        let after = self.org.stats().await?;
        let healed_by = describe_healing(&before, &after, &self.sink.events()[events_before..]);
        let naive = self.naive.try_call(&self.org).await;
        self.record(event, cause, &healed_by, synced, naive);
        Ok(())
    }

    fn org_changes(&self) -> usize {
        self.org.changes
    }

    fn record(&mut self, event: &str, cause: &str, healed_by: &str, synced: u64, naive: String) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        say(&row(
            &format!("{:.1}s", at_ms as f64 / 1000.0),
            event,
            cause,
            healed_by,
            &synced.to_string(),
            &naive,
        ));
        self.timeline.push(Step {
            at_ms,
            event: event.into(),
            cause: cause.into(),
            healed_by: healed_by.into(),
            synced,
            naive_client: naive,
            notes: Vec::new(),
        });
    }

    /// A line under the last row, wrapped to the demo's width.
    fn note(&mut self, label: &str, text: &str) {
        let text = format!("{label}: {text}");
        for line in wrap(&text, NOTE_INDENT, WIDTH) {
            say(&line);
        }
        if let Some(step) = self.timeline.last_mut() {
            step.notes.push(text);
        }
    }
}

/// The demo's lines fit this many columns (tested): a terminal's usual 120.
pub const WIDTH: usize = 120;
/// Where notes under a row start.
const NOTE_INDENT: usize = 6;

/// One timeline row: `time event cause healed synced naive`, 120 columns at most.
fn row(time: &str, event: &str, cause: &str, healed: &str, synced: &str, naive: &str) -> String {
    format!("{time:>5} {event:<30} {cause:<20} {healed:<34} {synced:>6} {naive}")
}

/// `text` in lines of at most `width` characters, each indented by `indent` spaces, broken
/// at spaces (a word longer than a line stays whole).
fn wrap(text: &str, indent: usize, width: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    let mut cur = pad.clone();
    for word in text.split_whitespace() {
        let len = cur.chars().count();
        if len > indent && len + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut cur, pad.clone()));
        }
        if cur.chars().count() > indent {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if cur.chars().count() > indent {
        lines.push(cur);
    }
    lines
}

fn bound_client(ip: std::net::IpAddr) -> CliResult<reqwest::Client> {
    let options = sfkeep::http::ClientOptions::timeout_only(Duration::from_secs(30));
    sfkeep::http::build_client(options.local_address(Some(ip))).map_err(|e| {
        CliError::unexpected(format!("cannot build an HTTP client bound to {ip}: {e}"))
    })
}

/// "refresh (1 token request)", "JWT fallback", "retried 503s", … from the org's counters and
/// the manager's events between two points.
fn describe_healing(
    before: &serde_json::Value,
    after: &serde_json::Value,
    events: &[sfkeep::event::AuthEvent],
) -> String {
    let delta = |g: &str| {
        after["token_requests"][g].as_u64().unwrap_or(0)
            - before["token_requests"][g].as_u64().unwrap_or(0)
    };
    let fallback = events
        .iter()
        .any(|e| matches!(e.kind, AuthEventKind::FallbackUsed { .. }));
    let reactive = events
        .iter()
        .any(|e| matches!(e.kind, AuthEventKind::TokenInvalidated { .. }));
    let startup = events.iter().any(|e| {
        matches!(
            e.kind,
            AuthEventKind::TokenRefreshed {
                reason: sfkeep::event::RefreshReason::Startup,
                ..
            }
        )
    });
    let (rt, jwt) = (delta("refresh_token"), delta("jwt_bearer"));
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    match (rt, jwt, fallback) {
        (0, 0, _) => "no token request needed".into(),
        (_, j, true) if j > 0 => format!(
            "refresh refused → JWT ({} request{})",
            rt + j,
            plural(rt + j)
        ),
        (r, 0, _) if startup => format!("first login ({r} request{})", plural(r)),
        (r, 0, _) if reactive => format!("401 → refresh, replay ({r} request{})", plural(r)),
        (r, 0, _) => format!("refreshed ahead ({r} request{})", plural(r)),
        (0, j, _) => format!("JWT bearer ({j} request{})", plural(j)),
        (r, j, _) => format!("{} token request{}", r + j, plural(r + j)),
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs, explicit: &crate::session::Explicit) -> CliResult<Exit> {
    if explicit.profile || explicit.config {
        return Err(CliError::usage(
            "`sfkeep demo` runs on its own simulated org with its own credentials, so --profile and --config do not apply to it. Run it without them; to see sfkeep on your org, use `sfkeep status --verify` or `sfkeep doctor` with your profile.",
        ));
    }
    let started = Instant::now();
    say(&format!(
        "sfkeep demo: a billing sync of {} Accounts through every cause of session death,",
        args.accounts
    ));
    say("beside a naive client that logs in once with SOAP and keeps its session forever.\n");
    let mut run = Run::start(&args, started).await?;
    say(&row(
        "time",
        "event",
        "cause",
        "how sfkeep healed",
        "synced",
        "naive client",
    ));

    // The initial load.
    let before = run.org.stats().await?;
    let synced = run.sync_pass().await?;
    let after = run.org.stats().await?;
    let h = describe_healing(&before, &after, &run.sink.events());
    let naive = run.naive.try_call(&run.org).await;
    run.record("initial load", "-", &h, synced, naive);
    chaos(&mut run).await?;
    frozen_user(&mut run).await?;
    // A final pass so the billing DB holds the latest of everything.
    run.sync_pass().await?;
    finish(run, crate::output::json()).await
}

impl Run {
    async fn start(args: &DemoArgs, started: Instant) -> CliResult<Self> {
        let org = DemoOrg::start(args.accounts, args.changes).await?;
        let dir = tempfile_dir()?;
        let db_path = args.db.clone().unwrap_or_else(|| dir.join("billing.db"));
        let db = BillingDb::open(&db_path).map_err(|e| CliError::store(e.to_string()))?;
        let store = Arc::new(MemoryStore::new());
        let sink = MemorySink::new();
        let naive = naive::NaiveClient::login(&org).await?;
        let client = Client::new(build_manager(&org, &store, &sink, None)?)
            .map_err(|e| CliError::from_sfkeep(&e, "building the API client"))?;
        Ok(Run {
            client,
            org,
            store,
            sink,
            db,
            opts: sync::SyncOptions::new(
                sync::DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
            ),
            naive,
            started,
            timeline: Vec::new(),
            integration_invalid_session_errors: 0,
        })
    }
}

/// Every cause of session death that heals by itself, one after the other.
async fn chaos(run: &mut Run) -> CliResult<()> {
    // Inactivity timeout: the org's clock moves past the session timeout.
    run.org.advance(run.org.session_timeout_secs + 60).await?;
    run.step("inactivity timeout (+2h01m)", "session_timeout")
        .await?;

    run.org.logout().await?;
    run.step("logout elsewhere", "logged_out_elsewhere").await?;

    run.org
        .fault(json!({"path_prefix": "/services/data", "status": 503, "count": 2}))
        .await?;
    run.step("two 503s from a load balancer", "transient")
        .await?;

    run.org.change_password().await?;
    run.step("password changed", "password_changed").await?;

    // The integration moves to another address while sessions are locked to the IP they
    // started from: the old session dies, a refresh from the new address works.
    run.org
        .network(
            json!({"login_ip_ranges": [["127.0.0.1", "127.0.0.2"]], "lock_sessions_to_ip": true}),
        )
        .await?;
    let moved = std::net::IpAddr::from([127, 0, 0, 2]);
    run.client = Client::with_http_client(
        build_manager(&run.org, &run.store, &run.sink, Some(moved))?,
        bound_client(moved)?,
    );
    run.step("moved to 127.0.0.2, IP-locked", "ip_restricted")
        .await?;

    run.org
        .fault(json!({"path_prefix": "/services/data", "reset": true, "count": 2}))
        .await?;
    run.step("two connection resets", "transient").await?;

    run.org.revoke_app().await?;
    run.step("admin revoked the app's tokens", "app_tokens_revoked")
        .await?;
    // Calls work on the fallback, so only a warning tells a person that the refresh token is
    // dead (issue 24): what `sfkeep status` and the command's stderr say.
    if run.client.manager().status().carried_by_fallback {
        let cause = run
            .sink
            .events()
            .iter()
            .rev()
            .find_map(|e| match e.kind {
                AuthEventKind::FallbackUsed { cause } => Some(cause),
                _ => None,
            })
            .map_or("unknown", |c| c.as_str());
        run.note(
            "sfkeep warns",
            &format!(
                "the JWT fallback carries the integration; the refresh token failed ({cause}): re-authorize it (`sfkeep login`)"
            ),
        );
    }
    Ok(())
}

/// The one cause that cannot heal by itself: diagnosed, then fixed the way an admin would
/// (unfreeze, `sfkeep recover`). The evidence is read with the recovered session but printed
/// under the row it explains.
async fn frozen_user(run: &mut Run) -> CliResult<()> {
    run.org.freeze().await?;
    run.org.touch(run.org.changes).await?;
    let Err(e) = run.sync_pass().await else {
        return Err(CliError::unexpected(
            "the sync kept working for a frozen user: the simulated org is wrong",
        ));
    };
    // The token endpoint says only "authentication failure" (docs/salesforce-wire.md §2):
    // the cause is named the way `sfkeep doctor` names it.
    let d = diagnose(&run.sink.events());
    let cause = match d.verdict {
        DiagnosisCause::Healthy => DiagnosisCause::Unknown,
        v => v,
    };
    let naive = run.naive.try_call(&run.org).await;
    run.record(
        "user frozen",
        cause.as_str(),
        "cannot heal: diagnosed below",
        0,
        naive,
    );
    run.note("sfkeep says", first_sentence(&e.message));
    run.note(
        "diagnosis (as `sfkeep doctor` reads these events)",
        cause.title(),
    );

    let before = run.org.stats().await?;
    run.org.unfreeze().await?;
    let recovered = run.client.manager().force_refresh().await;
    let synced = run.sync_pass().await?;
    let after = run.org.stats().await?;
    if let Some(evidence) = login_history_evidence(&run.client).await {
        run.note("evidence", &evidence);
    }
    run.note("fix", &d.top().fix);
    run.note(
        "then",
        "the script does what the admin would: unfreeze the user, then `sfkeep recover`",
    );
    let h = match recovered {
        Ok(_) => describe_healing(&before, &after, &[]),
        Err(e) => format!("recover failed: {e}"),
    };
    let naive = run.naive.try_call(&run.org).await;
    run.record("unfrozen + recover", "-", &h, synced, naive);
    Ok(())
}

/// The LoginHistory row a person would look for, read with a working session.
async fn login_history_evidence(client: &Client) -> Option<String> {
    let rows = client
        .query(
            "SELECT LoginTime, Status, SourceIp FROM LoginHistory ORDER BY LoginTime DESC LIMIT 20",
        )
        .collect_all()
        .await
        .ok()?;
    let frozen = rows
        .iter()
        .find(|r| r["Status"].as_str() == Some("User Is Frozen"))?;
    Some(format!(
        "LoginHistory {} Status = \"User Is Frozen\" → cause user_frozen",
        frozen["LoginTime"].as_str().unwrap_or("?")
    ))
}

/// Ranks why the integration's credential is dead with `sfkeep doctor`'s rules, from the
/// integration's own auth events: the same events doctor reads back from the audit log.
fn diagnose(events: &[AuthEvent]) -> Diagnosis {
    let recent_events = events
        .iter()
        .map(|e| PastEvent {
            at: e.at,
            kind: e.kind.name().to_owned(),
            cause: match &e.kind {
                AuthEventKind::RefreshFailed { cause, .. }
                | AuthEventKind::FallbackUsed { cause }
                | AuthEventKind::ReauthRequired { cause } => Some(*cause),
                _ => None,
            },
            rotated: matches!(e.kind, AuthEventKind::TokenRefreshed { rotated: true, .. }),
            probe: false,
        })
        .collect();
    evidence::diagnose(&Facts {
        now: sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock),
        recent_events,
        ..Facts::default()
    })
}

fn first_sentence(s: &str) -> &str {
    s.split(". Fix:").next().unwrap_or(s)
}

fn tempfile_dir() -> CliResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sfkeep-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::unexpected(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

async fn finish(run: Run, json_out: bool) -> CliResult<Exit> {
    // Compare the org and the billing DB field by field: what `sfkeep sync accounts --verify` does.
    let v = sync::verify(&run.client, &run.db).await.map_err(|e| {
        CliError::transient(format!("cannot verify the billing DB against the org: {e}"))
    })?;
    let db_count = run.db.count().map_err(|e| CliError::store(e.to_string()))? as usize;
    let lost = v.lost as usize;
    // Older, different, or no longer in the org.
    let stale = (v.stale + v.differing + v.extra) as usize;
    let duplicated = db_count - v.db_rows as usize;
    let stats = run.org.stats().await?;
    let ok =
        lost == 0 && stale == 0 && duplicated == 0 && run.integration_invalid_session_errors == 0;
    let report = Report {
        records_in_org: v.org_records as usize,
        records_in_billing_db: db_count,
        verified_fields: v.fields.len(),
        first_difference: v.first_difference.clone(),
        lost,
        stale,
        duplicated,
        token_requests: stats["token_requests"].clone(),
        invalid_session_errors_seen_by_integration: run.integration_invalid_session_errors,
        invalid_session_responses_at_org: stats["invalid_session_responses"].as_u64().unwrap_or(0),
        naive_client_first_failure: run.naive.first_failure.clone(),
        naive_client_soap_logins: stats["soap_logins"].as_u64().unwrap_or(0),
        verdict: if ok {
            format!(
                "nothing lost, nothing duplicated: sync --verify finds the billing DB equal to the org in all {} fields.",
                v.fields.len()
            )
        } else {
            format!(
                "MISMATCH: the billing DB differs from the org: {}",
                v.first_difference.as_deref().unwrap_or("?")
            )
        },
        elapsed_ms: run.started.elapsed().as_millis() as u64,
        timeline: run.timeline,
    };
    if json_out {
        crate::output::set_result(serde_json::to_value(&report).unwrap_or_default());
    } else {
        for l in summary_lines(&report) {
            crate::output::print_line(&l)?;
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Unexpected })
}

/// The closing table: sfkeep against the naive client.
fn summary_lines(r: &Report) -> Vec<String> {
    let t = &r.token_requests;
    let sfkeep_requests = format!("refresh {} · jwt {}", t["refresh_token"], t["jwt_bearer"]);
    let naive_dead = if r.naive_client_first_failure.is_some() {
        "dead after the first one"
    } else {
        "0"
    };
    let line = |label: &str, ours: &str, naive: &str| {
        format!("{label:<35}{ours:<21}{naive}")
            .trim_end()
            .to_owned()
    };
    vec![
        String::new(),
        line("", "sfkeep", "naive client"),
        line(
            "records in the org",
            &r.records_in_org.to_string(),
            &r.records_in_org.to_string(),
        ),
        line(
            "records in the billing DB",
            &r.records_in_billing_db.to_string(),
            "-",
        ),
        line(
            "lost / stale / duplicated",
            &format!("{} / {} / {}", r.lost, r.stale, r.duplicated),
            "",
        ),
        line(
            "INVALID_SESSION_ID seen by the app",
            &r.invalid_session_errors_seen_by_integration.to_string(),
            naive_dead,
        ),
        line(
            "token requests",
            &sfkeep_requests,
            &format!("soap login {}", r.naive_client_soap_logins),
        ),
        line(
            "401s the org sent (all healed)",
            &r.invalid_session_responses_at_org.to_string(),
            "",
        ),
        line("time", &format!("{:.1}s", r.elapsed_ms as f64 / 1000.0), ""),
        String::new(),
        r.verdict.clone(),
    ]
}
