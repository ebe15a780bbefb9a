//! Query results rendered once as the REST API's JSON records, so each page of a query is a
//! slice of text rather than a fresh serialization. A cursor (the model) holds them between pages.

use serde_json::Value;

use crate::records::{Picker, Row};

/// Query results serialized once, when the query runs, as the REST API's JSON records
/// (`attributes` first, then the SELECT list in order). Each page is then a slice of this
/// text, so serving 50 pages of 2,000 records costs one serialization, not 50 copies of the
/// rows, a `serde_json::Value` tree per page and a serialization of each.
pub struct RenderedRecords {
    /// `rec,rec,…,rec,`: every record followed by a comma.
    text: String,
    /// Where each record starts in `text`, plus `text.len()` at the end.
    starts: Vec<usize>,
}

impl RenderedRecords {
    /// Serializes the `fields` (canonical names) of `rows` of `object`.
    pub fn render(version: &str, object: &str, fields: &[String], rows: &[&Row]) -> Self {
        let mut fields_once: Vec<&str> = Vec::with_capacity(fields.len());
        for f in fields {
            // A map holds a field once; so does a record on the wire.
            if !fields_once.contains(&f.as_str()) {
                fields_once.push(f);
            }
        }
        let keys: Vec<String> = fields_once
            .iter()
            .map(|f| format!("{}:", json_str(f)))
            .collect();
        let type_attr = format!("{{\"attributes\":{{\"type\":{}", json_str(object));
        let url_prefix = format!("/services/data/v{version}/sobjects/{object}/");
        let has_id = fields_once.contains(&"Id");
        let picker = Picker::new(object, &fields_once);
        let mut values = Vec::with_capacity(fields_once.len());
        let mut out = Vec::with_capacity(rows.len() * 64 * (fields_once.len() + 2));
        let mut starts = Vec::with_capacity(rows.len() + 1);
        for row in rows {
            picker.pick(row, &mut values);
            starts.push(out.len());
            out.extend_from_slice(type_attr.as_bytes());
            // The url names the record only when Id was selected (as before this was rendered
            // directly: it came from the projected row).
            if let Some(id) = has_id
                .then(|| row.get("Id").and_then(Value::as_str))
                .flatten()
                .filter(|id| !id.is_empty())
            {
                out.extend_from_slice(b",\"url\":");
                write_json(&mut out, &Value::String(format!("{url_prefix}{id}")));
            }
            out.push(b'}');
            for (v, key) in values.iter().zip(&keys) {
                out.push(b',');
                out.extend_from_slice(key.as_bytes());
                write_json(&mut out, v);
            }
            out.extend_from_slice(b"},");
        }
        starts.push(out.len());
        // Only JSON text was written, which is UTF-8.
        let text = String::from_utf8(out).unwrap_or_default();
        RenderedRecords { text, starts }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Records `from..to` as the inside of a JSON array.
    pub fn slice(&self, from: usize, to: usize) -> &str {
        if from >= to {
            return "";
        }
        // Drop the comma after the last record of the slice.
        &self.text[self.starts[from]..self.starts[to] - 1]
    }
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn write_json(out: &mut Vec<u8>, v: &Value) {
    // Writing JSON into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}
