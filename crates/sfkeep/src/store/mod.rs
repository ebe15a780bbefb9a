//! Where token records live, and how processes agree on who refreshes.
//!
//! A [`Store`] holds one [`TokenRecord`] per [`StoreKey`]. Its contract, which the Redis store
//! of the fleet mode also meets:
//!
//! - `load` returns the newest record, or `None`. A record that cannot be decrypted or decoded
//!   is reported as `Ok(None)` plus a [`StoreWarning`], never served and never a panic.
//! - `compare_and_set` writes a record only if the stored generation still equals `expected`
//!   (`None`: nothing stored). The generation is the fencing token: a writer whose lock expired
//!   cannot overwrite a newer record. The access and refresh token are written together.
//! - `lock` takes the cross-process refresh lock for a key, waiting up to `wait`. Dropping the
//!   guard releases it. It is an optimisation (one refresh per fleet); correctness comes from
//!   the compare-and-set.
//! - Logging out ([`forget`]) leaves a tombstone ([`TokenRecord::tombstone`]) rather than an
//!   empty key, so the generation never goes backwards: a token obtained before the logout
//!   cannot be written back over it. A store's `load` returns the tombstone like any record;
//!   it is expired and has no token, so it is never served.

mod envelope;
mod file;
mod key;
mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use envelope::{CacheKey, decode_record, encode_record};
pub use file::EncryptedFileStore;
pub use key::{IdUrlError, IdUrlProblem, KeyIdentity, OrgUser, StoreKey};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::clock::UnixMillis;
use crate::error::{Error, Result};
use crate::token::{GrantKind, TokenRecord};

/// The result of a compare-and-set.
#[derive(Debug)]
pub enum CasOutcome {
    /// Written.
    Written,
    /// Someone else wrote first; this is what the store holds now.
    Conflict(Option<TokenRecord>),
}

/// Something wrong with stored data that was skipped rather than served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreWarning(pub String);

/// A held refresh lock; dropping it releases the lock.
pub trait RefreshLock: Send + Sync + fmt::Debug {
    /// Whether this process still holds the lock (and, where the lock expires, that it was
    /// extended just now). A refresh asks it immediately before it sends a rotating refresh:
    /// a process that stalled past the lock's expiry must not send (docs/rotation-safety.md).
    /// `Err` when the store cannot tell. The default: a lock that cannot be lost while held.
    fn still_held(&self) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async { Ok(true) })
    }
}

/// A token store. See the module docs for the contract.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A short name for messages: `memory`, `file`, `redis`.
    fn kind(&self) -> &'static str;

    /// The newest record for `key`.
    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<TokenRecord>>>;

    /// Writes `record` if the stored generation equals `expected`.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: Option<u64>,
        record: &'a TokenRecord,
    ) -> BoxFuture<'a, Result<CasOutcome>>;

    /// Takes the refresh lock for `key`, waiting up to `wait`. `Ok(None)`: not acquired in time.
    fn lock<'a>(
        &'a self,
        key: &'a StoreKey,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLock>>>>;

    /// The generation of an unreadable value the last `load` of `key` reported as a miss,
    /// when the store knows it (Redis: the plaintext `gen`), so that a write-back never puts
    /// an older generation over it.
    fn unreadable_generation(&self, key: &StoreKey) -> Option<u64> {
        let _ = key;
        None
    }

    /// Whether the last `load` of `key` found a value it could not read and reported as a
    /// miss (another cache key, corrupted bytes, another format). Under rotation that value may
    /// hold the only valid refresh token, so the store is not empty (`docs/rotation-safety.md`).
    fn holds_unreadable(&self, key: &StoreKey) -> bool {
        self.unreadable_generation(key).is_some()
    }

    /// Warnings collected since the last call (undecryptable records and the like).
    fn take_warnings(&self) -> Vec<StoreWarning> {
        Vec::new()
    }
}

/// Forgets the record for `key` (`sfkeep logout`, [`crate::TokenManager::forget`]): replaces
/// it with a tombstone one generation above both what the store holds and `at_least` (the
/// caller's own generation), by compare-and-set. `now` is the server time.
pub async fn forget(
    store: &dyn Store,
    key: &StoreKey,
    at_least: u64,
    grant: GrantKind,
    now: UnixMillis,
) -> Result<()> {
    let mut stored = store.load(key).await?;
    for _ in 0..3 {
        let expected = stored.as_ref().map(|r| r.generation);
        // Above an unreadable value too (it is replaced): the generation never goes back.
        let unreadable = match expected {
            None => store.unreadable_generation(key).unwrap_or(0),
            Some(_) => 0,
        };
        let highest = expected.unwrap_or(0).max(at_least).max(unreadable);
        let tomb = TokenRecord::tombstone(highest + 1, grant, now);
        match store.compare_and_set(key, expected, &tomb).await? {
            CasOutcome::Written => return Ok(()),
            CasOutcome::Conflict(other) => stored = other,
        }
    }
    Err(Error::Store {
        store: store.kind(),
        message: "other processes kept writing the key while it was being forgotten".to_owned(),
    })
}
