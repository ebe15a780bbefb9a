//! Bulk API 2.0 ingest jobs and Bulk API 1.0 jobs over HTTP, with the shapes, states, limits
//! and errors of docs/salesforce-bulk.md, including the bad input of issue #20: malformed CSV,
//! a batch over the size limit, a job closed twice, an unknown async path.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const V2: &str = "/services/data/v59.0/jobs/ingest";
const V1: &str = "/services/async/59.0";

/// A request with a bearer token; returns (status, content type, body text).
async fn call(
    org: &sfkeep_fakeorg::FakeOrg,
    tok: &str,
    method: Method,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String, String) {
    let r = client()
        .request(method, format!("{}{path}", org.base_url()))
        .bearer_auth(tok)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

async fn v2(
    org: &sfkeep_fakeorg::FakeOrg,
    tok: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let (s, _, text) = call(org, tok, method, path, "application/json", body.to_string()).await;
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Creates an ingest job; returns its id.
async fn create_job(org: &sfkeep_fakeorg::FakeOrg, tok: &str, spec: Value) -> String {
    let (s, v) = v2(org, tok, Method::POST, V2, spec).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "Open");
    v["id"].as_str().unwrap().to_owned()
}

/// Polls the job until it is terminal; returns its info.
async fn wait_job(org: &sfkeep_fakeorg::FakeOrg, tok: &str, id: &str) -> Value {
    for _ in 0..10 {
        let (s, v) = v2(org, tok, Method::GET, &format!("{V2}/{id}"), Value::Null).await;
        assert_eq!(s, 200, "{v}");
        if ["JobComplete", "Failed", "Aborted"].contains(&v["state"].as_str().unwrap()) {
            return v;
        }
    }
    panic!("job {id} never finished");
}

#[tokio::test]
async fn bulk2_ingest_lifecycle_insert_and_upsert() {
    let org = org().await;
    let tok = access_token(&org).await;
    let before = stats(&org).await["records"]["Account"].as_u64().unwrap();

    let (s, v) = v2(
        &org,
        &tok,
        Method::POST,
        V2,
        json!({"object": "Account", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for key in [
        "id",
        "operation",
        "object",
        "createdById",
        "createdDate",
        "systemModstamp",
        "state",
        "concurrencyMode",
        "contentType",
        "apiVersion",
        "contentUrl",
        "lineEnding",
        "columnDelimiter",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    assert_eq!(
        v["contentUrl"],
        format!("services/data/v59.0/jobs/ingest/{id}/batches")
    );

    let csv = "Name,AnnualRevenue,BillingCity\n\"Acme, Inc.\",1000,Paris\nNo Revenue,,Lisbon\n,5,Osaka\nBad Revenue,lots,Berlin\n";
    let (s, _, body) = call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{id}/batches"),
        "text/csv",
        csv,
    )
    .await;
    assert_eq!((s, body.as_str()), (201, ""));
    let (s, v) = v2(
        &org,
        &tok,
        Method::PATCH,
        &format!("{V2}/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (200, Some("UploadComplete")),
        "{v}"
    );
    // The records are committed when the job is closed, before any status read.
    assert_eq!(stats(&org).await["records"]["Account"], before + 2);

    let info = wait_job(&org, &tok, &id).await;
    assert_eq!(info["state"], "JobComplete", "{info}");
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(info["numberRecordsProcessed"], 4);
    assert_eq!(info["numberRecordsFailed"], 2);

    let (s, ct, ok) = call(
        &org,
        &tok,
        Method::GET,
        &format!("{V2}/{id}/successfulResults"),
        "application/json",
        "",
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "text/csv"));
    let lines: Vec<&str> = ok.lines().collect();
    assert_eq!(
        lines[0],
        "\"sf__Id\",\"sf__Created\",\"Name\",\"AnnualRevenue\",\"BillingCity\""
    );
    assert_eq!(lines.len(), 3, "{ok}");
    assert!(
        lines[1].contains("\"true\",\"Acme, Inc.\",\"1000\""),
        "{ok}"
    );
    let (_, _, failed) = call(
        &org,
        &tok,
        Method::GET,
        &format!("{V2}/{id}/failedResults"),
        "application/json",
        "",
    )
    .await;
    assert!(
        failed.starts_with("\"sf__Id\",\"sf__Error\",\"Name\""),
        "{failed}"
    );
    assert!(
        failed.contains("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"),
        "{failed}"
    );
    assert!(
        failed.contains("INVALID_TYPE_ON_FIELD_IN_RECORD"),
        "{failed}"
    );
    let (_, _, unprocessed) = call(
        &org,
        &tok,
        Method::GET,
        &format!("{V2}/{id}/unprocessedrecords"),
        "application/json",
        "",
    )
    .await;
    assert_eq!(unprocessed.lines().count(), 1, "{unprocessed}");

    // Upsert by the external id: one update, one insert.
    let up = create_job(&org, &tok, json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "ExtId__c", "lineEnding": "CRLF", "columnDelimiter": "PIPE"})).await;
    let csv = "ExtId__c|Name\r\nEXT-000001|Renamed\r\nEXT-NEW-1|Brand New\r\n";
    let (s, _, _) = call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{up}/batches"),
        "text/csv",
        csv,
    )
    .await;
    assert_eq!(s, 201);
    v2(
        &org,
        &tok,
        Method::PATCH,
        &format!("{V2}/{up}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    let info = wait_job(&org, &tok, &up).await;
    assert_eq!(
        (
            info["numberRecordsProcessed"].as_u64(),
            info["numberRecordsFailed"].as_u64()
        ),
        (Some(2), Some(0)),
        "{info}"
    );
    let (_, _, ok) = call(
        &org,
        &tok,
        Method::GET,
        &format!("{V2}/{up}/successfulResults"),
        "application/json",
        "",
    )
    .await;
    assert!(
        ok.contains("\"false\"|\"EXT-000001\"") && ok.contains("\"true\"|\"EXT-NEW-1\""),
        "{ok}"
    );
    let rows = records(
        &org,
        &tok,
        "SELECT Name FROM Account WHERE ExtId__c = 'EXT-000001'",
    )
    .await;
    assert_eq!(rows[0]["Name"], "Renamed");

    // Listing and deleting.
    let (s, v) = v2(&org, &tok, Method::GET, V2, Value::Null).await;
    assert_eq!(s, 200);
    assert_eq!(v["records"].as_array().unwrap().len(), 2, "{v}");
    let (s, _) = v2(
        &org,
        &tok,
        Method::DELETE,
        &format!("{V2}/{up}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = v2(&org, &tok, Method::GET, &format!("{V2}/{up}"), Value::Null).await;
    assert_eq!((s, v[0]["errorCode"].as_str()), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn bulk2_ingest_refuses_a_second_upload_a_second_close_and_bad_csv() {
    let org = org().await;
    let tok = access_token(&org).await;
    let id = create_job(
        &org,
        &tok,
        json!({"object": "Account", "operation": "insert"}),
    )
    .await;
    let (s, _, _) = call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{id}/batches"),
        "text/csv",
        "Name\nA\n",
    )
    .await;
    assert_eq!(s, 201);
    // One upload per job: the second one is refused, so no record is ever written twice.
    let (s, _, body) = call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{id}/batches"),
        "text/csv",
        "Name\nA\n",
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s, 400);
    assert_eq!(v[0]["errorCode"], "INVALIDJOBSTATE");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Found multiple contents for job"),
        "{v}"
    );
    let (s, _) = v2(
        &org,
        &tok,
        Method::PATCH,
        &format!("{V2}/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    assert_eq!(s, 200);
    // Closed twice.
    let (s, v) = v2(
        &org,
        &tok,
        Method::PATCH,
        &format!("{V2}/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str()),
        (400, Some("INVALIDJOBSTATE")),
        "{v}"
    );
    // Upload after close.
    let (s, _, body) = call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{id}/batches"),
        "text/csv",
        "Name\nB\n",
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let info = wait_job(&org, &tok, &id).await;
    assert_eq!(info["numberRecordsProcessed"], 1);

    // Malformed CSV fails the job as a whole with Salesforce's message; nothing is written.
    let before = stats(&org).await["records"]["Account"].clone();
    for (csv, message) in [
        (
            "Name\r\nA\r\n",
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF",
        ),
        (
            "Name,Bogus__c\nA,B\n",
            "InvalidBatch : Field name not found : Bogus__c",
        ),
        (
            "Name,City\nA\n",
            "ClientInputError : Failed to parse CSV: line 2 has 1 values, the header has 2",
        ),
        (
            "Name\n\"A\n",
            "ClientInputError : Failed to parse CSV: the quoted value opened on line 2 is never closed",
        ),
    ] {
        let id = create_job(
            &org,
            &tok,
            json!({"object": "Account", "operation": "insert"}),
        )
        .await;
        call(
            &org,
            &tok,
            Method::PUT,
            &format!("{V2}/{id}/batches"),
            "text/csv",
            csv,
        )
        .await;
        let (s, v) = v2(
            &org,
            &tok,
            Method::PATCH,
            &format!("{V2}/{id}"),
            json!({"state": "UploadComplete"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let info = wait_job(&org, &tok, &id).await;
        assert_eq!(info["state"], "Failed", "{info}");
        assert_eq!(info["errorMessage"], message, "{csv:?}");
    }
    assert_eq!(stats(&org).await["records"]["Account"], before);

    // Aborting an open job leaves its data unprocessed.
    let id = create_job(
        &org,
        &tok,
        json!({"object": "Account", "operation": "insert"}),
    )
    .await;
    call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{id}/batches"),
        "text/csv",
        "Name\nNever\n",
    )
    .await;
    let (s, v) = v2(
        &org,
        &tok,
        Method::PATCH,
        &format!("{V2}/{id}"),
        json!({"state": "Aborted"}),
    )
    .await;
    assert_eq!((s, v["state"].as_str()), (200, Some("Aborted")));
    let (_, _, unprocessed) = call(
        &org,
        &tok,
        Method::GET,
        &format!("{V2}/{id}/unprocessedrecords"),
        "application/json",
        "",
    )
    .await;
    assert_eq!(unprocessed, "\"Name\"\n\"Never\"\n");

    // Bad job definitions.
    for (spec, needle) in [
        (
            json!({"object": "Account", "operation": "merge"}),
            "operation",
        ),
        (
            json!({"object": "Contact", "operation": "insert"}),
            "Contact",
        ),
        (
            json!({"object": "Account", "operation": "upsert"}),
            "External ID",
        ),
        (
            json!({"object": "Account", "operation": "insert", "lineEnding": "CR"}),
            "lineEnding",
        ),
        (
            json!({"object": "Account", "operation": "insert", "columnDelimiter": "COLON"}),
            "COLON",
        ),
    ] {
        let (s, v) = v2(&org, &tok, Method::POST, V2, spec.clone()).await;
        assert_eq!(
            (s, v[0]["errorCode"].as_str()),
            (400, Some("INVALIDJOB")),
            "{spec}: {v}"
        );
        assert!(v[0]["message"].as_str().unwrap().contains(needle), "{v}");
    }
}

#[tokio::test]
async fn bulk2_ingest_answers_a_dead_session_with_the_rest_401() {
    let org = org().await;
    let tok = access_token(&org).await;
    let id = create_job(
        &org,
        &tok,
        json!({"object": "Account", "operation": "insert"}),
    )
    .await;
    post_admin(
        &org,
        &format!("/users/{}/logout", org.ready_info().username),
        json!({}),
    )
    .await;
    let (s, v) = v2(&org, &tok, Method::GET, &format!("{V2}/{id}"), Value::Null).await;
    assert_eq!((s, v), (401, invalid_session_body()));
}

/// A Bulk API 1.0 request with `X-SFDC-Session`.
async fn v1(
    org: &sfkeep_fakeorg::FakeOrg,
    session: &str,
    method: Method,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String, String) {
    let r = client()
        .request(method, format!("{}{V1}{path}", org.base_url()))
        .header("X-SFDC-Session", session)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

fn job_xml(operation: &str, content: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><operation>{operation}</operation><object>Account</object><contentType>{content}</contentType></jobInfo>"#
    )
}

const CLOSE_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><state>Closed</state></jobInfo>"#;

#[tokio::test]
async fn bulk1_csv_and_xml_jobs_insert_query_and_close() {
    let org = org().await;
    let tok = access_token(&org).await;
    let xml = "application/xml; charset=UTF-8";

    // CSV insert job: job and batch information in XML, results in CSV.
    let (s, ct, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("insert", "CSV"),
    )
    .await;
    assert_eq!((s, ct.as_str()), (201, "application/xml"), "{body}");
    assert!(
        body.contains("<state>Open</state>") && body.contains("<contentType>CSV</contentType>"),
        "{body}"
    );
    let job = xml_text(&body, "id").unwrap();
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        "text/csv; charset=UTF-8",
        "Name,Industry\nOne,Energy\n,Retail\n",
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert!(body.contains("<state>Queued</state>"), "{body}");
    let batch = xml_text(&body, "id").unwrap();
    assert!(batch.starts_with("751"));
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}"),
        xml,
        "",
    )
    .await;
    assert!(
        body.contains("<state>Completed</state>")
            && body.contains("<numberRecordsProcessed>2</numberRecordsProcessed>")
            && body.contains("<numberRecordsFailed>1</numberRecordsFailed>"),
        "{body}"
    );
    let (s, ct, results) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result"),
        xml,
        "",
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "text/csv"));
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines[0], "\"Id\",\"Success\",\"Created\",\"Error\"");
    assert!(lines[1].ends_with(",\"true\",\"true\",\"\""), "{results}");
    assert!(
        lines[2].starts_with("\"\",\"false\",\"false\",\"REQUIRED_FIELD_MISSING"),
        "{results}"
    );
    let (_, ct, request) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/request"),
        xml,
        "",
    )
    .await;
    assert_eq!(
        (ct.as_str(), request.as_str()),
        ("text/csv", "Name,Industry\nOne,Energy\n,Retail\n")
    );
    let (_, _, list) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch"),
        xml,
        "",
    )
    .await;
    assert!(
        list.starts_with("<?xml") && list.contains("<batchInfoList") && list.contains(&batch),
        "{list}"
    );
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}"),
        xml,
        CLOSE_XML,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("<state>Closed</state>")
            && body.contains("<numberBatchesCompleted>1</numberBatchesCompleted>"),
        "{body}"
    );
    // A job closed twice, and a batch for a closed job.
    let (s, ct, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}"),
        xml,
        CLOSE_XML,
    )
    .await;
    assert_eq!((s, ct.as_str()), (400, "application/xml"));
    assert_eq!(
        xml_text(&body, "exceptionCode").as_deref(),
        Some("InvalidJobState"),
        "{body}"
    );
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        "text/csv",
        "Name\nLate\n",
    )
    .await;
    assert_eq!(
        (s, xml_text(&body, "exceptionCode").as_deref()),
        (400, Some("InvalidJobState")),
        "{body}"
    );

    // XML insert job.
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("insert", "XML"),
    )
    .await;
    let job = xml_text(&body, "id").unwrap();
    let records = r#"<?xml version="1.0" encoding="UTF-8"?><sObjects xmlns="http://www.force.com/2009/06/asyncapi/dataload"><sObject><Name>From XML &amp; Co</Name><AnnualRevenue>12.5</AnnualRevenue></sObject></sObjects>"#;
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        xml,
        records,
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let batch = xml_text(&body, "id").unwrap();
    v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}"),
        xml,
        "",
    )
    .await;
    let (_, ct, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result"),
        xml,
        "",
    )
    .await;
    assert_eq!(ct, "application/xml");
    assert!(
        body.contains("<success>true</success><created>true</created>"),
        "{body}"
    );
    let rows = records_of(
        &org,
        &tok,
        "SELECT AnnualRevenue FROM Account WHERE Name = 'From XML & Co'",
    )
    .await;
    assert_eq!(rows[0]["AnnualRevenue"], 12.5);

    // CSV query job: result list in XML, the result in CSV.
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("query", "CSV"),
    )
    .await;
    let job = xml_text(&body, "id").unwrap();
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        "text/csv",
        "SELECT Id, Name FROM Account WHERE Name = 'One'",
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let batch = xml_text(&body, "id").unwrap();
    // Results are there only once the batch reports completion.
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result"),
        xml,
        "",
    )
    .await;
    assert_eq!(
        (s, xml_text(&body, "exceptionMessage").as_deref()),
        (400, Some("Batch not completed"))
    );
    v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}"),
        xml,
        "",
    )
    .await;
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result"),
        xml,
        "",
    )
    .await;
    assert!(body.contains("<result-list"), "{body}");
    let result = xml_text(&body, "result").unwrap();
    let (s, ct, csv) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result/{result}"),
        xml,
        "",
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "\"Id\",\"Name\"");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].ends_with(",\"One\""), "{csv}");
}

