//! The CLI's contract with programs (issue 22 item 9): every command run with `--json`, on
//! success and on each failure class, prints envelopes that validate against the schema kept
//! in the repo (`schema/output.schema.json`); `ok` is true exactly when the exit code is 0; the
//! error's `exit_code` is the process's and its `class` the one the README's table names.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Org, run, sfkeep};
use serde_json::{Value, json};

fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/output.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

/// The README's exit-code table: code → class name.
fn readme_classes() -> Vec<(i64, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<i64>().ok()?;
            let class = cells.get(2)?.trim_matches('`');
            (!class.is_empty()).then(|| (code, class.to_owned()))
        })
        .collect()
}

/// Checks one `--json` run: every stdout line an envelope that validates; `ok` and the error's
/// code agree with the exit code and the README. Returns the envelopes.
fn check(v: &jsonschema::Validator, what: &str, code: i32, out: &str, err: &str) -> Vec<Value> {
    let docs: Vec<Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{what}: a stdout line is not JSON ({e}): {l}\n{err}"))
        })
        .collect();
    assert!(
        !docs.is_empty(),
        "{what}: nothing on stdout (exit {code}): {err}"
    );
    let classes = readme_classes();
    for d in &docs {
        let problems: Vec<String> = v
            .iter_errors(d)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(problems.is_empty(), "{what}: {problems:?}\n{d:#}");
    }
    let last = docs.last().unwrap();
    assert_eq!(last["ok"], code == 0, "{what}: exit {code}: {last}");
    if code != 0 {
        assert_eq!(last["error"]["exit_code"], code, "{what}: {last}");
        let named = classes.iter().find(|(c, _)| *c == i64::from(code));
        assert_eq!(
            named.map(|(_, c)| c.as_str()),
            last["error"]["class"].as_str(),
            "{what}: the README's table names exit {code} otherwise"
        );
    }
    docs
}

fn cmd(home: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut c = sfkeep(home);
    c.arg("--json")
        .arg("--config")
        .arg(cfg)
        .args(["--profile", "fake"])
        .args(args);
    c
}

/// Runs `args` with `--json` and checks the envelope; asserts the exit code.
fn expect(v: &jsonschema::Validator, home: &Path, cfg: &Path, args: &[&str], code: i32) -> Value {
    let (got, out, err) = run(cmd(home, cfg, args));
    let what = format!("{args:?}");
    assert_eq!(got, code, "{what}: {err}\n{out}");
    check(v, &what, got, &out, &err).pop().unwrap()
}

/// A long-running command: its first stdout line, checked, then it is stopped.
fn first_line(v: &jsonschema::Validator, mut c: Command, what: &str) -> Value {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|_| panic!("{what}: no line within 30 s"));
    check(v, what, 0, &line, "").pop().unwrap()
}

fn derived(org: &Org, home: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let cfg = home.join(name);
    std::fs::write(&cfg, edit(&text)).unwrap();
    cfg
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback server that answers every request with 200 and a body that is not JSON: a
/// login URL that is not Salesforce.
fn garbage_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello there");
        }
    });
    port
}

#[test]
fn every_command_answers_in_one_envelope_on_success() {
    let v = validator();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 30);
    let cfg = PathBuf::from(org.field("profile_file"));
    let token = expect(&v, h, &cfg, &["token"], 0);
    assert_eq!(token["result"]["verified"], false);
    let verified = expect(&v, h, &cfg, &["token", "--verify"], 0);
    assert_eq!(
        verified["result"]["identity"]["username"],
        "integration@example.com"
    );
    for args in [
        &["status"][..],
        &["status", "--verify"],
        &["status", "--all"],
        &["query", "SELECT COUNT() FROM Account"],
        &["query", "SELECT Name, Id FROM Account LIMIT 3"],
        &["api", "GET", "limits"],
        &["events"],
        &["doctor"],
        &["login", "--jwt"],
        &["login"],
        &["recover"],
    ] {
        expect(&v, h, &cfg, args, 0);
    }
    let db = h.join("billing.db");
    let db_arg = format!("sqlite:{}", db.display());
    expect(&v, h, &cfg, &["sync", "accounts", "--to", &db_arg], 0);
    let logout = expect(&v, h, &cfg, &["logout", "--revoke"], 0);
    assert_eq!(logout["result"]["forgot"], true);
    // Offline and standalone commands.
    let mut c = sfkeep(h);
    c.args([
        "--json",
        "doctor",
        "--error",
        r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
    ]);
    let (code, out, err) = run(c);
    check(&v, "doctor --error", code, &out, &err);
    let mut c = sfkeep(h);
    c.args(["demo", "--accounts", "200", "--changes", "10", "--json"]);
    let (code, out, err) = run(c);
    let demo = check(&v, "demo", code, &out, &err).pop().unwrap();
    assert_eq!(demo["result"]["lost"], 0, "{demo}");
    // The ones that run until stopped: one envelope per line.
    let mut c = sfkeep(h);
    c.args([
        "fake-org",
        "--listen",
        "127.0.0.1:0",
        "--json",
        "--state-dir",
    ])
    .arg(h.join("org2"));
    first_line(&v, c, "fake-org");
    std::fs::create_dir_all(h.join("o3")).unwrap();
    let org2 = Org::start(&h.join("o3"), 5);
    let mut c = cmd(
        h,
        Path::new(&org2.field("profile_file")),
        &["proxy", "--listen", "127.0.0.1:0"],
    );
    c.current_dir(h);
    first_line(&v, c, "proxy");
    let c = cmd(
        h,
        Path::new(&org2.field("profile_file")),
        &["events", "--follow"],
    );
    let _ = run(cmd(h, Path::new(&org2.field("profile_file")), &["token"]));
    first_line(&v, c, "events --follow");
}

