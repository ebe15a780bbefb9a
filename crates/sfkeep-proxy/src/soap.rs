//! SOAP envelopes: finding the operation and the `SessionHeader/sessionId`, rewriting or
//! inserting it, and rendering the shim's `loginResponse` and Salesforce-shaped faults
//! (salesforce-wire.md §5).

use std::ops::Range;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// What the proxy needs to know about a SOAP request.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    /// Local name of the first element in `Body` (`login`, `query`, …).
    pub operation: String,
    /// The byte range of the text of `Header/SessionHeader/sessionId`, and its value.
    pub session: Option<(Range<usize>, String)>,
    /// Offset just after the `Header` start tag (insertion point for a SessionHeader).
    pub header_inner_start: Option<usize>,
    /// Offset of a self-closing `<Header/>` (start, end), replaced by a full Header.
    pub header_empty: Option<Range<usize>>,
    /// Offset of the `Body` start tag.
    pub body_start: usize,
    /// The envelope element's prefix with a colon (`soapenv:`), or empty.
    pub env_prefix: String,
    /// `login` only: username and password.
    pub login: Option<(String, String)>,
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Parses a SOAP request. `Err` carries a message for a `soapenv:Client` fault.
pub(crate) fn inspect(xml: &[u8]) -> Result<Envelope, String> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut env = Envelope::default();
    let mut body_seen = false;
    let mut text: Option<(usize, String)> = None; // collecting: start offset, value
    let mut login_user: Option<String> = None;
    let mut login_pass: Option<String> = None;
    let mut root_seen = false;
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| format!("the request is not well-formed XML: {e}"))?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Start(e) => {
                let name = e.name().0.as_bytes().to_vec();
                let l = local(&name).to_vec();
                if stack.is_empty() {
                    if root_seen || l != b"Envelope" {
                        return Err("the root element is not a SOAP Envelope".into());
                    }
                    root_seen = true;
                    let full = String::from_utf8_lossy(&name).into_owned();
                    env.env_prefix = match full.rfind(':') {
                        Some(i) => full[..=i].to_owned(),
                        None => String::new(),
                    };
                }
                let depth = stack.len();
                if depth == 1 && l == b"Header" {
                    env.header_inner_start = Some(after);
                }
                if depth == 1 && l == b"Body" {
                    env.body_start = before;
                    body_seen = true;
                }
                if depth == 2 && local(&stack[1]) == b"Body" && env.operation.is_empty() {
                    env.operation = String::from_utf8_lossy(&l).into_owned();
                }
                let collect = (depth == 3
                    && l == b"sessionId"
                    && local(&stack[1]) == b"Header"
                    && local(&stack[2]) == b"SessionHeader")
                    || (depth == 3
                        && env.operation == "login"
                        && local(&stack[1]) == b"Body"
                        && (l == b"username" || l == b"password"));
                if collect {
                    text = Some((after, String::new()));
                }
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = e.name().0.as_bytes().to_vec();
                let l = local(&name);
                let depth = stack.len();
                if depth == 0 {
                    return Err("the root element is not a SOAP Envelope".into());
                }
                if depth == 1 && l == b"Header" {
                    env.header_empty = Some(before..after);
                }
                if depth == 1 && l == b"Body" {
                    env.body_start = before;
                    body_seen = true;
                }
                if depth == 2 && local(&stack[1]) == b"Body" && env.operation.is_empty() {
                    env.operation = String::from_utf8_lossy(l).into_owned();
                }
                if depth == 3
                    && l == b"sessionId"
                    && local(&stack[1]) == b"Header"
                    && local(&stack[2]) == b"SessionHeader"
                {
                    // `<sessionId/>`: replace the whole element.
                    env.session = Some((before..after, String::new()));
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                if let Some((start, value)) = text.take() {
                    let l = local(&name);
                    if l == b"sessionId" {
                        env.session = Some((start..before, value));
                    } else if l == b"username" {
                        login_user = Some(value);
                    } else if l == b"password" {
                        login_pass = Some(value);
                    }
                }
            }
            Event::Text(t) => {
                if let Some((_, v)) = text.as_mut() {
                    v.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some((_, v)) = text.as_mut() {
                    v.push_str(&t[..]);
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, v)) = text.as_mut() {
                    if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) => v.push(c),
                            _ => return Err("an invalid character reference".into()),
                        }
                    } else {
                        let name = r.xml10_content();
                        match resolve_predefined_entity(&name) {
                            Some(s) => v.push_str(s),
                            None => return Err(format!("an undefined entity &{name};")),
                        }
                    }
                }
            }
            Event::DocType(_) => return Err("a DOCTYPE is not allowed in a SOAP message".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("the XML ends inside an element".into());
    }
    if !root_seen {
        return Err("the request body is not a SOAP Envelope".into());
    }
    if !body_seen || env.operation.is_empty() {
        return Err("the SOAP Envelope has no Body operation".into());
    }
    if env.operation == "login" {
        env.login = Some((
            login_user.unwrap_or_default(),
            login_pass.unwrap_or_default(),
        ));
    }
    Ok(env)
}

