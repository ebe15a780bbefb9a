//! Response formats of the token endpoint (docs/salesforce-wire.md §1.1) and the identity URL
//! (§3.3): JSON by default, or what the client asks for with the `format` parameter or the
//! `Accept` header.
//!
//! What the sources say, and what they do not:
//! - DOC (api_rest "Understanding the Web Server OAuth Authentication Flow"; Database.com REST
//!   API guide; chatterapi `intro_oauth_tokens`): the token endpoint takes `format` =
//!   `urlencoded` | `json` (default) | `xml`, or `Accept: application/x-www-form-urlencoded` |
//!   `application/json` | `application/xml`.
//! - DOC (Mobile SDK / help "Identity URLs"): the identity URL takes `format` = `json` | `xml`
//!   or the same three Accept types; "the format parameter takes precedence over the accept
//!   request header"; `*/*` "is accepted and returns JSON"; a list "is checked left to right"
//!   (`application/xml,application/json,application/html,*/*` returns XML). The identity XML
//!   is the DOC sample's shape: `<user xmlns:xsi=…>` with nested maps and `xsi:nil` nulls.
//! - UNVERIFIED, and followed here because nothing says otherwise: that the token endpoint
//!   resolves `format` and `Accept` by the identity URL's rules; that an unknown `format`
//!   value falls back to the header; that errors use the requested format too (zkSforce, a
//!   client by a Salesforce engineer, asks for `format=urlencoded` and looks for `error` /
//!   `error_description` in the urlencoded reply); the token XML's root element `<OAuth>` (no
//!   Salesforce sample of a token XML body was found); the urlencoded encoding (Java's
//!   `URLEncoder` rules: space as `+`, `/` and `:` escaped); the field order of both (taken
//!   from the JSON samples); the content types `application/x-www-form-urlencoded;charset=UTF-8`
//!   and `application/xml;charset=UTF-8`; what the identity URL sends for
//!   `Accept: application/x-www-form-urlencoded` (listed as accepted, no sample: JSON here);
//!   compact XML without line breaks (the DOC sample is pretty-printed for reading).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::wire;
use crate::xmltree::xml_escape;

const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
/// Content type of urlencoded token responses (UNVERIFIED, see the module notes).
pub const FORM_CT: &str = "application/x-www-form-urlencoded;charset=UTF-8";
/// Content type of XML token and identity responses (UNVERIFIED, see the module notes).
pub const XML_CT: &str = "application/xml;charset=UTF-8";

/// A response format a client can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (the default).
    Json,
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `application/xml`.
    Xml,
}

