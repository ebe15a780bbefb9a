//! REST records and SOAP calls as integrations use them.

mod common;

use serde_json::{Value, json};
use sfkeep_fakeorg::FakeOrgConfig;

use common::*;

async fn send(
    org: &sfkeep_fakeorg::FakeOrg,
    tok: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = client()
        .request(
            method,
            format!("{}/services/data/v59.0{path}", org.base_url()),
        )
        .bearer_auth(tok);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    let t = r.text().await.unwrap();
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

#[tokio::test]
async fn account_crud_and_upsert() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::POST,
        "/sobjects/Account",
        Some(json!({"Name": "Acme", "ExtId__c": "A-1"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["errors"], json!([]));
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("001") && id.len() == 18);

    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::GET,
        &format!("/sobjects/Account/{id}"),
        None,
    )
    .await;
    assert_eq!((s, v["Name"].as_str().unwrap()), (200, "Acme"));
    assert_eq!(v["attributes"]["type"], "Account");

    let (s, _) = send(
        &org,
        &tok,
        reqwest::Method::PATCH,
        &format!("/sobjects/Account/{id}"),
        Some(json!({"Industry": "Energy"})),
    )
    .await;
    assert_eq!(s, 204);

    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::PATCH,
        "/sobjects/Account/ExtId__c/A-1",
        Some(json!({"Name": "Acme 2"})),
    )
    .await;
    assert_eq!(
        (
            s,
            v["created"].as_bool().unwrap(),
            v["id"].as_str().unwrap()
        ),
        (200, false, id.as_str())
    );
    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::PATCH,
        "/sobjects/Account/ExtId__c/A-2",
        Some(json!({"Name": "Beta"})),
    )
    .await;
    assert_eq!((s, v["created"].as_bool().unwrap()), (201, true));

    let (s, _) = send(
        &org,
        &tok,
        reqwest::Method::DELETE,
        &format!("/sobjects/Account/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::GET,
        &format!("/sobjects/Account/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (404, "ENTITY_IS_DELETED")
    );
    let all = client()
        .get(format!("{}/services/data/v59.0/queryAll/", org.base_url()))
        .query(&[(
            "q",
            format!("SELECT Id, IsDeleted FROM Account WHERE Id = '{id}'"),
        )])
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(all["records"][0]["IsDeleted"], true);
    assert_eq!(stats(&org).await["records"]["Account"], 26);

    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::GET,
        "/sobjects/Account/001000000000000AAA",
        None,
    )
    .await;
    assert_eq!(
        (s, v),
        (
            404,
            json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
        )
    );
    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::POST,
        "/sobjects/Account",
        Some(json!({"Nope__c": 1})),
    )
    .await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (400, "INVALID_FIELD")
    );
    let (s, v) = send(
        &org,
        &tok,
        reqwest::Method::POST,
        "/sobjects/Account",
        Some(json!({"Industry": "Energy"})),
    )
    .await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (400, "REQUIRED_FIELD_MISSING")
    );
}

#[tokio::test]
async fn soap_login_query_query_more_logout() {
    let org = org_with(FakeOrgConfig::default().accounts(450)).await;
    let i = org.ready_info();
    let (s, xml) = soap_post(
        &org,
        soap_login_body(&i.username, &format!("{}{}", i.password, i.security_token)),
    )
    .await;
    assert_eq!(s, 200);
    let sid = xml_text(&xml, "sessionId").unwrap();

    let (s, xml) = soap_post(&org, soap_call_body(&sid, "<getUserInfo/>")).await;
    assert_eq!(s, 200);
    assert_eq!(xml_text(&xml, "userName").unwrap(), i.username);

    let q = "<query><queryString>SELECT Id, Name FROM Account</queryString></query>";
    let body = soap_call_body(&sid, q).replace(
        "</SessionHeader>",
        "</SessionHeader><QueryOptions><batchSize>200</batchSize></QueryOptions>",
    );
    let (s, xml) = soap_post(&org, body).await;
    assert_eq!(s, 200, "{xml}");
    assert_eq!(xml_text(&xml, "done").unwrap(), "false");
    assert_eq!(xml_text(&xml, "size").unwrap(), "450");
    let mut count = xml.matches("<records ").count();
    let mut locator = xml_text(&xml, "queryLocator").unwrap();
    loop {
        let (s, xml) = soap_post(
            &org,
            soap_call_body(
                &sid,
                &format!("<queryMore><queryLocator>{locator}</queryLocator></queryMore>"),
            ),
        )
        .await;
        assert_eq!(s, 200, "{xml}");
        count += xml.matches("<records ").count();
        match xml_text(&xml, "queryLocator") {
            Some(l) => locator = l,
            None => break,
        }
    }
    assert_eq!(count, 450);

    let (s, xml) = soap_post(
        &org,
        soap_call_body(
            &sid,
            "<query><queryString>SELECT FROM</queryString></query>",
        ),
    )
    .await;
    assert_eq!(s, 500);
    assert!(xml.contains("MALFORMED_QUERY"), "{xml}");

    // An OAuth access token works in the SessionHeader.
    let tok = access_token(&org).await;
    let (s, _) = soap_post(&org, soap_call_body(&tok, "<getUserInfo/>")).await;
    assert_eq!(s, 200);

    let (s, _) = soap_post(&org, soap_call_body(&sid, "<logout/>")).await;
    assert_eq!(s, 200);
    let (s, h, b) = api_get(&org, &sid, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);
}

