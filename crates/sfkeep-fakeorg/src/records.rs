//! The Account records: generation, create/get/update/delete, upsert by `ExtId__c`,
//! and `touch` (records changing under an incremental sync).

use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::commits::{Commits, Committed};
use crate::ids;

/// A row of a queryable object: field name to value.
pub type Row = Map<String, Value>;

/// Fields a client may write.
const WRITABLE: &[&str] = &[
    "Name",
    "ExtId__c",
    "AccountNumber",
    "Industry",
    "AnnualRevenue",
    "BillingCity",
    "Description",
];
/// Fields the system maintains.
const READ_ONLY: &[&str] = &[
    "Id",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];
/// Every field of an Account row.
pub const FIELDS: &[&str] = &[
    "Id",
    "Name",
    "ExtId__c",
    "AccountNumber",
    "Industry",
    "AnnualRevenue",
    "BillingCity",
    "Description",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];
/// Reads selected fields out of query rows. An Account row holds exactly [`FIELDS`], and a
/// map iterates its keys in sorted order, so a field of an Account row is found by position
/// among its values: no key comparisons, each of which reads another scattered heap string
/// (searching 7 fields in each of 100,000 rows was most of rendering a query's results).
/// Rows of other objects, or of another shape, are searched by key.
pub struct Picker<'f> {
    fields: &'f [&'f str],
    /// Position of each field among an Account row's values, when all are Account fields.
    positions: Option<Vec<usize>>,
}

impl<'f> Picker<'f> {
    /// A picker of `fields` (canonical names) from rows of `object`.
    pub fn new(object: &str, fields: &'f [&'f str]) -> Self {
        let mut sorted: Vec<&str> = FIELDS.to_vec();
        sorted.sort_unstable();
        let positions = (object == "Account")
            .then(|| {
                fields
                    .iter()
                    .map(|f| sorted.iter().position(|s| s == f))
                    .collect::<Option<Vec<usize>>>()
            })
            .flatten();
        Picker { fields, positions }
    }

    /// The selected fields of `row`, in order (null for a field the row lacks), into `out`.
    pub fn pick<'r>(&self, row: &'r Row, out: &mut Vec<&'r Value>) {
        out.clear();
        match &self.positions {
            Some(positions) if row.len() == FIELDS.len() => {
                let mut values = [&Value::Null; FIELDS.len()];
                for (slot, v) in values.iter_mut().zip(row.values()) {
                    *slot = v;
                }
                out.extend(positions.iter().map(|&p| values[p]));
            }
            _ => out.extend(
                self.fields
                    .iter()
                    .map(|f| row.get(*f).unwrap_or(&Value::Null)),
            ),
        }
    }
}

const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Banking",
    "Biotechnology",
    "Construction",
    "Education",
    "Energy",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Technology",
];
const CITIES: &[&str] = &[
    "Berlin", "Boston", "Lisbon", "London", "Osaka", "Paris", "Sydney", "Toronto",
];

/// A record-level failure, mapped to a REST error by the caller.
#[derive(Debug, PartialEq)]
pub struct RecordError {
    /// HTTP status.
    pub status: u16,
    /// Salesforce errorCode.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Offending fields, if any.
    pub fields: Vec<String>,
}

impl RecordError {
    /// An error with no offending fields.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        RecordError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }
}

/// The Account table. Cloned to roll an all-or-none write back.
#[derive(Clone)]
pub struct Accounts {
    rows: Vec<Row>,
    /// `IsDeleted` of each row, kept beside the rows: every query filters on it, and a
    /// lookup in each of 100,000 scattered maps costs more than the rest of a `COUNT()`.
    deleted: Vec<bool>,
    pod: String,
    next: u64,
    /// The last SystemModstamp written: stamps only move forward. Two writes in one
    /// millisecond share its stamp, as on Salesforce.
    last_stamp: OffsetDateTime,
    /// Writes stamped but not yet committed (the commit-lag mode).
    commits: Commits,
}

