//! The intent record: a rotating refresh is declared in the store before it is sent, and a
//! refresh that finds one unfinished never presents that refresh token blindly.
//!
//! Salesforce completes a token request it has received even when the client is gone, and
//! revokes the whole token family when a rotated-out refresh token is presented again
//! (`docs/rotation-safety.md`). So a refresh that rotated at the org but whose answer never
//! reached the store (the sender crashed or stalled past its lock, the response was lost)
//! leaves the stored refresh token dead. Before a refresh-token grant is sent (unless rotation
//! is declared off), the sender writes [`RefreshIntent`] into the record with the generation
//! compare-and-set, one generation above the one it read (so a member that read before the
//! declaration cannot declare or write over it); the outcome (or the withdrawal) replaces the
//! declaration at that same generation, with a compare-and-set on it, so one refresh still
//! advances the generation by one. Immediately before sending, the sender re-checks that it still holds the
//! refresh lock: one that stalled past the lock's expiry sends nothing.
//!
//! | found before sending | what happens |
//! |---|---|
//! | no intent, or one for another refresh token | declare ours (compare-and-set), then send |
//! | the declaration loses the compare-and-set | nothing is sent; when the winner's declaration is in flight, its outcome is awaited and adopted (as below); else the next refresh re-reads the store |
//! | the refresh lock was lost by the time the intent is declared | nothing is sent; the intent is withdrawn (compare-and-set) |
//! | the store cannot take the declaration | nothing is sent ([`Error::Store`]): no rotating refresh without a store that keeps its answer |
//! | an intent of another member that may still hold the lock (this refresh did not get it), younger than twice the lock wait | nothing is sent: the store is read again until the owner's outcome replaces it (then adopted), for at most the lock wait; after that a transient error |
//! | an unfinished intent (ours from an earlier attempt, or its owner lost the lock) | introspection of the refresh token (`token_type_hint=refresh_token`, when the grant has a secret): active → send; anything else → `ReauthRequired` with [`Cause::RefreshInterrupted`], the token is never sent again, and the fallback grant (if any) takes over |
//!
//! | outcome | the record |
//! |---|---|
//! | a token response | the new record (no intent) replaces it, at the declaration's generation |
//! | an error answer from the token endpoint (nothing rotated) | the intent is marked settled (the record is still not adopted as a newer token) |
//! | no connection could be made (refused, unreachable) | the intent is marked settled: nothing reached the org |
//! | no answer (any other transport failure, timeout, unreadable 200) | the intent stays: the outcome is unknown |

use std::sync::Arc;

use super::ledger::{Lookup, Spent};
use super::rotation::Rotation;
use super::state::Inner;
use crate::diagnose::Cause;
use crate::error::{Error, Result};
use crate::grant::{Grant, GrantKind};
use crate::secret::RefreshToken;
use crate::store::{CasOutcome, RefreshLock};
use crate::token::{RefreshIntent, TokenRecord};

/// How often a member without the refresh lock reads the store while another member's
/// declared refresh is in flight ([`Inner::await_foreign_intent`]).
pub(crate) const OWNER_OUTCOME_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// What one refresh attempt knows about the store while it escalates.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The newer of the stored and the in-memory record.
    pub(crate) previous: Option<TokenRecord>,
    /// The generation the store holds (the compare-and-set's expectation).
    pub(crate) expected: Option<u64>,
    /// Generation of the intent this attempt declared, while it stands.
    pub(crate) declared: Option<u64>,
    /// The store's refresh lock, when this refresh holds it (re-checked before sending).
    pub(crate) lock: Option<Box<dyn RefreshLock>>,
    /// Another member's write won the declaration's compare-and-set: nothing was sent, and
    /// that member's refresh may be in flight.
    pub(crate) lost_declaration: bool,
}

impl Inner {
    /// Whether sending `grant` needs a declared intent: a refresh-token grant unless rotation
    /// is declared off.
    pub(super) fn needs_intent(&self, grant: &Grant) -> bool {
        grant.configured_refresh_token().is_some() && self.rotation.configured() != Rotation::Off
    }

