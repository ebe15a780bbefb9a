//! The spent-token ledger: the configured refresh token is a bootstrap, never sent again once
//! this identity has seen it rotated away.
//!
//! Under rotation the store holds the only valid refresh token, and the configured one (in the
//! profile) is spent after the first refresh. When the store loses its record (FLUSHALL, a
//! Redis restart without persistence, a deleted or restored store file), presenting the
//! configured token again would make Salesforce revoke the whole token family
//! (`docs/rotation-safety.md`). So a manager that sees a record whose refresh token is not the
//! configured one, with rotation on or learned, writes the configured token's fingerprint to
//! this ledger, with the generation and time it saw: durably and outside the store it
//! protects (a small JSON file, [`super::TokenManagerBuilder::spent_ledger`]).
//!
//! | before presenting the configured refresh token (rotation not off) | what happens |
//! |---|---|
//! | the store holds a logout tombstone | not sent unless introspection says it is live; else `ReauthRequired` (`refresh_token_lost`: re-authorize) |
//! | the store holds a record this process cannot read (another cache key, corrupted) | not sent unless introspection says it is live; else `ReauthRequired` (`refresh_token_lost`, naming the unreadable record) |
//! | the ledger names it spent | not sent unless introspection says it is live; else `ReauthRequired` (`refresh_token_lost`, with the generation and time it was seen rotated) |
//! | the ledger cannot be read (corrupt, unreadable) | not sent unless introspection says it is live; else `ReauthRequired`, naming the ledger |
//! | no ledger configured, the file is missing, or it does not name the token | sent (a first bootstrap) |
//!
//! The ledger also names the stored refresh tokens this host rotated away (the last
//! [`MAX_ROTATED`]): a store restored from an older copy, or rolled back, holds one of them.
//!
//! | before presenting a stored refresh token (rotation not off) | what happens |
//! |---|---|
//! | the ledger names it rotated away (or spent) | not sent unless introspection says it is live; else `ReauthRequired` (`refresh_token_lost`: the store went back to an older record) |
//! | anything else, an unreadable ledger included | sent: the stored token is the live one unless the store went back, and an unreadable ledger cannot say that it did |
//!
//! The file holds fingerprints (first 8 hex of a SHA-256), never a token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::clock::UnixMillis;
use crate::sync::lock;

const VERSION: u32 = 1;

/// How many rotated-away stored refresh tokens the ledger keeps (the newest by generation):
/// enough for any backup a person would restore, small enough to read before every refresh.
pub const MAX_ROTATED: usize = 256;

/// When a configured refresh token was seen rotated away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Spent {
    /// The generation of the record that showed it (the rotated refresh token's record).
    pub(crate) generation: u64,
    /// When it was seen (server clock).
    pub(crate) at: UnixMillis,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct LedgerFile {
    version: u32,
    /// Fingerprint of a configured refresh token → when it was seen spent.
    spent: BTreeMap<String, Spent>,
    /// Fingerprint of a stored refresh token this host rotated away → the generation that
    /// replaced it and when. Absent in files of earlier sfkeep versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    rotated: BTreeMap<String, Spent>,
}

/// What the ledger says about one fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Not named (or no ledger, or no file yet).
    Unspent,
    /// Seen rotated away.
    Spent(Spent),
    /// The file exists but cannot be read: the safe branch applies.
    Unreadable(String),
}

/// The ledger file, if one is configured.
#[derive(Debug, Default)]
pub(crate) struct SpentLedger {
    path: Option<PathBuf>,
    /// Fingerprints this manager has written already (no write per refresh).
    written: Mutex<Vec<String>>,
}

impl SpentLedger {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            written: Mutex::new(Vec::new()),
        }
    }

    /// What the ledger says about the refresh token with fingerprint `fp`.
    pub(crate) fn lookup(&self, fp: &str) -> Lookup {
        let Some(path) = &self.path else {
            return Lookup::Unspent;
        };
        match read(path) {
            Ok(f) => f
                .spent
                .get(fp)
                .or_else(|| f.rotated.get(fp))
                .map_or(Lookup::Unspent, |s| Lookup::Spent(*s)),
            Err(e) => Lookup::Unreadable(format!("{}: {e}", path.display())),
        }
    }

    /// Records that the configured refresh token `fp` was seen rotated away. Best effort: an
    /// error is returned for an event, and the next record seen tries again.
    pub(crate) fn record(&self, fp: &str, spent: Spent) -> std::result::Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if lock(&self.written).iter().any(|w| w == fp) {
            return Ok(());
        }
        // A corrupt ledger is left as it is (it keeps failing closed, and says so): replacing
        // it would forget the tokens it names.
        let mut file = read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.version = VERSION;
        file.spent.entry(fp.to_owned()).or_insert(spent);
        write(path, &file).map_err(|e| format!("{}: {e}", path.display()))?;
        lock(&self.written).push(fp.to_owned());
        Ok(())
    }
}