#[test]
fn every_failure_class_answers_in_one_envelope_with_its_exit_code() {
    let v = validator();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    // 2: usage — a flag clap does not know, a missing config, a config mistake for every command.
    let mut c = sfkeep(h);
    c.args(["token", "--bogus", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 2, "{err}");
    check(&v, "token --bogus", code, &out, &err);
    expect(&v, h, &h.join("nowhere.toml"), &["status"], 2);
    let broken = derived(&org, h, "broken.toml", |t| t.replace("grant =", "grnat ="));
    for args in [
        &["token"][..],
        &["status"],
        &["query", "SELECT Id FROM Account"],
        &["api", "GET", "limits"],
        &["login"],
        &["logout"],
        &["events"],
        &["doctor"],
        &["recover"],
        &["sync", "accounts", "--to", "sqlite:x.db"],
        &["proxy", "--listen", "127.0.0.1:0"],
    ] {
        let e = expect(&v, h, &broken, args, 2);
        assert!(
            e["error"]["message"].as_str().unwrap().contains("grnat"),
            "{e}"
        );
    }
    // 4: transient — the org cannot be reached.
    let port = closed_port();
    let unreachable = derived(&org, h, "down.toml", |t| {
        let url = org.field("login_url");
        t.replace(&url, &format!("http://127.0.0.1:{port}"))
    });
    for args in [
        &["token"][..],
        &["status", "--verify"],
        &["query", "SELECT Id FROM Account"],
        &["api", "GET", "limits"],
        &["login", "--jwt"],
        &["recover"],
    ] {
        let e = expect(&v, h, &unreachable, args, 4);
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("connection refused"),
            "{e}"
        );
    }
    // 1: unexpected — a login URL that answers, but not as Salesforce does.
    let garbage = garbage_server();
    let not_sf = derived(&org, h, "garbage.toml", |t| {
        t.replace(
            &org.field("login_url"),
            &format!("http://127.0.0.1:{garbage}"),
        )
    });
    expect(&v, h, &not_sf, &["token"], 1);
    // 5: store — a record this cache key cannot read; an audit log that is a directory.
    let cfg = PathBuf::from(org.field("profile_file"));
    assert_eq!(run(cmd(h, &cfg, &["token"])).0, 0);
    let mut c = cmd(h, &cfg, &["token"]);
    c.env(
        "SFKEEP_CACHE_KEY",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let (code, out, err) = run(c);
    assert_eq!(code, 5, "{err}");
    check(&v, "token with another cache key", code, &out, &err);
    let mut c = cmd(h, &cfg, &["events"]);
    std::fs::create_dir_all(h.join("audit-dir.db")).unwrap();
    c.env("SFKEEP_AUDIT_DB", h.join("audit-dir.db"));
    let (code, out, err) = run(c);
    assert_eq!(code, 5, "{err}");
    check(&v, "events with an unreadable audit log", code, &out, &err);
    // 3: re-authentication required — the app's tokens revoked and no fallback.
    let no_fallback = derived(&org, h, "nofallback.toml", |t| {
        t.lines()
            .filter(|l| !l.starts_with("fallback_grant"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert_eq!(
        org.admin_post(
            &format!("/apps/{}/revoke", org.field("client_id")),
            json!({})
        ),
        200
    );
    for args in [
        &["token", "--verify"][..],
        &["status", "--verify"],
        &["query", "SELECT Id FROM Account"],
        &["recover"],
    ] {
        let e = expect(&v, h, &no_fallback, args, 3);
        assert!(e["error"]["cause"].is_string(), "{args:?}: {e}");
    }
}

#[test]
fn the_schema_names_every_command_and_the_readme_every_exit_code() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/output.schema.json"
    ))
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let commands = schema["properties"]["command"]["enum"].as_array().unwrap();
    let mut c = sfkeep(&std::env::temp_dir());
    c.arg("--help");
    let (_, help, _) = run(c);
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(listed.len() >= 13, "{help}");
    for c in listed {
        assert!(
            commands.iter().any(|s| s == c),
            "the schema does not know `{c}`"
        );
    }
    let classes = readme_classes();
    let expected = [
        (0, "ok"),
        (1, "unexpected"),
        (2, "usage"),
        (3, "reauth_required"),
        (4, "transient"),
        (5, "store"),
    ];
    for (code, class) in expected {
        assert!(
            classes.iter().any(|(c, n)| *c == code && n == class),
            "README lacks exit {code} `{class}`: {classes:?}"
        );
    }
}
