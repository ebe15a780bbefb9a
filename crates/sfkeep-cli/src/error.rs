//! The CLI's error: one paragraph for a person (what is wrong, what to do) and an exit code.
//! Messages never contain a secret: they are built from names, paths and the library's errors,
//! which redact by construction.

use std::fmt;

use sfkeep::diagnose::Cause;

use crate::exit::Exit;

/// A failed command.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What is wrong and what to do, as one paragraph.
    pub message: String,
    /// The library's name for the cause, when one is known (`user_frozen`, …): `error.cause`
    /// in `--json` output.
    pub cause: Option<String>,
}

/// `Result` with [`CliError`].
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Usage,
            message: message.into(),
            cause: None,
        }
    }

    /// An unexpected error (exit 1).
    pub fn unexpected(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Unexpected,
            message: message.into(),
            cause: None,
        }
    }

    /// A transient error (exit 4).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Transient,
            message: message.into(),
            cause: None,
        }
    }

    /// Re-authentication required (exit 3).
    pub fn reauth(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::ReauthRequired,
            message: message.into(),
            cause: None,
        }
    }

    /// Stdout's reader went away (a closed pipe): stop quietly, exit 0.
    pub fn reader_gone() -> Self {
        Self {
            exit: Exit::Ok,
            message: String::new(),
            cause: None,
        }
    }

    /// A store error (exit 5).
    pub fn store(message: impl Into<String>) -> Self {
        Self {
            exit: Exit::Store,
            message: message.into(),
            cause: None,
        }
    }

    /// Wraps a library error, with `context` naming what was being done (e.g. the profile
    /// and the config file) so the paragraph says where to look.
    pub fn from_sfkeep(e: &sfkeep::Error, context: &str) -> Self {
        use sfkeep::Error as E;
        let (exit, advice) = match e {
            // The profile's api_version is the problem, not the credential.
            E::ReauthRequired {
                cause: Cause::ApiVersionUnsupported,
                ..
            } => (Exit::Usage, String::new()),
            // A consumer key or secret the org does not know is the config's mistake, not the
            // credential's and not a passing failure: retrying a typo only spends the login
            // budget. (A brand-new app takes minutes to propagate: the advice says so.)
            e if matches!(e.cause(), Some(Cause::InvalidClientId)) => (
                Exit::Usage,
                "Check the profile's `client_id` against the connected app's consumer key (a new app takes 2-10 minutes to propagate).".to_owned(),
            ),
            e if matches!(e.cause(), Some(Cause::InvalidClient)) => (
                Exit::Usage,
                "Check the profile's `client_secret` against the connected app's consumer secret.".to_owned(),
            ),
            E::ReauthRequired { .. } => (Exit::ReauthRequired, String::new()),
            E::LegacyStoreRecord { .. } | E::UnattributableRecord { .. } => (
                Exit::ReauthRequired,
                "Authorize the profile anew with `sfkeep login --web` or `--device` (the old record is left as it is).".to_owned(),
            ),
            E::CoolingDown { cause, .. } if cause.needs_human() => {
                (Exit::ReauthRequired, cause.fix().to_owned())
            }
            E::Transport { timeout, .. } => (
                Exit::Transient,
                if *timeout {
                    "The server did not answer in time; retry later, and check the network path to it.".to_owned()
                } else {
                    "Check that the login URL is right and the org is reachable from here (network, proxy, firewall), then retry.".to_owned()
                },
            ),
            E::Store { store: "redis", .. } => (
                Exit::Store,
                "Check that Redis is up and reachable at the profile's store.url, and that the cache key is the fleet's.".to_owned(),
            ),
            E::Store { .. } => (
                Exit::Store,
                "Check the store's path and permissions and the cache key; `sfkeep logout` forgets the stored record.".to_owned(),
            ),
            E::StoreUnavailable => (
                Exit::Store,
                "Bring the shared store back, then retry.".to_owned(),
            ),
            E::Config(_) => (
                Exit::Usage,
                "Fix the profile in the config file.".to_owned(),
            ),
            // The org understood the session and refused the request itself: the query, path
            // or body on the command line is what to fix, and doctor cannot help.
            E::Api(a) if matches!(a.status, 400 | 404 | 405 | 409 | 415) => (
                Exit::Usage,
                "The org refused the request itself, not the session: fix the query, path or body as the message says.".to_owned(),
            ),
            E::MalformedResponse { .. } | E::ResponseTooLarge { .. } => (
                Exit::Unexpected,
                "The server's answer was not understood: check that the login URL points at a Salesforce login host, and run with SFKEEP_LOG=debug for details.".to_owned(),
            ),
            e if e.is_retryable() => (
                Exit::Transient,
                e.cause()
                    .map(|c| c.fix().to_owned())
                    .unwrap_or_else(|| "Temporary: retry later.".to_owned()),
            ),
            e => (
                Exit::Unexpected,
                e.cause()
                    .map(|c| c.fix().to_owned())
                    .unwrap_or_else(|| "Run `sfkeep doctor` for a diagnosis.".to_owned()),
            ),
        };
        // Library messages may end with their own full stop. A transport failure names its
        // URL once (reqwest's own text repeats it) and the reason a person recognises.
        let detail = match e {
            E::Transport { what, .. } => format!("{what} failed: {}", transport_reason(e)),
            e => e.to_string(),
        };
        let mut message = format!("{context}: {}.", detail.trim_end_matches('.'));
        if !advice.is_empty() {
            message.push(' ');
            message.push_str(&advice);
        }
        Self {
            exit,
            message,
            cause: e.cause().map(|c| c.as_str().to_owned()),
        }
    }

    /// The same error with `text` appended to its paragraph.
    pub fn with_note(mut self, text: &str) -> Self {
        if !text.is_empty() {
            self.message.push(' ');
            self.message.push_str(text);
        }
        self
    }
}

/// Why a request did not complete, from the innermost cause: `connection refused`,
/// `connection reset`, `timed out`, or the innermost error's own words (never a URL: the
/// caller names it).
fn transport_reason(e: &sfkeep::Error) -> String {
    use std::io::ErrorKind;
    let mut innermost: Option<&(dyn std::error::Error + 'static)> = None;
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let known = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused (nothing listens there)"),
                ErrorKind::ConnectionReset => Some("connection reset by the peer"),
                ErrorKind::ConnectionAborted => Some("connection aborted"),
                ErrorKind::TimedOut => Some("timed out"),
                ErrorKind::AddrNotAvailable => Some("the local address is not available"),
                _ => None,
            };
            if let Some(k) = known {
                return k.to_owned();
            }
        }
        innermost = Some(err);
        cur = err.source();
    }
    match (innermost, e) {
        (_, sfkeep::Error::Transport { timeout: true, .. }) => "timed out".to_owned(),
        (Some(err), _) => err.to_string(),
        (None, sfkeep::Error::Transport { message, .. }) => message.clone(),
        (None, e) => e.to_string(),
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
