//! The status page of `sfkeep serve` in a real browser: Debian's headless Chromium, driven by
//! playwright-core (tests/node/status_page.js), against `sfkeep serve` on the simulated org
//! after scripted histories. What the page shows is read back from its DOM and compared with
//! the audit log (read with SQLite), the org's own `LoginHistory` rows (read with SOQL) and
//! `/api/v1/status`; screenshots are saved under `target/artifacts/status-page/`. Skipped,
//! with a message, where Chromium is not installed (`scripts/test` installs it).
//!
//! Four orgs, four guardians, one browser run:
//! - `demo`: the demo's sequence of session deaths (timeout, logout elsewhere, 503s, password
//!   change, an IP move under session IP locking, resets, the app's tokens revoked) and a
//!   frozen user, then unfrozen and `sfkeep recover`;
//! - `storm`: a second process with its own token store, as two processes that do not share
//!   one: the page names "refresh storm";
//! - `healthy`: calls and an inactivity timeout: the page names no pattern;
//! - `bad`: an org that refuses LoginHistory, 100,000 events in the window, a profile that
//!   never got a token, and a profile whose audit log cannot be kept.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::node::{chromium, node_deps_dir};
use common::serve::*;
use common::{Org, result_of, run, sfkeep};
use serde_json::{Value, json};

/// Where the screenshots go: `target/artifacts/status-page` (or under `CARGO_TARGET_DIR`).
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("artifacts").join("status-page")
}

/// Opens every page of `pages` in Chromium; one report per page.
fn browse(chromium: &str, pages: &Value) -> Vec<Value> {
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/status_page.js"
        ))
        .env("NODE_DEPS_DIR", node_deps_dir())
        .env("CHROMIUM", chromium)
        .env("PAGES", pages.to_string())
        .env("OUT_DIR", artifacts())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the report is JSON")
}

/// One call of the integration: `sfkeep api GET …/limits` with `config`, from `bind` when
/// given. Returns the exit code (a frozen user's call fails).
fn call(home: &Path, config: &Path, bind: Option<&str>) -> i32 {
    let mut c = sfkeep(home);
    c.arg("--config")
        .arg(config)
        .args(["--profile", "fake", "api", "GET", "limits"]);
    if let Some(ip) = bind {
        c.env("SFKEEP_BIND_ADDRESS", ip);
    }
    let (code, _, err) = run(c);
    assert!(code == 0 || bind.is_none(), "{err}");
    code
}

/// The audit log next to the profile's token store (as `audit::path_for` places it).
fn audit_db(org: &Org) -> PathBuf {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let store = v["profiles"]["fake"]["store"]["path"].as_str().unwrap();
    Path::new(store).parent().unwrap().join("audit.db")
}

