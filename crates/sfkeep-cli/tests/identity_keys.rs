//! Two identities never share a token (issue 24 item 4): two profiles of one connected app
//! for two users of one org, on one store (an encrypted file, then one Redis), each with its
//! own refresh token. Each profile's tokens are shown to the org's own userinfo endpoint, which
//! says whose they are; the org's counters say each profile sent its own refresh token once.
//!
//! Not built: two orgs behind one login URL (the simulated org serves one org per server).

mod common;

use std::path::{Path, PathBuf};

use common::{Org, Redis, result_of, run, sfkeep, web_server_login};
use serde_json::{Value, json};

const USER_A: &str = "integration@example.com";
const USER_B: &str = "admin@example.com";
/// The profiles' cache key (base64 of 32 bytes).
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn write_secret(dir: &Path, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A refresh token of `username` for the org's connected app: the web-server flow, with the
/// user named by `login_hint` approving.
fn refresh_token_of(org: &Org, username: &str) -> String {
    let (_, v) = web_server_login(org, Some(username), "http://127.0.0.1:9/callback");
    v["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {v}"))
        .to_owned()
}

/// What every test here starts from: an org (with `policy` on its app first, when given), a
/// refresh token of each user for the app, and a config directory holding the cache key.
struct TwoUsers {
    home: tempfile::TempDir,
    org: Org,
    rt_a: String,
    rt_b: String,
    dir: PathBuf,
    key: PathBuf,
}

