//! The enterprise SOAP endpoint `/services/Soap/c/{version}[/{orgId}…]` (docs/salesforce-wire.md §5):
//! the partner endpoint's operations, API-version calendar and session deaths, in the enterprise
//! namespaces (`urn:enterprise.soap.sforce.com`, faults in `urn:fault.enterprise.soap.sforce.com`,
//! records in `urn:sobject.enterprise.soap.sforce.com`), with the recorded enterprise
//! `logout()` reply and `INVALID_SESSION_ID` fault.

mod common;

use base64::Engine;
use serde_json::json;
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};
use sha2::{Digest, Sha256};

use common::*;

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
const ENTERPRISE_ENV: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#;
const INVALID_LOGIN_FAULT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;

/// An enterprise login as SoapUI / a blog's recipe sends it (`urn:` prefix, enterprise ns).
fn enterprise_login_body(username: &str, password: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:enterprise.soap.sforce.com">
  <soapenv:Header>
  </soapenv:Header>
  <soapenv:Body>
    <urn:login>
      <urn:username>{username}</urn:username>
      <urn:password>{password}</urn:password>
    </urn:login>
  </soapenv:Body>
</soapenv:Envelope>"#
    )
}

/// An enterprise call with a SessionHeader (`None`: no header at all).
fn enterprise_call(session: Option<&str>, op_xml: &str) -> String {
    let header = session
        .map(|s| {
            format!("<urn:SessionHeader><urn:sessionId>{s}</urn:sessionId></urn:SessionHeader>")
        })
        .unwrap_or_default();
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:enterprise.soap.sforce.com"><soapenv:Header>{header}</soapenv:Header><soapenv:Body>{op_xml}</soapenv:Body></soapenv:Envelope>"#
    )
}

fn login_of(org: &FakeOrg) -> String {
    let i = org.ready_info();
    enterprise_login_body(&i.username, &format!("{}{}", i.password, i.security_token))
}

/// POSTs to `url` (absolute) or to `{base}/services/Soap/c/{url}`; asserts the SOAP content type.
async fn post(org: &FakeOrg, url: &str, body: String) -> (u16, String) {
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}/services/Soap/c/{url}", org.base_url())
    };
    let r = client()
        .post(url)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "\"\"")
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

/// The recorded enterprise fault (jjargot/dashboard, §5.3) for a session id the org does not
/// know any more; the hash is Base64(SHA-256(session id)).
fn recorded_invalid_session(sid: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(sid.as_bytes()));
    let message = format!(
        "Invalid Session ID found in SessionHeader: Illegal Session. Session not found, missing session hash: {hash}\nThis error usually occurs after a session expires or a user logs out. "
    );
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: {message}</faultstring><detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[tokio::test]
async fn login_answers_in_the_enterprise_namespace_with_a_c_server_url() {
    let org = org().await;
    let i = org.ready_info();
    let (status, xml) = post(&org, "59.0", login_of(&org)).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.starts_with(&format!(
            "{DECL}{ENTERPRISE_ENV}<soapenv:Body><loginResponse><result><metadataServerUrl>"
        )),
        "{xml}"
    );
    let sid = xml_text(&xml, "sessionId").unwrap();
    let server_url = xml_text(&xml, "serverUrl").unwrap();
    let org15 = &sid[..15];
    // simple-salesforce's enterprise fixture: `/services/Soap/c/29.0/00Di0000000icUB/0DFi00000008UYO`.
    let prefix = format!("{}/services/Soap/c/59.0/{org15}/0DF", org.base_url());
    assert!(server_url.starts_with(&prefix), "{server_url}");
    assert_eq!(server_url.len(), prefix.len() + 12, "{server_url}");
    assert_eq!(
        xml_text(&xml, "metadataServerUrl").unwrap(),
        format!("{}/services/Soap/m/59.0/{org15}", org.base_url())
    );

    // Apart from the namespace, serverUrl and sessionId, it is the partner loginResponse.
    let (status, partner) = soap_post(
        &org,
        soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
    )
    .await;
    assert_eq!(status, 200, "{partner}");
    let partner_sid = xml_text(&partner, "sessionId").unwrap();
    let partner_server = xml_text(&partner, "serverUrl").unwrap();
    let expected = partner
        .replace(
            r#"xmlns="urn:partner.soap.sforce.com""#,
            r#"xmlns="urn:enterprise.soap.sforce.com""#,
        )
        .replace(&partner_server, &server_url)
        .replace(&partner_sid, &sid);
    assert_eq!(xml, expected);
    assert_eq!(stats(&org).await["soap_logins"], 2);

    // The session is an ordinary session: it works on REST.
    let (status, _, body) = api_get(&org, &sid, QUERY_IDS).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn wrong_password_is_the_login_fault_in_the_enterprise_fault_namespace() {
    let org = org().await;
    let (status, xml) = post(
        &org,
        "59.0",
        enterprise_login_body(&org.ready_info().username, "wrong"),
    )
    .await;
    assert_eq!((status, xml.as_str()), (500, INVALID_LOGIN_FAULT));
}

