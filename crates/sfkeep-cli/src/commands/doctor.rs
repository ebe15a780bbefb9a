//! `sfkeep doctor [--error TEXT|-] [--json]`: why the session died, ranked causes with their
//! evidence and the fix.
//!
//! With `--error`, a pasted Salesforce error is classified offline (no config, no network).
//! Without it, doctor gathers facts about the profile's org (see [`crate::diagnosis`]) and
//! ranks the causes with `sfkeep::diagnose::evidence`.

use std::io::Read;

use clap::Args;
use sfkeep::diagnose::classify;
use sfkeep::diagnose::{Diagnosis, DiagnosisCause};
use sfkeep::error::redact_secrets;

use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::output::print_line;
use crate::session::Globals;
use crate::ui::Paint;

/// The most text `--error` reads.
const MAX_ERROR_TEXT: u64 = 1024 * 1024;

/// `sfkeep doctor` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "What doctor sends to the org, and what it mints:\n  - read-only: the stored token probed at /services/oauth2/userinfo; with a client secret, introspection of the stored access token and of the refresh token the integration uses (the token store's, else the profile's; introspection never uses it); with a working token, SOQL reads of User, UserLogin, LoginHistory, AuthSession, OauthToken and SetupAuditTrail and SOAP getUserInfo.\n  - MINTS an access token, kept in memory and never stored: one token request for each grant of the profile that consumes nothing (JWT bearer, client credentials, password, SOAP login).\n  - when no grant of the profile gets a token: another profile of the same config file on the same org (an admin's, say) reads the integration user's records with its stored token, else with a dry login of its JWT bearer or client-credentials grant (MINTS an access token, in memory).\n  - the refresh token is never presented when introspection says it is dead, nor while doctor has another working token to read with. Otherwise (no client secret, or no other working token) doctor refreshes through the profile's token store exactly as the integration would (the store's refresh token, its lock and compare-and-set): this MINTS and STORES a new access token, and a rotated refresh token is stored with it, so no process ever presents a rotated-out one.\nThe \"checked:\" lines say which of these were done. With --error nothing is sent: the text is classified offline."
)]
pub struct DoctorArgs {
    /// Classify this error text offline (a REST error array, SOAP fault, OAuth error, Bulk
    /// error, or a log line containing one); `-` reads it from stdin.
    #[arg(long, value_name = "TEXT|-", allow_hyphen_values = true)]
    pub error: Option<String>,
}

/// Runs doctor.
pub async fn run(g: &Globals, a: DoctorArgs) -> CliResult<Exit> {
    match a.error {
        Some(text) => offline(&text, crate::output::json()),
        None => {
            let d = crate::diagnosis::gather_and_diagnose(g).await?;
            print_diagnosis(&d.diagnosis, crate::output::json(), Some(&d.notes))?;
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

/// Prints a diagnosis as JSON (exactly the documented shape) or for a person. `notes` are
/// what was checked against the org; `None` means an offline classification (`--error`: no
/// profile, no grants). Everything printed goes through [`redact_secrets`] first: evidence
/// can quote pasted text and server answers.
pub fn print_diagnosis(d: &Diagnosis, json: bool, notes: Option<&[String]>) -> CliResult<()> {
    let d = redacted(d);
    if json {
        let v = serde_json::to_value(&d)
            .map_err(|e| CliError::unexpected(format!("cannot encode the diagnosis: {e}.")))?;
        crate::output::set_result(v);
        return Ok(());
    }
    let notes: Vec<String> = notes
        .map(|n| n.iter().map(|l| redact_secrets(l)).collect())
        .unwrap_or_default();
    let context = if notes.is_empty() {
        Context::Offline
    } else {
        Context::Org
    };
    print_line(&render(&d, &notes, context, Paint::stdout()))
}

/// `d` with every credential-looking value in its evidence and fixes redacted.
pub fn redacted(d: &Diagnosis) -> Diagnosis {
    let mut d = d.clone();
    for c in &mut d.causes {
        for e in &mut c.evidence {
            *e = redact_secrets(e);
        }
        c.fix = redact_secrets(&c.fix);
    }
    d
}

/// Where a diagnosis came from: what "recoverable" can promise depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// A pasted error, classified without a profile: nothing is known about the grants.
    Offline,
    /// The profile's org, with a dry refresh of its grants.
    Org,
}

/// The verdict line's text after the cause's name.
fn verdict_text(d: &Diagnosis, context: Context) -> String {
    let warning = d.causes.iter().find(|c| c.cause != DiagnosisCause::Healthy);
    match (d.verdict, d.recoverable, warning) {
        (DiagnosisCause::Unknown, true, _) if context == Context::Offline => {
            "a dead session, but which cause cannot be known offline: every cause of session death gets this same answer (run `sfkeep doctor` without --error against the org)".to_owned()
        }
        (DiagnosisCause::Healthy, false, Some(w)) => format!(
            "the session works now, but the next login or token refresh would fail: {} ({})",
            w.cause.as_str(),
            w.cause.title()
        ),
        (v, _, _) => v.title().to_owned(),
    }
}

/// What the "recoverable:" line says, consistent with the verdict and its fix.
fn recoverable_text(d: &Diagnosis, context: Context) -> &'static str {
    use DiagnosisCause as D;
    match (d.verdict, d.recoverable, context) {
        (D::Healthy, true, _) => "nothing to recover: the session itself is fine",
        (D::Healthy, false, _) => {
            "not when this token ends: no configured grant can get a new one now, so act before then (see the fix)"
        }
        (D::RateLimited, false, _) => {
            "not yet, and nobody needs to log in again: wait for the limit to reset (see the fix)"
        }
        (_, true, Context::Org) => "yes, with the configured grants (`sfkeep recover`)",
        (D::Unknown, true, Context::Offline) => {
            "yes, for the common causes: a new access token fixes a timeout, a logout or a password change (`sfkeep recover`; the sfkeep library and proxy get one by themselves), not a freeze, a deactivation or a revoke"
        }
        (_, true, Context::Offline) => {
            "yes: a new access token fixes it (`sfkeep recover`; the sfkeep library and proxy get one by themselves)"
        }
        (
            D::AppTokensRevoked | D::RefreshTokenExpiredByPolicy | D::RefreshTokenReused,
            false,
            Context::Offline,
        ) => {
            "not with this refresh token: with a JWT bearer or client-credentials fallback grant configured, `sfkeep recover`; without one, a person must log in again (`sfkeep login --web`)"
        }
        (_, false, _) => "no: a person must act first (the fix says what), then `sfkeep recover`",
    }
}

/// The human form.
pub fn render(d: &Diagnosis, notes: &[String], context: Context, p: Paint) -> String {
    let mut out = Vec::new();
    let verdict = d.verdict.as_str();
    let coloured = match d.verdict {
        DiagnosisCause::Healthy if d.recoverable => p.green(verdict),
        _ if d.recoverable => p.yellow(verdict),
        DiagnosisCause::Healthy => p.yellow(verdict),
        _ => p.red(verdict),
    };
    out.push(format!(
        "{} {} — {}",
        p.bold("verdict:"),
        coloured,
        verdict_text(d, context)
    ));
    out.push(format!(
        "{} {}",
        p.bold("recoverable:"),
        recoverable_text(d, context)
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
