//! The billing sync and the demo, through the real binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Org, result_of, run, sfkeep};
use rusqlite::Connection;

/// Every (Id, SystemModstamp) of the org's Accounts, read with the org's own token.
fn org_accounts(home: &std::path::Path, org: &Org) -> Vec<(String, String)> {
    let mut c = sfkeep(home);
    c.args(["token", "--json", "--config"])
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = result_of(&out);
    let token = t["access_token"].as_str().unwrap().to_owned();
    let base = t["instance_url"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut next =
            Some("/services/data/v59.0/query?q=SELECT+Id,+SystemModstamp+FROM+Account".to_owned());
        let mut all = Vec::new();
        while let Some(path) = next.take() {
            let v: serde_json::Value = http
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for r in v["records"].as_array().unwrap() {
                all.push((
                    r["Id"].as_str().unwrap().to_owned(),
                    r["SystemModstamp"].as_str().unwrap().to_owned(),
                ));
            }
            next = v["nextRecordsUrl"].as_str().map(str::to_owned);
        }
        all.sort();
        all
    })
}

fn db_accounts(db: &std::path::Path) -> (Vec<(String, String)>, i64) {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT id, system_modstamp FROM accounts ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    (rows, n)
}

fn sync_cmd(home: &std::path::Path, org: &Org, db: &std::path::Path) -> std::process::Command {
    let mut c = sfkeep(home);
    c.args(["sync", "accounts", "--to"])
        .arg(format!("sqlite:{}", db.display()))
        .arg("--config")
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"]);
    c
}

#[test]
fn sync_killed_at_random_points_resumes_to_an_exact_copy() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 6000);
    let db = h.join("billing.db");
    for round in 0..20u64 {
        // Kill after `k` progress lines (0 = as soon as it started), plus a few hundred
        // microseconds, so the kill lands at different points of a page's transaction.
        let k = round % 4;
        let mut child = sync_cmd(h, &org, &db)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for _ in 0..k {
            if lines.next().is_none() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(fastrand_like(round) % 800));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // New data keeps arriving between runs.
        assert_eq!(
            org.admin_post("/records/Account/touch", serde_json::json!({"count": 150})),
            200
        );
    }
    let (code, out, err) = run(sync_cmd(h, &org, &db));
    assert_eq!(code, 0, "{out}{err}");
    let (rows, n) = db_accounts(&db);
    assert_eq!(n as usize, rows.len(), "no duplicates");
    assert_eq!(rows, org_accounts(h, &org), "the billing DB equals the org");
}

fn fastrand_like(seed: u64) -> u64 {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    x ^= x >> 33;
    x
}

#[test]
fn a_field_that_does_not_exist_is_named_in_the_error() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let db = h.join("billing.db");
    let mut c = sync_cmd(h, &org, &db);
    c.args(["--fields", "Name,NoSuchField__c"]);
    let (code, _out, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no field `NoSuchField__c`") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!db.exists(), "checked before the database is even created");
    // On a database that has rows: refused the same way, the file untouched.
    let (code, _, err) = run(sync_cmd(h, &org, &db));
    assert_eq!(code, 0, "{err}");
    checkpoint(&db);
    let before = std::fs::read(&db).unwrap();
    let mut c = sync_cmd(h, &org, &db);
    c.args(["--fields", "Name,NoSuchField__c"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

/// Moves everything in the WAL into the main file, so its bytes say what the database holds.
fn checkpoint(db: &std::path::Path) {
    Connection::open(db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

/// A database from a newer sfkeep, or whose sync state is damaged: refused, exit 5, nothing
/// written (the bytes of the file are the same after).
#[test]
fn a_newer_or_damaged_database_is_refused_untouched() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 30);
    for (name, damage, says) in [
        (
            "newer.db",
            "UPDATE sfkeep_meta SET value = '3' WHERE key = 'schema_version'",
            "newer than this sfkeep understands",
        ),
        (
            "stamp.db",
            "UPDATE watermark SET system_modstamp = 'soon'",
            "the sync state is damaged (the watermark `soon` is not a SystemModstamp)",
        ),
        (
            "fields.db",
            "UPDATE watermark SET fields = '{'",
            "the sync state is damaged",
        ),
        (
            "gone.db",
            "DROP TABLE watermark",
            "the watermark table is missing",
        ),
    ] {
        let db = h.join(name);
        let (code, _, err) = run(sync_cmd(h, &org, &db));
        assert_eq!(code, 0, "{err}");
        Connection::open(&db)
            .unwrap()
            .execute_batch(damage)
            .unwrap();
        checkpoint(&db);
        let before = std::fs::read(&db).unwrap();
        for verify in [false, true] {
            let mut c = sync_cmd(h, &org, &db);
            if verify {
                c.arg("--verify");
            }
            let (code, _, err) = run(c);
            assert_eq!(code, 5, "{name}: {err}");
            assert!(err.contains(says), "{name}: {err}");
            assert!(
                err.contains("nothing was changed"),
                "{name}: says so: {err}"
            );
        }
        assert_eq!(std::fs::read(&db).unwrap(), before, "{name} untouched");
    }
}

/// Two syncs on one database: while one writes, the other is refused at once with a clear
/// message and exit 4, writing nothing; afterwards the database equals the org.
#[test]
fn a_second_sync_on_the_same_database_is_refused_while_the_first_writes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 6000);
    let db = h.join("billing.db");
    let mut first = sync_cmd(h, &org, &db);
    first.args(["--bulk", "off"]);
    let mut first = first
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Its first progress line: it holds the database and has committed a page.
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains("synced 2000/6000"), "{line}");
    // Held there (SIGSTOP), it cannot finish before the second one tries, however slow the
    // machine.
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &first.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let (code, out, err) = run(sync_cmd(h, &org, &db));
    signal("-CONT");
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.contains("another sfkeep sync is writing to") && err.contains("this run did nothing"),
        "{err}"
    );
    for _ in lines {}
    assert!(first.wait().unwrap().success());
    // New changes, then the refused run again: it proceeds now.
    assert_eq!(
        org.admin_post("/records/Account/touch", serde_json::json!({"count": 100})),
        200
    );
    let (code, _, err) = run(sync_cmd(h, &org, &db));
    assert_eq!(code, 0, "{err}");
    let mut c = sync_cmd(h, &org, &db);
    c.arg("--verify");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified 6000 Accounts × 7 fields"), "{out}");
}

