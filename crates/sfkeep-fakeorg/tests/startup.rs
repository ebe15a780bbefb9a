//! Start-up contract: the ready info, the state files and the profile file, and shutdown.

mod common;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

#[tokio::test]
async fn ready_info_files_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let org = FakeOrg::start(FakeOrgConfig::new().accounts(3).state_dir(&state))
        .await
        .unwrap();
    let i = org.ready_info();

    let v = serde_json::to_value(i).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "login_url",
        "instance_url",
        "admin_url",
        "client_id",
        "client_secret",
        "username",
        "password",
        "security_token",
        "refresh_token",
        "jwt_key_file",
        "profile_file",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert!(i.login_url.starts_with("http://127.0.0.1:"));
    assert_eq!(i.login_url, org.base_url());
    assert_eq!(i.instance_url, org.base_url());
    assert_eq!(i.admin_url, format!("{}/_fake", org.base_url()));
    assert_eq!(i.username, "integration@example.com");
    assert!(i.client_id.starts_with("3MVG9"));

    let dbg = format!("{i:?}");
    for secret in [
        &i.client_secret,
        &i.password,
        &i.security_token,
        &i.refresh_token,
    ] {
        assert!(!dbg.contains(secret.as_str()), "Debug leaks a secret");
    }
    assert!(dbg.contains("[redacted]"));

    for (name, content) in [
        ("client_secret", Some(i.client_secret.as_str())),
        ("refresh_token", Some(i.refresh_token.as_str())),
        ("password", Some(i.password.as_str())),
        ("security_token", Some(i.security_token.as_str())),
        ("jwt.key", None),
        ("cache.key", None),
        ("sfkeep.toml", None),
    ] {
        let path = state.join(name);
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        if let Some(c) = content {
            assert_eq!(std::fs::read_to_string(&path).unwrap(), c, "{name}");
        }
    }
    assert_eq!(i.jwt_key_file, state.join("jwt.key"));
    assert_eq!(i.profile_file, state.join("sfkeep.toml"));
    let key = std::fs::read_to_string(&i.jwt_key_file).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    use base64::Engine;
    let cache = std::fs::read_to_string(state.join("cache.key")).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(cache.trim())
            .unwrap()
            .len(),
        32
    );

    let profile = std::fs::read_to_string(&i.profile_file).unwrap();
    let s = state.display();
    let expected = format!(
        "[profiles.fake]\nlogin_url = \"{url}\"\nclient_id = \"{cid}\"\nclient_secret = {{ file = \"{s}/client_secret\" }}\nusername = \"integration@example.com\"\nrefresh_token = {{ file = \"{s}/refresh_token\" }}\njwt_key = {{ file = \"{s}/jwt.key\" }}\npassword = {{ file = \"{s}/password\" }}\nsecurity_token = {{ file = \"{s}/security_token\" }}\ngrant = \"refresh_token\"\nfallback_grant = \"jwt_bearer\"\nsession_timeout_secs = 7200\n\n[profiles.fake.store]\nkind = \"file\"\npath = \"{s}/tokens.enc\"\nkey_file = \"{s}/cache.key\"\n",
        url = org.base_url(),
        cid = i.client_id,
    );
    assert_eq!(profile, expected);

    // The printed refresh token is valid.
    let (status, body): (u16, Value) = common::refresh(&org, &i.refresh_token).await;
    assert_eq!(status, 200, "{body}");

    let url = org.base_url().to_owned();
    org.shutdown().await;
    assert!(
        reqwest::get(format!("{url}/services/data/")).await.is_err(),
        "stopped"
    );
}

#[tokio::test]
async fn default_state_dir_is_removed_with_the_org() {
    let org = FakeOrg::start(FakeOrgConfig::default().accounts(1))
        .await
        .unwrap();
    let dir = org.state_dir().to_path_buf();
    assert!(dir.join("sfkeep.toml").exists());
    drop(org);
    assert!(!dir.exists());
}
