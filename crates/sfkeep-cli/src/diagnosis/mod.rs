//! Gathering the facts `sfkeep doctor` ranks (and `sfkeep recover` explains a failure with),
//! without harming the integration it examines, in three rounds of requests at most:
//!
//! 1. all at once, nothing used up: the stored token probed at `/services/oauth2/userinfo`
//!    (its `Date` measures clock skew), the stored access token and the integration's refresh
//!    token introspected (when the profile has a client secret), and a dry login with every
//!    grant that consumes nothing (JWT bearer, client credentials, password, SOAP login),
//!    into memory;
//! 2. the refresh-token grant, only when its introspection could not settle it: refreshed
//!    through the profile's own token store as the integration would (see [`grants`]); and,
//!    with a token that already works, the org's diagnosis objects, SOAP `getUserInfo` and the
//!    new token's introspection (see [`org_reads`]);
//! 3. those reads with the refreshed token, when round 2 had no other.
//!
//! The token store and the spent-token ledger show an interrupted rotating refresh or a lost
//! refresh token ([`rotation_facts`]). The local audit log gives the last successful call, its source address and clock offset,
//! and the recent events. Then `sfkeep::diagnose::evidence::diagnose` ranks the causes.

mod attempt;
mod audit_facts;
mod grants;
mod org_reads;
mod other_profile;
mod probe;
mod rotation_facts;

use std::time::Duration;

use sfkeep::clock::{Clock, SystemClock, UnixMillis};
use sfkeep::diagnose::Diagnosis;
use sfkeep::diagnose::evidence::{self, Facts, TimeoutSource, TokenProbe};
use sfkeep::grant::introspect::{TokenInfo, TokenKind};
use sfkeep::token::{ExpirySource, TokenRecord};

pub use attempt::{Attempt, detail, grants_of, try_build_grant};
pub use audit_facts::audit_facts;

use crate::audit;
use crate::config::{GrantName, Profile};
use crate::error::{CliError, CliResult};
use crate::session::{self, Globals};
use grants::Checked;
use org_reads::{OrgRead, Reader};

/// A diagnosis and what was checked to reach it.
#[derive(Debug)]
pub struct Gathered {
    /// The ranked causes.
    pub diagnosis: Diagnosis,
    /// One line per check, for the human output.
    pub notes: Vec<String>,
}

fn server_now(offset_ms: i64) -> UnixMillis {
    UnixMillis(SystemClock.now().0 + offset_ms)
}

/// The user id at the end of an identity URL (`…/id/{orgId}/{userId}`).
fn user_of(id_url: Option<&str>) -> Option<String> {
    let last = id_url?.trim_end_matches('/').rsplit('/').next()?;
    (last.len() == 15 || last.len() == 18).then(|| last.to_owned())
}

/// The lifetime a record's own expiry says, when the org told it (introspection or SOAP).
fn told_lifetime(r: &TokenRecord) -> Option<(Duration, TimeoutSource)> {
    let source = match r.expiry_source {
        ExpirySource::Introspection => TimeoutSource::Introspection,
        ExpirySource::SoapSessionSecondsValid => TimeoutSource::SoapSessionSecondsValid,
        _ => return None,
    };
    (r.expires_at.0 > r.issued_at.0).then(|| (r.expires_at.since(r.issued_at), source))
}

/// A token that works now, to read the org with: its record and whether doctor just got it.
struct Working {
    record: TokenRecord,
    user_id: Option<String>,
    fresh: bool,
}

/// Reads the org with `w` and introspects a fresh token, at once.
async fn read_with(
    p: &Profile,
    http: &reqwest::Client,
    w: &Working,
    ep: Option<&sfkeep::grant::TokenEndpoint>,
    client: Option<&(String, sfkeep::secret::ClientSecret)>,
) -> (Option<OrgRead>, Option<Result<Option<TokenInfo>, String>>) {
    let user_id = w
        .user_id
        .clone()
        .or_else(|| user_of(w.record.id_url.as_deref()));
    let reads = async {
        let uid = user_id?;
        let reader = Reader {
            http,
            instance_url: w.record.instance_url.clone(),
            access_token: w.record.access_token.clone(),
            api_version: p.api_version.clone(),
            user_id: uid,
        };
        Some(org_reads::read(&reader).await)
    };
    let token = w.fresh.then(|| w.record.access_token.expose_secret());
    let introspected = probe::introspect(ep, client, token, TokenKind::Access);
    tokio::join!(reads, introspected)
}

