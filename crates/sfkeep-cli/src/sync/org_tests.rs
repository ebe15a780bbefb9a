//! The sync against the simulated org, in process: concurrent writers and commit lag, wide
//! pages, a changed field list, exact values, expired cursors. Every test ends by comparing
//! the database with the org field by field, with its own reading of both (not `verify`,
//! which is under test too).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfkeep::client::Client;
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

use super::*;

/// A sync client for `org`: its refresh token, an in-memory store.
fn client(org: &FakeOrg) -> Client {
    let i = org.ready_info();
    let manager = sfkeep::TokenManager::builder(i.login_url.clone())
        .grant(sfkeep::Grant::refresh_token(
            i.client_id.clone(),
            Some(sfkeep::secret::ClientSecret::new(i.client_secret.clone())),
            sfkeep::secret::RefreshToken::new(i.refresh_token.clone()),
        ))
        .without_tracing_sink()
        .build()
        .unwrap();
    Client::new(manager).unwrap()
}

/// The admin API.
async fn admin(org: &FakeOrg, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}/_fake{path}", org.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "admin {path}: {}", r.status());
    r.json().await.unwrap()
}

/// Every live Account as the REST API sends it now, `attributes` dropped, by Id.
async fn org_records(client: &Client, fields: &[&str]) -> BTreeMap<String, Value> {
    let soql = format!("SELECT {} FROM Account", fields.join(", "));
    // Small pages: a page of wide records must stay under the client's body limit.
    let rows = client
        .query(&soql)
        .batch_size(200)
        .collect_all()
        .await
        .unwrap();
    rows.into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("attributes");
            (r["Id"].as_str().unwrap().to_owned(), r)
        })
        .collect()
}

/// Every stored record, by Id, read straight from the file.
fn db_records(path: &Path) -> BTreeMap<String, Value> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c.prepare("SELECT id, record FROM accounts").unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (id, rec) = r.unwrap();
            (id, serde_json::from_str(&rec).unwrap())
        })
        .collect()
}

/// The database equals the org, every field of every record (values as serde_json parses
/// them with `float_roundtrip`: doubles exact, `""` apart from null).
async fn assert_equal(client: &Client, path: &Path, fields: &[&str], context: &str) {
    let org = org_records(client, fields).await;
    let db = db_records(path);
    let org_ids: Vec<&String> = org.keys().collect();
    let db_ids: Vec<&String> = db.keys().collect();
    assert_eq!(db_ids, org_ids, "{context}: the same records");
    for (id, o) in &org {
        assert_eq!(&db[id], o, "{context}: Account {id}");
    }
    let db_handle = BillingDb::open_read_only(path).unwrap();
    let v = verify(client, &db_handle).await.unwrap();
    assert!(v.is_exact(), "{context}: verify disagrees: {v:?}");
    assert_eq!(v.org_records as usize, org.len());
}

const FIELDS: &[&str] = DEFAULT_FIELDS;

fn default_fields() -> Vec<String> {
    DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect()
}

async fn sync(client: &Client, db: &mut BillingDb, opts: &SyncOptions) -> SyncSummary {
    sync_accounts(client, db, opts, |_| {}).await.unwrap()
}

/// A small deterministic generator (xorshift), one per writer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Values a writer sets: empty strings, nulls, doubles at the edges of what round-trips.
fn value_for(rng: &mut Rng, field: &str) -> Value {
    const DOUBLES: &[f64] = &[
        1e-8,
        1.0000000000000002e-8,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        f32::MAX as f64,
        0.1 + 0.2,
        -123456.789,
        1e21,
    ];
    match (field, rng.below(4)) {
        ("AnnualRevenue", 0) => Value::Null,
        ("AnnualRevenue", _) => json!(DOUBLES[rng.below(DOUBLES.len() as u64) as usize]),
        ("Name", 0) => json!(""),
        (_, 0) => Value::Null,
        (_, 1) => json!(""),
        (_, _) => json!(format!("v{} \"q\" é\n{}", rng.next() % 1000, field)),
    }
}

