//! `GET /services/data/vXX.X/sobjects/Account/describe`: the Account fields and their types,
//! which a Bulk 2.0 client needs to turn CSV text back into typed values. Only the members
//! that clients read for that are served (`name`, `label`, `type`, `nillable`, `externalId`,
//! `createable`, `updateable`), with Salesforce's type names (DOC, sObject Describe).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::wire;

/// `(name, label, type, nillable, external id, writable)` of each Account field.
const ACCOUNT_FIELDS: &[(&str, &str, &str, bool, bool, bool)] = &[
    ("Id", "Account ID", "id", false, false, false),
    ("IsDeleted", "Deleted", "boolean", false, false, false),
    ("Name", "Account Name", "string", false, false, true),
    (
        "AccountNumber",
        "Account Number",
        "string",
        true,
        false,
        true,
    ),
    ("Industry", "Industry", "picklist", true, false, true),
    (
        "AnnualRevenue",
        "Annual Revenue",
        "currency",
        true,
        false,
        true,
    ),
    ("BillingCity", "Billing City", "string", true, false, true),
    // Long Text Area(32000) on Salesforce.
    (
        "Description",
        "Account Description",
        "textarea",
        true,
        false,
        true,
    ),
    ("ExtId__c", "External Id", "string", true, true, true),
    (
        "CreatedDate",
        "Created Date",
        "datetime",
        false,
        false,
        false,
    ),
    (
        "LastModifiedDate",
        "Last Modified Date",
        "datetime",
        false,
        false,
        false,
    ),
    (
        "SystemModstamp",
        "System Modstamp",
        "datetime",
        false,
        false,
        false,
    ),
];

/// The Account describe.
pub fn account() -> Response {
    let fields: Vec<Value> = ACCOUNT_FIELDS
        .iter()
        .map(|(name, label, ty, nillable, external, writable)| {
            json!({
                "name": name,
                "label": label,
                "type": ty,
                "nillable": nillable,
                "externalId": external,
                "createable": writable,
                "updateable": writable,
            })
        })
        .collect();
    wire::json(
        StatusCode::OK,
        &json!({
            "name": "Account",
            "label": "Account",
            "keyPrefix": "001",
            "queryable": true,
            "createable": true,
            "fields": fields,
        }),
    )
}

/// The describe type of an Account field (`id`, `string`, `currency`, …).
pub fn account_field_type(name: &str) -> Option<&'static str> {
    ACCOUNT_FIELDS
        .iter()
        .find(|f| f.0.eq_ignore_ascii_case(name))
        .map(|f| f.2)
}

/// Whether an Account field can be written (`createable` / `updateable`).
pub fn account_field_writable(name: &str) -> bool {
    ACCOUNT_FIELDS
        .iter()
        .any(|f| f.0.eq_ignore_ascii_case(name) && f.5)
}
