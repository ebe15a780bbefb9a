//! The token endpoint and the identity URL answer in the format the client asks for
//! (docs/salesforce-wire.md §1.1, §3.3): the `format` parameter (`json`, `urlencoded`, `xml`) or
//! the `Accept` header, success and error alike. Bodies are asserted byte for byte.

mod common;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sfkeep_fakeorg::FakeOrg;

use common::*;

const FORM_CT: &str = "application/x-www-form-urlencoded;charset=UTF-8";
const XML_CT: &str = "application/xml;charset=UTF-8";
const JSON_CT: &str = "application/json;charset=UTF-8";
const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

struct Reply {
    status: u16,
    content_type: String,
    cache_control: String,
    body: String,
}

/// POSTs `form` to the token endpoint (`query` appended to the URL, `accept` as header).
async fn token_raw(
    org: &FakeOrg,
    query: &str,
    accept: Option<&str>,
    form: &[(&str, &str)],
) -> Reply {
    let mut rb = client()
        .post(format!("{}/services/oauth2/token{query}", org.base_url()))
        .form(form);
    if let Some(a) = accept {
        rb = rb.header("Accept", a);
    }
    let r = rb.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    Reply {
        status: r.status().as_u16(),
        content_type: header("content-type"),
        cache_control: header("cache-control"),
        body: r.text().await.unwrap(),
    }
}

fn refresh_form(org: &FakeOrg) -> Vec<(&'static str, String)> {
    let i = org.ready_info();
    vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", i.refresh_token.clone()),
        ("client_id", i.client_id.clone()),
        ("client_secret", i.client_secret.clone()),
    ]
}

fn password_form(org: &FakeOrg, password: &str) -> Vec<(&'static str, String)> {
    let i = org.ready_info();
    vec![
        ("grant_type", "password".into()),
        ("client_id", i.client_id.clone()),
        ("client_secret", i.client_secret.clone()),
        ("username", i.username.clone()),
        ("password", password.to_owned()),
    ]
}

fn borrow<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn urlencode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().copied())
        .finish()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks the values every success body carries, whatever its format.
async fn assert_token_values(org: &FakeOrg, fields: &[(String, String)]) {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {fields:?}"))
    };
    assert_eq!(get("instance_url"), org.base_url());
    assert_eq!(get("token_type"), "Bearer");
    assert!(
        get("id").starts_with(&format!("{}/id/00D", org.base_url())),
        "{fields:?}"
    );
    assert_eq!(get("issued_at").len(), 13, "milliseconds");
    assert_eq!(
        get("signature"),
        signature(&org.ready_info().client_secret, get("id"), get("issued_at"))
    );
    // The token is a live session.
    let (status, _, body) = api_get(org, get("access_token"), QUERY_IDS).await;
    assert_eq!(status, 200, "{body}");
}

/// The field names a refresh or password grant answers with, in Salesforce's order
/// (§1.3 typical full shape; no refresh_token without rotation).
const TOKEN_FIELDS: [&str; 7] = [
    "access_token",
    "signature",
    "scope",
    "instance_url",
    "id",
    "token_type",
    "issued_at",
];

#[tokio::test]
async fn urlencoded_success_by_format_parameter() {
    let org = org().await;
    let mut form = refresh_form(&org);
    form.push(("format", "urlencoded".into()));
    let r = token_raw(&org, "", None, &borrow(&form)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, FORM_CT);
    assert_eq!(r.cache_control, "no-cache, no-store");

    let fields: Vec<(String, String)> = url::form_urlencoded::parse(r.body.as_bytes())
        .into_owned()
        .collect();
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, TOKEN_FIELDS);
    // Byte for byte: the pairs in that order, form-encoded.
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(r.body, urlencode(&pairs));
    let port_part = org.base_url().trim_start_matches("http://127.0.0.1");
    assert!(
        r.body.contains(&format!(
            "&instance_url=http%3A%2F%2F127.0.0.1{}&id=http%3A%2F%2F127.0.0.1",
            port_part.replace(':', "%3A")
        )),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("&token_type=Bearer&issued_at="),
        "{}",
        r.body
    );
    assert_token_values(&org, &fields).await;
}

