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
        Split::Csv(delimiter) if !bytes.chunks(64).any(|chunk| marks(chunk, b'"', b'"') != 0) => {
            split_lines(bytes, &[delimiter], first_line, visit)
        }
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

/// [`records`] of lines whose fields are separated by `separator` (one byte, or `::`), with no
/// quoting.
///
/// One pass over the bytes: a mask of the line ends and separator bytes of each 64 bytes is made
/// at once (with SSE2 on x86-64), and the fields end at its set bits, so that the cost is per
/// field rather than per byte.
fn split_lines<T>(
    bytes: &[u8],
    separator: &[u8],
    first_line: u64,
    mut visit: impl FnMut(u64, &[&[u8]]) -> Result<T>,
) -> Result<Vec<T>> {
    // `::` is found at its first `:` followed by another; a lone `:` is text.
    let (mark, double) = match separator {
        [byte] => (*byte, false),
        _ => (b':', true),
    };
    let mut out = Vec::new();
    // The fields as slices of `bytes`, not copied (the quoted path must copy: it unescapes).
    let mut fields: Vec<&[u8]> = Vec::new();
    let (mut line, mut line_start, mut field_start) = (first_line, 0, 0);
    let mut end_line = |line: u64, text: &[u8], fields: &mut Vec<&[u8]>| -> Result<()> {
        // A line that only seems blank once split (`\t` split on tabs) is blank too.
        let blank = fields.iter().all(|f| f.is_empty()) && text.trim_ascii().is_empty();
        if !blank {
            out.push(visit(line, fields)?);
        }
        fields.clear();
        Ok(())
    };
    for (chunk, at) in bytes.chunks(64).zip((0..).step_by(64)) {
        let mut mask = marks(chunk, b'\n', mark);
        while mask != 0 {
            let end = at + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if end < field_start {
                continue; // the second `:` of a `::`
            }
            if bytes[end] == b'\n' {
                fields.push(trimmed(&bytes[field_start..end]));
                end_line(line, &bytes[line_start..end], &mut fields)?;
                line += 1;
                (line_start, field_start) = (end + 1, end + 1);
            } else if !double || bytes.get(end + 1) == Some(&b':') {
                fields.push(trimmed(&bytes[field_start..end]));
                field_start = end + separator.len();
            }
        }
    }
    if line_start < bytes.len() {
        fields.push(trimmed(&bytes[field_start..]));
        end_line(line, &bytes[line_start..], &mut fields)?;
    }
    Ok(out)
}

/// `field` without surrounding ASCII white space; a field that starts and ends with a printable
/// byte, as most do, is returned as it is after two comparisons.
#[inline]
fn trimmed(field: &[u8]) -> &[u8] {
    match field {
        [first, .., last] if *first > b' ' && *last > b' ' => field,
        [only] if *only > b' ' => field,
        _ => field.trim_ascii(),
    }
}

/// Bit `i` set when `chunk[i]` (of at most 64 bytes) is `a` or `b`.
#[inline]
fn marks(chunk: &[u8], a: u8, b: u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(chunk) = <&[u8; 64]>::try_from(chunk) {
        return marks_sse2(chunk, a, b);
    }
    chunk
        .iter()
        .enumerate()
        .fold(0, |mask, (i, &x)| mask | (u64::from((x == a) | (x == b)) << i))
}

/// [`marks`] of 64 bytes, 16 at a time: the compiler does not find this for the plain loop.
#[cfg(target_arch = "x86_64")]
#[inline]
fn marks_sse2(chunk: &[u8; 64], a: u8, b: u8) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    let mut mask = 0;
    for (i, lane) in chunk.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of every x86-64 CPU; `lane` holds 16 bytes, read unaligned.
        let bits = unsafe {
            let bytes = _mm_loadu_si128(lane.as_ptr().cast());
            let is_a = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(a as i8));
            let is_b = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b as i8));
            _mm_movemask_epi8(_mm_or_si128(is_a, is_b)) as u16
        };
        mask |= u64::from(bits) << (16 * i);
    }
    mask
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// [`split_lines`] the plain way, a line and then a field at a time: the oracle.
    fn split_plainly(bytes: &[u8], separator: &[u8], first_line: u64) -> Vec<(u64, Vec<Vec<u8>>)> {
        let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let mut out = Vec::new();
        for (text, line) in text.split(|&b| b == b'\n').zip(first_line..) {
            if text.trim_ascii().is_empty() {
                continue;
            }
            let (mut fields, mut rest) = (Vec::new(), text);
            while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
                fields.push(rest[..at].trim_ascii().to_vec());
                rest = &rest[at + separator.len()..];
            }
            fields.push(rest.trim_ascii().to_vec());
            out.push((line, fields));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn splits_lines_as_the_plain_way_does(
            bytes in prop::collection::vec(prop::sample::select(b"a7 \t,:;\r\n".to_vec()), 0..300),
            separator in prop::sample::select(vec![&b","[..], b"\t", b" ", b"::"]),
        ) {
            let got = split_lines(&bytes, separator, 3, |line, fields| {
                Ok((line, fields.iter().map(|f| f.to_vec()).collect::<Vec<_>>()))
            })
            .unwrap();
            prop_assert_eq!(got, split_plainly(&bytes, separator, 3));
        }
    }

    #[test]
    fn marks_every_byte_of_a_chunk() {
        let chunk: Vec<u8> = (0..64).map(|i| if i % 3 == 0 { b',' } else { b'x' }).collect();
        let want = (0..64).filter(|i| i % 3 == 0).fold(0u64, |m, i| m | 1 << i);
        assert_eq!(marks(&chunk, b',', b'\n'), want);
        assert_eq!(marks(&chunk[..10], b',', b'\n'), want & 0x3ff);
    }
}