/// The SessionHeader namespace for an endpoint path (`/services/Soap/u/…` partner,
/// `/c/` enterprise, `/m/` metadata, `/T/` tooling).
pub(crate) fn session_namespace(path: &str) -> &'static str {
    let kind = path
        .trim_start_matches("/services/Soap/")
        .split('/')
        .next()
        .unwrap_or("u");
    match kind {
        "c" => "urn:enterprise.soap.sforce.com",
        "m" => "http://soap.sforce.com/2006/04/metadata",
        "T" => "urn:tooling.soap.sforce.com",
        "class" => "http://soap.sforce.com/schemas/class",
        _ => "urn:partner.soap.sforce.com",
    }
}

/// The request with its session id replaced by (or a SessionHeader carrying) `token`.
pub(crate) fn with_session(xml: &[u8], env: &Envelope, token: &str, ns: &str) -> Vec<u8> {
    let token = escape(token);
    let mut out = Vec::with_capacity(xml.len() + token.len() + 128);
    let header =
        format!("<SessionHeader xmlns=\"{ns}\"><sessionId>{token}</sessionId></SessionHeader>");
    if let Some((range, _)) = &env.session {
        let is_element = xml[range.clone()].starts_with(b"<");
        out.extend_from_slice(&xml[..range.start]);
        if is_element {
            out.extend_from_slice(
                format!("<sessionId xmlns=\"{ns}\">{token}</sessionId>").as_bytes(),
            );
        } else {
            out.extend_from_slice(token.as_bytes());
        }
        out.extend_from_slice(&xml[range.end..]);
    } else if let Some(at) = env.header_inner_start {
        out.extend_from_slice(&xml[..at]);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&xml[at..]);
    } else if let Some(range) = &env.header_empty {
        let p = &env.env_prefix;
        out.extend_from_slice(&xml[..range.start]);
        out.extend_from_slice(format!("<{p}Header>{header}</{p}Header>").as_bytes());
        out.extend_from_slice(&xml[range.end..]);
    } else {
        let p = &env.env_prefix;
        out.extend_from_slice(&xml[..env.body_start]);
        out.extend_from_slice(format!("<{p}Header>{header}</{p}Header>").as_bytes());
        out.extend_from_slice(&xml[env.body_start..]);
    }
    out
}

/// The fault namespace of an endpoint path: enterprise (`/c/`) faults have their own
/// (salesforce-wire.md, the recorded enterprise INVALID_SESSION_ID fault).
pub(crate) fn fault_namespace(path: &str) -> &'static str {
    if path.starts_with("/services/Soap/c/") {
        "urn:fault.enterprise.soap.sforce.com"
    } else {
        "urn:fault.partner.soap.sforce.com"
    }
}
const ENV_CLOSE: &str = "</soapenv:Body></soapenv:Envelope>";

/// A fault as Salesforce sends it (HTTP 500). `code` without prefix; `login` picks LoginFault;
/// `ns` is the endpoint's [`fault_namespace`].
pub(crate) fn fault(code: &str, message: &str, login: bool, ns: &str) -> String {
    let message = escape(message);
    let (faultcode, kind) = if login {
        (code.to_owned(), "LoginFault")
    } else if code.starts_with("soapenv:") {
        (code.to_owned(), "UnexpectedErrorFault")
    } else {
        (format!("sf:{code}"), "UnexpectedErrorFault")
    };
    let exc = code.trim_start_matches("soapenv:");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:sf=\"{ns}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><soapenv:Fault><faultcode>{faultcode}</faultcode><faultstring>{exc}: {message}</faultstring><detail><sf:{kind} xsi:type=\"sf:{kind}\"><sf:exceptionCode>{exc}</sf:exceptionCode><sf:exceptionMessage>{message}</sf:exceptionMessage></sf:{kind}></detail></soapenv:Fault>{ENV_CLOSE}"
    )
}

/// The fields of a shimmed `loginResponse`.
pub(crate) struct LoginResult<'a> {
    pub namespace: &'a str,
    pub server_url: &'a str,
    pub metadata_server_url: &'a str,
    pub session_id: &'a str,
    pub user_id: &'a str,
    pub org_id: &'a str,
    pub username: &'a str,
    pub session_seconds_valid: u64,
}

