//! `query?q=…&columns=true` (docs/salesforce-composite.md, "Query column metadata"): instead of
//! records, the columns the query would return — what the Salesforce CLI's `data query` asks
//! for to lay out its table. One entry per selected field (the SOQL subset has no relationship
//! or subquery columns, so `joinColumns` is always empty), or one aggregate `expr0` column for
//! `COUNT()`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::describe;
use crate::objects;
use crate::state::{Inner, Org};
use crate::wire;

/// The Apex type a describe type maps to.
fn apex_type(describe_type: &str) -> &'static str {
    match describe_type {
        "id" => "Id",
        "boolean" => "Boolean",
        "currency" | "double" | "percent" => "Double",
        "int" => "Integer",
        "datetime" => "Datetime",
        "date" => "Date",
        _ => "String",
    }
}

/// The describe type of a field of a diagnosis object, read off its values.
fn value_type(name: &str, sample: Option<&Value>) -> &'static str {
    match sample {
        _ if name == "Id" || name.ends_with("Id") => "id",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(n)) if n.is_f64() => "double",
        Some(Value::Number(_)) => "int",
        _ if name.ends_with("Date") || name.ends_with("Time") => "datetime",
        _ => "string",
    }
}

fn column(name: &str, describe_type: &str, writable: bool) -> Value {
    let apex = apex_type(describe_type);
    json!({
        "aggregate": false,
        "apexType": apex,
        "booleanType": apex == "Boolean",
        "columnName": name,
        "custom": name.ends_with("__c"),
        "displayName": name,
        "foreignKeyName": null,
        "insertable": writable,
        "joinColumns": [],
        "numberType": matches!(apex, "Double" | "Integer"),
        "textType": apex == "String",
        "updatable": writable,
    })
}

/// Answers a `columns=true` query.
pub fn answer(org: &Org, inner: &Inner, soql: &str, all: bool, token: &str) -> Response {
    let selected = objects::with_selection(org, inner, soql, all, token, |s| {
        let columns: Vec<Value> = if s.count_only {
            vec![json!({
                "aggregate": true, "apexType": "Integer", "booleanType": false,
                "columnName": "expr0", "custom": false, "displayName": "COUNT()",
                "foreignKeyName": null, "insertable": false, "joinColumns": [],
                "numberType": true, "textType": false, "updatable": false,
            })]
        } else {
            s.fields
                .iter()
                .map(|f| {
                    if s.object == "Account" {
                        let ty = describe::account_field_type(f).unwrap_or("string");
                        column(f, ty, describe::account_field_writable(f))
                    } else {
                        let sample = s
                            .rows
                            .iter()
                            .find_map(|r| r.get(f).filter(|v| !v.is_null()));
                        column(f, value_type(f, sample), false)
                    }
                })
                .collect()
        };
        let id_selected = s.fields.iter().any(|f| f == "Id");
        (s.object, columns, id_selected)
    });
    match selected {
        Ok((object, columns, id_selected)) => wire::json(
            StatusCode::OK,
            &json!({
                "columnMetadata": columns,
                "entityName": object,
                "groupBy": false,
                "idSelected": id_selected,
                "keyPrefix": objects::key_prefix(object),
            }),
        ),
        Err(e) => wire::rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    }
}
