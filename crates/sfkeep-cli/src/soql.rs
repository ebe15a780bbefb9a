//! The columns of a SOQL query, in SELECT order, and the value of each in a record the REST API
//! returned: `Account.Name` read through the nested `Account` object, an aggregate by its
//! alias or `exprN`, a child subquery as its records, `COUNT()` as the query's `totalSize`.
//!
//! The records' own key order cannot give the columns: a JSON object has none that the REST
//! API promises, and serde_json keeps keys sorted. So the SELECT list is read from the query
//! text: enough of SOQL to split it (parentheses, quotes, `TYPEOF … END`), no more. A query
//! this cannot read falls back to the first record's keys.

use serde_json::{Map, Value};

/// What a column reads from a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A field path, `Name` or `Account.Owner.Name`.
    Path(Vec<String>),
    /// `COUNT()`: no field, the query's `totalSize`.
    Count,
    /// A child relationship subquery: its records.
    Children(String),
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The header: the field path as written, the alias, `exprN`, or the relationship.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
}

/// The aggregate functions whose unaliased results the API names `expr0`, `expr1`, ….
const AGGREGATES: &[&str] = &[
    "AVG",
    "COUNT",
    "COUNT_DISTINCT",
    "MIN",
    "MAX",
    "SUM",
    "GROUPING",
];

/// The columns of `soql`, or `None` when its SELECT list cannot be read here.
pub fn columns(soql: &str) -> Option<Vec<Column>> {
    let items = select_items(soql)?;
    let mut columns = Vec::with_capacity(items.len());
    let mut unnamed_aggregates = 0;
    for item in items {
        columns.push(column(&item, &mut unnamed_aggregates)?);
    }
    Some(columns)
}

/// The comma-separated items between the first top-level `SELECT` and `FROM`.
fn select_items(soql: &str) -> Option<Vec<String>> {
    let rest = strip_keyword(soql.trim_start(), "SELECT")?;
    let mut items = vec![String::new()];
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '\\' if quoted => {
                items.last_mut()?.push(c);
                if let Some((_, n)) = chars.next() {
                    items.last_mut()?.push(n);
                }
                continue;
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.checked_sub(1)?,
            ',' if !quoted && depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ if !quoted && depth == 0 && at_keyword(rest, i, "FROM") => {
                let items: Vec<String> = items.iter().map(|s| s.trim().to_owned()).collect();
                return (!items.iter().any(String::is_empty)).then_some(items);
            }
            _ => {}
        }
        items.last_mut()?.push(c);
    }
    None
}

