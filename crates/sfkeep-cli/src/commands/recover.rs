//! `sfkeep recover`: the runbook after a session death. Re-authenticate with the best grant
//! available (primary, then fallback), verify the new token against
//! `/services/oauth2/userinfo` and `/services/data/vXX.X/limits`, store it, and tell a running
//! `sfkeep proxy` to reload. Prints each step; exit 0 only when a verified token is stored.
//! When no grant works, the failure is diagnosed and the exit names the cause.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sfkeep::diagnose::DiagnosisCause;
use sfkeep::diagnose::evidence::{self, Facts};

use crate::diagnosis::{self, Attempt};
use crate::error::{CliError, CliResult};
use crate::exit::Exit;
use crate::output::print_line;
use crate::session::{self, Globals};
use crate::ui::Paint;

/// `sfkeep recover` arguments.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// A running `sfkeep proxy` to tell to reload (e.g. http://127.0.0.1:8787); default: the
    /// profile's `proxy_url`.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
}

/// The runbook's steps: printed as they happen, and kept for the `--json` result.
struct Steps {
    p: Paint,
    done: std::cell::RefCell<Vec<serde_json::Value>>,
}

impl Steps {
    fn step(&self, outcome: &str, mark: String, s: &str) -> CliResult<()> {
        self.done
            .borrow_mut()
            .push(serde_json::json!({"outcome": outcome, "text": s}));
        if crate::output::json() {
            return Ok(());
        }
        print_line(&format!("{mark} {s}"))
    }
    fn ok(&self, s: &str) -> CliResult<()> {
        self.step("ok", self.p.green("✓"), s)
    }
    fn fail(&self, s: &str) -> CliResult<()> {
        self.step("failed", self.p.red("✗"), s)
    }
    fn warn(&self, s: &str) -> CliResult<()> {
        self.step("warning", self.p.yellow("!"), s)
    }
    fn info(&self, s: &str) -> CliResult<()> {
        self.step("info", " ".to_owned(), s)
    }

    /// The `--json` result: the steps, and the recovered token's generation when there is one.
    fn result(
        &self,
        p: &crate::config::Profile,
        token: Option<&sfkeep::Token>,
    ) -> serde_json::Value {
        serde_json::json!({
            "profile": p.name,
            "recovered": token.is_some(),
            "grant": token.map(|t| t.record().grant.as_str()),
            "generation": token.map(|t| t.generation()),
            "fingerprint": token.map(|t| t.record().fingerprint()),
            "steps": *self.done.borrow(),
        })
    }
}

/// Runs the runbook.
pub async fn run(g: &Globals, a: RecoverArgs) -> CliResult<Exit> {
    let p = session::load_profile(g)?;
    let steps = Steps {
        p: Paint::stdout(),
        done: Default::default(),
    };
    let store = session::open_store(&p)?;
    steps.info(&format!(
        "recovering {} (store: {})",
        p.describe(),
        session::describe_store(&p)
    ))?;
    let mut notes = Vec::new();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut verified = None;
    for name in diagnosis::grants_of(&p) {
        let Some(grant) = diagnosis::try_build_grant(&p, name, store.as_ref(), &mut notes).await?
        else {
            steps.fail(&format!(
                "{} grant: {}",
                name.as_str(),
                notes.last().cloned().unwrap_or_default()
            ))?;
            continue;
        };
        let m = session::manager_with(&p, grant, None, Arc::clone(&store))?;
        let token = {
            let _spin = crate::ui::Spinner::start("re-authenticating…");
            m.force_refresh().await
        };
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                steps.fail(&format!(
                    "re-authenticate with the {} grant: {} ({})",
                    name.as_str(),
                    diagnosis::detail(&e),
                    e.cause().map(|c| c.as_str()).unwrap_or("unknown")
                ))?;
                attempts.push(Attempt {
                    grant: name,
                    manager: None,
                    error: Some(e),
                });
                continue;
            }
        };
        steps.ok(&format!(
            "re-authenticated with the {} grant (generation {}, token {})",
            name.as_str(),
            token.generation(),
            token.record().fingerprint()
        ))?;
        attempts.push(Attempt {
            grant: name,
            manager: Some(m.clone()),
            error: None,
        });
        // Verify against two known-good endpoints.
        let client = session::api_client(&p, m.clone())?;
        match client.get_json("/services/oauth2/userinfo").await {
            Ok(v) => steps.ok(&format!(
                "verified: /services/oauth2/userinfo answers for {}",
                v.get("preferred_username")
                    .and_then(|u| u.as_str())
                    .unwrap_or("the user")
            ))?,
            Err(e) => {
                steps.fail(&format!("verify /services/oauth2/userinfo: {e}"))?;
                continue;
            }
        }
        let limits = client.data_path("/limits");
        match client.get_json(&limits).await {
            Ok(v) => {
                let d = &v["DailyApiRequests"];
                let extra = match (d["Remaining"].as_u64(), d["Max"].as_u64()) {
                    (Some(r), Some(mx)) => format!(" (DailyApiRequests {r} of {mx} left)"),
                    _ => String::new(),
                };
                steps.ok(&format!("verified: {limits} answers{extra}"))?;
            }
            Err(e) => {
                steps.fail(&format!("verify {limits}: {e}"))?;
                continue;
            }
        }
        verified = Some(m);
        break;
    }

    let Some(m) = verified else {
        crate::output::set_result(steps.result(&p, None));
        return Err(failure(&p, &attempts).await);
    };

    // Stored: the store holds exactly the verified token.
    let cur = m
        .cached_token()
        .ok_or_else(|| CliError::unexpected("the verified token vanished from memory."))?;
    let stored = session::load_record(&p, store.as_ref()).await?;
    match stored {
        Some(r) if r.fingerprint() == cur.record().fingerprint() => steps.ok(&format!(
            "stored: generation {} in {}",
            r.generation,
            session::describe_store(&p)
        ))?,
        Some(r) if r.generation > cur.generation() => steps.ok(&format!(
            "stored: another process already stored a newer token (generation {})",
            r.generation
        ))?,
        _ => {
            return Err(CliError::store(format!(
                "recovering {}: the new token was verified but is not in the token store ({}). Check the store's path, permissions and cache key, then run `sfkeep recover` again.",
                p.describe(),
                session::describe_store(&p)
            )));
        }
    }

    // Tell a running proxy.
    match a.proxy.as_ref().or(p.proxy_url.as_ref()) {
        None => steps.info("no proxy to reload (set --proxy URL or the profile's proxy_url)")?,
        Some(url) => match reload_proxy(url).await {
            Ok(msg) => steps.ok(&msg)?,
            Err(msg) => steps.warn(&msg)?,
        },
    }
    if let Some(was) = crate::killswitch::enable(&p) {
        steps.ok(&crate::killswitch::enabled_note(&p, &was))?;
    }
    steps.ok(&format!("recovered {}", p.describe()))?;
    crate::audit::record_cli(
        &p,
        &session::audit_scope(&p),
        crate::audit::CliEvent {
            kind: "recover",
            grant: Some(cur.record().grant.as_str().to_owned()),
            generation: Some(cur.generation()),
            fingerprint: Some(cur.record().fingerprint()),
            detail: serde_json::json!({}),
        },
    );
    crate::output::set_result(steps.result(&p, Some(&cur)));
    Ok(Exit::Ok)
}