    /// Before presenting `rt`: judges an intent found for it in the previous record (see the
    /// first table). `Ok` means it may be sent.
    pub(super) async fn judge_intent(
        &self,
        attempt: &Attempt,
        grant: &Grant,
        rt: &RefreshToken,
    ) -> Result<()> {
        let fp = rt.fingerprint();
        let Some((intent, generation)) = attempt
            .previous
            .as_ref()
            .and_then(|p| p.intent.as_ref().map(|i| (i, p.generation)))
            .filter(|(i, _)| i.refresh_token == fp && !i.settled)
        else {
            return Ok(());
        };
        let age = self.clock.now().since(intent.since);
        if intent.owner != self.owner && attempt.lock.is_none() && age < self.settings.lock_wait * 2
        {
            return Err(Error::Store {
                store: self.sync.store.kind(),
                message: format!(
                    "another process ({}) is refreshing generation {generation} since {}; waiting for its outcome",
                    intent.owner, intent.since
                ),
            });
        }
        if self.refresh_token_is_live(grant, rt).await {
            return Ok(());
        }
        self.rotation.refuse(fp.clone());
        Err(Error::ReauthRequired {
            cause: Cause::RefreshInterrupted,
            detail: format!(
                "a refresh was interrupted after the org may have rotated the token; the new refresh token was lost (refresh token {fp} of generation {generation}, sent by {} at {}; not sent again, since presenting a rotated-out token revokes the whole token family)",
                intent.owner, intent.since
            ),
        })
    }

