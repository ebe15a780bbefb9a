//! The guardian: one watch per profile, each checking on a schedule.
//!
//! Every check, in order (server clock throughout, measured from the org's `Date` header):
//!
//! 1. the time: an unauthenticated `GET /services/data/` (no token, no API request counted);
//! 2. the stored record, and the keep-alive when its refresh token nears its idle TTL; a newer
//!    fresh record another process stored is adopted when the watch's own token is no longer
//!    live (no token request);
//! 3. the token: with a live one, `userinfo` through the healing client (a dead session is
//!    healed now, not on the integration's next call; a dead credential raises `ReauthRequired`);
//! 4. every `org_check_interval`, with a live token only (reading the org never costs a token
//!    request, and the reads are not recorded as the integration's calls): `User`,
//!    `OauthToken`, `LoginHistory` and `/limits`;
//! 5. the forecasts, and the incidents they open or close;
//! 6. the state file `sfkeep status` reads.
//!
//! The manager's events arrive on a channel: `reauth.required` opens a re-auth incident, a token
//! obtained with the fallback grant after the primary one failed opens a lost-grant incident;
//! both alert with `sfkeep doctor`'s verdict, evidence and fix, and close when a token from the
//! primary grant is obtained or stored (`sfkeep recover`).

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use sfkeep::TokenManager;
use sfkeep::clock::{Clock, SystemClock, UnixMillis};
use sfkeep::diagnose::Cause;
use sfkeep::event::{AuthEvent, AuthEventKind, EventSink};
use sfkeep::manager::TokenStatus;
use sfkeep::store::Store;
use sfkeep::sync::{lock, read, write};
use sfkeep::token::{TokenRecord, TokenState};
use tokio::sync::mpsc;

use super::alerts::{Alert, IncidentKind, Incidents, Observation, judge_forecast};
use super::forecast::{self, ApiUsage, Forecast, ForecastKind};
use super::keepalive;
use super::orgfacts::{self, OrgFacts};
use super::settings::{ProfileGuardian, ServeSettings};
use super::webhook::Webhooks;
use crate::config::{GrantName, Profile};
use crate::error::CliResult;
use crate::session::{self, Globals};

/// Alerts kept for the status page.
const RECENT_ALERTS: usize = 500;
/// API usage samples kept per profile.
const API_SAMPLES: usize = 288;

/// Hands the manager's events to the watch without blocking the token path, and counts the
/// token requests this process made.
#[derive(Debug)]
struct WatchSink {
    events: mpsc::UnboundedSender<AuthEvent>,
    refreshes: Arc<AtomicU64>,
}

impl EventSink for WatchSink {
    fn emit(&self, event: &AuthEvent) {
        if matches!(event.kind, AuthEventKind::TokenRefreshed { .. }) {
            self.refreshes.fetch_add(1, Ordering::AcqRel);
        }
        let _ = self.events.send(event.clone());
    }
}

/// The latest diagnosis of a profile, as `sfkeep doctor` gave it.
#[derive(Clone, Debug, Serialize)]
pub struct DiagnosisView {
    /// When (server clock).
    pub at: UnixMillis,
    /// Why it ran.
    pub trigger: String,
    /// The diagnosis (redacted).
    pub diagnosis: sfkeep::diagnose::Diagnosis,
}

/// What the keep-alive has done.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KeepAliveView {
    /// On for this profile.
    pub enabled: bool,
    /// The idle TTL.
    pub idle_ttl_secs: u64,
    /// Where the idle TTL came from: "profile" (`refresh_token_idle_ttl`), "learned" (an
    /// observed death by the idle policy, see `learned`) or "default 30 days".
    pub idle_ttl_source: &'static str,
    /// The idle TTL learned from an observed death, with its evidence.
    pub learned: Option<keepalive::Learned>,
    /// The margin.
    pub margin_secs: u64,
    /// The schedule of the stored record.
    pub plan: Option<keepalive::Plan>,
    /// Keep-alives this process made (token requests).
    pub refreshed: u64,
    /// Keep-alives another process had already done (adopted).
    pub adopted: u64,
    /// The last keep-alive (server clock).
    pub last_at: Option<UnixMillis>,
    /// Why the last one failed, if it did.
    pub last_error: Option<String>,
    /// Why there is no schedule, if there is none.
    pub note: Option<String>,
}

/// The mutable state of one watch.
#[derive(Debug)]
pub struct WatchState {
    /// Checks completed.
    pub checks: u64,
    /// When the last check completed (server clock).
    pub last_check_at: Option<UnixMillis>,
    /// Whether the org answered the last time probe, or why not.
    pub org_reachable: Result<(), String>,
    /// The last token probe's outcome.
    pub token_probe: Option<String>,
    /// Keep-alive.
    pub keep_alive: KeepAliveView,
    /// The last org read.
    pub org: Result<OrgFacts, String>,
    /// API usage samples, oldest first.
    pub api_samples: VecDeque<ApiUsage>,
    /// The forecasts of the last check.
    pub forecasts: Vec<Forecast>,
    /// The JWT certificate's NotAfter.
    pub cert: Option<Result<UnixMillis, String>>,
    /// The latest diagnosis.
    pub diagnosis: Option<DiagnosisView>,
    /// A fallback grant carried the last refresh after the primary failed with this cause.
    pub primary_lost: Option<Cause>,
    /// The primary grant failed with this cause and the fallback is being tried.
    pending_fallback: Option<Cause>,
    /// Re-auth required since (server clock), with the cause.
    pub reauth: Option<(UnixMillis, Cause)>,
    /// The record the store held at the last check (to judge an adopted token by its own
    /// expiry: see [`Watch::token_state`]).
    stored: Option<TokenRecord>,
    /// The incidents a diagnosis is running for (one per kind: a re-auth incident is not
    /// lost while a diagnosis of the lost primary grant still runs).
    diagnosing: BTreeSet<IncidentKind>,
    /// The refresh token's last use and when it was found dead (a revoked-or-expired refresh
    /// token), until the diagnosis tells whether the idle policy killed it.
    refresh_death: Option<(UnixMillis, UnixMillis)>,
}

