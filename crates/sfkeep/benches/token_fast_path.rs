//! The fast path of `TokenManager::token()` against the obvious baseline, a
//! `Mutex<Option<Token>>` checked for expiry on every call, with 1 and 2 threads.
//!
//! `cargo bench -p sfkeep --bench token_fast_path`. Results go in BENCHMARKS.md as ratios.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sfkeep::clock::{Clock, SystemClock};
use sfkeep::secret::{ClientSecret, RefreshToken};
use sfkeep::token::{TokenRecord, TokenState};
use sfkeep::{Grant, Token, TokenManager};
use sfkeep_fakeorg::{FakeOrg, FakeOrgConfig};

/// The baseline: what most hand-written caches do.
struct MutexCache {
    slot: Mutex<Option<Arc<TokenRecord>>>,
    clock: SystemClock,
}

impl MutexCache {
    fn get(&self) -> Option<Arc<TokenRecord>> {
        let g = self.slot.lock().unwrap();
        let r = g.as_ref()?;
        (r.state_at(self.clock.now()) == TokenState::Fresh).then(|| Arc::clone(r))
    }
}

fn setup() -> (tokio::runtime::Runtime, FakeOrg, TokenManager, Token) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (org, m, t) = rt.block_on(async {
        let org = FakeOrg::start(FakeOrgConfig::default().accounts(1))
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
        (org, m, t)
    });
    (rt, org, m, t)
}

/// Runs `f` on `threads` threads, `iters` calls each, and returns the mean time per call.
fn contended(threads: usize, iters: u64, f: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let start = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                for _ in 0..iters {
                    f();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed() / threads as u32
}

fn bench(c: &mut Criterion) {
    let (rt, _org, manager, token) = setup();
    let baseline = Arc::new(MutexCache {
        slot: Mutex::new(Some(Arc::new(token.record().clone()))),
        clock: SystemClock,
    });

    let mut g = c.benchmark_group("token_fast_path");
    g.bench_function("sfkeep_cached_token/1_thread", |b| {
        b.iter(|| black_box(manager.cached_token().unwrap()))
    });
    g.bench_function("mutex_baseline/1_thread", |b| {
        b.iter(|| black_box(baseline.get().unwrap()))
    });
    g.bench_function("sfkeep_token_await/1_thread", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(manager.token().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    {
        let threads = 2usize;
        let m = manager.clone();
        g.bench_function(format!("sfkeep_cached_token/{threads}_threads"), |b| {
            let m = m.clone();
            b.iter_custom(move |iters| {
                let m = m.clone();
                contended(
                    threads,
                    iters,
                    Arc::new(move || {
                        black_box(m.cached_token().unwrap());
                    }),
                )
            })
        });
        let base = Arc::clone(&baseline);
        g.bench_function(format!("mutex_baseline/{threads}_threads"), |b| {
            let base = Arc::clone(&base);
            b.iter_custom(move |iters| {
                let base = Arc::clone(&base);
                contended(
                    threads,
                    iters,
                    Arc::new(move || {
                        black_box(base.get().unwrap());
                    }),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
