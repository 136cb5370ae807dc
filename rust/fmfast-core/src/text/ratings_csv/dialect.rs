//! The format of a ratings file: its delimiter (given, or detected from the first line), whether
//! its first record is a header and which column is which ([`Dialect`]), and splitting lines into
//! records by it.

use super::options::RatingsOptions;
use crate::error::{Error, Result};
use crate::text::lines::{newlines, parse_error, shown};

/// One-byte delimiters tried, in order of preference, when none is given.
const DETECTED: [u8; 3] = [b'\t', b',', b';'];

/// The names a header may give each column, compared after [`normalised`].
pub(super) const ROLES: [(Role, &[&str]); 4] = [
    (
        Role::User,
        &["user", "userid", "uid", "users", "customerid", "reviewerid"],
    ),
    (
        Role::Item,
        &[
            "item",
            "itemid",
            "iid",
            "items",
            "movie",
            "movieid",
            "productid",
            "asin",
        ],
    ),
    (
        Role::Rating,
        &["rating", "ratings", "score", "stars", "value", "label", "overall"],
    ),
    (
        Role::Timestamp,
        &[
            "timestamp",
            "time",
            "ts",
            "date",
            "datetime",
            "unixtime",
            "unixreviewtime",
        ],
    ),
];

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    User,
    Item,
    Rating,
    Timestamp,
}

/// A header name without RecBole's `:type` suffix, case, `_` or spaces (`user_id:token` -> `userid`).
fn normalised(name: &[u8]) -> String {
    let name = name.trim_ascii().split(|&b| b == b':').next().unwrap_or_default();
    String::from_utf8_lossy(name)
        .chars()
        .filter(|c| *c != '_' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The role a header name gives its column, if any.
fn role(name: &[u8]) -> Option<Role> {
    let name = normalised(name);
    ROLES
        .iter()
        .find(|(_, names)| names.contains(&name.as_str()))
        .map(|(role, _)| *role)
}

/// How records are split into fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Split {
    /// RFC 4180 CSV with this delimiter.
    Csv(u8),
    /// MovieLens `ratings.dat`: `::` between fields, no quoting.
    DoubleColon,
}

/// Where each column is, fixed by the first record.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    pub(super) n_fields: usize,
    pub(super) user: usize,
    pub(super) item: usize,
    pub(super) rating: Option<usize>,
    pub(super) timestamp: Option<usize>,
}

/// How the records of a file are laid out.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dialect {
    pub(super) split: Split,
    /// The header's line number, when there is one.
    pub(super) header: Option<u64>,
    pub(super) layout: Layout,
}

/// The split a given delimiter asks for.
fn given_split(delimiter: &str) -> Result<Split> {
    match delimiter.as_bytes() {
        b"::" => Ok(Split::DoubleColon),
        &[byte] if byte != b'"' && byte != b'\n' && byte != b'\r' => Ok(Split::Csv(byte)),
        _ => Err(Error::invalid(format!(
            "the delimiter must be one byte other than a quote or line end, or \"::\"; got {delimiter:?}"
        ))),
    }
}

/// The split of a file whose first non-blank line (number `line`) is `text`.
fn detected_split(line: u64, text: &[u8]) -> Result<Split> {
    if text.windows(2).any(|w| w == b"::") {
        return Ok(Split::DoubleColon);
    }
    let mut best = (1, None);
    for delimiter in DETECTED {
        let fields = records(text, Split::Csv(delimiter), line, |_, record| Ok(record.len()))?;
        let n_fields = fields.first().copied().unwrap_or_default();
        if n_fields > best.0 {
            best = (n_fields, Some(delimiter));
        }
    }
    best.1.map(Split::Csv).ok_or_else(|| {
        parse_error(
            line,
            format!(
                "cannot detect the delimiter (a tab, \",\", \";\" or \"::\") in {}",
                shown(&String::from_utf8_lossy(text))
            ),
        )
    })
}

