//! REST query pages of Accounts in `SystemModstamp` order that go on past what ends a query
//! cursor early:
//!
//! - a page larger than the client reads into memory (wide text fields): ask for smaller
//!   pages (`Sforce-Query-Options: batchSize`, 2,000 down to Salesforce's minimum of 200) and
//!   query again;
//! - an expired or released cursor (`INVALID_QUERY_LOCATOR`): query again.
//!
//! A new query starts at the newest `SystemModstamp` already handed out, minus the look-back
//! window, with `>=`: a record stamped in that same millisecond, or stamped earlier but
//! committed later, is read again rather than skipped (docs/sync.md). Re-reading is harmless:
//! the database never replaces a row with an older or equal copy of itself.

use std::time::Duration;

use serde_json::Value;
use sfkeep::client::{Client, QueryPages};

use super::SyncError;
use super::stamp::Stamp;

/// Salesforce's default and largest query batch.
pub const DEFAULT_BATCH: u32 = 2000;
/// Salesforce's smallest query batch.
pub const MIN_BATCH: u32 = 200;
/// New queries after expired cursors that got no further than the one before, before giving
/// up (a query that starts again from the look-back window can re-read the same records).
const MAX_CURSOR_RESTARTS: u32 = 3;

/// The next smaller batch size after `current` (`None`: the org's default), or `None` when
/// `current` is already the smallest.
pub fn smaller_batch(current: Option<u32>) -> Option<u32> {
    let current = current.unwrap_or(DEFAULT_BATCH);
    (current > MIN_BATCH).then(|| (current / 2).max(MIN_BATCH))
}

/// `select` ordered by `SystemModstamp`, of the records stamped at or after `bound` minus
/// `look_back` (all of them without a bound).
pub fn ordered_soql(select: &str, bound: Option<&Stamp>, look_back: Duration) -> String {
    let order = "ORDER BY SystemModstamp ASC, Id ASC";
    match bound {
        Some(b) => format!(
            "{select} WHERE SystemModstamp >= {} {order}",
            b.soql_minus(look_back)
        ),
        None => format!("{select} {order}"),
    }
}

/// Pages of one query over Accounts, ordered by `SystemModstamp`, restarted as needed.
pub struct Reader<'a> {
    client: &'a Client,
    select: String,
    all: bool,
    from: Option<Stamp>,
    look_back: Duration,
    high: Option<Stamp>,
    pages: Option<QueryPages>,
    batch: Option<u32>,
    /// The newest stamp handed out when a cursor last expired, and how many expiries in a row
    /// found it unchanged.
    stalled_at: Option<Stamp>,
    stalls: u32,
    total: Option<u64>,
}

impl<'a> Reader<'a> {
    /// Pages of `select` (`SELECT … FROM Account`), through queryAll when `all`, of the records
    /// stamped at or after `from` minus `look_back` (every record when `from` is `None`).
    pub fn new(
        client: &'a Client,
        select: String,
        all: bool,
        from: Option<&Stamp>,
        look_back: Duration,
    ) -> Self {
        Reader {
            client,
            select,
            all,
            from: from.cloned(),
            look_back,
            high: None,
            pages: None,
            batch: None,
            stalled_at: None,
            stalls: 0,
            total: None,
        }
    }

    /// `totalSize` of the first query.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The batch size asked for, once a page was too large (`None`: the org's default).
    pub fn batch_size(&self) -> Option<u32> {
        self.batch
    }

    /// The SOQL of the next query: from the newest stamp handed out (or the start bound).
    fn soql(&self) -> String {
        let bound = match (&self.from, &self.high) {
            (Some(f), Some(h)) => Some(if h > f { h } else { f }),
            (f, h) => f.as_ref().or(h.as_ref()),
        };
        ordered_soql(&self.select, bound, self.look_back)
    }

    /// The next page of records, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, SyncError> {
        loop {
            let pages = match &mut self.pages {
                Some(p) => p,
                None => {
                    let soql = self.soql();
                    let q = if self.all {
                        self.client.query_all(&soql)
                    } else {
                        self.client.query(&soql)
                    };
                    self.pages.insert(match self.batch {
                        Some(n) => q.batch_size(n),
                        None => q,
                    })
                }
            };
            match pages.next_page().await {
                Ok(Some(records)) => {
                    if self.total.is_none() {
                        self.total = pages.total_size();
                    }
                    let newest = records
                        .iter()
                        .filter_map(|r| r["SystemModstamp"].as_str().and_then(Stamp::parse))
                        .max();
                    if let Some(n) = newest
                        && self.high.as_ref().is_none_or(|h| n > *h)
                    {
                        self.high = Some(n);
                    }
                    return Ok(Some(records));
                }
                Ok(None) => return Ok(None),
                Err(sfkeep::Error::ResponseTooLarge { cap, .. }) => {
                    let asked = self.batch.unwrap_or(DEFAULT_BATCH);
                    self.batch = Some(
                        smaller_batch(self.batch)
                            .ok_or(SyncError::PageTooLarge { batch: asked, cap })?,
                    );
                    self.pages = None;
                }
                Err(sfkeep::Error::Api(a)) if a.error_code == "INVALID_QUERY_LOCATOR" => {
                    if self.stalls > 0 && self.stalled_at == self.high {
                        self.stalls += 1;
                    } else {
                        self.stalls = 1;
                        self.stalled_at = self.high.clone();
                    }
                    if self.stalls > MAX_CURSOR_RESTARTS {
                        return Err(SyncError::CursorExpired {
                            restarts: MAX_CURSOR_RESTARTS,
                        });
                    }
                    self.pages = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_shrink_by_halves_down_to_salesforces_minimum() {
        let mut ladder = vec![];
        let mut b = None;
        while let Some(n) = smaller_batch(b) {
            ladder.push(n);
            b = Some(n);
        }
        assert_eq!(ladder, [1000, 500, 250, 200]);
        assert_eq!(smaller_batch(Some(200)), None);
    }

    #[test]
    fn queries_start_at_the_newest_stamp_read_minus_the_look_back_with_ties_included() {
        let w = Stamp::parse("2026-11-28T05:58:09.123+0000").unwrap();
        assert_eq!(
            ordered_soql("SELECT Id FROM Account", Some(&w), Duration::from_secs(600)),
            "SELECT Id FROM Account WHERE SystemModstamp >= 2026-11-28T05:48:09.123Z ORDER BY SystemModstamp ASC, Id ASC"
        );
        assert_eq!(
            ordered_soql("SELECT Id FROM Account", None, Duration::ZERO),
            "SELECT Id FROM Account ORDER BY SystemModstamp ASC, Id ASC"
        );
    }
}
