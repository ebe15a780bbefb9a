//! Gathering the facts `sfkeep doctor` ranks.

use sfkeep::diagnose::Diagnosis;

use crate::error::{CliError, CliResult};
use crate::session::Globals;

/// A diagnosis and what was checked to reach it.
#[derive(Debug)]
pub struct Gathered {
    /// The ranked causes.
    pub diagnosis: Diagnosis,
    /// One line per check, for the human output.
    pub notes: Vec<String>,
}

/// Gathers facts about the profile's org and ranks the causes.
pub async fn gather_and_diagnose(_g: &Globals) -> CliResult<Gathered> {
    Err(CliError::unexpected(
        "doctor against an org is not built yet; use --error.",
    ))
}