async fn records_of(org: &sfkeep_fakeorg::FakeOrg, tok: &str, q: &str) -> Vec<Value> {
    records(org, tok, q).await
}

#[tokio::test]
async fn bulk1_json_jobs_answer_in_json() {
    let org = org().await;
    let tok = access_token(&org).await;
    let j = "application/json";
    // simple-salesforce's job: JSON, concurrencyMode as a number.
    let (s, ct, body) = v1(&org, &tok, Method::POST, "/job", j, json!({"operation": "insert", "object": "Account", "concurrencyMode": 0, "contentType": "JSON"}).to_string()).await;
    assert_eq!((s, ct.as_str()), (201, j), "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (job["state"].as_str(), job["concurrencyMode"].as_str()),
        (Some("Open"), Some("Parallel"))
    );
    let job = job["id"].as_str().unwrap().to_owned();
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        j,
        json!([{"Name": "J1"}, {"Name": "J2", "AnnualRevenue": 5}]).to_string(),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let batch: Value = serde_json::from_str(&body).unwrap();
    let batch = batch["id"].as_str().unwrap().to_owned();
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}"),
        j,
        "",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "Completed"
    );
    let (_, ct, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result"),
        j,
        "",
    )
    .await;
    assert_eq!(ct, j);
    let results: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(results.as_array().unwrap().len(), 2);
    assert_eq!(
        (
            results[0]["success"].as_bool(),
            results[0]["created"].as_bool()
        ),
        (Some(true), Some(true))
    );

    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        j,
        json!({"operation": "query", "object": "Account", "contentType": "JSON"}).to_string(),
    )
    .await;
    let job = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // simple-salesforce posts the SOQL with a JSON content type.
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        j,
        "SELECT Id, Name FROM Account WHERE Name LIKE 'J%'",
    )
    .await;
    let batch = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}"),
        j,
        "",
    )
    .await;
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result"),
        j,
        "",
    )
    .await;
    let ids: Value = serde_json::from_str(&body).unwrap();
    let rid = ids[0].as_str().unwrap();
    assert!(rid.starts_with("752"), "{ids}");
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}/result/{rid}"),
        j,
        "",
    )
    .await;
    let rows: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(rows[0]["attributes"]["type"], "Account");
    assert!(rows[0]["Name"].as_str().unwrap().starts_with('J'));
}

