//! `sfkeep demo`: not built yet, and says so.

use crate::error::CliResult;
use crate::exit::Exit;

/// Says honestly that the demo is not built yet.
pub fn run() -> CliResult<Exit> {
    eprintln!("sfkeep demo: not built yet (see issue 8). Meanwhile: sfkeep fake-org");
    Ok(Exit::Usage)
}
