//! Keeping the manager and the shared store in step: adopt and persist (what happens while
//! the store is unreachable, and the write-back after, is in `outage.rs`).
//!
//! Every path that reads the store and changes the current record from it (a refresh, a
//! recovery probe, a logout) runs under [`StoreSync::serial`], one at a time.
//!
//! **Adopt.** A refresh first reads the store (and again after taking the refresh lock):
//!
//! | the store holds | adopted when |
//! |---|---|
//! | nothing, or a logout tombstone | never |
//! | a record whose refresh is in flight (an intent, `intent.rs`) | only at startup, at the generation below (its access token is the one being replaced), so the outcome is adopted after that token's 401 |
//! | a generation not above ours | only at startup (nothing of ours yet), if usable |
//! | a newer generation, refreshing ahead of expiry (`Proactive`) | it is Fresh |
//! | a newer generation, `recover`'s forced refresh | never: a new token is asked for |
//! | a newer generation, otherwise | it is usable (not expired, not the generation a 401 declared dead) |
//!
//! **Persist.** A new token is written with the generation compare-and-set (the generation is
//! the fencing token). On a conflict the other writer's record stays referenced as discarded,
//! ours takes a generation above it and is written again once. The new record is kept in
//! memory whatever the store says: it may hold the only valid (rotated) refresh token.
//!
//! **Identity.** The store key names the identity as far as the configuration does
//! (`src/store/key.rs`); the record names it exactly, by the org and user of its identity URL.
//! The manager remembers the org and user of its own tokens (the org's answer to its own
//! credentials; before it has one, of the first record it adopted). A stored record is treated
//! as absent (`record.rejected`, once per generation) when its identity URL has an unexpected
//! shape, or when it names another org or user than this manager's tokens, or none at all once
//! this manager knows its own. It is then neither adopted nor used for its refresh token, and
//! the next write replaces it by compare-and-set. A record nobody can attribute (an identity
//! URL of another shape, or none) that carries a refresh token other than the configured one
//! also stops the configured token from being sent ([`Error::UnattributableRecord`]): it may
//! be this identity's rotated successor, and sending the spent one revokes the family.
//!
//! **Clock.** A stored record carries its writer's clock offset (`server_offset_ms`), but a
//! reader never takes it: it is another host's clock, and one host hours off would make every
//! reader misjudge every record. A reader that has not seen a `Date` header yet judges with its
//! own clock, except when the record was issued more than [`FUTURE_ISSUE_TOLERANCE`] in its
//! future: then its own clock is behind, and it measures the server's `Date` first (one
//! request that consumes nothing, [`super::TokenSource::probe_server_date`]). If the record
//! is still in the future, or nothing could be measured, it is not adopted (`record.rejected`)
//! and the refresh that follows measures the clock from the token response. A record that
//! looks expired to an unmeasured clock is also judged after a measurement (that clock may be
//! ahead, and a refresh would be spent for nothing).
//!
//! Before the configured refresh token is sent (no record holds a newer one), the key an
//! earlier sfkeep used for every user of the app (before keys named the identity) is read:
//! a record there with another refresh token may be another user's, or hold the rotated
//! successor of the configured token, so nothing is sent and the caller gets
//! [`Error::LegacyStoreRecord`]. A record there with the configured token itself is no
//! obstacle (nothing rotated). Such a record is never adopted.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::OnStoreUnavailable;
use super::STORE_PROBE_INTERVAL;
use super::state::Inner;
use crate::clock::UnixMillis;
use crate::error::{Error, Result};
use crate::event::{AuthEventKind, RefreshReason};
use crate::secret::RefreshToken;
use crate::store::{CasOutcome, OrgUser, RefreshLock, Store, StoreKey};
use crate::sync::lock;
use crate::token::{TokenRecord, TokenState};

/// How far in the future of this machine's clock a stored record's `issued_at` may lie before
/// the clock is taken to be behind the server's (see "Clock" in the module docs): above the
/// one-second resolution of `Date`, far below the 30-second expiry margin.
pub const FUTURE_ISSUE_TOLERANCE: Duration = Duration::from_secs(5);

