//! SOAP partner API calls with the `SessionHeader`, healed like REST: a fault
//! `INVALID_SESSION_ID` (HTTP 500) invalidates the token, one refresh, one replay.

use serde_json::{Map, Value};

use super::Client;
use crate::diagnose::api_error::Api;
use crate::error::{Error, Result, redacted_snippet};
use quick_xml::escape::escape;

/// The records of a SOAP `query` / `queryMore` and where to continue.
#[derive(Clone, Debug)]
pub struct SoapQueryResult {
    /// Records: field local name → text (`xsi:nil` → null). `type` holds the sObject type.
    pub records: Vec<Map<String, Value>>,
    /// `done`.
    pub done: bool,
    /// The locator for `queryMore`, if not done.
    pub query_locator: Option<String>,
    /// `size`.
    pub size: Option<u64>,
}

impl Client {
    /// Sends a partner SOAP call: `body` is the content of `<soapenv:Body>` (e.g.
    /// `<query xmlns="urn:partner.soap.sforce.com"><queryString>…</queryString></query>`).
    /// Returns the response envelope.
    pub async fn soap_call(&self, body: &str) -> Result<String> {
        let path = format!("/services/Soap/u/{}", self.version());
        let resp = self
            .execute(Api::Soap, &format!("SOAP call at {path}"), |token| {
                let envelope = format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader><urn:sessionId>{}</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#,
                    escape(token.access_token().expose_secret())
                );
                self.http()
                    .post(format!("{}{}", token.instance_url().trim_end_matches('/'), path))
                    .header("Content-Type", "text/xml; charset=UTF-8")
                    .header("SOAPAction", "\"\"")
                    .body(envelope)
            })
            .await?;
        String::from_utf8(resp.body).map_err(|e| Error::MalformedResponse {
            source_name: "the SOAP API".into(),
            problem: format!("not UTF-8: {e}"),
            status: resp.status,
            snippet: String::new(),
        })
    }

    /// SOAP `query`.
    pub async fn soap_query(&self, soql: &str) -> Result<SoapQueryResult> {
        let xml = self
            .soap_call(&format!(
                r#"<urn:query><urn:queryString>{}</urn:queryString></urn:query>"#,
                escape(soql)
            ))
            .await?;
        parse_query_response(&xml)
    }

    /// SOAP `queryMore`.
    pub async fn soap_query_more(&self, locator: &str) -> Result<SoapQueryResult> {
        let xml = self
            .soap_call(&format!(
                r#"<urn:queryMore><urn:queryLocator>{}</urn:queryLocator></urn:queryMore>"#,
                escape(locator)
            ))
            .await?;
        parse_query_response(&xml)
    }
}

/// Parses a `queryResponse` / `queryMoreResponse`, whatever the prefixes.
pub fn parse_query_response(xml: &str) -> Result<SoapQueryResult> {
    use quick_xml::events::Event;
    let malformed = |p: &str| Error::MalformedResponse {
        source_name: "the SOAP API".into(),
        problem: p.into(),
        status: 200,
        snippet: redacted_snippet(xml.as_bytes()),
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = SoapQueryResult {
        records: Vec::new(),
        done: false,
        query_locator: None,
        size: None,
    };
    let mut stack: Vec<String> = Vec::new();
    let mut current: Option<Map<String, Value>> = None;
    let mut text = String::new();
    let mut nil = false;
    let mut saw_result = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_owned();
                if name == "records" && stack.last().map(String::as_str) == Some("result") {
                    current = Some(Map::new());
                }
                if name == "result" {
                    saw_result = true;
                }
                stack.push(name);
                text.clear();
                nil = false;
            }
            Ok(Event::Empty(e)) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_owned();
                if let Some(rec) = current.as_mut()
                    && stack.last().map(String::as_str) == Some("records")
                    && !rec.contains_key(&name)
                {
                    rec.insert(name, Value::Null);
                }
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => {
                if let Some(c) = crate::diagnose::soap_fault::reference_char(&r) {
                    text.push(c);
                }
            }
            Ok(Event::End(_)) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str);
                match (name.as_str(), parent) {
                    ("records", Some("result")) => {
                        if let Some(r) = current.take() {
                            out.records.push(r);
                        }
                    }
                    ("done", Some("result")) => out.done = text.trim() == "true",
                    ("queryLocator", Some("result")) => {
                        out.query_locator = Some(text.trim().to_owned()).filter(|s| !s.is_empty())
                    }
                    ("size", Some("result")) => out.size = text.trim().parse().ok(),
                    (field, Some("records")) => {
                        if let Some(rec) = current.as_mut() {
                            // The partner API repeats Id (sObject Id, then the field): keep the first non-empty.
                            let v = if nil || text.is_empty() {
                                Value::Null
                            } else {
                                Value::String(text.clone())
                            };
                            match rec.get(field) {
                                Some(Value::String(_)) => {}
                                _ => {
                                    rec.insert(field.to_owned(), v);
                                }
                            }
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(malformed(&format!("not well-formed XML: {e}"))),
        }
    }
    if !saw_result {
        return Err(malformed("no <result> in the response"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partner_query_records_with_repeated_id_and_nil() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sf="urn:sobject.partner.soap.sforce.com"><soapenv:Body><queryResponse><result xsi:type="QueryResult"><done>false</done><queryLocator>01gX-2000</queryLocator><records xsi:type="sf:sObject"><sf:type>Account</sf:type><sf:Id>001A</sf:Id><sf:Id>001A</sf:Id><sf:Name>A &amp; B</sf:Name><sf:Industry xsi:nil="true"/></records><size>5</size></result></queryResponse></soapenv:Body></soapenv:Envelope>"#;
        let r = parse_query_response(xml).unwrap();
        assert!(!r.done);
        assert_eq!(r.query_locator.as_deref(), Some("01gX-2000"));
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.records[0]["Id"], "001A");
        assert_eq!(r.records[0]["Name"], "A & B");
        assert_eq!(r.records[0]["Industry"], Value::Null);
        assert_eq!(r.size, Some(5));
    }

    #[test]
    fn unexpected_namespaces_still_parse_and_garbage_is_an_error() {
        let xml = r#"<a:Envelope xmlns:a="x"><a:Body><b:queryResponse xmlns:b="y"><b:result><b:done>true</b:done><b:size>0</b:size></b:result></b:queryResponse></a:Body></a:Envelope>"#;
        assert!(parse_query_response(xml).unwrap().done);
        assert!(parse_query_response("<html>").is_err());
    }
}
