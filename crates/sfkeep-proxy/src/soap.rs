//! SOAP envelopes: reading the head of a request (operation and `SessionHeader/sessionId`)
//! incrementally within limits, replacing the client's `SessionHeader` with the proxy's, parsing a
//! shimmed `login()`, and rendering the shim's `loginResponse` and Salesforce-shaped faults
//! (docs/salesforce-wire.md §5).

use std::ops::Range;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesRef, Event};
use quick_xml::reader::Reader;

/// How much of a SOAP request is read before the proxy knows who sent it: the bytes up to the
/// end of the operation's start tag (the whole `Header`), and how deep elements may nest there.
/// Salesforce's own headers nest four deep; a request past either limit is refused before
/// anything else is read, so a client without a credential costs at most this much memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

/// The default [`HeadLimits`]: 64 KiB, 32 levels.
pub(crate) const HEAD_LIMITS: HeadLimits = HeadLimits {
    max_bytes: 64 << 10,
    max_depth: 32,
};

/// The largest `login()` request read (it is answered locally, and carries only a username
/// and a password).
pub(crate) const MAX_LOGIN_BYTES: usize = 64 << 10;

/// Why a SOAP request was refused; the text goes into a `soapenv:Client` fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoapError(pub String);

impl SoapError {
    fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl std::fmt::Display for SoapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the proxy's `SessionHeader` goes: `range` of the request is replaced by it (the
/// client's own `SessionHeader` element, a self-closing `<Header/>`, or nothing), wrapped in a
/// `Header` element when the request has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Splice {
    pub range: Range<usize>,
    /// `Some(prefix)`: wrap in `<{prefix}Header>…</{prefix}Header>`.
    pub wrap: Option<String>,
}

impl Splice {
    /// The text that replaces [`Splice::range`] for `token`, in namespace `ns`.
    pub(crate) fn text(&self, token: &str, ns: &str) -> String {
        let header = format!(
            "<SessionHeader xmlns=\"{ns}\"><sessionId>{}</sessionId></SessionHeader>",
            escape(token)
        );
        match &self.wrap {
            Some(p) => format!("<{p}Header>{header}</{p}Header>"),
            None => header,
        }
    }

    /// `xml` with the proxy's session for `token` in place of the client's.
    pub(crate) fn apply(&self, xml: &[u8], token: &str, ns: &str) -> Vec<u8> {
        let text = self.text(token, ns);
        let mut out = Vec::with_capacity(xml.len() + text.len());
        out.extend_from_slice(&xml[..self.range.start]);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&xml[self.range.end..]);
        out
    }
}

/// What the proxy needs to know about a SOAP request, read from its head: everything up to
/// and including the operation's start tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvelopeHead {
    /// Local name of the first element in `Body` (`login`, `query`, …).
    pub operation: String,
    /// The text of `Header/SessionHeader/sessionId` (entities and CDATA resolved), if sent.
    pub session: Option<String>,
    /// Where the proxy's `SessionHeader` replaces the client's.
    pub splice: Splice,
    /// The offset just past the operation's start tag: how much was read to decide.
    pub head_len: usize,
}

/// What a scan of the first bytes of a request gave.
#[derive(Debug)]
pub(crate) enum Scan {
    /// The head is not complete yet: read more.
    NeedMore,
    /// The head.
    Head(EnvelopeHead),
}

