//! Logging out ([`super::TokenManager::forget`]) without a refresh undoing it.
//!
//! A refresh requested before a `forget()` ended may run after it (queued behind the store
//! synchronisation lock). It must not store its token nor make it current, or the logout
//! would be undone. Each refresh takes the [`ForgetEpochs`] value when it is requested; a
//! `forget()` moves the value when it starts and again when it ends, so a refresh whose epoch
//! no longer matches hands its token only to the callers that waited for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::state::Inner;
use crate::error::Result;

/// The forget counter: see the module docs.
#[derive(Debug, Default)]
pub(crate) struct ForgetEpochs(AtomicU64);

/// The epoch a refresh was requested in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Epoch(u64);

impl ForgetEpochs {
    /// The epoch now.
    pub(crate) fn current(&self) -> Epoch {
        Epoch(self.0.load(Ordering::Acquire))
    }

    /// Whether no `forget()` started since `epoch` was taken.
    pub(crate) fn unchanged_since(&self, epoch: Epoch) -> bool {
        self.current() == epoch
    }

    /// Moves the epoch now and again when the guard drops, however the forget ends.
    fn begin(&self) -> ForgetEnds<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        ForgetEnds(&self.0)
    }
}

/// Moves the epoch again when a `forget()` ends.
struct ForgetEnds<'a>(&'a AtomicU64);

impl Drop for ForgetEnds<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl Inner {
    /// Forgets the token here and leaves a tombstone in the store (see
    /// [`crate::store::forget`]).
    pub(super) async fn forget(self: &Arc<Self>) -> Result<()> {
        let _ends = self.forgotten.begin();
        // After any refresh or recovery probe in progress, so none writes the token back.
        let _sync = self.sync.serial.lock().await;
        self.sync.drop_write_back();
        let local_gen = self.current.generation();
        self.current.set(None);
        // A tombstone, not an empty key: a token another process obtained before this logout
        // (kept in its memory during a store outage) must lose its write-back.
        crate::store::forget(
            &*self.sync.store,
            &self.sync.key,
            local_gen,
            self.primary.kind(),
            self.clock.now(),
        )
        .await
    }
}