/// Syncs started together on a new file (the race that used to fail with "table sfkeep_meta
/// already exists"): each one either syncs or is refused as busy, never anything else, and
/// the database ends equal to the org.
#[test]
fn syncs_started_together_on_a_new_file_never_trip_over_each_other() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 300);
    for round in 0..5 {
        let db = h.join(format!("new-{round}.db"));
        let children: Vec<_> = (0..3)
            .map(|_| {
                sync_cmd(h, &org, &db)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut ok = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => ok += 1,
                Some(4) => assert!(err.contains("another sfkeep sync is writing"), "{err}"),
                other => panic!("round {round}: exit {other:?}: {err}"),
            }
        }
        assert!(ok >= 1, "round {round}: one of them syncs");
        let mut c = sync_cmd(h, &org, &db);
        c.arg("--verify");
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "round {round}: {out}{err}");
    }
}

#[test]
fn a_database_from_another_tool_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 10);
    let db = h.join("other.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER);")
        .unwrap();
    let (code, _out, err) = run(sync_cmd(h, &org, &db));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("not a sfkeep billing database"), "{err}");
}

#[test]
fn the_demo_heals_every_cause_and_loses_nothing() {
    let home = tempfile::tempdir().unwrap();
    let mut c = sfkeep(home.path());
    c.args(["demo", "--accounts", "3000", "--changes", "100", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = result_of(&out);
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["stale"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["records_in_org"], report["records_in_billing_db"]);
    assert_eq!(
        report["verified_fields"], 7,
        "checked field by field: {report}"
    );
    assert_eq!(report["first_difference"], serde_json::Value::Null);
    // The timeline's counts are the rows each step changed, not what the look-back re-read.
    let synced: Vec<u64> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["synced"].as_u64().unwrap())
        .collect();
    assert_eq!(synced[0], 3000, "{synced:?}");
    assert!(
        synced[1..].iter().all(|n| *n == 100 || *n == 0),
        "{synced:?}"
    );
    assert_eq!(report["invalid_session_errors_seen_by_integration"], 0);
    assert!(
        report["naive_client_first_failure"]
            .as_str()
            .is_some_and(|s| s.contains("INVALID_SESSION_ID"))
    );
    let causes: Vec<&str> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cause"].as_str().unwrap())
        .collect();
    for c in [
        "session_timeout",
        "logged_out_elsewhere",
        "password_changed",
        "ip_restricted",
        "app_tokens_revoked",
    ] {
        assert!(causes.contains(&c), "{causes:?}");
    }
    // A frozen user's token requests are refused as a plain "authentication failure"
    // (docs/salesforce-wire.md §2); the cause column names what `sfkeep doctor` names (user_frozen,
    // tests/doctor.rs), not the token error's class.
    let frozen = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["event"] == "user frozen")
        .unwrap_or_else(|| panic!("no frozen-user step: {report}"));
    assert_eq!(frozen["cause"], "user_frozen", "{report}");
    assert!(
        err.contains("fix: An admin must unfreeze the integration user"),
        "{err}"
    );
    // The timeline is readable text on stderr.
    assert!(err.contains("admin revoked the app's tokens"), "{err}");
    // The fallback carrying the integration is said, not only healed.
    assert!(
        err.contains("sfkeep warns: the JWT fallback carries the integration"),
        "{err}"
    );
}

