//! The one parser of ratings files (`user, item, rating[, timestamp]`), behind both
//! `fmfast.load_ratings` ([`read_ratings`]) and `fmfast convert` ([`convert_ratings_csv`]).
//!
//! * **Format.** RFC 4180 CSV read by the `csv` crate: quoted fields (which may hold the
//!   delimiter or `""`), CRLF or LF line ends, a UTF-8 byte-order mark; surrounding whitespace is
//!   trimmed and blank lines are skipped. The delimiter is a given byte or detected from the first
//!   non-blank line: whichever of tab, `,` and `;` splits it into the most fields. A line holding
//!   `::` is MovieLens `ratings.dat`, its own format: fields split on `::`, no quoting. A quoted
//!   field may not hold a line break (each rating is one line, so that blocks of lines can be
//!   parsed in parallel; pandas' pyarrow engine makes the same choice by default).
//! * **Columns.** The first record is a header when its names give the user and the item column,
//!   or when its third field is not a number; a header's names say which column is which (`userId`,
//!   `user_id:token`, `movieId`, `item`, `rating`, `timestamp` and the other names of `ROLES`;
//!   case, `_` and a `:type` suffix ignored), otherwise the columns are user, item, rating, timestamp by position. Every record
//!   has as many fields as the first.
//! * **Ids** are the text as written: `7` and `07` are two users. A vocabulary lists each id
//!   once, in numeric order when every id is an integer (ties such as `07` and `7` by text),
//!   otherwise in text (byte) order.
//! * **Errors** are [`Error::Parse`] naming the 1-based line and the offending text.
//!
//! Blocks of lines are cut into pieces parsed in parallel; one thread then codes the ids of each
//! piece in order (plain integers through a table indexed by value, other ids by hash), so results
//! never depend on the thread count and memory holds one block plus what is returned.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::path::Path;

use csv::ByteRecord;

use super::lines::{block_bytes, for_each_block, newlines, parse_error, parse_pieces, shown, Piece, RowBlock};
use crate::error::{Error, Result};
use crate::parallel::Monitor;
use crate::recordio::{open_input, AtomicFile};

/// Hash maps of ids, hashed with [`IdHasher`].
type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A fast multiplicative hasher for short ids (FxHash-like, with a murmur3 finaliser so that
/// every bit of the output depends on the input). Ids come from the user's own file, so
/// SipHash's resistance to crafted collisions buys nothing here, while its cost showed in profiles.
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Bytes per block when reading into arrays: the arrays are what should fill memory, so a block
/// (with its parsed pieces, about twice its size) is kept small; 32 pieces still keep 16 cores busy.
const READ_BLOCK_BYTES: usize = 8 << 20;

/// One-byte delimiters tried, in order of preference, when none is given.
const DETECTED: [u8; 3] = [b'\t', b',', b';'];

/// The names a header may give each column, compared after [`normalised`].
const ROLES: [(Role, &[&str]); 4] = [
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
enum Role {
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

/// What to do with an id that a given vocabulary lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unknown {
    /// Fail, naming the id and its line.
    #[default]
    Refuse,
    /// Give it no column (code -1): the rating keeps its other id.
    Skip,
}

/// How to read a ratings file.
#[derive(Clone, Copy, Debug, Default)]
pub struct RatingsOptions<'a> {
    /// A one-byte delimiter or `::`; `None` detects it.
    pub delimiter: Option<&'a str>,
    /// Whether the first record is a header; `None` detects it.
    pub header: Option<bool>,
    /// Whether to read the timestamp column (it is skipped otherwise).
    pub timestamps: bool,
    /// Whether a file of `user, item` pairs without ratings is accepted.
    pub pairs: bool,
    /// Code ids by this vocabulary rather than by the file's own.
    pub vocabulary: Option<&'a Vocabulary>,
    /// What to do with ids outside `vocabulary`.
    pub unknown: Unknown,
}

/// The value of an id written as a plain integer (`-12`, `0`, `345`; not `+3`, `07` or `-0`),
/// which no other such id shares, so it can be kept and looked up as a number.
#[inline]
fn canonical_int(id: &[u8]) -> Option<i64> {
    let (negative, digits) = match id {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    let plain = match digits {
        [] => false,
        [b'0'] => !negative,
        [b'0', ..] => false,
        _ => digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit),
    };
    if !plain {
        return None;
    }
    // At most 18 digits: below 10^18, so no overflow.
    let value = digits.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -value } else { value })
}

/// An id to look up: a plain integer (see [`canonical_int`]) as its value, which is cheaper to
/// hash and compare than text and has no pointer to follow, any other id as its text.
#[derive(Clone, Copy, Debug)]
enum Key<'a> {
    Number(i64),
    Text(&'a str),
}

impl<'a> Key<'a> {
    #[inline]
    fn of(id: &'a str) -> Self {
        canonical_int(id.as_bytes()).map_or(Key::Text(id), Key::Number)
    }
}

/// An id kept: a [`Key`] that owns its text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Id {
    Number(i64),
    Text(Box<str>),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Number(n) => n.to_string(),
            Id::Text(text) => text.into(),
        }
    }
}

/// Plain integers in `0..DENSE_IDS` are coded through a table indexed by their value, the way
/// MovieLens-like ids (dense, up to a few hundred thousand) are looked up fastest; the table
/// grows to the largest such id seen, so it never exceeds `4 * DENSE_IDS` bytes.
const DENSE_IDS: i64 = 1 << 22;

/// A code (below `u32::MAX`) for each id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct IdCodes {
    /// `dense[n]` codes the plain integer `n`; `u32::MAX` when `n` has no code.
    dense: Vec<u32>,
    /// The other plain integers.
    numbers: IdMap<i64, u32>,
    texts: IdMap<Box<str>, u32>,
}

