//! Bulk API 2.0 results (RFC 4180 CSV, header line first) straight into records for the
//! database, keeping an empty string apart from a null: an empty cell without quotes is null,
//! `""` is the empty string (docs/sync.md). The `csv` crate cannot tell the two apart, so this
//! reads the cells itself.

use std::borrow::Cow;

use super::SyncError;
use super::db::{DbError, SyncRecord};
use super::fields::{FieldKind, FieldList};
use super::stamp::Stamp;

/// One cell: `None` for an unquoted empty cell (null).
type Cell<'a> = Option<Cow<'a, str>>;

/// Reads the cells of a CSV text one record at a time.
struct Cells<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cells<'a> {
    /// The next record's cells into `out`; `false` at the end of the text.
    fn next_record(&mut self, out: &mut Vec<Cell<'a>>) -> Result<bool, String> {
        out.clear();
        let bytes = self.text.as_bytes();
        if self.pos >= bytes.len() {
            return Ok(false);
        }
        loop {
            let (cell, end) = self.cell()?;
            out.push(cell);
            match bytes.get(end) {
                Some(b',') => self.pos = end + 1,
                Some(b'\r') if bytes.get(end + 1) == Some(&b'\n') => {
                    self.pos = end + 2;
                    return Ok(true);
                }
                Some(b'\n') => {
                    self.pos = end + 1;
                    return Ok(true);
                }
                None => {
                    self.pos = end;
                    return Ok(true);
                }
                Some(_) => {
                    return Err(format!(
                        "a quoted cell is followed by text at byte {end}, not by a comma or a line end"
                    ));
                }
            }
        }
    }

    /// The cell at `self.pos` and where it ends (at its delimiter).
    fn cell(&self) -> Result<(Cell<'a>, usize), String> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        if bytes.get(start) != Some(&b'"') {
            let len = bytes[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'\n' | b'\r'))
                .unwrap_or(bytes.len() - start);
            let end = start + len;
            let cell = (len > 0).then(|| Cow::Borrowed(&self.text[start..end]));
            return Ok((cell, end));
        }
        // Quoted: up to the closing quote, with `""` standing for one quote.
        let mut owned: Option<String> = None;
        let mut from = start + 1;
        loop {
            let Some(q) = bytes[from..].iter().position(|b| *b == b'"') else {
                return Err(format!("a quoted cell opened at byte {start} never closes"));
            };
            let quote = from + q;
            if bytes.get(quote + 1) == Some(&b'"') {
                owned
                    .get_or_insert_with(String::new)
                    .push_str(&self.text[from..=quote]);
                from = quote + 2;
                continue;
            }
            let cell = match owned {
                Some(mut s) => {
                    s.push_str(&self.text[from..quote]);
                    Cow::Owned(s)
                }
                None => Cow::Borrowed(&self.text[start + 1..quote]),
            };
            return Ok((Some(cell), quote + 1));
        }
    }
}