fn two_users(policy: Option<Value>) -> TwoUsers {
    let home = tempfile::tempdir().unwrap();
    let org = Org::start(home.path(), 10);
    if let Some(policy) = policy {
        let app = org.field("client_id");
        assert_eq!(org.admin_put(&format!("/apps/{app}/policy"), policy), 200);
    }
    let rt_a = refresh_token_of(&org, USER_A);
    let rt_b = refresh_token_of(&org, USER_B);
    let dir = home.path().join("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    let key = write_secret(&dir, "cache.key", KEY_B64);
    TwoUsers {
        home,
        org,
        rt_a,
        rt_b,
        dir,
        key,
    }
}

/// Whose token `token` is, by the org's own userinfo endpoint.
fn user_of(org: &Org, token: &str) -> String {
    let url = format!("{}/services/oauth2/userinfo", org.field("instance_url"));
    let v: Value = block_on(async {
        reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    v["preferred_username"]
        .as_str()
        .unwrap_or_else(|| panic!("userinfo: {v}"))
        .to_owned()
}

/// One profile of the org's app: `name`, with refresh token `rt` (a file) and, when given,
/// `username`; the store table is appended by the caller.
fn profile(org: &Org, dir: &Path, name: &str, rt: &str, username: Option<&str>) -> String {
    let rt_file = write_secret(dir, &format!("{name}.rt"), rt);
    let secret = write_secret(dir, "client_secret", &org.field("client_secret"));
    let user = username
        .map(|u| format!("username = \"{u}\"\n"))
        .unwrap_or_default();
    format!(
        "[profiles.{name}]\nlogin_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ file = \"{}\" }}\n{user}refresh_token = {{ file = \"{}\" }}\ngrant = \"refresh_token\"\n\n",
        org.field("login_url"),
        org.field("client_id"),
        secret.display(),
        rt_file.display()
    )
}

fn store_table(name: &str, store: &str, key_file: &Path) -> String {
    format!(
        "[profiles.{name}.store]\n{store}\nkey_file = \"{}\"\n\n",
        key_file.display()
    )
}

fn token(home: &Path, config: &Path, name: &str) -> String {
    let mut c = sfkeep(home);
    c.args(["token", "--json", "--config"])
        .arg(config)
        .args(["--profile", name]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "token for {name}: {err}");
    result_of(&out)["access_token"].as_str().unwrap().to_owned()
}

/// Two profiles for two users on one store: each run of each profile gets a token of its own
/// user, and each profile sent its own refresh token exactly once.
fn two_users_on_one_store(store: &str, with_usernames: bool) {
    let TwoUsers {
        home,
        org,
        rt_a,
        rt_b,
        dir,
        key,
    } = two_users(Some(json!({"rotate_refresh_tokens": true})));
    let h = home.path();
    let (ua, ub) = match with_usernames {
        true => (Some(USER_A), Some(USER_B)),
        false => (None, None),
    };
    let config = format!(
        "{}{}{}{}",
        profile(&org, &dir, "a", &rt_a, ua),
        store_table("a", store, &key),
        profile(&org, &dir, "b", &rt_b, ub),
        store_table("b", store, &key),
    );
    let config_path = write_secret(&dir, "sfkeep.toml", &config);
    let before = org.stats()["token_requests"]["refresh_token"]
        .as_u64()
        .unwrap();

    // Interleaved, twice each: the second run of each is served from the shared store.
    let mut seen = Vec::new();
    for name in ["a", "b", "a", "b"] {
        let t = token(h, &config_path, name);
        let expected = if name == "a" { USER_A } else { USER_B };
        assert_eq!(
            user_of(&org, &t),
            expected,
            "profile {name} received another user's token ({store})"
        );
        seen.push((name, t));
    }
    assert_ne!(seen[0].1, seen[1].1);
    assert_eq!(
        seen[0].1, seen[2].1,
        "a's second run adopts a's stored token"
    );
    assert_eq!(
        seen[1].1, seen[3].1,
        "b's second run adopts b's stored token"
    );
    let s = org.stats();
    assert_eq!(
        s["token_requests"]["refresh_token"].as_u64().unwrap() - before,
        2,
        "each profile sends its own refresh token once: {s}"
    );
    assert_eq!(s["refresh_token_reuse_detected"], 0, "{s}");
    for who in [USER_A, USER_B] {
        let (code, _, err) = run({
            let mut c = sfkeep(h);
            let name = if who == USER_A { "a" } else { "b" };
            c.args(["status", "--json", "--config"])
                .arg(&config_path)
                .args(["--profile", name]);
            c
        });
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn two_users_of_one_app_on_one_file_store_never_share_a_token() {
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("tokens.enc");
    two_users_on_one_store(
        &format!("kind = \"file\"\npath = \"{}\"", path.display()),
        false,
    );
}

#[test]
fn two_users_of_one_app_on_one_redis_never_share_a_token() {
    let redis = Redis::start();
    two_users_on_one_store(
        &format!(
            "kind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"",
            redis.port
        ),
        true,
    );
}

/// A record an earlier sfkeep wrote under the app's shared key (the key before it named the
/// identity) holding another user's refresh token: never adopted, and the configured token is
/// not sent while nothing says whose that record is (it may hold the configured token's
/// rotated successor). The message says so.
#[test]
fn a_record_under_the_old_shared_key_is_not_adopted() {
    use sfkeep::store::{CacheKey, EncryptedFileStore, KeyIdentity, Store};
    use sfkeep::token::{GrantKind, TokenRecord};

    let TwoUsers {
        home,
        org,
        rt_a,
        rt_b,
        dir,
        key,
    } = two_users(None);
    let h = home.path();
    let path = dir.join("tokens.enc");
    let store = format!("kind = \"file\"\npath = \"{}\"", path.display());
    let config = format!(
        "{}{}",
        profile(&org, &dir, "a", &rt_a, Some(USER_A)),
        store_table("a", &store, &key)
    );
    let config_path = write_secret(&dir, "sfkeep.toml", &config);

    // B's token, as an earlier sfkeep stored it for a profile of this app.
    let login = org.field("login_url");
    let app = org.field("client_id");
    let legacy = KeyIdentity::new(&login, GrantKind::RefreshToken)
        .client_id(Some(&app))
        .legacy_key();
    let b_token = {
        let url = format!("{login}/services/oauth2/token");
        let v: Value = block_on(async {
            reqwest::Client::new()
                .post(&url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt_b.as_str()),
                    ("client_id", app.as_str()),
                    ("client_secret", org.field("client_secret").as_str()),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        v
    };
    let now = sfkeep::clock::UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let resp = sfkeep::grant::TokenResponse {
        access_token: sfkeep::secret::AccessToken::new(b_token["access_token"].as_str().unwrap()),
        refresh_token: None,
        instance_url: b_token["instance_url"].as_str().unwrap().to_owned(),
        id: b_token["id"].as_str().map(str::to_owned),
        issued_at: None,
        scope: None,
        session_seconds_valid: None,
    };
    let record = TokenRecord::from_response(
        resp,
        GrantKind::RefreshToken,
        sfkeep::token::Issue {
            now,
            session_timeout: std::time::Duration::from_secs(7200),
            introspected_expiry: None,
            sent_refresh_token: Some(sfkeep::secret::RefreshToken::new(rt_b.as_str())),
            refused_refresh_token: None,
            server_offset_ms: 0,
            jitter: 0.0,
        },
    );
    let record = TokenRecord {
        generation: 1,
        ..record
    };
    let file = EncryptedFileStore::new(path.clone(), CacheKey::from_base64(KEY_B64).unwrap());
    block_on(file.compare_and_set(&legacy, None, &record)).unwrap();
    let before = org.stats()["token_requests"]["refresh_token"]
        .as_u64()
        .unwrap();

    let mut c = sfkeep(h);
    c.args(["token", "--config"])
        .arg(&config_path)
        .args(["--profile", "a"]);
    let (code, out, err) = run(c);
    assert_ne!(code, 0, "stdout: {out}");
    assert!(out.trim().is_empty(), "no token printed: {out}");
    assert!(
        err.contains("earlier sfkeep") && err.contains(legacy.as_str()),
        "the message names the old record: {err}"
    );
    assert!(err.contains("sfkeep login --web"), "{err}");
    assert!(!err.contains(&rt_a) && !err.contains(&rt_b), "{err}");
    let s = org.stats();
    assert_eq!(
        s["token_requests"]["refresh_token"].as_u64().unwrap(),
        before,
        "nothing was sent: {s}"
    );
}

/// Two profiles of one app that name neither a user nor a refresh token (their refresh tokens
/// come from `sfkeep login --sfdx-url`) on one Redis: the profile's name keeps their records
/// apart, so each prints its own user's token.
#[test]
fn two_profiles_that_name_no_user_on_one_redis_keep_their_logins_apart() {
    let TwoUsers {
        home,
        org,
        rt_a,
        rt_b,
        dir,
        key,
    } = two_users(None);
    let h = home.path();
    let redis = Redis::start();
    let store = format!(
        "kind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"",
        redis.port
    );
    let secret = write_secret(&dir, "client_secret", &org.field("client_secret"));
    let mut config = String::new();
    for name in ["a", "b"] {
        config.push_str(&format!(
            "[profiles.{name}]\nlogin_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = {{ file = \"{}\" }}\ngrant = \"refresh_token\"\n\n{}",
            org.field("login_url"),
            org.field("client_id"),
            secret.display(),
            store_table(name, &store, &key),
        ));
    }
    let config_path = write_secret(&dir, "sfkeep.toml", &config);
    for (name, rt) in [("a", &rt_a), ("b", &rt_b)] {
        let url = format!(
            "force://{}:{}:{}@{}",
            org.field("client_id"),
            org.field("client_secret"),
            rt,
            org.field("login_url").trim_start_matches("http://")
        );
        let mut child = sfkeep(h)
            .args(["login", "--sfdx-url", "-", "--config"])
            .arg(&config_path)
            .args(["--profile", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(url.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "login {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in ["a", "b", "a", "b"] {
        let t = token(h, &config_path, name);
        let expected = if name == "a" { USER_A } else { USER_B };
        assert_eq!(
            user_of(&org, &t),
            expected,
            "profile {name} received another user's token"
        );
    }
    let s = org.stats();
    assert_eq!(s["refresh_token_reuse_detected"], 0, "{s}");
}
