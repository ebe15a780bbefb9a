//! A small SOQL subset, parsed and executed in memory against JSON rows.
//!
//! Grammar (keywords and field names are case-insensitive, as in Salesforce):
//!
//! ```text
//! SELECT field[, field…] | COUNT() FROM Object
//!   [WHERE cond [AND|OR cond …]]          -- NOT and parentheses are supported
//!   [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST][, …]]
//!   [LIMIT n] [OFFSET n]
//! cond  := field (= | != | <> | < | <= | > | >=) value
//!        | field LIKE 'pattern'
//!        | field [NOT] IN (value[, value…])
//! value := 'string' | 12 | -1.5 | true | false | null
//!        | 2026-11-28T05:58:09Z | 2026-11-28T05:58:09.000+0000 | 2026-11-28T05:58:09+01:00
//!        | 2026-11-28 | TODAY | YESTERDAY | TOMORROW
//!        | LAST_N_DAYS:n | NEXT_N_DAYS:n | N_DAYS_AGO:n
//! ```
//!
//! Semantics follow Salesforce where it matters to clients: string comparisons and `LIKE` are
//! case-insensitive; `!=` / `NOT IN` also match nulls; ordering comparisons never match nulls;
//! datetimes are compared as instants (any offset); date literals and relative date literals are
//! whole UTC days (`= TODAY` matches any instant of the current UTC day); null sorts first in
//! ascending order and last in descending order unless `NULLS FIRST|LAST` says otherwise.
//!
//! Errors carry Salesforce's error codes (`MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`) and
//! message shapes (`\nQUERY LINE\n   ^\nERROR at Row:1:Column:12\nNo such column …`).
//!
//! Nothing here panics, whatever the input: nesting and query length are capped, time arithmetic is
//! done on saturating `i128` nanoseconds, and sorting uses a total order.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value as Json};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Longest query accepted, in characters (Salesforce's limit).
pub const MAX_QUERY_CHARS: usize = 100_000;

/// Deepest nesting of parentheses / `NOT` accepted in a `WHERE` clause.
pub const MAX_NESTING: usize = 64;

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// Tail of Salesforce's `INVALID_FIELD` message.
const NO_SUCH_COLUMN_TAIL: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";

/// Tail of Salesforce's `INVALID_TYPE` message.
const INVALID_TYPE_TAIL: &str = "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.";

/// Words that can never be a field or object name.
const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET",
    "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS",
];

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A SOQL error as Salesforce reports it: an error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD` or `INVALID_TYPE`.
    pub error_code: &'static str,
    /// Salesforce-shaped message, e.g. `\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Account'. …`.
    pub message: String,
}

impl SoqlError {
    /// Error code for a query that does not parse.
    pub const MALFORMED_QUERY: &'static str = "MALFORMED_QUERY";
    /// Error code for a field that the object does not have.
    pub const INVALID_FIELD: &'static str = "INVALID_FIELD";
    /// Error code for an object (sObject type) that does not exist.
    pub const INVALID_TYPE: &'static str = "INVALID_TYPE";
}

impl fmt::Display for SoqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code, self.message)
    }
}

impl std::error::Error for SoqlError {}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected fields as written in the query, in SELECT order (empty for `COUNT()`).
    pub fields: Vec<String>,
    /// The object after `FROM`, as written.
    pub object: String,
    /// Top-level `WHERE` conditions, all of which must hold (an implicit `AND`).
    pub conditions: Vec<Condition>,
    /// `ORDER BY` items, most significant first.
    pub order_by: Vec<OrderBy>,
    /// `LIMIT n`.
    pub limit: Option<usize>,
    /// `OFFSET n`.
    pub offset: Option<usize>,
    /// `SELECT COUNT() FROM …`.
    pub count_only: bool,
    source: String,
    object_pos: usize,
    /// Every field reference (SELECT, WHERE, ORDER BY) with its byte offset in `source`.
    refs: Vec<(usize, String)>,
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `field op value`.
    Compare(Comparison),
    /// All must hold.
    And(Vec<Condition>),
    /// At least one must hold.
    Or(Vec<Condition>),
    /// Negation.
    Not(Box<Condition>),
}

/// A single `field op value` comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The field, as written.
    pub field: String,
    /// The operator.
    pub op: CompareOp,
    /// The right-hand side (a [`Literal::List`] for `IN` / `NOT IN`).
    pub value: Literal,
    /// For `LIKE`: the pattern with wildcards resolved (escaped `\%`/`\_` are literal).
    like: Vec<LikeTok>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
    /// `IN (…)`
    In,
    /// `NOT IN (…)`
    NotIn,
}

/// A literal value on the right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'` (escapes resolved).
    String(String),
    /// `12`, `-1.5`.
    Number(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `2026-11-28T05:58:09Z` and friends, with the offset as written.
    DateTime(OffsetDateTime),
    /// `2026-11-28`: the whole UTC day.
    Date(Date),
    /// `TODAY`, `LAST_N_DAYS:n`, …: a range of whole UTC days relative to the org's clock.
    Relative(RelativeDate),
    /// The parenthesised list of `IN` / `NOT IN`.
    List(Vec<Literal>),
}

/// A relative date literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeDate {
    /// `TODAY`: the current UTC day.
    Today,
    /// `YESTERDAY`.
    Yesterday,
    /// `TOMORROW`.
    Tomorrow,
    /// `LAST_N_DAYS:n`: from 00:00 n days ago to the end of today.
    LastNDays(u32),
    /// `NEXT_N_DAYS:n`: from 00:00 tomorrow for n days.
    NextNDays(u32),
    /// `N_DAYS_AGO:n`: the single day n days ago.
    NDaysAgo(u32),
}

/// One `ORDER BY` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// The field, as written.
    pub field: String,
    /// `DESC`.
    pub descending: bool,
    /// Whether nulls sort after non-null values (explicit `NULLS LAST`, or the default for `DESC`).
    pub nulls_last: bool,
}

/// Parses a query of the supported subset.
pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    if soql.chars().count() > MAX_QUERY_CHARS {
        return Err(SoqlError {
            error_code: SoqlError::MALFORMED_QUERY,
            message: "SOQL statements cannot be longer than 100,000 characters.".to_string(),
        });
    }
    let toks = lex(soql)?;
    let mut p = Parser {
        src: soql,
        toks,
        i: 0,
        depth: 0,
        refs: Vec::new(),
    };
    p.query()
}

/// The records a query picked, borrowed from the rows it ran over: what a caller needs to
/// serialize them without building projected copies first.
#[derive(Debug)]
pub struct Selection<'r> {
    /// Canonical names of the selected fields, in SELECT order (empty for `COUNT()`).
    pub fields: Vec<String>,
    /// The matching records after `ORDER BY`, `OFFSET` and `LIMIT` (empty for `COUNT()`).
    pub rows: Vec<&'r Map<String, Json>>,
    /// How many records matched (`totalSize`, also for `COUNT()`).
    pub count: usize,
}