/// One run: a new billing database loaded from `org`, then 4 writers updating, deleting and
/// creating Accounts as fast as the org answers (the org commits every third write 20 ms after
/// its stamp, so later-stamped writes are seen first) while incremental syncs run; then a
/// final sync. With the default look-back the database must equal the org (asserted field by
/// field); with another, the run only reports whether `verify` found it equal.
async fn writers_and_syncs(
    org: &FakeOrg,
    client: &Client,
    seed: u64,
    syncs_done: &AtomicU64,
    look_back: Duration,
) -> bool {
    let ids: Vec<String> = org_records(client, &["Id"]).await.into_keys().collect();
    let ids = Arc::new(std::sync::Mutex::new(ids));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.db");
    let mut db = BillingDb::open(&path).unwrap();
    let opts = SyncOptions::new(default_fields())
        .bulk(Bulk::Off)
        .look_back(look_back);
    sync(client, &mut db, &opts).await;

    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let client = client.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut rng = Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((w + 1) << 32)) | 1);
                for _ in 0..10 {
                    let pick = {
                        let ids = ids.lock().unwrap();
                        ids[rng.below(ids.len() as u64) as usize].clone()
                    };
                    let path = client.data_path(&format!("/sobjects/Account/{pick}"));
                    let r = match rng.below(10) {
                        0 => client.request(reqwest::Method::DELETE, &path).send().await,
                        1 => {
                            let body = json!({"Name": format!("new {w}"), "BillingCity": ""});
                            let accounts = client.data_path("/sobjects/Account");
                            let created = client
                                .request(reqwest::Method::POST, &accounts)
                                .json(&body)
                                .send()
                                .await
                                .unwrap();
                            let id = created.json().unwrap()["id"].as_str().unwrap().to_owned();
                            ids.lock().unwrap().push(id);
                            continue;
                        }
                        _ => {
                            let mut body = serde_json::Map::new();
                            for f in ["Name", "AnnualRevenue", "BillingCity", "Industry"] {
                                if rng.below(2) == 0 {
                                    body.insert(f.into(), value_for(&mut rng, f));
                                }
                            }
                            let body = Value::Object(body);
                            client
                                .request(reqwest::Method::PATCH, &path)
                                .json(&body)
                                .send()
                                .await
                        }
                    };
                    // Another writer may have deleted it first.
                    if let Err(e) = r {
                        assert!(
                            e.to_string().contains("ENTITY_IS_DELETED")
                                || e.to_string().contains("NOT_FOUND"),
                            "{e}"
                        );
                    }
                }
            })
        })
        .collect();
    loop {
        sync(client, &mut db, &opts).await;
        syncs_done.fetch_add(1, Ordering::Relaxed);
        if writers.iter().all(|w| w.is_finished()) {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    // Every writer was answered, so every write is committed.
    let lag = admin(
        org,
        reqwest::Method::GET,
        "/records/Account/commit-lag",
        json!({}),
    )
    .await;
    assert_eq!(lag["pending"], 0, "{lag}");
    sync(client, &mut db, &opts).await;
    if look_back != DEFAULT_LOOK_BACK {
        return verify(client, &db).await.unwrap().is_exact();
    }
    assert_equal(client, &path, FIELDS, &format!("run {seed}")).await;
    true
}

/// Runs of [`writers_and_syncs`] in the default test: sized to keep it well under a minute on
/// a loaded 2-core machine (about 0.5 s a run). `SFKEEP_SYNC_RUNS=100` runs the 100
/// (RELIABILITY.md has the figures).
const DEFAULT_RUNS: u64 = 40;

/// `SFKEEP_SYNC_RUNS`, or [`DEFAULT_RUNS`].
fn runs() -> u64 {
    std::env::var("SFKEEP_SYNC_RUNS")
        .ok()
        .map(|v| v.parse().expect("SFKEEP_SYNC_RUNS is a number of runs"))
        .unwrap_or(DEFAULT_RUNS)
}

/// Every run out of `SFKEEP_SYNC_RUNS` (default [`DEFAULT_RUNS`]), on one org whose records
/// change from run to run. Each run is 4 × 10 writes, a third of them lagging 20 ms; nothing
/// in it waits on a timer race: the writers are answered at their commits and the syncs run
/// until the writers are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_commit_lag_lose_nothing_in_any_run() {
    let runs = runs();
    let started = Instant::now();
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(30))
        .await
        .unwrap();
    let client = client(&org);
    admin(
        &org,
        reqwest::Method::PUT,
        "/records/Account/commit-lag",
        json!({"every": 3, "lag_ms": 20}),
    )
    .await;
    let syncs = AtomicU64::new(0);
    for seed in 1..=runs {
        writers_and_syncs(&org, &client, seed, &syncs, DEFAULT_LOOK_BACK).await;
    }
    eprintln!(
        "{runs} runs out of {runs} equal to the org, {} incremental syncs during the writes, {:.1}s",
        syncs.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// The same runs without the look-back (`--look-back 0s`): how many lose a write. Not a
/// pass/fail property (it depends on timing), so it only prints the count; run it by hand:
/// `cargo test -p sfkeep-cli --bin sfkeep without_the_look_back -- --ignored --nocapture`
/// (RELIABILITY.md has the figure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, printed: runs that lose a write without the look-back"]
async fn without_the_look_back_concurrent_writers_lose_writes() {
    let runs = runs();
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(30))
        .await
        .unwrap();
    let client = client(&org);
    admin(
        &org,
        reqwest::Method::PUT,
        "/records/Account/commit-lag",
        json!({"every": 3, "lag_ms": 20}),
    )
    .await;
    let syncs = AtomicU64::new(0);
    let mut lost = 0;
    for seed in 1..=runs {
        if !writers_and_syncs(&org, &client, seed, &syncs, Duration::ZERO).await {
            lost += 1;
        }
    }
    eprintln!(
        "without the look-back: {lost} of {runs} runs ended with the database unequal to the org"
    );
}