/// The format a request asks for: the `format` parameter if it names one, else the first
/// type of the `Accept` list that is supported (`*/*` meaning JSON), else JSON.
pub fn negotiate(format_param: Option<&str>, headers: &HeaderMap) -> Format {
    let by_param = match format_param
        .map(|f| f.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("json") => Some(Format::Json),
        Some("urlencoded") => Some(Format::UrlEncoded),
        Some("xml") => Some(Format::Xml),
        _ => None,
    };
    if let Some(f) = by_param {
        return f;
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for entry in accept {
        let media = entry.split(';').next().unwrap_or("").trim();
        let found = match media.to_ascii_lowercase().as_str() {
            "application/json" | "*/*" => Some(Format::Json),
            "application/xml" => Some(Format::Xml),
            "application/x-www-form-urlencoded" => Some(Format::UrlEncoded),
            _ => None,
        };
        if let Some(f) = found {
            return f;
        }
    }
    Format::Json
}

/// Keys in the order of Salesforce's samples: §1.3's full token shape, the device
/// authorization reply of §1.8, the error body of §2. Other keys follow alphabetically.
const TOKEN_ORDER: &[&str] = &[
    "access_token",
    "refresh_token",
    "signature",
    "scope",
    "id_token",
    "instance_url",
    "api_instance_url",
    "id",
    "token_type",
    "issued_at",
    "device_code",
    "user_code",
    "verification_uri",
    "interval",
    "error",
    "error_description",
];

/// The identity document's keys: the DOC XML sample's order, with the fields it leaves out
/// placed as in the Postman collection's JSON sample (§3.3). Nested maps use the same list.
const IDENTITY_ORDER: &[&str] = &[
    "id",
    "asserted_user",
    "user_id",
    "organization_id",
    "username",
    "nick_name",
    "display_name",
    "email",
    "email_verified",
    "first_name",
    "last_name",
    "timezone",
    "status",
    "created_date",
    "body",
    "photos",
    "picture",
    "thumbnail",
    "addr_street",
    "addr_city",
    "addr_state",
    "addr_country",
    "addr_zip",
    "mobile_phone",
    "mobile_phone_verified",
    "is_lightning_login_user",
    "urls",
    "enterprise",
    "metadata",
    "partner",
    "rest",
    "sobjects",
    "search",
    "query",
    "recent",
    "tooling_soap",
    "tooling_rest",
    "profile",
    "feeds",
    "groups",
    "users",
    "feed_items",
    "feed_elements",
    "custom_domain",
    "active",
    "user_type",
    "language",
    "locale",
    "utcOffset",
    "last_modified_date",
    "is_app_installed",
];

/// The entries of `map` with the keys listed in `order` first, in that order.
fn ordered<'a>(map: &'a Map<String, Value>, order: &[&str]) -> Vec<(&'a str, &'a Value)> {
    let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
    let mut entries: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    // Stable: unlisted keys keep the map's (alphabetical) order after the listed ones.
    entries.sort_by_key(|(k, _)| rank(k));
    entries
}

/// A scalar as text: strings as they are, numbers and booleans as JSON writes them.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn urlencoded(map: &Map<String, Value>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in ordered(map, TOKEN_ORDER) {
        ser.append_pair(k, &scalar(v));
    }
    ser.finish()
}

