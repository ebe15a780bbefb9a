//! A minimal `sfkeep proxy` for `scripts/bench proxy`: forwards to a fixed upstream with a
//! seeded, long-lived token, so the benchmark measures the proxy and not token requests.
//!
//! ```text
//! cargo run --release -p sfkeep-proxy --example bench_proxy -- \
//!     --listen 127.0.0.1:9002 --upstream http://127.0.0.1:9000 [--threads 1]
//! ```
//! Prints `ready http://ADDR` on stdout when listening; stops on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use sfkeep::clock::UnixMillis;
use sfkeep::secret::{AccessToken, ClientSecret};
use sfkeep::store::{MemoryStore, Store, StoreKey};
use sfkeep::token::{ExpirySource, GrantKind, TokenRecord};
use sfkeep::{Grant, TokenManager};
use sfkeep_proxy::Proxy;

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = arg("--listen")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let upstream = arg("--upstream").ok_or("--upstream URL is required")?;
    let threads: usize = arg("--threads").unwrap_or_else(|| "1".into()).parse()?;
    // One thread: a current-thread runtime (no work-stealing machinery), like one nginx worker.
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let store = Arc::new(MemoryStore::new());
        let key = StoreKey::from_string("bench");
        let record = TokenRecord {
            access_token: AccessToken::new("00Dbench!static-token"),
            refresh_token: None,
            instance_url: upstream,
            id_url: None,
            scope: None,
            issued_at: UnixMillis(now),
            expires_at: UnixMillis(now + 24 * 3_600_000),
            refresh_at: UnixMillis(now + 23 * 3_600_000),
            expiry_source: ExpirySource::Configured,
            generation: 1,
            grant: GrantKind::ClientCredentials,
            refused_refresh_token: None,
            intent: None,
            server_offset_ms: 0,
        };
        store.compare_and_set(&key, None, &record).await?;
        let manager = TokenManager::builder("http://127.0.0.1:9")
            .grant(Grant::client_credentials(
                "bench",
                ClientSecret::new("bench"),
            ))
            .store(store)
            .store_key(key)
            .introspect(false)
            .without_tracing_sink()
            .build()?;
        manager.token().await?;
        Proxy::builder(manager)
            .listen(listen)
            .build()?
            .run(|addr| println!("ready http://{addr}"), async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await?;
        Ok(())
    })
}
