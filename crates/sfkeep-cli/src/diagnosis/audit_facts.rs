//! What the local audit log says about the integration: its last successful call (when, from
//! which address, with which clock offset) and its recent auth events.

use std::time::Duration;

use serde_json::Value;
use sfkeep::clock::{Clock, SystemClock, UnixMillis};
use sfkeep::diagnose::evidence::{self, Facts, PasswordSecrets, PastEvent};

use crate::audit::{self, AuditLog};
use crate::config::{GrantName, Profile, SecretRef};
use crate::error::CliResult;
use crate::session;

/// The audit-log facts of `p`: last success and recent events. A log from a newer sfkeep is
/// an error (doctor refuses to guess). Events of another profile (another store key) are not
/// this profile's history and are never read.
pub fn audit_facts(p: &Profile, facts: &mut Facts, notes: &mut Vec<String>) -> CliResult<()> {
    facts.password_secrets = password_secrets(p);
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
            facts.last_success_clock_offset_ms = Some(l.server_at - l.at);
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
            "audit log {}: no successful API call recorded for {}",
            path.display(),
            p.describe()
        )),
        Err(e) => notes.push(e.to_string()),
    }
    let week = SystemClock.now().0 - 7 * 86_400_000;
    match log.events(&scope, week, 0) {
        Ok(rows) => {
            if let Some(s) = facts.password_secrets.as_mut() {
                // The integration's own logins that sent the password and got a token.
                s.last_worked_at = rows
                    .iter()
                    .filter(|r| {
                        r.kind == "token.refreshed"
                            && !r.is_doctor_probe()
                            && matches!(r.grant.as_deref(), Some("password" | "soap_login"))
                    })
                    .map(|r| UnixMillis(r.at))
                    .max();
            }
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
        Err(e) => notes.push(format!("the audit log's events could not be read: {e}")),
    }
    Ok(())
}

/// Where the profile's password and security token come from and when they last changed (the
/// latest modification time of their files), when a grant of the profile sends them.
/// [`audit_facts`] adds when a login with them last worked.
fn password_secrets(p: &Profile) -> Option<PasswordSecrets> {
    let sends = [Some(p.grant), p.fallback_grant]
        .into_iter()
        .flatten()
        .any(|g| matches!(g, GrantName::Password | GrantName::SoapLogin));
    if !sends {
        return None;
    }
    let refs: Vec<&SecretRef> = [p.password.as_ref(), p.security_token.as_ref()]
        .into_iter()
        .flatten()
        .collect();
    let mut source = Vec::new();
    let mut changed_at = Some(UnixMillis(i64::MIN));
    for r in &refs {
        match r {
            SecretRef::File(path) => {
                source.push(format!("the file {}", path.display()));
                let modified = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| UnixMillis(d.as_millis() as i64));
                changed_at = match (changed_at, modified) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            SecretRef::Env(name) => {
                source.push(format!("the environment variable {name}"));
                changed_at = None;
            }
        }
    }
    if refs.is_empty() {
        return None;
    }
    Some(PasswordSecrets {
        source: source.join(" and "),
        changed_at,
        last_worked_at: None,
    })
}
