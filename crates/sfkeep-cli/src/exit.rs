//! Exit codes of `sfkeep`. Every command ends through [`Exit`]; nothing else calls
//! `std::process::exit` with a number.
//!
//! | code | class (`--json`) | meaning | what to do |
//! |---|---|---|---|
//! | 0 | `ok` | success | |
//! | 1 | `unexpected` | unexpected error (a bug, or a response nothing recognises), or `sync --verify` found the billing database different from the org (the first difference is printed) | run with `SFKEEP_LOG=debug` and report it; after `--verify`, sync again |
//! | 2 | `usage` | usage or configuration error (bad flag, bad config file, missing secret, missing profile, a consumer key or secret the org does not know, an API version without the call), or a request the org refuses as malformed (bad SOQL, unknown field or path) | fix the command line or the config file |
//! | 3 | `reauth_required` | re-authentication required (refresh token revoked or expired, user frozen or deactivated, app not approved, IP restricted) | a person must act: `sfkeep login`, or the fix printed with the error |
//! | 4 | `transient` | transient failure (network, timeout, HTTP 5xx, rate limit), or another `sfkeep sync` is writing to the same billing database | retry later, with backoff |
//! | 5 | `store` | storage error: the token store (cannot read, write or decrypt it) or `sync`'s billing database (missing directory, read-only, full, another tool's schema) | fix the path, its permissions, or the cache key |

use std::process::ExitCode;

/// A process exit code with a meaning. See the module docs for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Ok = 0,
    /// 1: unexpected error.
    Unexpected = 1,
    /// 2: usage or configuration error.
    Usage = 2,
    /// 3: re-authentication required.
    ReauthRequired = 3,
    /// 4: transient failure (network, 5xx, timeout).
    Transient = 4,
    /// 5: storage error (the token store, or the billing database of `sync`).
    Store = 5,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Its name in `--json` errors (`error.class`), stable like the number.
    pub fn class(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Unexpected => "unexpected",
            Exit::Usage => "usage",
            Exit::ReauthRequired => "reauth_required",
            Exit::Transient => "transient",
            Exit::Store => "store",
        }
    }

    /// Every code, in order.
    pub const ALL: [Exit; 6] = [
        Exit::Ok,
        Exit::Unexpected,
        Exit::Usage,
        Exit::ReauthRequired,
        Exit::Transient,
        Exit::Store,
    ];
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Unexpected.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::ReauthRequired.code(), 3);
        assert_eq!(Exit::Transient.code(), 4);
        assert_eq!(Exit::Store.code(), 5);
    }
}
