//! Classification of API responses that mean the session is dead (salesforce-wire.md §4, §5.3,
//! §6): which ones a refresh fixes, and which ones it never will.

use super::Cause;

/// The API that answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// REST and Bulk 2.0 (JSON error arrays).
    Rest,
    /// SOAP (faults).
    Soap,
    /// Bulk 1.0 (XML `exceptionCode`).
    Bulk1,
}

impl Api {
    /// `rest`, `soap` or `bulk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Rest => "rest",
            Api::Soap => "soap",
            Api::Bulk1 => "bulk",
        }
    }
}

/// What a response says about the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionVerdict {
    /// Not an authentication failure.
    Alive,
    /// The session is dead and a new token fixes it: invalidate, refresh once, replay once.
    Dead,
    /// An authentication failure a refresh cannot fix: fail with this cause, no token request.
    Unfixable(Cause),
}

/// Reads a response's status and body.
pub fn session_verdict(api: Api, status: u16, body: &[u8]) -> SessionVerdict {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    match api {
        Api::Rest => {
            if status == 401 {
                if text.contains("This session is not valid for use with the REST API")
                    || text.contains("Connected app is not attached to Agent")
                {
                    SessionVerdict::Unfixable(Cause::SessionNotValidForApi)
                } else if text.contains("INVALID_AUTH_HEADER") {
                    SessionVerdict::Unfixable(Cause::Unknown)
                } else {
                    // Any other 401 (INVALID_SESSION_ID, or a body we cannot read) means the
                    // call did not run and the token is not accepted: one refresh is safe.
                    SessionVerdict::Dead
                }
            } else if status == 403 && text.trim() == "Bad_OAuth_Token" {
                SessionVerdict::Dead
            } else {
                SessionVerdict::Alive
            }
        }
        Api::Soap => {
            if status == 500 && soap_fault_code(&text).is_some_and(|c| c == "INVALID_SESSION_ID") {
                SessionVerdict::Dead
            } else {
                SessionVerdict::Alive
            }
        }
        Api::Bulk1 => {
            if status == 400 && text.contains("InvalidSessionId") {
                SessionVerdict::Dead
            } else {
                SessionVerdict::Alive
            }
        }
    }
}

/// The code of a SOAP fault (`sf:INVALID_SESSION_ID` → `INVALID_SESSION_ID`), if the body is one.
pub fn soap_fault_code(text: &str) -> Option<&str> {
    let start = text.find("<faultcode>")? + "<faultcode>".len();
    let end = start + text[start..].find("</faultcode>")?;
    let code = &text[start..end];
    Some(code.rsplit(':').next().unwrap_or(code).trim())
}

/// The operation a SOAP endpoint's dispatcher does not have: Salesforce's generic fault
/// `soapenv:Client` / `No operation available for request {ns}OPERATION, …`, as sent for
/// `login` from API v65.0 (salesforce-wire.md §5) or for a call posted to the wrong endpoint.
/// `code` is the fault code without its prefix.
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

    #[test]
    fn rest_401s_are_told_apart() {
        let dead =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(session_verdict(Api::Rest, 401, dead), SessionVerdict::Dead);
        let policy = br#"[{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(
            session_verdict(Api::Rest, 401, policy),
            SessionVerdict::Unfixable(Cause::SessionNotValidForApi)
        );
        assert_eq!(
            session_verdict(Api::Rest, 403, b"Bad_OAuth_Token"),
            SessionVerdict::Dead
        );
        assert_eq!(
            session_verdict(Api::Rest, 403, br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#),
            SessionVerdict::Alive
        );
    }

    #[test]
    fn soap_and_bulk_faults() {
        let fault = "<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>x</faultstring></soapenv:Fault>";
        assert_eq!(
            session_verdict(Api::Soap, 500, fault.as_bytes()),
            SessionVerdict::Dead
        );
        let login = "<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode></soapenv:Fault>";
        assert_eq!(
            session_verdict(Api::Soap, 500, login.as_bytes()),
            SessionVerdict::Alive
        );
        let bulk = "<error><exceptionCode>InvalidSessionId</exceptionCode></error>";
        assert_eq!(
            session_verdict(Api::Bulk1, 400, bulk.as_bytes()),
            SessionVerdict::Dead
        );
    }
}
