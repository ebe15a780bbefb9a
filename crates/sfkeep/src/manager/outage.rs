//! What the manager does while the shared store is unreachable, and how it catches up after:
//! fail open or closed, the recovery probe, the write-back.
//!
//! The in-memory token keeps being served. A grant without rotation state (JWT bearer, client credentials, a refresh token with
//! [`Rotation::Off`](super::Rotation::Off)) fails open: the manager refreshes locally (at most
//! one token request per process) and keeps the new token in memory. A rotating refresh token
//! fails closed (see [`OnStoreUnavailable`]). While the store is down, the fast path lets one
//! background probe touch the store at most every [`STORE_PROBE_INTERVAL`]; on the first store
//! operation that succeeds again (`store.recovered`), a token obtained locally during the
//! outage is **written back** with the compare-and-set, so the rest of the fleet adopts it
//! instead of requesting its own (`token.written_back`):
//!
//! | the store holds | write-back |
//! |---|---|
//! | nothing (e.g. Redis restarted empty), or a lower generation | ours is written (compare-and-set on what was read) |
//! | a logout tombstone, whatever its generation | nothing is written: a logout is never undone |
//! | a value this process cannot read, of a generation at least ours | nothing is written |
//! | a higher generation | nothing is written (`refresh.discarded`); the record is adopted if usable |
//! | the same generation, another token | nothing is written (`refresh.discarded`); ours stays in memory until the next refresh |
//! | the same generation, our token | nothing to do |
//! | the same generation, this manager's own declaration of the refresh that obtained ours (`intent.rs`) | ours replaces it |
//!
//! Only a token kept in memory because the store was unavailable waits for write-back; one
//! that lost the compare-and-set to a healthy store never does. A record that carries a
//! refresh token is written back only when rotation is declared off, or when it is the outcome
//! of a rotating refresh this manager declared in the store first (`intent.rs`): no rotating
//! refresh is sent without that declaration, so the token it rotated from is used nowhere
//! else, and the store must get the only valid refresh token back. If a 401 invalidates the token while it is
//! being written back, a refresh starts at once and replaces it in the store. After an outage,
//! a refresh presents the refresh token of the newer of the stored and the in-memory record
//! (the store may still hold one that rotated away meanwhile).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::state::Inner;
use crate::error::{Error, Result};
use crate::event::{AuthEventKind, RefreshReason};
use crate::grant::Grant;
use crate::store::CasOutcome;
use crate::sync::lock;
use crate::token::TokenRecord;

/// While the store is unreachable, the fast path starts at most one background store probe
/// this often (local clock), so a recovery is noticed, and a token obtained during the outage
/// written back, without waiting for the next refresh.
pub const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the manager does while the shared store is unreachable. In every mode a still-valid
/// in-memory token keeps being served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStoreUnavailable {
    /// Fail closed for a rotating refresh token, open for every other grant.
    #[default]
    Auto,
    /// Refresh locally (in-process single-flight: at most one token request per process). The
    /// token is written back to the store once it answers again, unless the store holds a
    /// newer generation by then, and unless the record carries a refresh token that may
    /// rotate (the write-back table is in `src/manager/outage.rs`).
    FailOpen,
    /// Never refresh without the store: once the in-memory token is unusable, callers get
    /// [`Error::StoreUnavailable`] until the store is back.
    FailClosed,
}

/// One step of a write-back (see the write-back table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteBack {
    /// Write ours with the compare-and-set on this stored generation.
    Write {
        /// The generation expected in the store (`None`: nothing).
        replaced: Option<u64>,
    },
    /// Write nothing; what the store holds stays.
    Keep,
    /// Write nothing: another writer's token stays and ours is discarded (`refresh.discarded`).
    Discard,
}

/// The write-back step for `ours` when the store holds `stored`, and `unreadable` is the
/// generation of a value it holds that this process cannot read.
pub(crate) fn decide_write_back(
    stored: Option<&TokenRecord>,
    unreadable: Option<u64>,
    ours: &TokenRecord,
) -> WriteBack {
    match stored {
        Some(s) if s.is_tombstone() => WriteBack::Keep,
        None if unreadable.is_some_and(|g| g >= ours.generation) => WriteBack::Keep,
        Some(s) if s.generation > ours.generation => WriteBack::Discard,
        Some(s) if s.generation == ours.generation && s.fingerprint() != ours.fingerprint() => {
            WriteBack::Discard
        }
        Some(s) if s.generation == ours.generation => WriteBack::Keep,
        _ => WriteBack::Write {
            replaced: stored.map(|s| s.generation),
        },
    }
}

impl Inner {
    /// Refreshing without the shared store is refused: a rotating refresh token, or
    /// [`OnStoreUnavailable::FailClosed`].
    fn fails_closed(&self) -> bool {
        match self.sync.on_unavailable {
            OnStoreUnavailable::FailOpen => false,
            OnStoreUnavailable::FailClosed => true,
            OnStoreUnavailable::Auto => {
                matches!(self.primary, Grant::RefreshToken { .. }) && self.rotation.rotates()
            }
        }
    }