/// `<name>` for one value: maps nest, arrays repeat the element, null is `xsi:nil`.
fn xml_element(out: &mut String, name: &str, v: &Value, order: &[&str]) {
    match v {
        Value::Null => {
            out.push_str(&format!(r#"<{name} xsi:nil="true"/>"#));
        }
        Value::Object(m) => {
            out.push_str(&format!("<{name}>"));
            for (k, child) in ordered(m, order) {
                xml_element(out, k, child, order);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Array(items) => {
            for item in items {
                xml_element(out, name, item, order);
            }
        }
        other => {
            out.push_str(&format!("<{name}>{}</{name}>", xml_escape(&scalar(other))));
        }
    }
}

fn xml_document(root_open: &str, root: &str, map: &Map<String, Value>, order: &[&str]) -> String {
    let mut out = format!("{XML_DECL}{root_open}");
    for (k, v) in ordered(map, order) {
        xml_element(&mut out, k, v, order);
    }
    out.push_str(&format!("</{root}>"));
    out
}

fn with_type(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A token-endpoint body (a success or `{"error","error_description"}`) in `format`, with
/// the token endpoint's cache headers.
pub fn token_response(status: StatusCode, body: &Value, format: Format) -> Response {
    let empty = Map::new();
    let map = body.as_object().unwrap_or(&empty);
    let mut r = match format {
        Format::Json => return wire::token_json(status, body),
        Format::UrlEncoded => with_type(status, urlencoded(map), FORM_CT),
        Format::Xml => with_type(
            status,
            xml_document("<OAuth>", "OAuth", map, TOKEN_ORDER),
            XML_CT,
        ),
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// `400 {"error","error_description"}` in `format`.
pub fn token_error(error: &str, description: &str, format: Format) -> Response {
    token_response(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({"error": error, "error_description": description}),
        format,
    )
}

/// The identity document in `format` (urlencoded, which has no documented shape, is JSON).
pub fn identity_response(doc: &Value, format: Format) -> Response {
    match (format, doc.as_object()) {
        (Format::Xml, Some(map)) => with_type(
            StatusCode::OK,
            xml_document(
                r#"<user xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
                "user",
                map,
                IDENTITY_ORDER,
            ),
            XML_CT,
        ),
        _ => wire::json(StatusCode::OK, doc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn negotiation() {
        let none = HeaderMap::new();
        assert_eq!(negotiate(None, &none), Format::Json);
        assert_eq!(negotiate(Some("XML"), &none), Format::Xml);
        assert_eq!(negotiate(Some("urlencoded"), &none), Format::UrlEncoded);
        assert_eq!(
            negotiate(Some("json"), &accept("application/xml")),
            Format::Json
        );
        assert_eq!(
            negotiate(Some("yaml"), &accept("application/xml")),
            Format::Xml
        );
        // The DOC example: checked left to right.
        assert_eq!(
            negotiate(
                None,
                &accept("application/xml,application/json,application/html,*/*")
            ),
            Format::Xml
        );
        assert_eq!(negotiate(None, &accept("*/*")), Format::Json);
        assert_eq!(
            negotiate(
                None,
                &accept("text/html; charset=x, application/x-www-form-urlencoded")
            ),
            Format::UrlEncoded
        );
        assert_eq!(negotiate(None, &accept("text/plain")), Format::Json);
    }

    #[test]
    fn token_bodies_in_salesforce_order() {
        let v = json!({
            "issued_at": "1278448832702",
            "token_type": "Bearer",
            "id": "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
            "instance_url": "https://na1.salesforce.com",
            "scope": "api refresh_token",
            "signature": "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=",
            "access_token": "00Dx0000000BV7z!AR8AQ",
        });
        let map = v.as_object().unwrap();
        assert_eq!(
            urlencoded(map),
            "access_token=00Dx0000000BV7z%21AR8AQ&signature=0CmxinZir53Yex7nE0TD%2BzMpvIWYGb%2FbdJh6XfOH6EQ%3D&scope=api+refresh_token&instance_url=https%3A%2F%2Fna1.salesforce.com&id=https%3A%2F%2Flogin.salesforce.com%2Fid%2F00Dx0000000BV7z%2F005x00000012Q9P&token_type=Bearer&issued_at=1278448832702"
        );
        assert_eq!(
            xml_document("<OAuth>", "OAuth", map, TOKEN_ORDER),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><OAuth>"#,
                "<access_token>00Dx0000000BV7z!AR8AQ</access_token>",
                "<signature>0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=</signature>",
                "<scope>api refresh_token</scope>",
                "<instance_url>https://na1.salesforce.com</instance_url>",
                "<id>https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P</id>",
                "<token_type>Bearer</token_type><issued_at>1278448832702</issued_at></OAuth>"
            )
        );
        let e = json!({"error_description": "a & <b>", "error": "invalid_grant"});
        assert_eq!(
            xml_document("<OAuth>", "OAuth", e.as_object().unwrap(), TOKEN_ORDER),
            r#"<?xml version="1.0" encoding="UTF-8"?><OAuth><error>invalid_grant</error><error_description>a &amp; &lt;b&gt;</error_description></OAuth>"#
        );
    }

    #[test]
    fn identity_xml_nests_and_nils() {
        let doc = json!({
            "urls": {"partner": "p", "enterprise": "e"},
            "status": {"body": null, "created_date": null},
            "active": true,
            "utcOffset": -28800000,
            "id": "i",
        });
        let Value::Object(map) = doc else {
            unreachable!()
        };
        assert_eq!(
            xml_document(
                r#"<user xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
                "user",
                &map,
                IDENTITY_ORDER
            ),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><user xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
                "<id>i</id>",
                r#"<status><created_date xsi:nil="true"/><body xsi:nil="true"/></status>"#,
                "<urls><enterprise>e</enterprise><partner>p</partner></urls>",
                "<active>true</active><utcOffset>-28800000</utcOffset></user>"
            )
        );
    }
}
