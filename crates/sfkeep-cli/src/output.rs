//! Writing results to stdout, for people and for programs: a leaf module every command and the
//! demo print through.
//!
//! With the global `--json`, stdout carries exactly one JSON document per command, the
//! envelope, whatever happened (schema: `crates/sfkeep-cli/schema/output.schema.json`):
//!
//! ```json
//! {"sfkeep":1,"command":"token","ok":true,"result":{…},"warnings":["…"]}
//! {"sfkeep":1,"command":"token","ok":false,"result":null,
//!  "error":{"exit_code":3,"class":"reauth_required","cause":"user_frozen","message":"…"},"warnings":[]}
//! ```
//!
//! A command hands its result to [`set_result`]; `main` prints the envelope when the command
//! ends, with the error if it failed. The commands that run until stopped (`events --follow`,
//! `proxy`, `fake-org`) print one envelope per line as things happen, through [`emit`]; each
//! line has the same shape. The paragraph for a person still goes to stderr. Without `--json`,
//! commands print text with [`print_line`] and nothing here adds to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use crate::error::{CliError, CliResult};
use crate::exit::Exit;

/// The envelope's format version: `"sfkeep": 1`.
pub const ENVELOPE_VERSION: u32 = 1;

static JSON: AtomicBool = AtomicBool::new(false);
static COMMAND: OnceLock<String> = OnceLock::new();
static RESULT: Mutex<Option<Value>> = Mutex::new(None);
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Turns JSON output on (`--json`) and names the command for the envelope. Once per process.
pub fn init(json: bool, command: &str) {
    JSON.store(json, Ordering::Relaxed);
    let _ = COMMAND.set(command.to_owned());
}

/// Whether `--json` was given.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

fn command() -> &'static str {
    COMMAND.get().map_or("sfkeep", String::as_str)
}

/// The command's result, printed in the envelope when it ends (the last one set wins).
pub fn set_result(result: Value) {
    *sfkeep::sync::lock(&RESULT) = Some(result);
}

/// A warning: on stderr at once, and in the envelope's `warnings`.
pub fn warn(message: &str) {
    eprintln!("sfkeep: warning: {message}");
    sfkeep::sync::lock(&WARNINGS).push(message.to_owned());
}

fn take_warnings() -> Vec<String> {
    std::mem::take(&mut *sfkeep::sync::lock(&WARNINGS))
}

/// The error part of an envelope.
fn error_json(e: &CliError) -> Value {
    json!({
        "exit_code": e.exit.code(),
        "class": e.exit.class(),
        "cause": e.cause,
        "message": e.message,
    })
}

/// The envelope for a command that ended with `outcome`, and the result it set.
pub fn envelope(outcome: Result<Exit, &CliError>) -> Value {
    let result = sfkeep::sync::lock(&RESULT).take();
    let mut v = json!({
        "sfkeep": ENVELOPE_VERSION,
        "command": command(),
        "ok": matches!(outcome, Ok(Exit::Ok)),
        "result": result,
        "warnings": take_warnings(),
    });
    match outcome {
        Err(e) => v["error"] = error_json(e),
        Ok(exit) if exit != Exit::Ok => {
            v["error"] = json!({
                "exit_code": exit.code(),
                "class": exit.class(),
                "cause": null,
                "message": "",
            });
        }
        Ok(_) => {}
    }
    v
}

/// Prints one envelope line now, for the commands that report as they go: `result` with the
/// warnings so far.
pub fn emit(result: Value) -> CliResult<()> {
    set_result(result);
    EMITTED.store(true, Ordering::Relaxed);
    print_line(&envelope(Ok(Exit::Ok)).to_string())
}

/// Prints the final envelope (with `--json` only). A command that already printed its last
/// line through [`emit`] and set nothing since prints nothing more on success.
pub fn finish(outcome: Result<Exit, &CliError>) {
    if !json() {
        return;
    }
    let nothing_left = sfkeep::sync::lock(&RESULT).is_none();
    if nothing_left && EMITTED.load(Ordering::Relaxed) && matches!(outcome, Ok(Exit::Ok)) {
        return;
    }
    let _ = print_line(&envelope(outcome).to_string());
}

/// Set once [`emit`] printed a line.
static EMITTED: AtomicBool = AtomicBool::new(false);

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
