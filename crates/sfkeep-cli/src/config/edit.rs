//! Changing a profile in its config file, for the commands that import settings
//! (`login --sfdx-url`): through toml_edit, so the person's comments, order and layout stay;
//! written atomically (a temporary file in the same directory, renamed over), keeping the
//! file's mode. A secret goes to its own 0600 file next to the config, referenced with
//! `{ file = "…" }`: never a literal in the config.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, InlineTable, Item, Table, value};

use crate::error::{CliError, CliResult};

/// One change to a profile's keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// `key = "value"`.
    Set(&'static str, String),
    /// `key = { file = "PATH" }`, PATH written relative to the config file when it is next to it.
    SecretFile(&'static str, PathBuf),
    /// The key removed.
    Remove(&'static str),
}

impl Edit {
    /// How the change reads in a message (never a secret: a secret is only ever a file path).
    pub fn describe(&self) -> String {
        match self {
            Edit::Set(k, v) => format!("{k} = \"{v}\""),
            Edit::SecretFile(k, p) => format!("{k} = {{ file = \"{}\" }}", p.display()),
            Edit::Remove(k) => format!("{k} removed"),
        }
    }
}

/// Applies `edits` to `[profiles.NAME]` of the config file at `path` (the table is created if
/// the file has none).
pub fn apply(path: &Path, profile: &str, edits: &[Edit]) -> CliResult<()> {
    let cannot = |what: &str, e: &dyn std::fmt::Display| {
        CliError::usage(format!(
            "cannot {what} the config file {}: {e}. Make it writable, or make the changes by hand: {}.",
            path.display(),
            edits
                .iter()
                .map(Edit::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| cannot("read", &e))?;
    let mut doc: DocumentMut = text.parse().map_err(|e| cannot("parse", &e))?;
    let table = profile_table(&mut doc, profile)
        .ok_or_else(|| cannot("change", &format!("`profiles.{profile}` is not a table")))?;
    for edit in edits {
        match edit {
            Edit::Set(k, v) => {
                table.insert(k, value(v.as_str()));
            }
            Edit::SecretFile(k, p) => {
                let mut reference = InlineTable::new();
                reference.insert("file", relative_to(p, path).into());
                table.insert(k, value(reference));
            }
            Edit::Remove(k) => {
                table.remove(k);
            }
        }
    }
    write_atomically(path, doc.to_string().as_bytes(), None).map_err(|e| cannot("write", &e))
}

/// `[profiles.NAME]`, made if missing.
fn profile_table<'a>(doc: &'a mut DocumentMut, profile: &str) -> Option<&'a mut Table> {
    let profiles = doc
        .entry("profiles")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()?;
    profiles
        .entry(profile)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
}

/// `p` as written in the config: relative when it sits in the config's directory.
fn relative_to(p: &Path, config: &Path) -> String {
    match (p.parent(), config.parent(), p.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => name.to_string_lossy().into_owned(),
        _ => p.display().to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the new one, never half of one. `mode` (unix) is the new
/// file's mode; `None` keeps the old file's (0600 when there was none).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = mode.unwrap_or_else(|| {
            std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777)
        });
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_other_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sfkeep.toml");
        std::fs::write(
            &path,
            "# mine\n[profiles.a]\nclient_id = \"old\" # the app\nrefresh_token = { env = \"RT\" }\n\n[profiles.b]\nclient_id = \"b\"\n",
        )
        .unwrap();
        apply(
            &path,
            "a",
            &[
                Edit::Set("client_id", "new".into()),
                Edit::Remove("refresh_token"),
                Edit::SecretFile("client_secret", dir.path().join("a.client_secret")),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        assert!(text.contains("client_id = \"new\""), "{text}");
        assert!(!text.contains("refresh_token"), "{text}");
        assert!(
            text.contains("client_secret = { file = \"a.client_secret\" }"),
            "{text}"
        );
        assert!(text.contains("[profiles.b]\nclient_id = \"b\""), "{text}");
        let c = crate::config::Config::parse(&text, &path).unwrap();
        assert_eq!(c.profile("a").unwrap().client_id.as_deref(), Some("new"));
    }

    #[test]
    fn a_missing_profile_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sfkeep.toml");
        std::fs::write(&path, "").unwrap();
        apply(&path, "new", &[Edit::Set("grant", "refresh_token".into())]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let c = crate::config::Config::parse(&text, &path).unwrap();
        assert!(c.profile("new").is_ok(), "{text}");
    }
}