impl SpentLedger {
    /// Records that this host rotated the stored refresh token `fp` away (its successor is of
    /// `spent.generation`). Best effort, like [`SpentLedger::record`]; keeps the newest
    /// [`MAX_ROTATED`].
    pub(crate) fn record_rotated(&self, fp: &str, spent: Spent) -> std::result::Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut file = read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.version = VERSION;
        file.rotated.entry(fp.to_owned()).or_insert(spent);
        while file.rotated.len() > MAX_ROTATED {
            let oldest = file
                .rotated
                .iter()
                .min_by_key(|(_, s)| (s.generation, s.at))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                file.rotated.remove(&k);
            }
        }
        write(path, &file).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// When the spent-token ledger at `path` saw `refresh_token` rotated away: the generation of
/// the record that showed it and the time (server clock); `None` if the ledger does not name it
/// (or there is no ledger file yet). An error says why the file cannot be read. For `sfkeep
/// doctor`'s evidence: the manager itself consults the ledger before every bootstrap.
pub fn seen_spent(
    path: &Path,
    refresh_token: &crate::secret::RefreshToken,
) -> std::result::Result<Option<(u64, UnixMillis)>, String> {
    let file = read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file
        .spent
        .get(&refresh_token.fingerprint())
        .map(|s| (s.generation, s.at)))
}

fn read(path: &Path) -> std::result::Result<LedgerFile, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LedgerFile::default()),
        Err(e) => return Err(e.to_string()),
    };
    let f: LedgerFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a spent-token ledger ({e})"))?;
    if f.version != VERSION {
        return Err(format!("ledger format {} is not {VERSION}", f.version));
    }
    Ok(f)
}

/// Atomic replace: a temporary file in the same directory, then a rename.
fn write(path: &Path, file: &LedgerFile) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
    }
    let json = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", fastrand::u64(..)));
    std::fs::write(&tmp, json)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds_a_spent_token_and_fails_closed_on_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spent.json");
        let l = SpentLedger::new(Some(path.clone()));
        assert_eq!(l.lookup("aa"), Lookup::Unspent);
        let s = Spent {
            generation: 3,
            at: UnixMillis(5),
        };
        l.record("aa", s).unwrap();
        assert_eq!(
            SpentLedger::new(Some(path.clone())).lookup("aa"),
            Lookup::Spent(s)
        );
        assert_eq!(l.lookup("bb"), Lookup::Unspent);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(l.lookup("bb"), Lookup::Unreadable(_)));
        std::fs::write(&path, br#"{"version":9,"spent":{}}"#).unwrap();
        assert!(matches!(l.lookup("aa"), Lookup::Unreadable(m) if m.contains("format 9")));
        assert_eq!(SpentLedger::new(None).lookup("aa"), Lookup::Unspent);
    }

    #[test]
    fn rotated_away_tokens_are_named_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent.json");
        let l = SpentLedger::new(Some(path.clone()));
        l.record(
            "cfg",
            Spent {
                generation: 1,
                at: UnixMillis(1),
            },
        )
        .unwrap();
        for g in 2..(MAX_ROTATED as u64 + 12) {
            let at = UnixMillis(g as i64);
            l.record_rotated(&format!("rt{g}"), Spent { generation: g, at })
                .unwrap();
        }
        let newest = format!("rt{}", MAX_ROTATED as u64 + 11);
        assert!(matches!(l.lookup(&newest), Lookup::Spent(_)));
        assert_eq!(l.lookup("rt2"), Lookup::Unspent, "the oldest went");
        assert!(
            matches!(l.lookup("cfg"), Lookup::Spent(s) if s.generation == 1),
            "the configured token's entry is never pruned"
        );
        let file = read(&path).unwrap();
        assert_eq!(file.rotated.len(), MAX_ROTATED);
        // A file of an earlier version (no `rotated`) still reads.
        std::fs::write(
            &path,
            br#"{"version":1,"spent":{"aa":{"generation":3,"at":5}}}"#,
        )
        .unwrap();
        assert!(matches!(l.lookup("aa"), Lookup::Spent(_)));
    }
}
