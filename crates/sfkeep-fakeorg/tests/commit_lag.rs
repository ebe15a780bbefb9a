//! The commit-lag mode (`/_fake/records/Account/commit-lag`) and cursor expiry: what an
//! incremental reader of Salesforce must survive, observed over HTTP as a client sees it.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;

async fn patch(org: &sfkeep_fakeorg::FakeOrg, tok: &str, id: &str, body: Value) -> u16 {
    spawn_write(org, tok, reqwest::Method::PATCH, id, Some(body))
        .await
        .unwrap()
}

/// Sends `method` to Account `id` (with `body`, if any) on a task of its own: a lagged write is
/// answered only when it commits. Resolves to the status.
fn spawn_write(
    org: &sfkeep_fakeorg::FakeOrg,
    tok: &str,
    method: reqwest::Method,
    id: &str,
    body: Option<Value>,
) -> tokio::task::JoinHandle<u16> {
    let url = format!(
        "{}/services/data/v59.0/sobjects/Account/{id}",
        org.base_url()
    );
    let tok = tok.to_owned();
    tokio::spawn(async move {
        let mut request = client().request(method, url).bearer_auth(&tok);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status().as_u16()
    })
}

async fn commit_lag(org: &sfkeep_fakeorg::FakeOrg) -> Value {
    let (s, v) = admin(
        org,
        reqwest::Method::GET,
        "/records/Account/commit-lag",
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Polls until `pending` writes are waiting to commit (10 s deadline).
async fn until_pending(org: &sfkeep_fakeorg::FakeOrg, pending: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = commit_lag(org).await;
        if v["pending"] == pending {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pending never reached {pending}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_lagged_write_is_seen_after_a_later_stamped_one_and_answered_at_its_commit() {
    let org = org().await;
    let tok = access_token(&org).await;
    let rows = records(
        &org,
        &tok,
        "SELECT Id, Name FROM Account ORDER BY Id LIMIT 2",
    )
    .await;
    let (a, b) = (
        rows[0]["Id"].as_str().unwrap().to_owned(),
        rows[1]["Id"].as_str().unwrap().to_owned(),
    );
    // Every write lags ten minutes of org time.
    let v = put_admin(
        &org,
        "/records/Account/commit-lag",
        json!({"every": 1, "lag_ms": 600_000}),
    )
    .await;
    assert_eq!(v, json!({"every": 1, "lag_ms": 600_000, "pending": 0}));
    let first = spawn_write(
        &org,
        &tok,
        reqwest::Method::PATCH,
        &a,
        Some(json!({"Name": "written first"})),
    );
    until_pending(&org, 1).await;
    // Off again: the next write commits at once, with a later stamp.
    put_admin(&org, "/records/Account/commit-lag", json!({"every": 0})).await;
    assert_eq!(
        patch(&org, &tok, &b, json!({"Name": "written second"})).await,
        204
    );

    let q = format!("SELECT Id, Name, SystemModstamp FROM Account WHERE Id IN ('{a}', '{b}')");
    let seen = records(&org, &tok, &q).await;
    let by_id = |rows: &[Value], id: &str| {
        rows.iter()
            .find(|r| r["Id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {rows:?}"))
    };
    assert_eq!(by_id(&seen, &b)["Name"], "written second");
    assert_eq!(
        by_id(&seen, &a)["Name"],
        rows[0]["Name"],
        "the first write is not visible before it commits"
    );
    assert!(!first.is_finished(), "its writer is not answered yet");

    // Ten minutes later (org time) it is committed, stamped before the second write.
    post_admin(&org, "/clock/advance", json!({"seconds": 601})).await;
    assert_eq!(first.await.unwrap(), 204);
    let seen = records(&org, &tok, &q).await;
    let (ra, rb) = (by_id(&seen, &a), by_id(&seen, &b));
    assert_eq!(ra["Name"], "written first");
    assert!(
        ra["SystemModstamp"].as_str() < rb["SystemModstamp"].as_str(),
        "{ra} was stamped before {rb}, and seen after it"
    );
    assert_eq!(commit_lag(&org).await["pending"], 0);
}

#[tokio::test]
async fn a_lagged_write_commits_on_its_own_and_a_second_write_to_its_record_waits_for_it() {
    let org = org().await;
    let tok = access_token(&org).await;
    let id = records(&org, &tok, "SELECT Id FROM Account LIMIT 1").await[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    put_admin(
        &org,
        "/records/Account/commit-lag",
        json!({"every": 2, "lag_ms": 100}),
    )
    .await;
    // Write 1 commits at once; write 2 lags 100 ms and is answered when it is visible.
    assert_eq!(patch(&org, &tok, &id, json!({"Name": "one"})).await, 204);
    assert_eq!(patch(&org, &tok, &id, json!({"Name": "two"})).await, 204);
    let q = format!("SELECT Name FROM Account WHERE Id = '{id}'");
    assert_eq!(records(&org, &tok, &q).await[0]["Name"], "two");
    // A delete stays invisible while it lags; an update of the same record commits it first.
    put_admin(
        &org,
        "/records/Account/commit-lag",
        json!({"every": 1, "lag_ms": 600_000}),
    )
    .await;
    let deleting = spawn_write(&org, &tok, reqwest::Method::DELETE, &id, None);
    until_pending(&org, 1).await;
    assert_eq!(records(&org, &tok, &q).await.len(), 1, "not deleted yet");
    put_admin(&org, "/records/Account/commit-lag", json!({"every": 0})).await;
    let (s, _, v) = api_get(
        &org,
        &tok,
        &format!("/services/data/v59.0/sobjects/Account/{id}"),
    )
    .await;
    assert_eq!(s, 200, "a lagged delete leaves the record readable: {v}");
    assert_eq!(
        patch(&org, &tok, &id, json!({"Name": "three"})).await,
        404,
        "the delete committed first"
    );
    assert_eq!(deleting.await.unwrap(), 204);
    assert!(records(&org, &tok, &q).await.is_empty());
}

#[tokio::test]
async fn commit_lag_settings_are_checked() {
    let org = org().await;
    for bad in [
        json!({"every": -1}),
        json!({"lag_ms": "x"}),
        json!({"often": 1}),
    ] {
        let (s, v) = admin(
            &org,
            reqwest::Method::PUT,
            "/records/Account/commit-lag",
            bad.clone(),
        )
        .await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    assert_eq!(
        commit_lag(&org).await,
        json!({"every": 0, "lag_ms": 0, "pending": 0})
    );
}

#[tokio::test]
async fn a_query_cursor_expires_after_two_days() {
    let org = org_with(sfkeep_fakeorg::FakeOrgConfig::default().accounts(450)).await;
    let tok = access_token(&org).await;
    let r = client()
        .get(format!("{}/services/data/v59.0/query", org.base_url()))
        .query(&[("q", "SELECT Id FROM Account")])
        .header("Sforce-Query-Options", "batchSize=200")
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    let next = first["nextRecordsUrl"].as_str().unwrap().to_owned();
    let (s, _, _) = api_get(&org, &tok, &next).await;
    assert_eq!(s, 200, "a fresh cursor answers");
    post_admin(&org, "/clock/advance", json!({"seconds": 2 * 86_400 + 1})).await;
    let tok = access_token(&org).await;
    let (s, _, v) = api_get(&org, &tok, &next).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v[0]["errorCode"], "INVALID_QUERY_LOCATOR", "{v}");
}
