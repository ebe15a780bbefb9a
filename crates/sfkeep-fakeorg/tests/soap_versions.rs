//! The partner SOAP endpoint models API versions (docs/salesforce-wire.md §5): `login()` is not
//! available from v65.0 on, v21.0–30.0 are retired (`500 UNSUPPORTED_API_VERSION`), and the
//! other operations go on working at v65.0+ with a session from an OAuth or older login.

mod common;

use common::*;
use sfkeep_fakeorg::FakeOrg;

fn login_body(org: &FakeOrg) -> String {
    let i = org.ready_info();
    soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token))
}

#[tokio::test]
async fn login_at_v65_and_later_is_not_an_operation_and_writes_no_login_history() {
    let org = org().await;
    let token = access_token(&org).await;
    let history = |body: serde_json::Value| body["totalSize"].as_u64().unwrap();
    let (_, before) = soql(&org, &token, "SELECT Id FROM LoginHistory").await;
    for version in ["65.0", "66.0"] {
        let (status, xml) = soap_post_at(&org, version, "login", login_body(&org)).await;
        assert_eq!(status, 500, "{xml}");
        assert_eq!(xml_text(&xml, "faultcode").unwrap(), "soapenv:Client");
        assert_eq!(
            xml_text(&xml, "faultstring").unwrap(),
            "No operation available for request {urn:partner.soap.sforce.com}login, please check the WSDL for the service."
        );
        assert!(xml_text(&xml, "sessionId").is_none());
    }
    assert_eq!(stats(&org).await["soap_logins"], 2);
    // No login was attempted, so LoginHistory has nothing new to say.
    let (status, after) = soql(&org, &token, "SELECT Id FROM LoginHistory").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(history(after), history(before));
}

#[tokio::test]
async fn login_at_v64_works_and_its_session_serves_v65_calls() {
    let org = org().await;
    let (status, xml) = soap_post_at(&org, "64.0", "login", login_body(&org)).await;
    assert_eq!(status, 200, "{xml}");
    let sid = xml_text(&xml, "sessionId").unwrap();
    let (status, xml) = soap_post_at(
        &org,
        "65.0",
        "getUserInfo",
        soap_call_body(&sid, "<getUserInfo/>"),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        xml_text(&xml, "userName").unwrap(),
        org.ready_info().username
    );
}

#[tokio::test]
async fn retired_versions_answer_unsupported_api_version_for_every_operation() {
    let org = org().await;
    let (status, xml) = soap_post_at(&org, "30.0", "login", login_body(&org)).await;
    assert_eq!(status, 500, "{xml}");
    assert_eq!(
        xml_text(&xml, "faultcode").unwrap(),
        "sf:UNSUPPORTED_API_VERSION"
    );
    assert!(xml.contains("<sf:exceptionCode>UNSUPPORTED_API_VERSION</sf:exceptionCode>"));

    let token = access_token(&org).await;
    let (status, xml) = soap_post_at(
        &org,
        "21.0",
        "getUserInfo",
        soap_call_body(&token, "<getUserInfo/>"),
    )
    .await;
    assert_eq!(status, 500, "{xml}");
    assert_eq!(
        xml_text(&xml, "faultcode").unwrap(),
        "sf:UNSUPPORTED_API_VERSION"
    );
    // v31.0, the oldest supported version, still logs in.
    let (status, xml) = soap_post_at(&org, "31.0", "login", login_body(&org)).await;
    assert_eq!(status, 200, "{xml}");
}

/// REST follows the same calendar: 31.0 onwards is served and listed, a retired version is
/// 410 Gone, a version newer than the newest does not exist.
#[tokio::test]
async fn rest_serves_supported_versions_only() {
    let org = org().await;
    let token = access_token(&org).await;
    let (status, _, list) = api_get(&org, &token, "/services/data/").await;
    assert_eq!(status, 200);
    let versions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.first(), Some(&"31.0"), "{versions:?}");
    assert!(versions.contains(&"65.0"), "{versions:?}");
    for (version, expected) in [
        ("v59.0", 200),
        ("v31.0", 200),
        ("v30.0", 410),
        ("v21.0", 410),
        ("v99.0", 404),
    ] {
        let (status, _, body) =
            api_get(&org, &token, &format!("/services/data/{version}/limits")).await;
        assert_eq!(status, expected, "{version}: {body}");
    }
}
