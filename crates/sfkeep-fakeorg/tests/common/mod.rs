//! Shared helpers: start an org, talk to it like a Salesforce client, drive the admin API.
#![allow(dead_code)]

pub mod node;

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

pub async fn org() -> FakeOrg {
    org_with(FakeOrgConfig::default().accounts(25)).await
}

pub async fn org_with(config: FakeOrgConfig) -> FakeOrg {
    FakeOrg::start(config).await.expect("org starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client whose connections come from 127.0.0.2 (another "machine").
pub fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn admin(
    org: &FakeOrg,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = client()
        .request(method, format!("{}/_fake{path}", org.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn post_admin(org: &FakeOrg, path: &str, body: Value) -> Value {
    let (s, v) = admin(org, reqwest::Method::POST, path, body).await;
    assert_eq!(s, 200, "admin {path}: {v}");
    v
}

pub async fn put_admin(org: &FakeOrg, path: &str, body: Value) -> Value {
    let (s, v) = admin(org, reqwest::Method::PUT, path, body).await;
    assert_eq!(s, 200, "admin {path}: {v}");
    v
}

pub async fn stats(org: &FakeOrg) -> Value {
    let (s, v) = admin(org, reqwest::Method::GET, "/stats", Value::Null).await;
    assert_eq!(s, 200);
    v
}

/// POSTs a form to the token endpoint; returns (status, body).
pub async fn token_with(c: &reqwest::Client, org: &FakeOrg, form: &[(&str, &str)]) -> (u16, Value) {
    let r = c
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub async fn token(org: &FakeOrg, form: &[(&str, &str)]) -> (u16, Value) {
    token_with(&client(), org, form).await
}

pub async fn refresh(org: &FakeOrg, rt: &str) -> (u16, Value) {
    let i = org.ready_info();
    token(
        org,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
        ],
    )
    .await
}

/// A fresh access token via the refresh-token grant.
pub async fn access_token(org: &FakeOrg) -> String {
    let (s, v) = refresh(org, &org.ready_info().refresh_token).await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

pub async fn password_grant(org: &FakeOrg) -> (u16, Value) {
    let i = org.ready_info();
    let pw = format!("{}{}", i.password, i.security_token);
    token(
        org,
        &[
            ("grant_type", "password"),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
            ("username", &i.username),
            ("password", &pw),
        ],
    )
    .await
}

/// GET an API path with a bearer token; returns (status, headers, body).
pub async fn api_get_with(
    c: &reqwest::Client,
    org: &FakeOrg,
    tok: &str,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = c
        .get(format!("{}{path}", org.base_url()))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn api_get(
    org: &FakeOrg,
    tok: &str,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    api_get_with(&client(), org, tok, path).await
}

pub const QUERY_IDS: &str = "/services/data/v59.0/query?q=SELECT%20Id%20FROM%20Account%20LIMIT%201";

pub fn invalid_session_body() -> Value {
    json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
}

/// Asserts the exact REST session-death answer.
pub fn assert_session_dead(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body, &invalid_session_body());
    assert_eq!(headers.get("www-authenticate").unwrap(), "Token");
}

pub fn soap_login_body(username: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>test</urn:client><urn:defaultNamespace>sf</urn:defaultNamespace></urn:CallOptions></env:Header>
  <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{username}</n1:username><n1:password>{password}</n1:password></n1:login></env:Body>
</env:Envelope>"#
    )
}

pub fn soap_call_body(session: &str, op_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com"><soapenv:Header><SessionHeader><sessionId>{session}</sessionId></SessionHeader></soapenv:Header><soapenv:Body>{op_xml}</soapenv:Body></soapenv:Envelope>"#
    )
}

pub async fn soap_post(org: &FakeOrg, body: String) -> (u16, String) {
    soap_post_at(org, "59.0", "login", body).await
}

/// Posts a partner SOAP call at API `version`; asserts the SOAP content type.
pub async fn soap_post_at(
    org: &FakeOrg,
    version: &str,
    action: &str,
    body: String,
) -> (u16, String) {
    let r = client()
        .post(format!("{}/services/Soap/u/{version}", org.base_url()))
        .header("Content-Type", "text/xml")
        .header("SOAPAction", action)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/xml;charset=UTF-8"
    );
    (status, r.text().await.unwrap())
}

/// Text between `<tag>` and `</tag>`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// Runs SOQL through REST (`/query?q=…`), returning (status, body).
pub async fn soql(org: &FakeOrg, tok: &str, q: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}/services/data/v59.0/query", org.base_url()))
        .query(&[("q", q)])
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

/// The records of a query that must succeed.
pub async fn records(org: &FakeOrg, tok: &str, q: &str) -> Vec<Value> {
    let (s, v) = soql(org, tok, q).await;
    assert_eq!(s, 200, "{q}: {v}");
    v["records"].as_array().unwrap().clone()
}

/// An access token of the org's admin-like view (a fresh session via client credentials).
pub async fn admin_token(org: &FakeOrg) -> String {
    let i = org.ready_info();
    let (s, v) = token(
        org,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &i.client_id),
            ("client_secret", &i.client_secret),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

pub fn err_desc(v: &Value) -> (&str, &str) {
    (
        v["error"].as_str().unwrap_or(""),
        v["error_description"].as_str().unwrap_or(""),
    )
}

pub async fn other_app(org: &FakeOrg) -> (String, String) {
    let (_, apps) = admin(org, reqwest::Method::GET, "/apps", Value::Null).await;
    let a = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["client_id"] != json!(org.ready_info().client_id))
        .unwrap()
        .clone();
    (
        a["client_id"].as_str().unwrap().to_owned(),
        a["client_secret"].as_str().unwrap().to_owned(),
    )
}