/// Holds a write until it is pending in the org's commit lag (10 s deadline).
async fn until_pending(org: &FakeOrg, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = admin(
            org,
            reqwest::Method::GET,
            "/records/Account/commit-lag",
            json!({}),
        )
        .await;
        if v["pending"] == n {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} pending: {v}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The Salesforce case, deterministic: write A is stamped first but commits ten minutes
/// later; write B, stamped after it, is read by a sync that moves the watermark past A.
/// With the look-back the next sync reads A; without it, A is lost for good (and `verify`
/// says where).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_committed_after_a_later_stamped_one_is_read_by_the_look_back() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(20))
        .await
        .unwrap();
    let client = client(&org);
    let dir = tempfile::tempdir().unwrap();
    let (with, without) = (dir.path().join("with.db"), dir.path().join("without.db"));
    let with_opts = SyncOptions::new(default_fields()).bulk(Bulk::Off);
    let without_opts = with_opts.clone().look_back(Duration::ZERO);
    let mut db_with = BillingDb::open(&with).unwrap();
    let mut db_without = BillingDb::open(&without).unwrap();
    sync(&client, &mut db_with, &with_opts).await;
    sync(&client, &mut db_without, &without_opts).await;

    let ids: Vec<String> = org_records(&client, &["Id"]).await.into_keys().collect();
    let (a, b) = (ids[0].clone(), ids[1].clone());
    admin(
        &org,
        reqwest::Method::PUT,
        "/records/Account/commit-lag",
        json!({"every": 1, "lag_ms": 600_000}),
    )
    .await;
    let first = {
        let client = client.clone();
        let path = client.data_path(&format!("/sobjects/Account/{a}"));
        tokio::spawn(async move {
            let body = json!({"Name": "stamped first, committed last"});
            client
                .request(reqwest::Method::PATCH, &path)
                .json(&body)
                .send()
                .await
                .map(drop)
        })
    };
    until_pending(&org, 1).await;
    admin(
        &org,
        reqwest::Method::PUT,
        "/records/Account/commit-lag",
        json!({"every": 0}),
    )
    .await;
    // B is stamped a second after A, never in A's millisecond.
    admin(
        &org,
        reqwest::Method::POST,
        "/clock/advance",
        json!({"seconds": 1}),
    )
    .await;
    let path_b = client.data_path(&format!("/sobjects/Account/{b}"));
    let second = json!({"Name": "stamped second"});
    client
        .request(reqwest::Method::PATCH, &path_b)
        .json(&second)
        .send()
        .await
        .unwrap();
    for (db, opts) in [(&mut db_with, &with_opts), (&mut db_without, &without_opts)] {
        let s = sync(&client, db, opts).await;
        assert_eq!(s.updated, 1, "only B is visible: {s:?}");
    }
    // A commits (the org's clock reaches its commit time).
    admin(
        &org,
        reqwest::Method::POST,
        "/clock/advance",
        json!({"seconds": 601}),
    )
    .await;
    first.await.unwrap().unwrap();
    for (db, opts) in [(&mut db_with, &with_opts), (&mut db_without, &without_opts)] {
        sync(&client, db, opts).await;
    }
    assert_equal(&client, &with, FIELDS, "with the look-back").await;
    let stored = db_records(&without);
    assert_ne!(
        stored[&a]["Name"], "stamped first, committed last",
        "without the look-back the write is skipped"
    );
    let v = verify(&client, &BillingDb::open_read_only(&without).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (v.stale, v.lost, v.differing, v.extra),
        (1, 0, 0, 0),
        "{v:?}"
    );
    let first = v.first_difference.unwrap();
    assert!(first.contains(&a) && first.contains("Name"), "{first}");
}

