//! Pull Accounts from Salesforce into a billing system — done right.
//!
//! The integration that motivates sfkeep: it runs for weeks, and one morning every call fails
//! with `INVALID_SESSION_ID`. Here the token manager refreshes before expiry, heals once after a
//! 401, and stops with a cause and a fix when only a person can help.
//!
//! Against the simulated org:
//!
//! ```sh
//! cargo run -p sfkeep-cli -- fake-org --accounts 5000 > /tmp/org.json &
//! cargo run -p sfkeep --example pull_accounts -- /tmp/org.json billing.jsonl
//! curl -X POST http://127.0.0.1:PORT/_fake/users/integration@example.com/logout   # and run again
//! ```
//!
//! Against a real org, set `SF_LOGIN_URL`, `SF_CLIENT_ID`, `SF_CLIENT_SECRET` and
//! `SF_REFRESH_TOKEN` instead of passing the JSON file.

use std::io::Write;

use sfkeep::client::Client;
use sfkeep::secret::{ClientSecret, RefreshToken};
use sfkeep::{Grant, TokenManager};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        // Errors never contain secrets; print the cause and its fix.
        eprintln!("pull_accounts: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ready = args.next();
    let out_path = args.next().unwrap_or_else(|| "billing.jsonl".into());
    let (login_url, client_id, secret, refresh) = match ready {
        Some(path) if path.ends_with(".json") => {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (
                s("login_url"),
                s("client_id"),
                s("client_secret"),
                s("refresh_token"),
            )
        }
        _ => {
            let e = |k: &str| {
                std::env::var(k)
                    .map_err(|_| format!("set {k} (or pass the fake org's ready line file)"))
            };
            (
                e("SF_LOGIN_URL")?,
                e("SF_CLIENT_ID")?,
                e("SF_CLIENT_SECRET")?,
                e("SF_REFRESH_TOKEN")?,
            )
        }
    };
    let manager = TokenManager::builder(login_url)
        .grant(Grant::refresh_token(
            client_id,
            Some(ClientSecret::new(secret)),
            RefreshToken::new(refresh),
        ))
        .build()?;
    let client = Client::new(manager)?;

    let mut pages = client.query("SELECT Id, Name, AccountNumber, AnnualRevenue, SystemModstamp FROM Account ORDER BY SystemModstamp, Id");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
    let mut n = 0usize;
    while let Some(page) = pages.next_page().await? {
        for mut rec in page {
            if let Some(o) = rec.as_object_mut() {
                o.remove("attributes");
            }
            serde_json::to_writer(&mut out, &rec)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    out.flush()?;
    println!(
        "pulled {n} accounts into {out_path} (token state: {})",
        client.manager().status().state
    );
    Ok(())
}