/// Parses a Bulk 2.0 results page into records. `fields` types the cells: a number or boolean
/// field's text becomes the JSON number or boolean REST would send. Each record's JSON has its
/// keys sorted, as a serde_json map writes them, so a row loaded from CSV is stored exactly as
/// the same row fetched over REST.
pub fn records(body: &[u8], fields: &FieldList) -> Result<Vec<SyncRecord>, SyncError> {
    let bad = |problem: String| {
        SyncError::Salesforce(sfkeep::Error::MalformedResponse {
            source_name: "Bulk 2.0 results".into(),
            problem,
            status: 200,
            snippet: sfkeep::error::redacted_snippet(body),
        })
    };
    let text = std::str::from_utf8(body).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    let mut cells = Cells { text, pos: 0 };
    let mut header: Vec<Cell<'_>> = Vec::new();
    if !cells
        .next_record(&mut header)
        .map_err(|e| bad(format!("bad CSV: {e}")))?
    {
        return Ok(Vec::new());
    }
    let headers: Vec<String> = header
        .iter()
        .map(|c| c.as_deref().unwrap_or_default().to_owned())
        .collect();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let id_col = column("Id");
    let stamp_col = column("SystemModstamp");
    let name_col = column("Name");
    let mut order: Vec<usize> = (0..headers.len()).collect();
    order.sort_by(|a, b| headers[*a].cmp(&headers[*b]));
    order.dedup_by(|a, b| headers[*a] == headers[*b]);
    let keys: Vec<String> = order
        .iter()
        .map(|&i| format!("{}:", serde_json::Value::from(headers[i].as_str())))
        .collect();
    let kinds: Vec<FieldKind> = order.iter().map(|&i| fields.kind(&headers[i])).collect();
    let mut out = Vec::new();
    let mut rec: Vec<Cell<'_>> = Vec::with_capacity(headers.len());
    loop {
        let index = out.len();
        if !cells
            .next_record(&mut rec)
            .map_err(|e| bad(format!("bad CSV: {e}")))?
        {
            break;
        }
        if rec.len() != headers.len() {
            return Err(bad(format!(
                "bad CSV: row {index} has {} cells for {} columns",
                rec.len(),
                headers.len()
            )));
        }
        let cell = |col: Option<usize>| {
            col.and_then(|i| rec[i].as_deref())
                .filter(|v| !v.is_empty())
        };
        let id = cell(id_col).ok_or(DbError::BadRecord { index, field: "Id" })?;
        let stamp_text = cell(stamp_col).ok_or(DbError::BadRecord {
            index,
            field: "SystemModstamp",
        })?;
        let system_modstamp = Stamp::parse(stamp_text).ok_or_else(|| DbError::BadStamp {
            index,
            value: stamp_text.to_owned(),
        })?;
        let mut json = String::with_capacity(64 + 24 * keys.len());
        json.push('{');
        for (n, ((&i, key), kind)) in order.iter().zip(&keys).zip(&kinds).enumerate() {
            if n > 0 {
                json.push(',');
            }
            json.push_str(key);
            match (rec[i].as_deref(), kind) {
                (None, _) => json.push_str("null"),
                // Only text can be empty; an empty number or boolean is no value.
                (Some(""), FieldKind::Number | FieldKind::Boolean) => json.push_str("null"),
                (Some(v), FieldKind::Number) => push_json_number(&mut json, v)
                    .map_err(|()| bad(format!("row {index}: `{}` is not a number", headers[i])))?,
                (Some(v @ ("true" | "false")), FieldKind::Boolean) => json.push_str(v),
                (Some(v), _) => push_json_str(&mut json, v),
            }
        }
        json.push('}');
        out.push(SyncRecord {
            id: id.to_owned(),
            name: name_col.and_then(|i| rec[i].as_deref()).map(str::to_owned),
            system_modstamp,
            json,
            deleted: false,
        });
    }
    Ok(out)
}

/// Appends a CSV number as the JSON number REST would send: an integer as written, anything
/// else as the double it parses to, written the way serde_json writes it (shortest text that
/// parses back to the same double).
fn push_json_number(out: &mut String, s: &str) -> Result<(), ()> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if serde_json::from_str::<serde_json::Number>(s).is_err() {
            return Err(());
        }
        out.push_str(s);
        return Ok(());
    }
    let n = s.parse::<f64>().map_err(|_| ())?;
    let n = serde_json::Number::from_f64(n).ok_or(())?;
    out.push_str(&n.to_string());
    Ok(())
}

