//! Record writes shared by the APIs that take many records at once — sObject Collections,
//! Bulk API 2.0 ingest jobs and Bulk API 1.0 batches: one operation on one Account record,
//! with Salesforce's per-record result (`id`, `created`, or an error with its status code).
//! Each write is committed when it is applied: a client that goes away afterwards does not
//! undo it (docs/salesforce-bulk.md).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::records::{Accounts, FIELDS, RecordError};

/// What a job or a collection does to each record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Create.
    Insert,
    /// Update by `Id`.
    Update,
    /// Update by the external id field, or create when no record has its value.
    Upsert,
    /// Delete by `Id` (to the recycle bin).
    Delete,
    /// Delete by `Id`, bypassing the recycle bin (modelled as a delete).
    HardDelete,
}

impl Operation {
    /// The operation a job names (`insert`, `update`, `upsert`, `delete`, `hardDelete`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "upsert" => Operation::Upsert,
            "delete" => Operation::Delete,
            "hardDelete" => Operation::HardDelete,
            _ => return None,
        })
    }

    /// The job field's value.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
            Operation::HardDelete => "hardDelete",
        }
    }
}

/// A record written.
#[derive(Debug, PartialEq)]
pub struct Written {
    /// The record's 18-character id.
    pub id: String,
    /// Whether it was created (insert, or an upsert that found no match).
    pub created: bool,
}

/// Applies `op` to one record whose values are JSON (sObject Collections, JSON batches).
/// `external_id` is the upsert key field (`ExtId__c` or `Id`).
pub fn write(
    accounts: &mut Accounts,
    op: Operation,
    external_id: Option<&str>,
    mut record: Map<String, Value>,
    now: OffsetDateTime,
) -> Result<Written, RecordError> {
    record.remove("attributes");
    match op {
        Operation::Insert => accounts
            .create(&record, now)
            .map(|id| Written { id, created: true }),
        Operation::Update => {
            let id = take_id(&mut record, "update")?;
            let id = canonical_id(accounts, &id)?;
            accounts.update(&id, &record, now)?;
            Ok(Written { id, created: false })
        }
        Operation::Upsert => upsert(accounts, external_id.unwrap_or("Id"), record, now),
        Operation::Delete | Operation::HardDelete => {
            let id = take_id(&mut record, "delete")?;
            let id = canonical_id(accounts, &id)?;
            accounts.delete(&id, now)?;
            Ok(Written { id, created: false })
        }
    }
}

fn upsert(
    accounts: &mut Accounts,
    key: &str,
    mut record: Map<String, Value>,
    now: OffsetDateTime,
) -> Result<Written, RecordError> {
    if key.eq_ignore_ascii_case("Id") {
        let id = record
            .remove("Id")
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.is_empty());
        return match id {
            Some(id) => {
                let id = canonical_id(accounts, &id)?;
                accounts.update(&id, &record, now)?;
                Ok(Written { id, created: false })
            }
            None => accounts
                .create(&record, now)
                .map(|id| Written { id, created: true }),
        };
    }
    let value = record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| RecordError::new(400, "MISSING_ARGUMENT", format!("{key} not specified")))?;
    accounts
        .upsert_ext(&value, &record, now)
        .map(|(id, created)| Written { id, created })
}

/// The record's 18-character id (a 15-character one is accepted, as Salesforce does).
fn canonical_id(accounts: &Accounts, id: &str) -> Result<String, RecordError> {
    let row = accounts.get(id).map_err(|e| {
        if e.code == "NOT_FOUND" {
            RecordError::new(
                404,
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            )
        } else {
            e
        }
    })?;
    Ok(row
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned())
}

fn take_id(record: &mut Map<String, Value>, call: &str) -> Result<String, RecordError> {
    let key = record
        .keys()
        .find(|k| k.eq_ignore_ascii_case("Id"))
        .cloned();
    key.and_then(|k| record.remove(&k))
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            RecordError::new(
                400,
                "MISSING_ARGUMENT",
                format!("Id not specified in an {call} call"),
            )
        })
}