impl Accounts {
    /// `n` generated accounts, created over the 30 days before `now`.
    pub fn generate(n: usize, pod: &str, now: OffsetDateTime) -> Self {
        let mut a = Accounts {
            rows: Vec::with_capacity(n),
            deleted: vec![false; n],
            pod: pod.to_owned(),
            next: 0,
            last_stamp: now - Duration::days(31),
            commits: Commits::default(),
        };
        for i in 0..n {
            let created = now - Duration::days(30) + Duration::seconds(i as i64 % 86_400);
            let stamp = ids::sf_datetime(created);
            let id = a.new_id();
            let mut row = Row::new();
            row.insert("Id".into(), json!(id));
            row.insert("Name".into(), json!(format!("Account {:06}", i + 1)));
            row.insert("ExtId__c".into(), json!(format!("EXT-{:06}", i + 1)));
            row.insert("AccountNumber".into(), json!(format!("AN{:06}", i + 1)));
            row.insert("Industry".into(), json!(INDUSTRIES[i % INDUSTRIES.len()]));
            row.insert(
                "AnnualRevenue".into(),
                json!(((i as u64 * 7919) % 500 + 1) as f64 * 10_000.0),
            );
            row.insert("BillingCity".into(), json!(CITIES[i % CITIES.len()]));
            row.insert("Description".into(), Value::Null);
            row.insert("CreatedDate".into(), json!(stamp));
            row.insert("LastModifiedDate".into(), json!(stamp));
            row.insert("SystemModstamp".into(), json!(stamp));
            row.insert("IsDeleted".into(), json!(false));
            a.rows.push(row);
            if created > a.last_stamp {
                a.last_stamp = created;
            }
        }
        a
    }

    fn new_id(&mut self) -> String {
        self.next += 1;
        ids::id18("001", &self.pod, self.next)
    }

    fn stamp(&mut self, now: OffsetDateTime) -> String {
        let t = if now > self.last_stamp {
            now
        } else {
            self.last_stamp + Duration::milliseconds(1)
        };
        self.last_stamp = t;
        ids::sf_datetime(t)
    }

    /// The writes waiting to commit and the commit-lag setting.
    pub fn commits(&self) -> &Commits {
        &self.commits
    }

    /// As [`Accounts::commits`], to change the setting or take the request's wait.
    pub fn commits_mut(&mut self) -> &mut Commits {
        &mut self.commits
    }

    /// Commits every lagged write whose time has come.
    pub fn settle(&mut self, now: OffsetDateTime) {
        let due = self.commits.take_due(Some(now), None, None);
        self.put_back(due);
    }

    /// Commits lagged write number `write` now (its writer is about to be answered).
    pub fn commit_write(&mut self, write: u64) {
        let due = self.commits.take_due(None, None, Some(write));
        self.put_back(due);
    }

    fn put_back(&mut self, committed: Vec<Committed>) {
        for c in committed {
            match c.index {
                Some(i) => {
                    self.rows[i] = c.row;
                    self.deleted[i] = c.deleted;
                }
                None => {
                    self.rows.push(c.row);
                    self.deleted.push(c.deleted);
                }
            }
        }
    }

    /// Before a write to row `i`: a lagged write to it commits first (the row lock), and
    /// the row as it is now is kept if this write may lag.
    fn begin_write(&mut self, i: usize) -> Option<(Row, bool)> {
        let due = self.commits.take_due(None, Some(i), None);
        self.put_back(due);
        self.commits
            .may_lag()
            .then(|| (self.rows[i].clone(), self.deleted[i]))
    }

    /// After a write to row `i` (stamped last): if it lags, the new version waits and the old
    /// one (`before`, from [`Accounts::begin_write`]) is what everyone sees until then.
    fn end_write(&mut self, i: usize, before: Option<(Row, bool)>) {
        let Some(lagged) = self.commits.count_write(self.last_stamp) else {
            return;
        };
        let Some((row, deleted)) = before else {
            return;
        };
        let new_row = std::mem::replace(&mut self.rows[i], row);
        let new_deleted = std::mem::replace(&mut self.deleted[i], deleted);
        self.commits.hold(lagged, Some(i), new_row, new_deleted);
    }

    /// Records not deleted.
    pub fn live_count(&self) -> usize {
        self.deleted.iter().filter(|d| !**d).count()
    }