/// Appends `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> FieldList {
        let described: Vec<(String, &str)> = [
            ("Id", "id"),
            ("SystemModstamp", "datetime"),
            ("Name", "string"),
            ("BillingCity", "string"),
            ("AnnualRevenue", "currency"),
            ("IsActive__c", "boolean"),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect();
        let asked = ["Name", "BillingCity", "AnnualRevenue", "IsActive__c"].map(String::from);
        FieldList::from_describe(&described, &asked).unwrap()
    }

    fn rest(v: serde_json::Value) -> SyncRecord {
        SyncRecord::from_value(0, &v).unwrap()
    }

    #[test]
    fn csv_pages_become_the_same_records_as_rest_pages() {
        let csv = b"\"Id\",\"SystemModstamp\",\"Name\",\"BillingCity\",\"AnnualRevenue\",\"IsActive__c\"\n\
            \"001A\",\"2026-01-01T00:00:00.000+0000\",\"Acme, \"\"the\"\" one\nline 2\",,\"5.0\",\"true\"\n\
            \"001B\",\"2026-01-01T00:00:01.000+0000\",\"back\\slash\ttab\",\"\",,\"false\"\r\n\
            \"001C\",\"2026-01-01T00:00:02.000+0000\",\"\",\"Paris\",\"1.0E-8\",";
        let records = records(csv, &fields()).unwrap();
        assert_eq!(records.len(), 3);
        let mut a = rest(serde_json::json!({
            "attributes": {"type": "Account"},
            "Id": "001A", "SystemModstamp": "2026-01-01T00:00:00.000+0000",
            "Name": "Acme, \"the\" one\nline 2", "BillingCity": null, "AnnualRevenue": 5.0,
            "IsActive__c": true,
        }));
        a.deleted = false;
        assert_eq!(records[0], a);
        // `""` is an empty string, an empty cell is null.
        let b: serde_json::Value = serde_json::from_str(&records[1].json).unwrap();
        assert_eq!(b["Name"], "back\\slash\ttab");
        assert_eq!(b["BillingCity"], "");
        assert_eq!(b["AnnualRevenue"], serde_json::Value::Null);
        assert_eq!(b["IsActive__c"], false);
        let c: serde_json::Value = serde_json::from_str(&records[2].json).unwrap();
        assert_eq!(records[2].name.as_deref(), Some(""));
        assert_eq!(c["Name"], "");
        assert_eq!(c["AnnualRevenue"].as_f64(), Some(1e-8));
        assert_eq!(c["IsActive__c"], serde_json::Value::Null);
        assert!(
            records[2].json.contains("\"AnnualRevenue\":1e-8"),
            "{}",
            records[2].json
        );
    }

    #[test]
    fn numbers_are_written_as_rest_writes_them_and_round_trip() {
        for (csv, json) in [
            ("5", Some("5")),
            ("-12", Some("-12")),
            ("10000.0", Some("10000.0")),
            ("1.0E-8", Some("1e-8")),
            ("9.999999999999999E307", None),
            ("4.9E-324", Some("5e-324")),
            ("-0.0", Some("-0.0")),
        ] {
            let mut out = String::new();
            push_json_number(&mut out, csv).unwrap();
            let value: f64 = csv.parse().unwrap();
            if let Some(json) = json {
                assert_eq!(out, json, "{csv}");
            }
            // The text REST's JSON would be stored as, and the same double.
            let rest: serde_json::Value = serde_json::from_str(&out).unwrap();
            if out.contains(['.', 'e']) {
                assert_eq!(out, serde_json::Value::from(value).to_string(), "{csv}");
            }
            assert_eq!(rest.as_f64().unwrap().to_bits(), value.to_bits(), "{csv}");
        }
        for bad in ["", "-", "x", "1.2.3", "NaN", "inf"] {
            assert!(push_json_number(&mut String::new(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_csv_pages_are_refused_whole() {
        let f = fields();
        let no_id = b"Id,SystemModstamp\n001A,2026-01-01T00:00:00Z\n,2026-01-01T00:00:00Z\n";
        assert!(matches!(
            records(no_id, &f),
            Err(SyncError::Db(DbError::BadRecord {
                index: 1,
                field: "Id"
            }))
        ));
        let bad_stamp = b"Id,SystemModstamp\n001A,yesterday\n";
        assert!(matches!(
            records(bad_stamp, &f),
            Err(SyncError::Db(DbError::BadStamp { index: 0, .. }))
        ));
        for body in [
            &b"Id,SystemModstamp\n001A,2026-01-01T00:00:00Z\n001B\n"[..],
            b"Id,SystemModstamp,AnnualRevenue\n001A,2026-01-01T00:00:00Z,lots\n",
            b"Id,SystemModstamp\n\"001A\"x,2026-01-01T00:00:00Z\n",
            b"Id,SystemModstamp\n\"001A,2026-01-01T00:00:00Z\n",
            b"Id,SystemModstamp\n\xff,2026-01-01T00:00:00Z\n",
        ] {
            assert!(
                matches!(records(body, &f), Err(SyncError::Salesforce(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(records(b"", &f).unwrap().is_empty());
        assert!(records(b"Id,SystemModstamp\n", &f).unwrap().is_empty());
    }
}
