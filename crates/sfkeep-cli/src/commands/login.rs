//! `sfkeep login`: obtain a token with one grant and store it.

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::Globals;

/// `sfkeep login` arguments.
#[derive(Debug, Args)]
pub struct LoginArgs {}

/// Not built yet.
pub async fn run(_g: &Globals, _a: LoginArgs) -> CliResult<Exit> {
    Err(CliError::usage("sfkeep login is not built yet."))
}
