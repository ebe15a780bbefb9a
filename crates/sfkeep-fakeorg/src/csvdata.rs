//! CSV job data as the Bulk APIs read it (docs/salesforce-bulk.md, "CSV rules"): a header row
//! of field names, then one record per line; the job's column delimiter between values; the
//! job's line ending between records (a Bulk API 2.0 job declares `LF` or `CRLF` and refuses
//! data that uses the other one); a value holding the delimiter, a quote or a line break is
//! enclosed in double quotes, with quotes inside doubled. Writing follows the same rules, with
//! every value quoted as Salesforce's result files are.

use std::fmt;

/// Record separator of a job's CSV data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n` (Bulk API 2.0's default).
    Lf,
    /// `\r\n`.
    Crlf,
}

impl LineEnding {
    /// `LF` or `CRLF` as a job names them.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "LF" => Some(LineEnding::Lf),
            "CRLF" => Some(LineEnding::Crlf),
            _ => None,
        }
    }

    /// The job field's value.
    pub fn name(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }

    /// The separator itself.
    pub fn text(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
        }
    }
}

/// Bulk API 2.0's column delimiters (`columnDelimiter`) and the byte each stands for.
pub const DELIMITERS: &[(&str, u8)] = &[
    ("BACKQUOTE", b'`'),
    ("CARET", b'^'),
    ("COMMA", b','),
    ("PIPE", b'|'),
    ("SEMICOLON", b';'),
    ("TAB", b'\t'),
];

/// Parsed job data: the header and the records, each value as its text.
#[derive(Debug, PartialEq)]
pub struct Table {
    /// Field names, as written in the header.
    pub header: Vec<String>,
    /// Records in upload order; each has exactly `header.len()` values.
    pub rows: Vec<Vec<String>>,
}

/// Why job data cannot be read. `Display` is the message Salesforce reports for the batch or
/// job (the `ClientInputError` line-ending text is Salesforce's; the others are our wording).
#[derive(Debug, PartialEq)]
pub enum CsvError {
    /// No header row.
    Empty,
    /// A record separator other than the job's `lineEnding`.
    LineEnding(LineEnding),
    /// A quoted value that never closes; `line` is where it opens (1-based).
    UnclosedQuote {
        /// Line of the opening quote.
        line: usize,
    },
    /// A quote in the middle of an unquoted value, or text after a closing quote.
    StrayQuote {
        /// Line of the quote.
        line: usize,
    },
    /// A record with more or fewer values than the header.
    Columns {
        /// Line of the record.
        line: usize,
        /// Values in the header.
        expected: usize,
        /// Values in the record.
        found: usize,
    },
    /// Bytes that are not UTF-8.
    Encoding,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsvError::Empty => write!(f, "ClientInputError : The CSV data has no header row"),
            CsvError::LineEnding(e) => write!(
                f,
                "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is {}",
                e.name()
            ),
            CsvError::UnclosedQuote { line } => write!(
                f,
                "ClientInputError : Failed to parse CSV: the quoted value opened on line {line} is never closed"
            ),
            CsvError::StrayQuote { line } => write!(
                f,
                "ClientInputError : Failed to parse CSV: unexpected quote on line {line}"
            ),
            CsvError::Columns {
                line,
                expected,
                found,
            } => write!(
                f,
                "ClientInputError : Failed to parse CSV: line {line} has {found} values, the header has {expected}"
            ),
            CsvError::Encoding => write!(f, "ClientInputError : The CSV data is not UTF-8"),
        }
    }
}

