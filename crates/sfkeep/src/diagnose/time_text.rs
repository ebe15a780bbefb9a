//! Durations, clock offsets and Salesforce datetimes as people read and Salesforce writes them.

use std::time::Duration;

use crate::clock::UnixMillis;

/// `2h 1m 40s`, `4m 10s`, `12s`, `0s`: a duration to the second, for a person.
pub fn human_exact(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    let parts: Vec<String> = [(days, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .filter(|(n, _)| *n != 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// How the server's clock relates to this machine's, from `offset_ms` (server minus local):
/// `2h 1m 40s ahead of this machine's`, `12s behind this machine's`, or `in step with this
/// machine's` under two seconds (the `Date` header has one-second resolution).
pub fn clock_offset_text(offset_ms: i64) -> String {
    if offset_ms.unsigned_abs() < 2_000 {
        return "in step with this machine's (within 2s)".to_owned();
    }
    let d = human_exact(Duration::from_millis(offset_ms.unsigned_abs()));
    if offset_ms > 0 {
        format!("{d} ahead of this machine's")
    } else {
        format!("{d} behind this machine's")
    }
}

/// `3h05m`, `4m10s`, `12s`: a duration to the minute once it is over an hour, for a person
/// (status lines, evidence). The one short duration format of sfkeep's crates.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m"),
    }
}

/// Parses Salesforce's REST datetime (`2026-11-28T05:58:09.000+0000`, also `Z` or `+00:00`).
pub fn parse_sf_datetime(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    let (main, offset_secs) = if let Some(m) = s.strip_suffix('Z') {
        (m, 0i64)
    } else {
        let t = s.find('T')?;
        let idx = s.rfind(['+', '-'])?;
        if idx < t {
            return None;
        }
        let (m, o) = s.split_at(idx);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return None;
        }
        let h: i64 = digits[..2].parse().ok()?;
        let mi: i64 = digits[2..].parse().ok()?;
        (m, sign * (h * 3600 + mi * 60))
    };
    Some(UnixMillis(parse_naive(main)? - offset_secs * 1000))
}

fn parse_naive(main: &str) -> Option<i64> {
    let (secs_part, millis) = match main.split_once('.') {
        Some((a, frac)) => {
            let digits: String = frac.chars().take(3).collect();
            let mut ms: i64 = digits.parse().ok()?;
            for _ in digits.len()..3 {
                ms *= 10;
            }
            (a, ms)
        }
        None => (main, 0),
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(secs_part, &fmt).ok()?;
    Some(t.assume_utc().unix_timestamp() * 1000 + millis)
}

/// `4m10s ago` or `in 4m10s`: `t` relative to `now`.
pub fn at_text(now: UnixMillis, t: UnixMillis) -> String {
    if t.0 <= now.0 {
        format!("{} ago", human(now.since(t)))
    } else {
        format!("in {}", human(t.since(now)))
    }
}
