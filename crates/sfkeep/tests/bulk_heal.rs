//! Bulk API 2.0 ingest jobs and Bulk API 1.0 jobs heal across a session death between any two
//! steps, and never load a batch twice — not even when an answer is lost after the org
//! committed (issue #20 item 3). Against the simulated org; counts from `/_fake/stats` and
//! from the org's records.

#[path = "manager/support.rs"]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sfkeep::client::{Client, IngestOperation};
use sfkeep::clock::ManualClock;
use support::Org;

/// A client holding a live session (one refresh-token request), so a death before its first
/// step has a session to end.
async fn client(org: &Org) -> Client {
    let clock = ManualClock::starting_now_offset(0);
    let m = org.manager(org.refresh_grant(), &clock).build().unwrap();
    m.token().await.unwrap();
    Client::new(m).unwrap()
}

/// How many Accounts the org holds with a name starting `prefix`.
async fn count(c: &Client, prefix: &str) -> u64 {
    let q = format!("SELECT COUNT() FROM Account WHERE Name LIKE '{prefix}%'");
    let path = c.data_path(&format!(
        "/query?q={}",
        url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    ));
    c.get_json(&path).await.unwrap()["totalSize"]
        .as_u64()
        .unwrap()
}

fn csv(prefix: &str, n: usize) -> String {
    let mut s = String::from("Name,BillingCity\n");
    for i in 0..n {
        s.push_str(&format!("{prefix} {i},Paris\n"));
    }
    s
}