impl WatchState {
    /// A refresh token found revoked or expired: remember its last use (from the keep-alive
    /// schedule of the stored record) and when, for [`Self::learn_idle_ttl`].
    fn note_refresh_death(&mut self, cause: Cause, now: UnixMillis) {
        if cause == Cause::RefreshTokenRevoked
            && let Some(p) = self.keep_alive.plan
        {
            self.refresh_death = Some((p.last_use, now));
        }
    }

    /// Once the diagnosis says the idle policy killed the refresh token, the gap between its
    /// last use and its death bounds the policy's TTL: learn it (a shorter one replaces a
    /// longer one). Used only when the profile sets no `refresh_token_idle_ttl`.
    fn learn_idle_ttl(&mut self, verdict: Option<&str>) {
        const IDLE_DEATH: &str = "refresh_token_expired_by_policy";
        let Some((last_use, died_at)) = self.refresh_death else {
            return;
        };
        if verdict != Some(IDLE_DEATH) {
            return;
        }
        self.refresh_death = None;
        if let Some(l) = keepalive::Learned::from_death(last_use, died_at, IDLE_DEATH)
            && self
                .keep_alive
                .learned
                .as_ref()
                .is_none_or(|old| l.idle_ttl_secs < old.idle_ttl_secs)
        {
            self.keep_alive.learned = Some(l);
        }
    }
}

/// One watched profile.
pub struct Watch {
    /// The profile's name.
    pub name: String,
    profile: RwLock<Profile>,
    /// Its guardian keys, parsed.
    keys: RwLock<ProfileGuardian>,
    /// Its token manager (shared with a proxy in the same process).
    pub manager: TokenManager,
    store: Arc<dyn Store>,
    client: sfkeep::client::Client,
    http: reqwest::Client,
    /// Token requests its manager made.
    refreshes: Arc<AtomicU64>,
    /// Its state.
    pub state: Mutex<WatchState>,
}

impl Watch {
    /// The profile's token store (what `/healthz` reads).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("name", &self.name).finish()
    }
}

/// All watches, the incidents and the alert senders.
pub struct Guardian {
    /// The settings (reloaded on SIGHUP).
    pub settings: RwLock<ServeSettings>,
    /// The config file.
    pub config_path: PathBuf,
    /// One per profile, in the settings' order.
    pub watches: Vec<Arc<Watch>>,
    /// Open incidents.
    pub incidents: Mutex<Incidents>,
    /// Alert delivery.
    pub webhooks: Mutex<Webhooks>,
    /// Alerts sent, newest last.
    pub alerts: Mutex<VecDeque<Alert>>,
    /// When it started (local clock).
    pub started_at: UnixMillis,
}

impl std::fmt::Debug for Guardian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guardian")
            .field("watches", &self.watches)
            .finish()
    }
}

/// How long the guardian keeps trying a store that does not answer at start-up.
const STORE_START_PATIENCE: Duration = Duration::from_secs(30);