/// The Account field a CSV or XML column names (case-insensitively), or the column itself
/// when it names none: the caller fails the batch with `Field name not found`.
pub fn field(column: &str) -> Result<&'static str, String> {
    FIELDS
        .iter()
        .find(|f| f.eq_ignore_ascii_case(column.trim()))
        .copied()
        .ok_or_else(|| column.trim().to_owned())
}

/// The batch- or job-level message for a column that is no Account field (Bulk API's text).
pub fn unknown_field(column: &str) -> String {
    format!("InvalidBatch : Field name not found : {column}")
}

/// A record whose values arrived as text (CSV, XML): an empty value is left out (a Bulk load
/// leaves the field unchanged), `#N/A` sets it to null, AnnualRevenue must be a number.
pub fn record_from_text<'a>(
    pairs: impl IntoIterator<Item = (&'static str, &'a str)>,
) -> Result<Map<String, Value>, RecordError> {
    let mut record = Map::new();
    for (field, text) in pairs {
        if text.is_empty() {
            continue;
        }
        let value = if text == "#N/A" {
            Value::Null
        } else if field == "AnnualRevenue" {
            match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => json!(n),
                _ => {
                    let mut e = RecordError::new(
                        400,
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("Annual Revenue: value not of required type: {text}"),
                    );
                    e.fields.push(field.to_owned());
                    return Err(e);
                }
            }
        } else {
            json!(text)
        };
        record.insert(field.to_owned(), value);
    }
    Ok(record)
}

/// `STATUS_CODE:message:fields --`, the error column of a Bulk result file.
pub fn error_text(e: &RecordError) -> String {
    format!("{}:{}:{} --", e.code, e.message, e.fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn each_operation_reports_what_it_did() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(2, "5g00", now);
        let w = write(
            &mut a,
            Operation::Insert,
            None,
            body(json!({"Name": "N"})),
            now,
        )
        .unwrap();
        assert!(w.created);
        let u = write(
            &mut a,
            Operation::Update,
            None,
            body(json!({"Id": &w.id[..15], "Name": "M"})),
            now,
        )
        .unwrap();
        assert_eq!(
            u,
            Written {
                id: w.id.clone(),
                created: false
            }
        );
        let e = write(
            &mut a,
            Operation::Update,
            None,
            body(json!({"Name": "M"})),
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, "MISSING_ARGUMENT");
        let up = write(
            &mut a,
            Operation::Upsert,
            Some("ExtId__c"),
            body(json!({"ExtId__c": "EXT-000001", "Name": "Up"})),
            now,
        )
        .unwrap();
        assert!(!up.created);
        let new = write(
            &mut a,
            Operation::Upsert,
            Some("ExtId__c"),
            body(json!({"ExtId__c": "EXT-NEW", "Name": "Up"})),
            now,
        )
        .unwrap();
        assert!(new.created);
        write(
            &mut a,
            Operation::Delete,
            None,
            body(json!({"Id": w.id})),
            now,
        )
        .unwrap();
        let gone = write(
            &mut a,
            Operation::Delete,
            None,
            body(json!({"Id": "001000000000000AAA"})),
            now,
        )
        .unwrap_err();
        assert_eq!(gone.code, "INVALID_CROSS_REFERENCE_KEY");
    }

    #[test]
    fn text_values_follow_the_bulk_rules() {
        let r =
            record_from_text([("Name", "A"), ("BillingCity", ""), ("Industry", "#N/A")]).unwrap();
        assert_eq!(Value::Object(r), json!({"Name": "A", "Industry": null}));
        let e = record_from_text([("AnnualRevenue", "lots")]).unwrap_err();
        assert_eq!(e.code, "INVALID_TYPE_ON_FIELD_IN_RECORD");
        assert_eq!(
            error_text(&e),
            "INVALID_TYPE_ON_FIELD_IN_RECORD:Annual Revenue: value not of required type: lots:AnnualRevenue --"
        );
        assert_eq!(field("name "), Ok("Name"));
        assert_eq!(field("Nope"), Err("Nope".to_owned()));
    }
}
