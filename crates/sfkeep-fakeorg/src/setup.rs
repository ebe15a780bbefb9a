//! Building a fresh org: the JWT key pair, users, connected apps, generated records, the
//! initial refresh token, and the files in the state directory (all mode 0600).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use time::Duration;

use crate::files::write_private;
use crate::ids;
use crate::records::Accounts;
use crate::state::{App, AppPolicy, Inner, Network, RefreshPolicy, Stats, User};

/// The integration user's login name.
pub const USERNAME: &str = "integration@example.com";

/// A generated RSA key pair as PEM.
pub struct KeyPem {
    /// PKCS#8 private key.
    pub private_pem: String,
    /// SubjectPublicKeyInfo public key (the app's registered certificate key).
    pub public_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Generates a fresh RSA-2048 key pair.
pub fn generate_key() -> Option<KeyPem> {
    let kp = KeyPair::generate(KeySize::Rsa2048).ok()?;
    let private: Pkcs8V1Der<'static> = kp.as_der().ok()?;
    let public: PublicKeyX509Der<'static> = kp.public_key().as_der().ok()?;
    Some(KeyPem {
        private_pem: pem("PRIVATE KEY", private.as_ref()),
        public_pem: pem("PUBLIC KEY", public.as_ref()),
    })
}

/// The key pair of this process: generated on first use, then shared by every org the
/// process starts. RSA-2048 generation costs ~0.4 s in a debug build; a test binary starts
/// dozens of orgs, while `sfkeep fake-org` (one org per process) still gets a fresh key.
pub fn process_key() -> Option<KeyPem> {
    static KEY: std::sync::OnceLock<Option<KeyPem>> = std::sync::OnceLock::new();
    KEY.get_or_init(generate_key).as_ref().map(|k| KeyPem {
        private_pem: k.private_pem.clone(),
        public_pem: k.public_pem.clone(),
    })
}

/// Secrets chosen for a new org.
pub struct Secrets {
    /// Default app consumer key.
    pub client_id: String,
    /// Default app consumer secret.
    pub client_secret: String,
    /// Integration user's password.
    pub password: String,
    /// Integration user's security token.
    pub security_token: String,
}

impl Secrets {
    /// Fresh random secrets.
    pub fn generate() -> Self {
        Secrets {
            client_id: format!("3MVG9{}", ids::random_token_chars(80)),
            client_secret: ids::random_hex_upper(64),
            password: format!("Pw{}", ids::random_alnum(14)),
            security_token: ids::random_alnum(24),
        }
    }
}

/// Org-wide settings from the configuration.
pub struct Settings {
    /// Number of generated accounts.
    pub accounts: usize,
    /// Org session timeout.
    pub session_timeout_secs: u64,
    /// Login rate limit.
    pub login_rate_limit: u32,
    /// Daily API limit.
    pub daily_api_limit: u64,
    /// Rotation on the default app.
    pub rotate_refresh_tokens: bool,
}

/// The initial org state.
pub fn initial_state(pod: &str, secrets: &Secrets, key: &KeyPem, s: &Settings) -> Inner {
    let now = time::OffsetDateTime::now_utc();
    let mut seq = 100;
    let mut id = |prefix: &str| {
        seq += 1;
        ids::id18(prefix, pod, seq)
    };
    let profile_id = id("00e");
    let users = vec![
        User {
            id: id("005"),
            username: USERNAME.to_owned(),
            password: secrets.password.clone(),
            security_token: secrets.security_token.clone(),
            first_name: "Integration".into(),
            last_name: "User".into(),
            email: USERNAME.to_owned(),
            profile_id: profile_id.clone(),
            login_id: id("0Yw"),
            active: true,
            frozen: false,
            last_password_change: now - Duration::days(30),
            last_login: None,
            login_modified: now - Duration::days(30),
            api_enabled: true,
            unreadable_objects: Vec::new(),
        },
        User {
            id: id("005"),
            username: "admin@example.com".into(),
            password: ids::random_alnum(20),
            security_token: ids::random_alnum(24),
            first_name: "Org".into(),
            last_name: "Admin".into(),
            email: "admin@example.com".into(),
            profile_id,
            login_id: id("0Yw"),
            active: true,
            frozen: false,
            last_password_change: now - Duration::days(60),
            last_login: None,
            login_modified: now - Duration::days(60),
            api_enabled: true,
            unreadable_objects: Vec::new(),
        },
    ];
    let policy = |rotate: bool| AppPolicy {
        refresh_token_policy: RefreshPolicy::ValidUntilRevoked,
        rotate_refresh_tokens: rotate,
        session_timeout_seconds: None,
        introspect_all: false,
        jwt_preapproved: true,
        api_scope: true,
    };
    let apps = vec![
        App {
            name: "sfkeep Integration".into(),
            client_id: secrets.client_id.clone(),
            client_secret: secrets.client_secret.clone(),
            public_key_pem: key.public_pem.clone(),
            policy: policy(s.rotate_refresh_tokens),
        },
        App {
            name: "Other Integration".into(),
            client_id: format!("3MVG9{}", ids::random_token_chars(80)),
            client_secret: ids::random_hex_upper(64),
            public_key_pem: key.public_pem.clone(),
            policy: policy(false),
        },
    ];
    Inner {
        clock_offset: Duration::ZERO,
        session_timeout_secs: s.session_timeout_secs,
        users,
        apps,
        sessions: HashMap::new(),
        refresh: HashMap::new(),
        families: HashMap::new(),
        codes: HashMap::new(),
        devices: Vec::new(),
        network: Network::default(),
        faults: Vec::new(),
        login_times: HashMap::new(),
        login_rate_limit: s.login_rate_limit,
        daily_api_limit: s.daily_api_limit,
        api_used: 0,
        stats: Stats::default(),
        accounts: Accounts::generate(s.accounts, pod, now),
        login_history: Vec::new(),
        audit: Vec::new(),
        cursors: HashMap::new(),
        cursor_order: VecDeque::new(),
        inflight_refresh: HashSet::new(),
        used_jti: HashSet::new(),
        bulk_jobs: HashMap::new(),
        ingest_jobs: HashMap::new(),
        async_jobs: HashMap::new(),
        seq: 10_000,
        issued_access: Vec::new(),
        password_max_age_secs: None,
    }
}

/// The refresh token an authorization-code login would have left: issued to the default
/// app for the integration user, with a LoginHistory row as Salesforce writes for it.
pub fn initial_refresh_token(inner: &mut Inner, pod: &str, login_url: &str) -> String {
    let now = inner.now();
    let (client_id, scope, app_name) = {
        let a = &inner.apps[0];
        (a.client_id.clone(), a.scope().to_owned(), a.name.clone())
    };
    let user_id = inner.users[0].id.clone();
    let (_, token) = inner.new_family(&client_id, &user_id, &scope, now);
    inner.log_login(
        pod,
        login_url,
        &user_id,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        crate::state::login_status::SUCCESS,
        "Remote Access 2.0",
        &app_name,
    );
    inner.users[0].last_login = Some(now);
    token
}

/// Paths of the files written to the state directory.
pub struct Files {
    /// `jwt.key`.
    pub jwt_key: PathBuf,
    /// `sfkeep.toml`.
    pub profile: PathBuf,
}

fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes the key, the secrets, the cache key and the profile file.
pub fn write_files(
    dir: &Path,
    login_url: &str,
    secrets: &Secrets,
    key: &KeyPem,
    refresh_token: &str,
    session_timeout_secs: u64,
) -> std::io::Result<Files> {
    std::fs::create_dir_all(dir)?;
    // The profile must work from any working directory, so every path in it is absolute.
    let dir = &dir.canonicalize()?;
    let jwt_key = write_private(dir, "jwt.key", key.private_pem.as_bytes())?;
    let client_secret = write_private(dir, "client_secret", secrets.client_secret.as_bytes())?;
    let refresh = write_private(dir, "refresh_token", refresh_token.as_bytes())?;
    let password = write_private(dir, "password", secrets.password.as_bytes())?;
    let security_token = write_private(dir, "security_token", secrets.security_token.as_bytes())?;
    let mut cache_key = [0u8; 32];
    rand::rng().fill_bytes(&mut cache_key);
    let cache = write_private(dir, "cache.key", STANDARD.encode(cache_key).as_bytes())?;
    let tokens = dir.join("tokens.enc");
    let p = |path: &Path| toml_str(&path.display().to_string());
    let profile = format!(
        "[profiles.fake]\n\
         login_url = {login}\n\
         client_id = {client_id}\n\
         client_secret = {{ file = {client_secret} }}\n\
         username = {username}\n\
         refresh_token = {{ file = {refresh} }}\n\
         jwt_key = {{ file = {jwt} }}\n\
         password = {{ file = {password} }}\n\
         security_token = {{ file = {security_token} }}\n\
         grant = \"refresh_token\"\n\
         fallback_grant = \"jwt_bearer\"\n\
         session_timeout_secs = {session_timeout_secs}\n\
         \n\
         [profiles.fake.store]\n\
         kind = \"file\"\n\
         path = {tokens}\n\
         key_file = {cache}\n",
        login = toml_str(login_url),
        client_id = toml_str(&secrets.client_id),
        client_secret = p(&client_secret),
        username = toml_str(USERNAME),
        refresh = p(&refresh),
        jwt = p(&jwt_key),
        password = p(&password),
        security_token = p(&security_token),
        tokens = p(&tokens),
        cache = p(&cache),
    );
    let profile = write_private(dir, "sfkeep.toml", profile.as_bytes())?;
    Ok(Files { jwt_key, profile })
}
