//! The refresh policy on top of [`super::single_flight`], like smithy-rs's `LazyCache` on top
//! of its `ExpiringCache`: when a refresh is needed, what it does, and what a failure costs.
//!
//! One refresh runs at a time per manager; across processes the store's refresh lock makes it
//! one per fleet (an optimisation: the generation compare-and-set is what fences). A refresh:
//!
//! 1. reads the store and adopts a newer usable record (see [`super::store_sync`]);
//! 2. takes the store's refresh lock, and reads again (another process may have refreshed
//!    while it waited);
//! 3. escalates: the primary grant, then (when the server says only a person could fix the
//!    primary) the fallback grant, else `ReauthRequired` with the cause;
//! 4. builds the record ([`TokenRecord::from_response`]) and persists it.
//!
//! Every token request spends one unit of the [`LoginBudget`](super::limits); a failure starts
//! the [`Cooldown`](super::limits), during which callers get the error at once, without a
//! request. A refresh token the server refused is never sent again ([`super::rotation`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::forget::Epoch;
use super::intent::{Attempt, outcome_unknown};
use super::state::Inner;
use crate::diagnose::Cause;
use crate::error::{Error, Result};
use crate::event::{AuthEventKind, RefreshReason};
use crate::grant::{Grant, TokenResponse};
use crate::secret::RefreshToken;
use crate::store::RefreshLock;
use crate::token::{GrantKind, Issue, TokenRecord};

impl Inner {
    /// Joins the refresh in flight, or starts one in a spawned task, and waits for it up to
    /// the configured wait.
    pub(super) async fn refresh(
        self: &Arc<Self>,
        reason: RefreshReason,
    ) -> Result<Arc<TokenRecord>> {
        let flight = self.flight.join_or_start(
            || {
                // Under the flight's lock: a refresh may have finished meanwhile.
                if let Some(cur) = self.current.get()
                    && self.usable(&cur)
                    && reason != RefreshReason::Proactive
                    && reason != RefreshReason::Forced
                {
                    return Err(Ok(cur));
                }
                // After an interrupted refresh the owner's outcome may land in the store at any
                // moment: no cooldown keeps this process from reading it. Any other cooldown
                // withholds the token request, not a (rate-limited) look at the store, where
                // another process may have stored a newer token (`limits.rs`).
                let now = self.clock.local().now();
                let mut cooling = None;
                if reason != RefreshReason::Forced
                    && let Some(e) = self.cooldown.check(now)
                    && e.cause() != Some(Cause::RefreshInterrupted)
                {
                    if !self.cooldown.may_read_store(now) {
                        return Err(Err(e));
                    }
                    cooling = Some(e);
                }
                let me = Arc::clone(self);
                let epoch = self.forgotten.current();
                Ok(async move { me.run_refresh(reason, epoch, cooling).await })
            },
            |e| Err(Error::Config(format!("the refresh task failed: {e}"))),
        );
        let flight = match flight {
            Ok(f) => f,
            Err(answer) => return answer,
        };
        let wait = self.settings.refresh_wait;
        tokio::time::timeout(wait, flight)
            .await
            .unwrap_or(Err(Error::RefreshTimeout(wait)))
    }

