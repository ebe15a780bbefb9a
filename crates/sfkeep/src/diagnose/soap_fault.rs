//! The one reader of SOAP faults (and Bulk API 1.0 XML errors) in sfkeep, on quick-xml.
//!
//! The client, the SOAP login, the offline classifier behind `sfkeep doctor --error` and the
//! proxy all read faults through [`SoapFault::read`]. The shapes it reads are in
//! `docs/salesforce-wire.md` (SOAP faults and Bulk 1.0 errors):
//!
//! ```xml
//! <soapenv:Fault>
//!   <faultcode>sf:INVALID_SESSION_ID</faultcode>
//!   <faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: …</faultstring>
//!   <detail><sf:UnexpectedErrorFault><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode>
//!     <sf:exceptionMessage>…</sf:exceptionMessage></sf:UnexpectedErrorFault></detail>
//! </soapenv:Fault>
//! ```
//!
//! and Bulk 1.0's `<error><exceptionCode>InvalidSessionId</exceptionCode>…</error>`.
//!
//! Namespace prefixes are ignored, the first occurrence of each element wins, and the text
//! around the XML (a log line that contains a fault) or a cut-off end is tolerated: what was
//! read before the XML stops being well-formed counts. Values borrow from the input, so a
//! verdict on a fault allocates nothing.

use std::borrow::Cow;

use quick_xml::events::Event;

/// The elements of a fault, as raw (still escaped, trimmed) text borrowed from the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoapFault<'a> {
    fault_code: Option<&'a str>,
    fault_string: Option<&'a str>,
    exception_code: Option<&'a str>,
    exception_message: Option<&'a str>,
}

/// The elements [`SoapFault::read`] looks for, by local name.
const NAMES: [&str; 4] = [
    "faultcode",
    "faultstring",
    "exceptionCode",
    "exceptionMessage",
];

impl<'a> SoapFault<'a> {
    /// Reads the fault in `text`; `None` when it has neither a `faultcode` nor an
    /// `exceptionCode` element.
    pub fn read(text: &'a str) -> Option<Self> {
        let mut found: [Option<&'a str>; 4] = [None; 4];
        let mut reader = quick_xml::Reader::from_str(text);
        // Pasted and cut-off text: a mismatched end tag is not a reason to stop reading.
        reader.config_mut().check_end_names = false;
        // (slot, byte offset where its content starts) of the element being read.
        let mut open: Option<(usize, usize)> = None;
        loop {
            let before = position(&reader);
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    open = slot(e.local_name().as_ref(), &found).map(|i| (i, position(&reader)));
                }
                Ok(Event::Empty(e)) => {
                    if let Some(i) = slot(e.local_name().as_ref(), &found) {
                        found[i] = Some("");
                    }
                }
                Ok(Event::End(_)) => {
                    if let Some((i, start)) = open.take() {
                        found[i] = text.get(start..before).map(str::trim);
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let [fault_code, fault_string, exception_code, exception_message] = found;
        (fault_code.is_some() || exception_code.is_some()).then_some(Self {
            fault_code,
            fault_string,
            exception_code,
            exception_message,
        })
    }

    /// `faultcode` without its namespace prefix (`sf:INVALID_SESSION_ID` →
    /// `INVALID_SESSION_ID`, `soapenv:Client` → `Client`).
    pub fn fault_code(&self) -> Option<&'a str> {
        self.fault_code.map(without_prefix)
    }

    /// `exceptionCode` (from a fault's detail, or a Bulk 1.0 error).
    pub fn exception_code(&self) -> Option<&'a str> {
        self.exception_code.map(without_prefix)
    }

    /// The fault code, else the exception code.
    pub fn code(&self) -> Option<&'a str> {
        self.fault_code().or_else(|| self.exception_code())
    }

    /// `faultstring`, unescaped.
    pub fn fault_string(&self) -> Option<Cow<'a, str>> {
        self.fault_string.map(unescape)
    }

    /// `exceptionMessage`, unescaped.
    pub fn exception_message(&self) -> Option<Cow<'a, str>> {
        self.exception_message.map(unescape)
    }

    /// `faultstring`, else `exceptionMessage`, unescaped.
    pub fn message(&self) -> Option<Cow<'a, str>> {
        self.fault_string().or_else(|| self.exception_message())
    }
}

/// The character an entity or character reference in SOAP text stands for: one of the five
/// predefined entities (`&amp;`, by quick-xml) or a character reference (`&#233;`); `None`
/// for anything else.
pub(crate) fn reference_char(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    let name: &str = r.as_ref();
    match quick_xml::escape::resolve_predefined_entity(name) {
        Some(s) => s.chars().next(),
        None => r.resolve_char_ref().ok().flatten(),
    }
}

