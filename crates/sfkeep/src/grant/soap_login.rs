//! Legacy SOAP partner `login()`: username + password + security token in, a session id out.
//!
//! Retired from API v65.0 and disabled by default in new orgs; supported here because old
//! integrations still use it. The session's lifetime comes from `sessionSecondsValid`.

use quick_xml::escape::escape as xml_escape;
use quick_xml::events::Event;

use super::TokenResponse;
use super::endpoint::TokenEndpoint;
use crate::clock::UnixMillis;
use crate::diagnose::Cause;
use crate::diagnose::soap_fault::SoapFault;
use crate::error::{Error, Result, redacted_snippet};
use crate::http::{MAX_AUTH_BODY, date_header, read_capped};
use crate::secret::{AccessToken, Password, SecurityToken};

/// The text of every element whose local name is in `names`, first occurrence each, read with
/// quick-xml (namespaces and prefixes ignored). `None` if the body is not well-formed XML.
pub(crate) fn element_texts(body: &[u8], names: &[&str]) -> Option<Vec<Option<String>>> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut out: Vec<Option<String>> = vec![None; names.len()];
    let mut current: Option<usize> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let local = e.local_name();
                let local: &str = local.as_ref();
                current = names
                    .iter()
                    .position(|n| *n == local)
                    .filter(|&i| out[i].is_none());
                if let Some(i) = current {
                    out[i] = Some(String::new());
                }
            }
            Ok(Event::Text(t)) => {
                if let Some(i) = current {
                    let text = t.xml10_content();
                    if let Some(s) = out[i].as_mut() {
                        s.push_str(&text);
                    }
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if let Some(i) = current {
                    let ch = crate::diagnose::soap_fault::reference_char(&r);
                    if let (Some(s), Some(c)) = (out[i].as_mut(), ch) {
                        s.push(c);
                    }
                }
            }
            Ok(Event::End(_)) => current = None,
            Ok(Event::Eof) => return Some(out),
            Ok(_) => {}
            Err(_) => return None,
        }
        buf.clear();
    }
}

/// Logs in with SOAP `login()` at `{login_url}/services/Soap/u/{api_version}`.
pub async fn request(
    endpoint: &TokenEndpoint,
    username: &str,
    password: &Password,
    security_token: Option<&SecurityToken>,
    api_version: &str,
) -> Result<TokenResponse> {
    let url = endpoint.url(&format!("/services/Soap/u/{api_version}"));
    let body = zeroize::Zeroizing::new(format!(
        r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>{}</n1:username><n1:password>{}{}</n1:password></n1:login></env:Body></env:Envelope>"#,
        xml_escape(username),
        xml_escape(password.expose_secret()),
        xml_escape(
            security_token
                .map(|t| t.expose_secret())
                .unwrap_or_default()
        ),
    ));
    let what = format!("SOAP login at {url}");
    let resp = endpoint
        .http()?
        .post(&url)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "login")
        .body(body.as_str().to_owned())
        .send()
        .await
        .map_err(|e| Error::transport(&what, e))?;
    if let Some(date) = date_header(&resp) {
        endpoint
            .clock()
            .observe_date_header(&date, endpoint.clock().local().now());
    }
    let status = resp.status().as_u16();
    let raw = read_capped(resp, MAX_AUTH_BODY, &what).await?;
    parse_login_response(status, &raw)
}

/// Why a SOAP login at API v65.0+ fails, and what to do instead.
const LOGIN_NOT_AVAILABLE: &str = "SOAP login() is not available in API v65.0 and later (the org answered `No operation available for request …login`)";
/// Why a SOAP login at a retired version fails.
const RETIRED_VERSION: &str = "UNSUPPORTED_API_VERSION: API versions 30.0 and lower are retired";