/// Sets `body` on every Account in `ids`, eight requests at a time.
async fn patch_all(client: &Client, ids: &[String], body: Value) {
    let body = Arc::new(body);
    for chunk in ids.chunks(8) {
        let calls = chunk.iter().map(|id| {
            let (client, body) = (client.clone(), body.clone());
            let path = client.data_path(&format!("/sobjects/Account/{id}"));
            async move {
                client
                    .request(reqwest::Method::PATCH, &path)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            }
        });
        futures_join_all(calls).await;
    }
}

/// `join_all` without another dependency: the futures run concurrently on the runtime.
async fn futures_join_all<F: std::future::Future + Send + 'static>(fs: impl Iterator<Item = F>)
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

/// A REST page of 2,000 records with a 32,000-character Description each is far over the
/// 64 MiB a response may have: the sync asks for smaller pages and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_70_mib_page_is_read_in_smaller_pages() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(1150))
        .await
        .unwrap();
    let client = client(&org);
    let ids: Vec<String> = org_records(&client, &["Id"]).await.into_keys().collect();
    // 32,000 two-byte characters: 64,000 bytes a record, 1,150 records ≈ 70 MiB in one page.
    let wide: String = "é".repeat(32_000);
    patch_all(&client, &ids, json!({"Description": wide})).await;
    let fields = ["Id", "Name", "Description", "SystemModstamp"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.db");
    let mut db = BillingDb::open(&path).unwrap();
    let opts = SyncOptions::new(fields.map(String::from).to_vec()).bulk(Bulk::Off);
    let s = sync(&client, &mut db, &opts).await;
    assert_eq!(s.inserted, 1150, "{s:?}");
    assert_eq!(s.batch_size, Some(1000), "halved once: {s:?}");
    drop(db);
    assert_equal(&client, &path, &fields, "wide records").await;
}

/// A field added to `--fields` reaches every row, not only the rows that change later, by
/// the REST path and the Bulk path; a field removed leaves every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_field_list_is_backfilled_into_every_row() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(500))
        .await
        .unwrap();
    let client = client(&org);
    let dir = tempfile::tempdir().unwrap();
    for bulk in [Bulk::Off, Bulk::On] {
        let path = dir.path().join(format!("{bulk:?}.db"));
        let mut db = BillingDb::open(&path).unwrap();
        let before = ["Id", "Name", "SystemModstamp"];
        let opts = SyncOptions::new(before.map(String::from).to_vec()).bulk(bulk);
        sync(&client, &mut db, &opts).await;
        admin(
            &org,
            reqwest::Method::POST,
            "/records/Account/touch",
            json!({"count": 5}),
        )
        .await;
        let after = ["Id", "Name", "Industry", "AnnualRevenue", "SystemModstamp"];
        let opts = SyncOptions::new(after.map(String::from).to_vec()).bulk(bulk);
        let mut phases = Vec::new();
        let s = sync_accounts(&client, &mut db, &opts, |p| phases.push(p.phase))
            .await
            .unwrap();
        assert_eq!(s.backfilled_fields, ["Industry", "AnnualRevenue"], "{s:?}");
        assert_eq!(s.backfilled_rows, 500, "{bulk:?}: {s:?}");
        assert!(
            phases.contains(&Phase::Backfill {
                added: vec!["Industry".into(), "AnnualRevenue".into()]
            }),
            "{phases:?}"
        );
        let mut recorded = db.state().unwrap().fields.unwrap();
        recorded.sort();
        let mut expected = after.map(String::from).to_vec();
        expected.sort();
        assert_eq!(recorded, expected);
        assert_equal(&client, &path, &after, &format!("added, {bulk:?}")).await;
        // The same list again: no backfill.
        let s = sync(&client, &mut db, &opts).await;
        assert!(
            s.backfilled_fields.is_empty() && s.backfilled_rows == 0,
            "{s:?}"
        );
        // Fewer fields: every row is rewritten without them.
        let fewer = ["Id", "Industry", "SystemModstamp"];
        let opts = SyncOptions::new(fewer.map(String::from).to_vec()).bulk(bulk);
        let s = sync(&client, &mut db, &opts).await;
        assert_eq!(s.backfilled_rows, 500, "{s:?}");
        assert_equal(&client, &path, &fewer, &format!("removed, {bulk:?}")).await;
    }
}

