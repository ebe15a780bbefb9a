//! `sfkeep sync accounts --verify`: every stored field of every row compared with the org, as
//! the REST API sends it now. Numbers compare as the doubles they are, an empty string is not
//! a null, and the first difference is reported.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use sfkeep::client::Client;

use super::SyncError;
use super::db::{BillingDb, DbError, StoredRow, SyncRecord};
use super::reader::Reader;
use super::stamp::Stamp;

/// What a verification found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Verification {
    /// The fields compared (the database's field list).
    pub fields: Vec<String>,
    /// Live Accounts in the org.
    pub org_records: u64,
    /// Rows in the billing database.
    pub db_rows: u64,
    /// Rows equal to the org's record in every field.
    pub matching: u64,
    /// Records of the org the database does not have.
    pub lost: u64,
    /// Rows older than the org's record (changed in the org since the last sync).
    pub stale: u64,
    /// Rows of the same version as the org's record whose fields differ.
    pub differing: u64,
    /// Rows whose record the org does not have (deleted there, or never there).
    pub extra: u64,
    /// The first difference found, in words.
    pub first_difference: Option<String>,
}

impl Verification {
    /// The database equals the org, field by field.
    pub fn is_exact(&self) -> bool {
        self.lost + self.stale + self.differing + self.extra == 0
    }
}

/// Compares every row of `db` with the org's Account of the same Id, field by field.
pub async fn verify(client: &Client, db: &BillingDb) -> Result<Verification, SyncError> {
    let state = db.state()?;
    let not_synced = || DbError::NotSynced {
        path: db.path().to_owned(),
    };
    let fields = match (state.watermark, state.fields) {
        (_, Some(f)) => f,
        (None, None) => return Err(not_synced().into()),
        // A database from before the field list was recorded: a sync backfills it first.
        (Some(_), None) => {
            return Err(DbError::FieldListUnknown {
                path: db.path().to_owned(),
            }
            .into());
        }
    };
    let keep_is_deleted = fields.iter().any(|f| f == "IsDeleted");
    let select = format!("SELECT {} FROM Account", fields.join(", "));
    let mut reader = Reader::new(client, select, false, None, Duration::ZERO);
    let mut v = Verification {
        fields: fields.clone(),
        ..Verification::default()
    };
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(page) = reader.next_page().await? {
        for (i, r) in page.iter().enumerate() {
            let org = SyncRecord::from_value_keeping(i, r, keep_is_deleted)?;
            // A query made again after a cursor expired reads some records twice.
            if !seen.insert(org.id.clone()) {
                continue;
            }
            v.org_records += 1;
            let Some(row) = db.row(&org.id)? else {
                v.lost += 1;
                note(&mut v, || {
                    format!("Account {} is in the org but not in the billing DB", org.id)
                });
                continue;
            };
            match compare(&row, &org) {
                None => v.matching += 1,
                Some(Difference { newer_in_org, text }) => {
                    if newer_in_org {
                        v.stale += 1;
                    } else {
                        v.differing += 1;
                    }
                    note(&mut v, || text);
                }
            }
        }
    }
    let mut extra: Option<String> = None;
    db.for_each_id(|id| {
        v.db_rows += 1;
        if !seen.contains(id) {
            v.extra += 1;
            extra.get_or_insert_with(|| id.to_owned());
        }
    })?;
    if let Some(id) = extra {
        note(&mut v, || {
            format!("Account {id} is in the billing DB but not in the org (deleted there?)")
        });
    }
    Ok(v)
}

fn note(v: &mut Verification, text: impl FnOnce() -> String) {
    if v.first_difference.is_none() {
        v.first_difference = Some(text());
    }
}

/// How a row differs from the org's record.
struct Difference {
    /// The org's version is newer: the record changed after the last sync.
    newer_in_org: bool,
    /// The first differing field, in words.
    text: String,
}

fn compare(row: &StoredRow, org: &SyncRecord) -> Option<Difference> {
    let newer_in_org = Stamp::parse(&row.system_modstamp)
        .is_none_or(|stored| org.system_modstamp.ms() > stored.ms());
    let stored: Value = match serde_json::from_str(&row.record) {
        Ok(v) => v,
        Err(e) => {
            return Some(Difference {
                newer_in_org: false,
                text: format!("Account {}: the stored record is not JSON ({e})", org.id),
            });
        }
    };
    let fresh: Value = serde_json::from_str(&org.json).unwrap_or(Value::Null);
    let empty = serde_json::Map::new();
    let (a, b) = (
        stored.as_object().unwrap_or(&empty),
        fresh.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    let field = keys.into_iter().find(|k| !same(a.get(*k), b.get(*k)))?;
    let shown = |v: Option<&Value>| match v {
        None => "no such field".to_owned(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 60 {
                format!("{}…", text.chars().take(60).collect::<String>())
            } else {
                text
            }
        }
    };
    Some(Difference {
        newer_in_org,
        text: format!(
            "Account {} {field}: the billing DB has {}, the org has {}{}",
            org.id,
            shown(a.get(field)),
            shown(b.get(field)),
            if newer_in_org {
                " (changed in the org since the last sync)"
            } else {
                ""
            }
        ),
    })
}

/// Two JSON values are the same value: numbers by the double they name (an integer and the
/// same value written as a decimal are equal), everything else exactly (`""` is not null).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn org(v: Value) -> SyncRecord {
        SyncRecord::from_value_keeping(0, &v, false).unwrap()
    }

    fn row(v: Value) -> StoredRow {
        StoredRow {
            system_modstamp: v["SystemModstamp"].as_str().unwrap().to_owned(),
            record: v.to_string(),
        }
    }

    const T0: &str = "2026-01-01T00:00:00.000+0000";
    const T1: &str = "2026-01-01T00:00:01.000+0000";

    #[test]
    fn values_compare_exactly() {
        let base = json!({"Id": "001A", "SystemModstamp": T0, "Name": "", "AnnualRevenue": 1e-8});
        assert!(compare(&row(base.clone()), &org(base.clone())).is_none());
        let mut null_name = base.clone();
        null_name["Name"] = Value::Null;
        let d = compare(&row(base.clone()), &org(null_name)).unwrap();
        assert!(!d.newer_in_org);
        assert!(
            d.text
                .contains("Name: the billing DB has \"\", the org has null"),
            "{}",
            d.text
        );
        let mut ulp = base.clone();
        ulp["AnnualRevenue"] = json!(f64::from_bits(1e-8f64.to_bits() + 1));
        let d = compare(&row(base.clone()), &org(ulp)).unwrap();
        assert!(d.text.contains("AnnualRevenue"), "{}", d.text);
        let mut newer = base.clone();
        newer["SystemModstamp"] = json!(T1);
        let d = compare(&row(base.clone()), &org(newer)).unwrap();
        assert!(d.newer_in_org, "{}", d.text);
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("Name");
        let d = compare(&row(missing), &org(base)).unwrap();
        assert!(d.text.contains("has no such field"), "{}", d.text);
        assert!(same(Some(&json!(5)), Some(&json!(5.0))));
        assert!(!same(Some(&json!(5)), Some(&json!("5"))));
    }
}
