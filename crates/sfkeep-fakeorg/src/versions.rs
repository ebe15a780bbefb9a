//! The API version calendar both the REST and the SOAP endpoints follow
//! (docs/salesforce-wire.md §4.3, §5).

/// The oldest version served: Summer '25 retired 21.0-30.0 (REST 410, SOAP
/// `UNSUPPORTED_API_VERSION`).
pub const FIRST_SUPPORTED: u32 = 31;
/// The newest version: a newer one does not exist yet (404).
pub const LATEST: u32 = 66;
/// SOAP `login()` is not available from this version on.
pub const FIRST_WITHOUT_SOAP_LOGIN: u32 = 65;

/// The version a job reports as its `apiVersion` when its own cannot be read as a number.
const DEFAULT_JOB_VERSION: f64 = 59.0;

/// A job's `apiVersion` field: the version of the request that created it, as a number
/// (`"62.0"` → 62.0; `DEFAULT_JOB_VERSION` if it is not one).
pub fn job_version(version: &str) -> f64 {
    version.parse().unwrap_or(DEFAULT_JOB_VERSION)
}

/// `"59.0"` → 59. Anything else (no version, a malformed one) → `None`: the endpoint answers
/// it as before rather than guessing a version.
pub fn major(version: &str) -> Option<u32> {
    let (major, minor) = version.split_once('.')?;
    if minor != "0" {
        return None;
    }
    major.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        assert_eq!(major("59.0"), Some(59));
        assert_eq!(major("59.1"), None);
        assert_eq!(major("x.0"), None);
        assert_eq!(major(""), None);
    }
}