/// Empty strings stay apart from nulls, and doubles at the edges of the format round-trip,
/// through a Bulk load, a REST load and incremental passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_strings_and_extreme_doubles_are_stored_exactly_on_every_path() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(60))
        .await
        .unwrap();
    let client = client(&org);
    let ids: Vec<String> = org_records(&client, &["Id"]).await.into_keys().collect();
    let values = [
        json!({"Name": "", "BillingCity": "", "Industry": null, "AnnualRevenue": 1e-8}),
        json!({"BillingCity": null, "AccountNumber": "", "AnnualRevenue": 1.0000000000000002e-8}),
        json!({"AnnualRevenue": 1.7976931348623157e308, "Industry": ""}),
        json!({"AnnualRevenue": 5e-324}),
        json!({"AnnualRevenue": f32::MAX as f64}),
        json!({"AnnualRevenue": 0.30000000000000004}),
        json!({"AnnualRevenue": -0.0, "Name": "\"quoted\", with comma\nand line"}),
    ];
    for (id, v) in ids.iter().zip(&values) {
        patch_all(&client, std::slice::from_ref(id), v.clone()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = Vec::new();
    for bulk in [Bulk::On, Bulk::Off] {
        let path = dir.path().join(format!("{bulk:?}.db"));
        let mut db = BillingDb::open(&path).unwrap();
        let opts = SyncOptions::new(default_fields()).bulk(bulk);
        sync(&client, &mut db, &opts).await;
        assert_equal(&client, &path, FIELDS, &format!("load, {bulk:?}")).await;
        dbs.push((path, db, opts));
    }
    // The same values written again, swapped between records: incremental passes.
    for (id, v) in ids.iter().rev().zip(&values) {
        patch_all(&client, std::slice::from_ref(id), v.clone()).await;
    }
    for (path, db, opts) in &mut dbs {
        sync(&client, db, opts).await;
        assert_equal(&client, path, FIELDS, "incremental").await;
    }
    let stored = db_records(&dbs[0].0);
    assert_eq!(stored[&ids[0]]["BillingCity"], "");
    assert_eq!(stored[&ids[1]]["BillingCity"], Value::Null);
}

/// A cursor that expires between two pages: the sync queries again from the newest record it
/// has, and ends with every record. One that keeps expiring without getting further stops the
/// run with a retryable error, the pages before committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_is_queried_again() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(4500))
        .await
        .unwrap();
    let client = client(&org);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let mut db = BillingDb::open(&path).unwrap();
    let base = org.base_url().to_owned();
    // After each page handed to the database: the org's clock moves 2 days, so the cursor is
    // gone when the next page is asked for.
    // (A blocking call from the progress callback, on a thread of its own: the org keeps
    // serving on the runtime's workers meanwhile.)
    let expire = move || {
        let base = base.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let r = reqwest::Client::new()
                    .post(format!("{base}/_fake/clock/advance"))
                    .json(&json!({"seconds": 2 * 86_400 + 1}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            })
        })
        .join()
        .unwrap()
    };
    let opts = SyncOptions::new(default_fields()).bulk(Bulk::Off);
    let mut expiries = 0;
    let s = sync_accounts(&client, &mut db, &opts, |_| {
        if expiries < 1 {
            expiries += 1;
            expire();
        }
    })
    .await
    .unwrap();
    assert_eq!(s.inserted, 4500, "{s:?}");
    drop(db);
    assert_equal(&client, &path, FIELDS, "after an expired cursor").await;

    // A look-back so long that every new query starts at the first record again: it never
    // gets further, and the run stops after three tries with the first pages committed.
    let path = dir.path().join("stuck.db");
    let mut db = BillingDb::open(&path).unwrap();
    let opts = opts.look_back(Duration::from_secs(1000 * 86_400));
    sync(&client, &mut db, &opts).await;
    admin(
        &org,
        reqwest::Method::POST,
        "/records/Account/touch",
        json!({"count": 4500}),
    )
    .await;
    let e = sync_accounts(&client, &mut db, &opts, |_| expire())
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::CursorExpired { restarts: 3 }), "{e}");
    assert!(e.is_retryable());
}