/// Gathers facts about the profile's org and ranks the causes.
pub async fn gather_and_diagnose(g: &Globals) -> CliResult<Gathered> {
    let p = session::load_profile(g)?;
    let mut notes = Vec::new();
    let mut facts = Facts {
        session_timeout: p
            .session_timeout
            .unwrap_or(sfkeep::token::DEFAULT_SESSION_TIMEOUT),
        session_timeout_source: if p.session_timeout.is_some() {
            TimeoutSource::Profile
        } else {
            TimeoutSource::Default
        },
        ..Facts::default()
    };
    audit_facts(&p, &mut facts, &mut notes)?;
    let store = session::open_store(&p)?;
    let raw = session::load_raw_record(&p, store.as_ref()).await?;
    rotation_facts::rotation_facts(&p, store.kind(), raw.as_ref(), &mut facts, &mut notes);
    // A logout tombstone holds no token: nothing is stored.
    let rec = raw.filter(|r| !r.is_tombstone());
    let http = session::http_client(Duration::from_secs(10), Duration::from_secs(3))?;
    let _spin = crate::ui::Spinner::start("examining the org…");
    if let Some(r) = &rec {
        facts.token_issued_at = Some(r.issued_at);
        if let Some((d, _)) = told_lifetime(r) {
            facts.session_timeout = d;
            facts.session_timeout_source = TimeoutSource::StoredToken;
        }
    }
    let grants = grants_of(&p);
    let client = probe::introspection_client(&p);
    let ep = probe::endpoint(&p, &http);
    let rt_in_use = grants
        .contains(&GrantName::RefreshToken)
        .then(|| grants::refresh_token_in_use(&p, rec.as_ref()))
        .flatten();

    // Round 1: nothing in it uses anything up.
    let others: Vec<GrantName> = grants
        .iter()
        .copied()
        .filter(|g| *g != GrantName::RefreshToken)
        .collect();
    let login = |name: Option<GrantName>| {
        let (p, store) = (&p, &store);
        async move {
            match name {
                Some(n) => Some(grants::dry_login(p, n, store).await),
                None => None,
            }
        }
    };
    let (stored, at_info, rt_info, first, second) = tokio::join!(
        probe::stored_token(&http, &p, rec.as_ref()),
        probe::introspect(
            ep.as_ref(),
            client.as_ref(),
            rec.as_ref().map(|r| r.access_token.expose_secret()),
            TokenKind::Access
        ),
        probe::introspect(
            ep.as_ref(),
            client.as_ref(),
            rt_in_use.as_ref().map(|(rt, _)| rt.as_str()),
            TokenKind::Refresh
        ),
        login(others.first().copied()),
        login(others.get(1).copied()),
    );
    notes.push(stored.note.clone());
    facts.clock_offset_ms = stored.offset_ms;
    if let Some(o) = stored.offset_ms {
        notes.push(format!(
            "the server's clock is {}",
            evidence::clock_offset_text(o)
        ));
    }
    match &at_info {
        Some(Ok(Some(_))) => {
            facts.introspection = Some(true);
            notes.push("introspection: the stored token is active".into());
        }
        Some(Ok(None)) => {
            facts.introspection = Some(false);
            notes.push("introspection: the stored token is not active".into());
        }
        Some(Err(e)) => notes.push(format!("introspection of the stored token failed: {e}")),
        None => {}
    }
    let unreachable = matches!(stored.probe, TokenProbe::Unreachable(_));
    let token_alive =
        stored.probe == TokenProbe::Alive || (unreachable && facts.introspection == Some(true));
    facts.probe = stored.probe.clone();
    if let Some((rt, _)) = &rt_in_use {
        facts.refresh_token = Some(grants::refresh_token_facts(rec.as_ref(), rt, &rt_info));
    }
    let mut logins: Vec<Checked> = Vec::new();
    for r in [first, second].into_iter().flatten() {
        let (checked, n) = r?;
        notes.extend(n);
        logins.extend(checked);
    }

    // Round 2: the refresh token when introspection did not settle it, and the reads with a
    // token that works already.
    let working_now = if token_alive {
        rec.clone().map(|record| Working {
            record,
            user_id: stored.user_id.clone(),
            fresh: false,
        })
    } else {
        logins.iter().find_map(|c| {
            c.token().map(|record| Working {
                record,
                user_id: None,
                fresh: true,
            })
        })
    };
    let have_token = working_now.is_some();
    let rt_check = async {
        match &rt_in_use {
            Some((rt, from_store)) => Some(
                grants::refresh_token(&p, &store, (rt, *from_store), &rt_info, have_token).await,
            ),
            None => None,
        }
    };
    let early_reads = async {
        match &working_now {
            Some(w) => Some(read_with(&p, &http, w, ep.as_ref(), client.as_ref()).await),
            None => None,
        }
    };
    let (rt_checked, mut reads) = tokio::join!(rt_check, early_reads);
    let rt_checked = match rt_checked {
        Some(r) => {
            let (checked, n) = r?;
            notes.extend(n);
            checked
        }
        None => None,
    };

    // The attempts in the profile's order.
    let mut checked: Vec<Checked> = Vec::new();
    let mut rt_checked = rt_checked;
    let mut logins = logins.into_iter();
    for g in &grants {
        if *g == GrantName::RefreshToken {
            checked.extend(rt_checked.take());
        } else if let Some(c) = logins.next() {
            checked.push(c);
        }
    }
    let all_transport = !checked.is_empty()
        && checked
            .iter()
            .all(|c| matches!(c.attempt.error, Some(sfkeep::Error::Transport { .. })));
    if matches!(stored.probe, TokenProbe::Unreachable(ref why) if why.contains(" failed: "))
        && (checked.is_empty() || all_transport)
    {
        let e = checked
            .iter()
            .find_map(|c| c.attempt.error.clone())
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(CliError::transient(format!(
            "cannot examine {}: the org at {} does not answer ({e}). Check that the login URL is right and the org is reachable from here (network, proxy, firewall), then retry.",
            p.describe(),
            p.login_url
        )));
    }
    facts.dry_refresh = checked.iter().map(Checked::fact).collect();
    let mut minted: Vec<&str> = checked
        .iter()
        .filter(|c| c.attempt.manager.is_some())
        .map(|c| c.attempt.grant.as_str())
        .collect();
    minted.dedup();
    notes.push(if minted.is_empty() {
        "doctor minted no token with the profile's grants".to_owned()
    } else {
        format!(
            "doctor minted a new access token with: {} (see above for which was stored)",
            minted.join(", ")
        )
    });

    // Round 3: the reads with the refreshed token, when nothing else worked earlier.
    let mut working = working_now;
    if reads.is_none()
        && let Some(record) = checked
            .iter()
            .find(|c| c.attempt.grant == GrantName::RefreshToken)
            .and_then(Checked::token)
    {
        let w = Working {
            record,
            user_id: None,
            fresh: true,
        };
        reads = Some(read_with(&p, &http, &w, ep.as_ref(), client.as_ref()).await);
        working = Some(w);
    }
    match reads {
        Some((read, fresh_info)) => {
            apply_reads(&mut facts, read, &mut notes);
            apply_timeout(&mut facts, working.as_ref(), fresh_info.as_ref());
        }
        None => {
            let other = match &rec {
                Some(r) => other_profile::find(&p, &http, r).await,
                None => (None, Vec::new()),
            };
            notes.extend(other.1);
            match other.0 {
                Some(o) => {
                    if o.minted {
                        notes.push(format!(
                            "doctor minted a new access token with profile `{}`, into memory",
                            o.profile
                        ));
                    }
                    read_as_other(&p, &http, &o.record, rec.as_ref(), &mut facts, &mut notes)
                        .await;
                }
                None => notes.push(
                    "no grant yields a working token, so the org's objects could not be read: no statement about the org (freezes, password changes, revokes, policies) can be made".into(),
                ),
            }
        }
    }
    notes.push(format!(
        "session timeout used: {} ({})",
        evidence::human(facts.session_timeout),
        facts.session_timeout_source.describe()
    ));
    facts.current_source_ip = audit::source_ip_for(
        rec.as_ref()
            .map(|r| r.instance_url.as_str())
            .unwrap_or(&p.login_url),
    );
    facts.now = server_now(facts.clock_offset_ms.unwrap_or(0));
    Ok(Gathered {
        diagnosis: evidence::diagnose(&facts),
        notes,
    })
}

