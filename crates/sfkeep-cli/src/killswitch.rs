//! `sfkeep logout --revoke` as a kill switch (README, "Logout and the kill switch").
//!
//! Revoking the refresh token stops nothing while a fallback grant (JWT bearer, client
//! credentials) can mint a new token without a person: a running proxy would log straight back
//! in. So the revoking logout also leaves a marker beside the audit log
//! (`sfkeep::paths::fallback_disabled`), and every manager the integration commands build
//! (`token`, `api`, `query`, `sync`, `proxy`, `serve`, `status --verify`) asks its token
//! requests through the library's [`FallbackSwitch`] ([`switch_for`]), which refuses the fallback grant while the marker exists — read
//! on every request, so processes that were already running honour it too. `sfkeep login` and
//! `sfkeep recover` (a person acting) remove the marker when they succeed.

use std::path::PathBuf;

use serde_json::{Value, json};
use sfkeep::manager::FallbackSwitch;
use sfkeep::token::GrantKind;

use crate::config::{Profile, StoreConfig};
use crate::error::{CliError, CliResult};

/// The profile's marker file (one per stored identity).
pub fn marker(p: &Profile) -> PathBuf {
    let file = match &p.store {
        StoreConfig::File { path, .. } => Some(path.as_path()),
        StoreConfig::Memory | StoreConfig::Redis { .. } => None,
    };
    sfkeep::paths::fallback_disabled(file, &crate::store_key::store_key(p).to_string())
}

/// The grant the kill switch stops: the profile's fallback, when it has one of its own.
pub fn fallback(p: &Profile) -> Option<GrantKind> {
    match p.fallback_grant {
        Some(f) if f != p.grant => Some(f.kind()),
        _ => None,
    }
}

/// What the marker says (`{"grant", "disabled_at", "by"}`), if the switch is on.
pub fn disabled(p: &Profile) -> Option<Value> {
    let text = std::fs::read_to_string(marker(p)).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|_| json!({})))
}

/// Turns the switch on: the fallback grant is not used until `login` or `recover`. Returns the
/// grant it stopped (`None`: the profile has no fallback grant, nothing to stop).
pub fn disable(p: &Profile) -> CliResult<Option<GrantKind>> {
    let Some(kind) = fallback(p) else {
        return Ok(None);
    };
    let path = marker(p);
    let now = sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock);
    let body = json!({
        "grant": kind.as_str(),
        "disabled_at": crate::audit::iso(now.0),
        "by": "sfkeep logout --revoke",
    });
    let write = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, format!("{body}\n").as_bytes())?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| {
        CliError::store(format!(
            "the tokens of {} were revoked, but its {} fallback grant could not be disabled: cannot write {} ({e}). A running proxy or `sfkeep serve` may log in again with it; fix the directory's permissions and run `sfkeep logout --revoke` again.",
            p.describe(),
            kind.as_str(),
            path.display()
        ))
    })?;
    Ok(Some(kind))
}

/// Turns the switch off (a person logged in or recovered). Returns what the marker said, if
/// the switch was on.
pub fn enable(p: &Profile) -> Option<Value> {
    let was = disabled(p)?;
    match std::fs::remove_file(marker(p)) {
        Ok(()) => Some(was),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            crate::output::warn(&format!(
                "cannot remove {} ({e}): the fallback grant of {} stays disabled.",
                marker(p).display(),
                p.describe()
            ));
            None
        }
    }
}

/// A note for `login` and `recover` when they turned the switch off.
pub fn enabled_note(p: &Profile, was: &Value) -> String {
    format!(
        "the {} fallback grant of {} is enabled again (disabled by `sfkeep logout --revoke` at {}).",
        was["grant"].as_str().unwrap_or("fallback"),
        p.describe(),
        was["disabled_at"].as_str().unwrap_or("an unknown time")
    )
}

/// The manager's token source for `p`, refusing its fallback grant while the marker exists
/// (the library's [`FallbackSwitch`], which the Python wheel uses too); `None` when the profile
/// has no fallback grant to stop.
pub fn switch_for(p: &Profile) -> Option<FallbackSwitch> {
    Some(FallbackSwitch::new(marker(p), fallback(p)?, p.describe()))
}
