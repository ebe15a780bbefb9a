//! Bad configs, missing secrets and unreachable orgs: the right exit code and one paragraph on
//! stderr that says what to do, never a secret value.

mod common;

use std::path::{Path, PathBuf};

use common::{run, sfkeep};

const CLIENT_SECRET: &str = "CLIENTSECRETVALUE0123456789";
const REFRESH_TOKEN: &str = "5AepREFRESHTOKENVALUE0123456789";
const ENV_SECRET: &str = "ENVSECRETVALUE0123456789";

fn write_secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

/// A profile `t` with a memory store and secrets in files.
fn config(dir: &Path, login_url: &str, extra: &str) -> PathBuf {
    let cs = write_secret(dir, "client_secret", CLIENT_SECRET);
    let rt = write_secret(dir, "refresh_token", REFRESH_TOKEN);
    let text = format!(
        r#"[profiles.t]
login_url = "{login_url}"
client_id = "3MVG9test"
client_secret = {{ file = "{}" }}
refresh_token = {{ file = "{}" }}
{extra}
"#,
        cs.display(),
        rt.display()
    );
    let p = dir.join("sfkeep.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn token(home: &Path, cfg: &Path) -> (i32, String, String) {
    let mut c = sfkeep(home);
    c.arg("token")
        .arg("--config")
        .arg(cfg)
        .args(["--profile", "t"])
        .env("SFKEEP_TEST_SECRET", ENV_SECRET);
    run(c)
}

fn assert_clean(err: &str) {
    for s in [CLIENT_SECRET, REFRESH_TOKEN, ENV_SECRET] {
        assert!(!err.contains(s), "a secret leaked: {err}");
    }
    assert!(err.starts_with("sfkeep: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one paragraph: {err}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn unknown_key_is_exit_2_with_did_you_mean() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config(
        home.path(),
        "http://127.0.0.1:1",
        "sesion_timeout_secs = 60",
    );
    let (code, out, err) = token(home.path(), &cfg);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.contains(&cfg.display().to_string()), "{err}");
    assert!(err.contains("profiles.t.sesion_timeout_secs"), "{err}");
    assert!(
        err.contains("Did you mean `session_timeout_secs`?"),
        "{err}"
    );
    assert_clean(&err);
}

#[test]
fn literal_secret_is_exit_2_without_the_value() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("sfkeep.toml");
    std::fs::write(
        &cfg,
        format!("[profiles.t]\nclient_id = \"x\"\nclient_secret = \"{CLIENT_SECRET}\"\n"),
    )
    .unwrap();
    let (code, _, err) = token(home.path(), &cfg);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("{ env = \"NAME\" }"), "{err}");
    assert_clean(&err);
}

#[test]
fn missing_secret_file_is_exit_2_naming_the_file() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config(home.path(), "http://127.0.0.1:1", "");
    let gone = home.path().join("client_secret");
    std::fs::remove_file(&gone).unwrap();
    let (code, _, err) = token(home.path(), &cfg);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&gone.display().to_string()), "{err}");
    assert!(err.contains("profiles.t.client_secret"), "{err}");
    assert_clean(&err);
}

#[test]
fn missing_env_var_is_exit_2_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("sfkeep.toml");
    std::fs::write(
        &cfg,
        "[profiles.t]\nlogin_url = \"http://127.0.0.1:1\"\nclient_id = \"x\"\nrefresh_token = { env = \"SFKEEP_TEST_UNSET_VARIABLE\" }\n",
    )
    .unwrap();
    let (code, _, err) = token(home.path(), &cfg);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SFKEEP_TEST_UNSET_VARIABLE"), "{err}");
    assert_clean(&err);
}

#[test]
fn unreachable_org_is_exit_4() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    // A secret from the environment too, to check it is not echoed either.
    let cfg = config(
        home.path(),
        &url,
        "password = { env = \"SFKEEP_TEST_SECRET\" }",
    );
    let (code, out, err) = token(home.path(), &cfg);
    assert_eq!(code, 4, "{err}");
    assert!(out.is_empty());
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("retry"), "{err}");
    assert_clean(&err);
    // `query` retries inside the cooldown: the message still says what failed first.
    let (code, _, err) = cmd(home.path(), &cfg, &["query", "SELECT Id FROM Account"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&url), "the refused connection is named: {err}");
    assert_clean(&err);
}

#[test]
fn missing_profile_and_missing_config_are_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config(home.path(), "http://127.0.0.1:1", "");
    let mut c = sfkeep(home.path());
    c.args(["status", "--profile", "prod", "--config"])
        .arg(&cfg);
    let (code, _, err) = run(c);
    assert_eq!(code, 2);
    assert!(
        err.contains("no profile `prod`") && err.contains("`t`"),
        "{err}"
    );
    assert_clean(&err);

    // No --config and nothing in ./ or the user config dir.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run({
        let mut c = sfkeep(empty.path());
        c.arg("status");
        c
    });
    assert_eq!(code, 2);
    assert!(err.contains("no config file found"), "{err}");
}

