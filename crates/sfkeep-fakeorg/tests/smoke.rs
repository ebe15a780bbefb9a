mod common;
use common::*;

#[tokio::test]
async fn starts_and_refreshes() {
    let t = std::time::Instant::now();
    let org = org().await;
    eprintln!("start took {:?}", t.elapsed());
    let (s, v) = refresh(&org, &org.ready_info().refresh_token).await;
    assert_eq!(s, 200, "{v}");
    let tok = v["access_token"].as_str().unwrap();
    let (s, _, v) = api_get(&org, tok, QUERY_IDS).await;
    assert_eq!(s, 200, "{v}");
    eprintln!("{v}");
    org.shutdown().await;
}
