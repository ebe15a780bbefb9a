//! What a person reads when the config file cannot be read as the schema: the file, the key's
//! full path and line, the nearest known key, and what the value should be. A message never
//! quotes a value from the file: any of them may be a secret written where it should not be.

use std::path::Path;

use serde_path_to_error::Segment;

use crate::config::schema::{SECRET_KEYS, Table};
use crate::error::CliError;

/// A TOML syntax error: where, and the parser's reason (which names tokens, not values).
pub fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> CliError {
    let at = e
        .span()
        .map(|s| {
            let (line, col) = line_col(text, s.start);
            format!(" at line {line}, column {col}")
        })
        .unwrap_or_default();
    CliError::usage(format!(
        "{} is not valid TOML{at}: {}. Fix the syntax (see the profile example in the README).",
        path.display(),
        e.message().trim_end_matches('\n')
    ))
}

/// A schema error: an unknown key, or a value of the wrong type. `doc` is the file parsed
/// as plain TOML, to tell what type the offending value has.
pub fn schema_error(
    text: &str,
    path: &Path,
    doc: &toml::Table,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> CliError {
    let keys: Vec<String> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    let line = e
        .inner()
        .span()
        .map(|s| format!(" (line {})", line_col(text, s.start).0))
        .unwrap_or_default();
    let full = keys.join(".");
    let Some((last, parents)) = keys.split_last() else {
        return CliError::usage(format!(
            "{} does not match the config schema{line}. See the profile example in the README.",
            path.display()
        ));
    };
    let table = table_of(parents);
    if let Some(t) = table
        && !t.keys().contains(&last.as_str())
    {
        return unknown_key(path, &full, parents, last, t, &line);
    }
    let found = value_at(doc, &keys);
    let what = expected(parents, last, found);
    CliError::usage(format!("{}: `{full}`{line} {what}", path.display()))
}

/// The schema table that holds keys under `parents`; `None` where any key is allowed (the
/// names of profiles).
fn table_of(parents: &[String]) -> Option<Table> {
    match parents {
        [] => Some(Table::File),
        [p] if p == "profiles" => None,
        [_, _] => Some(Table::Profile),
        [_, _, s] if s == "store" => Some(Table::Store),
        [_, _, _] => Some(Table::Secret),
        _ => None,
    }
}

fn unknown_key(
    path: &Path,
    full: &str,
    parents: &[String],
    key: &str,
    table: Table,
    line: &str,
) -> CliError {
    let place = match table {
        Table::File => "the top level".to_owned(),
        Table::Secret => format!("`{}`", parents.join(".")),
        Table::Profile | Table::Store => format!("[{}]", parents.join(".")),
    };
    let known = table.keys();
    let near = suggest(key, known.iter().copied())
        .map(|s| format!(" Did you mean `{s}`?"))
        .unwrap_or_default();
    CliError::usage(format!(
        "{}: unknown key `{full}` in {place}{line}.{near} Known keys there: {}.",
        path.display(),
        known.join(", ")
    ))
}

/// The value at `keys` in the plain TOML document.
fn value_at<'a>(doc: &'a toml::Table, keys: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = keys.split_first()?;
    rest.iter()
        .try_fold(doc.get(first)?, |v, k| v.as_table()?.get(k))
}

/// What the value at `parents.key` should be, given what was `found` there.
fn expected(parents: &[String], key: &str, found: Option<&toml::Value>) -> String {
    let found_type = found.map_or("something else", toml::Value::type_str);
    match (parents.len(), key) {
        (0, "profiles") => format!(
            "must be a table of profiles, found {found_type}. Write each one as [profiles.NAME]."
        ),
        (1, _) => format!(
            "must be a table, found {found_type}. Write it as [{}.{key}].",
            parents[0]
        ),
        (2, k) if SECRET_KEYS.contains(&k) => secret_expected(k, found),
        (2, "store") => format!(
            "must be a table, found {found_type}. Write it as [{}.store] with `kind = \"file\"` and its `path`.",
            parents.join(".")
        ),
        (2, "session_timeout_secs") => match found.and_then(toml::Value::as_integer) {
            Some(n) => format!("must be a positive whole number of seconds, found {n}."),
            None => format!("must be a positive whole number of seconds, found {found_type}."),
        },
        (2, "audit_retention_days") => {
            format!("must be a whole number of days from 1 to 36500, found {found_type}.")
        }
        _ => format!("must be a string, found {found_type}."),
    }
}

/// The message for a secret key whose value is not a reference. A string is most likely the
/// secret itself, so it is never quoted; one that looks like a file's path is said to be one.
fn secret_expected(key: &str, found: Option<&toml::Value>) -> String {
    match found.and_then(toml::Value::as_str) {
        Some(s) if looks_like_path(s) => format!(
            "looks like a file's path written as a plain string. Secrets are references: write `{key} = {{ file = \"PATH\" }}` with that path (nothing needs rotating)."
        ),
        Some(_) => format!(
            "is a literal value; secrets in config must be references. Write `{key} = {{ env = \"NAME\" }}` or `{key} = {{ file = \"PATH\" }}` and move the secret out of the file (rotate it if this file was shared or committed)."
        ),
        None => format!(
            "must be a reference like {{ env = \"NAME\" }} or {{ file = \"PATH\" }}, found {}.",
            found.map_or("something else", toml::Value::type_str)
        ),
    }
}

/// A plain string that is a path rather than a secret: starts like a path and has the shape
/// of one (no spaces, no PEM armour, a file name with an extension or under a directory).
fn looks_like_path(s: &str) -> bool {
    let starts = ["/", "~/", "./", "../"].iter().any(|p| s.starts_with(p));
    starts && !s.contains(char::is_whitespace) && !s.contains("-----") && s.len() < 4096
}

/// 1-based line and column of byte offset `at` (clamped to the text, safe on any offset).
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..at.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// The known name nearest to `given`, if it is near enough to be a typo.
pub fn suggest<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(2);
    known
        .map(|k| (strsim::levenshtein(given, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_only() {
        let keys = Table::Profile.keys();
        assert_eq!(suggest("clent_id", keys.iter().copied()), Some("client_id"));
        assert_eq!(suggest("zzzzzz", keys.iter().copied()), None);
    }

    #[test]
    fn line_and_column_never_split_a_character() {
        let text = "a = \"é\"\nb = 1";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 7), (1, 7));
        assert_eq!(line_col(text, 6).0, 1, "inside `é`: no panic");
        assert_eq!(line_col(text, text.len() + 10), (2, 6));
        assert_eq!(line_col(text, 9), (2, 1));
    }

    #[test]
    fn a_path_is_told_apart_from_a_secret() {
        assert!(looks_like_path("/etc/sfkeep/jwt.key"));
        assert!(looks_like_path("~/.config/sfkeep/cache.key"));
        assert!(!looks_like_path("5Aep861abc.def"));
        // The PEM label is put together here so the source holds nothing that looks like a key.
        assert!(!looks_like_path(&format!(
            "-----BEGIN {} KEY-----",
            "PRIVATE"
        )));
        assert!(!looks_like_path("/has a space"));
    }
}
