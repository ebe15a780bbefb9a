//! Time, injected.
//!
//! Every timing decision (is the token stale? how long to cool down?) reads a [`Clock`], so the
//! tests can move time without sleeping. [`ServerClock`] adds the offset measured from the
//! server's `Date` header, so a client whose clock is minutes off still refreshes on time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// This instant plus a duration.
    pub fn plus(self, d: Duration) -> Self {
        UnixMillis(self.0.saturating_add(d.as_millis() as i64))
    }

    /// This instant minus a duration.
    pub fn minus(self, d: Duration) -> Self {
        UnixMillis(self.0.saturating_sub(d.as_millis() as i64))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// Whole seconds since the epoch.
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

/// RFC 3339 in UTC with exactly three fractional digits (`2026-11-28T08:46:58.990Z`), so
/// timestamps line up in columns.
impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            Err(_) => write!(f, "{}ms", self.0),
        }
    }
}

/// A source of the current time.
///
/// Implementations must be cheap: the token fast path reads the clock on every call.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, on this machine's clock.
    fn now(&self) -> UnixMillis;
}

/// The operating system's wall clock as of the first read, carried forward by the coarse
/// monotonic clock (`CLOCK_MONOTONIC_COARSE`: a few milliseconds of resolution, a few
/// nanoseconds per read, no shared write). The token fast path reads it on every call and its
/// decisions have a 30-second margin; a step of the wall clock is not followed, which is what
/// expiry timing wants, and the skew against the server is measured from its `Date` header.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

static SYSTEM_CLOCK_BASE: std::sync::OnceLock<(i64, coarsetime::Instant)> =
    std::sync::OnceLock::new();

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        let (wall, mono) = *SYSTEM_CLOCK_BASE.get_or_init(|| {
            (
                precise_now().0,
                coarsetime::Instant::now_without_cache_update(),
            )
        });
        let elapsed = coarsetime::Instant::now_without_cache_update().duration_since(mono);
        UnixMillis(wall + elapsed.as_millis() as i64)
    }
}

/// The operating system's wall clock, precisely (for measuring, not for the fast path).
pub fn precise_now() -> UnixMillis {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    UnixMillis(d.as_millis() as i64)
}

/// A clock that moves only when told to: for tests and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: UnixMillis) -> Self {
        Self {
            now_ms: Arc::new(AtomicI64::new(start.0)),
        }
    }

    /// A clock standing at the system time now, plus `offset_ms` (which may be negative).
    pub fn starting_now_offset(offset_ms: i64) -> Self {
        Self::new(UnixMillis(precise_now().0 + offset_ms))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.now_ms
            .fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    /// Sets the clock (it may jump backwards: the manager must cope).
    pub fn set(&self, t: UnixMillis) {
        self.now_ms.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.now_ms.load(Ordering::SeqCst))
    }
}

/// How much older than the newest `Date` seen a `Date` must be to count as stale (see
/// [`ServerClock::observe_date_header`]).
pub const STALE_DATE_MS: i64 = 2_000;

/// The server's time as this client best knows it: the local clock plus the offset measured
/// from the server's `Date` header.
///
/// `Date` has one-second resolution, so offsets under two seconds are ignored; that is far
/// inside the 30-second expiry margin.
#[derive(Debug, Clone)]
pub struct ServerClock {
    local: Arc<dyn Clock>,
    offset_ms: Arc<AtomicI64>,
    /// Whether a `Date` header was seen: then [`ServerClock::seed`] no longer applies.
    observed: Arc<AtomicBool>,
    /// The newest `Date` seen (ms): an answer dated seconds before it was sent before a
    /// newer one and is stale, whatever order the answers are read in.
    newest_date: Arc<AtomicI64>,
}

impl ServerClock {
    /// A server clock with no measured offset yet.
    pub fn new(local: Arc<dyn Clock>) -> Self {
        Self {
            local,
            offset_ms: Arc::new(AtomicI64::new(0)),
            observed: Arc::new(AtomicBool::new(false)),
            newest_date: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Starts from an offset measured elsewhere, unless this clock has measured its own from a
    /// `Date` header. The token manager never seeds from a stored record: that offset is
    /// another host's clock (`docs/token-lifecycle.md`, "Clock skew").
    pub fn seed(&self, offset_ms: i64) {
        if !self.observed.load(Ordering::Acquire) {
            self.offset_ms.store(offset_ms, Ordering::Relaxed);
        }
    }

    /// Whether a `Date` header has been seen (the offset is measured, not assumed).
    pub fn observed(&self) -> bool {
        self.observed.load(Ordering::Acquire)
    }

    /// The local clock.
    pub fn local(&self) -> &Arc<dyn Clock> {
        &self.local
    }

    /// Now on the server's clock.
    pub fn now(&self) -> UnixMillis {
        UnixMillis(self.local.now().0 + self.offset_ms.load(Ordering::Relaxed))
    }

    /// The current estimate of server time minus local time.
    pub fn offset(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Records a `Date` header seen on a response received at local time `received_at`.
    ///
    /// Answers of concurrent requests are read in any order: after the server's clock jumps,
    /// an answer dated before the jump can be read after one dated after it. Such a stale
    /// `Date` (more than [`STALE_DATE_MS`] older than the newest seen) is ignored rather than
    /// moving the estimate back, which would sign the next JWT assertion on the old clock.
    pub fn observe_date_header(&self, date: &str, received_at: UnixMillis) -> Option<i64> {
        let server = parse_http_date(date)?;
        let newest = self.newest_date.fetch_max(server.0, Ordering::AcqRel);
        if server.0 < newest.saturating_sub(STALE_DATE_MS) {
            return None;
        }
        // The header's second was truncated: its midpoint is the best estimate.
        let offset = server.0 + 500 - received_at.0;
        let offset = if offset.abs() < 2_000 { 0 } else { offset };
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.observed.store(true, Ordering::Release);
        Some(offset)
    }
}

/// Parses an HTTP date with the `httpdate` crate: the IMF-fixdate servers must send
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete forms recipients must accept
/// (RFC 9110 §5.6.7).
pub fn parse_http_date(s: &str) -> Option<UnixMillis> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(UnixMillis(i64::try_from(ms).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imf_fixdate() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.0, 784_111_777_000);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn a_stale_date_read_after_a_newer_one_does_not_move_the_clock_back() {
        let local = ManualClock::new(UnixMillis(784_111_777_000));
        let server = ServerClock::new(Arc::new(local.clone()));
        // The server's clock jumped two hours; an answer sent before the jump is read last.
        assert_eq!(
            server.observe_date_header("Sun, 06 Nov 1994 10:49:37 GMT", local.now()),
            Some(7_200_500)
        );
        assert_eq!(
            server.observe_date_header("Sun, 06 Nov 1994 08:49:37 GMT", local.now()),
            None
        );
        assert_eq!(server.offset(), 7_200_500);
    }

    #[test]
    fn server_clock_corrects_skew() {
        let local = ManualClock::new(UnixMillis(784_111_777_000 - 600_000));
        let server = ServerClock::new(Arc::new(local.clone()));
        let off = server
            .observe_date_header("Sun, 06 Nov 1994 08:49:37 GMT", local.now())
            .unwrap();
        assert_eq!(off, 600_500);
        assert_eq!(server.now().0, 784_111_777_500);
    }
}