impl Query {
    /// The records of `rows` the query selects, after `ORDER BY`, `OFFSET` and `LIMIT`, borrowed
    /// rather than copied. `rows` may be owned rows or references (anything that borrows as a
    /// row), so a caller holding its records elsewhere need not clone them to query them.
    ///
    /// `fields`, when given, are the object's field names: they replace the union of the rows'
    /// keys for checking the query's field references (no scan of every key of every row, and
    /// an unknown field is refused even when there are no rows, as Salesforce does).
    pub fn select<'r, R: Borrow<Map<String, Json>>>(
        &self,
        rows: &'r [R],
        fields: Option<&[&str]>,
        now: OffsetDateTime,
    ) -> Result<Selection<'r>, SoqlError> {
        let names = match fields {
            Some(f) => self.resolve_names(f.iter().copied(), false)?,
            None => self.resolve(rows)?,
        };
        let picked = self.matching(rows, &names, now);
        let count = picked.len();
        if self.count_only {
            return Ok(Selection {
                fields: Vec::new(),
                rows: Vec::new(),
                count,
            });
        }
        Ok(Selection {
            fields: self.select_names(&names),
            rows: picked,
            count,
        })
    }

    /// The `INVALID_TYPE` error Salesforce returns when the object after `FROM` does not exist.
    pub fn invalid_type_error(&self) -> SoqlError {
        located(
            SoqlError::INVALID_TYPE,
            &self.source,
            self.object_pos,
            &format!(
                "sObject type '{}' is not supported. {INVALID_TYPE_TAIL}",
                self.object
            ),
        )
    }

    /// Checks every field reference against the union of the rows' keys and returns the map from
    /// lower-cased name to canonical name.
    fn resolve<R: Borrow<Map<String, Json>>>(
        &self,
        rows: &[R],
    ) -> Result<HashMap<String, String>, SoqlError> {
        // Records of one object nearly always share one key set, and a row whose keys equal
        // the previous row's adds nothing.
        let mut keys: Vec<&str> = Vec::new();
        let mut prev: Option<&Map<String, Json>> = None;
        for row in rows {
            let row = row.borrow();
            if prev.is_some_and(|p| p.len() == row.len() && p.keys().eq(row.keys())) {
                continue;
            }
            keys.extend(row.keys().map(String::as_str));
            prev = Some(row);
        }
        self.resolve_names(keys.into_iter(), rows.is_empty())
    }

    /// The map from lower-cased to canonical name of `keys` (the first spelling wins), after
    /// checking every field reference against it; `lenient` accepts any reference (no rows
    /// to know the fields from).
    fn resolve_names<'k>(
        &self,
        keys: impl Iterator<Item = &'k str>,
        lenient: bool,
    ) -> Result<HashMap<String, String>, SoqlError> {
        let mut names: HashMap<String, String> = HashMap::new();
        for key in keys {
            names
                .entry(key.to_ascii_lowercase())
                .or_insert_with(|| key.to_owned());
        }
        let mut refs: Vec<&(usize, String)> = self.refs.iter().collect();
        refs.sort_by_key(|(pos, _)| *pos);
        for (pos, field) in refs {
            let lower = field.to_ascii_lowercase();
            if lower == "id" || lenient || names.contains_key(&lower) {
                continue;
            }
            return Err(located(
                SoqlError::INVALID_FIELD,
                &self.source,
                *pos,
                &format!(
                    "No such column '{field}' on entity '{}'. {NO_SUCH_COLUMN_TAIL}",
                    self.object
                ),
            ));
        }
        Ok(names)
    }

    fn select_names(&self, names: &HashMap<String, String>) -> Vec<String> {
        self.fields.iter().map(|f| canonical(names, f)).collect()
    }

    /// Filter, sort, offset, limit.
    fn matching<'r, R: Borrow<Map<String, Json>>>(
        &self,
        rows: &'r [R],
        names: &HashMap<String, String>,
        now: OffsetDateTime,
    ) -> Vec<&'r Map<String, Json>> {
        // Field names as written → canonical, once per query rather than once per row.
        let fields: HashMap<&str, String> = self
            .refs
            .iter()
            .map(|(_, f)| (f.as_str(), canonical(names, f)))
            .collect();
        let ctx = Ctx {
            names,
            fields: &fields,
            today: now.unix_timestamp_nanos().div_euclid(NANOS_PER_DAY) * NANOS_PER_DAY,
        };
        let mut picked: Vec<&Map<String, Json>> = rows
            .iter()
            .map(Borrow::borrow)
            .filter(|row| self.conditions.iter().all(|c| ctx.eval(c, row)))
            .collect();
        if !self.order_by.is_empty() {
            let order: Vec<String> = self
                .order_by
                .iter()
                .map(|o| canonical(names, &o.field))
                .collect();
            let mut keyed: Vec<(Vec<Option<SortKey>>, _)> = picked
                .into_iter()
                .map(|row| {
                    let keys = order
                        .iter()
                        .map(|f| lookup(row, f).and_then(sort_key))
                        .collect();
                    (keys, row)
                })
                .collect();
            keyed.sort_by(|(a, _), (b, _)| {
                for ((ka, kb), ob) in a.iter().zip(b.iter()).zip(self.order_by.iter()) {
                    let ord = match (ka, kb) {
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) if ob.nulls_last => Ordering::Greater,
                        (None, Some(_)) => Ordering::Less,
                        (Some(_), None) if ob.nulls_last => Ordering::Less,
                        (Some(_), None) => Ordering::Greater,
                        (Some(x), Some(y)) if ob.descending => y.cmp(x),
                        (Some(x), Some(y)) => x.cmp(y),
                    };
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                Ordering::Equal
            });
            picked = keyed.into_iter().map(|(_, row)| row).collect();
        }
        picked
            .into_iter()
            .skip(self.offset.unwrap_or(0))
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }
}