/// The ids of the events of `profile` in `[from, to)` in the audit log at `db`.
fn audit_ids(db: &Path, profile: &str, from: i64, to: i64) -> BTreeSet<i64> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT id FROM events WHERE profile = ?1 AND at >= ?2 AND at < ?3")
        .unwrap();
    st.query_map(rusqlite::params![profile, from, to], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every id in the audit log at `db` (to tell whether it changed).
fn all_ids(db: &Path) -> BTreeSet<i64> {
    audit_ids(db, "fake", i64::MIN, i64::MAX)
}

/// Waits until the guardian has read the org after `org_ms` and the audit log has not moved
/// for a few checks: a state the page can be compared against.
fn settle(s: &Serve, org: &Org, db: &Path) {
    let since = org.now_ms();
    s.wait_profile(
        "a fresh token and an org read after the history",
        120,
        |p| p["org"]["read_at"].as_i64().unwrap_or(0) >= since && p["state"] == "fresh",
    );
    let mut last = all_ids(db);
    let mut quiet_checks = 0;
    let mut checks = s.profile()["checks"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut probe = || {
        let now = s.profile()["checks"].as_u64().unwrap();
        if now == checks {
            return None;
        }
        checks = now;
        let ids = all_ids(db);
        if ids == last {
            quiet_checks += 1;
        } else {
            quiet_checks = 0;
            last = ids;
        }
        (quiet_checks >= 5).then_some(())
    };
    while probe().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for a quiet audit log; its newest events: {:#?}; the guardian last said {:#}",
            newest_events(db),
            s.profile()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The newest events of the audit log at `db` (for a failure's message).
fn newest_events(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT id, at, kind, origin, grant_kind, generation FROM events ORDER BY id DESC LIMIT 25")
        .unwrap();
    st.query_map([], |r| {
        Ok(format!(
            "{} {} {} {:?} {:?} {:?}",
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<i64>>(5)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The integration user's `LoginHistory` rows as the org has them: `(LoginTime ms, Status)`.
fn org_logins(home: &Path, cfg: &Path, org: &Org) -> BTreeSet<(i64, String)> {
    let users = org.admin_get("/users");
    let user = org.field("username");
    let id = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == user.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = sfkeep(home);
    c.arg("--config").arg(cfg).args([
        "--profile",
        "fake",
        "query",
        "--json",
        &format!(
            "SELECT LoginTime, Status FROM LoginHistory WHERE UserId = '{id}' ORDER BY LoginTime DESC LIMIT 500"
        ),
    ]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let rows = result_of(&out);
    let rows = rows
        .get("records")
        .cloned()
        .unwrap_or(rows)
        .as_array()
        .cloned()
        .unwrap_or_default();
    rows.iter()
        .map(|r| {
            (
                parse_sf(r["LoginTime"].as_str().unwrap()),
                r["Status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The ids of the patterns `sfkeep events --patterns --json` names for `cfg`'s `fake` profile.
fn cli_patterns(home: &Path, cfg: &Path) -> Value {
    let mut c = sfkeep(home);
    c.arg("--config")
        .arg(cfg)
        .args(["--profile", "fake", "events", "--patterns", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let r = result_of(&out);
    Value::Array(
        r["patterns"]
            .as_array()
            .unwrap_or_else(|| panic!("no patterns in {r}"))
            .iter()
            .map(|p| p["id"].clone())
            .collect(),
    )
}

/// Checks common to every page: it drew, with no console error, no request to another
/// origin, and no secret of the org in its text or HTML.
fn check_clean(report: &Value, url: &str, org: &Org) {
    let name = &report["name"];
    assert_eq!(
        report["console_errors"],
        json!([]),
        "{name}: console errors"
    );
    let origin = url.trim_end_matches('/');
    for r in report["requests"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r.starts_with(&format!("{origin}/")) || r == origin,
            "{name}: a request to another origin: {r}"
        );
    }
    let text = report["dom"]["text"].as_str().unwrap();
    let html = report["dom"]["html"].as_str().unwrap();
    assert!(
        !text
            .lines()
            .any(|l| matches!(l.trim(), "null" | "undefined" | "NaN")),
        "{name}: a missing value drawn as text: {text}"
    );
    for s in org_secrets(org) {
        assert!(
            !text.contains(&s) && !html.contains(&s),
            "{name}: the page shows a secret of the org"
        );
    }
}

/// Every screenshot's layout: nothing wider than the viewport (no horizontal scroll, at 1280 px
/// and at 390 px), and no text drawn smaller than 10 px (the timeline's SVG is drawn at its
/// box's width, so its text is not shrunk on a phone).
fn check_layout(report: &Value) {
    let name = &report["name"];
    let layouts = report["layout"].as_array().unwrap();
    assert_eq!(layouts.len(), 3, "{name}: {layouts:?}");
    for l in layouts {
        let (width, scroll) = (
            l["width"].as_i64().unwrap(),
            l["scroll_width"].as_i64().unwrap(),
        );
        assert!(
            scroll <= width,
            "{name}: horizontal scroll ({scroll} > {width}): {l}"
        );
        assert_eq!(
            l["offenders"],
            json!([]),
            "{name}: sticks out of the viewport: {l}"
        );
        let min = l["min_font_px"].as_f64().unwrap();
        assert!(min >= 10.0, "{name}: text at {min} px: {l}");
    }
    assert!(
        layouts.iter().any(|l| l["width"].as_i64() == Some(390)),
        "{name}: a 390 px layout was checked"
    );
}

/// The `(kind, cause)` of event `id` in the audit log at `db`.
fn audit_row(db: &Path, id: i64) -> (String, Option<String>) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT kind, cause FROM events WHERE id = ?1", [id], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap_or_else(|e| panic!("event {id}: {e}"))
}

/// The tooltips the browser showed when the real mouse hovered the marks: inside the viewport,
/// listing the hovered event, each listed event's cause in words; a re-auth among them.
fn check_hovers(report: &Value, db: &Path) {
    let hovers = report["hovers"].as_array().unwrap();
    let mut reauth_causes = BTreeSet::new();
    for shot in ["demo-1280x800.png", "demo-390-full.png"] {
        let on: Vec<&Value> = hovers.iter().filter(|h| h["shot"] == shot).collect();
        assert!(on.len() >= 3, "{shot}: hovered lanes: {on:?}");
        for h in on {
            let (r, v) = (&h["rect"], &h["viewport"]);
            let within = |lo: &str, hi: &str, max: &str| {
                r[lo].as_f64().unwrap() >= 0.0
                    && r[hi].as_f64().unwrap() <= v[max].as_f64().unwrap()
            };
            assert!(
                within("left", "right", "width") && within("top", "bottom", "height"),
                "{shot}: the tooltip leaves the screen: {h}"
            );
            let ids: Vec<i64> = h["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_i64().unwrap())
                .collect();
            assert!(ids.contains(&h["hovered"].as_i64().unwrap()), "{h}");
            let text = h["text"].as_str().unwrap();
            for id in ids {
                let (kind, cause) = audit_row(db, id);
                if let Some(c) = cause {
                    assert!(
                        text.contains(&c.replace('_', " ")),
                        "{shot}: event {id} ({kind}) has cause {c}, the tooltip says: {text}"
                    );
                    if kind == "reauth.required" {
                        reauth_causes.insert(c);
                    }
                }
                if kind == "token.invalidated" {
                    assert!(text.contains("INVALID_SESSION_ID"), "{text}");
                }
            }
        }
    }
    assert!(
        !reauth_causes.is_empty(),
        "no re-auth event with its cause was shown: {:#?}",
        hovers.iter().map(|h| &h["text"]).collect::<Vec<_>>()
    );
}

/// Each death's cause: the status API gives every death in the window one, the scripted
/// deaths the scripted cause; the timeline draws each death with the API's cause, the legend
/// counts them per cause, `sfkeep events` lists the same, and each scripted death's own tooltip
/// line names its cause.
fn check_death_causes(
    report: &Value,
    demo: &Serve,
    (home, cfg): (&Path, &Path),
    scripted: &[Scripted],
) {
    let doc = get_json(&format!(
        "{}/api/v1/events?profile=fake&window=24h",
        demo.url()
    ));
    let api: std::collections::BTreeMap<i64, Value> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "death" || e["category"] == "reauth")
        .map(|e| (e["id"].as_i64().unwrap(), e["death_cause"].clone()))
        .collect();
    assert!(!api.is_empty(), "no death in {doc}");
    let timeline: Vec<String> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {} gen={} {}",
                e["id"], e["at"], e["category"], e["label"], e["generation"], e["death_cause"]
            )
        })
        .collect();
    let api_dump = format!(
        "{timeline:#?}\nlogins {:#}\noffset {}",
        doc["login_history"], doc["clock_offset_ms"]
    );
    for (id, c) in &api {
        assert!(
            c["cause"].is_string() && c["evidence"].is_string() && c["source"].is_string(),
            "death {id} has no cause: {c}"
        );
    }
    for s in scripted {
        assert!(!s.deaths.is_empty(), "no death scripted as {}", s.cause);
        for id in &s.deaths {
            let c = &api[id];
            assert_eq!(
                c["cause"], s.cause,
                "death {id}, scripted as {}, has the cause {c}; the timeline: {api_dump}",
                s.cause
            );
        }
    }
    let dom = profile_dom(report, "fake");
    let drawn: std::collections::BTreeMap<i64, String> = dom["death_causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_str().unwrap().to_owned()))
        .collect();
    let given: std::collections::BTreeMap<i64, String> = api
        .iter()
        .map(|(id, c)| (*id, c["cause"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        drawn, given,
        "the deaths drawn by cause vs the status API: {api:#?}"
    );
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for c in given.values() {
        *counts.entry(c.clone()).or_default() += 1;
    }
    let legend: std::collections::BTreeMap<String, i64> = dom["legend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l[0].as_str().unwrap().to_owned(), l[1].as_i64().unwrap()))
        .collect();
    assert_eq!(legend, counts, "the legend");
    // `sfkeep events` gives each death the same cause (from what the guardian last read).
    let mut c = sfkeep(home);
    c.arg("--config")
        .arg(cfg)
        .args(["--profile", "fake", "events", "--since", "24h", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let listed: std::collections::BTreeMap<i64, String> = result_of(&out)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| api.contains_key(&e["id"].as_i64().unwrap()))
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["death_cause"]["cause"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, given, "sfkeep events vs the status API: {api_dump}");
    let mut c = sfkeep(home);
    c.arg("--config")
        .arg(cfg)
        .args(["--profile", "fake", "events", "--since", "24h"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    for s in scripted {
        assert!(
            out.contains(&format!("death cause: {}", s.cause)),
            "sfkeep events does not show {}: {out}",
            s.cause
        );
    }
    let focused = report["focused"].as_array().unwrap();
    for s in scripted {
        for id in &s.deaths {
            let f = focused
                .iter()
                .find(|f| f["id"].as_i64() == Some(*id))
                .unwrap_or_else(|| panic!("death {id} was not focused: {focused:?}"));
            let first = f["first"].as_str().unwrap_or_default();
            let words = format!("cause: {}", s.cause.replace('_', " "));
            assert!(
                first.contains(&words) && f["ids"].as_array().unwrap().contains(&json!(id)),
                "death {id}'s tooltip line does not name {words}: {f}"
            );
            assert!(
                first.contains(api[id]["evidence"].as_str().unwrap()),
                "death {id}'s tooltip line does not show the API's evidence: {first}"
            );
        }
    }
}

fn profile_dom<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["dom"]["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no section for {name}: {}", report["dom"]["profiles"]))
}

/// The deaths (a 401 of the integration, a re-auth required; not keep-alives, not doctor's
/// probes) in the audit log at `db` after the point `after` ([`last_id`]): an id above it, of
/// a token at least as new as the newest then (a process that still held an older token, and
/// finds it dead only now, lost it to an earlier cause).
fn deaths_after(db: &Path, (after, generation): (i64, i64)) -> BTreeSet<i64> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT id FROM events WHERE id > ?1 AND origin IS NULL
             AND (generation IS NULL OR generation >= ?2) AND (kind = 'reauth.required'
             OR (kind = 'token.invalidated' AND json_extract(json, '$.api') IS NOT 'keep_alive'))",
        )
        .unwrap();
    st.query_map([after, generation], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The newest event id and the newest token generation in the audit log at `db`.
fn last_id(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT COALESCE(MAX(id), 0), COALESCE(MAX(generation), 0) FROM events",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// The deaths a scripted step caused, and the cause sfkeep must give each.
struct Scripted {
    cause: &'static str,
    deaths: BTreeSet<i64>,
}

/// The demo's history through `sfkeep serve`'s profile, from separate integration processes
/// sharing its token store. Returns the deaths of the tokens the logout elsewhere, the revoke of
/// the app's tokens and the freeze ended, each with the cause it must be given.
fn demo_history(home: &Path, cfg: &Path, org: &Org, s: &Serve, hook: &Receiver) -> Vec<Scripted> {
    let db = audit_db(org);
    let mut scripted = Vec::new();
    let mark = |cause: &'static str, before: (i64, i64), scripted: &mut Vec<Scripted>| {
        let deaths = deaths_after(&db, before);
        let deaths = deaths
            .into_iter()
            .filter(|id| !scripted.iter().any(|s: &Scripted| s.deaths.contains(id)))
            .collect();
        scripted.push(Scripted { cause, deaths });
    };
    let user = org.field("username");
    let client_id = org.field("client_id");
    let step = |what: &str| {
        let code = call(home, cfg, None);
        assert_eq!(code, 0, "the integration's call after {what}");
    };
    step("the start");
    org.advance(2 * 3600 + 60);
    step("an inactivity timeout");
    let before = last_id(&db);
    assert_eq!(
        org.admin_post(&format!("/users/{user}/logout"), json!({})),
        200
    );
    step("a logout elsewhere");
    mark("logged_out_elsewhere", before, &mut scripted);
    let after_logout = last_id(&db);
    assert_eq!(
        org.admin_post(
            "/faults",
            json!({"path_prefix": "/services/data", "status": 503, "count": 2})
        ),
        200
    );
    step("two 503s");
    assert_eq!(
        org.admin_post(
            &format!("/users/{user}/password"),
            json!({"password": "a-new-password-1"})
        ),
        200
    );
    step("a password change");
    // An IP move under "lock sessions to the IP": the call from 127.0.0.2 kills the session
    // the guardian's 127.0.0.1 started, and the other way round; then the lock is lifted.
    assert_eq!(
        org.admin_put(
            "/network",
            json!({"login_ip_ranges": [["127.0.0.1", "127.0.0.2"]], "lock_sessions_to_ip": true})
        ),
        200
    );
    assert_eq!(call(home, cfg, Some("127.0.0.2")), 0);
    assert_eq!(
        org.admin_put(
            "/network",
            json!({"login_ip_ranges": [["127.0.0.1", "127.0.0.2"]], "lock_sessions_to_ip": false})
        ),
        200
    );
    step("an IP move");
    assert_eq!(
        org.admin_post(
            "/faults",
            json!({"path_prefix": "/services/data", "reset": true, "count": 2})
        ),
        200
    );
    step("two connection resets");
    // Deaths between the logout's and the revoke's are not scripted here.
    scripted.push(Scripted {
        cause: "",
        deaths: deaths_after(&db, (after_logout.0, i64::MIN)),
    });
    let before = last_id(&db);
    assert_eq!(
        org.admin_post(&format!("/apps/{client_id}/revoke"), json!({})),
        200
    );
    step("the app's tokens revoked (the JWT fallback carries)");
    mark("app_tokens_revoked", before, &mut scripted);
    let before = last_id(&db);
    assert_eq!(
        org.admin_post(&format!("/users/{user}/freeze"), json!({})),
        200
    );
    assert_ne!(call(home, cfg, None), 0, "a frozen user's call fails");
    // The guardian's own probe finds the session dead and no grant works (the JWT fallback
    // neither: a frozen user cannot log in by any grant); the incident opens with doctor's
    // verdict before the user is unfrozen.
    s.wait_profile("the re-auth incident", 120, |p| {
        p["state"] == "reauth_required"
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let alert = loop {
        let alerts = hook.alerts();
        if let Some(a) = alerts
            .iter()
            .find(|a| a["kind"] == "reauth_required" && a["status"] == "firing")
        {
            break a.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the re-auth alert; alerts {alerts:#?}; the guardian last said {:#}",
            s.profile()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(alert["verdict"], "user_frozen", "{alert}");
    mark("user_frozen", before, &mut scripted);
    assert_eq!(
        org.admin_post(&format!("/users/{user}/unfreeze"), json!({})),
        200
    );
    let mut c = sfkeep(home);
    c.arg("--config")
        .arg(cfg)
        .args(["--profile", "fake", "recover"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    step("recover");
    scripted.retain(|s| !s.cause.is_empty());
    scripted
}

/// A config whose `fake` profile keeps its token in `store_file` (beside the org's store, so
/// both write one audit log): a process that does not share the guardian's store.
fn separate_store_config(home: &Path, org: &Org) -> PathBuf {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let store = v["profiles"]["fake"]["store"]["path"].as_str().unwrap();
    let other = Path::new(store).with_file_name("tokens-other-process.enc");
    let text = text.replace(store, other.to_str().unwrap());
    let path = home.join("other-process.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A copy of the org's `fake` profile named `name`, its token store (and so its audit log) in
/// `dir`, with `extra` keys; `refresh_token_file` replaces its refresh token.
fn profile_copy(org: &Org, name: &str, dir: &Path, extra: &str) -> String {
    let text = std::fs::read_to_string(org.field("profile_file")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let store = v["profiles"]["fake"]["store"]["path"].as_str().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    text.replace("[profiles.fake", &format!("[profiles.{name}"))
        .replace(store, dir.join("tokens.enc").to_str().unwrap())
        .replacen(
            &format!("[profiles.{name}.store]"),
            &format!("{extra}\n[profiles.{name}.store]"),
            1,
        )
}

/// Writes 100,000 events of `profile` spread over the last 23 hours into `db` (which holds
/// the profile's first events, so its store key is known).
fn flood(db: &Path, profile: &str) -> u64 {
    let mut c = rusqlite::Connection::open(db).unwrap();
    let key: String = c
        .query_row(
            "SELECT store_key FROM events WHERE profile = ?1 LIMIT 1",
            [profile],
            |r| r.get(0),
        )
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let tx = c.transaction().unwrap();
    {
        let mut st = tx
            .prepare(
                "INSERT INTO events (at, kind, cause, grant_kind, generation, fingerprint, store_key, profile, json, origin)
                 VALUES (?1, ?2, NULL, 'refresh_token', ?3, NULL, ?4, ?5, ?6, NULL)",
            )
            .unwrap();
        for i in 0..100_000i64 {
            let at = now - 23 * 3_600_000 + i * (23 * 3_600_000 / 100_000);
            let kind = ["api.succeeded", "token.refreshed", "token.invalidated"][(i % 3) as usize];
            let json = json!({"kind": kind, "api": "rest"}).to_string();
            st.execute(rusqlite::params![at, kind, i / 3, key, profile, json])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    100_000
}

#[test]
fn the_status_page_in_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no Chromium (scripts/test installs Debian's chromium)");
        return;
    };
    let _ = std::fs::remove_dir_all(artifacts());

    // demo: the demo's deaths and a frozen user, through the guardian and separate calls.
    let demo_home = tempfile::tempdir().unwrap();
    let demo_org = Org::start(demo_home.path(), 10);
    let (demo_cfg, _cert) = cert_config(demo_home.path(), &demo_org, 30, "");
    let hook = Receiver::start();
    let demo = watch(
        demo_home.path(),
        &demo_cfg,
        "200ms",
        &["--org-check-interval", "1s", "--webhook", &hook.url()],
    );
    demo.wait_fresh(60);
    let scripted = demo_history(demo_home.path(), &demo_cfg, &demo_org, &demo, &hook);
    let demo_logins = org_logins(demo_home.path(), &demo_cfg, &demo_org);
    let demo_db = audit_db(&demo_org);

    // storm: a second process on a store of its own.
    let storm_home = tempfile::tempdir().unwrap();
    let storm_org = Org::start(storm_home.path(), 10);
    let storm_cfg = config(storm_home.path(), &storm_org, "", "");
    let storm = watch(
        storm_home.path(),
        &storm_cfg,
        "200ms",
        &["--org-check-interval", "1s"],
    );
    storm.wait_fresh(60);
    let other = separate_store_config(storm_home.path(), &storm_org);
    assert_eq!(call(storm_home.path(), &other, None), 0);
    let user = storm_org.field("username");
    assert_eq!(
        storm_org.admin_post(&format!("/users/{user}/logout"), json!({})),
        200
    );
    assert_eq!(call(storm_home.path(), &other, None), 0);

    // healthy: calls sharing the guardian's store, and an inactivity timeout.
    let healthy_home = tempfile::tempdir().unwrap();
    let healthy_org = Org::start(healthy_home.path(), 10);
    let healthy_cfg = config(healthy_home.path(), &healthy_org, "", "");
    let healthy = watch(
        healthy_home.path(),
        &healthy_cfg,
        "200ms",
        &["--org-check-interval", "1s"],
    );
    healthy.wait_fresh(60);
    assert_eq!(call(healthy_home.path(), &healthy_cfg, None), 0);
    healthy_org.advance(2 * 3600 + 60);
    assert_eq!(call(healthy_home.path(), &healthy_cfg, None), 0);
    assert_eq!(call(healthy_home.path(), &healthy_cfg, None), 0);

    // bad: LoginHistory refused; 100,000 events; a profile that never got a token; a profile
    // whose audit log cannot be kept (its path is a directory).
    let bad_home = tempfile::tempdir().unwrap();
    let bad_org = Org::start(bad_home.path(), 10);
    assert_eq!(
        bad_org.admin_put(
            &format!("/users/{}/permissions", bad_org.field("username")),
            json!({"unreadable_objects": ["LoginHistory"]})
        ),
        200
    );
    let bogus = bad_home.path().join("bogus_refresh_token");
    std::fs::write(&bogus, "5Aep861-not-a-refresh-token-of-this-org").unwrap();
    let big_dir = bad_home.path().join("big");
    let never_dir = bad_home.path().join("never");
    let empty_dir = bad_home.path().join("empty");
    std::fs::create_dir_all(empty_dir.join("audit.db")).unwrap();
    let mut never = profile_copy(&bad_org, "never", &never_dir, "");
    let rt_line = never
        .lines()
        .find(|l| l.starts_with("refresh_token ="))
        .unwrap()
        .to_owned();
    never = never
        .replace(
            &rt_line,
            &format!("refresh_token = {{ file = {:?} }}", bogus.to_str().unwrap()),
        )
        .replace("fallback_grant = \"jwt_bearer\"\n", "");
    let bad_cfg = bad_home.path().join("sfkeep.toml");
    std::fs::write(
        &bad_cfg,
        [
            profile_copy(&bad_org, "big", &big_dir, ""),
            never,
            profile_copy(&bad_org, "empty", &empty_dir, ""),
        ]
        .join("\n"),
    )
    .unwrap();
    // The big profile's log exists (with its first events) before it is flooded.
    let mut c = sfkeep(bad_home.path());
    c.arg("--config")
        .arg(&bad_cfg)
        .args(["--profile", "big", "api", "GET", "limits"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let flooded = flood(&big_dir.join("audit.db"), "big");
    let bad = Serve::start(
        bad_home.path(),
        &bad_cfg,
        &[
            "--profile",
            "big",
            "--profile",
            "never",
            "--profile",
            "empty",
            "--listen",
            "127.0.0.1:0",
            "--check-interval",
            "200ms",
            "--org-check-interval",
            "1s",
        ],
    );
    wait_for("the bad-input profiles checked", 120, || {
        let st = bad.status();
        let p = &st["profiles"];
        (p[0]["org"]["read_at"].is_i64()
            && p[1]["state"] == "reauth_required"
            && p[2]["org"]["read_at"].is_i64())
        .then_some(())
    });

    settle(&demo, &demo_org, &demo_db);
    settle(&storm, &storm_org, &audit_db(&storm_org));
    settle(&healthy, &healthy_org, &audit_db(&healthy_org));

    let shots = |name: &str| {
        json!([
            {"file": format!("{name}-1280x800.png"), "width": 1280, "height": 800, "full": false, "hover": true},
            {"file": format!("{name}-1280-full.png"), "width": 1280, "height": 800, "full": true},
            {"file": format!("{name}-390-full.png"), "width": 390, "height": 844, "full": true, "hover": true},
        ])
    };
    let pages = json!([
        {"name": "demo", "url": demo.url(), "shots": shots("demo"), "click_windows": true,
         "focus_ids": scripted.iter().flat_map(|s| s.deaths.iter().copied()).collect::<Vec<_>>()},
        {"name": "storm", "url": storm.url(), "shots": shots("storm")},
        {"name": "healthy", "url": healthy.url(), "shots": shots("healthy")},
        {"name": "bad", "url": bad.url(), "shots": shots("bad"), "click_windows": true},
    ]);
    // The demo's audit log must not move while the page is read (the comparison is exact):
    // read it before and after, and browse again if it moved.
    let mut reports = Vec::new();
    for attempt in 0.. {
        let before = all_ids(&demo_db);
        reports = browse(&chromium, &pages);
        if all_ids(&demo_db) == before {
            break;
        }
        assert!(attempt < 3, "the demo's audit log kept moving");
    }
    let urls = [demo.url(), storm.url(), healthy.url(), bad.url()];
    let orgs = [&demo_org, &storm_org, &healthy_org, &bad_org];
    for ((r, url), org) in reports.iter().zip(&urls).zip(orgs) {
        check_clean(r, url, org);
        check_layout(r);
        for f in r["shots"].as_array().unwrap() {
            let f = Path::new(f.as_str().unwrap());
            assert!(
                std::fs::metadata(f).is_ok_and(|m| m.len() > 1000),
                "{}",
                f.display()
            );
        }
    }

    // demo: state and forecast dates as the status API gives them (in the answer the rows
    // were drawn from).
    let r = &reports[0];
    assert!(
        r["status"].is_object(),
        "the status answer the page drew from: {}",
        r["dom"]["status_now"]
    );
    for p in r["status"]["profiles"].as_array().unwrap() {
        let dom = profile_dom(r, p["name"].as_str().unwrap());
        assert_eq!(dom["state"], p["state"], "{dom}");
        let text = r["dom"]["text"].as_str().unwrap();
        for f in p["forecasts"].as_array().unwrap() {
            let shown = dom["forecasts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["kind"] == f["kind"])
                .unwrap_or_else(|| panic!("forecast {} not shown", f["kind"]));
            if f["status"] == "dated" {
                assert_eq!(shown["at"], f["at"], "{shown} vs {f}");
                let day = &f["at_iso"].as_str().unwrap()[..10];
                assert!(
                    shown["text"].as_str().unwrap().contains(day),
                    "{shown} shows {day}"
                );
            }
        }
        assert!(text.contains(p["name"].as_str().unwrap()));
    }
    let dom = profile_dom(r, "fake");
    assert!(
        dom["forecasts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "jwt_certificate_expiry" && f["at"].is_i64()),
        "{dom}"
    );
    // The timeline: exactly one mark per event of the audit log in the window.
    let (from, to) = (dom["from"].as_i64().unwrap(), dom["to"].as_i64().unwrap());
    let marks: Vec<i64> = dom["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_i64().unwrap())
        .collect();
    let unique: BTreeSet<i64> = marks.iter().copied().collect();
    assert_eq!(marks.len(), unique.len(), "one mark per event");
    assert_eq!(unique, audit_ids(&demo_db, "fake", from, to));
    assert!(unique.len() > 20, "{}", unique.len());
    // LoginHistory: the org's rows up to the guardian's last read, each a mark.
    let read_at = dom["login_read_at"].as_i64().unwrap();
    let shown: BTreeSet<(i64, String)> = dom["logins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["at"].as_i64().unwrap(),
                l["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(i64, String)> = demo_logins
        .iter()
        .filter(|(at, _)| *at <= read_at)
        .cloned()
        .collect();
    assert_eq!(shown, expected, "LoginHistory marks");
    assert!(
        expected.iter().any(|(_, s)| s != "Success"),
        "the frozen user's failed logins are there: {expected:?}"
    );
    assert_eq!(dom["state"], "fresh");
    let alerts = hook.alerts();
    assert!(
        alerts.iter().any(|a| a["verdict"] == "user_frozen"),
        "{alerts:?}"
    );
    let demo_dom = profile_dom(&reports[0], "fake");

    // Hovering a mark shows its events in words, each with its cause, inside the screen (on a
    // phone too); marks of one minute overlap, so the tooltip lists every event under the
    // pointer.
    check_hovers(&reports[0], &demo_db);
    check_death_causes(&reports[0], &demo, (demo_home.path(), &demo_cfg), &scripted);
    // The demo's history is one death after another, each healed by one token request (the
    // app's revoked tokens by the refresh token's failure and then the JWT fallback): not a
    // refresh storm. Its IP move is named.
    assert!(
        !demo_dom["patterns"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_storm")),
        "{}",
        demo_dom["patterns_text"]
    );

    // storm and healthy: the patterns panel.
    let storm_dom = profile_dom(&reports[1], "fake");
    assert!(
        storm_dom["patterns"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_storm")),
        "{}",
        storm_dom["timeline_text"]
    );
    assert!(
        reports[1]["dom"]["text"]
            .as_str()
            .unwrap()
            .contains("refresh storm")
    );
    let healthy_dom = profile_dom(&reports[2], "fake");
    assert_eq!(healthy_dom["patterns"], json!([]), "{healthy_dom}");
    assert_eq!(healthy_dom["patterns_none"], true);
    // `sfkeep events --patterns` names the same patterns for the same history.
    for (home, cfg, dom) in [
        (demo_home.path(), &demo_cfg, demo_dom),
        (storm_home.path(), &storm_cfg, storm_dom),
        (healthy_home.path(), &healthy_cfg, healthy_dom),
    ] {
        assert_eq!(
            cli_patterns(home, cfg),
            dom["patterns"],
            "sfkeep events --patterns vs the page"
        );
    }

    // bad: each profile renders and says what is missing.
    let r = &reports[3];
    let big = profile_dom(r, "big");
    assert!(big["total"].as_u64().unwrap() >= flooded, "{big}");
    assert_eq!(
        big["marks"],
        json!([]),
        "counted per bucket, not drawn one by one"
    );
    assert_eq!(big["bucket_sum"], big["total"]);
    assert!(
        big["svg_nodes"].as_u64().unwrap() < 2_000,
        "{}",
        big["svg_nodes"]
    );
    let events = get_json(&format!(
        "{}/api/v1/events?profile=big&window=24h",
        bad.url()
    ));
    assert!(events["events"].is_null());
    assert!(
        events.to_string().len() < 100_000,
        "the aggregated answer is small: {} bytes",
        events.to_string().len()
    );
    let missing: Vec<&str> = big["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        missing
            .iter()
            .any(|m| m.contains("LoginHistory") && m.contains("not supported")),
        "{missing:?}"
    );
    let never = profile_dom(r, "never");
    assert_eq!(never["state"], "reauth_required", "{never}");
    let text = r["dom"]["text"].as_str().unwrap();
    assert!(text.contains("never recorded"), "{text}");
    assert!(
        never["forecasts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["text"].as_str().unwrap().contains("unknown")
                || f["text"].as_str().unwrap().contains("nothing")),
        "{never}"
    );
    let empty = profile_dom(r, "empty");
    assert_eq!(empty["total"], 0, "{empty}");
    assert!(
        empty["timeline_text"]
            .as_str()
            .unwrap()
            .contains("audit log"),
        "{}",
        empty["timeline_text"]
    );
    println!("screenshots in {}", artifacts().display());
}
