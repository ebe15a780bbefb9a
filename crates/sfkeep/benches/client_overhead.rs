//! Per-request overhead of the healing client against raw reqwest, same local server, same
//! request (`GET /services/data/v59.0/` with a bearer token on the simulated org).
//!
//! `cargo bench -p sfkeep --bench client_overhead`. Results go in BENCHMARKS.md as a ratio.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use sfkeep::client::Client;
use sfkeep::secret::{ClientSecret, RefreshToken};
use sfkeep::{Grant, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_org, client, raw, url, token) = rt.block_on(async {
        let org = FakeOrg::start(
            FakeOrgConfig::default()
                .accounts(1)
                .daily_api_limit(u64::MAX / 2),
        )
        .await
        .unwrap();
        let i = org.ready_info();
        let m = TokenManager::builder(i.login_url.clone())
            .grant(Grant::refresh_token(
                i.client_id.clone(),
                Some(ClientSecret::new(i.client_secret.clone())),
                RefreshToken::new(i.refresh_token.clone()),
            ))
            .without_tracing_sink()
            .build()
            .unwrap();
        let t = m.token().await.unwrap();
        let url = format!("{}/services/data/v59.0/", t.instance_url());
        let token = t.access_token().expose_secret().to_owned();
        (
            org,
            Client::new(m).unwrap(),
            reqwest::Client::new(),
            url,
            token,
        )
    });
    let path = client.data_path("/");
    let mut g = c.benchmark_group("client_overhead");
    g.bench_function("raw_reqwest", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let r = raw.get(&url).bearer_auth(&token).send().await.unwrap();
                    black_box(r.bytes().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("sfkeep_client", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        client
                            .request(reqwest::Method::GET, &path)
                            .send()
                            .await
                            .unwrap(),
                    );
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