/// The store, and what the manager knows about its availability.
#[derive(Debug)]
pub(crate) struct StoreSync {
    pub(super) store: Arc<dyn Store>,
    pub(super) key: StoreKey,
    pub(super) on_unavailable: OnStoreUnavailable,
    /// The last store operation failed (events are emitted once per transition).
    pub(super) down: AtomicBool,
    /// A token obtained while the store was unreachable, to write back once it answers again.
    pub(super) write_back: Mutex<Option<Arc<TokenRecord>>>,
    /// Serialises what reads the store and changes the current record from it.
    pub(super) serial: tokio::sync::Mutex<()>,
    /// A recovery probe is running.
    probing: AtomicBool,
    /// Local time (ms) before which no new recovery probe starts.
    next_probe: AtomicI64,
    /// The org and user this manager's tokens belong to, once known (see "Identity").
    identity: Mutex<Option<OrgUser>>,
    /// The generation of the last record rejected for its identity (0: none), so that the
    /// event is emitted once per record, not once per read.
    last_rejected: AtomicU64,
    /// The key an earlier sfkeep used for this credential, when it differs (see "Identity").
    legacy_key: Option<StoreKey>,
    /// The last read found a record nobody can attribute, carrying this refresh token, and
    /// why (see "Identity").
    unattributable: Mutex<Option<(u64, RefreshToken, String)>>,
    /// The generation the store held at the last successful read, whether or not that record
    /// was used: a rotating refresh declares its intent over it with the compare-and-set
    /// (`intent.rs`), also when the record was rejected for its identity.
    read_generation: Mutex<Option<u64>>,
}

impl StoreSync {
    pub(crate) fn new(store: Arc<dyn Store>, key: StoreKey, mode: OnStoreUnavailable) -> Self {
        Self {
            store,
            key,
            on_unavailable: mode,
            down: AtomicBool::new(false),
            write_back: Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
            probing: AtomicBool::new(false),
            next_probe: AtomicI64::new(i64::MIN),
            identity: Mutex::new(None),
            last_rejected: AtomicU64::new(0),
            legacy_key: None,
            unattributable: Mutex::new(None),
            read_generation: Mutex::new(None),
        }
    }

    /// Also checks the key an earlier sfkeep used for this credential before the configured
    /// refresh token is sent (see "Identity").
    pub(crate) fn with_legacy_key(mut self, legacy: Option<StoreKey>) -> Self {
        self.legacy_key = legacy.filter(|k| *k != self.key);
        self
    }

    /// Remembers the identity of `rec`: always for a token this manager obtained itself
    /// (`own`), else only when none is known yet. An identity URL that does not parse is
    /// never remembered.
    fn note_identity(&self, rec: &TokenRecord, own: bool) {
        if let Some(Ok(id)) = OrgUser::of_record(rec) {
            let mut known = lock(&self.identity);
            if own || known.is_none() {
                *known = Some(id);
            }
        }
    }

    /// Why `rec` may not be used by this manager (see "Identity"), or `Ok`. The flag says
    /// whether the record is certainly another identity's (else nobody can tell whose it is).
    fn identity_verdict(&self, rec: &TokenRecord) -> std::result::Result<(), (String, bool)> {
        let ours = lock(&self.identity).clone();
        match (OrgUser::of_record(rec), ours) {
            (Some(Err(e)), _) => Err((
                format!("{e}, so sfkeep cannot tell whose token it is"),
                false,
            )),
            (Some(Ok(theirs)), Some(ours)) if theirs != ours => Err((
                format!("it belongs to {theirs}, this process's tokens to {ours}"),
                true,
            )),
            (None, Some(ours)) => Err((
                format!("it has no identity URL, and this process's tokens belong to {ours}"),
                false,
            )),
            _ => Ok(()),
        }
    }

    /// Whether the last store operation failed.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Forgets any token waiting for write-back (a logout).
    pub(crate) fn drop_write_back(&self) {
        *lock(&self.write_back) = None;
    }