    /// Starts the one background refresh of a Stale token, unless one is running or a failure
    /// is cooling down. Cheap when one is already running: one atomic load.
    pub(super) fn spawn_background_refresh(self: &Arc<Self>) {
        if self.background.load(Ordering::Acquire)
            || self.cooldown.check(self.clock.local().now()).is_some()
            || self.background.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.background.store(false, Ordering::Release);
            return;
        };
        let me = Arc::clone(self);
        rt.spawn(async move {
            let _ = me.refresh(RefreshReason::Proactive).await;
            me.background.store(false, Ordering::Release);
        });
    }

    /// One refresh (the job of the single flight); `epoch` is when it was requested. During a
    /// cooldown (`cooling`: the error it answers with) only the store is read.
    async fn run_refresh(
        self: Arc<Self>,
        reason: RefreshReason,
        epoch: Epoch,
        cooling: Option<Error>,
    ) -> Result<Arc<TokenRecord>> {
        let _sync = self.sync.serial.lock().await;
        let stored = self.load_stored().await;
        if let Some(r) = self.adopt_if_newer(&stored, reason).await {
            self.note_spent(&r);
            return Ok(r);
        }
        if let Some(e) = cooling {
            return Err(e);
        }
        if let Some(r) = self.fail_closed_now() {
            return r;
        }
        let lock = self.take_refresh_lock().await;
        if let Some(r) = self.fail_closed_now() {
            return r;
        }
        // Double-check after the lock: another process may have refreshed while we waited.
        // Without the lock, another member's declared refresh may be in flight: wait for it.
        let stored = self.load_stored().await;
        let stored = self.await_foreign_intent(stored, lock.is_some()).await;
        if let Some(r) = self.adopt_if_newer(&stored, reason).await {
            self.note_spent(&r);
            return Ok(r);
        }
        if let Some(r) = self.fail_closed_now() {
            return r;
        }
        // The lock is held until the outcome is persisted (it is dropped with the attempt).
        match self.obtain(reason, &stored, epoch, lock).await {
            Ok(rec) => {
                self.cooldown.clear();
                Ok(rec)
            }
            Err(e) => {
                self.record_failure(&e, reason);
                Err(e)
            }
        }
    }

    fn record_failure(&self, e: &Error, reason: RefreshReason) {
        self.cooldown.record(e, self.clock.local().now());
        let cause = e.cause().unwrap_or(Cause::Unknown);
        let cur = self.current.get();
        let kind = if e.is_reauth_required() {
            AuthEventKind::ReauthRequired { cause }
        } else {
            let detail = e.to_string();
            AuthEventKind::RefreshFailed {
                reason,
                cause,
                detail,
            }
        };
        self.emit(kind, cur.as_deref());
    }

    /// A new token from the server, persisted: escalation, record building, compare-and-set.
    async fn obtain(
        self: &Arc<Self>,
        reason: RefreshReason,
        stored: &Option<TokenRecord>,
        epoch: Epoch,
        lock: Option<Box<dyn RefreshLock>>,
    ) -> Result<Arc<TokenRecord>> {
        // The newer of the stored and the in-memory record: after an outage the store may
        // still hold an older one whose refresh token has rotated away since.
        let previous = match (stored, self.current.get()) {
            (Some(s), Some(c)) if c.generation > s.generation => Some((*c).clone()),
            (Some(s), _) => Some(s.clone()),
            (None, c) => c.map(|c| (*c).clone()),
        };
        let mut attempt = Attempt {
            previous,
            // A record rejected for its identity still stands in the store: the declaration
            // and the outcome replace it by the compare-and-set on its generation.
            expected: stored
                .as_ref()
                .map(|r| r.generation)
                .or_else(|| self.read_generation()),
            declared: None,
            lock,
            lost_declaration: false,
        };
        let started = Instant::now();
        let escalation = match self.escalate(reason, &mut attempt).await {
            Ok(e) => e,
            // Another member declared first (this one holds no lock): its outcome is due.
            Err(e) if attempt.lost_declaration => {
                let stored = self.load_stored().await;
                let stored = self.await_foreign_intent(stored, false).await;
                return match self.adopt_if_newer(&stored, reason).await {
                    Some(r) => Ok(r),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let (resp, used, sent_rt) = match escalation {
            Escalation::Obtained { resp, used, sent } => (resp, used, sent),
            Escalation::Adopted(rec) => return Ok(rec),
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let rotated = resp.refresh_token.is_some() && used.kind() == GrantKind::RefreshToken;
        if rotated {
            self.rotation.note_rotated();
        }
        let previous = attempt.previous.as_ref();
        let sent_fp = sent_rt.as_ref().map(RefreshToken::fingerprint);
        let mut rec = self.issue_record(resp, used, sent_rt, previous).await;
        let expected = attempt.expected;
        rec.generation = match attempt.declared {
            // The outcome replaces the declaration at its generation: one refresh, one
            // generation, as without an intent (`intent.rs`).
            Some(declared) => declared.max(self.current.generation() + 1),
            None => expected.unwrap_or(0).max(self.current.generation()) + 1,
        };
        let declared = attempt.declared.is_some();
        let rec = self.persist(rec, expected, epoch, declared).await;
        self.note_spent(&rec);
        if rotated && let Some(fp) = sent_fp {
            self.note_rotated_away(&fp, &rec);
        }
        let event = AuthEventKind::TokenRefreshed {
            reason,
            latency_ms,
            rotated,
        };
        self.emit(event, Some(&rec));
        Ok(rec)
    }

    /// Primary grant → fallback grant → `ReauthRequired` with the cause.
    async fn escalate<'g>(
        self: &'g Arc<Self>,
        reason: RefreshReason,
        attempt: &mut Attempt,
    ) -> Result<Escalation<'g>> {
        let e = match self.send(&self.primary, attempt).await {
            Ok((resp, sent)) => {
                let used = &self.primary;
                return Ok(Escalation::Obtained { resp, used, sent });
            }
            Err(e) if e.is_reauth_required() => e,
            Err(e) => return Err(e),
        };
        // Under rotation another process may have rotated first: re-read before declaring
        // the credential dead.
        let again = self.load_stored().await;
        if let Some(r) = self.adopt_if_newer(&again, reason).await {
            self.note_spent(&r);
            return Ok(Escalation::Adopted(r));
        }
        let Some(fallback) = &self.fallback else {
            return Err(e);
        };
        if let Some(s) = &again {
            // The fallback's record replaces whatever the store holds now.
            attempt.expected = Some(s.generation);
        }
        let cause = e.cause().unwrap_or(Cause::Unknown);
        self.emit(
            AuthEventKind::FallbackUsed { cause },
            attempt.previous.as_ref(),
        );
        let (resp, sent) = self.send(fallback, attempt).await?;
        Ok(Escalation::Obtained {
            resp,
            used: fallback,
            sent,
        })
    }

    /// One token request for `grant`, spending one unit of the login budget. A refresh-token
    /// grant presents the previous record's refresh token, else its configured one; never one
    /// the server refused before, never one an interrupted refresh may have rotated
    /// (`intent.rs`), and only after declaring its intent. Returns the refresh token it
    /// presented, if any.
    async fn send(
        &self,
        grant: &Grant,
        attempt: &mut Attempt,
    ) -> Result<(TokenResponse, Option<RefreshToken>)> {
        let previous = attempt.previous.as_ref();
        let stored_rt = previous.and_then(|p| p.refresh_token.clone());
        let bootstrap = stored_rt.is_none();
        let presented: Option<RefreshToken> = grant
            .configured_refresh_token()
            .map(|configured| stored_rt.unwrap_or_else(|| configured.clone()));
        if let (Some(rt), true) = (&presented, bootstrap) {
            self.check_unattributable(rt)?;
            self.check_legacy_key(rt).await?;
        }
        if let Some(rt) = &presented {
            let fp = rt.fingerprint();
            // An unfinished intent first: a token refused because of one keeps its precise
            // cause (`refresh_interrupted`) on every later attempt. Then the configured token
            // is a bootstrap only (`ledger.rs`).
            if self.needs_intent(grant) {
                self.judge_intent(attempt, grant, rt).await?;
                if bootstrap {
                    self.judge_bootstrap(attempt, grant, rt).await?;
                } else {
                    self.judge_stored(attempt, grant, rt).await?;
                }
            }
            let previous = attempt.previous.as_ref();
            if self.rotation.is_refused(&fp, previous) {
                return Err(Error::ReauthRequired {
                    cause: Cause::RefreshTokenRevoked,
                    detail: format!("refresh token {fp} was already refused by the server"),
                });
            }
            self.spend_budget()?;
            if self.needs_intent(grant) {
                self.declare_intent(attempt, rt).await?;
            }
        } else {
            self.spend_budget()?;
        }
        let r = self.source.request(grant, presented.as_ref()).await;
        if let (Err(e), Some(rt)) = (&r, &presented) {
            if e.cause() == Some(Cause::RefreshTokenRevoked) {
                self.rotation.refuse(rt.fingerprint());
            }
            if !outcome_unknown(e) {
                self.withdraw_intent(attempt).await;
            }
        }
        r.map(|resp| (resp, presented))
    }

    /// Spends one unit of the login budget, or says when the next one is free.
    fn spend_budget(&self) -> Result<()> {
        self.budget
            .spend(self.clock.local().now())
            .map_err(|retry_after| {
                let retry_after_ms = retry_after.as_millis() as u64;
                self.emit(AuthEventKind::LoginBudgetHeld { retry_after_ms }, None);
                Error::LoginBudgetExhausted {
                    budget: self.budget.per_hour(),
                    retry_after,
                }
            })
    }

    /// The record for a response of `used`: asks introspection for the expiry when it may
    /// (the grant has a consumer secret, SOAP did not tell), then
    /// [`TokenRecord::from_response`].
    async fn issue_record(
        &self,
        resp: TokenResponse,
        used: &Grant,
        sent_refresh_token: Option<RefreshToken>,
        previous: Option<&TokenRecord>,
    ) -> TokenRecord {
        let now = self.clock.now();
        let secret = used.client_secret().or(self.primary.client_secret());
        let introspected_expiry = match (used.client_id(), secret) {
            (Some(cid), Some(secret))
                if self.settings.introspect && resp.session_seconds_valid.is_none() =>
            {
                let token = &resp.access_token;
                self.source.access_token_expiry(cid, secret, token).await
            }
            _ => None,
        };
        let issue = Issue {
            now,
            session_timeout: self.settings.session_timeout,
            introspected_expiry,
            sent_refresh_token,
            refused_refresh_token: self.rotation.refused_for_record(previous),
            server_offset_ms: self.clock.offset(),
            jitter: fastrand::f64(),
        };
        TokenRecord::from_response(resp, used.kind(), issue)
    }
}

/// What the escalation ended with.
enum Escalation<'g> {
    /// A response of grant `used`, which presented refresh token `sent`.
    Obtained {
        resp: TokenResponse,
        used: &'g Grant,
        sent: Option<RefreshToken>,
    },
    /// Another process rotated first; its record was adopted.
    Adopted(Arc<TokenRecord>),
}