fn position(reader: &quick_xml::Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// The index of `local` in [`NAMES`], if it is one and was not found yet.
fn slot(local: &str, found: &[Option<&str>; 4]) -> Option<usize> {
    NAMES
        .iter()
        .position(|n| *n == local)
        .filter(|&i| found[i].is_none())
}

fn without_prefix(code: &str) -> &str {
    code.rsplit(':').next().unwrap_or(code).trim()
}

/// Entities and character references resolved; text that is not valid escaped XML (an
/// unknown entity, a stray `&`) is kept as it came.
fn unescape(raw: &str) -> Cow<'_, str> {
    quick_xml::escape::unescape(raw).unwrap_or(Cow::Borrowed(raw))
}

/// The code of a SOAP fault (`sf:INVALID_SESSION_ID` → `INVALID_SESSION_ID`), if `text` is
/// one. Shorthand for [`SoapFault::read`] and [`SoapFault::fault_code`].
pub fn soap_fault_code(text: &str) -> Option<&str> {
    SoapFault::read(text)?.fault_code()
}

/// The operation a SOAP endpoint's dispatcher does not have: Salesforce's generic fault
/// `soapenv:Client` / `No operation available for request {ns}OPERATION, …`, as sent for
/// `login` from API v65.0 (see `docs/salesforce-wire.md`) or for a call posted to the wrong
/// endpoint. `code` is the fault code without its prefix.
pub fn soap_operation_not_available<'a>(code: &str, faultstring: &'a str) -> Option<&'a str> {
    if code != "Client" {
        return None;
    }
    let rest = faultstring
        .split("No operation available for request")
        .nth(1)?;
    let op = rest.split('}').nth(1)?;
    Some(op.split([',', ' ']).next().unwrap_or(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVALID_SESSION: &str = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session &amp; more</faultstring><detail><sf:UnexpectedErrorFault><sf:exceptionCode>INVALID_SESSION_ID</sf:exceptionCode><sf:exceptionMessage>Invalid Session ID found in SessionHeader: Illegal Session</sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn reads_every_part_of_a_partner_fault() {
        let f = SoapFault::read(INVALID_SESSION).unwrap();
        assert_eq!(f.fault_code(), Some("INVALID_SESSION_ID"));
        assert_eq!(f.exception_code(), Some("INVALID_SESSION_ID"));
        assert_eq!(
            f.message().unwrap(),
            "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session & more"
        );
        assert_eq!(
            f.exception_message().unwrap(),
            "Invalid Session ID found in SessionHeader: Illegal Session"
        );
        // The code borrows from the body: no allocation on the proxy's path.
        assert!(matches!(f.fault_string(), Some(Cow::Owned(_))));
        assert_eq!(soap_fault_code(INVALID_SESSION), Some("INVALID_SESSION_ID"));
    }

    #[test]
    fn bulk1_errors_log_lines_and_cut_off_text() {
        let bulk = r#"<?xml version="1.0" encoding="UTF-8"?><error xmlns="http://www.force.com/2009/06/asyncapi/dataload"><exceptionCode>InvalidSessionId</exceptionCode><exceptionMessage>Invalid session id</exceptionMessage></error>"#;
        let f = SoapFault::read(bulk).unwrap();
        assert_eq!(f.fault_code(), None);
        assert_eq!(f.code(), Some("InvalidSessionId"));
        assert_eq!(f.message().unwrap(), "Invalid session id");

        let line = "2026-01-01 ERROR call failed: <soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username";
        let f = SoapFault::read(line).unwrap();
        assert_eq!(f.code(), Some("INVALID_LOGIN"));
        assert_eq!(f.message(), None, "an unterminated element has no text");

        let empty = "<Fault><faultcode>sf:X</faultcode><faultstring/></Fault>";
        assert_eq!(SoapFault::read(empty).unwrap().message().unwrap(), "");
    }

    #[test]
    fn what_is_not_a_fault() {
        for t in [
            "",
            "hello",
            "<html><body>Service Unavailable</body></html>",
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            "<a><b>&unknown;</b>",
        ] {
            assert_eq!(SoapFault::read(t), None, "{t}");
        }
        assert_eq!(soap_fault_code("<x>"), None);
    }

    #[test]
    fn the_v65_login_fault_names_its_operation() {
        assert_eq!(
            soap_operation_not_available(
                "Client",
                "No operation available for request {urn:partner.soap.sforce.com}login, please check the WSDL for the service."
            ),
            Some("login")
        );
        assert_eq!(soap_operation_not_available("Server", "x"), None);
    }
}
