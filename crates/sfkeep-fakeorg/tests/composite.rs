//! SObject Collections, Composite, getUpdated / getDeleted, `query?columns=true`, records of
//! the diagnosis objects read by id, and the version resource listing only what is served
//! (docs/salesforce-composite.md).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const D: &str = "/services/data/v59.0";

async fn send(
    org: &sfkeep_fakeorg::FakeOrg,
    tok: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{}{D}{path}", org.base_url()))
        .bearer_auth(tok);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn collections_create_update_read_delete_with_all_or_none() {
    let org = org().await;
    let tok = access_token(&org).await;
    let acct = |name: &str| json!({"attributes": {"type": "Account"}, "Name": name});

    let (s, v) = send(&org, &tok, Method::POST, "/composite/sobjects", Some(json!({"allOrNone": false, "records": [acct("C1"), acct("C2"), {"attributes": {"type": "Account"}}, {"Name": "no type"}]}))).await;
    assert_eq!(s, 200, "{v}");
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(
        (list[0]["success"].as_bool(), list[0]["errors"].clone()),
        (Some(true), json!([]))
    );
    assert_eq!(list[2]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(list[2]["errors"][0]["fields"], json!(["Name"]));
    assert_eq!(
        list[3]["errors"][0],
        json!({"statusCode": "INVALID_TYPE", "message": "Must send a concrete entity type.", "fields": []})
    );
    let ids: Vec<String> = list[..2]
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();

    // allOrNone: one bad record rolls every record back.
    let before = stats(&org).await["records"]["Account"].clone();
    let (s, v) = send(&org, &tok, Method::POST, "/composite/sobjects", Some(json!({"allOrNone": true, "records": [acct("Kept?"), {"attributes": {"type": "Account"}}]}))).await;
    assert_eq!(s, 200);
    assert_eq!(v[0]["success"], false);
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(stats(&org).await["records"]["Account"], before);

    // Update by id, read back with the retrieve form.
    let (s, v) = send(&org, &tok, Method::PATCH, "/composite/sobjects", Some(json!({"records": [
        {"attributes": {"type": "Account"}, "id": ids[0], "BillingCity": "Porto"},
        {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "BillingCity": "Nowhere"},
    ]}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[0]["success"], true);
    assert_eq!(
        v[1]["errors"][0]["statusCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    let (s, v) = send(
        &org,
        &tok,
        Method::GET,
        &format!(
            "/composite/sobjects/Account?ids={},{}&fields=Name,BillingCity",
            ids[0], ids[1]
        ),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v[0]["BillingCity"].as_str(), v[1]["Name"].as_str()),
        (Some("Porto"), Some("C2"))
    );
    assert_eq!(v[0]["attributes"]["type"], "Account");

    // Upsert by external id.
    let (s, v) = send(
        &org,
        &tok,
        Method::PATCH,
        "/composite/sobjects/Account/ExtId__c",
        Some(json!({"records": [
            {"attributes": {"type": "Account"}, "ExtId__c": "EXT-000002", "Name": "Upserted"},
            {"attributes": {"type": "Account"}, "ExtId__c": "EXT-C-NEW", "Name": "Fresh"},
        ]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v[0]["created"].as_bool(), v[1]["created"].as_bool()),
        (Some(false), Some(true))
    );

    // Delete.
    let (s, v) = send(
        &org,
        &tok,
        Method::DELETE,
        &format!(
            "/composite/sobjects?ids={},{}&allOrNone=false",
            ids[0], ids[1]
        ),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!([{"id": ids[0], "success": true, "errors": []}, {"id": ids[1], "success": true, "errors": []}])
    );

    // Over 200 records: refused whole.
    let many: Vec<Value> = (0..201).map(|i| acct(&format!("N{i}"))).collect();
    let (s, v) = send(
        &org,
        &tok,
        Method::POST,
        "/composite/sobjects",
        Some(json!({"records": many})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v,
        json!([{"message": "record limit reached. cannot submit more than 200 records into this call", "errorCode": "EXCEEDED_ID_LIMIT"}])
    );
    let ids201: Vec<String> = (0..201).map(|_| "001000000000000AAA".to_owned()).collect();
    let (s, v) = send(
        &org,
        &tok,
        Method::DELETE,
        &format!("/composite/sobjects?ids={}", ids201.join(",")),
        None,
    )
    .await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str()),
        (400, Some("EXCEEDED_ID_LIMIT"))
    );
}

#[tokio::test]
async fn composite_runs_subrequests_with_references_and_rolls_back_all_or_none() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (s, v) = send(&org, &tok, Method::POST, "/composite", Some(json!({"allOrNone": false, "compositeRequest": [
        {"method": "POST", "url": format!("{D}/sobjects/Account"), "referenceId": "newAcct", "body": {"Name": "Composite One"}},
        {"method": "GET", "url": format!("{D}/sobjects/Account/@{{newAcct.id}}"), "referenceId": "readBack"},
        {"method": "PATCH", "url": format!("{D}/sobjects/Account/@{{newAcct.id}}"), "referenceId": "rename", "body": {"Name": "Composite Renamed"}},
        {"method": "GET", "url": format!("{D}/query?q=SELECT+Name+FROM+Account+WHERE+Id+%3D+%27@{{newAcct.id}}%27"), "referenceId": "q"},
    ]}))).await;
    assert_eq!(s, 200, "{v}");
    let r = &v["compositeResponse"];
    assert_eq!(r[0]["httpStatusCode"], 201);
    assert_eq!(r[0]["referenceId"], "newAcct");
    let id = r[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        r[0]["httpHeaders"]["Location"],
        format!("{D}/sobjects/Account/{id}")
    );
    assert_eq!(
        (
            r[1]["httpStatusCode"].as_u64(),
            r[1]["body"]["Name"].as_str()
        ),
        (Some(200), Some("Composite One"))
    );
    assert_eq!(
        (r[2]["httpStatusCode"].as_u64(), r[2]["body"].clone()),
        (Some(204), Value::Null)
    );
    assert_eq!(r[3]["body"]["records"][0]["Name"], "Composite Renamed");

    // allOrNone: the second subrequest fails, the first is rolled back, the third never runs.
    let before = stats(&org).await["records"]["Account"].clone();
    let (s, v) = send(&org, &tok, Method::POST, "/composite", Some(json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": format!("{D}/sobjects/Account"), "referenceId": "a", "body": {"Name": "Rolled Back"}},
        {"method": "POST", "url": format!("{D}/sobjects/Account"), "referenceId": "b", "body": {"Nope": 1}},
        {"method": "POST", "url": format!("{D}/sobjects/Account"), "referenceId": "c", "body": {"Name": "Never"}},
    ]}))).await;
    assert_eq!(s, 200);
    let r = v["compositeResponse"].as_array().unwrap();
    assert_eq!(r[1]["body"][0]["errorCode"], "INVALID_FIELD");
    for i in [0, 2] {
        assert_eq!(r[i]["body"][0]["errorCode"], "PROCESSING_HALTED", "{v}");
    }
    assert_eq!(stats(&org).await["records"]["Account"], before);

    // Over the subrequest limit.
    let subs: Vec<Value> = (0..26).map(|i| json!({"method": "GET", "url": format!("{D}/limits"), "referenceId": format!("r{i}")})).collect();
    let (s, v) = send(
        &org,
        &tok,
        Method::POST,
        "/composite",
        Some(json!({"compositeRequest": subs})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v[0]["errorCode"], "LIMIT_EXCEEDED");
    // A composite counts as one API call.
    let used = stats(&org).await["api_requests"].as_u64().unwrap();
    let subs: Vec<Value> = (0..25).map(|i| json!({"method": "GET", "url": format!("{D}/limits"), "referenceId": format!("r{i}")})).collect();
    let (s, _) = send(
        &org,
        &tok,
        Method::POST,
        "/composite",
        Some(json!({"compositeRequest": subs})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        stats(&org).await["api_requests"].as_u64().unwrap(),
        used + 1
    );
}

#[tokio::test]
async fn get_updated_and_get_deleted_cover_whole_minutes() {
    let org = org().await;
    let tok = access_token(&org).await;
    // Start of the current minute on the org's clock, as the window's start.
    let (_, headers, _) = api_get(&org, &tok, &format!("{D}/limits")).await;
    let date = httpdate(headers["date"].to_str().unwrap());
    let start = (date - time::Duration::minutes(1))
        .replace_second(0)
        .unwrap();
    post_admin(&org, "/clock/advance", json!({"seconds": 60})).await;
    let touched = post_admin(&org, "/records/Account/touch", json!({"count": 3})).await;
    let rows = records(&org, &tok, "SELECT Id FROM Account LIMIT 1").await;
    let gone = rows[0]["Id"].as_str().unwrap().to_owned();
    let (s, _) = send(
        &org,
        &tok,
        Method::DELETE,
        &format!("/sobjects/Account/{gone}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    post_admin(&org, "/clock/advance", json!({"seconds": 120})).await;
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .replace('+', "%2B")
    };
    let end = start + time::Duration::minutes(10);
    let (s, v) = send(
        &org,
        &tok,
        Method::GET,
        &format!(
            "/sobjects/Account/updated/?start={}&end={}",
            fmt(start),
            fmt(end)
        ),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    for id in touched["ids"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        assert!(ids.contains(&id) || id == gone, "{id} not in {v}");
    }
    assert!(!ids.contains(&gone.as_str()));
    assert!(
        v["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000"),
        "{v}"
    );
    let (s, v) = send(
        &org,
        &tok,
        Method::GET,
        &format!(
            "/sobjects/Account/deleted/?start={}&end={}",
            fmt(start),
            fmt(end)
        ),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deletedRecords"][0]["id"], gone.as_str());
    assert!(v["deletedRecords"][0]["deletedDate"].is_string());
    assert!(v["earliestDateAvailable"].is_string());
    // A window before the 30 days Salesforce keeps, a reversed window, no window.
    let old = start - time::Duration::days(31);
    for path in [
        format!(
            "/sobjects/Account/updated/?start={}&end={}",
            fmt(old),
            fmt(end)
        ),
        format!(
            "/sobjects/Account/updated/?start={}&end={}",
            fmt(end),
            fmt(start)
        ),
    ] {
        let (s, v) = send(&org, &tok, Method::GET, &path, None).await;
        assert_eq!(
            (s, v[0]["errorCode"].as_str()),
            (400, Some("INVALID_REPLICATION_DATE")),
            "{path}: {v}"
        );
    }
    let (s, v) = send(&org, &tok, Method::GET, "/sobjects/Account/updated/", None).await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str()),
        (400, Some("MISSING_ARGUMENT"))
    );
}

fn httpdate(s: &str) -> time::OffsetDateTime {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, &fmt)
        .unwrap()
        .assume_utc()
}

#[tokio::test]
async fn query_columns_user_by_id_and_the_version_resource() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (s, v) = send(
        &org,
        &tok,
        Method::GET,
        "/query?q=SELECT+Id,+Name,+AnnualRevenue+FROM+Account&columns=true",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("records").is_none(), "{v}");
    assert_eq!(
        (
            v["entityName"].as_str(),
            v["idSelected"].as_bool(),
            v["keyPrefix"].as_str()
        ),
        (Some("Account"), Some(true), Some("001"))
    );
    let cols = v["columnMetadata"].as_array().unwrap();
    let names: Vec<&str> = cols
        .iter()
        .map(|c| c["columnName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Id", "Name", "AnnualRevenue"]);
    assert_eq!(
        (cols[0]["apexType"].as_str(), cols[2]["apexType"].as_str()),
        (Some("Id"), Some("Double"))
    );
    assert_eq!(cols[1]["joinColumns"], json!([]));
    let (_, v) = send(
        &org,
        &tok,
        Method::GET,
        "/query?q=SELECT+COUNT()+FROM+Account&columns=true",
        None,
    )
    .await;
    assert_eq!(
        (
            v["columnMetadata"][0]["aggregate"].as_bool(),
            v["columnMetadata"][0]["displayName"].as_str()
        ),
        (Some(true), Some("COUNT()"))
    );
    let (s, v) = send(
        &org,
        &tok,
        Method::GET,
        "/query?q=SELECT+Nope+FROM+Account&columns=true",
        None,
    )
    .await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str()),
        (400, Some("INVALID_FIELD"))
    );

    // Every record URL the org hands out can be read.
    let users = records(&org, &tok, "SELECT Id, Username FROM User").await;
    let url = users[0]["attributes"]["url"].as_str().unwrap();
    let (s, _, user) = api_get(&org, &tok, url).await;
    assert_eq!(s, 200, "{user}");
    assert_eq!(user["Username"], users[0]["Username"]);
    assert_eq!(user["attributes"]["type"], "User");
    let id15 = &users[0]["Id"].as_str().unwrap()[..15];
    let (s, _, user) = api_get(
        &org,
        &tok,
        &format!("{D}/sobjects/User/{id15}?fields=Username"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        user.as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "attributes")
            .count(),
        2,
        "{user}"
    );
    for object in [
        "UserLogin",
        "LoginHistory",
        "AuthSession",
        "SetupAuditTrail",
    ] {
        let rows = records(&org, &tok, &format!("SELECT Id FROM {object}")).await;
        let Some(row) = rows.first() else { continue };
        let (s, _, v) = api_get(&org, &tok, row["attributes"]["url"].as_str().unwrap()).await;
        assert_eq!(
            (s, v["Id"].clone()),
            (200, row["Id"].clone()),
            "{object}: {v}"
        );
    }
    let (s, _, v) = api_get(&org, &tok, &format!("{D}/sobjects/User/005000000000000AAA")).await;
    assert_eq!((s, v[0]["errorCode"].as_str()), (404, Some("NOT_FOUND")));

    // The version resource names only resources the org serves, and each answers.
    let (s, _, v) = api_get(&org, &tok, &format!("{D}/")).await;
    assert_eq!(s, 200);
    for (name, url) in v.as_object().unwrap() {
        let url = url.as_str().unwrap();
        if name == "identity" {
            continue;
        }
        let path = match name.as_str() {
            "query" | "queryAll" => format!("{url}?q=SELECT+Id+FROM+Account+LIMIT+1"),
            "composite" => continue, // POST only; exercised above
            "jobs" => format!("{url}/ingest"),
            _ => url.to_owned(),
        };
        let (s, _, body) = api_get(&org, &tok, &path).await;
        assert_eq!(s, 200, "{name} {path}: {body}");
    }
    for gone in ["search", "recent", "chatter"] {
        assert!(v.get(gone).is_none(), "{v}");
    }
    // An instance URL stored with a trailing slash (the Salesforce CLI) makes `//services/…`.
    let (s, _, v) = api_get(&org, &tok, &format!("/{D}/limits")).await;
    assert_eq!(s, 200, "{v}");
}