    /// After the refresh lock could not be taken (its wait ran out, or the lock operation
    /// failed: a Redis timeout on a loaded machine): when `stored` is another member's fresh
    /// declaration, its outcome is due any moment, so the store is read again every
    /// [`OWNER_OUTCOME_POLL`] until the declaration is replaced or withdrawn, for at most the
    /// lock wait. Returns what the store holds then (the caller adopts an outcome as usual).
    /// Without this wait, every caller of this process would get a transient error for one
    /// slow store operation.
    pub(super) async fn await_foreign_intent(
        self: &Arc<Self>,
        stored: Option<TokenRecord>,
        has_lock: bool,
    ) -> Option<TokenRecord> {
        let pending = |r: &Option<TokenRecord>| {
            r.as_ref().and_then(|r| r.intent.as_ref()).is_some_and(|i| {
                i.owner != self.owner
                    && !i.settled
                    && self.clock.now().since(i.since) < self.settings.lock_wait * 2
            })
        };
        if has_lock || !pending(&stored) {
            return stored;
        }
        let deadline = tokio::time::Instant::now() + self.settings.lock_wait;
        let mut stored = stored;
        while pending(&stored) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(OWNER_OUTCOME_POLL.mul_f64(0.75 + 0.5 * fastrand::f64())).await;
            stored = self.load_stored().await;
        }
        stored
    }

    /// Before presenting the configured refresh token `rt` (the previous record carries
    /// none): a logout tombstone, or the spent-token ledger, says it may be spent (the table in
    /// `ledger.rs`). `Ok` means it may be sent.
    pub(super) async fn judge_bootstrap(
        &self,
        attempt: &Attempt,
        grant: &Grant,
        rt: &RefreshToken,
    ) -> Result<()> {
        let fp = rt.fingerprint();
        let store = self.sync.store.kind();
        // A tombstone carrying an intent is not a logout: it is the placeholder a declaration
        // (or its withdrawal) writes where the store held nothing.
        let logout = attempt
            .previous
            .as_ref()
            .filter(|p| p.is_tombstone() && p.intent.is_none());
        let unreadable = self.sync.store.holds_unreadable(&self.sync.key);
        let why = match logout {
            Some(t) => format!(
                "this identity was logged out (the {store} store holds a logout tombstone of generation {}, written at {})",
                t.generation, t.expires_at
            ),
            // Not an empty store: the record this process cannot read may hold the rotated
            // refresh token.
            None if unreadable => format!(
                "the {store} store holds a record this process cannot read (written with another cache key, corrupted, or of another format; see the store's warning), which may hold the rotated refresh token: use the cache key it was written with"
            ),
            None => match self.ledger.lookup(&fp) {
                Lookup::Unspent => return Ok(()),
                Lookup::Spent(s) => format!(
                    "the {store} store lost the rotated refresh token of generation {} (the configured one was seen rotated away at {})",
                    s.generation, s.at
                ),
                Lookup::Unreadable(e) => {
                    format!(
                        "the spent-token ledger cannot be read ({e}), so it cannot rule out that the configured refresh token is spent"
                    )
                }
            },
        };
        if self.refresh_token_is_live(grant, rt).await {
            return Ok(());
        }
        Err(Error::ReauthRequired {
            cause: Cause::RefreshTokenLost,
            detail: format!(
                "{why}; the configured refresh token {fp} is not sent: under rotation it may be spent, and presenting a rotated-out refresh token revokes the whole token family; re-authorize"
            ),
        })
    }

    /// Before presenting the stored refresh token `rt`: the ledger says this host rotated it
    /// away, so the store went back to an older record (a restored backup, a rollback). `Ok`
    /// means it may be sent (the table in `ledger.rs`).
    pub(super) async fn judge_stored(
        &self,
        attempt: &Attempt,
        grant: &Grant,
        rt: &RefreshToken,
    ) -> Result<()> {
        let fp = rt.fingerprint();
        let Lookup::Spent(s) = self.ledger.lookup(&fp) else {
            return Ok(());
        };
        if self.refresh_token_is_live(grant, rt).await {
            return Ok(());
        }
        let store = self.sync.store.kind();
        let generation = attempt.previous.as_ref().map_or(0, |p| p.generation);
        Err(Error::ReauthRequired {
            cause: Cause::RefreshTokenLost,
            detail: format!(
                "the {store} store holds refresh token {fp} (generation {generation}), which this host saw rotated away at generation {} ({}): the store went back to an older record (restored from a backup, rolled back); it is not sent, since presenting a rotated-out refresh token revokes the whole token family; restore the newest store or re-authorize",
                s.generation, s.at
            ),
        })
    }

    /// The stored refresh token `fp` was rotated away by this manager's refresh, whose outcome
    /// is `rec`: the ledger names it, so a store that goes back to it is caught (`ledger.rs`).
    pub(super) fn note_rotated_away(&self, fp: &str, rec: &TokenRecord) {
        if rec
            .refresh_token
            .as_ref()
            .is_none_or(|r| r.fingerprint() == fp)
        {
            return;
        }
        let spent = Spent {
            generation: rec.generation,
            at: self.clock.now(),
        };
        // Best effort, as for the configured token.
        let _ = self.ledger.record_rotated(fp, spent);
    }

    /// A record this manager obtained or adopted: if its refresh token is not the configured
    /// one and rotation is on or learned, the configured one is spent (`ledger.rs`).
    pub(super) fn note_spent(&self, rec: &TokenRecord) {
        let (Some(configured), Some(rt)) = (
            self.primary.configured_refresh_token(),
            rec.refresh_token.as_ref(),
        ) else {
            return;
        };
        if !self.rotation.rotates() || rt.expose_secret() == configured.expose_secret() {
            return;
        }
        let spent = Spent {
            generation: rec.generation,
            at: self.clock.now(),
        };
        // Best effort: a ledger that cannot be written now is tried again at the next record.
        let _ = self.ledger.record(&configured.fingerprint(), spent);
    }

    /// The non-consuming check: introspection says the refresh token is still live.
    async fn refresh_token_is_live(&self, grant: &Grant, rt: &RefreshToken) -> bool {
        let (Some(client_id), Some(secret)) = (grant.client_id(), grant.client_secret()) else {
            return false;
        };
        self.settings.introspect
            && self
                .source
                .refresh_token_active(client_id, secret, rt)
                .await
                == Some(true)
    }

    /// Writes the intent to present `rt` (compare-and-set on what was read).
    pub(super) async fn declare_intent(
        &self,
        attempt: &mut Attempt,
        rt: &RefreshToken,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut rec = attempt
            .previous
            .clone()
            .unwrap_or_else(|| TokenRecord::tombstone(0, GrantKind::RefreshToken, now));
        // One above what the store holds: a member that read before the declaration loses its
        // own compare-and-set (declaration or outcome) instead of sending the same token.
        rec.generation = attempt.expected.unwrap_or(0) + 1;
        rec.intent = Some(Box::new(RefreshIntent {
            refresh_token: rt.fingerprint(),
            owner: self.owner.clone(),
            since: now,
            settled: false,
        }));
        let store = &self.sync.store;
        let refused = |message: String| Error::Store {
            store: store.kind(),
            message,
        };
        match store
            .compare_and_set(&self.sync.key, attempt.expected, &rec)
            .await
        {
            Ok(CasOutcome::Written) => {
                self.store_ok();
                attempt.expected = Some(rec.generation);
                attempt.declared = Some(rec.generation);
                self.recheck_lock(attempt).await
            }
            Ok(CasOutcome::Conflict(_)) => {
                self.store_ok();
                attempt.lost_declaration = true;
                Err(refused("another process wrote the record while this one was about to send a rotating refresh; nothing was sent".into()))
            }
            Err(e) => {
                self.store_failed(&e, None);
                Err(refused(format!(
                    "the store cannot record the rotating refresh about to be sent ({e}); it is not sent without a store that can keep its answer"
                )))
            }
        }
    }

    /// After an error answer (nothing rotated), or before sending at all: marks the declared
    /// intent settled, so the next refresh does not take it for an interrupted one. It stays
    /// in the record (at the declaration's generation) so that no member adopts the record as
    /// a newer token: it holds the same one as before.
    pub(super) async fn withdraw_intent(&self, attempt: &mut Attempt) {
        let Some(declared) = attempt.declared.take() else {
            return;
        };
        let now = self.clock.now();
        let mut rec = attempt
            .previous
            .clone()
            .unwrap_or_else(|| TokenRecord::tombstone(declared, GrantKind::RefreshToken, now));
        rec.generation = declared;
        rec.intent = Some(Box::new(RefreshIntent {
            refresh_token: String::new(),
            owner: self.owner.clone(),
            since: now,
            settled: true,
        }));
        let key = &self.sync.key;
        // Best effort: if it fails, the next refresh finds our own intent and asks
        // introspection before sending.
        if let Ok(CasOutcome::Written) = self
            .sync
            .store
            .compare_and_set(key, Some(declared), &rec)
            .await
        {
            attempt.expected = Some(rec.generation);
            attempt.previous = Some(rec);
        }
    }

    /// The owner's last check before sending: it still holds the refresh lock. A refresh that
    /// holds no lock (the store has none, or the wait timed out) is fenced by the declaration
    /// alone.
    async fn recheck_lock(&self, attempt: &mut Attempt) -> Result<()> {
        let Some(lock) = &attempt.lock else {
            return Ok(());
        };
        let held = lock.still_held().await;
        if matches!(held, Ok(true)) {
            return Ok(());
        }
        self.withdraw_intent(attempt).await;
        Err(Error::Store {
            store: self.sync.store.kind(),
            message: match held {
                Ok(_) => "this process lost the refresh lock (it expired while the process was stalled) before sending a rotating refresh; nothing was sent".into(),
                Err(e) => format!("the store cannot confirm the refresh lock before a rotating refresh ({e}); nothing was sent"),
            },
        })
    }
}

/// A transport-level failure: the request may have reached the org, the outcome is unknown.
/// One that never reached it (connection refused) rotated nothing.
pub(super) fn outcome_unknown(e: &Error) -> bool {
    !matches!(
        e,
        Error::TokenEndpoint { .. } | Error::ReauthRequired { .. }
    ) && !e.never_reached_server()
}
