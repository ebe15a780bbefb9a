//! `SystemModstamp` values: the text the org sent, and the instant it names, so that stamps
//! compare as times whatever format an API used (REST sends `2026-11-28T05:58:09.123+0000`,
//! a Bulk CSV may send `…Z`).

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A `SystemModstamp` as the org sent it, with the instant it names in epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    text: String,
    ms: i64,
}

impl Stamp {
    /// Parses `2026-11-28T05:58:09.123+0000` (REST), `…+00:00`, `…Z`, with or without
    /// fractional seconds; `None` when `text` is not such a datetime.
    pub fn parse(text: &str) -> Option<Stamp> {
        let ms = parse_ms(text)?;
        Some(Stamp {
            text: text.to_owned(),
            ms,
        })
    }

    /// The text as the org sent it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Milliseconds since the Unix epoch.
    pub fn ms(&self) -> i64 {
        self.ms
    }

    /// This instant minus `d`, as a SOQL datetime literal (`2026-11-28T05:48:09.123Z`).
    pub fn soql_minus(&self, d: Duration) -> String {
        let ms = self
            .ms
            .saturating_sub(d.as_millis().min(i64::MAX as u128) as i64);
        soql_literal(ms)
    }
}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stamp {
    /// By instant; the text only breaks ties between two spellings of one instant.
    fn cmp(&self, other: &Self) -> Ordering {
        self.ms
            .cmp(&other.ms)
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A SOQL datetime literal for `ms` (UTC, millisecond precision).
fn soql_literal(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

fn parse_ms(text: &str) -> Option<i64> {
    // `YYYY-MM-DDTHH:MM:SS` then optional `.fff…`, then `Z`, `±hhmm` or `±hh:mm`.
    let base = text.get(..19)?;
    let local = PrimitiveDateTime::parse(
        base,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    )
    .ok()?;
    let mut rest = &text[19..];
    let mut nanos: i64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let padded = format!("{:0<9}", &frac[..digits]);
        nanos = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" => UtcOffset::UTC,
        _ => {
            let (sign, hm) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let hm = hm.replace(':', "");
            if hm.len() != 4 || !hm.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let h: i8 = hm[..2].parse().ok()?;
            let m: i8 = hm[2..].parse().ok()?;
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    let t = local.assume_offset(offset);
    let whole = t.unix_timestamp().checked_mul(1000)?;
    whole.checked_add(nanos / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_instant_parses_to_it() {
        let rest = Stamp::parse("2026-11-28T05:58:09.123+0000").unwrap();
        for other in [
            "2026-11-28T05:58:09.123Z",
            "2026-11-28T05:58:09.123+00:00",
            "2026-11-28T06:58:09.123+0100",
            "2026-11-28T05:58:09.1230Z",
        ] {
            assert_eq!(Stamp::parse(other).unwrap().ms(), rest.ms(), "{other}");
        }
        assert_eq!(
            Stamp::parse("2026-11-28T05:58:09Z").unwrap().ms() + 123,
            rest.ms()
        );
        for bad in [
            "",
            "t1",
            "2026-11-28",
            "2026-11-28T05:58:09",
            "2026-11-28T05:58:09.Z",
            "2026-13-28T05:58:09Z",
            "2026-11-28T05:58:09+01",
            "2026-11-28T05:58:09.123+0000x",
        ] {
            assert_eq!(Stamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stamps_order_by_instant_and_look_back_in_soql() {
        let a = Stamp::parse("2026-11-28T06:58:09.000+0100").unwrap();
        let b = Stamp::parse("2026-11-28T05:58:09.001Z").unwrap();
        assert!(a < b);
        assert_eq!(
            b.soql_minus(Duration::from_secs(600)),
            "2026-11-28T05:48:09.001Z"
        );
        assert_eq!(b.soql_minus(Duration::ZERO), "2026-11-28T05:58:09.001Z");
    }
}