    /// Whether a probe may start at local time `now_ms`; if so, it is marked running.
    pub(super) fn start_probe(&self, now_ms: i64) -> bool {
        if self.probing.load(Ordering::Acquire) || now_ms < self.next_probe.load(Ordering::Acquire)
        {
            return false;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let next = now_ms.saturating_add(STORE_PROBE_INTERVAL.as_millis() as i64);
        self.next_probe.store(next, Ordering::Release);
        true
    }

    pub(super) fn probe_done(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

/// Whether a refresh for `reason` adopts `stored` (see the adopt table in the module docs).
/// `local_gen` is ours (0: none); `usable` says whether a record is neither expired nor dead.
pub(crate) fn adoptable(
    stored: &TokenRecord,
    local_gen: u64,
    reason: RefreshReason,
    now: UnixMillis,
    usable: impl Fn(&TokenRecord) -> bool,
) -> bool {
    if stored.is_tombstone()
        || (stored.generation <= local_gen && reason != RefreshReason::Startup)
        || (stored.intent.is_some() && reason != RefreshReason::Startup)
    {
        return false;
    }
    match reason {
        RefreshReason::Proactive => stored.state_at(now) == TokenState::Fresh,
        RefreshReason::Forced => false,
        _ => usable(stored),
    }
}

impl Inner {
    /// Adopts `stored` if the adopt table says so; returns it as the current record then.
    pub(super) async fn adopt_if_newer(
        &self,
        stored: &Option<TokenRecord>,
        reason: RefreshReason,
    ) -> Option<Arc<TokenRecord>> {
        let stored = stored.as_ref().filter(|r| !r.is_tombstone())?;
        let local_gen = self.current.generation();
        if stored.generation <= local_gen && reason != RefreshReason::Startup {
            return None;
        }
        // Before judging its state (see "Clock"): never with the writer's offset.
        if !self.clock_can_judge(stored).await {
            return None;
        }
        let now = self.clock.now();
        if !adoptable(stored, self.current.generation(), reason, now, |r| {
            self.usable(r)
        }) {
            return None;
        }
        let mut rec = stored.clone();
        if rec.intent.is_some() {
            // A declaration (adopted only at startup) carries the access token of the
            // generation below it, and the owner's outcome replaces it at its own generation:
            // held at the declaration's generation, the outcome would never look newer, and
            // this process would refresh again after the old token's 401 (`intent.rs`).
            rec.generation = rec.generation.saturating_sub(1);
        }
        let rec = Arc::new(rec);
        self.sync.note_identity(&rec, false);
        self.rotation.note_record(&self.primary, &rec);
        self.current.set(Some(Arc::clone(&rec)));
        // A usable newer token ends a failure's cooldown (`limits.rs`): the status no longer
        // says re-authorization is required once another process has re-authorized.
        self.cooldown.clear();
        self.emit(AuthEventKind::TokenAdopted, Some(&rec));
        Some(rec)
    }

    /// Whether this process's clock may judge `stored` (see "Clock" in the module docs). A
    /// record issued more than [`FUTURE_ISSUE_TOLERANCE`] in the future of a clock that has
    /// not measured the server's yet means the local clock is behind: the server's `Date` is
    /// measured first. A record still in the future then (or when nothing could be measured)
    /// is not judged, so not adopted: the refresh that follows measures the clock. A record
    /// that looks unusable to an unmeasured clock is judged after a measurement too (the
    /// clock may be ahead), whatever the measurement gave.
    async fn clock_can_judge(&self, stored: &TokenRecord) -> bool {
        let ahead = |now: UnixMillis| {
            stored.issued_at.0
                > now
                    .0
                    .saturating_add(FUTURE_ISSUE_TOLERANCE.as_millis() as i64)
        };
        if self.clock.observed() {
            return true;
        }
        let in_future = ahead(self.clock.now());
        if !in_future && self.usable(stored) {
            return true;
        }
        // In the future, or unusable by this clock (which may be ahead: then a refresh would
        // be spent for nothing): measure first.
        let measured = self.source.probe_server_date().await;
        if !in_future {
            return true;
        }
        let fits = measured && !ahead(self.clock.now());
        if !fits {
            let detail = format!(
                "the stored record of generation {} was issued at {} (server clock), after this machine's time {}, and {}: it is not used until a token response measures the clock",
                stored.generation,
                stored.issued_at,
                self.clock.local().now(),
                if measured {
                    "the server's Date says so too"
                } else {
                    "the server's Date could not be read"
                }
            );
            self.emit(AuthEventKind::RecordRejected { detail }, None);
        }
        fits
    }

    /// Takes the cross-process refresh lock, waiting up to the configured wait. `None` when it
    /// was not acquired in time or the store failed (the compare-and-set still fences).
    pub(super) async fn take_refresh_lock(&self) -> Option<Box<dyn RefreshLock>> {
        match self
            .sync
            .store
            .lock(&self.sync.key, self.settings.lock_wait)
            .await
        {
            Ok(l) => {
                self.store_ok();
                l
            }
            Err(e) => {
                self.store_failed(&e, None);
                None
            }
        }
    }

    /// Reads the store's record. When the store answers and a token obtained during an outage
    /// waits to be written back, writes it back first; returns what the store holds then.
    pub(super) async fn load_stored(self: &Arc<Self>) -> Option<TokenRecord> {
        match self.sync.store.load(&self.sync.key).await {
            Ok(r) => {
                self.store_ok();
                let r = self.write_back(r).await;
                *lock(&self.sync.read_generation) = r.as_ref().map(|r| r.generation);
                self.attributable(r)
            }
            Err(e) => {
                self.store_failed(&e, None);
                None
            }
        }
    }

    /// Whether the configured refresh token `configured` may be sent as far as the earlier
    /// key format is concerned (see "Identity"): an error when the key an earlier sfkeep used
    /// holds a record with another refresh token. A store that cannot be read is the same
    /// outage the caller already decided on (fail open or closed), so it is no obstacle here.
    pub(super) async fn check_legacy_key(&self, configured: &RefreshToken) -> Result<()> {
        let Some(old) = &self.sync.legacy_key else {
            return Ok(());
        };
        let found = match self.sync.store.load(old).await {
            Ok(r) => r,
            Err(e) => {
                self.store_failed(&e, None);
                return Ok(());
            }
        };
        match found {
            Some(r)
                if !r.is_tombstone()
                    && r.refresh_token.as_ref().is_some_and(|t| t != configured) =>
            {
                Err(Error::LegacyStoreRecord {
                    old_key: old.to_string(),
                    key: self.sync.key.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the configured refresh token `configured` may be sent although the last read
    /// found a record nobody can attribute (see "Identity"): not when that record carries
    /// another refresh token, which may be the configured one's rotated successor.
    pub(super) fn check_unattributable(&self, configured: &RefreshToken) -> Result<()> {
        match &*lock(&self.sync.unattributable) {
            Some((generation, rt, detail)) if rt != configured => {
                Err(Error::UnattributableRecord {
                    generation: *generation,
                    detail: detail.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The generation the store held at the last successful read, used or rejected.
    pub(super) fn read_generation(&self) -> Option<u64> {
        *lock(&self.sync.read_generation)
    }

    /// `stored`, or `None` when it belongs to another identity (see "Identity" in the module
    /// docs; the event once per generation).
    fn attributable(&self, stored: Option<TokenRecord>) -> Option<TokenRecord> {
        *lock(&self.sync.unattributable) = None;
        let rec = stored?;
        if rec.is_tombstone() {
            return Some(rec);
        }
        match self.sync.identity_verdict(&rec) {
            Ok(()) => Some(rec),
            Err((detail, certain)) => {
                if let (false, Some(rt)) = (certain, &rec.refresh_token) {
                    *lock(&self.sync.unattributable) =
                        Some((rec.generation, rt.clone(), detail.clone()));
                }
                if self
                    .sync
                    .last_rejected
                    .swap(rec.generation, Ordering::AcqRel)
                    != rec.generation
                {
                    let detail = format!(
                        "the stored record of generation {} was not used: {detail}",
                        rec.generation
                    );
                    self.emit(AuthEventKind::RecordRejected { detail }, None);
                }
                None
            }
        }
    }

    /// Writes the new record with compare-and-set and makes it current; see "Persist" in the
    /// module docs. A record kept only in memory because the store was unavailable is queued
    /// for write-back when it may be. A refresh requested before a `forget()` ended (`epoch`
    /// moved) keeps neither: its token goes only to the callers that waited for it.
    pub(super) async fn persist(
        &self,
        mut rec: TokenRecord,
        expected: Option<u64>,
        epoch: super::forget::Epoch,
        declared: bool,
    ) -> Arc<TokenRecord> {
        if !self.forgotten.unchanged_since(epoch) {
            self.emit(AuthEventKind::RefreshDiscarded, Some(&rec));
            return Arc::new(rec);
        }
        let mut expected = expected;
        let mut unavailable = false;
        for _ in 0..2 {
            match self
                .sync
                .store
                .compare_and_set(&self.sync.key, expected, &rec)
                .await
            {
                Ok(CasOutcome::Written) => {
                    self.store_ok();
                    break;
                }
                Ok(CasOutcome::Conflict(other)) => {
                    self.store_ok();
                    self.emit(AuthEventKind::RefreshDiscarded, other.as_ref());
                    // Ours is the newest token the server issued; keep the fencing order.
                    let other_gen = other.as_ref().map(|r| r.generation);
                    rec.generation = rec.generation.max(other_gen.unwrap_or(0) + 1);
                    expected = other_gen;
                }
                Err(e) => {
                    self.store_failed(&e, Some(&rec));
                    unavailable = true;
                    break;
                }
            }
        }
        let rec = Arc::new(rec);
        self.sync.note_identity(&rec, true);
        // A newer record supersedes any older one waiting for write-back. Only a store that
        // failed queues one: losing the compare-and-set to a healthy store does not.
        *lock(&self.sync.write_back) =
            (unavailable && self.may_write_back(&rec, declared)).then(|| Arc::clone(&rec));
        self.current.set(Some(Arc::clone(&rec)));
        rec
    }
}