/// The profile's manager and store. A store that fails at start-up (Redis restarting, a busy
/// machine) is tried again for [`STORE_START_PATIENCE`] before the guardian gives up: a
/// long-running process should not die of a blip a second later would not see.
async fn open_manager(
    p: &Profile,
    sink: &Arc<dyn EventSink>,
) -> CliResult<(TokenManager, Arc<dyn Store>)> {
    let deadline = tokio::time::Instant::now() + STORE_START_PATIENCE;
    let mut pause = Duration::from_millis(200);
    loop {
        match session::manager_observed(p, std::slice::from_ref(sink)).await {
            Err(e)
                if e.exit == crate::exit::Exit::Store && tokio::time::Instant::now() < deadline =>
            {
                eprintln!("sfkeep serve: {}; trying again", e.message);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// The HTTP client for the time probe and webhooks.
pub fn http_client() -> CliResult<reqwest::Client> {
    let options = sfkeep::http::ClientOptions::new(Duration::from_secs(10), Duration::from_secs(3))
        .local_address(crate::net::bind_address())
        .no_redirects();
    sfkeep::http::build_client(options)
        .map_err(|e| crate::error::CliError::unexpected(format!("{e}.")))
}

impl Guardian {
    /// Builds a watch per profile (managers, stores) and the webhook senders. Nothing runs yet.
    pub async fn build(
        settings: ServeSettings,
        config_path: PathBuf,
        profiles: Vec<Profile>,
    ) -> CliResult<(Arc<Self>, Vec<mpsc::UnboundedReceiver<AuthEvent>>)> {
        let http = http_client()?;
        let mut watches = Vec::new();
        let mut receivers = Vec::new();
        for p in profiles {
            let keys = ProfileGuardian::parse(
                &p.guardian,
                &format!("profiles.{}", p.name),
                &p.config_path,
            )?;
            let (tx, rx) = mpsc::unbounded_channel();
            let refreshes = Arc::new(AtomicU64::new(0));
            let sink: Arc<dyn EventSink> = Arc::new(WatchSink {
                events: tx,
                refreshes: Arc::clone(&refreshes),
            });
            let (manager, store) = open_manager(&p, &sink).await?;
            // Its org reads are not the integration's calls: they must not fill the audit
            // log with successes or move the last successful call doctor reports.
            let client = session::api_client(&p, manager.clone())?.without_success_events();
            watches.push(Arc::new(Watch {
                name: p.name.clone(),
                profile: RwLock::new(p),
                keys: RwLock::new(keys),
                manager,
                store,
                client,
                http: http.clone(),
                refreshes,
                state: Mutex::new(WatchState {
                    checks: 0,
                    last_check_at: None,
                    org_reachable: Ok(()),
                    token_probe: None,
                    keep_alive: KeepAliveView::default(),
                    org: Err("the org has not been read yet".to_owned()),
                    api_samples: VecDeque::new(),
                    forecasts: Vec::new(),
                    cert: None,
                    diagnosis: None,
                    primary_lost: None,
                    pending_fallback: None,
                    reauth: None,
                    stored: None,
                    diagnosing: BTreeSet::new(),
                    refresh_death: None,
                }),
            }));
            receivers.push(rx);
        }
        let webhooks = Webhooks::start(&settings.webhooks, http);
        let g = Arc::new(Self {
            settings: RwLock::new(settings),
            config_path,
            watches,
            incidents: Mutex::new(Incidents::default()),
            webhooks: Mutex::new(webhooks),
            alerts: Mutex::new(VecDeque::new()),
            started_at: SystemClock.now(),
        });
        Ok((g, receivers))
    }

    /// Starts each watch's loop.
    pub fn spawn(self: &Arc<Self>, receivers: Vec<mpsc::UnboundedReceiver<AuthEvent>>) {
        for (w, rx) in self.watches.iter().zip(receivers) {
            tokio::spawn(Arc::clone(self).watch_loop(Arc::clone(w), rx));
        }
    }

    /// The settings now.
    pub fn settings(&self) -> ServeSettings {
        read(&self.settings).clone()
    }

    /// Applies a reloaded config: settings, webhooks, and each watched profile's guardian
    /// keys. Credentials and stores stay as they are (a restart changes those).
    pub fn reload(&self, settings: ServeSettings, profiles: &[Profile]) -> Vec<String> {
        let mut notes = Vec::new();
        let http = http_client().ok();
        if let Some(http) = http {
            *lock(&self.webhooks) = Webhooks::start(&settings.webhooks, http);
        }
        for w in &self.watches {
            match profiles.iter().find(|p| p.name == w.name) {
                Some(p) => {
                    let mut cur = write(&w.profile);
                    if cur.login_url != p.login_url
                        || cur.client_id != p.client_id
                        || cur.grant != p.grant
                        || cur.store != p.store
                    {
                        notes.push(format!(
                            "profile `{}`: its login URL, client id, grant or store changed; restart sfkeep serve to use them",
                            w.name
                        ));
                    }
                    match ProfileGuardian::parse(
                        &p.guardian,
                        &format!("profiles.{}", p.name),
                        &p.config_path,
                    ) {
                        Ok(k) => {
                            *write(&w.keys) = k;
                            cur.guardian = p.guardian.clone();
                        }
                        Err(e) => notes.push(format!(
                            "profile `{}` keeps its previous guardian keys: {}",
                            w.name, e.message
                        )),
                    }
                }
                None => notes.push(format!(
                    "profile `{}` is gone from the config; it stays watched until a restart",
                    w.name
                )),
            }
        }
        *write(&self.settings) = settings;
        notes
    }

    /// Sends `alert` to every webhook and keeps it for the page.
    fn send(&self, alert: Alert) {
        let alert = redact_alert(alert);
        lock(&self.webhooks).send(&alert);
        let mut a = lock(&self.alerts);
        if a.len() >= RECENT_ALERTS {
            a.pop_front();
        }
        a.push_back(alert);
    }

    fn observe(&self, profile: &str, kind: IncidentKind, now: UnixMillis, o: Observation) {
        let alert = lock(&self.incidents).observe(profile, kind, now, o);
        if let Some(a) = alert {
            self.send(a);
        }
    }

    async fn watch_loop(
        self: Arc<Self>,
        w: Arc<Watch>,
        mut events: mpsc::UnboundedReceiver<AuthEvent>,
    ) {
        // The first token: a profile that cannot get one is watched all the same (its
        // re-auth incident opens from the event).
        let _ = w.manager.token().await;
        loop {
            self.check(&w).await;
            let every = self.settings().check_interval;
            let sleep = tokio::time::sleep(every);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    ev = events.recv() => match ev {
                        Some(ev) => self.on_event(&w, ev),
                        None => {
                            sleep.as_mut().await;
                            break;
                        }
                    },
                }
            }
        }
    }

    fn on_event(self: &Arc<Self>, w: &Arc<Watch>, ev: AuthEvent) {
        let primary = read(&w.profile).grant.kind();
        let now = w.manager.server_clock().now();
        match ev.kind {
            AuthEventKind::ReauthRequired { cause } => {
                {
                    let mut st = w.lock();
                    st.note_refresh_death(cause, now);
                    st.pending_fallback = None;
                    if st.reauth.is_none() {
                        st.reauth = Some((now, cause));
                    }
                }
                self.diagnose_and_alert(w, IncidentKind::ReauthRequired, cause);
            }
            AuthEventKind::FallbackUsed { cause } => {
                let mut st = w.lock();
                st.note_refresh_death(cause, now);
                st.pending_fallback = Some(cause);
            }
            AuthEventKind::TokenRefreshed { .. } | AuthEventKind::TokenAdopted => {
                let from_primary = ev.grant == Some(primary);
                let lost = {
                    let mut st = w.lock();
                    st.reauth = None;
                    let lost = st.pending_fallback.take();
                    if from_primary {
                        st.primary_lost = None;
                    } else if let Some(c) = lost {
                        st.primary_lost = Some(c);
                    }
                    lost
                };
                self.resolve(
                    w,
                    IncidentKind::ReauthRequired,
                    now,
                    "a token was obtained again",
                );
                if from_primary {
                    self.resolve(
                        w,
                        IncidentKind::PrimaryGrantLost,
                        now,
                        "the primary grant works again",
                    );
                } else if let Some(cause) = lost {
                    self.diagnose_and_alert(w, IncidentKind::PrimaryGrantLost, cause);
                }
            }
            _ => {}
        }
    }

    fn resolve(&self, w: &Watch, kind: IncidentKind, now: UnixMillis, why: &str) {
        if !lock(&self.incidents).is_open(&w.name, kind) {
            return;
        }
        self.observe(
            &w.name,
            kind,
            now,
            Observation {
                level: None,
                summary: String::new(),
                verdict: None,
                evidence: vec![why.to_owned()],
                fix: String::new(),
                threshold: None,
                due_at: None,
            },
        );
    }

    /// Runs `sfkeep doctor`'s diagnosis in the background, then opens the incident with its
    /// verdict, evidence and fix (once: a running diagnosis of that kind or an open incident
    /// is enough).
    fn diagnose_and_alert(self: &Arc<Self>, w: &Arc<Watch>, kind: IncidentKind, cause: Cause) {
        {
            let mut st = w.lock();
            if st.diagnosing.contains(&kind) || lock(&self.incidents).is_open(&w.name, kind) {
                return;
            }
            st.diagnosing.insert(kind);
        }
        let me = Arc::clone(self);
        let w = Arc::clone(w);
        tokio::spawn(async move {
            let g = Globals {
                config: Some(me.config_path.clone()),
                profile: Some(w.name.clone()),
                profiles: vec![w.name.clone()],
                explicit: Default::default(),
            };
            let d = crate::diagnosis::gather_and_diagnose(&g).await;
            let now = w.manager.server_clock().now();
            let (verdict, evidence, fix, view) = match d {
                Ok(d) => {
                    let d = redact_diagnosis(d.diagnosis);
                    // With the fallback carrying the integration doctor may call the session
                    // healthy: what the incident is about is the first cause that is not.
                    let top = match kind {
                        IncidentKind::PrimaryGrantLost => d
                            .causes
                            .iter()
                            .find(|c| c.cause != sfkeep::diagnose::DiagnosisCause::Healthy)
                            .or(d.causes.first()),
                        _ => d.causes.first(),
                    }
                    .cloned();
                    (
                        Some(
                            top.as_ref()
                                .map_or(d.verdict, |c| c.cause)
                                .as_str()
                                .to_owned(),
                        ),
                        top.as_ref().map(|c| c.evidence.clone()).unwrap_or_default(),
                        top.map(|c| c.fix).unwrap_or_else(|| cause.fix().to_owned()),
                        Some(d),
                    )
                }
                Err(e) => (
                    None,
                    vec![format!(
                        "sfkeep doctor could not examine the org: {}",
                        e.message
                    )],
                    cause.fix().to_owned(),
                    None,
                ),
            };
            {
                let mut st = w.lock();
                st.diagnosing.remove(&kind);
                st.learn_idle_ttl(verdict.as_deref());
                if let Some(d) = view {
                    st.diagnosis = Some(DiagnosisView {
                        at: now,
                        trigger: kind.as_str().to_owned(),
                        diagnosis: d,
                    });
                }
                // Healed meanwhile (e.g. the fallback carried it): nothing to say.
                let still = match kind {
                    IncidentKind::ReauthRequired => st.reauth.is_some(),
                    IncidentKind::PrimaryGrantLost => st.primary_lost.is_some(),
                    IncidentKind::Forecast(_) => true,
                };
                if !still {
                    return;
                }
            }
            let summary = match kind {
                IncidentKind::ReauthRequired => format!(
                    "re-authentication required: no configured grant gets a token ({})",
                    verdict.as_deref().unwrap_or(cause.as_str())
                ),
                _ => format!(
                    "the primary grant failed ({}); the fallback grant carries the integration",
                    verdict.as_deref().unwrap_or(cause.as_str())
                ),
            };
            me.observe(
                &w.name,
                kind,
                now,
                Observation {
                    level: Some(0),
                    summary,
                    verdict,
                    evidence,
                    fix,
                    threshold: None,
                    due_at: None,
                },
            );
        });
    }

    /// One check of `w` (see the module docs).
    pub async fn check(self: &Arc<Self>, w: &Arc<Watch>) {
        let settings = self.settings();
        let profile = read(&w.profile).clone();
        let keys = read(&w.keys).clone();
        // 1. The time (asked of the instance the stored token names, else the profile's).
        let stored = session::load_record(&profile, w.store.as_ref())
            .await
            .ok()
            .flatten();
        let base = stored
            .as_ref()
            .map(|r| r.instance_url.clone())
            .or_else(|| profile.instance_url.clone())
            .unwrap_or_else(|| profile.login_url.clone());
        let reachable = w.probe_time(&base).await;
        let now = w.manager.server_clock().now();
        // 2. The keep-alive.
        let keep_alive_on =
            profile.grant == GrantName::RefreshToken && keys.keep_alive.unwrap_or(true);
        let learned = w.lock().keep_alive.learned.clone();
        let (ttl, ttl_source) = keepalive::idle_ttl(keys.idle_ttl, learned.as_ref());
        let margin = settings.margin_for(ttl);
        let plan = keepalive::plan(stored.as_ref(), ttl, margin);
        let mut ka_outcome = None;
        if keep_alive_on
            && reachable.is_ok()
            && let Some(p) = &plan
            && now >= p.due_at
        {
            ka_outcome = Some(keepalive::run(&w.manager, p, &w.refreshes).await);
        }
        let stored = match ka_outcome {
            Some(_) => session::load_record(&profile, w.store.as_ref())
                .await
                .ok()
                .flatten(),
            None => stored,
        };
        // A newer stored token from the primary grant (`sfkeep recover` in another process)
        // ends a re-auth incident even before this manager adopts it.
        self.note_recovery(w, &profile, stored.as_ref(), now);
        // A newer token another process stored (the integration's own refresh after a
        // death, `sfkeep recover`) replaces ours once ours is no longer live. Adopting it
        // costs no token request (a refresh adopts a newer usable stored record before it
        // asks for one); without it the guardian would stop probing the token and reading
        // the org as soon as its own token timed out, while the integration carries on.
        let reauth_open = w.lock().reauth.is_some();
        let m = w.manager.status();
        if !matches!(
            w.token_state(stored.as_ref(), reauth_open, now),
            TokenStatus::Fresh | TokenStatus::Stale
        ) && let Some(r) = &stored
            && !r.is_tombstone()
            && r.intent.is_none()
            && r.generation > m.generation.unwrap_or(0)
            && r.state_at(now) == TokenState::Fresh
        {
            let _ = w.manager.token().await;
        }
        // 3. The token.
        let reauth_open = w.lock().reauth.is_some();
        let fresh = w.token_state(stored.as_ref(), reauth_open, now) == TokenStatus::Fresh;
        let probe = if fresh && reachable.is_ok() {
            w.probe_token().await
        } else {
            None
        };
        // 4. The org.
        let org_due = {
            let st = w.lock();
            match &st.org {
                Ok(o) => {
                    now.0 - o.read_at.0 >= settings.org_check_interval.as_millis() as i64
                        || now.0 < o.read_at.0
                }
                Err(_) => true,
            }
        };
        let mut org_read = None;
        let mut usage = None;
        if org_due
            && reachable.is_ok()
            && w.token_state(stored.as_ref(), reauth_open, now) == TokenStatus::Fresh
        {
            let mut facts = orgfacts::read(&w.client, now).await;
            let u = orgfacts::api_usage(&w.client, now).await;
            if let (Ok(f), Err(e)) = (&mut facts, &u) {
                f.limits_error = Some(e.clone());
            }
            usage = u.ok();
            org_read = Some(facts);
        }
        let cert = keys.jwt_cert.as_deref().map(super::cert::not_after);
        // 5. Forecasts.
        let forecasts = {
            let mut st = w.lock();
            st.checks += 1;
            st.last_check_at = Some(now);
            st.stored = stored.clone();
            st.org_reachable = reachable.clone();
            if probe.is_some() {
                st.token_probe = probe;
            }
            if let Some(f) = org_read {
                // Keep the last good read when a later one fails outright.
                match (f, &st.org) {
                    (Err(e), Ok(_)) => {
                        st.token_probe = Some(format!("reading the org failed: {e}"))
                    }
                    (f, _) => st.org = f,
                }
            }
            if let Some(u) = usage {
                // A clock that jumps back starts the samples over.
                if st.api_samples.back().is_some_and(|b| b.at.0 > u.at.0) {
                    st.api_samples.clear();
                }
                st.api_samples.push_back(u);
                while st.api_samples.len() > API_SAMPLES {
                    st.api_samples.pop_front();
                }
            }
            st.keep_alive.enabled = keep_alive_on;
            st.keep_alive.idle_ttl_secs = ttl.as_secs();
            st.keep_alive.idle_ttl_source = ttl_source;
            st.keep_alive.margin_secs = margin.as_secs();
            st.keep_alive.plan = keepalive::plan(stored.as_ref(), ttl, margin);
            st.keep_alive.note = match (&st.keep_alive.plan, keep_alive_on) {
                (_, false) if profile.grant != GrantName::RefreshToken => Some(
                    "the profile's grant has no refresh token to keep alive".to_owned(),
                ),
                (_, false) => Some("keep_alive = false in the profile".to_owned()),
                (None, true) => Some(
                    "the store holds no token obtained with the refresh token (none yet, or the fallback grant carries the integration)".to_owned(),
                ),
                (Some(_), true) => None,
            };
            match ka_outcome {
                Some(Ok(keepalive::Outcome::Refreshed { .. })) => {
                    st.keep_alive.refreshed += 1;
                    st.keep_alive.last_at = Some(now);
                    st.keep_alive.last_error = None;
                }
                Some(Ok(keepalive::Outcome::Adopted { .. })) => {
                    st.keep_alive.adopted += 1;
                    st.keep_alive.last_at = Some(now);
                    st.keep_alive.last_error = None;
                }
                Some(Err(e)) => {
                    st.keep_alive.last_error = Some(sfkeep::error::redact_secrets(&e.to_string()));
                }
                None => {}
            }
            st.cert = cert.clone();
            let samples: Vec<ApiUsage> = st.api_samples.iter().copied().collect();
            let uses = |g: GrantName| profile.grant == g || profile.fallback_grant == Some(g);
            let inputs = forecast::Inputs {
                now,
                guardian: &keys,
                uses_refresh_token: profile.grant == GrantName::RefreshToken,
                uses_password: uses(GrantName::Password) || uses(GrantName::SoapLogin),
                keep_alive: keep_alive_on,
                refresh_token_last_used: st.keep_alive.plan.map(|p| p.last_use),
                learned_idle_ttl: learned.as_ref(),
                jwt_cert_not_after: cert,
                org: st.org.as_ref().map_err(Clone::clone),
                api_samples: &samples,
            };
            let f = forecast::compute(&inputs);
            st.forecasts = f.clone();
            f
        };
        for f in &forecasts {
            let api_percent = (f.kind == ForecastKind::ApiRequestsExhausted)
                .then(|| w.lock().api_samples.back().map(ApiUsage::percent_used))
                .flatten();
            let o = judge_forecast(
                f,
                now,
                &settings.forecast_thresholds,
                api_percent,
                &settings.api_usage_thresholds,
            );
            self.observe(&w.name, IncidentKind::Forecast(f.kind), now, o);
        }
        // 6. The state file.
        let view = self.view(w);
        let (logins, read_at) = self.login_history(w);
        let logins = match logins {
            Ok(rows) => json!({
                "read_at": read_at,
                "clock_offset_ms": w.manager.server_clock().offset(),
                "rows": rows,
            }),
            Err(e) => json!({"error": e}),
        };
        let setup = match self.org_evidence(w).setup {
            Ok(rows) => json!({"rows": rows}),
            Err(e) => json!({"error": e}),
        };
        write_state(&profile, &view, &logins, &setup);
    }

    fn note_recovery(
        &self,
        w: &Watch,
        profile: &Profile,
        stored: Option<&TokenRecord>,
        now: UnixMillis,
    ) {
        let Some(r) = stored else { return };
        let current = w.manager.status().generation.unwrap_or(0);
        let since = w.lock().reauth.map(|(t, _)| t);
        // A record carrying a refresh intent is a refresh declared (or settled without a
        // token) at a new generation, not a new token (docs/rotation-safety.md).
        if let Some(since) = since
            && r.generation > current
            && r.intent.is_none()
            && r.issued_at >= since.minus(Duration::from_secs(5))
        {
            w.lock().reauth = None;
            self.resolve(
                w,
                IncidentKind::ReauthRequired,
                now,
                &format!(
                    "a new token (generation {}, {} grant) was stored at {} (e.g. by `sfkeep recover`)",
                    r.generation,
                    r.grant.as_str(),
                    r.issued_at
                ),
            );
            if r.grant == profile.grant.kind() {
                w.lock().primary_lost = None;
                self.resolve(
                    w,
                    IncidentKind::PrimaryGrantLost,
                    now,
                    "a token from the primary grant was stored",
                );
            }
        }
    }

    /// The profile's document in `/api/v1/status` (and its state file).
    pub fn view(&self, w: &Watch) -> Value {
        let profile = read(&w.profile).clone();
        let m = w.manager.status();
        let now = w.manager.server_clock().now();
        let incidents = lock(&self.incidents).open_for(&w.name);
        let last_success = crate::audit::AuditLog::open_existing(&crate::audit::path_for(&profile))
            .ok()
            .flatten()
            .and_then(|log| {
                log.last_success(&session::store_key(&profile).to_string())
                    .ok()
            })
            .flatten();
        let st = w.lock();
        let state = if st.reauth.is_some() {
            "reauth_required"
        } else {
            w.token_state(st.stored.as_ref(), false, now).as_str()
        };
        let forecasts: Vec<Value> = st
            .forecasts
            .iter()
            .map(|f| {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("title".into(), json!(f.kind.title()));
                    if let Some(left) = f.remaining(now) {
                        obj.insert("remaining_secs".into(), json!(left.as_secs()));
                    }
                    if let forecast::Outlook::Dated { at } = f.outlook {
                        obj.insert("at_iso".into(), json!(at.to_string()));
                    }
                }
                v
            })
            .collect();
        let usage = st.api_samples.back().map(|u| {
            json!({
                "at": u.at, "max": u.max, "remaining": u.remaining,
                "used": u.max.saturating_sub(u.remaining),
                "percent": (u.percent_used() * 10.0).round() / 10.0,
            })
        });
        json!({
            "name": w.name,
            "state": state,
            "server_now": now,
            "server_now_iso": now.to_string(),
            "clock_offset_ms": m.clock_offset_ms,
            "generation": m.generation,
            "expires_in_secs": m.expires_in.map(|d| d.as_secs()),
            "fingerprint": m.fingerprint,
            "grant": profile.grant.as_str(),
            "fallback_grant": profile.fallback_grant.map(GrantName::as_str),
            "store": session::describe_store(&profile),
            "last_failure": m.last_failure.map(|c| c.as_str()),
            "reauth_cause": st.reauth.map(|(_, c)| c.as_str()),
            "primary_lost": st.primary_lost.map(|c| c.as_str()),
            "last_success": last_success.map(|l| json!({
                "at": l.server_at, "at_iso": UnixMillis(l.server_at).to_string(), "source_ip": l.source_ip,
            })),
            "checks": st.checks,
            "last_check_at": st.last_check_at,
            "org": {
                "reachable": st.org_reachable.is_ok(),
                "error": st.org_reachable.as_ref().err(),
                "read_at": st.org.as_ref().ok().map(|o| o.read_at),
                "error_reading": st.org.as_ref().err(),
                "token_probe": st.token_probe,
            },
            "keep_alive": st.keep_alive,
            "forecasts": forecasts,
            "api_usage": usage,
            "api_samples": st.api_samples.iter().map(|u| json!([u.at, u.max.saturating_sub(u.remaining), u.max])).collect::<Vec<_>>(),
            "diagnosis": st.diagnosis,
            "incidents": incidents,
        })
    }

    /// The login history rows of the last org read (or why there are none), and when that
    /// read was (server clock).
    pub fn login_history(
        &self,
        w: &Watch,
    ) -> (Result<Vec<orgfacts::Login>, String>, Option<UnixMillis>) {
        let st = w.lock();
        match &st.org {
            Ok(o) => (o.login_history.clone(), Some(o.read_at)),
            Err(e) => (Err(e.clone()), None),
        }
    }

    /// What the death causes of `w`'s timeline are worked out from: the last org read's
    /// `LoginHistory` and `SetupAuditTrail` rows (or why there are none), the measured clock
    /// offset, the profile's session timeout and the latest diagnosis.
    pub fn org_evidence(&self, w: &Watch) -> super::death_causes::Evidence {
        let p = read(&w.profile).clone();
        let st = w.lock();
        let (logins, setup) = match &st.org {
            Ok(o) => (o.login_history.clone(), o.setup_audit.clone()),
            Err(e) => (Err(e.clone()), Err(e.clone())),
        };
        super::death_causes::Evidence {
            logins,
            setup,
            offset_ms: w.manager.server_clock().offset(),
            session_timeout: p
                .session_timeout
                .unwrap_or(sfkeep::token::DEFAULT_SESSION_TIMEOUT),
            timeout_from_profile: p.session_timeout.is_some(),
            diagnosis: st.diagnosis.as_ref().map(|d| (d.at, d.diagnosis.clone())),
        }
    }

    /// The profile of a watch.
    pub fn profile(&self, w: &Watch) -> Profile {
        read(&w.profile).clone()
    }
}

impl Watch {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        lock(&self.state)
    }

    /// The state of the manager's token as the guardian reports it and acts on it, given
    /// the record the store holds (`stored`) and whether a re-auth incident is open.
    ///
    /// The manager reports its last re-auth failure until it makes a successful token request
    /// of its own, even after it has adopted and serves a newer token another process stored
    /// (`sfkeep recover`'s, say). Once the incident is closed and the manager serves the
    /// stored generation, fresh and not declared dead, the token is fresh.
    fn token_state(
        &self,
        stored: Option<&TokenRecord>,
        reauth_open: bool,
        now: UnixMillis,
    ) -> TokenStatus {
        let m = self.manager.status();
        if m.state != TokenStatus::ReauthRequired || reauth_open {
            return m.state;
        }
        match stored {
            Some(r)
                if !r.is_tombstone()
                    && Some(r.generation) == m.generation
                    && r.state_at(now) == TokenState::Fresh
                    // Not declared dead by a 401 (a fresh token has no side effect here).
                    && self
                        .manager
                        .cached_token()
                        .is_some_and(|t| t.generation() == r.generation) =>
            {
                TokenStatus::Fresh
            }
            _ => m.state,
        }
    }

    /// Shows the current token to `userinfo` (no API request is counted, no event recorded:
    /// the guardian's probes are not the integration's calls). A dead session is healed at
    /// once, through the manager's one shared refresh.
    async fn probe_token(&self) -> Option<String> {
        use sfkeep::diagnose::api_error::{Api, SessionVerdict, session_verdict};
        let t = self.manager.cached_token()?;
        let url = format!(
            "{}/services/oauth2/userinfo",
            t.instance_url().trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .bearer_auth(t.access_token().expose_secret())
            .send()
            .await;
        Some(match resp {
            Err(_) => "userinfo did not answer".to_owned(),
            Ok(r) => {
                if let Some(d) = r
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok())
                {
                    self.manager.observe_server_date(d);
                }
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                match session_verdict(Api::Rest, status, &body) {
                    SessionVerdict::Alive if (200..300).contains(&status) => {
                        "the token is accepted (userinfo)".to_owned()
                    }
                    SessionVerdict::Alive => format!("userinfo answered HTTP {status}"),
                    SessionVerdict::Unfixable(c) => {
                        format!(
                            "userinfo refused the token ({}): a refresh cannot fix it",
                            c.as_str()
                        )
                    }
                    // The answer's `Date` may show the org's clock past the token's expiry (a
                    // timeout, which the integration's next call heals on its own): no request
                    // for a token nobody is using.
                    SessionVerdict::Dead
                        if self.manager.status().state == sfkeep::manager::TokenStatus::Expired =>
                    {
                        "the session timed out".to_owned()
                    }
                    SessionVerdict::Dead => {
                        self.manager
                            .invalidate_if_current(t.generation(), Api::Rest);
                        match self.manager.token().await {
                            Ok(_) => "the session had died; healed with a new token".to_owned(),
                            Err(e) => format!(
                                "the session had died and no new token could be had: {}",
                                sfkeep::error::redact_secrets(&e.to_string())
                            ),
                        }
                    }
                }
            }
        })
    }

    /// Asks `base` (the instance, or the login host) for its `Date`, unauthenticated.
    async fn probe_time(&self, base: &str) -> Result<(), String> {
        let url = format!("{}/services/data/", base.trim_end_matches('/'));
        match self.http.get(&url).send().await {
            Ok(r) => {
                if let Some(d) = r
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok())
                {
                    self.manager.observe_server_date(d);
                }
                if r.status().is_server_error() {
                    Err(format!("{url} answered HTTP {}", r.status().as_u16()))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(format!(
                "{url} did not answer: {}",
                if e.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                }
            )),
        }
    }
}