impl IdCodes {
    #[inline]
    fn get(&self, key: Key<'_>) -> Option<u32> {
        match key {
            Key::Number(n) if (0..DENSE_IDS).contains(&n) => {
                self.dense.get(n as usize).copied().filter(|&code| code != u32::MAX)
            }
            Key::Number(n) => self.numbers.get(&n).copied(),
            Key::Text(text) => self.texts.get(text).copied(),
        }
    }

    /// Gives `key` the code `code` (below `u32::MAX`); returns the code it had, if any.
    fn insert(&mut self, key: Key<'_>, code: u32) -> Option<u32> {
        match key {
            Key::Number(n) if (0..DENSE_IDS).contains(&n) => {
                let at = n as usize;
                if at >= self.dense.len() {
                    let len = (at + 1).max(2 * self.dense.len()).min(DENSE_IDS as usize);
                    self.dense.resize(len, u32::MAX);
                }
                Some(std::mem::replace(&mut self.dense[at], code)).filter(|&old| old != u32::MAX)
            }
            Key::Number(n) => self.numbers.insert(n, code),
            Key::Text(text) => self.texts.insert(text.into(), code),
        }
    }
}

/// The ids of the user columns and of the item columns, and the column of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    /// User ids: user code `j` is `users[j]`.
    pub users: Vec<String>,
    /// Item ids: item code `j` is `items[j]`.
    pub items: Vec<String>,
    user_codes: IdCodes,
    item_codes: IdCodes,
}

impl Vocabulary {
    /// The vocabulary of these ids; an id listed twice is an error.
    pub fn new(users: Vec<String>, items: Vec<String>) -> Result<Self> {
        Ok(Vocabulary {
            user_codes: codes(&users, "user")?,
            item_codes: codes(&items, "item")?,
            users,
            items,
        })
    }
}

/// Code `j` for `ids[j]`.
fn codes(ids: &[String], what: &str) -> Result<IdCodes> {
    let mut codes = IdCodes::default();
    for (code, id) in ids.iter().enumerate() {
        let code = u32::try_from(code)
            .ok()
            .filter(|&c| c != u32::MAX)
            .ok_or_else(|| Error::invalid(format!("more than {} {what} ids", u32::MAX - 1)))?;
        if codes.insert(Key::of(id), code).is_some() {
            return Err(Error::invalid(format!("{what} id {} is listed twice", shown(id))));
        }
    }
    Ok(codes)
}

/// Distinct ids, coded in the order first seen.
#[derive(Debug, Default)]
struct FirstSeen {
    codes: IdCodes,
    ids: Vec<Id>,
}

impl FirstSeen {
    /// The code of `key`, new if it was not seen before.
    #[inline]
    fn code(&mut self, key: Key<'_>, line: u64) -> Result<u32> {
        if let Some(code) = self.codes.get(key) {
            return Ok(code);
        }
        let code = u32::try_from(self.ids.len())
            .ok()
            .filter(|&c| c != u32::MAX)
            .ok_or_else(|| parse_error(line, format!("more than {} distinct ids", u32::MAX - 1)))?;
        self.codes.insert(key, code);
        self.ids.push(match key {
            Key::Number(n) => Id::Number(n),
            Key::Text(text) => Id::Text(text.into()),
        });
        Ok(code)
    }

    /// The ids in vocabulary order (see the module documentation), and the rank there of each
    /// first-seen code.
    fn ordered(self) -> (IdList, Vec<i64>) {
        let numbers: Option<Vec<i64>> = self
            .ids
            .iter()
            .map(|id| match id {
                Id::Number(n) => Some(*n),
                Id::Text(_) => None,
            })
            .collect();
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        let ids = match numbers {
            // Plain integers are distinct as numbers: no ties to break by text.
            Some(numbers) => {
                order.sort_unstable_by_key(|&code| numbers[code]);
                IdList::Numbers(order.iter().map(|&code| numbers[code]).collect())
            }
            None => {
                let ids: Vec<String> = self.ids.into_iter().map(Id::into_string).collect();
                let numbers: Option<Vec<i64>> = ids.iter().map(|id| id.parse::<i64>().ok()).collect();
                match numbers {
                    Some(numbers) => order.sort_unstable_by(|&a, &b| (numbers[a], &ids[a]).cmp(&(numbers[b], &ids[b]))),
                    None => order.sort_unstable_by(|&a, &b| ids[a].cmp(&ids[b])),
                }
                let mut ids: Vec<Option<String>> = ids.into_iter().map(Some).collect();
                IdList::Texts(order.iter().map(|&code| ids[code].take().unwrap_or_default()).collect())
            }
        };
        let mut rank = vec![0i64; order.len()];
        for (position, &code) in order.iter().enumerate() {
            rank[code] = position as i64;
        }
        (ids, rank)
    }
}

/// The ids of a vocabulary, in its order: as numbers when every one is a plain integer (`7` or
/// `-12`, not `07` or `+7`), which spares making and handing over a string for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdList {
    /// Every id is a plain integer.
    Numbers(Vec<i64>),
    /// The ids as written.
    Texts(Vec<String>),
}

impl IdList {
    /// The ids as written.
    pub fn into_strings(self) -> Vec<String> {
        match self {
            IdList::Numbers(numbers) => numbers.iter().map(i64::to_string).collect(),
            IdList::Texts(texts) => texts,
        }
    }
}

/// How records are split into fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// RFC 4180 CSV with this delimiter.
    Csv(u8),
    /// MovieLens `ratings.dat`: `::` between fields, no quoting.
    DoubleColon,
}