#[tokio::test]
async fn bulk1_bad_input_gets_the_bulk_api_errors_in_its_format() {
    let org = org().await;
    let tok = access_token(&org).await;
    let xml = "application/xml";

    // Unknown async path: XML, whatever the request's format.
    for path in ["/jobs", "/batch/751000000000000AAA"] {
        let (s, ct, body) = v1(&org, &tok, Method::GET, path, "application/json", "").await;
        assert_eq!(ct, "application/xml", "{path}: {body}");
        assert!(s == 404 || s == 400, "{path}: {s}");
        assert!(
            body.starts_with("<?xml") && body.contains("<exceptionCode>"),
            "{body}"
        );
    }
    let (s, ct, body) = v1(&org, &tok, Method::GET, "/nope", "application/json", "").await;
    assert_eq!(
        (s, ct.as_str(), xml_text(&body, "exceptionCode").as_deref()),
        (404, xml, Some("InvalidUrl"))
    );
    let r = client()
        .get(format!("{}/services/async", org.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], xml);

    // A dead or missing session.
    let (s, _, body) = v1(
        &org,
        "00Dnot!valid",
        Method::POST,
        "/job",
        xml,
        job_xml("insert", "CSV"),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        xml_text(&body, "exceptionCode").as_deref(),
        Some("InvalidSessionId")
    );
    assert_eq!(
        xml_text(&body, "exceptionMessage").as_deref(),
        Some("Invalid session id")
    );
    let (s, ct, body) = v1(
        &org,
        "00Dnot!valid",
        Method::POST,
        "/job",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!((s, ct.as_str()), (400, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"exceptionCode": "InvalidSessionId", "exceptionMessage": "Invalid session id"})
    );

    // Bad job definitions.
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        "<jobInfo><operation>insert",
    )
    .await;
    assert_eq!(
        (s, xml_text(&body, "exceptionCode").as_deref()),
        (400, Some("InvalidXML"))
    );
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("insert", "CSV").replace("Account", "Widget"),
    )
    .await;
    assert_eq!(
        (s, xml_text(&body, "exceptionMessage").as_deref()),
        (400, Some("Unable to find object: Widget"))
    );
    let (s, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("upsert", "CSV"),
    )
    .await;
    assert_eq!(
        (s, xml_text(&body, "exceptionCode").as_deref()),
        (400, Some("InvalidJob"))
    );
    let (s, _, body) = v1(&org, &tok, Method::GET, "/job/750000000000000AAA", xml, "").await;
    assert_eq!(
        (s, xml_text(&body, "exceptionCode").as_deref()),
        (400, Some("InvalidJob"))
    );

    // Malformed batches fail as a whole, with the reason in stateMessage; nothing is written.
    let before = stats(&org).await["records"]["Account"].clone();
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("insert", "CSV"),
    )
    .await;
    let job = xml_text(&body, "id").unwrap();
    let over: String = std::iter::once("Name\n".to_owned())
        .chain((0..10_001).map(|i| format!("Big {i}\n")))
        .collect();
    for (csv, message) in [
        ("Name,Bogus__c\nA,B\n".to_owned(), "InvalidBatch : Field name not found : Bogus__c".to_owned()),
        ("Name\n\"open\n".to_owned(), "ClientInputError : Failed to parse CSV: the quoted value opened on line 2 is never closed".to_owned()),
        ("Name,City\nA\n".to_owned(), "ClientInputError : Failed to parse CSV: line 2 has 1 values, the header has 2".to_owned()),
        (over, "InvalidBatch : Records in a batch cannot exceed 10000: this batch has 10001".to_owned()),
    ] {
        let (s, _, body) = v1(&org, &tok, Method::POST, &format!("/job/{job}/batch"), "text/csv", csv).await;
        assert_eq!(s, 201, "{body}");
        let batch = xml_text(&body, "id").unwrap();
        let (_, _, body) = v1(&org, &tok, Method::GET, &format!("/job/{job}/batch/{batch}"), xml, "").await;
        assert_eq!(xml_text(&body, "state").as_deref(), Some("Failed"), "{body}");
        assert_eq!(xml_text(&body, "stateMessage").as_deref(), Some(message.as_str()), "{body}");
    }
    assert_eq!(stats(&org).await["records"]["Account"], before);

    // A body over 10 MB is refused before it is read, in the async API's format.
    let huge = vec![b'a'; 10 * 1024 * 1024 + 1];
    let (s, ct, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        "text/csv",
        huge,
    )
    .await;
    assert_eq!((s, ct.as_str()), (413, xml), "{body}");
    assert!(body.contains("<exceptionCode>"), "{body}");

    // A query batch with bad SOQL fails with the query error.
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        "/job",
        xml,
        job_xml("query", "CSV"),
    )
    .await;
    let job = xml_text(&body, "id").unwrap();
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::POST,
        &format!("/job/{job}/batch"),
        "text/csv",
        "SELECT Nope FROM Account",
    )
    .await;
    let batch = xml_text(&body, "id").unwrap();
    let (_, _, body) = v1(
        &org,
        &tok,
        Method::GET,
        &format!("/job/{job}/batch/{batch}"),
        xml,
        "",
    )
    .await;
    let message = xml_text(&body, "stateMessage").unwrap();
    assert!(
        message.starts_with("InvalidBatch : Failed to process query: INVALID_FIELD:"),
        "{message}"
    );
}