/// Ends the integration user's sessions (a UI logout elsewhere) and returns the refresh-token
/// requests counted so far.
async fn kill(org: &Org) -> u64 {
    let before = org.token_requests("refresh_token").await;
    org.logout().await;
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_ingest_heals_a_death_between_any_two_steps() {
    // Steps: create, upload, close, wait, results. A death before each of them.
    for death_before in 0..5 {
        let org = Org::start(Duration::from_secs(7200)).await;
        let c = client(&org).await;
        let prefix = format!("Heal2 {death_before}");
        let mut deaths = 0u64;
        let at = |step: usize| step == death_before;
        if at(0) {
            kill(&org).await;
            deaths += 1;
        }
        let job = c
            .create_ingest_job("Account", IngestOperation::Insert)
            .await
            .unwrap();
        if at(1) {
            kill(&org).await;
            deaths += 1;
        }
        job.upload(csv(&prefix, 3)).await.unwrap();
        if at(2) {
            kill(&org).await;
            deaths += 1;
        }
        job.close().await.unwrap();
        if at(3) {
            kill(&org).await;
            deaths += 1;
        }
        let outcome = job.wait().await.unwrap();
        if at(4) {
            kill(&org).await;
            deaths += 1;
        }
        let ok = job.successful_results().await.unwrap();
        assert_eq!(
            (outcome.state.as_str(), outcome.processed, outcome.failed),
            ("JobComplete", 3, 0),
            "death before step {death_before}"
        );
        assert_eq!(String::from_utf8_lossy(&ok).lines().count(), 4);
        assert_eq!(count(&c, &prefix).await, 3, "each record exactly once");
        // One token request to start, one per death.
        let stats = org.stats().await;
        assert_eq!(
            stats["token_requests"]["refresh_token"],
            1 + deaths,
            "death before step {death_before}: {stats}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk2_upload_and_close_whose_answers_are_lost_load_once() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    let job = c
        .create_ingest_job("Account", IngestOperation::Insert)
        .await
        .unwrap();
    // The org commits the upload, then the connection drops before the answer; then the same
    // for the close.
    let batches = format!("/services/data/v59.0/jobs/ingest/{}/batches", job.id());
    org.post(
        "/faults",
        json!({"path_prefix": batches, "reset_after": true, "count": 1}),
    )
    .await;
    job.upload(csv("Lost2", 4)).await.unwrap();
    let close = format!("/services/data/v59.0/jobs/ingest/{}", job.id());
    org.post(
        "/faults",
        json!({"path_prefix": close, "reset_after": true, "count": 1}),
    )
    .await;
    job.close().await.unwrap();
    let outcome = job.wait().await.unwrap();
    assert_eq!((outcome.processed, outcome.failed), (4, 0));
    assert_eq!(count(&c, "Lost2").await, 4, "loaded once");

    // A whole ingest in one call, upsert by external id.
    let upsert = "ExtId__c,Name\nEXT-000001,Renamed By Bulk\nUP-NEW-1,Upserted New\n";
    let outcome = c
        .bulk_ingest(
            "Account",
            IngestOperation::Upsert {
                external_id_field: "ExtId__c".into(),
            },
            upsert,
        )
        .await
        .unwrap();
    assert_eq!((outcome.processed, outcome.failed), (2, 0), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk1_job_heals_a_death_between_any_two_steps() {
    // Steps: create, add batch, batch status, batch results, close, job state.
    for death_before in 0..6 {
        let org = Org::start(Duration::from_secs(7200)).await;
        let c = client(&org).await;
        let prefix = format!("Heal1 {death_before}");
        let mut deaths = 0u64;
        let at = |step: usize| step == death_before;
        if at(0) {
            kill(&org).await;
            deaths += 1;
        }
        let mut job = c.create_bulk1_job("Account", "insert", None).await.unwrap();
        if at(1) {
            kill(&org).await;
            deaths += 1;
        }
        let batch = job.add_batch(csv(&prefix, 2)).await.unwrap();
        if at(2) {
            kill(&org).await;
            deaths += 1;
        }
        let done = job.wait_batch(&batch).await.unwrap();
        if at(3) {
            kill(&org).await;
            deaths += 1;
        }
        let results = job.batch_results(&batch).await.unwrap();
        if at(4) {
            kill(&org).await;
            deaths += 1;
        }
        job.close().await.unwrap();
        if at(5) {
            kill(&org).await;
            deaths += 1;
        }
        assert_eq!(job.state().await.unwrap(), "Closed");
        assert_eq!(
            (done.state.as_str(), done.processed, done.failed),
            ("Completed", 2, 0)
        );
        let text = String::from_utf8_lossy(&results);
        assert!(
            text.starts_with("\"Id\",\"Success\",\"Created\",\"Error\""),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(count(&c, &prefix).await, 2, "each record exactly once");
        assert_eq!(job.batches().len(), 1);
        let stats = org.stats().await;
        assert_eq!(
            stats["token_requests"]["refresh_token"],
            1 + deaths,
            "death before step {death_before}: {stats}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk1_batch_whose_answer_is_lost_is_found_not_resent() {
    let org = Org::start(Duration::from_secs(7200)).await;
    let c = client(&org).await;
    let mut job = c.create_bulk1_job("Account", "insert", None).await.unwrap();
    let first = job.add_batch(csv("Lost1 a", 2)).await.unwrap();
    let path = format!("/services/async/59.0/job/{}/batch", job.id());
    org.post(
        "/faults",
        json!({"path_prefix": path, "reset_after": true, "count": 1}),
    )
    .await;
    let second = job.add_batch(csv("Lost1 b", 3)).await.unwrap();
    assert_ne!(first, second);
    for b in [&first, &second] {
        assert_eq!(job.wait_batch(b).await.unwrap().state, "Completed");
    }
    assert_eq!(count(&c, "Lost1 a").await, 2);
    assert_eq!(
        count(&c, "Lost1 b").await,
        3,
        "the lost batch was not sent again"
    );
    let listed: Value = json!(job.batches());
    assert_eq!(listed, json!([first, second]));

    // A query job's results arrive as one CSV.
    let mut q = c.create_bulk1_job("Account", "query", None).await.unwrap();
    let batch = q
        .add_batch("SELECT Id, Name FROM Account WHERE Name LIKE 'Lost1%'")
        .await
        .unwrap();
    q.wait_batch(&batch).await.unwrap();
    let rows = q.batch_results(&batch).await.unwrap();
    let text = String::from_utf8_lossy(&rows);
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.starts_with("\"Id\",\"Name\""), "{text}");
}
