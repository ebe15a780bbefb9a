//! Commit lag: a write whose `SystemModstamp` is earlier than a write other sessions already
//! see. Salesforce assigns `SystemModstamp` while the transaction runs and other sessions see
//! the change only when it commits, up to the 10-minute transaction limit later; meanwhile
//! later-stamped writes of other transactions are visible (docs/sync.md). An incremental
//! sync that takes the newest stamp it has read as its watermark misses such a write unless it
//! looks back.
//!
//! With `PUT /_fake/records/Account/commit-lag {"every":N,"lag_ms":M}`, every Nth Account
//! write (create, update, upsert, delete, touch) commits M ms of org time after its stamp.
//! Until then every read (queries, queryAll, Bulk jobs, reads by id) sees the record as it was
//! before the write, and the writer's response waits for the commit, as Salesforce answers a
//! write once it is committed. A later write to the same record commits the pending one first
//! (the row lock), so writes to one record still commit in stamp order.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// A row of the table (`records::Row`, named here without importing it: the table uses this
/// module, not the other way round).
type Row = serde_json::Map<String, serde_json::Value>;

/// How often a write lags and by how much; off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommitLag {
    /// Every Nth write lags; 0 is off.
    pub every: u64,
    /// Time from the write's `SystemModstamp` to its commit, in ms of org time.
    pub lag_ms: u64,
}

impl CommitLag {
    fn active(&self) -> bool {
        self.every > 0 && self.lag_ms > 0
    }
}

/// A write stamped but not yet committed.
#[derive(Clone)]
struct Pending {
    /// Write number, for [`Commits::is_committed`].
    write: u64,
    /// The row it replaces; `None` for a created record (appended when it commits).
    index: Option<usize>,
    /// The row as the write left it.
    row: Row,
    /// `IsDeleted` as the write left it.
    deleted: bool,
    /// When it commits at the latest (org time).
    visible_at: OffsetDateTime,
}

/// A committed version of a row, to put back in the table.
pub struct Committed {
    /// The row it replaces; `None` for a created record.
    pub index: Option<usize>,
    /// The row.
    pub row: Row,
    /// Whether it is deleted.
    pub deleted: bool,
}

/// What a request that wrote must wait for before it answers.
#[derive(Clone, Debug, Default)]
pub struct CommitWait {
    /// The lagged writes, by number.
    pub writes: Vec<u64>,
    /// When the last of them commits at the latest (org time).
    pub until: Option<OffsetDateTime>,
}

/// The writes waiting to commit, and the lag setting.
#[derive(Clone, Default)]
pub struct Commits {
    lag: CommitLag,
    writes: u64,
    pending: Vec<Pending>,
    /// Lagged writes made under the current lock, for [`Commits::take_wait`].
    wait: CommitWait,
}

impl Commits {
    /// The current setting.
    pub fn lag(&self) -> CommitLag {
        self.lag
    }

    /// Changes the setting; writes already pending keep their commit time.
    pub fn set_lag(&mut self, lag: CommitLag) {
        self.lag = lag;
        self.writes = 0;
    }

    /// Writes not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether a write that changes a row must keep its old version: only then is the old
    /// row cloned before the change.
    pub fn may_lag(&self) -> bool {
        self.lag.active()
    }

    /// Counts a write stamped at `stamp`; returns when it commits if it lags.
    pub fn count_write(&mut self, stamp: OffsetDateTime) -> Option<(u64, OffsetDateTime)> {
        self.writes += 1;
        if !self.lag.active() || !self.writes.is_multiple_of(self.lag.every) {
            return None;
        }
        let visible_at = stamp + Duration::milliseconds(self.lag.lag_ms as i64);
        Some((self.writes, visible_at))
    }

    /// Holds a lagged write (numbered by [`Commits::count_write`]) until `visible_at`.
    pub fn hold(
        &mut self,
        (write, visible_at): (u64, OffsetDateTime),
        index: Option<usize>,
        row: Row,
        deleted: bool,
    ) {
        self.pending.push(Pending {
            write,
            index,
            row,
            deleted,
            visible_at,
        });
        self.wait.writes.push(write);
        self.wait.until = self.wait.until.max(Some(visible_at));
    }

    /// Takes every pending write that commits by `now`, or that touches row `index` (which a
    /// new write to that row must see first), or that is numbered `write`.
    pub fn take_due(
        &mut self,
        now: Option<OffsetDateTime>,
        index: Option<usize>,
        write: Option<u64>,
    ) -> Vec<Committed> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let due = |p: &Pending| {
            now.is_some_and(|n| p.visible_at <= n)
                || (index.is_some() && p.index == index)
                || write == Some(p.write)
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            if due(&self.pending[i]) {
                let p = self.pending.remove(i);
                out.push(Committed {
                    index: p.index,
                    row: p.row,
                    deleted: p.deleted,
                });
            } else {
                i += 1;
            }
        }
        out
    }

    /// Whether every write in `wait` has committed.
    pub fn all_committed(&self, wait: &CommitWait) -> bool {
        !self.pending.iter().any(|p| wait.writes.contains(&p.write))
    }

    /// What the request that made the lagged writes since the last call must wait for.
    pub fn take_wait(&mut self) -> Option<CommitWait> {
        (!self.wait.writes.is_empty()).then(|| std::mem::take(&mut self.wait))
    }
}