/// Calls `visit(line, fields)` for every non-blank record of `bytes`, whose first line is
/// numbered `first_line`, with the record's fields trimmed of ASCII white space; returns what
/// the calls returned.
pub(super) fn records<T>(
    bytes: &[u8],
    split: Split,
    first_line: u64,
    mut visit: impl FnMut(u64, &[&[u8]]) -> Result<T>,
) -> Result<Vec<T>> {
    match split {
        // Without a quote, RFC 4180 fields are the bytes between delimiters: split directly,
        // which costs less than the state machine quotes need.
        Split::Csv(delimiter) if !bytes.contains(&b'"') => split_lines(bytes, &[delimiter], first_line, visit),
        Split::DoubleColon => split_lines(bytes, b"::", first_line, visit),
        Split::Csv(delimiter) => {
            let (mut out, mut record) = (Vec::new(), csv::ByteRecord::new());
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes);
            // The reader's own line numbers miss blank lines, so lines are counted here: from
            // where it says a record starts, past any line ends, to the record's first byte.
            let (mut line, mut counted) = (first_line, 0);
            loop {
                let more = reader
                    .read_byte_record(&mut record)
                    .map_err(|e| parse_error(line, e.to_string()))?;
                if !more {
                    return Ok(out);
                }
                let from = record.position().map_or(counted, |p| p.byte() as usize).max(counted);
                let start = from + bytes[from..].iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
                line += newlines(&bytes[counted..start]);
                counted = start;
                let end = (reader.position().byte() as usize).clamp(start, bytes.len());
                if bytes[start..end].trim_ascii_end().contains(&b'\n') {
                    return Err(parse_error(
                        line,
                        "a quoted field holds a line break, or a quote is not closed (each rating must be one line)",
                    ));
                }
                if record.len() == 1 && record[0].trim_ascii().is_empty() {
                    continue;
                }
                let fields: Vec<&[u8]> = record.iter().map(<[u8]>::trim_ascii).collect();
                out.push(visit(line, &fields)?);
            }
        }
    }
}

/// [`records`] of lines whose fields are separated by `separator`, with no quoting.
fn split_lines<T>(
    bytes: &[u8],
    separator: &[u8],
    first_line: u64,
    mut visit: impl FnMut(u64, &[&[u8]]) -> Result<T>,
) -> Result<Vec<T>> {
    let find = |text: &[u8]| match separator {
        [byte] => text.iter().position(|b| b == byte),
        _ => text.windows(separator.len()).position(|w| w == separator),
    };
    let mut out = Vec::new();
    // The fields as slices of `bytes`, not copied (the quoted path must copy: it unescapes).
    let mut fields: Vec<&[u8]> = Vec::new();
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (text, line) in text.split(|&b| b == b'\n').zip(first_line..) {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.trim_ascii().is_empty() {
            continue;
        }
        fields.clear();
        let mut rest = text;
        while let Some(at) = find(rest) {
            fields.push(rest[..at].trim_ascii());
            rest = &rest[at + separator.len()..];
        }
        fields.push(rest.trim_ascii());
        out.push(visit(line, &fields)?);
    }
    Ok(out)
}

/// The dialect of a file whose first non-blank line (number `line`) is `text`.
pub(super) fn detect(line: u64, text: &[u8], options: &RatingsOptions<'_>) -> Result<Dialect> {
    let split = match options.delimiter {
        Some(delimiter) => given_split(delimiter)?,
        None => detected_split(line, text)?,
    };
    let first = records(text, split, line, |_, fields| {
        Ok(fields.iter().map(|f| f.to_vec()).collect::<Vec<_>>())
    })?;
    let Some(first) = first.into_iter().next() else {
        return Err(parse_error(line, "no record on the first line"));
    };
    let named: Vec<Option<Role>> = first.iter().map(|name| role(name)).collect();
    let column = |wanted: Role| named.iter().position(|&r| r == Some(wanted));
    let by_name = column(Role::User).is_some() && column(Role::Item).is_some();
    let header = options
        .header
        .unwrap_or_else(|| by_name || first.get(2).is_some_and(|rating| number(rating).is_none()));
    let n_fields = first.len();
    let layout = if header && by_name {
        Layout {
            n_fields,
            user: column(Role::User).unwrap_or_default(),
            item: column(Role::Item).unwrap_or_default(),
            rating: column(Role::Rating),
            timestamp: column(Role::Timestamp),
        }
    } else {
        Layout {
            n_fields,
            user: 0,
            item: 1,
            rating: (n_fields > 2).then_some(2),
            timestamp: (n_fields > 3).then_some(3),
        }
    };
    if n_fields < 2 || (layout.rating.is_none() && !options.pairs) {
        let message = match (n_fields, options.pairs) {
            (0..=1, true) => format!("expected at least 2 fields (user, item), found {n_fields}"),
            (0..=2, false) => format!("expected at least 3 fields (user, item, rating), found {n_fields}"),
            _ => "the header names no rating column".to_owned(),
        };
        return Err(parse_error(line, message));
    }
    Ok(Dialect {
        split,
        header: header.then_some(line),
        layout,
    })
}

/// A field as a number, if it is one.
pub(super) fn number(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field.trim_ascii()).ok()?.parse().ok()
}
