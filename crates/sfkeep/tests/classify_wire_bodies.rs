//! Every error body listed in docs/salesforce-wire.md (§2 token errors, §3 identity, §4 REST,
//! §5.3 SOAP faults, §6 Bulk, §9 LoginHistory statuses) classifies to a sensible cause, and
//! text that is not an error says so. The `§` comments below are sections of that page.

use sfkeep::diagnose::DiagnosisCause as D;
use sfkeep::diagnose::classify::{classify_error_text, recognize_error_text};

/// (body, expected verdict, expected recoverable). A bare session death is `unknown` offline
/// (every cause answers the same; `sfkeep doctor` against the org tells them apart); a refused
/// password login is first a wrong password or security token; a bad client id or secret is
/// `invalid_client` (issue #22, items 5 and 11).
pub const TABLE: &[(&str, D, bool)] = &[
    // §2 token endpoint.
    (
        r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
        D::AppTokensRevoked,
        false,
    ),
    (
        r#"{"error_description":"authentication failure","error":"invalid_grant"}"#,
        D::WrongPassword,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"authentication failure - Invalid Password"}"#,
        D::WrongPassword,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"inactive user"}"#,
        D::UserDeactivated,
        false,
    ),
    (
        r#"{"error":"inactive_user","error_description":"user is inactive"}"#,
        D::UserDeactivated,
        false,
    ),
    (
        r#"{"error":"inactive_org","error_description":"org is inactive"}"#,
        D::ApiDisabled,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"ip restricted"}"#,
        D::IpRestricted,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"IP restricted or invalid login hours"}"#,
        D::IpRestricted,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"user hasn't approved this consumer"}"#,
        D::AppNotApproved,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"invalid assertion"}"#,
        D::Unknown,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"Audience validation failed"}"#,
        D::Unknown,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"expired authorization code"}"#,
        D::ClockSkew,
        false,
    ),
    (
        r#"{"error":"invalid_request","error_description":"jti already in use"}"#,
        D::Unknown,
        false,
    ),
    (
        r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
        D::InvalidClient,
        false,
    ),
    (
        r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        D::InvalidClient,
        false,
    ),
    (
        r#"{"error":"invalid_client_credentials","error_description":"client secret invalid"}"#,
        D::InvalidClient,
        false,
    ),
    (
        r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#,
        D::Unknown,
        false,
    ),
    (
        r#"{"error":"rate_limit_exceeded","error_description":"ip/login rate exceeded"}"#,
        D::RateLimited,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"activation secret invalid"}"#,
        D::Unknown,
        false,
    ),
    (
        r#"{"error":"invalid_grant","error_description":"Invalid Code Verifier"}"#,
        D::Unknown,
        false,
    ),
    (
        r#"{"error":"authorization_pending","error_description":"authorization pending"}"#,
        D::Healthy,
        true,
    ),
    (
        r#"{"error":"invalid_token","error_description":"Token was invalid"}"#,
        D::Unknown,
        true,
    ),
    (
        r#"{"error":"unsupported_token_type","error_description":"Token type not supported"}"#,
        D::Unknown,
        true,
    ),
    (
        "error=invalid_client_id&error_description=client%20identifier%20invalid",
        D::InvalidClient,
        false,
    ),
    // §3.3 identity URL.
    ("Bad_OAuth_Token", D::Unknown, true),
    // §4 REST.
    (
        r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        D::Unknown,
        true,
    ),
    (
        r#"[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]"#,
        D::Unknown,
        true,
    ),
    (
        r#"[{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}]"#,
        D::SessionNotValidForApi,
        false,
    ),
    (
        r#"[{"message":"INVALID_HEADER_TYPE","errorCode":"INVALID_AUTH_HEADER"}]"#,
        D::Unknown,
        false,
    ),
    (
        r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        D::RateLimited,
        false,
    ),
    (
        r#"[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]"#,
        D::ApiDisabled,
        false,
    ),
    (
        r#"[{"errorCode":"API_DISABLED_FOR_ORG","message":"The Chatter Connect API is not enabled for this organization or user type."}]"#,
        D::ApiDisabled,
        false,
    ),
    (
        r#"[{"message":"Insufficient access","errorCode":"INVALID_OPERATION"}]"#,
        D::Healthy,
        true,
    ),
    (
        r#"[{"message":"Service unavailable","errorCode":"SERVER_UNAVAILABLE"}]"#,
        D::Healthy,
        true,
    ),
    (
        r#"[{"message":"An unexpected error occurred. Please include this ErrorId if you contact support: 123-456","errorCode":"UNKNOWN_EXCEPTION"}]"#,
        D::Healthy,
        true,
    ),
    (
        r#"[{"message":"No such column 'foo' on sobject of type Bar","errorCode":"INVALID_FIELD"}]"#,
        D::Healthy,
        true,
    ),
    (
        r#"[{"message":"Required fields are missing: [Name]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Name"]}]"#,
        D::Healthy,
        true,
    ),
    // §5.3 SOAP faults.
    (
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#,
        D::WrongPassword,
        false,
    ),
    (
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:sf=\"urn:fault.enterprise.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session. Session not found, missing session hash: yNHBjIbNE79KEGtRRO+Qa/QH3oWryUWoKU2afYoBC0A=\nThis error usually occurs after a session expires or a user logs out. </faultstring><detail><sf:UnexpectedErrorFault xsi:type=\"sf:UnexpectedErrorFault\"><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode><sf:exceptionMessage>Invalid Session ID found in SessionHeader: Illegal Session. Session not found, missing session hash: yNHBjIbNE79KEGtRRO+Qa/QH3oWryUWoKU2afYoBC0A=\nThis error usually occurs after a session expires or a user logs out. </sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        D::Unknown,
        true,
    ),
    (
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:sf=\"urn:fault.partner.soap.sforce.com\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body>\n    <soapenv:Fault>\n        <faultcode>sf:INVALID_SESSION_ID</faultcode>\n        <faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session</faultstring>\n        <detail>\n        <sf:UnexpectedErrorFault xsi:type=\"sf:UnexpectedErrorFault\">\n            <sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode>\n            <sf:exceptionMessage>Invalid Session ID found in SessionHeader: Illegal Session</sf:exceptionMessage>\n        </sf:UnexpectedErrorFault>\n        </detail>\n    </soapenv:Fault>\n</soapenv:Body>\n</soapenv:Envelope>",
        D::Unknown,
        true,
    ),
    (
        "<soapenv:Fault><faultcode>sf:LOGIN_DURING_RESTRICTED_TIME</faultcode><faultstring>LOGIN_DURING_RESTRICTED_TIME: cannot log in during restricted time</faultstring></soapenv:Fault>",
        D::IpRestricted,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:LOGIN_MUST_USE_SECURITY_TOKEN</faultcode><faultstring>LOGIN_MUST_USE_SECURITY_TOKEN: Invalid username, password, security token; or user locked out. Are you at a new location?</faultstring></soapenv:Fault>",
        D::WrongPassword,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:PASSWORD_LOCKOUT</faultcode><faultstring>PASSWORD_LOCKOUT: locked</faultstring></soapenv:Fault>",
        D::UserFrozen,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:LOGIN_DURING_RESTRICTED_DOMAIN</faultcode><faultstring>x</faultstring></soapenv:Fault>",
        D::IpRestricted,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:LOGIN_CHALLENGE_ISSUED</faultcode><faultstring>x</faultstring></soapenv:Fault>",
        D::Unknown,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:LOGIN_CHALLENGE_PENDING</faultcode><faultstring>x</faultstring></soapenv:Fault>",
        D::Unknown,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:ORG_LOCKED</faultcode><faultstring>x</faultstring></soapenv:Fault>",
        D::ApiDisabled,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:INVALID_OPERATION_WITH_EXPIRED_PASSWORD</faultcode><faultstring>x</faultstring></soapenv:Fault>",
        D::PasswordChanged,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:API_DISABLED_FOR_ORG</faultcode><faultstring>API_DISABLED_FOR_ORG: API is not enabled for this Organization or Partner</faultstring></soapenv:Fault>",
        D::ApiDisabled,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:API_CURRENTLY_DISABLED</faultcode><faultstring>x</faultstring></soapenv:Fault>",
        D::ApiDisabled,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:REQUEST_LIMIT_EXCEEDED</faultcode><faultstring>TotalRequests Limit exceeded.</faultstring></soapenv:Fault>",
        D::RateLimited,
        false,
    ),
    (
        "<soapenv:Fault><faultcode>sf:UNSUPPORTED_API_VERSION</faultcode><faultstring>UNSUPPORTED_API_VERSION: Invalid Api version specified on URL</faultstring></soapenv:Fault>",
        D::Unknown,
        false,
    ),
    // §6 Bulk.
    (
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\">\n  <exceptionCode>InvalidSessionId</exceptionCode>\n  <exceptionMessage>Invalid session id</exceptionMessage>\n</error>",
        D::Unknown,
        true,
    ),
    (
        r#"{"exceptionCode":"InvalidSessionId","exceptionMessage":"Invalid session id"}"#,
        D::Unknown,
        true,
    ),
    (
        "<error xmlns=\"http://www.force.com/2009/06/asyncapi/dataload\"><exceptionCode>InvalidVersion</exceptionCode><exceptionMessage>Invalid version</exceptionMessage></error>",
        D::Unknown,
        false,
    ),
    // §9 LoginHistory statuses.
    ("User Is Frozen", D::UserFrozen, false),
    ("User is Inactive", D::UserDeactivated, false),
    ("Restricted IP", D::IpRestricted, false),
    ("Login Rate Exceeded", D::RateLimited, false),
    ("Invalid Password", D::WrongPassword, false),
    // Log lines containing one.
    (
        "2026-05-01T03:00:00Z ERROR sync: 401 Unauthorized: [{\"message\":\"Session expired or invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]",
        D::Unknown,
        true,
    ),
    (
        "Restforce::AuthenticationError: invalid_grant: expired access/refresh token",
        D::AppTokensRevoked,
        false,
    ),
    (
        "Error authenticating with the refresh token due to: ip restricted",
        D::IpRestricted,
        false,
    ),
    (
        "simple_salesforce.exceptions.SalesforceExpiredSession: Expired session for https://x.my.salesforce.com/services/data/v59.0/query. Response content: [{'message': 'Session expired or invalid', 'errorCode': 'INVALID_SESSION_ID'}]",
        D::Unknown,
        true,
    ),
    (
        "400 Client Error: Bad Request for url: https://test.my.salesforce.com/services/async/41.0/job/750/batch/751/result/752 <exceptionCode>InvalidSessionId</exceptionCode>",
        D::Unknown,
        true,
    ),
    (
        "{\"level\":\"error\",\"msg\":\"token refresh failed\",\"body\":\"{\\\"error\\\":\\\"invalid_grant\\\",\\\"error_description\\\":\\\"inactive user\\\"}\"}",
        D::UserDeactivated,
        false,
    ),
];

#[test]
fn every_reference_body_maps_to_its_cause() {
    let mut failures = Vec::new();
    for (body, want, recoverable) in TABLE {
        assert!(
            recognize_error_text(body).is_some(),
            "not recognized: {body}"
        );
        let d = classify_error_text(body);
        if d.verdict != *want || d.recoverable != *recoverable {
            failures.push(format!(
                "{body}\n  want {want} recoverable={recoverable}, got {} recoverable={}",
                d.verdict, d.recoverable
            ));
        }
        for c in &d.causes {
            assert!((0.0..=1.0).contains(&c.confidence));
            assert!(!c.evidence.is_empty() && !c.fix.is_empty(), "{body}: {c:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