/// Reads the org about the integration user (named by its stored record) with another
/// profile's working token. What that token's own session says (its timeout, its own calls
/// refused) is another user's, so only the integration user's records are taken.
async fn read_as_other(
    p: &Profile,
    http: &reqwest::Client,
    other: &TokenRecord,
    integration: Option<&TokenRecord>,
    facts: &mut Facts,
    notes: &mut Vec<String>,
) {
    let Some(uid) = user_of(integration.and_then(|r| r.id_url.as_deref())) else {
        return;
    };
    let reader = Reader {
        http,
        instance_url: other.instance_url.clone(),
        access_token: other.access_token.clone(),
        api_version: p.api_version.clone(),
        user_id: uid,
    };
    let read = org_reads::read(&reader).await;
    let (timeout, source) = (facts.session_timeout, facts.session_timeout_source);
    apply_reads(facts, Some(read), notes);
    facts.session_timeout = timeout;
    facts.session_timeout_source = source;
    facts.own_call_failures.clear();
    facts.api_disabled = None;
}

/// Moves what the reads found into the facts.
fn apply_reads(facts: &mut Facts, read: Option<OrgRead>, notes: &mut Vec<String>) {
    let Some(read) = read else {
        notes
            .push("the working token names no user, so the org's objects could not be read".into());
        return;
    };
    notes.extend(read.notes);
    facts.user = read.user;
    facts.login_history = read.login_history;
    facts.setup_audit = read.setup_audit;
    facts.auth_sessions = read.auth_sessions;
    facts.oauth_tokens = read.approvals.as_ref().map(Vec::len);
    facts.approvals = read.approvals;
    facts.reads = read.reads;
    facts.org_queried = read.reads.user && read.reads.user_login && read.reads.setup_audit;
    facts.own_call_failures = read.failures;
    facts.api_disabled = read.api_disabled;
    if facts.session_timeout_source.is_the_orgs() {
        return;
    }
    if let Some(secs) = read.current_session_seconds.filter(|s| *s > 0) {
        facts.session_timeout = Duration::from_secs(secs);
        facts.session_timeout_source = evidence::TimeoutSource::AuthSession;
    } else if let Some(secs) = read.soap_session_seconds.filter(|s| *s > 0) {
        facts.session_timeout = Duration::from_secs(secs);
        facts.session_timeout_source = evidence::TimeoutSource::SoapSessionSecondsValid;
    }
}

/// The session timeout from a fresh token, when nothing better was known: its introspection
/// (`exp − iat`), else the lifetime its login told (SOAP).
fn apply_timeout(
    facts: &mut Facts,
    w: Option<&Working>,
    fresh: Option<&Result<Option<TokenInfo>, String>>,
) {
    if matches!(
        facts.session_timeout_source,
        TimeoutSource::StoredToken | TimeoutSource::Introspection
    ) {
        return;
    }
    if let Some(Ok(Some(TokenInfo {
        issued_at: Some(iat),
        expires_at: Some(exp),
    }))) = fresh
        && exp.0 > iat.0
    {
        facts.session_timeout = exp.since(*iat);
        facts.session_timeout_source = TimeoutSource::Introspection;
        return;
    }
    if facts.session_timeout_source.is_the_orgs() {
        return;
    }
    if let Some((d, source)) = w.filter(|w| w.fresh).and_then(|w| told_lifetime(&w.record)) {
        facts.session_timeout = d;
        facts.session_timeout_source = source;
    }
}
