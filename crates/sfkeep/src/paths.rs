//! Where sfkeep keeps what is not configuration, the same for the `sfkeep` CLI and the
//! Python wheel's `TokenManager.from_profile`: the audit log and, in its directory, the
//! spent-token ledger (`docs/rotation-safety.md`). Every process of a host that shares a store
//! finds the same ledger, outside the store it protects.

use std::path::{Path, PathBuf};

/// Overrides the audit log's location (its directory then holds the ledger too).
pub const AUDIT_DB_ENV: &str = "SFKEEP_AUDIT_DB";
/// The audit log's file name beside a file store, or in [`state_dir`]`/sfkeep`.
pub const AUDIT_DB_FILE: &str = "audit.db";
/// The spent-token ledger's file name, beside the audit log.
pub const SPENT_LEDGER_FILE: &str = "spent-refresh-tokens.json";

/// The config file's name, looked up in the working directory, then in [`user_config_dir`]`/sfkeep`.
pub const CONFIG_FILE_NAME: &str = "sfkeep.toml";

/// `$XDG_CONFIG_HOME`, else `~/.config` (`None` without a home directory).
pub fn user_config_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => Some(PathBuf::from(x)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")),
    }
}

/// Where a config file is looked for when none is named, in order: `./sfkeep.toml`, then
/// `$XDG_CONFIG_HOME/sfkeep/sfkeep.toml` (or `~/.config/sfkeep/sfkeep.toml`). The CLI and the
/// Python wheel's `from_profile` take the first that is a file.
pub fn config_candidates() -> Vec<PathBuf> {
    let mut all = vec![PathBuf::from(CONFIG_FILE_NAME)];
    if let Some(dir) = user_config_dir() {
        all.push(dir.join("sfkeep").join(CONFIG_FILE_NAME));
    }
    all
}

/// The first of [`config_candidates`] that is a file; else the candidates as a message names
/// them (`./sfkeep.toml` for the working directory's), for "looked at …".
pub fn find_config() -> Result<PathBuf, Vec<String>> {
    let candidates = config_candidates();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    Err(candidates
        .iter()
        .map(|p| match p.is_relative() {
            true => format!("./{}", p.display()),
            false => p.display().to_string(),
        })
        .collect())
}

/// A path written in the config file: `~/` is the home directory, and a relative path is
/// relative to the config file's directory (not the working directory), as every sfkeep
/// process reads it.
pub fn resolve_config_relative(raw: &str, config_path: &Path) -> PathBuf {
    if let Some(rest) = raw.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = PathBuf::from(raw);
    if p.is_absolute() {
        return p;
    }
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}

/// `$XDG_STATE_HOME`, else `~/.local/state`.
pub fn state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local").join("state")
}

/// The audit log of a profile whose store is the file `store_file` (`None`: a memory or Redis
/// store): `$SFKEEP_AUDIT_DB` when set, else beside the file store, else
/// [`state_dir`]`/sfkeep/audit.db`.
pub fn audit_db(store_file: Option<&Path>) -> PathBuf {
    if let Some(v) = std::env::var_os(AUDIT_DB_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    match store_file {
        Some(path) => path
            .parent()
            .map(|d| d.join(AUDIT_DB_FILE))
            .unwrap_or_else(|| PathBuf::from(AUDIT_DB_FILE)),
        None => state_dir().join("sfkeep").join(AUDIT_DB_FILE),
    }
}

/// The spent-token ledger of the same profile: in the audit log's directory.
pub fn spent_ledger(store_file: Option<&Path>) -> PathBuf {
    audit_db(store_file).with_file_name(SPENT_LEDGER_FILE)
}

/// The kill-switch marker's file name prefix, beside the audit log (see [`fallback_disabled`]).
pub const FALLBACK_DISABLED_PREFIX: &str = "fallback-disabled-";

/// The marker `sfkeep logout --revoke` leaves for the identity stored under `store_key`: while
/// it exists, no process of the profile uses its fallback grant (README, "Logout and the kill
/// switch"). In the audit log's directory, where every process of the host finds it. The key
/// is a hash; anything but ASCII letters, digits, `-` and `_` is replaced.
pub fn fallback_disabled(store_file: Option<&Path>, store_key: &str) -> PathBuf {
    let safe: String = store_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    audit_db(store_file).with_file_name(format!("{FALLBACK_DISABLED_PREFIX}{safe}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_sits_beside_a_file_store() {
        // Only when the override is not set in the test's environment.
        if std::env::var_os(AUDIT_DB_ENV).is_some() {
            return;
        }
        assert_eq!(
            spent_ledger(Some(Path::new("/srv/app/tokens.enc"))),
            Path::new("/srv/app/spent-refresh-tokens.json")
        );
        assert!(spent_ledger(None).ends_with("sfkeep/spent-refresh-tokens.json"));
    }
}