#[test]
fn query_returns_every_record_when_the_session_dies_between_pages() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 4500);
    // The next page (and only it) answers 401 INVALID_SESSION_ID, as after a logout.
    assert_eq!(
        org.admin_post(
            "/faults",
            serde_json::json!({"path_prefix": "/services/data/v59.0/query/", "status": 401, "count": 1})
        ),
        200
    );
    let mut c = sfkeep(h);
    c.args([
        "query",
        "SELECT Id, Name FROM Account",
        "--json",
        "--config",
    ])
    .arg(org.field("profile_file"))
    .args(["--profile", "fake"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let result = result_of(&out);
    let records = result["records"].as_array().unwrap();
    let ids: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4500, "every record, none twice");
    assert_eq!(records.len(), 4500);
    assert_eq!(result["total_size"], 4500);
}

#[test]
fn an_initial_load_through_bulk_then_incremental_passes_equal_the_org() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 4500);
    let db = h.join("billing.db");
    let mut c = sync_cmd(h, &org, &db);
    c.args(["--bulk", "on", "--json"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = result_of(&out);
    assert_eq!(summary["fetched"], 4500);
    assert_eq!(
        org.admin_post("/records/Account/touch", serde_json::json!({"count": 300})),
        200
    );
    let mut c = sync_cmd(h, &org, &db);
    c.arg("--json");
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = result_of(&out);
    assert_eq!(summary["updated"], 300, "{summary}");
    assert_eq!(summary["inserted"], 0, "{summary}");
    let (rows, n) = db_accounts(&db);
    assert_eq!(n as usize, rows.len());
    assert_eq!(rows, org_accounts(h, &org));
}

/// Each row's stored record JSON, by id.
fn db_records(db: &std::path::Path) -> Vec<(String, String)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT id, record FROM accounts ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A Bulk load and a REST load of the same org store the same typed records (CSV text turned
/// back into numbers by the describe), and a record deleted in Salesforce leaves the billing DB
/// on the next incremental pass (queryAll sees it, marked IsDeleted).
#[test]
fn bulk_and_rest_store_the_same_records_and_deletes_reach_the_billing_db() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let org = Org::start(h, 1200);
    let (bulk_db, rest_db) = (h.join("bulk.db"), h.join("rest.db"));
    for (db, mode) in [(&bulk_db, "on"), (&rest_db, "off")] {
        let mut c = sync_cmd(h, &org, db);
        c.args(["--bulk", mode]);
        let (code, _, err) = run(c);
        assert_eq!(code, 0, "{err}");
    }
    let (bulk, rest) = (db_records(&bulk_db), db_records(&rest_db));
    assert_eq!(bulk.len(), 1200);
    assert_eq!(bulk, rest, "the same record JSON whichever API carried it");
    let first: serde_json::Value = serde_json::from_str(&bulk[0].1).unwrap();
    assert!(
        first["AnnualRevenue"].is_number() || first["AnnualRevenue"].is_null(),
        "{first}"
    );

    // Delete two accounts in Salesforce.
    for (id, _) in &bulk[..2] {
        let mut c = sfkeep(h);
        c.args([
            "api",
            "DELETE",
            &format!("sobjects/Account/{id}"),
            "--config",
        ])
        .arg(org.field("profile_file"))
        .args(["--profile", "fake"]);
        let (code, _, err) = run(c);
        assert_eq!(code, 0, "{err}");
    }
    for db in [&bulk_db, &rest_db] {
        let mut c = sync_cmd(h, &org, db);
        c.arg("--json");
        let (code, out, err) = run(c);
        assert_eq!(code, 0, "{err}");
        let summary: serde_json::Value = result_of(&out);
        assert_eq!(summary["deleted"], 2, "{summary}");
        let (rows, n) = db_accounts(db);
        assert_eq!(n, 1198);
        assert_eq!(rows, org_accounts(h, &org));
        assert!(
            !db_records(db).iter().any(|(_, r)| r.contains("IsDeleted")),
            "IsDeleted was not asked for, so it is not stored"
        );
    }
}