/// `text` after `keyword` (any case) and the whitespace after it.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// Whether the whole word `keyword` starts at byte `at` of `text`: after whitespace or a
/// closing parenthesis, and followed by whitespace or the end.
fn at_keyword(text: &str, at: usize, keyword: &str) -> bool {
    let before = text[..at].chars().next_back();
    let word = text
        .get(at..at + keyword.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(keyword));
    word && before.is_some_and(|c| c.is_whitespace() || c == ')')
        && text[at + keyword.len()..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
}

fn column(item: &str, unnamed_aggregates: &mut usize) -> Option<Column> {
    if item.len() >= 6 && item[..6].eq_ignore_ascii_case("TYPEOF") {
        // Polymorphic fields give each record its own columns: use the records' keys.
        return None;
    }
    if let Some(inner) = item.strip_prefix('(') {
        let inner = inner.strip_suffix(')')?;
        let rel = from_object(inner)?;
        return Some(Column {
            name: rel.clone(),
            source: Source::Children(rel),
        });
    }
    let Some(open) = item.find('(') else {
        let path: Vec<String> = item.split('.').map(str::to_owned).collect();
        let plain = path
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
        return plain.then(|| Column {
            name: item.to_owned(),
            source: Source::Path(path),
        });
    };
    let function = item[..open].trim();
    let close = item.rfind(')')?;
    let argument = item[open + 1..close].trim();
    let alias = item[close + 1..].split_whitespace().next_back();
    if function.eq_ignore_ascii_case("COUNT") && argument.is_empty() && alias.is_none() {
        return Some(Column {
            name: "COUNT()".to_owned(),
            source: Source::Count,
        });
    }
    let is_aggregate = AGGREGATES.iter().any(|a| a.eq_ignore_ascii_case(function))
        || function.to_ascii_uppercase().starts_with("CALENDAR_")
        || function.to_ascii_uppercase().starts_with("FISCAL_")
        || function.to_ascii_uppercase().starts_with("DAY_")
        || function.to_ascii_uppercase().starts_with("WEEK_")
        || function.eq_ignore_ascii_case("HOUR_IN_DAY");
    let name = match alias {
        Some(a) => a.to_owned(),
        None if is_aggregate => {
            let n = *unnamed_aggregates;
            *unnamed_aggregates += 1;
            format!("expr{n}")
        }
        // toLabel(Status), FORMAT(Amount), convertCurrency(Amount): the field's own name.
        None => argument.to_owned(),
    };
    Some(Column {
        source: Source::Path(name.split('.').map(str::to_owned).collect()),
        name,
    })
}

/// The object after `FROM` in a subquery: `SELECT Id FROM Contacts WHERE …` → `Contacts`.
fn from_object(subquery: &str) -> Option<String> {
    let words: Vec<&str> = subquery.split_whitespace().collect();
    let at = words.iter().position(|w| w.eq_ignore_ascii_case("FROM"))?;
    words.get(at + 1).map(|w| (*w).to_owned())
}

/// Columns from a record's own keys (sorted), for a query whose SELECT list is not readable
/// here: nested objects flattened one level per relationship.
pub fn columns_from_record(record: &Value) -> Vec<Column> {
    let mut out = Vec::new();
    flatten_keys(record, &mut Vec::new(), &mut out);
    out
}

fn flatten_keys(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Column>) {
    let Some(obj) = v.as_object() else { return };
    for (k, child) in obj {
        if k == "attributes" {
            continue;
        }
        prefix.push(k.clone());
        match child {
            Value::Object(o) if o.contains_key("records") => out.push(Column {
                name: prefix.join("."),
                source: Source::Children(k.clone()),
            }),
            Value::Object(_) => flatten_keys(child, prefix, out),
            _ => out.push(Column {
                name: prefix.join("."),
                source: Source::Path(prefix.clone()),
            }),
        }
        prefix.pop();
    }
}

/// `key` in `obj`, matched without case first exactly, then ignoring case (the API returns
/// fields in their defined case whatever case the query used).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The value of `column` in `record`; `total_size` answers `COUNT()`.
pub fn value(column: &Column, record: &Value, total_size: u64) -> Value {
    match &column.source {
        Source::Count => Value::from(total_size),
        Source::Path(path) => {
            let mut v = record;
            for part in path {
                match v.as_object().and_then(|o| get(o, part)) {
                    Some(next) => v = next,
                    None => return Value::Null,
                }
            }
            without_attributes(v.clone())
        }
        Source::Children(rel) => match record.as_object().and_then(|o| get(o, rel)) {
            Some(Value::Object(o)) => {
                without_attributes(o.get("records").cloned().unwrap_or_default())
            }
            _ => Value::Null,
        },
    }
}

/// `v` with every `attributes` object removed, at any depth.
pub fn without_attributes(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| k != "attributes")
                .map(|(k, v)| (k, without_attributes(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_attributes).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(soql: &str) -> Vec<String> {
        columns(soql).unwrap().into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn columns_keep_the_select_order() {
        assert_eq!(
            names("SELECT Name, Id, Account.Owner.Name FROM Contact"),
            ["Name", "Id", "Account.Owner.Name"]
        );
        assert_eq!(
            names("select  name,id from Account where Name = 'a, FROM b'"),
            ["name", "id"]
        );
        assert_eq!(names("SELECT AccFROM, Id FROM X"), ["AccFROM", "Id"]);
    }

    #[test]
    fn aggregates_are_named_as_the_api_names_them() {
        assert_eq!(
            names(
                "SELECT StageName, COUNT(Id), SUM(Amount) total, MAX(CloseDate) FROM Opportunity GROUP BY StageName"
            ),
            ["StageName", "expr0", "total", "expr1"]
        );
        assert_eq!(
            columns("SELECT COUNT() FROM Account").unwrap()[0].source,
            Source::Count
        );
        assert_eq!(names("SELECT toLabel(Status) FROM Case"), ["Status"]);
    }

    #[test]
    fn subqueries_are_a_column_of_child_records() {
        let c =
            columns("SELECT Id, (SELECT LastName FROM Contacts WHERE Email != null) FROM Account")
                .unwrap();
        assert_eq!(c[1].source, Source::Children("Contacts".into()));
    }

    #[test]
    fn unreadable_select_lists_fall_back() {
        assert_eq!(
            columns("SELECT TYPEOF What WHEN Account THEN Name END FROM Event"),
            None
        );
        assert_eq!(columns("FIND {x}"), None);
        assert_eq!(columns("SELECT Id, FROM Account"), None);
        assert_eq!(columns("SELECT (Id FROM Account"), None);
    }

    #[test]
    fn relationship_values_are_read_through_and_case_insensitively() {
        let rec = json!({"attributes": {"type": "Contact"}, "Name": "Ada",
            "Account": {"attributes": {"type": "Account"}, "Owner": {"Name": "Grace"}}});
        let c = columns("SELECT name, account.owner.name, Account.Site FROM Contact").unwrap();
        assert_eq!(value(&c[0], &rec, 1), json!("Ada"));
        assert_eq!(value(&c[1], &rec, 1), json!("Grace"));
        assert_eq!(value(&c[2], &rec, 1), Value::Null);
        let empty = json!({"Name": "x", "Account": null});
        assert_eq!(value(&c[1], &empty, 1), Value::Null);
    }

    #[test]
    fn fallback_columns_flatten_relationships() {
        let rec = json!({"attributes": {}, "Id": "1", "Account": {"attributes": {}, "Name": "A"}});
        let names: Vec<String> = columns_from_record(&rec)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Account.Name", "Id"]);
    }
}