    /// All rows (`include_deleted` for queryAll), borrowed.
    pub fn rows(&self, include_deleted: bool) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .zip(&self.deleted)
            .filter(move |(_, deleted)| include_deleted || !**deleted)
            .map(|(r, _)| r)
    }

    fn position(&self, id: &str) -> Option<usize> {
        // 15- and 18-char forms of the same id both match.
        let id15 = id.get(..15)?;
        if id.len() != 15 && id.len() != 18 {
            return None;
        }
        self.rows.iter().position(|r| {
            r.get("Id")
                .and_then(Value::as_str)
                .is_some_and(|rid| rid.starts_with(id15))
        })
    }

    fn position_ext(&self, ext: &str) -> Option<usize> {
        self.rows
            .iter()
            .zip(&self.deleted)
            .position(|(r, deleted)| {
                !deleted && r.get("ExtId__c").and_then(Value::as_str) == Some(ext)
            })
    }

    /// The record with `id`.
    pub fn get(&self, id: &str) -> Result<Row, RecordError> {
        let i = self.position(id).ok_or_else(not_found)?;
        let row = &self.rows[i];
        if self.deleted[i] {
            return Err(RecordError::new(
                404,
                "ENTITY_IS_DELETED",
                "entity is deleted",
            ));
        }
        Ok(row.clone())
    }

    /// The record whose `ExtId__c` is `ext`.
    pub fn get_by_ext(&self, ext: &str) -> Result<Row, RecordError> {
        self.position_ext(ext)
            .map(|i| self.rows[i].clone())
            .ok_or_else(not_found)
    }

    /// Creates a record; returns its id.
    pub fn create(
        &mut self,
        body: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<String, RecordError> {
        validate(body, true)?;
        let id = self.new_id();
        let stamp = self.stamp(now);
        let mut row = Row::new();
        row.insert("Id".into(), json!(id));
        for f in WRITABLE {
            row.insert((*f).into(), body.get(*f).cloned().unwrap_or(Value::Null));
        }
        for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
            row.insert(f.into(), json!(stamp));
        }
        row.insert("IsDeleted".into(), json!(false));
        match self.commits.count_write(self.last_stamp) {
            // Not visible to anyone until it commits.
            Some(lagged) => self.commits.hold(lagged, None, row, false),
            None => {
                self.rows.push(row);
                self.deleted.push(false);
            }
        }
        Ok(id)
    }

    /// Updates a record.
    pub fn update(
        &mut self,
        id: &str,
        body: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<(), RecordError> {
        validate(body, false)?;
        let i = self.position(id).ok_or_else(not_found)?;
        let before = self.begin_write(i);
        self.get(id)?;
        self.apply(i, body, now);
        self.end_write(i, before);
        Ok(())
    }

    fn apply(&mut self, i: usize, body: &Map<String, Value>, now: OffsetDateTime) {
        let stamp = self.stamp(now);
        let row = &mut self.rows[i];
        for (k, v) in body {
            if let Some(f) = WRITABLE.iter().find(|f| f.eq_ignore_ascii_case(k)) {
                row.insert((*f).into(), v.clone());
            }
        }
        row.insert("LastModifiedDate".into(), json!(stamp));
        row.insert("SystemModstamp".into(), json!(stamp));
    }

    /// Deletes a record (it stays visible to queryAll with `IsDeleted = true`).
    pub fn delete(&mut self, id: &str, now: OffsetDateTime) -> Result<(), RecordError> {
        let i = self.position(id).ok_or_else(not_found)?;
        let before = self.begin_write(i);
        self.get(id)?;
        let stamp = self.stamp(now);
        let row = &mut self.rows[i];
        row.insert("IsDeleted".into(), json!(true));
        self.deleted[i] = true;
        row.insert("SystemModstamp".into(), json!(stamp));
        self.end_write(i, before);
        Ok(())
    }

    /// Upsert by `ExtId__c`: returns `(id, created)`.
    pub fn upsert_ext(
        &mut self,
        ext: &str,
        body: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<(String, bool), RecordError> {
        let mut body = body.clone();
        // The external id comes from the URL; a conflicting value in the body is an error.
        if let Some(v) = body.get("ExtId__c")
            && v.as_str() != Some(ext)
        {
            return Err(RecordError::new(
                400,
                "INVALID_FIELD",
                "Unable to create/update fields: ExtId__c. The external ID in the URL and in the body differ.",
            ));
        }
        body.insert("ExtId__c".into(), json!(ext));
        match self.position_ext(ext) {
            Some(i) => {
                validate(&body, false)?;
                let before = self.begin_write(i);
                if self.deleted[i] {
                    // A lagged delete of the record committed just now: the upsert creates.
                    return self.create(&body, now).map(|id| (id, true));
                }
                self.apply(i, &body, now);
                self.end_write(i, before);
                let id = self.rows[i]["Id"].as_str().unwrap_or_default().to_owned();
                Ok((id, false))
            }
            None => self.create(&body, now).map(|id| (id, true)),
        }
    }

    /// Changes `n` live records (new SystemModstamp and revenue); returns their ids.
    pub fn touch(&mut self, n: usize, now: OffsetDateTime) -> Vec<String> {
        let live: Vec<usize> = (0..self.rows.len()).filter(|i| !self.deleted[*i]).collect();
        let mut picked = live;
        fastrand::shuffle(&mut picked);
        picked.truncate(n);
        picked.sort_unstable();
        let mut ids = Vec::with_capacity(picked.len());
        for i in picked {
            let before = self.begin_write(i);
            if self.deleted[i] {
                // A lagged delete of this row committed just now.
                continue;
            }
            let stamp = self.stamp(now);
            let row = &mut self.rows[i];
            let revenue = row
                .get("AnnualRevenue")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            row.insert("AnnualRevenue".into(), json!(revenue + 1000.0));
            row.insert("LastModifiedDate".into(), json!(stamp));
            row.insert("SystemModstamp".into(), json!(stamp));
            ids.push(row["Id"].as_str().unwrap_or_default().to_owned());
            self.end_write(i, before);
        }
        ids
    }
}

fn not_found() -> RecordError {
    RecordError::new(404, "NOT_FOUND", "The requested resource does not exist")
}

fn validate(body: &Map<String, Value>, creating: bool) -> Result<(), RecordError> {
    for (k, v) in body {
        if READ_ONLY.iter().any(|f| f.eq_ignore_ascii_case(k)) {
            let mut e = RecordError::new(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {k}. Please check the security settings of this field and verify that it is read/write for your user or organization."
                ),
            );
            e.fields.push(k.clone());
            return Err(e);
        }
        let Some(f) = WRITABLE.iter().find(|f| f.eq_ignore_ascii_case(k)) else {
            if k == "attributes" {
                continue;
            }
            return Err(RecordError::new(
                400,
                "INVALID_FIELD",
                format!("No such column '{k}' on sobject of type Account"),
            ));
        };
        let ok = match *f {
            "AnnualRevenue" => v.is_number() || v.is_null(),
            _ => v.is_string() || v.is_null(),
        };
        if !ok {
            return Err(RecordError::new(
                400,
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {} from {} value for field {f}",
                    if *f == "AnnualRevenue" {
                        "currency"
                    } else {
                        "string"
                    },
                    json_kind(v)
                ),
            ));
        }
    }
    if creating {
        let name = body
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Name"))
            .map(|(_, v)| v);
        if name.is_none_or(|v| v.as_str().is_none_or(|s| s.is_empty())) {
            let mut e = RecordError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [Name]",
            );
            e.fields.push("Name".into());
            return Err(e);
        }
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn crud_and_upsert() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(3, "5g00", now);
        assert_eq!(a.live_count(), 3);
        let id = a.create(&body(json!({"Name": "X"})), now).unwrap();
        assert_eq!(id.len(), 18);
        assert_eq!(a.get(&id[..15]).unwrap()["Name"], "X");
        assert_eq!(
            a.create(&body(json!({"Foo": 1})), now).unwrap_err().code,
            "INVALID_FIELD"
        );
        assert_eq!(
            a.create(&body(json!({})), now).unwrap_err().code,
            "REQUIRED_FIELD_MISSING"
        );
        let (uid, created) = a
            .upsert_ext("EXT-000001", &body(json!({"Name": "Y"})), now)
            .unwrap();
        assert!(!created);
        assert_eq!(a.get(&uid).unwrap()["Name"], "Y");
        let (_, created) = a
            .upsert_ext("NEW", &body(json!({"Name": "Z"})), now)
            .unwrap();
        assert!(created);
        a.delete(&id, now).unwrap();
        assert_eq!(a.get(&id).unwrap_err().code, "ENTITY_IS_DELETED");
        assert_eq!(a.live_count(), 4);
    }

    #[test]
    fn every_row_has_exactly_the_declared_fields() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(2, "5g00", now);
        a.create(&body(json!({"Name": "X"})), now).unwrap();
        let mut declared: Vec<&str> = FIELDS.to_vec();
        declared.sort_unstable();
        for row in a.rows(true) {
            let keys: Vec<&str> = row.keys().map(String::as_str).collect();
            assert_eq!(keys, declared);
        }
    }

    #[test]
    fn the_picker_reads_the_same_values_as_a_key_lookup() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(3, "5g00", now);
        let id = a.create(&body(json!({"Name": "X"})), now).unwrap();
        a.delete(&id, now).unwrap();
        let mut all: Vec<&str> = FIELDS.to_vec();
        all.reverse();
        let mut out = Vec::new();
        for fields in [&all[..], &["Name", "Id", "Name"][..], &["Nope", "Id"][..]] {
            for object in ["Account", "User"] {
                let picker = Picker::new(object, fields);
                for row in a.rows(true) {
                    picker.pick(row, &mut out);
                    let expected: Vec<&Value> = fields
                        .iter()
                        .map(|f| row.get(*f).unwrap_or(&Value::Null))
                        .collect();
                    assert_eq!(out, expected, "{object} {fields:?}");
                }
            }
        }
    }

    #[test]
    fn touch_moves_stamps_forward() {
        let now = OffsetDateTime::now_utc();
        let mut a = Accounts::generate(5, "5g00", now);
        let ids = a.touch(2, now);
        assert_eq!(ids.len(), 2);
        let stamps: Vec<String> = ids
            .iter()
            .map(|i| {
                a.get(i).unwrap()["SystemModstamp"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(stamps[0] < stamps[1] || stamps[0] != stamps[1]);
    }
}