/// Reads `data` with the job's `delimiter` and `ending`. A final line ending is optional;
/// blank lines between records are refused as records with one empty value.
pub fn parse(data: &[u8], delimiter: u8, ending: LineEnding) -> Result<Table, CsvError> {
    let text = std::str::from_utf8(data).map_err(|_| CsvError::Encoding)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records: Vec<(usize, Vec<String>)> = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut value = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut quote_line = 0usize;
    // Inside a quoted value; just after its closing quote.
    let (mut quoted, mut closed) = (false, false);
    let delim = delimiter as char;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    value.push('"');
                }
                '"' => {
                    quoted = false;
                    closed = true;
                }
                '\n' => {
                    line += 1;
                    value.push(c);
                }
                _ => value.push(c),
            }
            continue;
        }
        match c {
            '"' if value.is_empty() && !closed => {
                quoted = true;
                quote_line = line;
            }
            '"' => return Err(CsvError::StrayQuote { line }),
            c if c == delim => {
                record.push(std::mem::take(&mut value));
                closed = false;
            }
            '\n' | '\r' if c == '\n' || chars.peek() == Some(&'\n') => {
                let found = if c == '\r' {
                    chars.next();
                    LineEnding::Crlf
                } else {
                    LineEnding::Lf
                };
                if found != ending {
                    return Err(CsvError::LineEnding(ending));
                }
                record.push(std::mem::take(&mut value));
                records.push((record_line, std::mem::take(&mut record)));
                closed = false;
                line += 1;
                record_line = line;
            }
            _ if closed => return Err(CsvError::StrayQuote { line }),
            _ => value.push(c),
        }
    }
    if quoted {
        return Err(CsvError::UnclosedQuote { line: quote_line });
    }
    if !value.is_empty() || !record.is_empty() || closed {
        record.push(value);
        records.push((record_line, record));
    }
    let mut records = records.into_iter();
    let (_, header) = records.next().ok_or(CsvError::Empty)?;
    if header.iter().all(String::is_empty) {
        return Err(CsvError::Empty);
    }
    let mut rows = Vec::new();
    for (line, r) in records {
        if r.len() != header.len() {
            return Err(CsvError::Columns {
                line,
                expected: header.len(),
                found: r.len(),
            });
        }
        rows.push(r);
    }
    Ok(Table { header, rows })
}

/// Appends `text` as one quoted CSV value (quotes doubled).
pub fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    if text.contains('"') {
        out.push_str(&text.replace('"', "\"\""));
    } else {
        out.push_str(text);
    }
    out.push('"');
}

/// One CSV line of quoted `values` joined by `delimiter`, ending with `ending`.
pub fn line<'a>(
    values: impl IntoIterator<Item = &'a str>,
    delimiter: u8,
    ending: LineEnding,
) -> String {
    let mut out = String::new();
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(delimiter as char);
        }
        push_quoted(&mut out, v);
    }
    out.push_str(ending.text());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(t: &Table) -> Vec<Vec<&str>> {
        t.rows
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn reads_quotes_delimiters_and_line_breaks_inside_values() {
        let t = parse(
            b"Name,City\n\"A, Inc.\",\"He said \"\"hi\"\"\"\n\"two\nlines\",\n",
            b',',
            LineEnding::Lf,
        )
        .unwrap();
        assert_eq!(t.header, ["Name", "City"]);
        assert_eq!(
            rows(&t),
            [vec!["A, Inc.", "He said \"hi\""], vec!["two\nlines", ""]]
        );
        let t = parse(b"Name|City\r\nA|B", b'|', LineEnding::Crlf).unwrap();
        assert_eq!(rows(&t), [vec!["A", "B"]]);
        let t = parse("\u{feff}Name\nX\n".as_bytes(), b',', LineEnding::Lf).unwrap();
        assert_eq!(t.header, ["Name"]);
    }

    #[test]
    fn refuses_what_salesforce_refuses() {
        assert_eq!(
            parse(b"Name\r\nA\r\n", b',', LineEnding::Lf),
            Err(CsvError::LineEnding(LineEnding::Lf))
        );
        assert_eq!(
            parse(b"Name\nA\n", b',', LineEnding::Crlf),
            Err(CsvError::LineEnding(LineEnding::Crlf))
        );
        assert_eq!(
            parse(b"Name,City\nA\n", b',', LineEnding::Lf),
            Err(CsvError::Columns {
                line: 2,
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            parse(b"Name\n\"A\n", b',', LineEnding::Lf),
            Err(CsvError::UnclosedQuote { line: 2 })
        );
        assert_eq!(
            parse(b"Name\nA\"B\n", b',', LineEnding::Lf),
            Err(CsvError::StrayQuote { line: 2 })
        );
        assert_eq!(parse(b"", b',', LineEnding::Lf), Err(CsvError::Empty));
        assert_eq!(
            parse(b"\xff\n", b',', LineEnding::Lf),
            Err(CsvError::Encoding)
        );
        assert!(
            CsvError::LineEnding(LineEnding::Lf)
                .to_string()
                .ends_with("Current LineEnding setting is LF")
        );
    }

    #[test]
    fn writes_every_value_quoted() {
        assert_eq!(
            line(["a", "b\"c", ""], b',', LineEnding::Lf),
            "\"a\",\"b\"\"c\",\"\"\n"
        );
    }
}
