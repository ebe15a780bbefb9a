//! Gathering the facts `sfkeep doctor` ranks (and `sfkeep recover` explains a failure with).
//!
//! In order: the audit log (last successful call, its source address, recent events); the
//! stored token, probed at `/services/oauth2/userinfo` (which also gives the server's `Date`
//! for clock skew) and introspected when the profile has a client secret; one dry refresh per
//! grant (primary, then fallback), into memory, never replacing the stored token (except to
//! keep a rotated refresh token); and, with the first working token, SOQL on User, UserLogin,
//! LoginHistory, AuthSession, OauthToken and SetupAuditTrail. Then
//! `sfkeep::diagnose::evidence::diagnose` ranks the causes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sfkeep::clock::{Clock, SystemClock, UnixMillis, parse_http_date};
use sfkeep::diagnose::evidence::{
    self, AuditRow, Facts, GrantAttempt, LoginRow, PastEvent, TokenProbe, UserFacts,
    parse_sf_datetime,
};
use sfkeep::diagnose::{Cause, Diagnosis};
use sfkeep::store::{CasOutcome, MemoryStore, Store};
use sfkeep::token::{ExpirySource, TokenRecord};
use sfkeep::{Grant, TokenManager};

use crate::audit::{self, AuditLog};
use crate::config::{GrantName, Profile};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::{self, Globals};

/// A diagnosis and what was checked to reach it.
#[derive(Debug)]
pub struct Gathered {
    /// The ranked causes.
    pub diagnosis: Diagnosis,
    /// One line per check, for the human output.
    pub notes: Vec<String>,
}

/// The grants of a profile, primary first.
pub fn grants_of(p: &Profile) -> Vec<GrantName> {
    let mut v = vec![p.grant];
    if let Some(f) = p.fallback_grant
        && f != p.grant
    {
        v.push(f);
    }
    v
}

/// The outcome of trying one grant.
pub struct Attempt {
    /// Which grant.
    pub grant: GrantName,
    /// The manager that tried it (holding the token when it worked).
    pub manager: Option<TokenManager>,
    /// The library error, when it failed.
    pub error: Option<sfkeep::Error>,
}

impl Attempt {
    /// As evidence.
    pub fn fact(&self) -> GrantAttempt {
        GrantAttempt {
            grant: self.grant.kind(),
            outcome: match &self.error {
                None => Ok(()),
                Some(e) => Err((e.cause().unwrap_or(Cause::Unknown), detail(e))),
            },
        }
    }
}

/// What the server said, without the library's fix sentence.
pub fn detail(e: &sfkeep::Error) -> String {
    match e {
        sfkeep::Error::ReauthRequired { detail, .. } => detail.clone(),
        sfkeep::Error::TokenEndpoint { detail, status, .. } => format!("HTTP {status}: {detail}"),
        other => other.to_string(),
    }
}