/// The `fields` (canonical names) of each row, as owned rows.
pub fn project(fields: &[String], rows: &[&Map<String, Json>]) -> Vec<Map<String, Json>> {
    rows.iter()
        .map(|row| {
            let mut out = Map::new();
            for name in fields {
                let v = lookup(row, name).cloned().unwrap_or(Json::Null);
                out.insert(name.clone(), v);
            }
            out
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

fn canonical(names: &HashMap<String, String>, field: &str) -> String {
    let lower = field.to_ascii_lowercase();
    match names.get(&lower) {
        Some(c) => c.clone(),
        None if lower == "id" => "Id".to_string(),
        None => field.to_string(),
    }
}

fn lookup<'r>(row: &'r Map<String, Json>, name: &str) -> Option<&'r Json> {
    row.get(name).or_else(|| {
        row.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

struct Ctx<'a> {
    names: &'a HashMap<String, String>,
    /// Field names as written in the query → canonical names.
    fields: &'a HashMap<&'a str, String>,
    /// Start of the current UTC day, in Unix nanoseconds.
    today: i128,
}

impl Ctx<'_> {
    fn eval(&self, cond: &Condition, row: &Map<String, Json>) -> bool {
        match cond {
            Condition::And(v) => v.iter().all(|c| self.eval(c, row)),
            Condition::Or(v) => v.iter().any(|c| self.eval(c, row)),
            Condition::Not(c) => !self.eval(c, row),
            Condition::Compare(cmp) => {
                let v = match self.fields.get(cmp.field.as_str()) {
                    Some(name) => lookup(row, name),
                    None => lookup(row, &canonical(self.names, &cmp.field)),
                }
                .filter(|v| !v.is_null());
                self.compare(v, cmp)
            }
        }
    }

    fn compare(&self, v: Option<&Json>, cmp: &Comparison) -> bool {
        match cmp.op {
            CompareOp::Eq => self.equals(v, &cmp.value),
            CompareOp::Ne => !self.equals(v, &cmp.value),
            CompareOp::In => match &cmp.value {
                Literal::List(items) => items.iter().any(|l| self.equals(v, l)),
                other => self.equals(v, other),
            },
            CompareOp::NotIn => match &cmp.value {
                Literal::List(items) => !items.iter().any(|l| self.equals(v, l)),
                other => !self.equals(v, other),
            },
            CompareOp::Like => match v {
                Some(Json::String(s)) => like_match(&cmp.like, s),
                _ => false,
            },
            CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => match v {
                Some(v) => self.ordered(v, cmp.op, &cmp.value),
                None => false,
            },
        }
    }

    fn equals(&self, v: Option<&Json>, lit: &Literal) -> bool {
        let Some(v) = v else {
            return matches!(lit, Literal::Null);
        };
        match lit {
            Literal::Null | Literal::List(_) => false,
            Literal::String(s) => match v {
                Json::String(x) => x.to_lowercase() == s.to_lowercase(),
                _ => false,
            },
            Literal::Number(n) => json_number(v).is_some_and(|x| x == *n),
            Literal::Bool(b) => v.as_bool() == Some(*b),
            _ => match (self.range(lit), row_instant(v)) {
                (Some((start, end)), Some(t)) => start <= t && t < end,
                _ => false,
            },
        }
    }

    fn ordered(&self, v: &Json, op: CompareOp, lit: &Literal) -> bool {
        let ord = match lit {
            Literal::Null | Literal::Bool(_) | Literal::List(_) => return false,
            Literal::String(s) => match v {
                Json::String(x) => x.to_lowercase().cmp(&s.to_lowercase()),
                _ => return false,
            },
            Literal::Number(n) => match json_number(v).and_then(|x| x.partial_cmp(n)) {
                Some(o) => o,
                None => return false,
            },
            _ => {
                // Temporal: the literal is the half-open range [start, end).
                let (Some((start, end)), Some(t)) = (self.range(lit), row_instant(v)) else {
                    return false;
                };
                return match op {
                    CompareOp::Lt => t < start,
                    CompareOp::Le => t < end,
                    CompareOp::Gt => t >= end,
                    CompareOp::Ge => t >= start,
                    _ => false,
                };
            }
        };
        match op {
            CompareOp::Lt => ord == Ordering::Less,
            CompareOp::Le => ord != Ordering::Greater,
            CompareOp::Gt => ord == Ordering::Greater,
            CompareOp::Ge => ord != Ordering::Less,
            _ => false,
        }
    }

    /// The half-open instant range `[start, end)` (Unix nanoseconds) of a temporal literal.
    fn range(&self, lit: &Literal) -> Option<(i128, i128)> {
        let day = NANOS_PER_DAY;
        let days = |n: u32| i128::from(n).saturating_mul(day);
        let t0 = self.today;
        Some(match lit {
            Literal::DateTime(dt) => {
                let t = dt.unix_timestamp_nanos();
                (t, t.saturating_add(1))
            }
            Literal::Date(d) => {
                let s = day_start(*d);
                (s, s.saturating_add(day))
            }
            Literal::Relative(r) => match r {
                RelativeDate::Today => (t0, t0 + day),
                RelativeDate::Yesterday => (t0 - day, t0),
                RelativeDate::Tomorrow => (t0 + day, t0 + 2 * day),
                RelativeDate::LastNDays(n) => (t0.saturating_sub(days(*n)), t0 + day),
                RelativeDate::NextNDays(n) => (t0 + day, (t0 + day).saturating_add(days(*n))),
                RelativeDate::NDaysAgo(n) => {
                    let s = t0.saturating_sub(days(*n));
                    (s, s.saturating_add(day))
                }
            },
            _ => return None,
        })
    }
}

fn json_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => {
            let s = s.trim();
            if is_plain_number(s) {
                s.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A row value as an instant: a datetime string, or a date string (its UTC midnight).
fn row_instant(v: &Json) -> Option<i128> {
    let s = v.as_str()?;
    parse_datetime(s)
        .map(|dt| dt.unix_timestamp_nanos())
        .or_else(|| parse_date(s).map(day_start))
}

fn day_start(d: Date) -> i128 {
    PrimitiveDateTime::new(d, Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp_nanos()
}

/// A totally ordered sort key for a non-null value.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Bool(bool),
    Number(i64),
    /// Datetime / date strings, by instant (equal instants keep row order).
    Instant(i128),
    /// Other strings, case-insensitively, the raw text breaking ties.
    Text(String, String),
    Other(String),
}

fn sort_key(v: &Json) -> Option<SortKey> {
    Some(match v {
        Json::Null => return None,
        Json::Bool(b) => SortKey::Bool(*b),
        Json::Number(n) => {
            // The bit trick behind f64::total_cmp, as an i64 key.
            let bits = n.as_f64().unwrap_or(0.0).to_bits() as i64;
            SortKey::Number(bits ^ ((((bits >> 63) as u64) >> 1) as i64))
        }
        Json::String(s) => match row_instant(v) {
            Some(t) => SortKey::Instant(t),
            None => SortKey::Text(s.to_lowercase(), s.clone()),
        },
        other => SortKey::Other(other.to_string()),
    })
}

/// One element of a `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LikeTok {
    Char(char),
    /// `_`
    One,
    /// `%`
    Many,
}

/// Case-insensitive `LIKE`; linear backtracking on the last `%`, no recursion.
fn like_match(pattern: &[LikeTok], text: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<LikeTok> = pattern
        .iter()
        .flat_map(|tok| match tok {
            LikeTok::Char(c) => c.to_lowercase().map(LikeTok::Char).collect::<Vec<_>>(),
            other => vec![other.clone()],
        })
        .collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(LikeTok::One) => {
                pi += 1;
                ti += 1;
            }
            Some(LikeTok::Char(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            Some(LikeTok::Many) => {
                star = Some((pi, ti));
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|x| *x == LikeTok::Many)
}

// ---------------------------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------------------------

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY-MM-DD`.
fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || !s.is_ascii() || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = u8::try_from(digits(&s[5..7])?).ok()?;
    let day = u8::try_from(digits(&s[8..10])?).ok()?;
    Date::from_calendar_date(i32::try_from(year).ok()?, Month::try_from(month).ok()?, day).ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM|±HHMM]`.
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    if !s.is_ascii() || s.len() < 20 {
        return None;
    }
    let b = s.as_bytes();
    let date = parse_date(&s[0..10])?;
    if !(b[10] == b'T' || b[10] == b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hour = u8::try_from(digits(&s[11..13])?).ok()?;
    let minute = u8::try_from(digits(&s[14..16])?).ok()?;
    let second = u8::try_from(digits(&s[17..19])?).ok()?;
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&frac[..n])? * 10u32.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => UtcOffset::UTC,
        _ => {
            let sign: i8 = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let body = &rest[1..];
            let (h, m) = match body.len() {
                5 if body.as_bytes()[2] == b':' => (&body[0..2], &body[3..5]),
                4 => (&body[0..2], &body[2..4]),
                _ => return None,
            };
            let h = i8::try_from(digits(h)?).ok()?;
            let m = i8::try_from(digits(m)?).ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// `-?\d+(\.\d+)?`
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A word: keyword, field, object, or `LAST_N_DAYS:n`.
    Ident,
    Str {
        value: String,
        like: Vec<LikeTok>,
    },
    Num(f64),
    DateTime(OffsetDateTime),
    Date(Date),
    Comma,
    LParen,
    RParen,
    Op(CompareOp),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offset in the source.
    pos: usize,
    /// The source text of the token (`<EOF>` at the end).
    text: String,
}

impl Token {
    fn is_kw(&self, kw: &str) -> bool {
        self.tok == Tok::Ident && self.text.eq_ignore_ascii_case(kw)
    }
}

fn lex(src: &str) -> Result<Vec<Token>, SoqlError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let pos_of = |i: usize| chars.get(i).map_or(src.len(), |&(p, _)| p);
    let slice = |a: usize, b: usize| src.get(pos_of(a)..pos_of(b)).unwrap_or("").to_string();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let start = i;
        let simple = |tok: Tok, len: usize| Token {
            tok,
            pos: pos_of(start),
            text: slice(start, start + len),
        };
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            ',' => {
                toks.push(simple(Tok::Comma, 1));
                i += 1;
            }
            '(' => {
                toks.push(simple(Tok::LParen, 1));
                i += 1;
            }
            ')' => {
                toks.push(simple(Tok::RParen, 1));
                i += 1;
            }
            '=' => {
                toks.push(simple(Tok::Op(CompareOp::Eq), 1));
                i += 1;
            }
            '!' if at(i + 1) == Some('=') => {
                toks.push(simple(Tok::Op(CompareOp::Ne), 2));
                i += 2;
            }
            '<' => {
                let (op, len) = match at(i + 1) {
                    Some('=') => (CompareOp::Le, 2),
                    Some('>') => (CompareOp::Ne, 2),
                    _ => (CompareOp::Lt, 1),
                };
                toks.push(simple(Tok::Op(op), len));
                i += len;
            }
            '>' => {
                let (op, len) = match at(i + 1) {
                    Some('=') => (CompareOp::Ge, 2),
                    _ => (CompareOp::Gt, 1),
                };
                toks.push(simple(Tok::Op(op), len));
                i += len;
            }
            '\'' => {
                let mut value = String::new();
                let mut like = Vec::new();
                i += 1;
                loop {
                    let Some(ch) = at(i) else {
                        return Err(located(
                            SoqlError::MALFORMED_QUERY,
                            src,
                            src.len(),
                            "mismatched character '<EOF>' expecting '''",
                        ));
                    };
                    i += 1;
                    match ch {
                        '\'' => break,
                        '\\' => {
                            let esc = at(i);
                            i += 1;
                            let lit = match esc {
                                Some('n') => '\n',
                                Some('r') => '\r',
                                Some('t') => '\t',
                                Some('b') => '\u{8}',
                                Some('f') => '\u{c}',
                                Some(e @ ('\'' | '"' | '\\' | '%' | '_')) => e,
                                other => {
                                    let seq = other.map(String::from).unwrap_or_default();
                                    return Err(located(
                                        SoqlError::MALFORMED_QUERY,
                                        src,
                                        pos_of(start),
                                        &format!(
                                            "Invalid string literal '{}'. Illegal character sequence '\\{seq}' in string literal.",
                                            slice(start, i.min(chars.len()))
                                        ),
                                    ));
                                }
                            };
                            value.push(lit);
                            like.push(LikeTok::Char(lit));
                        }
                        '%' => {
                            value.push(ch);
                            like.push(LikeTok::Many);
                        }
                        '_' => {
                            value.push(ch);
                            like.push(LikeTok::One);
                        }
                        _ => {
                            value.push(ch);
                            like.push(LikeTok::Char(ch));
                        }
                    }
                }
                toks.push(Token {
                    tok: Tok::Str { value, like },
                    pos: pos_of(start),
                    text: slice(start, i),
                });
            }
            c if c.is_ascii_digit()
                || (c == '-' && at(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while at(i).is_some_and(|d| {
                    d.is_ascii_alphanumeric() || matches!(d, ':' | '.' | '+' | '-')
                }) {
                    i += 1;
                }
                let text = slice(start, i);
                let tok = if let Some(dt) = parse_datetime(&text) {
                    Tok::DateTime(dt)
                } else if let Some(d) = parse_date(&text) {
                    Tok::Date(d)
                } else if is_plain_number(&text)
                    && let Ok(n) = text.parse::<f64>()
                {
                    Tok::Num(n)
                } else {
                    return Err(unexpected_at(src, pos_of(start), &text));
                };
                toks.push(Token {
                    tok,
                    pos: pos_of(start),
                    text,
                });
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                i += 1;
                while at(i).is_some_and(|d| d.is_ascii_alphanumeric() || matches!(d, '_' | '.')) {
                    i += 1;
                }
                // `LAST_N_DAYS:30`
                if at(i) == Some(':') && at(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    while at(i).is_some_and(|d| d.is_ascii_digit()) {
                        i += 1;
                    }
                }
                toks.push(Token {
                    tok: Tok::Ident,
                    pos: pos_of(start),
                    text: slice(start, i),
                });
            }
            other => {
                return Err(unexpected_at(src, pos_of(start), &other.to_string()));
            }
        }
    }
    toks.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
        text: "<EOF>".to_string(),
    });
    Ok(toks)
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    refs: Vec<(usize, String)>,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `lex` always ends with Eof and `bump` never moves past it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek2(&self) -> &Token {
        &self.toks[(self.i + 1).min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        unexpected_at(self.src, t.pos, &t.text)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek().is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), SoqlError> {
        if self.peek().tok == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// A field or object name: a word that is not reserved, with non-empty `.`-segments.
    fn name(&mut self) -> Result<(usize, String), SoqlError> {
        let t = self.peek();
        let ok = t.tok == Tok::Ident
            && !t.text.contains(':')
            && t.text.split('.').all(|seg| !seg.is_empty())
            && !RESERVED.iter().any(|r| t.text.eq_ignore_ascii_case(r));
        if !ok {
            return Err(self.unexpected());
        }
        let t = self.bump();
        Ok((t.pos, t.text))
    }

    fn field(&mut self) -> Result<String, SoqlError> {
        let (pos, name) = self.name()?;
        self.refs.push((pos, name.clone()));
        Ok(name)
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let mut fields = Vec::new();
        let mut count_only = false;
        if self.peek().is_kw("COUNT") && self.peek2().tok == Tok::LParen {
            self.bump();
            self.bump();
            self.expect(Tok::RParen)?;
            count_only = true;
        } else {
            loop {
                let t = self.peek().clone();
                let f = self.field()?;
                if fields.iter().any(|x: &String| x.eq_ignore_ascii_case(&f)) {
                    return Err(located(
                        SoqlError::MALFORMED_QUERY,
                        self.src,
                        t.pos,
                        &format!("duplicate field selected: {f}"),
                    ));
                }
                fields.push(f);
                if self.peek().tok == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        self.expect_kw("FROM")?;
        let (object_pos, object) = self.name()?;
        let mut conditions = Vec::new();
        if self.eat_kw("WHERE") {
            conditions = match self.or_expr()? {
                Condition::And(v) => v,
                c => vec![c],
            };
        }
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let field = self.field()?;
                let descending = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                let mut nulls_last = descending;
                if self.eat_kw("NULLS") {
                    if self.eat_kw("LAST") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("FIRST")?;
                        nulls_last = false;
                    }
                }
                order_by.push(OrderBy {
                    field,
                    descending,
                    nulls_last,
                });
                if self.peek().tok == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.count_arg()?)
        } else {
            None
        };
        let offset = if self.eat_kw("OFFSET") {
            Some(self.count_arg()?)
        } else {
            None
        };
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(Query {
            fields,
            object,
            conditions,
            order_by,
            limit,
            offset,
            count_only,
            source: self.src.to_string(),
            object_pos,
            refs: std::mem::take(&mut self.refs),
        })
    }

    /// A non-negative integer (LIMIT / OFFSET).
    fn count_arg(&mut self) -> Result<usize, SoqlError> {
        let t = self.peek();
        match (&t.tok, t.text.parse::<usize>()) {
            (Tok::Num(_), Ok(n)) if t.text.bytes().all(|b| b.is_ascii_digit()) => {
                self.bump();
                Ok(n)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn enter(&mut self) -> Result<(), SoqlError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let t = self.peek();
            return Err(located(
                SoqlError::MALFORMED_QUERY,
                self.src,
                t.pos,
                "Query is too complicated: too many nested conditions",
            ));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Condition, SoqlError> {
        self.enter()?;
        let mut v = vec![self.and_expr()?];
        while self.eat_kw("OR") {
            v.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Condition::Or(v)
        })
    }

    fn and_expr(&mut self) -> Result<Condition, SoqlError> {
        let mut v = vec![self.unary()?];
        while self.eat_kw("AND") {
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Condition::And(v)
        })
    }

    fn unary(&mut self) -> Result<Condition, SoqlError> {
        if self.peek().is_kw("NOT") {
            self.bump();
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        if self.peek().tok == Tok::LParen {
            self.bump();
            let inner = self.or_expr()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, SoqlError> {
        let field = self.field()?;
        let op = match &self.peek().tok {
            Tok::Op(op) => *op,
            Tok::Ident if self.peek().is_kw("LIKE") => CompareOp::Like,
            Tok::Ident if self.peek().is_kw("IN") => CompareOp::In,
            Tok::Ident if self.peek().is_kw("NOT") && self.peek2().is_kw("IN") => {
                self.bump();
                CompareOp::NotIn
            }
            _ => return Err(self.unexpected()),
        };
        self.bump();
        let mut like = Vec::new();
        let value = match op {
            CompareOp::In | CompareOp::NotIn => {
                self.expect(Tok::LParen)?;
                let mut items = vec![self.literal()?];
                while self.peek().tok == Tok::Comma {
                    self.bump();
                    items.push(self.literal()?);
                }
                self.expect(Tok::RParen)?;
                Literal::List(items)
            }
            CompareOp::Like => match self.peek().tok.clone() {
                Tok::Str {
                    value,
                    like: pattern,
                } => {
                    self.bump();
                    like = pattern;
                    Literal::String(value)
                }
                _ => return Err(self.unexpected()),
            },
            _ => self.literal()?,
        };
        Ok(Condition::Compare(Comparison {
            field,
            op,
            value,
            like,
        }))
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let t = self.peek().clone();
        let lit = match t.tok {
            Tok::Str { value, .. } => Literal::String(value),
            Tok::Num(n) => Literal::Number(n),
            Tok::DateTime(dt) => Literal::DateTime(dt),
            Tok::Date(d) => Literal::Date(d),
            Tok::Ident => {
                let upper = t.text.to_ascii_uppercase();
                let (word, arg) = match upper.split_once(':') {
                    Some((w, n)) => (w, Some(n)),
                    None => (upper.as_str(), None),
                };
                let n = arg.and_then(digits);
                match (word, arg, n) {
                    ("TRUE", None, _) => Literal::Bool(true),
                    ("FALSE", None, _) => Literal::Bool(false),
                    ("NULL", None, _) => Literal::Null,
                    ("TODAY", None, _) => Literal::Relative(RelativeDate::Today),
                    ("YESTERDAY", None, _) => Literal::Relative(RelativeDate::Yesterday),
                    ("TOMORROW", None, _) => Literal::Relative(RelativeDate::Tomorrow),
                    ("LAST_N_DAYS", Some(_), Some(n)) => {
                        Literal::Relative(RelativeDate::LastNDays(n))
                    }
                    ("NEXT_N_DAYS", Some(_), Some(n)) => {
                        Literal::Relative(RelativeDate::NextNDays(n))
                    }
                    ("N_DAYS_AGO", Some(_), Some(n)) => {
                        Literal::Relative(RelativeDate::NDaysAgo(n))
                    }
                    _ => return Err(self.unexpected()),
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.bump();
        Ok(lit)
    }
}

// ---------------------------------------------------------------------------------------------
// Error rendering
// ---------------------------------------------------------------------------------------------

fn unexpected_at(src: &str, pos: usize, text: &str) -> SoqlError {
    located(
        SoqlError::MALFORMED_QUERY,
        src,
        pos,
        &format!("unexpected token: '{text}'"),
    )
}

/// `\n<line>\n<spaces>^\nERROR at Row:R:Column:C\n<text>`, as Salesforce renders query errors.
fn located(code: &'static str, src: &str, pos: usize, text: &str) -> SoqlError {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[pos..].find('\n').map_or(src.len(), |i| pos + i);
    let line: Vec<char> = src[line_start..line_end]
        .trim_end_matches('\r')
        .chars()
        .collect();
    let col = src[line_start..pos].chars().count() + 1;
    // Long lines are shown as a window around the error, like Salesforce does.
    const WINDOW: usize = 200;
    let first = if line.len() > WINDOW {
        (col - 1).saturating_sub(WINDOW / 2)
    } else {
        0
    };
    let shown: String = line.iter().skip(first).take(WINDOW).collect();
    let caret = " ".repeat(col - 1 - first);
    SoqlError {
        error_code: code,
        message: format!("\n{shown}\n{caret}^\nERROR at Row:{row}:Column:{col}\n{text}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned-row conveniences over [`Query::select`], as the tests read best.
    trait Run {
        /// The selected fields of the matching records, keyed by canonical name.
        fn execute(
            &self,
            rows: &[Map<String, Json>],
            now: OffsetDateTime,
        ) -> Result<Vec<Map<String, Json>>, SoqlError>;
        /// How many records the query yields (`totalSize`, also of `COUNT()`).
        fn count(
            &self,
            rows: &[Map<String, Json>],
            now: OffsetDateTime,
        ) -> Result<usize, SoqlError>;
        /// The canonical names of the selected fields, in SELECT order.
        fn select_fields(&self, rows: &[Map<String, Json>]) -> Result<Vec<String>, SoqlError>;
    }

    impl Run for Query {
        fn execute(
            &self,
            rows: &[Map<String, Json>],
            now: OffsetDateTime,
        ) -> Result<Vec<Map<String, Json>>, SoqlError> {
            let s = self.select(rows, None, now)?;
            Ok(project(&s.fields, &s.rows))
        }
        fn count(
            &self,
            rows: &[Map<String, Json>],
            now: OffsetDateTime,
        ) -> Result<usize, SoqlError> {
            let names = self.resolve(rows)?;
            Ok(self.matching(rows, &names, now).len())
        }
        fn select_fields(&self, rows: &[Map<String, Json>]) -> Result<Vec<String>, SoqlError> {
            let names = self.resolve(rows)?;
            Ok(self.select_names(&names))
        }
    }
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);

    fn rows() -> Vec<Map<String, Json>> {
        let v = json!([
            {"Id": "001A", "Name": "Acme", "Amount": 100, "Active__c": true,
             "SystemModstamp": "2026-11-28T05:58:09.000+0000", "CloseDate": "2026-11-28", "Note": null},
            {"Id": "001B", "Name": "beta corp", "Amount": 5.5, "Active__c": false,
             "SystemModstamp": "2026-11-27T23:00:00.000+0000", "CloseDate": "2026-11-20", "Note": "it's"},
            {"Id": "001C", "Name": "Gamma_1", "Amount": null, "Active__c": true,
             "SystemModstamp": "2026-11-20T10:00:00.000+0000", "CloseDate": null, "Note": "100%"},
            {"Id": "001D", "Name": "acme labs", "Amount": -3, "Active__c": false,
             "SystemModstamp": "2026-11-28T06:58:09.000+0100", "CloseDate": "2026-12-01", "Note": "a\\b"}
        ]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    fn ids(q: &str) -> Vec<String> {
        let q = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        q.execute(&rows(), NOW)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn where_table() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT Id FROM Account", &["001A", "001B", "001C", "001D"]),
            ("select id from account where name = 'ACME'", &["001A"]),
            (
                "SELECT Id FROM Account WHERE Name != 'acme'",
                &["001B", "001C", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE Name <> 'acme'",
                &["001B", "001C", "001D"],
            ),
            ("SELECT Id FROM Account WHERE Amount > 5.5", &["001A"]),
            (
                "SELECT Id FROM Account WHERE Amount >= 5.5",
                &["001A", "001B"],
            ),
            ("SELECT Id FROM Account WHERE Amount < 0", &["001D"]),
            ("SELECT Id FROM Account WHERE Amount <= -3", &["001D"]),
            ("SELECT Id FROM Account WHERE Amount = null", &["001C"]),
            (
                "SELECT Id FROM Account WHERE Amount != null",
                &["001A", "001B", "001D"],
            ),
            ("SELECT Id FROM Account WHERE Note = NULL", &["001A"]),
            (
                "SELECT Id FROM Account WHERE Active__c = true",
                &["001A", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE Active__c = FALSE",
                &["001B", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE Name LIKE 'acme%'",
                &["001A", "001D"],
            ),
            ("SELECT Id FROM Account WHERE Name LIKE '%CORP'", &["001B"]),
            ("SELECT Id FROM Account WHERE Name LIKE 'g_mma%'", &["001C"]),
            (
                "SELECT Id FROM Account WHERE Name LIKE 'Gamma\\_1'",
                &["001C"],
            ),
            (
                "SELECT Id FROM Account WHERE Name LIKE 'Gamma\\_%'",
                &["001C"],
            ),
            ("SELECT Id FROM Account WHERE Name LIKE 'Gamma\\%'", &[]),
            ("SELECT Id FROM Account WHERE Note LIKE '%\\%'", &["001C"]),
            ("SELECT Id FROM Account WHERE Note = 'it\\'s'", &["001B"]),
            ("SELECT Id FROM Account WHERE Note = 'a\\\\b'", &["001D"]),
            (
                "SELECT Id FROM Account WHERE Id IN ('001a', '001C')",
                &["001A", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE Id NOT IN ('001A','001C')",
                &["001B", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE Amount IN (100, -3)",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE Amount NOT IN (100)",
                &["001B", "001C", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE Name = 'Acme' OR Amount < 0",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE (Name LIKE 'acme%' OR Name = 'Gamma_1') AND Active__c = true",
                &["001A", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE Name LIKE 'acme%' OR Name = 'Gamma_1' AND Active__c = false",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE NOT Name LIKE 'acme%'",
                &["001B", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE NOT (Amount > 0 OR Amount = null)",
                &["001D"],
            ),
            // Datetimes compare as instants: 06:58:09+01:00 == 05:58:09Z.
            (
                "SELECT Id FROM Account WHERE SystemModstamp = 2026-11-28T05:58:09Z",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp = 2026-11-28T05:58:09.000+0000",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp > 2026-11-28T06:58:08+01:00",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp < 2026-11-28T00:00:00Z",
                &["001B", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp >= 2026-11-27T23:00:00-00:00",
                &["001A", "001B", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp <= 2026-11-27T23:00:00Z",
                &["001B", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp = TODAY",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp = YESTERDAY",
                &["001B"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp < TODAY",
                &["001B", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp > YESTERDAY",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp >= YESTERDAY",
                &["001A", "001B", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp <= YESTERDAY",
                &["001B", "001C"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp = LAST_N_DAYS:1",
                &["001A", "001B", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp = last_n_days:30",
                &["001A", "001B", "001C", "001D"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp < LAST_N_DAYS:7",
                &["001C"],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp < LAST_N_DAYS:8",
                &[],
            ),
            (
                "SELECT Id FROM Account WHERE SystemModstamp = N_DAYS_AGO:8",
                &["001C"],
            ),
            (
                "SELECT Id FROM Account WHERE CloseDate = 2026-11-28",
                &["001A"],
            ),
            (
                "SELECT Id FROM Account WHERE CloseDate > 2026-11-28",
                &["001D"],
            ),
            (
                "SELECT Id FROM Account WHERE CloseDate <= 2026-11-28",
                &["001A", "001B"],
            ),
            ("SELECT Id FROM Account WHERE CloseDate = TODAY", &["001A"]),
            (
                "SELECT Id FROM Account WHERE CloseDate = NEXT_N_DAYS:3",
                &["001D"],
            ),
            ("SELECT Id FROM Account WHERE CloseDate = TOMORROW", &[]),
            (
                "SELECT Id FROM Account WHERE CloseDate != null AND CloseDate < TODAY",
                &["001B"],
            ),
        ];
        for (q, want) in cases {
            assert_eq!(ids(q), *want, "{q}");
        }
    }

    #[test]
    fn order_limit_offset() {
        let cases: &[(&str, &[&str])] = &[
            (
                "SELECT Id FROM Account ORDER BY Name",
                &["001A", "001D", "001B", "001C"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Name DESC",
                &["001C", "001B", "001D", "001A"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Amount",
                &["001C", "001D", "001B", "001A"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Amount ASC NULLS LAST",
                &["001D", "001B", "001A", "001C"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Amount DESC",
                &["001A", "001B", "001D", "001C"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Amount DESC NULLS FIRST",
                &["001C", "001A", "001B", "001D"],
            ),
            // Instants, not strings: 06:58:09+01:00 == 05:58:09Z; ties keep row order.
            (
                "SELECT Id FROM Account ORDER BY SystemModstamp",
                &["001C", "001B", "001A", "001D"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Active__c DESC, Name ASC",
                &["001A", "001C", "001D", "001B"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Name LIMIT 2",
                &["001A", "001D"],
            ),
            (
                "SELECT Id FROM Account ORDER BY Name LIMIT 2 OFFSET 1",
                &["001D", "001B"],
            ),
            ("SELECT Id FROM Account ORDER BY Name OFFSET 3", &["001C"]),
            ("SELECT Id FROM Account LIMIT 0", &[]),
            ("SELECT Id FROM Account OFFSET 10", &[]),
        ];
        for (q, want) in cases {
            assert_eq!(ids(q), *want, "{q}");
        }
    }

    #[test]
    fn projection_uses_canonical_names() {
        let q = parse("select NAME, id, amount from Account where id = '001A'").unwrap();
        assert_eq!(q.fields, ["NAME", "id", "amount"]);
        let out = q.execute(&rows(), NOW).unwrap();
        assert_eq!(out.len(), 1);
        let keys: Vec<&str> = out[0].keys().map(String::as_str).collect();
        let mut want = vec!["Name", "Id", "Amount"];
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(out[0]["Name"], json!("Acme"));
        assert_eq!(out[0]["Amount"], json!(100));
        assert_eq!(q.select_fields(&rows()).unwrap(), ["Name", "Id", "Amount"]);
        // Nulls are kept as nulls.
        let out = parse("SELECT Note FROM Account WHERE Id = '001A'")
            .unwrap()
            .execute(&rows(), NOW)
            .unwrap();
        assert_eq!(out[0]["Note"], Json::Null);
    }

    #[test]
    fn id_always_allowed_and_empty_rows_accept_anything() {
        let no_id: Vec<Map<String, Json>> = vec![json!({"Name": "x"}).as_object().unwrap().clone()];
        let out = parse("SELECT Id, Name FROM Foo")
            .unwrap()
            .execute(&no_id, NOW)
            .unwrap();
        assert_eq!(out[0]["Id"], Json::Null);
        let q = parse("SELECT Whatever__c FROM Foo WHERE Other = 1 ORDER BY Third").unwrap();
        assert_eq!(
            q.execute(&[], NOW).unwrap(),
            Vec::<Map<String, Json>>::new()
        );
        assert_eq!(q.count(&[], NOW).unwrap(), 0);
    }

    #[test]
    fn count() {
        let q = parse("SELECT COUNT() FROM Account").unwrap();
        assert!(q.count_only);
        assert!(q.fields.is_empty());
        assert_eq!(q.execute(&rows(), NOW).unwrap().len(), 0);
        assert_eq!(q.count(&rows(), NOW).unwrap(), 4);
        let q = parse("select count() from Account where Active__c = true").unwrap();
        assert_eq!(q.count(&rows(), NOW).unwrap(), 2);
        let q = parse("SELECT COUNT() FROM Account LIMIT 3").unwrap();
        assert_eq!(q.count(&rows(), NOW).unwrap(), 3);
        let q = parse("SELECT Id FROM Account WHERE Amount > 0").unwrap();
        assert_eq!(q.count(&rows(), NOW).unwrap(), 2);
        let e = parse("SELECT COUNT() FROM Account WHERE Nope = 1")
            .unwrap()
            .count(&rows(), NOW)
            .unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        // A field called Count is still a field.
        assert_eq!(parse("SELECT Count FROM X").unwrap().fields, ["Count"]);
    }

    #[test]
    fn invalid_field_message_is_salesforce_shaped() {
        let e = parse("SELECT Id, Foo FROM Account")
            .unwrap()
            .execute(&rows(), NOW)
            .unwrap_err();
        assert_eq!(e.error_code, "INVALID_FIELD");
        assert_eq!(
            e.message,
            "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        );
        assert!(e.to_string().starts_with("INVALID_FIELD: \nSELECT"));
        // WHERE and ORDER BY fields are checked too; the first bad one (by position) is reported.
        for (q, col, field) in [
            ("SELECT Id FROM Account WHERE Bar = 1", 30, "Bar"),
            ("SELECT Id FROM Account ORDER BY Baz", 33, "Baz"),
            (
                "SELECT Id FROM Account WHERE Zed = 1 ORDER BY Abc",
                30,
                "Zed",
            ),
        ] {
            let e = parse(q).unwrap().execute(&rows(), NOW).unwrap_err();
            assert_eq!(e.error_code, "INVALID_FIELD", "{q}");
            assert!(
                e.message
                    .contains(&format!("ERROR at Row:1:Column:{col}\n")),
                "{q}: {}",
                e.message
            );
            assert!(
                e.message
                    .contains(&format!("No such column '{field}' on entity 'Account'"))
            );
        }
        // Multi-line queries report the row and the column within it.
        let e = parse("SELECT Id,\n  Nope\nFROM Account")
            .unwrap()
            .execute(&rows(), NOW)
            .unwrap_err();
        assert!(
            e.message
                .starts_with("\n  Nope\n  ^\nERROR at Row:2:Column:3\n"),
            "{}",
            e.message
        );
    }

    #[test]
    fn invalid_type_message() {
        let e = parse("SELECT Id FROM Foo").unwrap().invalid_type_error();
        assert_eq!(e.error_code, "INVALID_TYPE");
        assert_eq!(
            e.message,
            "\nSELECT Id FROM Foo\n               ^\nERROR at Row:1:Column:16\nsObject type 'Foo' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        );
    }

    #[test]
    fn malformed_table() {
        let cases: &[(&str, &str)] = &[
            ("", "unexpected token: '<EOF>'"),
            ("SELECT", "unexpected token: '<EOF>'"),
            ("SELECT Id FROM Account FOO", "unexpected token: 'FOO'"),
            ("SELECT Id Account", "unexpected token: 'Account'"),
            ("SELECT * FROM Account", "unexpected token: '*'"),
            ("SELECT Id, FROM Account", "unexpected token: 'FROM'"),
            ("SELECT Id FROM Account WHERE", "unexpected token: '<EOF>'"),
            (
                "SELECT Id FROM Account WHERE Name",
                "unexpected token: '<EOF>'",
            ),
            (
                "SELECT Id FROM Account WHERE Name = ",
                "unexpected token: '<EOF>'",
            ),
            (
                "SELECT Id FROM Account WHERE Name = Foo",
                "unexpected token: 'Foo'",
            ),
            (
                "SELECT Id FROM Account WHERE Name LIKE 5",
                "unexpected token: '5'",
            ),
            (
                "SELECT Id FROM Account WHERE Id IN ()",
                "unexpected token: ')'",
            ),
            (
                "SELECT Id FROM Account WHERE Id IN 'a'",
                "unexpected token: ''a''",
            ),
            (
                "SELECT Id FROM Account WHERE (Name = 'a'",
                "unexpected token: '<EOF>'",
            ),
            (
                "SELECT Id FROM Account WHERE Name = 'a')",
                "unexpected token: ')'",
            ),
            ("SELECT Id FROM Account LIMIT -1", "unexpected token: '-1'"),
            (
                "SELECT Id FROM Account LIMIT 1.5",
                "unexpected token: '1.5'",
            ),
            (
                "SELECT Id FROM Account LIMIT 99999999999999999999999",
                "unexpected token: '99999999999999999999999'",
            ),
            (
                "SELECT Id FROM Account OFFSET 1 LIMIT 1",
                "unexpected token: 'LIMIT'",
            ),
            (
                "SELECT Id FROM Account ORDER Name",
                "unexpected token: 'Name'",
            ),
            (
                "SELECT Id FROM Account ORDER BY Name NULLS",
                "unexpected token: '<EOF>'",
            ),
            (
                "SELECT Id FROM Account WHERE D = 2026-13-01",
                "unexpected token: '2026-13-01'",
            ),
            (
                "SELECT Id FROM Account WHERE D = 2026-11-28T25:00:00Z",
                "unexpected token: '2026-11-28T25:00:00Z'",
            ),
            (
                "SELECT Id FROM Account WHERE D = LAST_N_DAYS",
                "unexpected token: 'LAST_N_DAYS'",
            ),
            (
                "SELECT Id FROM Account WHERE D = LAST_N_DAYS:99999999999",
                "unexpected token: 'LAST_N_DAYS:99999999999'",
            ),
            (
                "SELECT Id FROM Account WHERE Name ! 'x'",
                "unexpected token: '!'",
            ),
            (
                "SELECT Id FROM Account WHERE Name = 'x",
                "mismatched character '<EOF>' expecting '''",
            ),
            ("SELECT COUNT( FROM Account", "unexpected token: 'FROM'"),
            ("SELECT Id, id FROM Account", "duplicate field selected: id"),
            (
                "SELECT Id FROM Account WHERE Name = 'a' AND",
                "unexpected token: '<EOF>'",
            ),
            (
                "SELECT Id FROM Account WHERE a. = 1",
                "unexpected token: 'a.'",
            ),
        ];
        for (q, want) in cases {
            let e = parse(q).expect_err(q);
            assert_eq!(e.error_code, "MALFORMED_QUERY", "{q}");
            assert!(e.message.ends_with(want), "{q}: {:?}", e.message);
            assert!(
                e.message.contains("ERROR at Row:1:Column:"),
                "{q}: {:?}",
                e.message
            );
        }
        let e = parse("SELECT Id FROM Account WHERE Name = 'a\\qb'").unwrap_err();
        assert!(
            e.message
                .ends_with("Invalid string literal ''a\\q'. Illegal character sequence '\\q' in string literal."),
            "{:?}",
            e.message
        );
        let e = parse("SELECT Id FROM Account WHERE FOO").unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "\nSELECT Id FROM Account WHERE FOO\n{}^\nERROR at Row:1:Column:33\nunexpected token: '<EOF>'",
                " ".repeat(32)
            )
        );
        let e = parse("SELECT Id FROM Account FOO").unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "\nSELECT Id FROM Account FOO\n{}^\nERROR at Row:1:Column:24\nunexpected token: 'FOO'",
                " ".repeat(23)
            )
        );
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!(
            "SELECT Id FROM Account WHERE Name = '{}'",
            "x".repeat(MAX_QUERY_CHARS)
        );
        assert_eq!(parse(&long).unwrap_err().error_code, "MALFORMED_QUERY");
        let deep = format!(
            "SELECT Id FROM Account WHERE {}Name = 'a'{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert_eq!(parse(&deep).unwrap_err().error_code, "MALFORMED_QUERY");
        let nots = format!(
            "SELECT Id FROM Account WHERE {}Name = 'a'",
            "NOT ".repeat(10_000)
        );
        assert_eq!(parse(&nots).unwrap_err().error_code, "MALFORMED_QUERY");
        let ok = format!(
            "SELECT Id FROM Account WHERE {}Name = 'Acme'{}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        );
        assert_eq!(ids(&ok), ["001A"]);
    }

    #[test]
    fn literal_parsers() {
        assert_eq!(
            parse_datetime("2026-11-28T05:58:09.000+0000").map(|d| d.unix_timestamp()),
            Some(datetime!(2026-11-28 05:58:09 UTC).unix_timestamp())
        );
        assert_eq!(
            parse_datetime("2026-11-28T06:58:09+01:00").map(|d| d.unix_timestamp()),
            Some(datetime!(2026-11-28 05:58:09 UTC).unix_timestamp())
        );
        assert_eq!(
            parse_datetime("2026-11-28T05:58:09.5Z").map(|d| d.unix_timestamp_nanos()),
            Some(datetime!(2026-11-28 05:58:09.5 UTC).unix_timestamp_nanos())
        );
        for bad in [
            "2026-11-28T05:58:09",
            "2026-11-28T05:58:09+1",
            "2026-11-28T05:58:09+24:00",
            "2026-02-30T05:58:09Z",
            "2026-11-28T05:58:60Z",
            "2026-11-28T05:58:09.Z",
            "2026-11-28T05:58:09.0000000000Z",
            "2026-11-28X05:58:09Z",
            "２026-11-28T05:58:09Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2026-02-29").is_none());
        assert!(parse_date("2026-1-01").is_none());
        assert!(is_plain_number("-12.50"));
        assert!(!is_plain_number("1e5"));
        assert!(!is_plain_number("1."));
        assert!(!is_plain_number("-"));
    }

    #[test]
    fn like_matcher() {
        let pat = |s: &str| match lex(&format!("'{s}'")).unwrap().remove(0).tok {
            Tok::Str { like, .. } => like,
            _ => unreachable!(),
        };
        assert!(like_match(&pat("a%b%c"), "AxxBxxC"));
        assert!(!like_match(&pat("a%b%c"), "axxbxx"));
        assert!(like_match(&pat("%"), ""));
        assert!(like_match(&pat("%%"), "abc"));
        assert!(!like_match(&pat("_"), ""));
        assert!(like_match(&pat("ÉTÉ%"), "été 2026"));
        // Pathological pattern stays linear-ish (would explode with naive recursion).
        let text = "a".repeat(5_000);
        assert!(!like_match(&pat(&format!("{}b", "%a".repeat(50))), &text));
    }

    /// Tiny xorshift64* generator: deterministic, no dependencies.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const FIELDS: &[&str] = &[
        "Id",
        "name",
        "Amount",
        "SystemModstamp",
        "CloseDate",
        "Note",
        "Active__c",
        "Nope",
    ];
    const VALUES: &[&str] = &[
        "'Acme'",
        "'%a_'",
        "'it\\'s'",
        "5",
        "-3",
        "1.5",
        "null",
        "true",
        "false",
        "TODAY",
        "YESTERDAY",
        "LAST_N_DAYS:2",
        "N_DAYS_AGO:8",
        "NEXT_N_DAYS:3",
        "2026-11-28",
        "2026-11-28T05:58:09Z",
        "2026-11-28T05:58:09.000+0000",
        "2026-11-28T06:58:09+01:00",
    ];
    const OPS: &[&str] = &[
        "=", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "IN", "NOT IN",
    ];

    fn gen_cond(rng: &mut XorShift, depth: usize) -> String {
        match rng.below(if depth > 3 { 1 } else { 4 }) {
            1 => format!(
                "({} OR {})",
                gen_cond(rng, depth + 1),
                gen_cond(rng, depth + 1)
            ),
            2 => format!(
                "{} AND {}",
                gen_cond(rng, depth + 1),
                gen_cond(rng, depth + 1)
            ),
            3 => format!("NOT {}", gen_cond(rng, depth + 1)),
            _ => {
                let f = FIELDS[rng.below(FIELDS.len())];
                let op = OPS[rng.below(OPS.len())];
                let v = VALUES[rng.below(VALUES.len())];
                if op.ends_with("IN") {
                    format!("{f} {op} ({v}, {})", VALUES[rng.below(VALUES.len())])
                } else {
                    format!("{f} {op} {v}")
                }
            }
        }
    }

    fn gen_query(rng: &mut XorShift) -> String {
        let mut q = if rng.below(5) == 0 {
            "SELECT COUNT() FROM Account".to_string()
        } else {
            let n = 1 + rng.below(3);
            let fields: Vec<&str> = (0..n).map(|_| FIELDS[rng.below(FIELDS.len())]).collect();
            format!("SELECT {} FROM Account", fields.join(", "))
        };
        if rng.below(4) != 0 {
            q.push_str(&format!(" WHERE {}", gen_cond(rng, 0)));
        }
        if rng.below(2) == 0 {
            let dir = ["", " ASC", " DESC", " DESC NULLS FIRST", " NULLS LAST"][rng.below(5)];
            q.push_str(&format!(
                " ORDER BY {}{dir}",
                FIELDS[rng.below(FIELDS.len())]
            ));
        }
        if rng.below(2) == 0 {
            q.push_str(&format!(" LIMIT {}", rng.below(6)));
        }
        if rng.below(3) == 0 {
            q.push_str(&format!(" OFFSET {}", rng.below(6)));
        }
        q
    }

    #[test]
    fn fuzz_never_panics() {
        const PIECES: &[&str] = &[
            "SELECT",
            "select",
            "FROM",
            "WHERE",
            "AND",
            "OR",
            "NOT",
            "IN",
            "LIKE",
            "ORDER BY",
            "ASC",
            "DESC",
            "NULLS",
            "FIRST",
            "LAST",
            "LIMIT",
            "OFFSET",
            "COUNT()",
            "COUNT",
            "Id",
            "Name",
            "Amount",
            "SystemModstamp",
            "CloseDate",
            "Note",
            "Account",
            "Foo",
            ",",
            "(",
            ")",
            "=",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "!",
            "'",
            "'x'",
            "'%a_'",
            "'\\",
            "\\'",
            "\\",
            "'é漢🙂'",
            "null",
            "true",
            "FALSE",
            "TODAY",
            "YESTERDAY",
            "LAST_N_DAYS:",
            "LAST_N_DAYS:3",
            "N_DAYS_AGO:4294967295",
            "NEXT_N_DAYS:0",
            "2026-11-28",
            "2026-11-28T05:58:09Z",
            "2026-11-28T05:58:09.000+0000",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
            "-",
            "-5",
            "5",
            "1.5",
            "99999999999999999999999",
            ".",
            ":",
            "*",
            "\n",
            "\r\n",
            "\t",
            " ",
            "é",
            "漢",
            "🙂",
            "\u{0}",
            "a.b",
            "a..b",
            "_",
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let rows = rows();
        let empty: Vec<Map<String, Json>> = Vec::new();
        let mut parsed = 0;
        for round in 0..30_000 {
            let mut q = String::new();
            let n = rng.below(24);
            for _ in 0..n {
                match rng.below(10) {
                    0 => {
                        // A random char, sometimes multibyte or control.
                        let c = char::from_u32((rng.next() % 0x2_0000) as u32).unwrap_or('?');
                        q.push(c);
                    }
                    1 => q.push(char::from((rng.next() % 128) as u8)),
                    _ => {
                        q.push_str(PIECES[rng.below(PIECES.len())]);
                        if rng.below(4) != 0 {
                            q.push(' ');
                        }
                    }
                }
            }
            match round % 3 {
                // A valid prefix, so the fuzzer gets past SELECT … WHERE.
                0 => q = format!("SELECT Id, Name FROM Account WHERE {q}"),
                // A grammar-generated query, sometimes with one piece mutated.
                1 => {
                    q = gen_query(&mut rng);
                    if rng.below(3) == 0 && !q.is_empty() {
                        let mut cut = rng.below(q.len());
                        while !q.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        q.insert_str(cut, PIECES[rng.below(PIECES.len())]);
                    }
                }
                _ => {}
            }
            if let Ok(query) = parse(&q) {
                parsed += 1;
                let _ = query.execute(&rows, NOW);
                let _ = query.count(&rows, NOW);
                let _ = query.execute(&empty, NOW);
                let _ = query.execute(&rows, OffsetDateTime::UNIX_EPOCH);
                let _ = query.invalid_type_error();
            } else if let Err(e) = parse(&q) {
                assert!(!e.message.is_empty());
            }
        }
        assert!(
            parsed > 2_000,
            "fuzzer never produced a valid query ({parsed})"
        );
    }

    #[test]
    fn fuzz_rows_never_panic() {
        let mut rng = XorShift(42);
        let values = [
            json!(null),
            json!(true),
            json!(-0.0),
            json!(1e308),
            json!(u64::MAX),
            json!(i64::MIN),
            json!("2026-11-28T05:58:09.000+0000"),
            json!("9999-12-31T23:59:59.999-2359"),
            json!("0000-01-01"),
            json!("ÉTÉ"),
            json!(""),
            json!([1, 2]),
            json!({"a": 1}),
        ];
        let queries = [
            "SELECT Id, A FROM X ORDER BY A, Id DESC NULLS FIRST",
            "SELECT Id FROM X WHERE A > 2026-11-28T05:58:09Z OR A < TODAY OR A = LAST_N_DAYS:4294967295",
            "SELECT Id FROM X WHERE A LIKE '%é%' OR A IN (1, 'x', null, TODAY) OR A >= 'm' OR A <= 5",
            "SELECT Id FROM X WHERE NOT A = N_DAYS_AGO:4294967295 AND A != NEXT_N_DAYS:4294967295",
        ];
        for _ in 0..300 {
            let rows: Vec<Map<String, Json>> = (0..rng.below(40))
                .map(|i| {
                    let mut m = Map::new();
                    m.insert("Id".into(), json!(format!("id{i}")));
                    m.insert("A".into(), values[rng.below(values.len())].clone());
                    m
                })
                .collect();
            for q in queries {
                let q = parse(q).unwrap();
                let _ = q.execute(&rows, NOW);
                let _ = q.execute(&rows, OffsetDateTime::UNIX_EPOCH);
            }
        }
    }
}
