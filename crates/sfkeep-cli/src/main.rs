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

/// `eprint!` without the panic, for the same reason as [`eprintln!`].
macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
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
mod net;
mod output;
mod serve;
mod session;
mod sync;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = match commands::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sfkeep: cannot start the async runtime: {e}.");
            return Exit::Unexpected.into();
        }
    };
    let result = rt.block_on(commands::run(cli));
    // Give spawned work (a token write in flight) no chance to be torn mid-way: the commands
    // await what they start; anything left is cancelled here.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("sfkeep: {}", e.message);
            }
            e.exit.into()
        }
    }
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
