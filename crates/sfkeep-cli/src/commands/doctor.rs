//! `sfkeep doctor [--error TEXT|-] [--json]`: why the session died, ranked causes with their
//! evidence and the fix.
//!
//! With `--error`, a pasted Salesforce error is classified offline (no config, no network).
//! Without it, doctor gathers facts about the profile's org (see [`crate::diagnosis`]) and
//! ranks the causes with `sfkeep::diagnose::evidence`.

use std::io::Read;

use clap::Args;
use sfkeep::diagnose::Diagnosis;
use sfkeep::diagnose::classify;

use crate::commands::{JsonFlag, print_line};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::session::Globals;
use crate::ui::Paint;

/// The most text `--error` reads.
const MAX_ERROR_TEXT: u64 = 1024 * 1024;

/// `sfkeep doctor` arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Classify this error text offline (a REST error array, SOAP fault, OAuth error, Bulk
    /// error, or a log line containing one); `-` reads it from stdin.
    #[arg(long, value_name = "TEXT|-", allow_hyphen_values = true)]
    pub error: Option<String>,
    #[command(flatten)]
    json: JsonFlag,
}

/// Runs doctor.
pub async fn run(g: &Globals, a: DoctorArgs) -> CliResult<Exit> {
    match a.error {
        Some(text) => offline(&text, a.json.json),
        None => {
            let d = crate::diagnosis::gather_and_diagnose(g).await?;
            print_diagnosis(&d.diagnosis, a.json.json, Some(&d.notes))?;
            Ok(Exit::Ok)
        }
    }
}

fn read_error_text(arg: &str) -> CliResult<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .take(MAX_ERROR_TEXT)
        .read_to_string(&mut s)
        .map_err(|e| CliError::usage(format!("cannot read the error text from stdin: {e}.")))?;
    Ok(s)
}

fn offline(arg: &str, json: bool) -> CliResult<Exit> {
    let text = read_error_text(arg)?;
    match classify::recognize_error_text(&text) {
        Some(r) => {
            let d = classify::classify_recognized(&r);
            print_diagnosis(&d, json, None)?;
            Ok(Exit::Ok)
        }
        None => {
            if json {
                print_diagnosis(&classify::not_an_error(), true, None)?;
            }
            Err(CliError::usage(
                "the --error text does not look like a Salesforce error: no OAuth error ({\"error\":…,\"error_description\":…}), REST error array ([{\"message\":…,\"errorCode\":…}]), SOAP fault, Bulk API error or Bad_OAuth_Token was found in it. Paste the response body (or the log line containing it), or run `sfkeep doctor` without --error to examine the org.",
            ))
        }
    }
}

/// Prints a diagnosis as JSON (exactly the documented shape) or for a person.
pub fn print_diagnosis(d: &Diagnosis, json: bool, notes: Option<&[String]>) -> CliResult<()> {
    if json {
        let v = serde_json::to_string(d)
            .map_err(|e| CliError::unexpected(format!("cannot encode the diagnosis: {e}.")))?;
        return print_line(&v);
    }
    print_line(&render(d, notes.unwrap_or(&[]), Paint::stdout()))
}

/// The human form.
pub fn render(d: &Diagnosis, notes: &[String], p: Paint) -> String {
    let mut out = Vec::new();
    let verdict = d.verdict.as_str();
    let coloured = match d.verdict {
        sfkeep::diagnose::DiagnosisCause::Healthy => p.green(verdict),
        _ if d.recoverable => p.yellow(verdict),
        _ => p.red(verdict),
    };
    out.push(format!(
        "{} {} — {}",
        p.bold("verdict:"),
        coloured,
        d.verdict.title()
    ));
    out.push(format!(
        "{} {}",
        p.bold("recoverable:"),
        if d.recoverable {
            "yes, with the configured grants (`sfkeep recover`)"
        } else {
            "no: a person must act first"
        }
    ));
    for (i, c) in d.causes.iter().enumerate() {
        out.push(String::new());
        out.push(format!(
            "{}. {} {}",
            i + 1,
            p.bold(c.cause.as_str()),
            p.dim(&format!("({:.0}%)", c.confidence * 100.0))
        ));
        for e in &c.evidence {
            out.push(format!("   - {e}"));
        }
        out.push(format!("   {} {}", p.bold("fix:"), c.fix));
    }
    if !notes.is_empty() {
        out.push(String::new());
        out.push(p.dim("checked:"));
        for n in notes {
            out.push(p.dim(&format!("  {n}")));
        }
    }
    out.join("\n")
}