/// `loginResponse` in the recorded shape (salesforce-wire.md §5.2), unprefixed result elements.
pub(crate) fn login_response(r: &LoginResult<'_>) -> String {
    let e = |s: &str| escape(s).into_owned();
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>"#,
            "<metadataServerUrl>{meta}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox>",
            "<serverUrl>{server}</serverUrl><sessionId>{sid}</sessionId><userId>{uid}</userId>",
            "<userInfo><accessibilityMode>false</accessibilityMode><currencySymbol>$</currencySymbol>",
            "<orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit><orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>",
            "<orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts>",
            "<organizationId>{org}</organizationId><organizationMultiCurrency>false</organizationMultiCurrency>",
            "<sessionSecondsValid>{ssv}</sessionSecondsValid><userDefaultCurrencyIsoCode xsi:nil=\"true\"/>",
            "<userId>{uid}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale><userName>{user}</userName>",
            "<userTimeZone>America/Los_Angeles</userTimeZone><userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo>",
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        ),
        ns = e(r.namespace),
        meta = e(r.metadata_server_url),
        server = e(r.server_url),
        sid = e(r.session_id),
        uid = e(r.user_id),
        org = e(r.org_id),
        ssv = r.session_seconds_valid,
        user = e(r.username),
    )
}

/// `logoutResponse`, answered locally so a client's logout never ends the proxy's session.
pub(crate) fn logout_response(namespace: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="{}"><soapenv:Body><logoutResponse/></soapenv:Body></soapenv:Envelope>"#,
        escape(namespace)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>x</urn:client></urn:CallOptions></env:Header>
  <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>u@example.com</n1:username><n1:password>p&amp;w<![CDATA[<x>]]>TOKEN</n1:password></n1:login></env:Body>
</env:Envelope>"#;

    #[test]
    fn login_is_found_with_entities_and_cdata() {
        let env = inspect(LOGIN.as_bytes()).unwrap();
        assert_eq!(env.operation, "login");
        assert_eq!(env.env_prefix, "env:");
        let (u, p) = env.login.unwrap();
        assert_eq!(u, "u@example.com");
        assert_eq!(p, "p&w<x>TOKEN");
    }

    #[test]
    fn session_is_rewritten_in_place() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>LOCAL!abc</sessionId></SessionHeader></s:Header><s:Body><query xmlns="urn:partner.soap.sforce.com"><queryString>SELECT Id FROM Account</queryString></query></s:Body></s:Envelope>"#;
        let env = inspect(xml.as_bytes()).unwrap();
        assert_eq!(env.operation, "query");
        assert_eq!(env.session.as_ref().unwrap().1, "LOCAL!abc");
        let out = String::from_utf8(with_session(
            xml.as_bytes(),
            &env,
            "REAL!1",
            "urn:partner.soap.sforce.com",
        ))
        .unwrap();
        assert!(out.contains("<sessionId>REAL!1</sessionId>"), "{out}");
        assert!(!out.contains("LOCAL"));
        inspect(out.as_bytes()).unwrap();
    }

    #[test]
    fn session_header_is_inserted() {
        for xml in [
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/><s:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header></s:Header><s:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
        ] {
            let env = inspect(xml.as_bytes()).unwrap();
            assert_eq!(env.operation, "getUserInfo");
            let out = with_session(
                xml.as_bytes(),
                &env,
                "REAL!2",
                "urn:partner.soap.sforce.com",
            );
            let again = inspect(&out).unwrap();
            assert_eq!(
                again.session.unwrap().1,
                "REAL!2",
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn not_xml_is_an_error_not_a_panic() {
        for bad in [
            "",
            "not xml",
            "<a><b></a>",
            "<Envelope>",
            "<!DOCTYPE x><Envelope/>",
            "<x/>",
            "\u{0}\u{1}",
        ] {
            assert!(inspect(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fault_shape() {
        let f = fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
            true,
            fault_namespace("/services/Soap/u/59.0"),
        );
        assert!(f.contains("xmlns:sf=\"urn:fault.partner.soap.sforce.com\""));
        assert!(f.contains("<faultcode>INVALID_LOGIN</faultcode>"));
        assert!(f.contains("<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"));
        let f = fault(
            "INVALID_SESSION_ID",
            "Invalid Session ID found in SessionHeader: Illegal Session",
            false,
            fault_namespace("/services/Soap/c/59.0"),
        );
        assert!(f.contains("xmlns:sf=\"urn:fault.enterprise.soap.sforce.com\""));
        assert_eq!(
            sfkeep::diagnose::api_error::soap_fault_code(&f),
            Some("INVALID_SESSION_ID")
        );
    }
}
