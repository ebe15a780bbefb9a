use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{CasOutcome, RefreshLock, Store, StoreKey};
use crate::error::Result;
use crate::token::TokenRecord;

/// Records in this process's memory. Its lock is a no-op: the manager's in-process
/// single-flight already gives one refresh per process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<StoreKey, TokenRecord>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Debug)]
struct NoLock;
impl RefreshLock for NoLock {}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn load<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<Option<TokenRecord>>> {
        let r = crate::sync::lock(&self.records).get(key).cloned();
        Box::pin(async move { Ok(r) })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: Option<u64>,
        record: &'a TokenRecord,
    ) -> BoxFuture<'a, Result<CasOutcome>> {
        let mut map = crate::sync::lock(&self.records);
        let current = map.get(key).map(|r| r.generation);
        let outcome = if current == expected {
            map.insert(key.clone(), record.clone());
            CasOutcome::Written
        } else {
            CasOutcome::Conflict(map.get(key).cloned())
        };
        Box::pin(async move { Ok(outcome) })
    }

    fn lock<'a>(
        &'a self,
        _key: &'a StoreKey,
        _wait: Duration,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLock>>>> {
        Box::pin(async { Ok(Some(Box::new(NoLock) as Box<dyn RefreshLock>)) })
    }
}
