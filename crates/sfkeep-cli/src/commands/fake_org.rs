//! `sfkeep fake-org`: runs the simulated org. When ready, prints exactly one JSON line (the
//! ready info: URLs, credentials, and a profile file that works as is) on stdout and flushes,
//! then serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::output::print_line;

/// `sfkeep fake-org` arguments.
#[derive(Debug, Args)]
pub struct FakeOrgArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: SocketAddr,
    /// Number of Account records.
    #[arg(long, value_name = "N")]
    accounts: Option<usize>,
    /// Inactivity timeout of sessions, in seconds.
    #[arg(long, value_name = "SECS")]
    session_timeout: Option<u64>,
    /// Where to write the key, secrets and profile file (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Starts the org, prints the ready line, waits for a signal, shuts down.
pub async fn run(a: FakeOrgArgs) -> CliResult<Exit> {
    let mut cfg = FakeOrgConfig::default().listen(a.listen);
    if let Some(n) = a.accounts {
        cfg = cfg.accounts(n);
    }
    if let Some(s) = a.session_timeout {
        if s == 0 {
            return Err(CliError::usage(
                "--session-timeout must be at least 1 second.",
            ));
        }
        cfg = cfg.session_timeout(Duration::from_secs(s));
    }
    if let Some(d) = a.state_dir {
        cfg = cfg.state_dir(d);
    }
    let org = FakeOrg::start(cfg).await.map_err(|e| {
        CliError::usage(format!(
            "cannot start the simulated org on {}: {e}. Pick another address with --listen (port 0 picks a free one).",
            a.listen
        ))
    })?;
    let ready = serde_json::to_value(org.ready_info())
        .map_err(|e| CliError::unexpected(format!("cannot encode the ready line: {e}.")))?;
    // Handlers first: whoever reads the ready line may signal at once.
    let stop = signals();
    if crate::output::json() {
        crate::output::emit(ready)?;
    } else {
        // The documented ready line, the object alone (tests and tools read it as is).
        print_line(&ready.to_string())?;
    }
    stop.await;
    org.shutdown().await;
    Ok(Exit::Ok)
}

/// SIGINT or SIGTERM, with the handlers installed by the time this returns (not when the
/// future is first polled).
#[cfg(unix)]
fn signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn signals() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
