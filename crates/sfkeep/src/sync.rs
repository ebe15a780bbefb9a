//! The one way this crate takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, going on with the data when another thread panicked while holding it. Every
/// critical section in this crate leaves its data consistent (whole-value assignments, a push
/// or a pop), so a poisoned lock holds valid data, and one panicking task must not take the
/// token manager or a store down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
