//! The current record and the lock-free fast path of [`super::TokenManager::token`].
//!
//! [`Current`] holds the record every caller is served from. Reading it must cost no lock and
//! write no cache line another thread reads: each thread keeps its own copy of the record
//! (refreshed when a version counter moves) and hands out clones of that, so the reference
//! count it bumps is thread-private and the fast path scales with threads instead of bouncing
//! one counter between cores (`BENCHMARKS.md`, token fast path). The expiry check reads the
//! coarse clock; nothing here blocks.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwapOption;

use super::state::Inner;
use crate::token::{Token, TokenRecord, TokenState};

/// The record callers are served from, and the generation a 401 declared dead.
#[derive(Debug)]
pub(crate) struct Current {
    slot: ArcSwapOption<TokenRecord>,
    /// Bumped on every change of `slot` (never reused, unlike generations after a `forget`),
    /// so the fast path checks its thread-local copy with one shared read.
    version: AtomicU64,
    /// Identifies this manager in the thread-local cache.
    id: usize,
    /// The generation a 401 declared dead (0: none; generations start at 1).
    invalidated: AtomicU64,
}

/// Source of [`Current::id`].
static NEXT_MANAGER_ID: AtomicUsize = AtomicUsize::new(1);
/// Thread-local entries kept per thread (a few managers per process is the norm).
const HOT_ENTRIES: usize = 8;

/// This thread's private copy of a manager's current record.
struct HotEntry {
    manager: usize,
    version: u64,
    record: Arc<TokenRecord>,
}

thread_local! {
    /// Per-thread copies of current records: see the module docs.
    static HOT: RefCell<Vec<HotEntry>> = const { RefCell::new(Vec::new()) };
}

impl Current {
    pub(crate) fn new() -> Self {
        Self {
            slot: ArcSwapOption::empty(),
            version: AtomicU64::new(0),
            id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
            invalidated: AtomicU64::new(0),
        }
    }

    /// The current record.
    pub(crate) fn get(&self) -> Option<Arc<TokenRecord>> {
        self.slot.load_full()
    }

    /// The current generation, 0 when there is no record.
    pub(crate) fn generation(&self) -> u64 {
        self.slot.load().as_ref().map_or(0, |r| r.generation)
    }

    /// Whether `rec` is the current record (the same allocation).
    pub(crate) fn is(&self, rec: &Arc<TokenRecord>) -> bool {
        self.slot
            .load()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, rec))
    }

    /// Makes `rec` current (or clears it), and publishes the change for the fast path.
    pub(crate) fn set(&self, rec: Option<Arc<TokenRecord>>) {
        self.slot.store(rec);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The generation a 401 declared dead (0: none).
    pub(crate) fn invalidated(&self) -> u64 {
        self.invalidated.load(Ordering::Acquire)
    }

    /// Declares `generation` dead; returns whether it was not already.
    pub(crate) fn invalidate(&self, generation: u64) -> bool {
        self.invalidated.swap(generation, Ordering::AcqRel) != generation
    }

    /// This thread's copy of the current record, refreshed from the shared slot when the
    /// version moved.
    fn hot(&self) -> Option<Arc<TokenRecord>> {
        let version = self.version.load(Ordering::Acquire);
        HOT.with(|hot| {
            let mut hot = hot.borrow_mut();
            if let Some(e) = hot.iter().find(|e| e.manager == self.id)
                && e.version == version
            {
                return Some(Arc::clone(&e.record));
            }
            let shared = self.slot.load_full()?;
            let private = Arc::new((*shared).clone());
            hot.retain(|e| e.manager != self.id);
            if hot.len() >= HOT_ENTRIES {
                hot.remove(0);
            }
            hot.push(HotEntry {
                manager: self.id,
                version,
                record: Arc::clone(&private),
            });
            Some(private)
        })
    }
}

impl Inner {
    /// The fast path: a usable cached token, or `None` when the caller must wait for a
    /// refresh. A Stale token starts the background refresh; a store that is down gets its
    /// recovery probe. Lock-free.
    pub(super) fn cached(self: &Arc<Self>) -> Option<Token> {
        let rec = self.current.hot()?;
        if rec.generation == self.current.invalidated() {
            return None;
        }
        if self.sync.is_down() {
            self.spawn_store_probe();
        }
        match rec.state_at(self.clock.now()) {
            TokenState::Fresh => Some(Token::new(rec)),
            TokenState::Stale => {
                self.spawn_background_refresh();
                Some(Token::new(rec))
            }
            TokenState::Expired => None,
        }
    }
}