#[test]
fn config_is_found_in_the_working_directory_and_profile_from_env() {
    let home = tempfile::tempdir().unwrap();
    config(home.path(), "http://127.0.0.1:1", "");
    let mut c = sfkeep(home.path());
    c.args(["status", "--json"]).env("SFKEEP_PROFILE", "t");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""profile":"t""#), "{out}");
    assert!(out.contains(r#""state":"missing""#), "{out}");
}

#[cfg(unix)]
#[test]
fn group_readable_secret_file_warns_but_works_until_the_network() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let cfg = config(home.path(), &url, "");
    let rt = home.path().join("refresh_token");
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = token(home.path(), &cfg);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("warning") && err.contains("chmod 600"),
        "{err}"
    );
    for s in [CLIENT_SECRET, REFRESH_TOKEN] {
        assert!(!err.contains(s), "{err}");
    }
}

#[test]
fn bad_flags_are_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let (code, _, _) = run({
        let mut c = sfkeep(home.path());
        c.args(["login"]);
        c
    });
    assert_eq!(code, 2);
    let (code, _, _) = run({
        let mut c = sfkeep(home.path());
        c.args(["login", "--jwt", "--soap"]);
        c
    });
    assert_eq!(code, 2);
}

fn cmd(home: &Path, cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = sfkeep(home);
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .args(["--profile", "t"])
        .env("SFKEEP_TEST_SECRET", ENV_SECRET)
        .env("SFKEEP_AUDIT_DB", home.join("audit.db"));
    run(c)
}

#[test]
fn doctor_recover_and_events_with_a_broken_config_are_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config(home.path(), "http://127.0.0.1:1", "grnat = \"jwt_bearer\"");
    for args in [
        &["doctor"][..],
        &["recover"],
        &["events"],
        &["doctor", "--json"],
    ] {
        let (code, out, err) = cmd(home.path(), &cfg, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        if args.contains(&"--json") {
            // With --json the error is on stdout too, as the envelope's `error`.
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(
                (v["ok"].as_bool(), v["error"]["exit_code"].as_i64()),
                (Some(false), Some(2)),
                "{out}"
            );
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("profiles.t.grnat"),
                "{out}"
            );
        } else {
            assert!(out.is_empty(), "{args:?}: {out}");
        }
        assert!(
            err.contains("profiles.t.grnat") && err.contains("`grant`"),
            "{err}"
        );
        assert_clean(&err);
    }
}

#[test]
fn doctor_and_recover_with_a_missing_secret_are_exit_2_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config(home.path(), "http://127.0.0.1:1", "");
    let gone = home.path().join("client_secret");
    std::fs::remove_file(&gone).unwrap();
    for args in [&["doctor"][..], &["recover"]] {
        let (code, _, err) = cmd(home.path(), &cfg, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(&gone.display().to_string()), "{err}");
        assert_clean(&err);
    }
}

#[test]
fn doctor_and_recover_with_an_unreachable_org_are_exit_4() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let cfg = config(
        home.path(),
        &url,
        "password = { env = \"SFKEEP_TEST_SECRET\" }",
    );
    for args in [&["doctor"][..], &["recover"], &["doctor", "--json"]] {
        let (code, out, err) = cmd(home.path(), &cfg, args);
        assert_eq!(code, 4, "{args:?}: {out} {err}");
        assert!(err.contains(&url) && err.contains("retry"), "{err}");
        assert_clean(&err);
    }
    // events needs no network.
    let (code, _, err) = cmd(home.path(), &cfg, &["events"]);
    assert_eq!(code, 0, "{err}");
}

/// A reader that went away (`sfkeep … | head`) ends the command quietly with 0, and a closed
/// stderr never makes a message panic (exit 101).
#[cfg(unix)]
#[test]
fn closed_pipes_end_quietly_and_a_closed_stderr_is_no_panic() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut child = sfkeep(h)
        .args([
            "doctor",
            "--error",
            "INVALID_SESSION_ID: Session expired or invalid",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bin = env!("CARGO_BIN_EXE_sfkeep");
    let status = std::process::Command::new("sh")
        .args([
            "-c",
            "exec 2>&-; exec \"$0\" --config /nonexistent/sfkeep.toml token",
        ])
        .arg(bin)
        .env("HOME", h)
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(2),
        "an error message to a closed stderr"
    );
}

#[test]
fn config_mistakes_say_exactly_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // --config pointing at a directory.
    let (code, _, err) = cmd(h, h, &["status"]);
    assert_eq!(code, 2);
    assert!(err.contains("is a directory"), "{err}");
    // A negative session timeout names the value.
    let cfg = config(
        h,
        "https://login.salesforce.com",
        "session_timeout_secs = -5",
    );
    let (code, _, err) = token(h, &cfg);
    assert_eq!(code, 2);
    assert!(err.contains("found -5"), "{err}");
    // A retired API version.
    let cfg = config(h, "https://login.salesforce.com", "api_version = \"30.0\"");
    let (code, _, err) = token(h, &cfg);
    assert_eq!(code, 2);
    assert!(err.contains("retired") && err.contains("31.0"), "{err}");
    // A URL instead of a path in `api`: refused before any token is read.
    let cfg = config(h, "https://login.salesforce.com", "");
    let (code, _, err) = cmd(h, &cfg, &["api", "GET", "https://elsewhere.example.com/x"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("is a URL") && !err.contains("config file"),
        "{err}"
    );
}