#[tokio::test]
async fn a_lost_upload_answer_still_means_the_upload_landed() {
    let org = org().await;
    let tok = access_token(&org).await;
    let id = create_job(
        &org,
        &tok,
        json!({"object": "Account", "operation": "insert"}),
    )
    .await;
    // The org processes the upload, then the connection drops before the answer.
    post_admin(
        &org,
        "/faults",
        json!({"path_prefix": format!("{V2}/{id}/batches"), "reset_after": true, "count": 1}),
    )
    .await;
    let lost = client()
        .put(format!("{}{V2}/{id}/batches", org.base_url()))
        .bearer_auth(&tok)
        .header("Content-Type", "text/csv")
        .body("Name\nOnce\n")
        .send()
        .await;
    assert!(lost.is_err(), "the answer should be lost: {lost:?}");
    // Sending it again cannot load it twice: the org says the job already has its data.
    let (s, _, body) = call(
        &org,
        &tok,
        Method::PUT,
        &format!("{V2}/{id}/batches"),
        "text/csv",
        "Name\nOnce\n",
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("Found multiple contents for job"), "{body}");
    v2(
        &org,
        &tok,
        Method::PATCH,
        &format!("{V2}/{id}"),
        json!({"state": "UploadComplete"}),
    )
    .await;
    let info = wait_job(&org, &tok, &id).await;
    assert_eq!(info["numberRecordsProcessed"], 1);
    let rows = records(&org, &tok, "SELECT Id FROM Account WHERE Name = 'Once'").await;
    assert_eq!(rows.len(), 1);
}