/// Where each column is, fixed by the first record.
#[derive(Clone, Copy, Debug)]
struct Layout {
    n_fields: usize,
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: Option<usize>,
}

/// How the records of a file are laid out.
#[derive(Clone, Copy, Debug)]
struct Dialect {
    split: Split,
    /// The header's line number, when there is one.
    header: Option<u64>,
    layout: Layout,
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

/// Calls `visit(line, record)` for every non-blank record of `bytes`, whose first line is
/// numbered `first_line`; returns what the calls returned.
fn records<T>(
    bytes: &[u8],
    split: Split,
    first_line: u64,
    mut visit: impl FnMut(u64, &ByteRecord) -> Result<T>,
) -> Result<Vec<T>> {
    match split {
        // Without a quote, RFC 4180 fields are the bytes between delimiters: split directly,
        // which costs less than the state machine quotes need.
        Split::Csv(delimiter) if !bytes.contains(&b'"') => split_lines(bytes, &[delimiter], first_line, visit),
        Split::DoubleColon => split_lines(bytes, b"::", first_line, visit),
        Split::Csv(delimiter) => {
            let (mut out, mut record) = (Vec::new(), ByteRecord::new());
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
                out.push(visit(line, &record)?);
            }
        }
    }
}

/// [`records`] of lines whose fields are separated by `separator`, with no quoting.
fn split_lines<T>(
    bytes: &[u8],
    separator: &[u8],
    first_line: u64,
    mut visit: impl FnMut(u64, &ByteRecord) -> Result<T>,
) -> Result<Vec<T>> {
    let find = |text: &[u8]| match separator {
        [byte] => text.iter().position(|b| b == byte),
        _ => text.windows(separator.len()).position(|w| w == separator),
    };
    let mut out = Vec::new();
    let mut record = ByteRecord::new();
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (text, line) in text.split(|&b| b == b'\n').zip(first_line..) {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.trim_ascii().is_empty() {
            continue;
        }
        record.clear();
        let mut rest = text;
        while let Some(at) = find(rest) {
            record.push_field(rest[..at].trim_ascii());
            rest = &rest[at + separator.len()..];
        }
        record.push_field(rest.trim_ascii());
        out.push(visit(line, &record)?);
    }
    Ok(out)
}

/// The dialect of a file whose first non-blank line (number `line`) is `text`.
fn detect(line: u64, text: &[u8], options: &RatingsOptions<'_>) -> Result<Dialect> {
    let split = match options.delimiter {
        Some(delimiter) => given_split(delimiter)?,
        None => detected_split(line, text)?,
    };
    let first = records(text, split, line, |_, record| Ok(record.clone()))?;
    let Some(first) = first.into_iter().next() else {
        return Err(parse_error(line, "no record on the first line"));
    };
    let named: Vec<Option<Role>> = first.iter().map(role).collect();
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
fn number(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field.trim_ascii()).ok()?.parse().ok()
}

/// A field as text, or an error naming the line.
#[inline]
fn text(field: &[u8], line: u64) -> Result<&str> {
    std::str::from_utf8(field.trim_ascii()).map_err(|e| {
        parse_error(
            line,
            format!("not UTF-8 text (invalid byte {} of a field)", e.valid_up_to() + 1),
        )
    })
}

/// An id of a piece's record: a plain integer, or a code in the piece's texts.
#[derive(Clone, Copy, Debug)]
enum PieceId {
    Number(i64),
    Text(u32),
}

/// The ratings of one piece. Parsing runs on many threads, so it leaves coding the ids to the
/// one thread that merges pieces in order; it only gathers the text ids, each once.
#[derive(Debug, Default)]
struct PieceRatings {
    first_line: u64,
    /// Each record's line, counted from `first_line`.
    lines: Vec<u32>,
    users: Vec<PieceId>,
    items: Vec<PieceId>,
    text_codes: IdMap<Box<str>, u32>,
    texts: Vec<Box<str>>,
    ratings: Vec<f32>,
    timestamps: Vec<i64>,
    /// Bytes parsed.
    bytes: usize,
}

impl PieceRatings {
    /// The id in `field`, the `what` of the record on `line`. A plain integer is taken from the
    /// bytes, before (and without) checking that they are UTF-8 text.
    #[inline]
    fn id(&mut self, field: &[u8], what: &str, line: u64) -> Result<PieceId> {
        let field = field.trim_ascii();
        if let Some(n) = canonical_int(field) {
            return Ok(PieceId::Number(n));
        }
        let id = text(field, line)?;
        if id.is_empty() {
            return Err(parse_error(line, format!("empty {what} id")));
        }
        Ok(PieceId::Text(match self.text_codes.get(id) {
            Some(&code) => code,
            None => {
                let code = self.texts.len() as u32;
                self.text_codes.insert(id.into(), code);
                self.texts.push(id.into());
                code
            }
        }))
    }

