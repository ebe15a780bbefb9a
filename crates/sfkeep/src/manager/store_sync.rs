//! Keeping the manager and the shared store in step: adopt, persist, write back, probe.
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
//! **When the store is unreachable.** The in-memory token keeps being served. A grant without
//! rotation state (JWT bearer, client credentials, a refresh token with
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

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::state::Inner;
use crate::clock::UnixMillis;
use crate::error::{Error, Result};
use crate::event::{AuthEventKind, RefreshReason};
use crate::grant::Grant;
use crate::secret::RefreshToken;
use crate::store::{CasOutcome, OrgUser, RefreshLock, Store, StoreKey};
use crate::sync::lock;
use crate::token::{TokenRecord, TokenState};

/// How far in the future of this machine's clock a stored record's `issued_at` may lie before
/// the clock is taken to be behind the server's (see "Clock" in the module docs): above the
/// one-second resolution of `Date`, far below the 30-second expiry margin.
pub const FUTURE_ISSUE_TOLERANCE: Duration = Duration::from_secs(5);

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
    /// rotate (the write-back table is in `src/manager/store_sync.rs`).
    FailOpen,
    /// Never refresh without the store: once the in-memory token is unusable, callers get
    /// [`Error::StoreUnavailable`] until the store is back.
    FailClosed,
}

/// The store, and what the manager knows about its availability.
#[derive(Debug)]
pub(crate) struct StoreSync {
    pub(super) store: Arc<dyn Store>,
    pub(super) key: StoreKey,
    on_unavailable: OnStoreUnavailable,
    /// The last store operation failed (events are emitted once per transition).
    down: AtomicBool,
    /// A token obtained while the store was unreachable, to write back once it answers again.
    write_back: Mutex<Option<Arc<TokenRecord>>>,
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
    fn start_probe(&self, now_ms: i64) -> bool {
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

    fn probe_done(&self) {
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

    /// Whether a record kept in memory during an outage may be written back later: one
    /// without a refresh token, one whose refresh token does not rotate, or the outcome of a
    /// rotating refresh this manager declared (`intent.rs`): nobody else may send that refresh
    /// token, so the store must get the new one back.
    fn may_write_back(&self, rec: &TokenRecord, declared: bool) -> bool {
        rec.refresh_token.is_none()
            || self.rotation.configured() == super::Rotation::Off
            || declared
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

    /// The store answered with `stored`: writes back the token obtained during the outage, if
    /// one waits, is still current and usable (see the write-back table). Never adopts here
    /// (the caller adopts a newer record as usual). Returns what the store holds.
    async fn write_back(self: &Arc<Self>, stored: Option<TokenRecord>) -> Option<TokenRecord> {
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
