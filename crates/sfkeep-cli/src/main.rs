//! `sfkeep`: keeps Salesforce integrations authenticated. See `sfkeep --help`, and
//! [`exit`] for the exit codes.
#![forbid(unsafe_code)]

/// Shadows `std::eprintln!` for the whole binary: the standard one panics when stderr is
/// closed (`sfkeep … 2>&- `, or a reader that went away), and a diagnostic line is never worth
/// a panic. This one drops the line instead.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod audit;
mod commands;
mod config;
#[cfg(feature = "fake-org")]
mod demo;
mod diagnosis;
mod error;
mod exit;
mod identity;
mod killswitch;
mod net;
mod output;
mod serve;
mod session;
mod signals;
mod soql;
mod store_key;
mod sync;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::exit::Exit;

fn main() -> ExitCode {
    let (cli, explicit) = match commands::Cli::parse_args() {
        Ok(c) => c,
        Err(e) => return bad_command_line(&e),
    };
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = error::CliError::unexpected(format!("cannot start the async runtime: {e}."));
            return fail(&e);
        }
    };
    let result = rt.block_on(commands::run(cli, explicit));
    // Give spawned work (a token write in flight) no chance to be torn mid-way: the commands
    // await what they start; anything left is cancelled here.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(exit) => {
            output::finish(Ok(exit));
            exit.into()
        }
        Err(e) => fail(&e),
    }
}

/// Ends with `e`: its paragraph on stderr, and with `--json` the error envelope on stdout.
fn fail(e: &error::CliError) -> ExitCode {
    if !e.message.is_empty() {
        eprintln!("sfkeep: {}", e.message);
    }
    output::finish(Err(e));
    e.exit.into()
}

/// Help and version go to stdout with exit 0; a mistake on the command line is exit 2, and
/// with `--json` anywhere on it, an error envelope too (clap never parsed the flag).
fn bad_command_line(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return Exit::Ok.into();
    }
    let json = std::env::args_os().any(|a| a == "--json");
    if !json {
        let _ = e.print();
        return Exit::Usage.into();
    }
    let command = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|name| commands::Cli::command_name(&name))
        .unwrap_or_else(|| "sfkeep".to_owned());
    output::init(true, &command);
    let text = e.render().to_string();
    let message = text.trim().trim_start_matches("error: ").to_owned();
    fail(&error::CliError::usage(message))
}

/// The env var that turns on the library's own logs (else `RUST_LOG`).
pub const LOG_ENV: &str = "SFKEEP_LOG";

/// Whether the user asked for logs (then the library's tracing sink stays on).
pub fn logging_requested() -> bool {
    std::env::var_os(LOG_ENV).is_some() || std::env::var_os("RUST_LOG").is_some()
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var(LOG_ENV)
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .try_init();
}