/// Whether `name` is an XML qualified name: `local` or `prefix:local`, each part a name start
/// character followed by name characters (ASCII letters, digits, `-`, `.`, `_`, or anything
/// outside ASCII). quick-xml takes a tag's name to be everything up to the first blank, so
/// without this check `<a="b:Envelope c">` has the prefix `a="b:`, which the proxy copies into
/// the `Header` it adds, and the rewritten request no longer reads as the proxy wrote it.
fn qualified_name(name: &str) -> bool {
    let part = |p: &str| {
        let mut cs = p.chars();
        cs.next()
            .is_some_and(|c| !c.is_ascii() || c.is_ascii_alphabetic() || c == '_')
            && cs
                .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    match name.split_once(':') {
        Some((prefix, local)) => part(prefix) && part(local),
        None => part(name),
    }
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Appends an entity or character reference, resolved, to `v`.
fn push_ref(v: &mut String, r: &BytesRef<'_>) -> Result<(), SoapError> {
    if r.is_char_ref() {
        match r.resolve_char_ref() {
            Ok(Some(c)) => v.push(c),
            _ => return Err(SoapError::new("an invalid character reference")),
        }
    } else {
        let name = r.xml10_content();
        match resolve_predefined_entity(&name) {
            Some(s) => v.push_str(s),
            None => return Err(SoapError(format!("an undefined entity &{name};"))),
        }
    }
    Ok(())
}

/// Scans the head of a SOAP request: the `Envelope`, its optional `Header` (at most one, with
/// at most one `SessionHeader`), and the start of `Body` up to the operation's start tag.
/// `complete`: `bytes` is the whole request (else an incomplete head asks for more). Refused:
/// a root other than `Envelope`, a DOCTYPE, two `Header`s or `SessionHeader`s, a `sessionId`
/// with elements in it, nesting past `limits.max_depth`, and a head past `limits.max_bytes`.
pub(crate) fn scan_head(
    bytes: &[u8],
    complete: bool,
    limits: HeadLimits,
) -> Result<Scan, SoapError> {
    match scan(bytes, limits) {
        Ok(Some(head)) => Ok(Scan::Head(head)),
        // The input ran out (or broke off mid-token) before the operation started.
        Ok(None) | Err(Stop::Syntax(_)) if !complete && bytes.len() < limits.max_bytes => {
            Ok(Scan::NeedMore)
        }
        Ok(None) if bytes.len() >= limits.max_bytes => Err(too_large(limits)),
        Ok(None) => Err(SoapError::new("the SOAP Envelope has no Body operation")),
        Err(Stop::Syntax(_)) if bytes.len() >= limits.max_bytes => Err(too_large(limits)),
        Err(Stop::Syntax(e)) => Err(SoapError(format!(
            "the request is not well-formed XML: {e}"
        ))),
        Err(Stop::Refused(e)) => Err(e),
    }
}

fn too_large(limits: HeadLimits) -> SoapError {
    SoapError(format!(
        "the SOAP Header is larger than the {} KiB the proxy reads before authenticating a request",
        limits.max_bytes >> 10
    ))
}

/// Why a scan stopped early: the XML broke (which may be the end of what arrived so far), or
/// the request is refused whatever follows.
enum Stop {
    Syntax(String),
    Refused(SoapError),
}

impl From<SoapError> for Stop {
    fn from(e: SoapError) -> Self {
        Stop::Refused(e)
    }
}

/// Where a scan is inside the envelope.
#[derive(Default)]
struct HeadState {
    env_prefix: Option<String>,
    /// Just after the `Header` start tag, or the range of a self-closing `<Header/>`.
    header_start: Option<usize>,
    header_empty: Option<Range<usize>>,
    header_seen: bool,
    body_start: Option<usize>,
    /// The client's `SessionHeader` element: where it starts, and its range once closed.
    session_header_open: Option<usize>,
    session_header: Option<Range<usize>>,
    /// Collecting the `sessionId` text.
    collecting: Option<String>,
    session: Option<String>,
}

fn scan(bytes: &[u8], limits: HeadLimits) -> Result<Option<EnvelopeHead>, Stop> {
    // Only whole tags: what follows the last `>` may be a tag cut in two by the network.
    let end = bytes
        .iter()
        .rposition(|&b| b == b'>')
        .map_or(0, |i| i + 1)
        .min(limits.max_bytes);
    let mut reader = Reader::from_reader(&bytes[..end]);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut st = HeadState::default();
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| Stop::Syntax(e.to_string()))?;
        let after = reader.buffer_position() as usize;
        let depth = stack.len();
        if let Event::Start(e) | Event::Empty(e) = &ev
            && !qualified_name(e.name().0)
        {
            return Err(SoapError::new(
                "the request is not well-formed XML: an element name that is not an XML name",
            )
            .into());
        }
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) if depth == 0 => {
                if st.env_prefix.is_some() || local(e.name().0.as_bytes()) != b"Envelope" {
                    return Err(SoapError::new("the root element is not a SOAP Envelope").into());
                }
                let name = e.name().0.as_bytes();
                let prefix_len = name.len() - local(name).len();
                st.env_prefix = Some(String::from_utf8_lossy(&name[..prefix_len]).into_owned());
                if matches!(ev, Event::Empty(_)) {
                    return Err(SoapError::new("the SOAP Envelope has no Body operation").into());
                }
                stack.push(name.to_vec());
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name().0.as_bytes().to_vec();
                let l = local(&name);
                if depth + 1 > limits.max_depth {
                    return Err(SoapError(format!(
                        "the SOAP envelope nests deeper than {} elements",
                        limits.max_depth
                    ))
                    .into());
                }
                if depth == 1 && l == b"Header" {
                    if st.header_seen || st.body_start.is_some() {
                        return Err(SoapError::new(
                            "a SOAP Envelope has at most one Header, before its Body",
                        )
                        .into());
                    }
                    st.header_seen = true;
                    if empty {
                        st.header_empty = Some(before..after);
                    } else {
                        st.header_start = Some(after);
                    }
                } else if depth == 1 && l == b"Body" {
                    if st.body_start.is_some() {
                        return Err(SoapError::new("a SOAP Envelope has one Body").into());
                    }
                    st.body_start = Some(before);
                    if empty {
                        return Err(
                            SoapError::new("the SOAP Envelope has no Body operation").into()
                        );
                    }
                } else if depth == 2 && local(&stack[1]) == b"Body" {
                    let operation = String::from_utf8_lossy(l).into_owned();
                    return Ok(Some(finish(st, operation, after)));
                } else if depth == 2 && local(&stack[1]) == b"Header" && l == b"SessionHeader" {
                    if st.session_header.is_some() || st.session_header_open.is_some() {
                        return Err(SoapError::new(
                            "the SOAP Header has more than one SessionHeader",
                        )
                        .into());
                    }
                    if empty {
                        st.session_header = Some(before..after);
                    } else {
                        st.session_header_open = Some(before);
                    }
                } else if depth == 3 && st.session_header_open.is_some() && l == b"sessionId" {
                    if st.session.is_some() {
                        return Err(SoapError::new(
                            "the SessionHeader has more than one sessionId",
                        )
                        .into());
                    }
                    if empty {
                        st.session = Some(String::new());
                    } else {
                        st.collecting = Some(String::new());
                    }
                } else if st.collecting.is_some() {
                    return Err(SoapError::new("the sessionId has elements in it").into());
                } else if depth == 1 {
                    return Err(
                        SoapError::new("a SOAP Envelope holds only a Header and a Body").into(),
                    );
                }
                if !empty {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let l = local(&name);
                if l == b"sessionId" && st.collecting.is_some() {
                    st.session = st.collecting.take();
                } else if stack.len() == 2 && l == b"SessionHeader" {
                    if let Some(start) = st.session_header_open.take() {
                        st.session_header = Some(start..after);
                    }
                } else if stack.len() == 1 && l == b"Body" {
                    return Err(SoapError::new("the SOAP Envelope has no Body operation").into());
                }
            }
            Event::Text(t) => {
                if let Some(v) = st.collecting.as_mut() {
                    v.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(v) = st.collecting.as_mut() {
                    v.push_str(&t[..]);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(v) = st.collecting.as_mut() {
                    push_ref(v, &r)?;
                }
            }
            Event::DocType(_) => {
                return Err(SoapError::new("a DOCTYPE is not allowed in a SOAP message").into());
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
    }
}

fn finish(st: HeadState, operation: String, head_len: usize) -> EnvelopeHead {
    let prefix = st.env_prefix.unwrap_or_default();
    let splice = if let Some(r) = st.session_header {
        Splice {
            range: r,
            wrap: None,
        }
    } else if let Some(at) = st.header_start {
        Splice {
            range: at..at,
            wrap: None,
        }
    } else if let Some(r) = st.header_empty {
        Splice {
            range: r,
            wrap: Some(prefix),
        }
    } else {
        let at = st.body_start.unwrap_or(0);
        Splice {
            range: at..at,
            wrap: Some(prefix),
        }
    };
    EnvelopeHead {
        operation,
        session: st.session,
        splice,
        head_len,
    }
}

/// The username and password of a `login()` request (the whole request, at most
/// [`MAX_LOGIN_BYTES`]).
pub(crate) fn parse_login(xml: &[u8]) -> Result<(String, String), SoapError> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut text: Option<String> = None;
    let (mut user, mut pass) = (None, None);
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| SoapError(format!("the request is not well-formed XML: {e}")))?;
        match ev {
            Event::Start(e) => {
                if stack.len() >= HEAD_LIMITS.max_depth {
                    return Err(SoapError(format!(
                        "the SOAP envelope nests deeper than {} elements",
                        HEAD_LIMITS.max_depth
                    )));
                }
                let name = e.name().0.as_bytes().to_vec();
                let l = local(&name);
                if stack.len() == 3
                    && local(&stack[1]) == b"Body"
                    && local(&stack[2]) == b"login"
                    && (l == b"username" || l == b"password")
                {
                    text = Some(String::new());
                } else if text.is_some() {
                    return Err(SoapError::new("a login field has elements in it"));
                }
                stack.push(name);
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                if let Some(v) = text.take() {
                    match local(&name) {
                        b"username" => user = Some(v),
                        _ => pass = Some(v),
                    }
                }
            }
            Event::Text(t) => {
                if let Some(v) = text.as_mut() {
                    v.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(v) = text.as_mut() {
                    v.push_str(&t[..]);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(v) = text.as_mut() {
                    push_ref(v, &r)?;
                }
            }
            Event::DocType(_) => {
                return Err(SoapError::new("a DOCTYPE is not allowed in a SOAP message"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(SoapError::new("the XML ends inside an element"));
    }
    Ok((user.unwrap_or_default(), pass.unwrap_or_default()))
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

/// The fault namespace of an endpoint path: enterprise (`/c/`) faults have their own
/// (docs/salesforce-wire.md §5.3, the recorded enterprise INVALID_SESSION_ID fault).
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

/// `loginResponse` in the recorded shape (docs/salesforce-wire.md §5.2), unprefixed result elements.
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

    const NS: &str = "urn:partner.soap.sforce.com";

    fn head(xml: &str) -> EnvelopeHead {
        match scan_head(xml.as_bytes(), true, HEAD_LIMITS) {
            Ok(Scan::Head(h)) => h,
            other => panic!("{other:?} for {xml}"),
        }
    }

    fn refused(xml: &str) -> String {
        match scan_head(xml.as_bytes(), true, HEAD_LIMITS) {
            Err(e) => e.0,
            other => panic!("not refused: {other:?} for {xml}"),
        }
    }

    #[test]
    fn login_is_found_with_entities_and_cdata() {
        assert_eq!(head(LOGIN).operation, "login");
        let (u, p) = parse_login(LOGIN.as_bytes()).unwrap();
        assert_eq!(u, "u@example.com");
        assert_eq!(p, "p&w<x>TOKEN");
    }

    /// The client's SessionHeader, however it is written, is replaced whole: exactly one
    /// SessionHeader, the proxy's, is left.
    #[test]
    fn the_clients_session_header_is_replaced_whole() {
        for (xml, sent) in [
            (
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>LOCAL!abc</sessionId></SessionHeader></s:Header><s:Body><query xmlns="urn:partner.soap.sforce.com"><queryString>SELECT Id FROM Account</queryString></query></s:Body></s:Envelope>"#,
                Some("LOCAL!abc"),
            ),
            (
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><u:SessionHeader xmlns:u="urn:partner.soap.sforce.com"><u:sessionId><![CDATA[LOCAL!cd]]></u:sessionId></u:SessionHeader></s:Header><s:Body><u:query xmlns:u="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
                Some("LOCAL!cd"),
            ),
            (
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><extra><sessionId>X</sessionId></extra><sessionId>LOCAL!child</sessionId></SessionHeader></s:Header><s:Body><query/></s:Body></s:Envelope>"#,
                Some("LOCAL!child"),
            ),
            (
                r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"/></s:Header><s:Body><query/></s:Body></s:Envelope>"#,
                None,
            ),
        ] {
            let h = head(xml);
            assert_eq!(h.operation, "query");
            assert_eq!(h.session.as_deref(), sent, "{xml}");
            let out = String::from_utf8(h.splice.apply(xml.as_bytes(), "REAL!1", NS)).unwrap();
            assert_eq!(
                out.matches("SessionHeader ").count() + out.matches("SessionHeader>").count(),
                2,
                "{out}"
            );
            assert!(!out.contains("LOCAL"), "{out}");
            assert_eq!(head(&out).session.as_deref(), Some("REAL!1"), "{out}");
        }
    }

    #[test]
    fn a_session_header_is_inserted_where_there_is_none() {
        for xml in [
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/><s:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header></s:Header><s:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></s:Body></s:Envelope>"#,
        ] {
            let h = head(xml);
            assert_eq!(h.operation, "getUserInfo");
            assert_eq!(h.session, None);
            let out = h.splice.apply(xml.as_bytes(), "REAL!2", NS);
            let again = head(std::str::from_utf8(&out).unwrap());
            assert_eq!(
                again.session.as_deref(),
                Some("REAL!2"),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    /// Found by the `soap_head` fuzzer (crates/sfkeep-proxy/fuzz/findings/soap_head): quick-xml
    /// reads `a="b:Envelope` as one element name, and the `Header` the proxy added then carried
    /// the prefix `a="b:`, so the rewritten request did not read back as one session, the
    /// proxy's. Names that are not XML names are refused now.
    #[test]
    fn element_names_that_are_not_xml_names_are_refused() {
        for xml in [
            r#"<a="b:Envelope c"><b:Body><login/>"#,
            r#"<":Envelope "><Body><"">"#,
            r#"<xmlns:env="x:Envelope y"><env:Body><query/></env:Body></xmlns:env="x:Envelope>"#,
            "<s\0:Envelope><s\0:Body><query/>",
            r#"<s:Envelope><s:Header/><s:Body><q=x/>"#,
            r#"<a:b:Envelope><a:b:Body><query/>"#,
            r#"<1:Envelope><1:Body><query/>"#,
        ] {
            assert!(refused(xml).contains("not an XML name"), "{xml:?}");
            crate::fuzzing::soap_head(xml.as_bytes());
        }
        // Names Salesforce's own clients send, and names outside ASCII, still read.
        for xml in [
            r#"<soapenv:Envelope xmlns:soapenv="x"><soapenv:Body><urn:query_all.v-2 xmlns:urn="y"/>"#,
            r#"<é:Envelope xmlns:é="x"><é:Body><requête/>"#,
            r#"<_s:Envelope xmlns:_s="x"><_s:Body><query/>"#,
        ] {
            assert!(!head(xml).operation.is_empty(), "{xml}");
        }
    }

    #[test]
    fn ambiguous_session_headers_are_refused() {
        let two = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><SessionHeader><sessionId>A</sessionId></SessionHeader><SessionHeader><sessionId>B</sessionId></SessionHeader></s:Header><s:Body><query/></s:Body></s:Envelope>"#;
        assert!(refused(two).contains("more than one SessionHeader"));
        let two_headers = r#"<s:Envelope xmlns:s="x"><s:Header/><s:Header/><s:Body><query/></s:Body></s:Envelope>"#;
        assert!(refused(two_headers).contains("at most one Header"));
        let nested = r#"<s:Envelope xmlns:s="x"><s:Header><SessionHeader><sessionId>A<b>B</b></sessionId></SessionHeader></s:Header><s:Body><query/></s:Body></s:Envelope>"#;
        assert!(refused(nested).contains("elements in it"));
        let two_ids = r#"<s:Envelope xmlns:s="x"><s:Header><SessionHeader><sessionId>A</sessionId><sessionId>B</sessionId></SessionHeader></s:Header><s:Body><query/></s:Body></s:Envelope>"#;
        assert!(refused(two_ids).contains("more than one sessionId"));
    }

    #[test]
    fn the_head_is_read_incrementally_within_its_limits() {
        let xml = LOGIN.as_bytes();
        let at = xml.windows(8).position(|w| w == b"n1:login").unwrap();
        assert!(matches!(
            scan_head(&xml[..at], false, HEAD_LIMITS),
            Ok(Scan::NeedMore)
        ));
        assert!(matches!(
            scan_head(&xml[..at + 60], false, HEAD_LIMITS),
            Ok(Scan::Head(_))
        ));
        // Deep nesting is refused as soon as it passes the limit, however much follows.
        let deep = format!("<s:Envelope xmlns:s=\"x\"><s:Header>{}", "<a>".repeat(40));
        let e = scan_head(deep.as_bytes(), false, HEAD_LIMITS).unwrap_err();
        assert!(e.0.contains("nests deeper"), "{e}");
        // A head that does not end within the byte limit.
        let big = format!(
            "<s:Envelope xmlns:s=\"x\"><s:Header><c>{}",
            "x".repeat(HEAD_LIMITS.max_bytes)
        );
        let e = scan_head(big.as_bytes(), false, HEAD_LIMITS).unwrap_err();
        assert!(e.0.contains("larger than"), "{e}");
    }

    #[test]
    fn not_soap_is_an_error_not_a_panic() {
        for bad in [
            "",
            "not xml",
            "<a><b></a>",
            "<Envelope>",
            "<!DOCTYPE x><Envelope/>",
            "<x/>",
            "\u{0}\u{1}",
            "<Envelope><Body/></Envelope>",
            "<Envelope><Body></Body></Envelope>",
            "<Envelope><Other/><Body><q/></Body></Envelope>",
        ] {
            assert!(
                scan_head(bad.as_bytes(), true, HEAD_LIMITS).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_login(b"<a><b></a>").is_err());
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
