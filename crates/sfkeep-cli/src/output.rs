//! Writing results to stdout: a leaf module every command and the demo print through.

use crate::error::{CliError, CliResult};

/// Writes `line` and a newline to stdout and flushes. A closed pipe (`sfkeep events | head`)
/// ends the command quietly with exit 0: the reader has what it wanted.
pub fn print_line(line: &str) -> CliResult<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                CliError::reader_gone()
            } else {
                CliError::unexpected(format!("cannot write to stdout: {e}."))
            }
        })
}