#[tokio::test]
async fn xml_success_by_accept_header() {
    let org = org().await;
    let i = org.ready_info();
    let form = password_form(&org, &format!("{}{}", i.password, i.security_token));
    let r = token_raw(&org, "", Some("application/xml"), &borrow(&form)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, XML_CT);
    assert_eq!(r.cache_control, "no-cache, no-store");

    let fields: Vec<(String, String)> = TOKEN_FIELDS
        .iter()
        .map(|k| {
            let v = xml_text(&r.body, k).unwrap_or_else(|| panic!("no <{k}> in {}", r.body));
            (k.to_string(), v.replace("&amp;", "&"))
        })
        .collect();
    let mut expected = format!("{XML_DECL}<OAuth>");
    for (k, v) in &fields {
        expected.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
    }
    expected.push_str("</OAuth>");
    assert_eq!(r.body, expected);
    assert_token_values(&org, &fields).await;
}

#[tokio::test]
async fn errors_follow_the_requested_format() {
    let org = org().await;
    let bad_password = password_form(&org, "wrong");

    let mut form = bad_password.clone();
    form.push(("format", "urlencoded".into()));
    let r = token_raw(&org, "", None, &borrow(&form)).await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (
            400,
            FORM_CT,
            "error=invalid_grant&error_description=authentication+failure"
        )
    );
    assert_eq!(r.cache_control, "no-cache, no-store");

    let r = token_raw(&org, "", Some("application/xml"), &borrow(&bad_password)).await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (
            400,
            XML_CT,
            r#"<?xml version="1.0" encoding="UTF-8"?><OAuth><error>invalid_grant</error><error_description>authentication failure</error_description></OAuth>"#
        )
    );

    // An unknown consumer key, as urlencoded.
    let r = token_raw(
        &org,
        "",
        Some("application/x-www-form-urlencoded"),
        &[("grant_type", "client_credentials"), ("client_id", "nope")],
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (
            400,
            FORM_CT,
            "error=invalid_client_id&error_description=client+identifier+invalid"
        )
    );

    // A refresh token the org no longer honours, as XML.
    let r = token_raw(
        &org,
        "",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "5Aep-unknown"),
            ("client_id", &org.ready_info().client_id),
            ("client_secret", &org.ready_info().client_secret),
            ("format", "xml"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (
            400,
            XML_CT,
            r#"<?xml version="1.0" encoding="UTF-8"?><OAuth><error>invalid_grant</error><error_description>expired access/refresh token</error_description></OAuth>"#
        )
    );

    // Parameters sent as JSON are not a grant; `format` in the query string still applies.
    let resp = client()
        .post(format!(
            "{}/services/oauth2/token?format=xml",
            org.base_url()
        ))
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], XML_CT);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><OAuth><error>unsupported_grant_type</error><error_description>grant type not supported</error_description></OAuth>"#
    );

    // Without format or Accept: JSON, as before.
    let r = token_raw(&org, "", None, &borrow(&bad_password)).await;
    assert_eq!((r.status, r.content_type.as_str()), (400, JSON_CT));
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v,
        json!({"error": "invalid_grant", "error_description": "authentication failure"})
    );
}

/// Query string, Accept header, form; the expected content type and body.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Vec<(&'static str, String)>,
    &'a str,
    &'a str,
);

