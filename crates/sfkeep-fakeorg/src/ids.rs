//! Identifiers, secrets and timestamps in the shapes Salesforce uses.
//!
//! Record ids are 15 characters (3-character key prefix + 12) plus the 3-character
//! case-safe checksum suffix, so clients that validate or normalise ids accept ours.

use rand::Rng;
use rand::distr::Alphanumeric;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The 3-character checksum Salesforce appends to a 15-character id.
pub fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut flags = 0usize;
        for bit in 0..5 {
            if bytes
                .get(chunk * 5 + bit)
                .is_some_and(|c| c.is_ascii_uppercase())
            {
                flags |= 1 << bit;
            }
        }
        out.push(SUFFIX[flags] as char);
    }
    out
}

/// A 15-character id: `prefix` (3 chars), a 4-character org "pod" part, then `n` in base 62.
pub fn id15(prefix: &str, pod: &str, n: u64) -> String {
    let mut digits = Vec::new();
    let mut v = n;
    loop {
        digits.push(BASE62[(v % 62) as usize]);
        v /= 62;
        if v == 0 {
            break;
        }
    }
    let width = 15 - prefix.len() - pod.len();
    let mut s = String::with_capacity(15);
    s.push_str(prefix);
    s.push_str(pod);
    for _ in digits.len()..width {
        s.push('0');
    }
    for d in digits.iter().rev() {
        s.push(*d as char);
    }
    s.truncate(15);
    s
}

/// An 18-character (case-safe) id.
pub fn id18(prefix: &str, pod: &str, n: u64) -> String {
    let s = id15(prefix, pod, n);
    let c = checksum(&s);
    s + &c
}

/// Random alphanumeric text from the thread-local CSPRNG.
pub fn random_alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Random text over the alphabet Salesforce uses in opaque tokens (`A-Za-z0-9._`).
pub fn random_token_chars(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Random uppercase hex.
pub fn random_hex_upper(len: usize) -> String {
    const HEX: &[u8] = b"0123456789ABCDEF";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| HEX[rng.random_range(0..16)] as char)
        .collect()
}

const SF_DATETIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000");

/// `2026-11-28T05:58:09.000+0000`, the REST/SOQL datetime format (always UTC).
pub fn sf_datetime(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(SF_DATETIME)
        .unwrap_or_default()
}

/// Milliseconds since the epoch.
pub fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Decodes `%XX` escapes in a URL path segment (no `+` handling: that is for query strings);
/// a `%` not followed by two hex digits stays as it is, bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a query string (`a=1&b=x+y`) into pairs; `+` and `%20` both mean a space.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of `key` in `pairs`.
pub fn pair<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_known_ids() {
        // Known pair from Salesforce docs/examples: 001D000000IqhSL -> 001D000000IqhSLIAZ.
        assert_eq!(checksum("001D000000IqhSL"), "IAZ");
        assert_eq!(id18("001", "5g00", 1).len(), 18);
    }

    #[test]
    fn datetime_format() {
        let t = time::macros::datetime!(2026-11-28 05:58:09.123 UTC);
        assert_eq!(sf_datetime(t), "2026-11-28T05:58:09.123+0000");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b.com"), "a@b.com");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