/// Builds grant `name`; `Ok(None)` (with a note) when the profile cannot use it at all now
/// (e.g. no refresh token stored), a usage error when the config is broken.
pub async fn try_build_grant(
    p: &Profile,
    name: GrantName,
    store: &dyn Store,
    notes: &mut Vec<String>,
) -> CliResult<Option<Grant>> {
    match session::build_grant(p, name, store).await {
        Ok(g) => Ok(Some(g)),
        Err(e) if e.exit == Exit::ReauthRequired => {
            notes.push(format!(
                "the {} grant cannot run: {}",
                name.as_str(),
                e.message
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn server_now(offset_ms: i64) -> UnixMillis {
    UnixMillis(SystemClock.now().0 + offset_ms)
}

fn date_offset(resp: &reqwest::Response) -> Option<i64> {
    let date = resp.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    let server = parse_http_date(date)?;
    let off = server.0 + 500 - SystemClock.now().0;
    Some(if off.abs() < 2_000 { 0 } else { off })
}

/// Probes the stored token at the instance's userinfo endpoint (or, without a token, just
/// asks the login host for its `Date`).
async fn probe(
    http: &reqwest::Client,
    p: &Profile,
    rec: Option<&TokenRecord>,
) -> (TokenProbe, Option<i64>) {
    let (url, token) = match rec {
        Some(r) => (
            format!(
                "{}/services/oauth2/userinfo",
                r.instance_url.trim_end_matches('/')
            ),
            Some(r.access_token.expose_secret().to_owned()),
        ),
        None => (
            format!(
                "{}/services/oauth2/userinfo",
                p.login_url.trim_end_matches('/')
            ),
            None,
        ),
    };
    let mut req = http.get(&url);
    if let Some(t) = &token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Err(e) => (
            TokenProbe::Unreachable(format!("GET {url} failed: {e}")),
            None,
        ),
        Ok(resp) => {
            let offset = date_offset(&resp);
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(2000).collect();
            let probe = match (token.is_some(), status) {
                (false, _) => TokenProbe::Missing,
                (true, 200..=299) => TokenProbe::Alive,
                (true, _) => TokenProbe::Rejected { status, body },
            };
            (probe, offset)
        }
    }
}

/// Keeps a refresh token that rotated during a dry refresh: it is the only valid one now.
async fn keep_rotated(
    p: &Profile,
    store: &Arc<dyn Store>,
    stored: Option<&TokenRecord>,
    fresh: &TokenRecord,
    notes: &mut Vec<String>,
) {
    let Some(new_rt) = &fresh.refresh_token else {
        return;
    };
    let old = stored
        .and_then(|r| r.refresh_token.as_ref())
        .map(|r| r.expose_secret().to_owned());
    let configured = p
        .optional_secret(&p.refresh_token, "refresh_token")
        .ok()
        .flatten()
        .map(|s| s.as_str().to_owned());
    let known = old.as_deref().or(configured.as_deref());
    if known.is_some_and(|k| k == new_rt.expose_secret()) {
        return;
    }
    let key = session::store_key(p);
    let mut rec = fresh.clone();
    rec.generation = stored.map(|r| r.generation + 1).unwrap_or(1);
    let mut outcome = store
        .compare_and_set(&key, stored.map(|r| r.generation), &rec)
        .await;
    if let Ok(CasOutcome::Conflict(Some(t))) = &outcome
        && stored.is_none()
        && t.is_tombstone()
    {
        // Nothing usable was stored because of a logout: the tombstone gives way like any
        // older record.
        let expected = t.generation;
        rec.generation = expected + 1;
        outcome = store.compare_and_set(&key, Some(expected), &rec).await;
    }
    match outcome {
        Ok(CasOutcome::Written) => notes.push(format!(
            "the dry refresh rotated the refresh token; the new one is stored (generation {})",
            rec.generation
        )),
        Ok(CasOutcome::Conflict(_)) => notes.push(
            "the dry refresh rotated the refresh token, but another process wrote the store first"
                .into(),
        ),
        Err(e) => notes.push(format!(
            "the dry refresh rotated the refresh token and storing it failed: {e}"
        )),
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

/// What doctor's own reads found out besides their rows: the notes for the person, and the
/// failures that say something about the session (not valid for the REST API, the daily
/// limit used up).
struct Reads<'a> {
    notes: &'a mut Vec<String>,
    failures: Vec<(Cause, String)>,
}

async fn soql(
    client: &sfkeep::client::Client,
    q: &str,
    reads: &mut Reads<'_>,
) -> Option<Vec<Value>> {
    match client.query(q).collect_all().await {
        Ok(rows) => Some(rows),
        Err(e) => {
            let object = q
                .split(" FROM ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("?");
            reads.notes.push(format!("SOQL on {object} failed: {e}"));
            if let Some(c @ (Cause::SessionNotValidForApi | Cause::RequestLimitExceeded)) =
                e.cause()
                && !reads.failures.iter().any(|(k, _)| *k == c)
            {
                reads
                    .failures
                    .push((c, format!("SOQL on {object}: {}", detail(&e))));
            }
            None
        }
    }
}

/// Reads the org's diagnosis objects with a working token.
async fn query_org(p: &Profile, m: &TokenManager, facts: &mut Facts, notes: &mut Vec<String>) {
    let mut reads = Reads {
        notes,
        failures: Vec::new(),
    };
    read_org(p, m, facts, &mut reads).await;
    facts.own_call_failures = reads.failures;
}

async fn read_org(p: &Profile, m: &TokenManager, facts: &mut Facts, reads: &mut Reads<'_>) {
    let client = match session::api_client(p, m.clone()) {
        Ok(c) => c,
        Err(e) => {
            reads.notes.push(e.message);
            return;
        }
    };
    let user_id = match client.get_json("/services/oauth2/userinfo").await {
        Ok(v) => s(&v, "user_id").map(str::to_owned),
        Err(e) => {
            reads
                .notes
                .push(format!("userinfo with the working token failed: {e}"));
            None
        }
    };
    let Some(uid) = user_id else {
        return;
    };
    let uid = quote(&uid);
    reads.notes.push(format!("queried the org as user {uid}: User, UserLogin, LoginHistory, AuthSession, OauthToken, SetupAuditTrail"));
    let user = soql(&client, &format!("SELECT Id, Username, IsActive, LastPasswordChangeDate, LastLoginDate FROM User WHERE Id = '{uid}'"), reads).await;
    let login = soql(
        &client,
        &format!("SELECT Id, IsFrozen, LastModifiedDate FROM UserLogin WHERE UserId = '{uid}'"),
        reads,
    )
    .await;
    if let Some(u) = user.as_ref().and_then(|r| r.first()) {
        facts.user = Some(UserFacts {
            is_active: u.get("IsActive").and_then(Value::as_bool).unwrap_or(true),
            is_frozen: login
                .as_ref()
                .and_then(|r| r.first())
                .and_then(|l| l.get("IsFrozen"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            last_password_change: s(u, "LastPasswordChangeDate").and_then(parse_sf_datetime),
        });
    }
    if let Some(rows) = soql(&client, &format!("SELECT LoginTime, SourceIp, Status, LoginType, Application FROM LoginHistory WHERE UserId = '{uid}' ORDER BY LoginTime DESC LIMIT 50"), reads).await {
        facts.login_history = rows
            .iter()
            .filter_map(|r| {
                Some(LoginRow {
                    at: parse_sf_datetime(s(r, "LoginTime")?)?,
                    source_ip: s(r, "SourceIp").unwrap_or("").to_owned(),
                    status: s(r, "Status").unwrap_or("").to_owned(),
                })
            })
            .collect();
    }
    if let Some(rows) = soql(&client, &format!("SELECT Id, SourceIp, LastModifiedDate, NumSecondsValid FROM AuthSession WHERE UsersId = '{uid}'"), reads).await {
        facts.auth_sessions = Some(rows.len());
    }
    if let Some(rows) = soql(
        &client,
        &format!(
            "SELECT AppName, UseCount, LastUsedDate, CreatedDate FROM OauthToken WHERE UserId = '{uid}'"
        ),
        reads,
    )
    .await
    {
        facts.oauth_tokens = Some(rows.len());
        facts.approvals = Some(
            rows.iter()
                .filter_map(|r| {
                    Some((
                        s(r, "AppName").unwrap_or("").to_owned(),
                        parse_sf_datetime(s(r, "CreatedDate")?)?,
                    ))
                })
                .collect(),
        );
    }
    let audit = soql(&client, "SELECT Action, Display, Section, CreatedDate FROM SetupAuditTrail ORDER BY CreatedDate DESC LIMIT 100", reads).await;
    // Absence claims ("no freeze shows") only from reads that succeeded.
    facts.org_queried = user.is_some() && login.is_some() && audit.is_some();
    if let Some(rows) = audit {
        facts.setup_audit = rows
            .iter()
            .filter_map(|r| {
                Some(AuditRow {
                    at: parse_sf_datetime(s(r, "CreatedDate")?)?,
                    action: s(r, "Action").unwrap_or("").to_owned(),
                    display: s(r, "Display").unwrap_or("").to_owned(),
                })
            })
            .collect();
    }
}

/// The audit-log facts of `p`: last success and recent events. A log from a newer sfkeep is
/// an error (doctor refuses to guess).
pub fn audit_facts(p: &Profile, facts: &mut Facts, notes: &mut Vec<String>) -> CliResult<()> {
    let path = audit::path_for(p);
    let Some(log) = AuditLog::open_existing(&path).map_err(|e| e.into_cli())? else {
        notes.push(format!("no audit log yet at {}", path.display()));
        return Ok(());
    };
    let scope = session::audit_scope(p);
    match log.last_success(&scope.store_key) {
        Ok(Some(l)) => {
            facts.last_success_at = Some(UnixMillis(l.server_at));
            facts.last_success_source_ip = l.source_ip.clone();
            notes.push(format!(
                "audit log {}: last successful call {} ago{}",
                path.display(),
                evidence::human(Duration::from_millis(
                    (SystemClock.now().0 - l.at).max(0) as u64
                )),
                l.source_ip
                    .map(|ip| format!(" from {ip}"))
                    .unwrap_or_default()
            ));
        }
        Ok(None) => notes.push(format!(
            "audit log {}: no successful API call recorded",
            path.display()
        )),
        Err(e) => notes.push(e.to_string()),
    }
    let week = SystemClock.now().0 - 7 * 86_400_000;
    if let Ok(rows) = log.events(&scope, week, 0) {
        facts.recent_events = rows
            .iter()
            .map(|r| PastEvent {
                at: UnixMillis(r.at),
                kind: r.kind.clone(),
                cause: r
                    .cause
                    .as_ref()
                    .and_then(|c| serde_json::from_value(Value::String(c.clone())).ok()),
                rotated: r.event.get("rotated").and_then(Value::as_bool) == Some(true),
                probe: r.is_doctor_probe(),
            })
            .collect();
    }
    Ok(())
}

/// Tries the profile's grants in order, each once, into memory. Stops at the first that
/// works. `store` is the real store (read for a stored refresh token; written only to keep a
/// rotated one).
pub async fn dry_refresh(
    p: &Profile,
    store: &Arc<dyn Store>,
    stored: Option<&TokenRecord>,
    notes: &mut Vec<String>,
) -> CliResult<Vec<Attempt>> {
    let mut out = Vec::new();
    for name in grants_of(p) {
        let Some(grant) = try_build_grant(p, name, store.as_ref(), notes).await? else {
            continue;
        };
        let mem: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let m = session::manager_with_audit(p, grant, None, mem, session::Recording::DoctorProbe)?;
        match m.token().await {
            Ok(t) => {
                notes.push(format!(
                    "dry refresh with the {} grant: a new token was issued",
                    name.as_str()
                ));
                if name == GrantName::RefreshToken {
                    keep_rotated(p, store, stored, t.record(), notes).await;
                }
                out.push(Attempt {
                    grant: name,
                    manager: Some(m),
                    error: None,
                });
                break;
            }
            Err(e) => {
                notes.push(format!(
                    "dry refresh with the {} grant failed: {}",
                    name.as_str(),
                    detail(&e)
                ));
                out.push(Attempt {
                    grant: name,
                    manager: None,
                    error: Some(e),
                });
            }
        }
    }
    Ok(out)
}

/// Gathers facts about the profile's org and ranks the causes.
pub async fn gather_and_diagnose(g: &Globals) -> CliResult<Gathered> {
    let p = session::load_profile(g)?;
    let mut notes = Vec::new();
    let mut facts = Facts {
        session_timeout: p
            .session_timeout
            .unwrap_or(sfkeep::token::DEFAULT_SESSION_TIMEOUT),
        ..Facts::default()
    };
    audit_facts(&p, &mut facts, &mut notes)?;
    let store = session::open_store(&p)?;
    let rec = session::load_record(&p, store.as_ref()).await?;
    let http = session::http_client(Duration::from_secs(10), Duration::from_secs(3))?;
    let _spin = crate::ui::Spinner::start("examining the org…");

    let (probe, offset) = probe(&http, &p, rec.as_ref()).await;
    notes.push(match &probe {
        TokenProbe::Missing => "no token is stored".to_owned(),
        TokenProbe::Alive => "the stored token is accepted at /services/oauth2/userinfo".to_owned(),
        TokenProbe::Rejected { status, .. } => {
            format!("the stored token is refused at /services/oauth2/userinfo (HTTP {status})")
        }
        TokenProbe::Unreachable(e) => format!("probe failed: {e}"),
    });
    facts.clock_offset_ms = offset;
    if let Some(o) = offset {
        notes.push(format!(
            "the server's clock is {}",
            evidence::clock_offset_text(o)
        ));
    }
    let unreachable = matches!(probe, TokenProbe::Unreachable(_));
    facts.probe = probe;
    if let Some(r) = &rec {
        facts.token_issued_at = Some(r.issued_at);
        if r.expiry_source == ExpirySource::Introspection && r.expires_at.0 > r.issued_at.0 {
            facts.session_timeout = r.expires_at.since(r.issued_at);
        }
    }

    // Introspection of the stored token (own-app tokens; needs the client secret).
    if let (Some(r), Some(cid)) = (&rec, &p.client_id)
        && let Ok(Some(secret)) = p.optional_secret(&p.client_secret, "client_secret")
        && !unreachable
    {
        let endpoint_owner = session::manager_with_audit(
            &p,
            Grant::client_credentials(
                cid.clone(),
                sfkeep::secret::ClientSecret::new(secret.as_str()),
            ),
            None,
            Arc::new(MemoryStore::new()),
            session::Recording::DoctorProbe,
        )?;
        let cs = sfkeep::secret::ClientSecret::new(secret.as_str());
        match sfkeep::grant::introspect::access_token(
            endpoint_owner.endpoint(),
            cid,
            &cs,
            &r.access_token,
        )
        .await
        {
            Ok(sfkeep::grant::introspect::Introspection::Active { .. }) => {
                facts.introspection = Some(true);
                notes.push("introspection: the stored token is active".into());
            }
            Ok(sfkeep::grant::introspect::Introspection::Inactive) => {
                facts.introspection = Some(false);
                notes.push("introspection: the stored token is not active".into());
            }
            Err(e) => notes.push(format!("introspection failed: {e}")),
        }
    }

    let attempts = dry_refresh(&p, &store, rec.as_ref(), &mut notes).await?;
    let all_transport = !attempts.is_empty()
        && attempts
            .iter()
            .all(|a| matches!(a.error, Some(sfkeep::Error::Transport { .. })));
    if unreachable && (attempts.is_empty() || all_transport) {
        let e = attempts
            .iter()
            .find_map(|a| a.error.clone())
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(CliError::transient(format!(
            "cannot examine {}: the org at {} does not answer ({e}). Check that the login URL is right and the org is reachable from here (network, proxy, firewall), then retry.",
            p.describe(),
            p.login_url
        )));
    }
    facts.dry_refresh = attempts.iter().map(Attempt::fact).collect();
    facts.current_source_ip = audit::source_ip_for(
        rec.as_ref()
            .map(|r| r.instance_url.as_str())
            .unwrap_or(&p.login_url),
    );
    if let Some(m) = attempts.iter().find_map(|a| a.manager.as_ref()) {
        query_org(&p, m, &mut facts, &mut notes).await;
    } else {
        notes
            .push("no grant yields a working token, so the org's objects could not be read".into());
    }
    facts.now = server_now(facts.clock_offset_ms.unwrap_or(0));
    Ok(Gathered {
        diagnosis: evidence::diagnose(&facts),
        notes,
    })
}
