//! The local address every outgoing connection binds to, when one is set: a leaf module that
//! the session, the audit log and the commands all read without reaching into each other.

use std::net::IpAddr;
use std::sync::OnceLock;

use crate::error::{CliError, CliResult};

/// The env var (and hidden global flag `--bind-address`) that binds every outgoing connection
/// to one local address, e.g. to move a client to 127.0.0.2 in tests.
pub const BIND_ENV: &str = "SFKEEP_BIND_ADDRESS";

static BIND: OnceLock<Option<IpAddr>> = OnceLock::new();

/// Sets the local bind address from `--bind-address` / `SFKEEP_BIND_ADDRESS` (once).
pub fn set_bind_address(v: Option<&str>) -> CliResult<()> {
    let ip = match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<IpAddr>().map_err(|_| {
            CliError::usage(format!(
                "--bind-address / {BIND_ENV} = `{v}` is not an IP address (e.g. 127.0.0.2)."
            ))
        })?),
    };
    let _ = BIND.set(ip);
    Ok(())
}

/// The local address outgoing connections are bound to, if any.
pub fn bind_address() -> Option<IpAddr> {
    BIND.get().copied().flatten()
}
