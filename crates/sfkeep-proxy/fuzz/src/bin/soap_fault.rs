//! AFL target: the SOAP fault reader (`sfkeep::diagnose::api_error::soap_fault_code`) and the
//! session verdict the proxy takes from a SOAP or Bulk 1.0 error body. A panic is a finding.
use sfkeep::diagnose::api_error::{Api, session_verdict, soap_fault_code};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = soap_fault_code(text);
        }
        let _ = session_verdict(Api::Soap, 500, data);
        let _ = session_verdict(Api::Bulk1, 400, data);
        let _ = sfkeep::grant::soap_login::parse_login_response(500, data);
    });
}