async fn reload_proxy(url: &str) -> Result<String, String> {
    // Plain http only to loopback, as everywhere else.
    sfkeep::http::check_url("the proxy URL", url).map_err(|e| e.to_string())?;
    let endpoint = format!("{}/_sfkeep/reload", url.trim_end_matches('/'));
    let http = session::http_client(Duration::from_secs(30), Duration::from_secs(3))
        .map_err(|e| e.message)?;
    let resp = http
        .post(&endpoint)
        // The proxy refuses a reload without it: a web page cannot send it (no preflight).
        .header(sfkeep_proxy::browser::CONTROL_HEADER, "reload")
        .send()
        .await
        .map_err(|e| format!("the proxy at {url} did not answer the reload ({e}); restart it, or run `curl -X POST {endpoint}`"))?;
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    if (200..300).contains(&status) && v["reloaded"] != false {
        Ok(format!(
            "proxy at {url} reloaded{}",
            v["generation"]
                .as_u64()
                .map(|g| format!(" (generation {g})"))
                .unwrap_or_default()
        ))
    } else {
        Err(format!(
            "the proxy at {url} refused the reload (HTTP {status}{}); restart it",
            v["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))
    }
}

/// No grant worked: diagnose why from what the attempts said, and name the cause.
async fn failure(p: &crate::config::Profile, attempts: &[Attempt]) -> CliError {
    let mut notes = Vec::new();
    let mut facts = Facts {
        session_timeout: p
            .session_timeout
            .unwrap_or(sfkeep::token::DEFAULT_SESSION_TIMEOUT),
        dry_refresh: attempts.iter().map(Attempt::fact).collect(),
        current_source_ip: crate::audit::source_ip_for(&p.login_url),
        now: sfkeep::clock::Clock::now(&sfkeep::clock::SystemClock),
        ..Facts::default()
    };
    if let Err(e) = diagnosis::audit_facts(p, &mut facts, &mut notes) {
        return e;
    }
    // One grant that failed for a reason that passes (the org unreachable, a 5xx) may well
    // work later: that is "retry later" (4), not "a person must act" (3).
    let transient = attempts
        .iter()
        .any(|a| a.error.as_ref().is_some_and(|e| e.is_retryable()));
    if attempts.is_empty() {
        return CliError::reauth(format!(
            "cannot recover {}: no grant of the profile can run ({}). Log in once with `sfkeep login`, or configure a fallback_grant such as jwt_bearer.",
            p.describe(),
            notes.join("; ")
        ));
    }
    let said: Vec<String> = attempts
        .iter()
        .filter_map(|a| {
            a.error
                .as_ref()
                .map(|e| format!("{}: {}", a.grant.as_str(), diagnosis::detail(e)))
        })
        .collect();
    if transient {
        return CliError::transient(format!(
            "cannot recover {} now: {}. This looks temporary (network, server error or rate limit): retry later.",
            p.describe(),
            said.join("; ")
        ));
    }
    let d = evidence::diagnose(&facts);
    let top = d.top();
    let cause = if d.verdict == DiagnosisCause::Healthy {
        DiagnosisCause::Unknown
    } else {
        d.verdict
    };
    let mut e = CliError::reauth(format!(
        "cannot recover {}: {} — {} (the grants said: {}). Fix: {}",
        p.describe(),
        cause.as_str(),
        cause.title(),
        said.join("; "),
        top.fix
    ));
    e.cause = Some(cause.as_str().to_owned());
    e
}