    /// The store is down and this manager fails closed: serve the in-memory token while it is
    /// usable, else [`Error::StoreUnavailable`]. No token request, no cooldown: the store's own
    /// circuit breaker keeps this cheap, and the first success after recovery proceeds.
    pub(super) fn fail_closed_now(&self) -> Option<Result<Arc<TokenRecord>>> {
        if !self.sync.down.load(Ordering::Acquire) || !self.fails_closed() {
            return None;
        }
        Some(match self.current.get() {
            Some(cur) if self.usable(&cur) => Ok(cur),
            _ => Err(Error::StoreUnavailable),
        })
    }

    /// Records a store failure; the event is emitted once per outage.
    pub(super) fn store_failed(&self, e: &Error, rec: Option<&TokenRecord>) {
        if !self.sync.down.swap(true, Ordering::AcqRel) {
            let detail = e.to_string();
            self.emit(AuthEventKind::StoreUnavailable { detail }, rec);
        }
    }

    /// Records a store success; emits `StoreRecovered` after an outage.
    pub(super) fn store_ok(&self) {
        if self.sync.down.swap(false, Ordering::AcqRel) {
            self.emit(AuthEventKind::StoreRecovered, None);
        }
    }

    /// Whether a record kept in memory during an outage may be written back later: one
    /// without a refresh token, one whose refresh token does not rotate, or the outcome of a
    /// rotating refresh this manager declared (`intent.rs`): nobody else may send that refresh
    /// token, so the store must get the new one back.
    pub(super) fn may_write_back(&self, rec: &TokenRecord, declared: bool) -> bool {
        rec.refresh_token.is_none()
            || self.rotation.configured() == super::Rotation::Off
            || declared
    }

    /// The store answered with `stored`: writes back the token obtained during the outage, if
    /// one waits, is still current and usable (see the write-back table). Never adopts here
    /// (the caller adopts a newer record as usual). Returns what the store holds.
    pub(super) async fn write_back(
        self: &Arc<Self>,
        stored: Option<TokenRecord>,
    ) -> Option<TokenRecord> {
        let Some(ours) = lock(&self.sync.write_back).take() else {
            return stored;
        };
        if !self.current.is(&ours) || !self.usable(&ours) {
            return stored;
        }
        let mut stored = stored;
        for _ in 0..2 {
            let unreadable = match &stored {
                None => self.sync.store.unreadable_generation(&self.sync.key),
                Some(_) => None,
            };
            // The store still holds this manager's own declaration of the refresh whose
            // outcome it could not store: the outcome replaces it (`intent.rs`).
            let own_declaration = stored.as_ref().is_some_and(|s| {
                s.generation == ours.generation
                    && s.intent
                        .as_ref()
                        .is_some_and(|i| i.owner == self.owner && !i.settled)
            });
            let decision = if own_declaration {
                WriteBack::Write {
                    replaced: Some(ours.generation),
                }
            } else {
                decide_write_back(stored.as_ref(), unreadable, &ours)
            };
            let replaced = match decision {
                WriteBack::Keep => return stored,
                WriteBack::Discard => {
                    self.emit(AuthEventKind::RefreshDiscarded, stored.as_ref());
                    return stored;
                }
                WriteBack::Write { replaced } => replaced,
            };
            let store = &self.sync.store;
            match store.compare_and_set(&self.sync.key, replaced, &ours).await {
                Ok(CasOutcome::Written) => {
                    self.written_back(&ours, replaced);
                    return Some((*ours).clone());
                }
                Ok(CasOutcome::Conflict(other)) => {
                    self.store_ok();
                    stored = other;
                }
                Err(e) => {
                    self.store_failed(&e, Some(&ours));
                    // Try again on the next success, unless something newer replaced it.
                    lock(&self.sync.write_back).get_or_insert(ours);
                    return stored;
                }
            }
        }
        stored
    }

    fn written_back(self: &Arc<Self>, ours: &Arc<TokenRecord>, replaced: Option<u64>) {
        self.store_ok();
        self.emit(AuthEventKind::TokenWrittenBack { replaced }, Some(ours));
        if self.current.invalidated() == ours.generation {
            // A 401 arrived while it was being written: replace it in the store at once
            // rather than leave a dead token for the fleet to adopt.
            tokio::spawn(Arc::clone(self).refresh_401());
        }
    }

    /// The refresh a 401 during a write-back starts (boxed: it is spawned from inside a
    /// refresh or probe, which the compiler cannot see through).
    fn refresh_401(self: Arc<Self>) -> BoxFuture<'static, ()> {
        async move {
            let _ = self.refresh(RefreshReason::Reactive401).await;
        }
        .boxed()
    }

    /// While the store is down: starts one background probe, at most every
    /// [`STORE_PROBE_INTERVAL`], so its recovery (and the write-back) does not wait for the
    /// next refresh. Cheap when one is running or it is too early: one or two atomic loads.
    pub(super) fn spawn_store_probe(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.sync.start_probe(self.clock.local().now().0) {
            return;
        }
        let me = Arc::clone(self);
        rt.spawn(async move {
            me.probe_store().await;
            me.sync.probe_done();
        });
    }

    /// One recovery probe: read the store (which writes back a token obtained during the
    /// outage) and adopt a newer usable record. Skipped while a refresh runs: it touches the
    /// store itself.
    async fn probe_store(self: &Arc<Self>) {
        let Ok(_sync) = self.sync.serial.try_lock() else {
            return;
        };
        let stored = self.load_stored().await;
        // The reason only selects the check: any usable newer record is adopted.
        self.adopt_if_newer(&stored, RefreshReason::Expired).await;
    }
}
