//! Taking a `std::sync::Mutex` whose holder panicked: the one way sfkeep's crates do it (the
//! library, the proxy, the CLI and the Python module). A low-level helper, not part of the token API.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, going on with the data when another thread panicked while holding it. Every
/// critical section in this crate leaves its data consistent (whole-value assignments, a push
/// or a pop), so a poisoned lock holds valid data, and one panicking task must not take the
/// token manager or a store down with it. Use it only where the same holds.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads `l`, going on with the data when a writer panicked (the same rule as [`lock`]).
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes `l`, going on with the data when another holder panicked (the same rule as [`lock`]).
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