/// A diagnosis with every credential-looking value of its evidence and fixes redacted
/// (evidence may quote server answers).
fn redact_diagnosis(mut d: sfkeep::diagnose::Diagnosis) -> sfkeep::diagnose::Diagnosis {
    use sfkeep::error::redact_secrets as r;
    for c in &mut d.causes {
        for e in &mut c.evidence {
            *e = r(e);
        }
        c.fix = r(&c.fix);
    }
    d
}

/// Every string of an alert through `redact_secrets` (belt and braces: alerts are built from
/// causes, dates and counts).
fn redact_alert(mut a: Alert) -> Alert {
    use sfkeep::error::redact_secrets as r;
    a.summary = r(&a.summary);
    a.fix = r(&a.fix);
    for e in &mut a.evidence {
        *e = r(e);
    }
    a
}

/// Where `sfkeep serve` leaves a profile's latest state for `sfkeep status`.
pub fn state_path(p: &Profile) -> PathBuf {
    let audit = crate::audit::path_for(p);
    let dir = audit.parent().map(Path::to_path_buf).unwrap_or_default();
    dir.join(format!("guardian-{}.json", session::store_key(p)))
}

/// Writes the state file atomically (0600: it names the org's users and apps, and holds the
/// integration user's `LoginHistory` rows for `sfkeep events --patterns` and the org's
/// `SetupAuditTrail` rows for the death causes `sfkeep events` shows).
fn write_state(p: &Profile, view: &Value, login_history: &Value, setup_audit: &Value) {
    let path = state_path(p);
    let Some(dir) = path.parent() else { return };
    let _ = std::fs::create_dir_all(dir);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("guardian"),
        std::process::id()
    ));
    let doc = json!({
        "written_at": SystemClock.now(),
        "writer_pid": std::process::id(),
        "profile": view,
        "login_history": login_history,
        "setup_audit": setup_audit,
    });
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        f.write_all(doc.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if write().is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Reads what `sfkeep serve` last wrote for `p`: `(written_at, profile view)`.
pub fn read_state(p: &Profile) -> Option<(UnixMillis, Value)> {
    let text = std::fs::read_to_string(state_path(p)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let at = UnixMillis(v.get("written_at")?.as_i64()?);
    Some((at, v.get("profile")?.clone()))
}

/// The integration user's `LoginHistory` as `sfkeep serve` last read it for `p`: the rows and
/// the clock offset then, or why there are none (`None`: no guardian has written a state).
pub fn read_login_history(p: &Profile) -> Option<Result<(Vec<orgfacts::Login>, i64), String>> {
    let text = std::fs::read_to_string(state_path(p)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let l = v.get("login_history")?;
    if let Some(e) = l.get("error").and_then(Value::as_str) {
        return Some(Err(e.to_owned()));
    }
    let rows = serde_json::from_value(l.get("rows")?.clone()).ok()?;
    let offset = l
        .get("clock_offset_ms")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Some(Ok((rows, offset)))
}

/// The org's `SetupAuditTrail` rows as `sfkeep serve` last read them for `p`, or why there are
/// none (`None`: no guardian has written a state).
pub fn read_setup_audit(p: &Profile) -> Option<Result<Vec<orgfacts::SetupChange>, String>> {
    let text = std::fs::read_to_string(state_path(p)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let l = v.get("setup_audit")?;
    if let Some(e) = l.get("error").and_then(Value::as_str) {
        return Some(Err(e.to_owned()));
    }
    Some(serde_json::from_value(l.get("rows")?.clone()).map_err(|e| e.to_string()))
}