#[tokio::test]
async fn revoke_endpoint() {
    let org = org().await;
    let i = org.ready_info();
    let tok = access_token(&org).await;
    let r = client()
        .post(format!("{}/services/oauth2/revoke", org.base_url()))
        .form(&[("token", tok.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    let (s, h, b) = api_get(&org, &tok, QUERY_IDS).await;
    assert_session_dead(s, &h, &b);

    // Revoking the refresh token kills its access tokens.
    let tok = access_token(&org).await;
    let r = client()
        .get(format!("{}/services/oauth2/revoke", org.base_url()))
        .query(&[("token", i.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api_get(&org, &tok, QUERY_IDS).await.0, 401);
    let (s, e) = refresh(&org, &i.refresh_token).await;
    assert_eq!((s, err_desc(&e).1), (400, "expired access/refresh token"));
    // Revoking it again: the org no longer honours it.
    let r = client()
        .post(format!("{}/services/oauth2/revoke", org.base_url()))
        .form(&[("token", i.refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = client()
        .post(format!("{}/services/oauth2/revoke", org.base_url()))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "invalid_token", "error_description": "Token was invalid"})
    );
}

#[tokio::test]
async fn diagnosis_objects_are_queryable() {
    let org = org().await;
    let tok = access_token(&org).await;
    for q in [
        "SELECT Id, Username, IsActive, LastPasswordChangeDate, LastLoginDate FROM User",
        "SELECT Id, UserId, IsFrozen, IsPasswordLocked FROM UserLogin",
        "SELECT Id, UserId, LoginTime, SourceIp, Status, LoginType, Application, LoginUrl FROM LoginHistory ORDER BY LoginTime DESC",
        "SELECT Id, UsersId, CreatedDate, LastModifiedDate, NumSecondsValid, SourceIp, SessionType, LoginType, IsCurrent FROM AuthSession",
        "SELECT Id, AppName, UserId, UseCount, LastUsedDate, CreatedDate FROM OauthToken",
        "SELECT Id, Action, Display, Section, CreatedDate, CreatedById FROM SetupAuditTrail",
    ] {
        let (s, v) = soql(&org, &tok, q).await;
        assert_eq!(s, 200, "{q}: {v}");
    }
    let rows = records(&org, &tok, "SELECT AppName, UseCount FROM OauthToken").await;
    assert_eq!(rows[0]["UseCount"], 1);
    let rows = records(&org, &tok, "SELECT Status, LoginType FROM LoginHistory").await;
    assert!(
        rows.iter()
            .all(|r| r["LoginType"] == "Remote Access 2.0" && r["Status"] == "Success")
    );
    let (s, v) = soql(&org, &tok, "SELECT COUNT() FROM Account").await;
    assert_eq!((s, v["totalSize"].as_u64().unwrap()), (200, 25));
    let (s, v) = soql(&org, &tok, "SELECT Id FROM Nope").await;
    assert_eq!(
        (s, v[0]["errorCode"].as_str().unwrap()),
        (400, "INVALID_TYPE")
    );
}

#[tokio::test]
async fn bulk_v2_query_job() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (s, job) = send(
        &org,
        &tok,
        reqwest::Method::POST,
        "/jobs/query",
        Some(json!({"operation": "query", "query": "SELECT Id, Name, AnnualRevenue FROM Account"})),
    )
    .await;
    assert_eq!(s, 200, "{job}");
    assert_eq!(job["state"], "UploadComplete");
    let id = job["id"].as_str().unwrap().to_owned();
    let (s, info) = send(
        &org,
        &tok,
        reqwest::Method::GET,
        &format!("/jobs/query/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(info["state"].is_string());
    let mut locator: Option<String> = None;
    let mut lines = 0;
    loop {
        let mut url = format!(
            "{}/services/data/v59.0/jobs/query/{id}/results?maxRecords=10",
            org.base_url()
        );
        if let Some(l) = &locator {
            url.push_str(&format!("&locator={l}"));
        }
        let r = client().get(url).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let next = r.headers()["sforce-locator"].to_str().unwrap().to_owned();
        let csv = r.text().await.unwrap();
        assert!(csv.starts_with("\"Id\",\"Name\",\"AnnualRevenue\"\n"));
        lines += csv.lines().count() - 1;
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert_eq!(lines, 25);
    let (s, info) = send(
        &org,
        &tok,
        reqwest::Method::GET,
        &format!("/jobs/query/{id}"),
        None,
    )
    .await;
    assert_eq!((s, info["state"].as_str().unwrap()), (200, "JobComplete"));
    let (s, _) = send(
        &org,
        &tok,
        reqwest::Method::DELETE,
        &format!("/jobs/query/{id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    // Session death on Bulk 2.0 is the REST 401.
    let (s, h, b) = api_get(
        &org,
        "00Dx!dead",
        &format!("/services/data/v59.0/jobs/query/{id}"),
    )
    .await;
    assert_session_dead(s, &h, &b);
}

#[tokio::test]
async fn account_describe_names_each_fields_type() {
    let org = org().await;
    let tok = access_token(&org).await;
    let (s, _, body) = api_get(&org, &tok, "/services/data/v59.0/sobjects/Account/describe").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["name"], "Account");
    let ty = |name: &str| {
        body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["type"].as_str().unwrap().to_owned())
    };
    assert_eq!(ty("AnnualRevenue").as_deref(), Some("currency"));
    assert_eq!(ty("IsDeleted").as_deref(), Some("boolean"));
    assert_eq!(ty("SystemModstamp").as_deref(), Some("datetime"));
    assert_eq!(ty("Id").as_deref(), Some("id"));
}
