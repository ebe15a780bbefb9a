//! The adopt table of `store_sync.rs` and the write-back table of `outage.rs`, one test per row.

use std::time::Duration;

use super::{T0, record};
use crate::event::RefreshReason;
use crate::manager::outage::{WriteBack, decide_write_back};
use crate::manager::store_sync::adoptable;
use crate::token::{GrantKind, TokenRecord};

// ---- The adopt table (store_sync.rs), one row each ----

fn always(_: &TokenRecord) -> bool {
    true
}

#[test]
fn adopt_never_a_tombstone() {
    let tomb = TokenRecord::tombstone(9, GrantKind::RefreshToken, T0);
    for reason in [
        RefreshReason::Startup,
        RefreshReason::Expired,
        RefreshReason::Reactive401,
    ] {
        assert!(!adoptable(&tomb, 0, reason, T0, always));
    }
}

#[test]
fn adopt_a_generation_not_above_ours_only_at_startup() {
    let stored = record(3, "a");
    assert!(adoptable(&stored, 3, RefreshReason::Startup, T0, always));
    assert!(!adoptable(&stored, 3, RefreshReason::Expired, T0, always));
    assert!(!adoptable(
        &stored,
        4,
        RefreshReason::Reactive401,
        T0,
        always
    ));
    assert!(!adoptable(&stored, 3, RefreshReason::Startup, T0, |_| {
        false
    }));
}

#[test]
fn adopt_ahead_of_expiry_only_a_fresh_record() {
    let stored = record(5, "a");
    assert!(adoptable(&stored, 4, RefreshReason::Proactive, T0, always));
    let stale_time = T0.plus(Duration::from_secs(6400));
    assert!(!adoptable(
        &stored,
        4,
        RefreshReason::Proactive,
        stale_time,
        always
    ));
}

#[test]
fn adopt_never_for_a_forced_refresh() {
    assert!(!adoptable(
        &record(5, "a"),
        4,
        RefreshReason::Forced,
        T0,
        always
    ));
}

#[test]
fn adopt_a_newer_generation_when_usable() {
    let stored = record(5, "a");
    assert!(adoptable(&stored, 4, RefreshReason::Expired, T0, always));
    assert!(adoptable(
        &stored,
        4,
        RefreshReason::Reactive401,
        T0,
        always
    ));
    assert!(!adoptable(
        &stored,
        4,
        RefreshReason::Reactive401,
        T0,
        |_| false
    ));
}

// ---- The write-back table (outage.rs), one row each ----

#[test]
fn write_back_over_nothing_or_a_lower_generation() {
    let ours = record(4, "ours");
    assert_eq!(
        decide_write_back(None, None, &ours),
        WriteBack::Write { replaced: None }
    );
    assert_eq!(
        decide_write_back(Some(&record(3, "old")), None, &ours),
        WriteBack::Write { replaced: Some(3) }
    );
    // An unreadable value of a lower generation is replaced too.
    assert_eq!(
        decide_write_back(None, Some(3), &ours),
        WriteBack::Write { replaced: None }
    );
}

#[test]
fn write_back_never_over_a_logout_tombstone() {
    let ours = record(4, "ours");
    for g in [1, 4, 9] {
        let tomb = TokenRecord::tombstone(g, GrantKind::RefreshToken, T0);
        assert_eq!(decide_write_back(Some(&tomb), None, &ours), WriteBack::Keep);
    }
}

#[test]
fn write_back_never_over_an_unreadable_value_at_least_as_new() {
    let ours = record(4, "ours");
    assert_eq!(decide_write_back(None, Some(4), &ours), WriteBack::Keep);
    assert_eq!(decide_write_back(None, Some(7), &ours), WriteBack::Keep);
}

#[test]
fn write_back_discards_ours_under_a_higher_generation() {
    let ours = record(4, "ours");
    assert_eq!(
        decide_write_back(Some(&record(5, "theirs")), None, &ours),
        WriteBack::Discard
    );
}

#[test]
fn write_back_discards_ours_under_the_same_generation_with_another_token() {
    let ours = record(4, "ours");
    assert_eq!(
        decide_write_back(Some(&record(4, "theirs")), None, &ours),
        WriteBack::Discard
    );
    assert_eq!(
        decide_write_back(Some(&record(4, "ours")), None, &ours),
        WriteBack::Keep
    );
}