#[tokio::test]
async fn format_parameter_wins_and_accept_is_read_left_to_right() {
    let org = org().await;
    let bad = password_form(&org, "wrong");
    let json_err = r#"{"error":"invalid_grant","error_description":"authentication failure"}"#;
    let xml_err = r#"<?xml version="1.0" encoding="UTF-8"?><OAuth><error>invalid_grant</error><error_description>authentication failure</error_description></OAuth>"#;
    let form_err = "error=invalid_grant&error_description=authentication+failure";
    let with_format = |f: &str| {
        let mut v = bad.clone();
        v.push(("format", f.to_owned()));
        v
    };
    let cases: Vec<Case> = vec![
        // The parameter beats the header.
        (
            "",
            Some("application/xml"),
            with_format("json"),
            JSON_CT,
            json_err,
        ),
        (
            "",
            Some("application/json"),
            with_format("xml"),
            XML_CT,
            xml_err,
        ),
        // The body parameter beats the query string.
        (
            "?format=xml",
            None,
            with_format("urlencoded"),
            FORM_CT,
            form_err,
        ),
        ("?format=urlencoded", None, bad.clone(), FORM_CT, form_err),
        // A list is read left to right; unsupported types and q-values are skipped over.
        (
            "",
            Some("text/html, application/xml;q=0.9, application/json"),
            bad.clone(),
            XML_CT,
            xml_err,
        ),
        (
            "",
            Some("application/json, application/xml"),
            bad.clone(),
            JSON_CT,
            json_err,
        ),
        // The wildcard, and nothing supported at all, give JSON.
        ("", Some("*/*"), bad.clone(), JSON_CT, json_err),
        (
            "",
            Some("*/*, application/xml"),
            bad.clone(),
            JSON_CT,
            json_err,
        ),
        ("", Some("text/plain"), bad.clone(), JSON_CT, json_err),
        // An unknown format value falls back to the header.
        (
            "",
            Some("application/xml"),
            with_format("yaml"),
            XML_CT,
            xml_err,
        ),
    ];
    for (query, accept, form, ct, body) in cases {
        let r = token_raw(&org, query, accept, &borrow(&form)).await;
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_str()),
            (400, ct, body),
            "query {query:?}, accept {accept:?}"
        );
    }
}