/// Parses a SOAP login response or fault.
pub fn parse_login_response(status: u16, body: &[u8]) -> Result<TokenResponse> {
    let malformed = |problem: &str| Error::MalformedResponse {
        source_name: "SOAP login".into(),
        problem: problem.into(),
        status,
        snippet: redacted_snippet(body),
    };
    let fields = element_texts(
        body,
        &[
            "sessionId",
            "serverUrl",
            "sessionSecondsValid",
            "userId",
            "organizationId",
        ],
    )
    .ok_or_else(|| malformed("not well-formed XML"))?;
    let [session_id, server_url, seconds, user_id, org_id] =
        <[Option<String>; 5]>::try_from(fields).map_err(|_| malformed("internal"))?;
    let text = String::from_utf8_lossy(body);
    let fault = SoapFault::read(&text);
    if let Some(code) = fault.and_then(|f| f.exception_code().or(f.fault_code())) {
        let faultstring = fault
            .and_then(|f| f.fault_string())
            .unwrap_or_default()
            .into_owned();
        if crate::diagnose::soap_fault::soap_operation_not_available(code, &faultstring)
            == Some("login")
        {
            return Err(Error::ReauthRequired {
                cause: Cause::ApiVersionUnsupported,
                detail: LOGIN_NOT_AVAILABLE.to_owned(),
            });
        }
        if code == "UNSUPPORTED_API_VERSION" {
            return Err(Error::ReauthRequired {
                cause: Cause::ApiVersionUnsupported,
                detail: RETIRED_VERSION.to_owned(),
            });
        }
        let cause = match code {
            "INVALID_LOGIN" | "LOGIN_MUST_USE_SECURITY_TOKEN" | "PASSWORD_LOCKOUT" => {
                Cause::AuthenticationFailure
            }
            "LOGIN_DURING_RESTRICTED_TIME" | "LOGIN_DURING_RESTRICTED_DOMAIN" => {
                Cause::IpRestricted
            }
            "INVALID_SESSION_ID" => Cause::SessionExpired,
            "ORG_LOCKED" => Cause::InactiveOrg,
            "REQUEST_LIMIT_EXCEEDED" => Cause::RateLimited,
            "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" => Cause::SessionNotValidForApi,
            _ => Cause::Unknown,
        };
        let detail = format!("{code}: {}", redacted_snippet(faultstring.as_bytes()));
        return Err(if cause.needs_human() {
            Error::ReauthRequired { cause, detail }
        } else {
            Error::TokenEndpoint {
                cause,
                status,
                detail,
            }
        });
    }
    if status != 200 {
        return Err(Error::TokenEndpoint {
            cause: if status >= 500 {
                Cause::Transient
            } else {
                Cause::Unknown
            },
            status,
            detail: format!("unrecognised body: {:?}", redacted_snippet(body)),
        });
    }
    let session_id = session_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("no sessionId"))?;
    let server_url = server_url.ok_or_else(|| malformed("no serverUrl"))?;
    let parsed = url::Url::parse(&server_url).map_err(|_| malformed("serverUrl is not a URL"))?;
    let instance_url = parsed.origin().ascii_serialization();
    crate::http::check_url("serverUrl", &instance_url)?;
    let id = match (org_id, user_id) {
        (Some(o), Some(u)) => Some(format!("{instance_url}/id/{o}/{u}")),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: AccessToken::new(session_id),
        refresh_token: None,
        instance_url,
        id,
        issued_at: None::<UnixMillis>,
        scope: None,
        session_seconds_valid: seconds.and_then(|s| s.trim().parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result><metadataServerUrl>https://foobar.my.salesforce.com/services/Soap/m/37.0/00D30ACACA00RnR</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>https://foobar.my.salesforce.com/services/Soap/u/37.0/00D30ACACA00RnR</serverUrl><sessionId>00D30ACACA00RnR!AQQAQHLrBFDFG</sessionId><userId>000606060606WH5AAO</userId><userInfo><organizationId>0090909ACA00RnREAU</organizationId><sessionSecondsValid>14400</sessionSecondsValid><userId>000606060606WH5AAO</userId></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn parses_the_recorded_login_response() {
        let r = parse_login_response(200, RECORDED.as_bytes()).unwrap();
        assert_eq!(r.instance_url, "https://foobar.my.salesforce.com");
        assert_eq!(r.session_seconds_valid, Some(14400));
        assert_eq!(
            r.access_token.expose_secret(),
            "00D30ACACA00RnR!AQQAQHLrBFDFG"
        );
    }

    #[test]
    fn invalid_login_fault_needs_a_human() {
        let fault = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let e = parse_login_response(500, fault.as_bytes()).unwrap_err();
        assert!(e.is_reauth_required(), "{e}");
        assert_eq!(e.cause(), Some(Cause::AuthenticationFailure));
    }

    #[test]
    fn login_at_v65_says_login_is_gone_and_what_to_use_instead() {
        let fault = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>No operation available for request {urn:partner.soap.sforce.com}login, please check the WSDL for the service.</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let e = parse_login_response(500, fault.as_bytes()).unwrap_err();
        assert!(e.is_reauth_required(), "{e}");
        let text = e.to_string();
        assert!(text.contains("not available in API v65.0"), "{text}");
        assert!(text.contains("sfkeep login --jwt"), "{text}");
        assert_eq!(e.cause(), Some(Cause::ApiVersionUnsupported));
    }

    #[test]
    fn a_retired_version_names_the_version_to_use() {
        let fault = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:UNSUPPORTED_API_VERSION</faultcode><faultstring>UNSUPPORTED_API_VERSION: Invalid Api version specified on URL</faultstring><detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault"><sf:exceptionCode>UNSUPPORTED_API_VERSION</sf:exceptionCode><sf:exceptionMessage>Invalid Api version specified on URL</sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let e = parse_login_response(500, fault.as_bytes()).unwrap_err();
        assert!(e.is_reauth_required(), "{e}");
        assert!(e.to_string().contains("31.0 or later"), "{e}");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for body in [&b"<html>"[..], b"", b"<a><b></a>", b"not xml at all"] {
            assert!(parse_login_response(200, body).is_err());
        }
    }
}