#[tokio::test]
async fn calls_at_the_server_url_then_logout_as_recorded() {
    let org = org_with(FakeOrgConfig::default().accounts(450)).await;
    let (_, xml) = post(&org, "59.0", login_of(&org)).await;
    let sid = xml_text(&xml, "sessionId").unwrap();
    let server_url = xml_text(&xml, "serverUrl").unwrap();

    let (status, xml) = post(
        &org,
        &server_url,
        enterprise_call(Some(&sid), "<urn:getUserInfo/>"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.starts_with(&format!(
            "{DECL}{ENTERPRISE_ENV}<soapenv:Body><getUserInfoResponse><result><accessibilityMode>false</accessibilityMode>"
        )),
        "{xml}"
    );
    assert!(xml.ends_with("</result></getUserInfoResponse></soapenv:Body></soapenv:Envelope>"));
    assert_eq!(
        xml_text(&xml, "userName").unwrap(),
        org.ready_info().username
    );
    assert_eq!(xml_text(&xml, "sessionSecondsValid").unwrap(), "7200");

    // query: typed records (`xsi:type="sf:Account"`), no `sf:type`, each field once; the shape
    // of the enterprise queryResponse recorded in floriancourgey/blog (2020).
    let soql = "SELECT Id, Name FROM Account ORDER BY Name LIMIT 3";
    let token = access_token(&org).await;
    let rows = records(&org, &token, soql).await;
    let mut expected = format!(
        r#"{DECL}<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><soapenv:Body><queryResponse><result><done>true</done><queryLocator xsi:nil="true"/>"#
    );
    for r in &rows {
        expected.push_str(&format!(
            r#"<records xsi:type="sf:Account"><sf:Id>{}</sf:Id><sf:Name>{}</sf:Name></records>"#,
            r["Id"].as_str().unwrap(),
            xml_escape(r["Name"].as_str().unwrap())
        ));
    }
    expected.push_str("<size>3</size></result></queryResponse></soapenv:Body></soapenv:Envelope>");
    let (status, xml) = post(
        &org,
        &server_url,
        enterprise_call(
            Some(&sid),
            &format!("<urn:query><urn:queryString>{soql}</urn:queryString></urn:query>"),
        ),
    )
    .await;
    assert_eq!((status, xml.as_str()), (200, expected.as_str()));

    // queryMore pages through all 450 with batchSize 200.
    let body = enterprise_call(
        Some(&sid),
        "<urn:query><urn:queryString>SELECT Id FROM Account</urn:queryString></urn:query>",
    )
    .replace(
        "</urn:SessionHeader>",
        "</urn:SessionHeader><urn:QueryOptions><urn:batchSize>200</urn:batchSize></urn:QueryOptions>",
    );
    let (status, xml) = post(&org, &server_url, body).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<queryResponse><result><done>false</done><queryLocator>"));
    let mut count = xml.matches(r#"<records xsi:type="sf:Account">"#).count();
    let mut locator = xml_text(&xml, "queryLocator").unwrap();
    loop {
        let (status, xml) = post(
            &org,
            &server_url,
            enterprise_call(
                Some(&sid),
                &format!(
                    "<urn:queryMore><urn:queryLocator>{locator}</urn:queryLocator></urn:queryMore>"
                ),
            ),
        )
        .await;
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("<queryMoreResponse><result><done>"), "{xml}");
        count += xml.matches(r#"<records xsi:type="sf:Account">"#).count();
        match xml_text(&xml, "queryLocator") {
            Some(l) => locator = l,
            None => break,
        }
    }
    assert_eq!(count, 450);

    // A query fault, in the enterprise fault namespace.
    let (status, xml) = post(
        &org,
        &server_url,
        enterprise_call(
            Some(&sid),
            "<urn:query><urn:queryString>SELECT FROM</urn:queryString></urn:query>",
        ),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:MALFORMED_QUERY</faultcode>"#),
        "{xml}"
    );
    assert!(xml.contains(r#"<sf:MalformedQueryFault xsi:type="sf:MalformedQueryFault">"#));

    // logout(): the recorded enterprise reply, and the session is over everywhere.
    let (status, xml) = post(
        &org,
        &server_url,
        enterprise_call(Some(&sid), "<urn:logout/>"),
    )
    .await;
    assert_eq!(
        (status, xml.as_str()),
        (
            200,
            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:enterprise.soap.sforce.com"><soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>"#
        )
    );
    let (status, headers, body) = api_get(&org, &sid, QUERY_IDS).await;
    assert_session_dead(status, &headers, &body);

    // jjargot/dashboard's recorded case: logout with the stale session id.
    let (status, xml) = post(
        &org,
        &server_url,
        enterprise_call(Some(&sid), "<urn:logout/>"),
    )
    .await;
    assert_eq!(
        (status, xml.as_str()),
        (500, recorded_invalid_session(&sid).as_str())
    );
}

#[tokio::test]
async fn session_deaths_are_the_recorded_enterprise_fault() {
    let org = org().await;
    let (_, xml) = post(&org, "59.0", login_of(&org)).await;
    let sid = xml_text(&xml, "sessionId").unwrap();
    let token = access_token(&org).await;
    let get_user_info = |s: &str| enterprise_call(Some(s), "<urn:getUserInfo/>");

    // An OAuth access token works in the SessionHeader, as on the partner endpoint.
    let (status, xml) = post(&org, "59.0", get_user_info(&token)).await;
    assert_eq!(status, 200, "{xml}");

    let before = stats(&org).await["invalid_session_responses"]
        .as_u64()
        .unwrap();
    // The inactivity timeout (2 h by default) passes: both die.
    post_admin(&org, "/clock/advance", json!({"seconds": 7201})).await;
    for s in [&sid, &token] {
        let (status, xml) = post(&org, "59.0", get_user_info(s)).await;
        assert_eq!(
            (status, xml.as_str()),
            (500, recorded_invalid_session(s).as_str())
        );
    }
    // A session id the org never issued.
    let (status, xml) = post(&org, "62.0/00Dx0000000BV7z", get_user_info("00Dx!nope")).await;
    assert_eq!(
        (status, xml.as_str()),
        (500, recorded_invalid_session("00Dx!nope").as_str())
    );
    // No SessionHeader at all. UNVERIFIED wording: no hash can be named, so the short form.
    let (status, xml) = post(&org, "59.0", enterprise_call(None, "<urn:getUserInfo/>")).await;
    assert_eq!(status, 500);
    assert!(
        xml.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session</faultstring>"),
        "{xml}"
    );
    assert!(xml.contains(r#"xmlns:sf="urn:fault.enterprise.soap.sforce.com""#));
    let after = stats(&org).await["invalid_session_responses"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 4);

    // A user logged out elsewhere: a fresh login's session dies too.
    let (_, xml) = post(&org, "59.0", login_of(&org)).await;
    let sid = xml_text(&xml, "sessionId").unwrap();
    let user = org.ready_info().username.clone();
    post_admin(&org, &format!("/users/{user}/logout"), json!({})).await;
    let (status, xml) = post(&org, "59.0", get_user_info(&sid)).await;
    assert_eq!(
        (status, xml.as_str()),
        (500, recorded_invalid_session(&sid).as_str())
    );
}

#[tokio::test]
async fn enterprise_follows_the_api_version_calendar() {
    let org = org().await;
    for version in ["65.0", "66.0"] {
        let (status, xml) = post(&org, version, login_of(&org)).await;
        assert_eq!(
            (status, xml.as_str()),
            (
                500,
                r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>No operation available for request {urn:enterprise.soap.sforce.com}login, please check the WSDL for the service.</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
            )
        );
    }
    let (status, xml) = post(&org, "30.0", login_of(&org)).await;
    assert_eq!(status, 500, "{xml}");
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:UNSUPPORTED_API_VERSION</faultcode>"#),
        "{xml}"
    );
    let token = access_token(&org).await;
    let (status, xml) = post(
        &org,
        "21.0",
        enterprise_call(Some(&token), "<urn:getUserInfo/>"),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        xml_text(&xml, "faultcode").unwrap(),
        "sf:UNSUPPORTED_API_VERSION"
    );
    // v31.0 logs in; a v64.0 login's session serves v65.0 calls.
    let (status, _) = post(&org, "31.0", login_of(&org)).await;
    assert_eq!(status, 200);
    let (status, xml) = post(&org, "64.0", login_of(&org)).await;
    assert_eq!(status, 200, "{xml}");
    let sid = xml_text(&xml, "sessionId").unwrap();
    let (status, xml) = post(
        &org,
        "65.0",
        enterprise_call(Some(&sid), "<urn:getUserInfo/>"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    // Login attempts are counted as on the partner endpoint: the two refused as no operation
    // and the two that worked; the retired version refuses before any login is attempted.
    assert_eq!(stats(&org).await["soap_logins"], 4);
}

#[tokio::test]
async fn the_partner_endpoint_is_unchanged() {
    let org = org().await;
    let (status, xml) = soap_post(&org, soap_call_body("00Dx!nope", "<getUserInfo/>")).await;
    assert_eq!(status, 500);
    assert_eq!(
        xml,
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session</faultstring><detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode><sf:exceptionMessage>Invalid Session ID found in SessionHeader: Illegal Session</sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
    );
}