#[tokio::test]
async fn device_authorization_in_urlencoded_and_xml() {
    let org = org().await;
    let id = org.ready_info().client_id.clone();
    let form = [
        ("response_type", "device_code"),
        ("client_id", id.as_str()),
        ("scope", "refresh_token web api"),
        ("format", "urlencoded"),
    ];
    let r = token_raw(&org, "", None, &form).await;
    assert_eq!((r.status, r.content_type.as_str()), (200, FORM_CT));
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(r.body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let verification_uri = format!("{}/setup/connect", org.base_url());
    assert_eq!(
        r.body,
        urlencode(&[
            ("device_code", &get("device_code")),
            ("user_code", &get("user_code")),
            ("verification_uri", &verification_uri),
            ("interval", "5"),
        ])
    );

    let r = token_raw(&org, "", Some("application/xml"), &form[..3]).await;
    assert_eq!((r.status, r.content_type.as_str()), (200, XML_CT));
    let device_code = xml_text(&r.body, "device_code").unwrap();
    let user_code = xml_text(&r.body, "user_code").unwrap();
    assert_eq!(
        r.body,
        format!(
            "{XML_DECL}<OAuth><device_code>{device_code}</device_code><user_code>{user_code}</user_code><verification_uri>{verification_uri}</verification_uri><interval>5</interval></OAuth>"
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Identity URL (§3.3): `format=json|xml` or Accept; the parameter wins; `*/*` is JSON.
// ---------------------------------------------------------------------------------------------

async fn identity_raw(url: &str, token: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut rb = client().get(url).bearer_auth(token);
    if let Some(a) = accept {
        rb = rb.header("Accept", a);
    }
    let r = rb.send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (r.status().as_u16(), ct, r.text().await.unwrap())
}

/// The XML the identity URL must send for `doc` (its JSON form): the DOC sample's element
/// order, nested maps as nested elements, nulls as `xsi:nil`, and the `Z` datetime.
fn identity_xml(doc: &Value) -> String {
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => xml_escape(s),
            other => other.to_string(),
        }
    }
    fn element(out: &mut String, name: &str, v: &Value, order: &[&str]) {
        match v {
            Value::Null => out.push_str(&format!(r#"<{name} xsi:nil="true"/>"#)),
            Value::Object(m) => {
                out.push_str(&format!("<{name}>"));
                for k in order.iter().filter(|k| m.contains_key(**k)) {
                    element(out, k, &m[*k], order);
                }
                assert_eq!(
                    order.iter().filter(|k| m.contains_key(**k)).count(),
                    m.len(),
                    "unlisted keys in {name}: {m:?}"
                );
                out.push_str(&format!("</{name}>"));
            }
            other => out.push_str(&format!("<{name}>{}</{name}>", text(other))),
        }
    }
    const ORDER: &[&str] = &[
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
    let mut doc = doc.clone();
    // DOC: the XML sample writes `2021-04-28T20:54:09.000Z` where JSON has `...+0000`.
    let date = doc["last_modified_date"].as_str().unwrap().to_owned();
    assert!(date.ends_with("+0000"), "{date}");
    doc["last_modified_date"] = json!(date.replace("+0000", "Z"));
    let mut inner = String::new();
    for k in ORDER.iter().filter(|k| doc.get(**k).is_some()) {
        element(&mut inner, k, &doc[*k], ORDER);
    }
    format!(
        r#"{XML_DECL}<user xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{inner}</user>"#
    )
}

#[tokio::test]
async fn identity_url_answers_xml_when_asked() {
    let org = org().await;
    let (_, v) = refresh(&org, &org.ready_info().refresh_token).await;
    let tok = v["access_token"].as_str().unwrap().to_owned();
    let id_url = v["id"].as_str().unwrap().to_owned();

    let (status, ct, json_body) = identity_raw(&id_url, &tok, None).await;
    assert_eq!((status, ct.as_str()), (200, JSON_CT));
    let doc: Value = serde_json::from_str(&json_body).unwrap();
    let expected = identity_xml(&doc);
    // Fragments of the DOC sample, literally.
    assert!(expected.contains(&format!(
        "<id>{id_url}</id><asserted_user>true</asserted_user><user_id>"
    )));
    assert!(expected.contains(
        r#"<status><created_date xsi:nil="true"/><body xsi:nil="true"/></status><photos><picture>"#
    ));
    assert!(expected.contains(&format!(
        "<urls><enterprise>{}/services/Soap/c/{{version}}/{}</enterprise><metadata>",
        org.base_url(),
        doc["organization_id"].as_str().unwrap()
    )));

    let (status, ct, body) = identity_raw(&format!("{id_url}?format=xml"), &tok, None).await;
    assert_eq!((status, ct.as_str()), (200, XML_CT));
    assert_eq!(body, expected);

    let (status, ct, body) = identity_raw(&id_url, &tok, Some("application/xml")).await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (200, XML_CT, expected.as_str())
    );

    // The version parameter reaches the XML too.
    let (_, _, body) = identity_raw(&format!("{id_url}?format=xml&version=59.0"), &tok, None).await;
    assert!(body.contains("/services/data/v59.0/</rest>"), "{body}");

    // The parameter wins over the header; the wildcard and urlencoded are JSON.
    for (query, accept) in [
        ("?format=json", Some("application/xml")),
        ("", Some("*/*")),
        ("", Some("*/*, application/xml")),
        ("", Some("application/x-www-form-urlencoded")),
        ("?format=urlencoded", None),
    ] {
        let (status, ct, body) = identity_raw(&format!("{id_url}{query}"), &tok, accept).await;
        assert_eq!((status, ct.as_str()), (200, JSON_CT), "{query} {accept:?}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), doc);
    }

    // A dead token is the plain-text 403 whatever the format.
    let (status, ct, body) = identity_raw(&format!("{id_url}?format=xml"), "00Dx!dead", None).await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (403, "text/plain;charset=UTF-8", "Bad_OAuth_Token")
    );
}