    /// [`Self::code_ids`] of the users and of the items, on two threads (they are independent);
    /// a user's error first.
    fn code_users_and_items(
        &self,
        (user_codes, user_code_of): (&mut Vec<i64>, impl FnMut(Key<'_>, u64) -> Result<i64> + Send),
        (item_codes, item_code_of): (&mut Vec<i64>, impl FnMut(Key<'_>, u64) -> Result<i64> + Send),
    ) -> Result<()> {
        let (users, items) = rayon::join(
            || self.code_ids(&self.users, user_codes, user_code_of),
            || self.code_ids(&self.items, item_codes, item_code_of),
        );
        users.and(items)
    }

    /// The code of each of `ids` (the piece's users or items) that `code_of(key, line)` gives,
    /// appended to `out`; each distinct text is looked up once.
    fn code_ids(
        &self,
        ids: &[PieceId],
        out: &mut Vec<i64>,
        mut code_of: impl FnMut(Key<'_>, u64) -> Result<i64>,
    ) -> Result<()> {
        let mut text_codes: Vec<Option<i64>> = vec![None; self.texts.len()];
        out.reserve(ids.len());
        for (&id, &line) in ids.iter().zip(&self.lines) {
            let line = self.first_line + u64::from(line);
            let code = match id {
                PieceId::Number(n) => code_of(Key::Number(n), line)?,
                PieceId::Text(t) => match text_codes[t as usize] {
                    Some(code) => code,
                    None => *text_codes[t as usize].insert(code_of(Key::Text(&self.texts[t as usize]), line)?),
                },
            };
            out.push(code);
        }
        Ok(())
    }
}

/// Parses the records of a piece (the header skipped).
fn parse_piece(piece: &Piece<'_>, dialect: &Dialect, options: &RatingsOptions<'_>) -> Result<PieceRatings> {
    let layout = dialect.layout;
    let timestamp = layout.timestamp.filter(|_| options.timestamps);
    let mut out = PieceRatings {
        first_line: piece.first_line,
        bytes: piece.bytes.len(),
        ..PieceRatings::default()
    };
    records(piece.bytes, dialect.split, piece.first_line, |line, record| {
        if Some(line) == dialect.header {
            return Ok(());
        }
        if record.len() != layout.n_fields {
            return Err(parse_error(
                line,
                format!("expected {} fields, found {}", layout.n_fields, record.len()),
            ));
        }
        let user = out.id(&record[layout.user], "user", line)?;
        let item = out.id(&record[layout.item], "item", line)?;
        out.users.push(user);
        out.items.push(item);
        // A piece is far shorter than 2^32 lines.
        out.lines.push((line - piece.first_line) as u32);
        if let Some(at) = layout.rating {
            out.ratings.push(rating(&record[at], line)?);
        }
        if let Some(at) = timestamp {
            out.timestamps.push(time(&record[at], line)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Codes by a given vocabulary: a known id's code, -1 for an unknown one when `unknown` skips
/// it, else an error naming it and its line.
fn known<'a>(codes: &'a IdCodes, what: &'a str, unknown: Unknown) -> impl Fn(Key<'_>, u64) -> Result<i64> + Send + 'a {
    move |key, line| match (codes.get(key), unknown) {
        (Some(code), _) => Ok(i64::from(code)),
        (None, Unknown::Skip) => Ok(-1),
        (None, Unknown::Refuse) => {
            let id = match key {
                Key::Number(n) => n.to_string(),
                Key::Text(text) => text.to_owned(),
            };
            Err(parse_error(
                line,
                format!("{what} id {} is not in the vocabulary", shown(&id)),
            ))
        }
    }
}

/// Codes by first appearance in `seen`.
fn first_seen(seen: &mut FirstSeen) -> impl FnMut(Key<'_>, u64) -> Result<i64> + Send + '_ {
    move |key, line| seen.code(key, line).map(i64::from)
}

/// A rating: a finite number, as `f32`.
#[inline]
fn rating(field: &[u8], line: u64) -> Result<f32> {
    let token = text(field, line)?;
    match token.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(parse_error(line, format!("rating {} is not finite", shown(token)))),
        Err(_) => Err(parse_error(line, format!("rating {} is not a number", shown(token)))),
    }
}

/// A timestamp: an integer, also written as an integral float (RecBole's `timestamp:float`).
#[inline]
fn time(field: &[u8], line: u64) -> Result<i64> {
    let token = text(field, line)?;
    if let Ok(value) = token.parse::<i64>() {
        return Ok(value);
    }
    match token.parse::<f64>() {
        Ok(value) if value.fract() == 0.0 && value.abs() < 9.2e18 => Ok(value as i64),
        Ok(_) => Err(parse_error(
            line,
            format!("timestamp {} is not an integer", shown(token)),
        )),
        Err(_) => Err(parse_error(line, format!("timestamp {} is not a number", shown(token)))),
    }
}

/// Calls `visit` with the ratings of every piece of the file `reader` holds, in order, once the
/// first non-blank line fixed the dialect; returns the dialect (`None` for a file without
/// records) and the bytes read. The pieces of a block are visited while the next block's are
/// parsed, so that the visits (on one thread) overlap the parsing (on the others).
fn for_each_piece<R: Read>(
    reader: R,
    options: &RatingsOptions<'_>,
    block_bytes: usize,
    done_before: u64,
    known: Option<Dialect>,
    monitor: &dyn Monitor,
    mut visit: impl FnMut(PieceRatings) -> Result<()> + Send,
) -> Result<(Option<Dialect>, u64)> {
    let mut dialect = known;
    let mut parsed: Vec<PieceRatings> = Vec::new();
    let read = for_each_block(reader, block_bytes, done_before, monitor, |pieces| {
        let dialect = match &mut dialect {
            Some(dialect) => &*dialect,
            slot => match first_line(pieces) {
                Some((line, text)) => &*slot.insert(detect(line, text, options)?),
                None => return Ok(()),
            },
        };
        let previous = std::mem::take(&mut parsed);
        let (visited, current) = rayon::join(
            || previous.into_iter().try_for_each(&mut visit),
            || parse_pieces(pieces, |p| parse_piece(p, dialect, options)),
        );
        visited?;
        parsed = current?;
        Ok(())
    })?;
    parsed.into_iter().try_for_each(visit)?;
    Ok((dialect, read))
}

/// The first non-blank line of a block, if any.
fn first_line<'a>(pieces: &[Piece<'a>]) -> Option<(u64, &'a [u8])> {
    pieces
        .iter()
        .flat_map(|p| p.lines())
        .find(|(_, line)| !line.trim_ascii().is_empty())
}

/// The ratings of a file, with users and items coded `0..n` in their vocabularies.
#[derive(Clone, Debug, PartialEq)]
pub struct RatingsTable {
    /// User code of each rating (-1 for an id outside a given vocabulary, when skipped).
    pub users: Vec<i64>,
    /// Item code of each rating (-1 likewise).
    pub items: Vec<i64>,
    /// The ratings, or `None` for a file of pairs.
    pub ratings: Option<Vec<f32>>,
    /// The timestamps, when asked for and the file has them.
    pub timestamps: Option<Vec<i64>>,
    /// The id of each user code.
    pub user_ids: IdList,
    /// The id of each item code.
    pub item_ids: IdList,
}

/// Reads every rating of the file `source` into a [`RatingsTable`]; a file without one is an error.
pub fn read_ratings(source: &Path, options: &RatingsOptions<'_>, monitor: &dyn Monitor) -> Result<RatingsTable> {
    let file = open_input(source)?;
    let size = file.metadata().map_err(Error::file(source))?.len();
    read_in_blocks(file, Some(size), options, monitor, READ_BLOCK_BYTES)
}

/// [`read_ratings`] reading blocks of `block_bytes` (small in tests, to cross block ends).
/// `size`, the bytes `reader` holds when known, sizes the arrays once the first piece shows how
/// long a line is, so that they are not grown (up to twice their size) by doubling.
fn read_in_blocks<R: Read>(
    reader: R,
    size: Option<u64>,
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<RatingsTable> {
    let (mut users, mut items) = (FirstSeen::default(), FirstSeen::default());
    let (mut user_codes, mut item_codes) = (Vec::new(), Vec::new());
    let (mut ratings, mut timestamps) = (Vec::new(), Vec::new());
    let (dialect, _) = for_each_piece(reader, options, block_bytes, 0, None, monitor, |piece| {
        let rows = piece.users.len();
        if let (Some(size), true, true) = (size, user_codes.is_empty(), rows > 0) {
            // An estimate from the file's own lines, so never more than its bytes; 2% to spare.
            let expected = (size as f64 / piece.bytes.max(1) as f64 * rows as f64 * 1.02) as usize;
            user_codes.reserve(expected);
            item_codes.reserve(expected);
            ratings.reserve(if piece.ratings.is_empty() { 0 } else { expected });
            timestamps.reserve(if piece.timestamps.is_empty() { 0 } else { expected });
        }
        match options.vocabulary {
            Some(vocabulary) => piece.code_users_and_items(
                (&mut user_codes, known(&vocabulary.user_codes, "user", options.unknown)),
                (&mut item_codes, known(&vocabulary.item_codes, "item", options.unknown)),
            )?,
            None => piece.code_users_and_items(
                (&mut user_codes, first_seen(&mut users)),
                (&mut item_codes, first_seen(&mut items)),
            )?,
        }
        ratings.extend_from_slice(&piece.ratings);
        timestamps.extend_from_slice(&piece.timestamps);
        Ok(())
    })?;
    let Some(dialect) = dialect.filter(|_| !user_codes.is_empty()) else {
        return Err(parse_error(1, "the file contains no ratings"));
    };
    let (user_ids, item_ids) = match options.vocabulary {
        Some(vocabulary) => (
            IdList::Texts(vocabulary.users.clone()),
            IdList::Texts(vocabulary.items.clone()),
        ),
        None => (recode(users, &mut user_codes), recode(items, &mut item_codes)),
    };
    for codes in [&mut user_codes, &mut item_codes, &mut timestamps] {
        codes.shrink_to_fit();
    }
    ratings.shrink_to_fit();
    let layout = dialect.layout;
    Ok(RatingsTable {
        users: user_codes,
        items: item_codes,
        ratings: layout.rating.map(|_| ratings),
        timestamps: layout.timestamp.filter(|_| options.timestamps).map(|_| timestamps),
        user_ids,
        item_ids,
    })
}

/// Replaces first-seen codes by vocabulary-order codes; returns the vocabulary.
fn recode(seen: FirstSeen, codes: &mut [i64]) -> IdList {
    let (ids, rank) = seen.ordered();
    for code in codes.iter_mut() {
        *code = rank[*code as usize];
    }
    ids
}

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatingsSummary {
    /// Records written (one per rating).
    pub n_rows: u64,
    /// Records with an id outside the given vocabulary (which has no column in them).
    pub n_unknown: u64,
    /// The columns: user `j` in column `j`, item `j` in column `users.len() + j`.
    pub vocabulary: Vocabulary,
}

/// Converts the ratings in `source` into one-hot RecordIO rows in a file at `target`, which
/// appears only when the whole file converted. Without `options.vocabulary`, a first pass
/// collects the file's own. `monitor` gets the bytes read over all passes.
pub fn convert_ratings_csv(
    source: &Path,
    target: &Path,
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    AtomicFile::write_with(target, |out| {
        write_ratings_csv(|| open_input(source), out, options, monitor)
    })
}

/// Converts the ratings that `open` yields (called once per pass) into RecordIO records written
/// to `out`: per rating, value 1 in its user's column and in its item's column, and the rating
/// as label.
pub fn write_ratings_csv<R: Read>(
    open: impl FnMut() -> Result<R>,
    out: &mut (dyn Write + Send),
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    write_in_blocks(open, out, options, monitor, block_bytes())
}

/// [`write_ratings_csv`] reading blocks of `block_bytes` (small in tests, to cross block ends).
fn write_in_blocks<R: Read>(
    mut open: impl FnMut() -> Result<R>,
    out: &mut (dyn Write + Send),
    options: &RatingsOptions<'_>,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<RatingsSummary> {
    let options = RatingsOptions {
        pairs: false,
        timestamps: false,
        ..*options
    };
    let (vocabulary, dialect, done) = match options.vocabulary {
        Some(given) => (given.clone(), None, 0),
        None => {
            let (mut users, mut items) = (FirstSeen::default(), FirstSeen::default());
            let (mut user_codes, mut item_codes) = (Vec::new(), Vec::new());
            let (dialect, read) = for_each_piece(open()?, &options, block_bytes, 0, None, monitor, |piece| {
                user_codes.clear();
                item_codes.clear();
                piece.code_users_and_items(
                    (&mut user_codes, first_seen(&mut users)),
                    (&mut item_codes, first_seen(&mut items)),
                )
            })?;
            let vocabulary = Vocabulary::new(users.ordered().0.into_strings(), items.ordered().0.into_strings())?;
            if dialect.is_none() {
                return Ok(RatingsSummary {
                    n_rows: 0,
                    n_unknown: 0,
                    vocabulary,
                });
            }
            (vocabulary, dialect, read)
        }
    };
    let n_users = vocabulary.users.len() as i64;
    let n_cols = (vocabulary.users.len() + vocabulary.items.len()) as u64;
    let (mut n_rows, mut n_unknown) = (0u64, 0u64);
    let (mut users, mut items) = (Vec::new(), Vec::new());
    for_each_piece(open()?, &options, block_bytes, done, dialect, monitor, |piece| {
        users.clear();
        items.clear();
        piece.code_users_and_items(
            (&mut users, known(&vocabulary.user_codes, "user", options.unknown)),
            (&mut items, known(&vocabulary.item_codes, "item", options.unknown)),
        )?;
        let mut rows = RowBlock::new();
        for ((&user, &item), &rating) in users.iter().zip(&items).zip(&piece.ratings) {
            if user >= 0 {
                rows.indices.push(user);
            }
            if item >= 0 {
                rows.indices.push(n_users + item);
            }
            n_unknown += u64::from(user < 0 || item < 0);
            rows.values.resize(rows.indices.len(), 1.0);
            rows.end_row(rating);
        }
        n_rows += rows.n_rows() as u64;
        out.write_all(&rows.encode(n_cols)?)?;
        Ok(())
    })?;
    Ok(RatingsSummary {
        n_rows,
        n_unknown,
        vocabulary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::Indices;
    use crate::recordio::{decode_records, split_frames, FeatureValues};
    use crate::text::lines::BLOCK_BYTES;

    fn convert_in(text: &str, options: &RatingsOptions<'_>, block_bytes: usize) -> Result<(RatingsSummary, Vec<u8>)> {
        let mut out = Vec::new();
        let summary = write_in_blocks(|| Ok(text.as_bytes()), &mut out, options, &Unmonitored, block_bytes)?;
        Ok((summary, out))
    }

    fn convert(text: &str, options: &RatingsOptions<'_>) -> Result<(RatingsSummary, Vec<u8>)> {
        convert_in(text, options, BLOCK_BYTES)
    }

    fn read(text: &str, options: &RatingsOptions<'_>) -> Result<RatingsTable> {
        read_in_blocks(
            text.as_bytes(),
            Some(text.len() as u64),
            options,
            &Unmonitored,
            BLOCK_BYTES,
        )
    }

    fn delimited(delimiter: &str) -> RatingsOptions<'_> {
        RatingsOptions {
            delimiter: Some(delimiter),
            ..RatingsOptions::default()
        }
    }

    /// Decodes `bytes` into `(n_cols, columns of each row, labels)`.
    fn decode(bytes: &[u8]) -> (u64, Vec<Vec<i64>>, Vec<f32>) {
        let decoded = decode_records(&split_frames(bytes, 0).unwrap(), &Unmonitored).unwrap();
        let (indptr, indices): (Vec<i64>, Vec<i64>) = match decoded.indices {
            Indices::I32 { indptr, indices } => (
                indptr.into_iter().map(i64::from).collect(),
                indices.into_iter().map(i64::from).collect(),
            ),
            Indices::I64 { indptr, indices } => (indptr, indices),
        };
        let rows = indptr
            .windows(2)
            .map(|w| indices[w[0] as usize..w[1] as usize].to_vec())
            .collect();
        assert_eq!(decoded.values, FeatureValues::F32(vec![1.0; indices.len()]));
        let Some(FeatureValues::F32(labels)) = decoded.labels else {
            panic!("no float32 labels")
        };
        (decoded.n_cols, rows, labels)
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn converts_ratings_with_a_header_to_one_hot_rows() {
        let text = "userId,movieId,rating,timestamp\n10,b,4.5,99\n2,a,3,98\n\n10,a,1,97\n";
        let (summary, bytes) = convert(text, &RatingsOptions::default()).unwrap();
        assert_eq!(summary.n_rows, 3);
        assert_eq!(summary.vocabulary.users, strings(&["2", "10"]), "numeric order");
        assert_eq!(summary.vocabulary.items, strings(&["a", "b"]), "text order");
        let (n_cols, rows, labels) = decode(&bytes);
        assert_eq!(n_cols, 4);
        assert_eq!(rows, [vec![1, 3], vec![0, 2], vec![1, 2]]);
        assert_eq!(labels, [4.5, 3.0, 1.0]);
        let (_, small) = convert_in(text, &RatingsOptions::default(), 5).unwrap();
        assert_eq!(small, bytes, "block size changes nothing");
    }

    #[test]
    fn reads_the_same_ratings_in_every_dialect() {
        let want = read("1,10,3,100\n2,10,4,200\n", &RatingsOptions::default()).unwrap();
        for text in [
            "1::10::3::100\r\n2::10::4::200\r\n",
            "1\t10\t3\t100\n2\t10\t4\t200\n",
            "1;10;3;100\n2;10;4;200",
            "\u{feff}user_id:token,item_id:token,rating:float,timestamp:float\r\n1,10,3,100\r\n2,10,4,200.0\r\n",
            "\"1\",\"10\",\"3\",\"100\"\n 2 , 10 , 4 , 200 \n",
            "item,user,rating,timestamp\n10,1,3,100\n10,2,4,200\n",
            "timestamp;rating;movieId;userId\n100;3;10;1\n200;4;10;2\n",
        ] {
            assert_eq!(read(text, &RatingsOptions::default()).unwrap(), want, "{text:?}");
        }
        assert_eq!(want.user_ids, IdList::Numbers(vec![1, 2]));
        assert_eq!((want.users, want.items), (vec![0, 1], vec![0, 0]));
        assert_eq!(want.ratings, Some(vec![3.0, 4.0]));
        assert_eq!(want.timestamps, None, "not asked for");
        let options = RatingsOptions {
            timestamps: true,
            ..RatingsOptions::default()
        };
        assert_eq!(read("1,10,3,100\n", &options).unwrap().timestamps, Some(vec![100]));
    }

    #[test]
    fn header_names_decide_the_columns_of_a_conversion() {
        let (swapped, bytes) = convert("item,user,rating\ni1,u1,5\ni2,u1,3\n", &RatingsOptions::default()).unwrap();
        assert_eq!(swapped.vocabulary.users, strings(&["u1"]));
        assert_eq!(swapped.vocabulary.items, strings(&["i1", "i2"]));
        assert_eq!(decode(&bytes).1, [vec![0, 1], vec![0, 2]]);
    }

    #[test]
    fn quoted_fields_hold_delimiters_and_quotes() {
        let table = read("\"Smith, J\",\"a \"\"b\"\"\",4\nx;y,c,5\n", &RatingsOptions::default()).unwrap();
        assert_eq!(table.user_ids, IdList::Texts(strings(&["Smith, J", "x;y"])));
        assert_eq!(table.item_ids, IdList::Texts(strings(&["a \"b\"", "c"])));
        let (summary, _) = convert("a,b;c;5\n", &delimited(";")).unwrap();
        assert_eq!(
            (summary.vocabulary.users, summary.vocabulary.items),
            (strings(&["a,b"]), strings(&["c"]))
        );
        let table = read("1|2|3\n", &delimited("|")).unwrap();
        assert_eq!(table.ratings, Some(vec![3.0]));
    }

    #[test]
    fn ids_are_the_text_as_written() {
        let table = read("7,a,1\n07,a,2\n7,a,3\n", &RatingsOptions::default()).unwrap();
        assert_eq!(
            table.user_ids,
            IdList::Texts(strings(&["07", "7"])),
            "numeric order, ties by text"
        );
        assert_eq!(table.users, [1, 0, 1]);
        let (summary, _) = convert("7,a,1\n07,a,2\n", &RatingsOptions::default()).unwrap();
        assert_eq!(summary.vocabulary.users, strings(&["07", "7"]));
        let table = read("10,x,1\n9,y,1\nb,y,1\n", &RatingsOptions::default()).unwrap();
        assert_eq!(
            table.user_ids,
            IdList::Texts(strings(&["10", "9", "b"])),
            "text order once an id is not a number"
        );
        assert_eq!(table.users, [0, 1, 2]);
        let table = read("10,x,1\n-9,y,1\n", &RatingsOptions::default()).unwrap();
        assert_eq!(table.user_ids, IdList::Numbers(vec![-9, 10]));
        assert_eq!(table.user_ids.into_strings(), strings(&["-9", "10"]));
    }

    #[test]
    fn codes_plain_integers_in_a_table_and_other_ids_by_hash() {
        for (id, want) in [
            ("0", 0),
            ("-12", -12),
            ("345", 345),
            ("999999999999999999", 999_999_999_999_999_999),
        ] {
            assert_eq!(canonical_int(id.as_bytes()), Some(want), "{id}");
        }
        for id in ["", "-", "-0", "07", "+3", "1.5", "x1", "1 2", "1234567890123456789"] {
            assert_eq!(canonical_int(id.as_bytes()), None, "{id}");
            assert!(matches!(Key::of(id), Key::Text(_)), "{id}");
        }
        let big = (DENSE_IDS + 5).to_string();
        let ids = ["5", "-3", "05", "x", big.as_str(), "0"];
        let mut codes = IdCodes::default();
        for (code, id) in ids.iter().enumerate() {
            assert_eq!(codes.insert(Key::of(id), code as u32), None, "{id}");
        }
        assert_eq!((codes.dense.len(), codes.numbers.len(), codes.texts.len()), (6, 2, 2));
        for (code, id) in ids.iter().enumerate() {
            assert_eq!(codes.get(Key::of(id)), Some(code as u32), "{id}");
        }
        for absent in ["4", "6", "-4", "005", "y", "99999999"] {
            assert_eq!(codes.get(Key::of(absent)), None, "{absent}");
        }
        assert_eq!(codes.insert(Key::of("5"), 9), Some(0));
    }

    #[test]
    fn codes_ids_by_a_given_vocabulary() {
        let vocabulary = Vocabulary::new(strings(&["u1", "u2"]), strings(&["a", "b"])).unwrap();
        let mut options = RatingsOptions {
            vocabulary: Some(&vocabulary),
            ..RatingsOptions::default()
        };
        let text = "user,item,rating\nu2,a,5\nu3,b,4\nu1,c,3\n";
        let err = read(text, &options).unwrap_err();
        assert!(matches!(&err, Error::Parse { line: 3, .. }), "{err}");
        assert!(
            err.to_string().contains("user id \"u3\" is not in the vocabulary"),
            "{err}"
        );
        assert!(convert(text, &options).is_err());
        options.unknown = Unknown::Skip;
        let table = read(text, &options).unwrap();
        assert_eq!((table.users, table.items), (vec![1, -1, 0], vec![0, 1, -1]));
        assert_eq!(table.user_ids, IdList::Texts(vocabulary.users.clone()));
        let (summary, bytes) = convert(text, &options).unwrap();
        assert_eq!((summary.n_rows, summary.n_unknown), (3, 2));
        assert_eq!(decode(&bytes).1, [vec![1, 2], vec![3], vec![0]]);
        let err = Vocabulary::new(strings(&["u1", "u1"]), vec![]).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }

    #[test]
    fn reads_pairs_when_asked() {
        let options = RatingsOptions {
            pairs: true,
            ..RatingsOptions::default()
        };
        let table = read("user,item\nu1,a\nu2,a\n", &options).unwrap();
        assert_eq!((table.users, table.ratings), (vec![0, 1], None));
        let table = read("u1,a\n", &options).unwrap();
        assert_eq!(table.item_ids, IdList::Texts(strings(&["a"])));
        let one_field = RatingsOptions {
            delimiter: Some(","),
            ..options
        };
        let err = read("u1\n", &one_field).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected at least 2 fields (user, item), found 1"),
            "{err}"
        );
        let err = read("user,item,stars2\n1,2,3\n", &RatingsOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("line 1: the header names no rating column"),
            "{err}"
        );
        let err = read("u1,a\n", &RatingsOptions::default()).unwrap_err();
        assert!(err.to_string().contains("expected at least 3 fields"), "{err}");
    }

    #[test]
    fn detects_a_header_only_on_the_first_line() {
        let (summary, _) = convert("\n\nuser\titem\trating:float\n1\t1\t5\n", &RatingsOptions::default()).unwrap();
        assert_eq!(summary.n_rows, 1);
        let (summary, _) = convert("1,1,5\n2,2,4\n", &RatingsOptions::default()).unwrap();
        assert_eq!(summary.n_rows, 2);
        let (summary, bytes) = convert("user,item,rating\n", &RatingsOptions::default()).unwrap();
        assert_eq!((summary.n_rows, bytes.len()), (0, 0));
        let (summary, _) = convert("", &RatingsOptions::default()).unwrap();
        assert_eq!((summary.n_rows, summary.vocabulary.users.len()), (0, 0));
        let err = read("user,item,rating\n", &RatingsOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no ratings"), "{err}");
        let no_header = RatingsOptions {
            header: Some(false),
            ..RatingsOptions::default()
        };
        let err = read("user,item,rating\n1,2,3\n", &no_header).unwrap_err();
        assert!(
            err.to_string().contains("line 1: rating \"rating\" is not a number"),
            "{err}"
        );
    }

    #[test]
    fn reports_each_error_with_its_line() {
        let cases: [(&str, Option<&str>, u64, &str); 10] = [
            ("1 2 3\n", None, 1, "cannot detect the delimiter"),
            ("1,2,3\n1,2\n", None, 2, "expected 3 fields, found 2"),
            ("1\t2\t3\n\n1\t2\t3\t4\n", None, 3, "expected 3 fields, found 4"),
            ("1,2,3\n1,2,good\n", None, 2, "rating \"good\" is not a number"),
            ("1,2,3\n1,2,inf\n", None, 2, "rating \"inf\" is not finite"),
            ("1,2,3\n\n,2,3\n", None, 3, "empty user id"),
            ("1;;3\n", Some(";"), 1, "empty item id"),
            ("1,2,3\n\"a\nb\",2,3\n", None, 2, "a quoted field holds a line break"),
            ("1,2,3,4\n1,2,3,1.5\n", None, 2, "timestamp \"1.5\" is not an integer"),
            ("1,2,3\n1,\"2,3\n1,2,3\n", None, 2, "a quote is not closed"),
        ];
        let options = |delimiter| RatingsOptions {
            delimiter,
            timestamps: true,
            ..RatingsOptions::default()
        };
        for (text, delimiter, line, message) in cases {
            let Err(Error::Parse {
                line: got,
                message: said,
            }) = read(text, &options(delimiter))
            else {
                panic!("{text:?}: expected a parse error")
            };
            assert_eq!(got, line, "{text:?}: {said}");
            assert!(said.contains(message), "{said:?} lacks {message:?}");
        }
        let bytes = b"1,2,3\n1,\xff,3\n";
        let err = read_in_blocks(&bytes[..], None, &RatingsOptions::default(), &Unmonitored, 64).unwrap_err();
        assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
        for bad in ["", "ab", "\""] {
            let err = convert("1,2,3\n", &delimited(bad)).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn writes_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("r.csv"), dir.path().join("r.recordio"));
        std::fs::write(&source, "1,1,5\n2,1,3\n").unwrap();
        let summary = convert_ratings_csv(&source, &target, &RatingsOptions::default(), &Unmonitored).unwrap();
        assert_eq!(summary.n_rows, 2);
        assert_eq!(decode(&std::fs::read(&target).unwrap()).1, [vec![0, 2], vec![1, 2]]);
        std::fs::write(&source, "1,1,5\n2,1,x\n").unwrap();
        std::fs::remove_file(&target).unwrap();
        assert!(convert_ratings_csv(&source, &target, &RatingsOptions::default(), &Unmonitored).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the source remains"
        );
    }
}
