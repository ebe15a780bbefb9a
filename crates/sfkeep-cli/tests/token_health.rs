//! What `sfkeep token` and friends do when the token or its store cannot be trusted: a token
//! an earlier call saw refused, a store that fails or holds a record this key cannot read, a
//! login whose refresh token would not outlive the process, an API version without SOAP
//! login(). Every count is read from the simulated org's `/_fake/stats`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Org, result_of, run, sfkeep};
use serde_json::{Value, json};

/// The org's profile file with `edit` applied to its text, written as `name`.
fn derived_profile(org: &Org, home: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let cfg = home.join(name);
    std::fs::write(&cfg, edit(&text)).unwrap();
    cfg
}

/// The org's profile with its file store moved to `tokens`, written as `name`.
fn profile_with_store_at(org: &Org, home: &Path, name: &str, tokens: &Path) -> PathBuf {
    derived_profile(org, home, name, |t| {
        t.lines()
            .map(|l| match l.starts_with("path = ") {
                true => format!("path = {:?}", tokens.display().to_string()),
                false => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn cmd(home: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut c = sfkeep(home);
    c.args(args)
        .arg("--config")
        .arg(cfg)
        .args(["--profile", "fake"]);
    c
}

fn token_requests(org: &Org) -> u64 {
    org.stats()["token_requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn a_token_an_earlier_call_saw_refused_is_not_handed_out() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (code, first, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    let user = org.field("username");
    assert_eq!(
        org.admin_post(&format!("/users/{user}/freeze"), json!({})),
        200
    );

    // The call sees the 401, cannot refresh (frozen), and records both.
    let (code, _, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 3, "{err}");
    // `token` must not print the refused token; it tries once more and says why not.
    let (code, out, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 3, "stdout: {out} stderr: {err}");
    assert!(!out.contains(first.trim()) && out.is_empty(), "{out}");

    assert_eq!(
        org.admin_post(&format!("/users/{user}/unfreeze"), json!({})),
        200
    );
    let (code, out, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    assert_ne!(out.trim(), first.trim(), "a new token after the unfreeze");
}

#[test]
fn a_store_this_key_cannot_read_is_exit_5_without_a_token_request() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (code, _, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    let before = token_requests(&org);
    for _ in 0..3 {
        let mut c = cmd(h, &cfg, &["token"]);
        // Another valid key: the stored record does not decrypt with it.
        c.env(
            "SFKEEP_CACHE_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
        let (code, out, err) = run(c);
        assert_eq!(code, 5, "stdout: {out} stderr: {err}");
        assert!(out.is_empty());
        assert!(err.contains("different cache key"), "{err}");
    }
    assert_eq!(token_requests(&org), before, "no login per invocation");
}

#[test]
fn a_store_that_cannot_be_written_is_exit_5() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let not_a_dir = h.join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let cfg = profile_with_store_at(&org, h, "unwritable.toml", &not_a_dir.join("tokens.enc"));
    let (code, out, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 5, "stdout: {out} stderr: {err}");
    assert!(out.is_empty(), "no token when it could not be kept: {out}");
}

#[test]
fn an_interactive_login_into_a_memory_store_is_refused_before_it_starts() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = derived_profile(&org, h, "memory.toml", |t| {
        t.replace("kind = \"file\"", "kind = \"memory\"")
    });
    for args in [
        &["login", "--web"][..],
        &["login", "--device"],
        &[
            "login",
            "--sfdx-url",
            "force://a:b:c@example.my.salesforce.com",
        ],
    ] {
        let (code, _, err) = run(cmd(h, &cfg, args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("in memory") && err.contains("kind = \"file\""),
            "{err}"
        );
    }
    assert_eq!(token_requests(&org), 0);
}

#[test]
fn soap_login_at_v65_is_a_configuration_error() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = derived_profile(&org, h, "soap65.toml", |t| {
        t.lines()
            .filter(|l| !l.starts_with("fallback_grant"))
            .map(|l| {
                if l.starts_with("grant = ") {
                    "grant = \"soap_login\"\napi_version = \"65.0\"".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let (code, out, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 2, "stdout: {out} stderr: {err}");
    assert!(
        err.contains("not available in API v65.0") && err.contains("64.0"),
        "{err}"
    );
    assert!(!err.contains(".."), "{err}");
    assert_eq!(org.stats()["soap_logins"], 1);
}

#[test]
fn a_request_the_org_refuses_is_a_usage_error_not_a_bug() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    for args in [
        &["query", "SELEC Id FROM Account"][..],
        &["query", "SELECT NoSuchField__c FROM Account"],
        &["api", "GET", "sobjects/Account/001000000000000AAA"],
    ] {
        let (code, _, err) = run(cmd(h, &cfg, args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("refused the request itself"), "{err}");
        assert!(!err.contains("sfkeep doctor"), "{err}");
    }
}

#[test]
fn a_profile_without_a_refresh_token_starts_with_its_fallback_grant() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = derived_profile(&org, h, "no-rt.toml", |t| {
        t.lines()
            .filter(|l| !l.starts_with("refresh_token"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let (code, out, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "stdout: {out} stderr: {err}");
    let s = org.stats();
    assert_eq!(s["token_requests"]["jwt_bearer"], 1, "{s}");
    assert_eq!(s["token_requests"]["refresh_token"], 0, "{s}");
}

#[test]
fn the_proxy_off_loopback_names_the_flag_and_wants_a_real_key() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (code, _, err) = run(cmd(h, &cfg, &["proxy", "--listen", "0.0.0.0:0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--client-key-env"), "{err}");
    let mut c = cmd(
        h,
        &cfg,
        &[
            "proxy",
            "--listen",
            "0.0.0.0:0",
            "--client-key-env",
            "PROXY_KEY",
        ],
    );
    c.env("PROXY_KEY", "short");
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 16"), "{err}");
    assert!(
        !err.contains("short"),
        "the key itself is not echoed: {err}"
    );
}

#[test]
fn recover_refuses_plain_http_to_a_proxy_off_loopback() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (_, out, err) = run(cmd(
        h,
        &cfg,
        &["recover", "--proxy", "http://proxy.example.com:8787"],
    ));
    let all = format!("{out}{err}");
    assert!(all.contains("loopback") || all.contains("https"), "{all}");
    assert!(
        !all.contains("did not answer"),
        "no request was tried: {all}"
    );
}

#[test]
fn status_and_login_judge_expiry_on_the_servers_clock() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let timeout: u64 = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("session_timeout_secs = "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The org's clock runs three hours ahead of this machine's.
    assert_eq!(
        org.admin_post("/clock/advance", json!({"seconds": 10_800})),
        200
    );
    let (code, out, err) = run(cmd(h, &cfg, &["login", "--jwt"]));
    assert_eq!(code, 0, "{err}");
    let minutes: u64 = out
        .split("valid for about ")
        .nth(1)
        .and_then(|r| r.split('m').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        minutes <= timeout / 60,
        "{minutes} min from a {timeout} s session: {out}"
    );
    let (code, out, err) = run(cmd(h, &cfg, &["status", "--json"]));
    assert_eq!(code, 0, "{err}");
    let s: Value = result_of(&out);
    let left = s["expires_in_secs"].as_u64().unwrap();
    assert!(
        left <= timeout,
        "{left} s left of a {timeout} s session: {s}"
    );
    assert_eq!(s["state"], "fresh", "{s}");
}

#[test]
fn logout_revoke_also_revokes_a_stored_access_token_from_a_grant_without_refresh_token() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (code, _, err) = run(cmd(h, &cfg, &["login", "--jwt"]));
    assert_eq!(code, 0, "{err}");
    let (code, token, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    let limits = |tok: &str| -> u16 {
        let url = format!("{}/services/data/v59.0/limits", org.field("instance_url"));
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                reqwest::Client::new()
                    .get(&url)
                    .bearer_auth(tok)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
    };
    assert_eq!(limits(token.trim()), 200);
    let (code, _, err) = run(cmd(h, &cfg, &["logout", "--revoke"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("revoked the stored access token"), "{err}");
    assert_eq!(
        limits(token.trim()),
        401,
        "the JWT-minted token no longer works"
    );
    assert!(!err.contains(token.trim()), "{err}");
    // Revoking the configured refresh token a second time: the org says it is already invalid.
    let (code, _, err) = run(cmd(h, &cfg, &["logout", "--revoke"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already invalid"), "{err}");
}

/// The fallback grant carries the integration after the refresh token died: calls still work
/// (exit 0), and `status` warns, naming the fallback, the primary grant and its cause, in text
/// and JSON, and the command that healed says so on stderr (issue 24 item 6).
#[test]
fn status_warns_while_the_fallback_grant_carries_the_integration() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (code, out, err) = run(cmd(h, &cfg, &["status"]));
    assert_eq!(code, 0, "stdout: {out} stderr: {err}");
    let (code, _, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(cmd(h, &cfg, &["status"]));
    assert!(!out.contains("fallback carries"), "{out}");

    let cid = org.field("client_id");
    assert_eq!(
        org.admin_post(&format!("/apps/{cid}/revoke"), json!({})),
        200
    );
    let (code, _, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "the JWT fallback heals: {err}");
    assert!(
        err.contains("fallback"),
        "the healing command says so: {err}"
    );
    let s = org.stats();
    assert_eq!(s["token_requests"]["jwt_bearer"], 1, "{s}");

    let (code, out, err) = run(cmd(h, &cfg, &["status"]));
    assert_eq!(code, 0, "{err}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("warning"))
        .unwrap_or_else(|| panic!("a warning line: {out}"));
    assert!(
        warning.contains("jwt_bearer fallback carries this integration")
            && warning.contains("primary refresh_token grant failed (refresh_token_revoked)"),
        "{warning}"
    );
    let (code, out, err) = run(cmd(h, &cfg, &["status", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        result_of(&out)["fallback"],
        json!({"grant": "jwt_bearer", "primary": "refresh_token", "primary_cause": "refresh_token_revoked"}),
        "{out}"
    );
}

/// Issue 24 item 5 for `status`: a stored record carries the clock offset its *writer*
/// measured. A writer 3 h fast stores −3 h; `status` on a host with a correct clock must not
/// apply it (it said the session had 3 h more than it has, and a timed-out one looked alive).
/// And a record issued in this host's future (this clock behind the org's) makes `status` read
/// the org's `Date` instead of trusting either clock.
#[test]
fn status_judges_a_stored_token_on_this_hosts_clock_not_its_writers() {
    use sfkeep::clock::UnixMillis;
    use sfkeep::store::{CacheKey, EncryptedFileStore, Store, StoreKey};
    use sfkeep::token::TokenRecord;

    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let cfg = PathBuf::from(org.field("profile_file"));
    let (code, _, err) = run(cmd(h, &cfg, &["token"]));
    assert_eq!(code, 0, "{err}");
    let dir = cfg.parent().unwrap();
    let key = std::fs::read_to_string(dir.join("cache.key")).unwrap();
    let file = EncryptedFileStore::new(
        dir.join("tokens.enc"),
        CacheKey::from_base64(key.trim()).unwrap(),
    );
    let status = |args: &[&str]| {
        let (code, out, err) = run(cmd(h, &cfg, args));
        assert_eq!(code, 0, "{err}");
        out
    };
    let store_key = StoreKey::from_string(
        result_of(&status(&["status", "--json"]))["store_key"]
            .as_str()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored = rt.block_on(file.load(&store_key)).unwrap().unwrap();
    let lifetime = stored.expires_at.since(stored.issued_at).as_secs();
    let write = |rec: &TokenRecord, replaced: u64| {
        rt.block_on(file.compare_and_set(&store_key, Some(replaced), rec))
            .unwrap();
    };
    let expires_in = || {
        result_of(&status(&["status", "--json"]))["expires_in_secs"]
            .as_u64()
            .unwrap()
    };

    // The same token as a writer 3 h fast would have stored it.
    let fast_writer = TokenRecord {
        generation: stored.generation + 1,
        server_offset_ms: -3 * 3600 * 1000,
        ..stored.clone()
    };
    write(&fast_writer, stored.generation);
    let left = expires_in();
    assert!(
        left <= lifetime,
        "status applied the writer's clock: {left} s left of a {lifetime} s session"
    );

    // The org's clock an hour ahead of this host's; a token issued now on the org's clock.
    assert_eq!(
        org.admin_post("/clock/advance", json!({"seconds": 3600})),
        200
    );
    let org_now = UnixMillis(stored.issued_at.0 + 3_600_000);
    let ahead = TokenRecord {
        generation: fast_writer.generation + 1,
        issued_at: org_now,
        refresh_at: org_now.plus(std::time::Duration::from_secs(lifetime / 2)),
        expires_at: org_now.plus(std::time::Duration::from_secs(lifetime)),
        server_offset_ms: 0,
        ..stored.clone()
    };
    write(&ahead, fast_writer.generation);
    let left = expires_in();
    assert!(
        left <= lifetime && left + 300 >= lifetime,
        "judged on the org's clock, the new token has about {lifetime} s left, not {left}"
    );
    let text = status(&["status"]);
    assert!(
        text.contains("behind the org's (its Date header)"),
        "the text says the org's clock was read: {text}"
    );
}

/// Issue 24 item 3 with the file store, as the issue found it: a store directory that reads but
/// cannot be written, rotation on, and a session death. The rotating refresh must not be sent
/// (its answer could not be kept, and the next command would resend the stored, rotated-out
/// token, which revokes the family): exit 5, no refresh request at the org. Once the directory
/// takes writes again, one refresh heals and the org never saw a reuse.
///
/// CI runs as root, which a read-only mode does not stop, so the directory is made immutable
/// (`chattr +i`, which stops root too). Where the file system or the container refuses
/// `chattr`, the test says so and checks nothing (the Redis form of this case,
/// `fleet::store_truth::a_store_that_cannot_write_gets_no_rotating_refresh_sent`, runs
/// everywhere).
#[test]
fn a_read_only_store_directory_gets_no_rotating_refresh_sent() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let app = org.field("client_id");
    assert_eq!(
        org.admin_put(
            &format!("/apps/{app}/policy"),
            json!({"rotate_refresh_tokens": true})
        ),
        200
    );
    let store_dir = h.join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let cfg = profile_with_store_at(&org, h, "rotating.toml", &store_dir.join("tokens.enc"));
    let refreshes = || {
        org.stats()["token_requests"]["refresh_token"]
            .as_u64()
            .unwrap()
    };
    let (code, _, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(refreshes(), 1);

    let immutable = |on: bool| {
        Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(&store_dir)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !immutable(true) || std::fs::write(store_dir.join("probe"), "x").is_ok() {
        immutable(false);
        eprintln!("SKIPPED: `chattr +i` cannot make a directory read-only for root here");
        return;
    }
    struct Mutable<'a>(&'a dyn Fn(bool) -> bool);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            (self.0)(false);
        }
    }
    let guard = Mutable(&immutable);

    let user = org.field("username");
    assert_eq!(
        org.admin_post(&format!("/users/{user}/logout"), json!({})),
        200
    );
    let (code, out, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 5, "stdout: {out} stderr: {err}");
    assert_eq!(
        refreshes(),
        1,
        "no rotating refresh while the store cannot keep its answer: {err}"
    );
    drop(guard);

    let (code, _, err) = run(cmd(h, &cfg, &["api", "GET", "limits"]));
    assert_eq!(code, 0, "{err}");
    let s = org.stats();
    assert_eq!(s["token_requests"]["refresh_token"], 2, "{s}");
    assert_eq!(s["refresh_token_reuse_detected"], 0, "{s}");
}
