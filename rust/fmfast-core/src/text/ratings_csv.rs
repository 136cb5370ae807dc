//! `user,item,rating` triples (CSV/TSV, MovieLens `::`) into one-hot RecordIO rows, streaming, in
//! two passes.
//!
//! * The delimiter is given, or detected from the first non-blank line: `::` if it appears, else a
//!   tab, else `,`. Fields are trimmed of surrounding whitespace; there is no quoting, so ids
//!   cannot contain the delimiter. Columns after the third (a timestamp, say) are ignored.
//! * The first non-blank line is a header when its third field does not parse as a number.
//! * Pass 1 checks every line and collects the distinct user and item ids; each vocabulary is
//!   ordered numerically when all its ids are integers (ties, such as `7` and `07`, by text),
//!   otherwise by text (bytes).
//! * Pass 2 writes one row per rating: column `u` for the user's position in the users
//!   vocabulary, column `n_users + i` for the item's, both with value 1, and the rating as label.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::path::Path;

use super::lines::{block_bytes, for_each_block, parse_error, parse_f32, parse_pieces, shown, Piece, RowBlock};
use crate::error::{Error, Result};
use crate::parallel::Monitor;
use crate::recordio::{open_input, AtomicFile};

/// Hash sets and maps of ids, hashed with [`IdHasher`].
type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;
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

/// Delimiters tried, in order, on the first line.
const DETECTED: [&str; 3] = ["::", "\t", ","];

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatingsSummary {
    /// Records written (one per rating).
    pub n_rows: u64,
    /// User ids: column `j` is `users[j]`.
    pub users: Vec<String>,
    /// Item ids: column `users.len() + j` is `items[j]`.
    pub items: Vec<String>,
}

/// Converts the rating triples in `source` into a RecordIO file at `target`, which appears only
/// when the whole file converted. `delimiter: None` detects it. `monitor` gets the bytes read,
/// over both passes (so twice the file size at the end).
pub fn convert_ratings_csv(
    source: &Path,
    target: &Path,
    delimiter: Option<&str>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    AtomicFile::write_with(target, |out| {
        write_ratings_csv(|| open_input(source), out, delimiter, monitor)
    })
}

/// Converts the rating triples that `open` yields (called once per pass) into RecordIO records
/// written to `out`.
pub fn write_ratings_csv<R: Read>(
    open: impl FnMut() -> Result<R>,
    out: &mut dyn Write,
    delimiter: Option<&str>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    write_in_blocks(open, out, delimiter, monitor, block_bytes())
}

/// How the lines are laid out, fixed by the first non-blank line.
#[derive(Debug)]
struct Dialect {
    delimiter: String,
    /// The header's line number, when there is one.
    header: Option<u64>,
}

/// [`write_ratings_csv`] reading blocks of `block_bytes` (small in tests, to cross block ends).
fn write_in_blocks<R: Read>(
    mut open: impl FnMut() -> Result<R>,
    out: &mut dyn Write,
    delimiter: Option<&str>,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<RatingsSummary> {
    if delimiter == Some("") {
        return Err(Error::invalid("the delimiter is empty"));
    }
    let mut dialect: Option<Dialect> = None;
    let (mut users, mut items) = (Ids::<String>::default(), Ids::<String>::default());
    let size = for_each_block(open()?, block_bytes, 0, monitor, |pieces| {
        let dialect = match &mut dialect {
            Some(dialect) => dialect,
            slot => match first_line(pieces)? {
                Some((number, text)) => slot.insert(detect(number, text, delimiter)?),
                None => return Ok(()),
            },
        };
        for (piece_users, piece_items) in parse_pieces(pieces, |p| collect_piece(p, dialect))? {
            users.merge(piece_users);
            items.merge(piece_items);
        }
        Ok(())
    })?;
    let (users, items) = (users.ordered(), items.ordered());
    let Some(dialect) = dialect else {
        // No non-blank line: no ratings.
        return Ok(RatingsSummary {
            n_rows: 0,
            users,
            items,
        });
    };

    let columns = OneHot::new(&users, &items);
    let mut n_rows = 0u64;
    for_each_block(open()?, block_bytes, size, monitor, |pieces| {
        for (rows, bytes) in parse_pieces(pieces, |p| encode_piece(p, &dialect, &columns))? {
            n_rows += rows;
            out.write_all(&bytes)?;
        }
        Ok(())
    })?;
    Ok(RatingsSummary { n_rows, users, items })
}

/// The first non-blank line of a block, if any.
fn first_line<'a>(pieces: &[Piece<'a>]) -> Result<Option<(u64, &'a str)>> {
    pieces.iter().flat_map(|p| p.text_lines()).next().transpose()
}

/// The dialect the first non-blank line (`number`, `text`) reveals.
fn detect(number: u64, text: &str, delimiter: Option<&str>) -> Result<Dialect> {
    let delimiter = match delimiter {
        Some(delimiter) => delimiter,
        None => DETECTED.into_iter().find(|d| text.contains(d)).ok_or_else(|| {
            parse_error(
                number,
                format!(
                    "cannot detect the delimiter (\"::\", a tab or \",\") in {}",
                    shown(text)
                ),
            )
        })?,
    };
    let (_, _, rating) = fields(text, delimiter, number)?;
    Ok(Dialect {
        delimiter: delimiter.to_owned(),
        header: rating.parse::<f32>().is_err().then_some(number),
    })
}

/// The text before and after the first `delimiter`.
#[inline]
fn cut<'a>(text: &'a str, delimiter: &str) -> Option<(&'a str, &'a str)> {
    match delimiter.as_bytes() {
        // A one-byte delimiter is searched for with memchr rather than a substring searcher.
        &[byte] if byte.is_ascii() => text.split_once(char::from(byte)),
        _ => text.split_once(delimiter),
    }
}

/// The user, item and rating fields of a line, trimmed.
#[inline]
fn fields<'a>(text: &'a str, delimiter: &str, line: u64) -> Result<(&'a str, &'a str, &'a str)> {
    let split = cut(text, delimiter).and_then(|(user, rest)| {
        let (item, rest) = cut(rest, delimiter)?;
        let rating = cut(rest, delimiter).map_or(rest, |(rating, _)| rating);
        Some((user.trim_ascii(), item.trim_ascii(), rating.trim_ascii()))
    });
    match split {
        Some((user, item, rating)) => {
            for (what, id) in [("user", user), ("item", item)] {
                if id.is_empty() {
                    return Err(parse_error(line, format!("empty {what} id in {}", shown(text))));
                }
            }
            Ok((user, item, rating))
        }
        None => Err(parse_error(
            line,
            format!("expected user{delimiter}item{delimiter}rating, got {}", shown(text)).replace('\t', "\\t"),
        )),
    }
}

/// Calls `visit(line, user, item, rating)` for each data line of a piece (header and blank lines
/// skipped, ratings parsed).
fn for_each_rating<'a>(
    piece: &Piece<'a>,
    dialect: &Dialect,
    mut visit: impl FnMut(u64, &'a str, &'a str, f32) -> Result<()>,
) -> Result<()> {
    let text = piece.text()?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    for (line, number) in text.split('\n').zip(piece.first_line..) {
        if line.trim_ascii().is_empty() || Some(number) == dialect.header {
            continue;
        }
        let (user, item, rating) = fields(line, &dialect.delimiter, number)?;
        visit(number, user, item, parse_f32(rating, "rating", number)?)?;
    }
    Ok(())
}

/// Pass 1 over one piece: the distinct user and item ids in it.
fn collect_piece<'a>(piece: &Piece<'a>, dialect: &Dialect) -> Result<(Ids<&'a str>, Ids<&'a str>)> {
    let (mut users, mut items) = (Ids::default(), Ids::default());
    for_each_rating(piece, dialect, |_, user, item, _| {
        users.insert(user);
        items.insert(item);
        Ok(())
    })?;
    Ok((users, items))
}

/// The value of an id written as a plain integer (`-12`, `0`, `345`; not `+3`, `07` or `-0`),
/// which no other such id shares, so it can be kept and looked up as a number.
#[inline]
fn canonical_int(id: &str) -> Option<i64> {
    let digits = id.strip_prefix('-').unwrap_or(id).as_bytes();
    let plain = match digits {
        [] => false,
        [b'0'] => digits.len() == id.len(),
        [b'0', ..] => false,
        _ => digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit),
    };
    if plain {
        id.parse().ok()
    } else {
        None
    }
}

/// Distinct ids: plain integers (see [`canonical_int`]) as numbers, which are cheaper to hash
/// and compare than text, and every other id as text.
#[derive(Debug, Default)]
struct Ids<S> {
    numbers: IdSet<i64>,
    texts: IdSet<S>,
}

impl<'a> Ids<&'a str> {
    #[inline]
    fn insert(&mut self, id: &'a str) {
        match canonical_int(id) {
            Some(number) => self.numbers.insert(number),
            None => self.texts.insert(id),
        };
    }
}

impl Ids<String> {
    /// Adds the ids of a piece.
    fn merge(&mut self, piece: Ids<&str>) {
        self.numbers.extend(piece.numbers);
        for id in piece.texts {
            if !self.texts.contains(id) {
                self.texts.insert(id.to_owned());
            }
        }
    }

    /// The ids in numeric order when all are integers, else in text order.
    fn ordered(self) -> Vec<String> {
        let ids = self.numbers.into_iter().map(|n| n.to_string());
        ordered(ids.chain(self.texts).collect())
    }
}

/// `ids` in numeric order when all are integers (ties, such as `7` and `07`, by text), else in
/// text order.
fn ordered(mut ids: Vec<String>) -> Vec<String> {
    let numbers: Option<Vec<i64>> = ids.iter().map(|id| id.parse::<i64>().ok()).collect();
    match numbers {
        Some(numbers) => {
            let mut keyed: Vec<(i64, String)> = numbers.into_iter().zip(ids).collect();
            keyed.sort_unstable();
            keyed.into_iter().map(|(_, id)| id).collect()
        }
        None => {
            ids.sort_unstable();
            ids
        }
    }
}

/// Columns of plain-integer ids: a table indexed by `id - min` when the ids are dense enough,
/// else a hash map.
enum NumberColumns {
    Dense { min: i64, columns: Vec<i64> },
    Sparse(IdMap<i64, i64>),
}

/// The column of each id of one vocabulary.
struct Columns<'a> {
    numbers: NumberColumns,
    texts: IdMap<&'a str, i64>,
}

impl<'a> Columns<'a> {
    /// Ids `ids` in columns `first..first + ids.len()`.
    fn new(ids: &'a [String], first: usize) -> Self {
        let mut numbers = Vec::new();
        let mut texts = IdMap::default();
        for (j, id) in ids.iter().enumerate() {
            let column = (first + j) as i64;
            match canonical_int(id) {
                Some(number) => numbers.push((number, column)),
                None => {
                    texts.insert(id.as_str(), column);
                }
            }
        }
        let (min, max) = numbers
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &(n, _)| (lo.min(n), hi.max(n)));
        let span = (max as i128 - min as i128 + 1).max(0) as u128;
        let numbers = if span <= (4 * numbers.len() + 1024) as u128 {
            let mut columns = vec![-1; span as usize];
            for (number, column) in numbers {
                columns[(number - min) as usize] = column;
            }
            NumberColumns::Dense { min, columns }
        } else {
            NumberColumns::Sparse(numbers.into_iter().collect())
        };
        Columns { numbers, texts }
    }

    #[inline]
    fn get(&self, id: &str) -> Option<i64> {
        match (canonical_int(id), &self.numbers) {
            (Some(n), NumberColumns::Dense { min, columns }) => {
                let at = usize::try_from(n.checked_sub(*min)?).ok()?;
                columns.get(at).copied().filter(|&c| c >= 0)
            }
            (Some(n), NumberColumns::Sparse(map)) => map.get(&n).copied(),
            (None, _) => self.texts.get(id).copied(),
        }
    }
}

/// Column of each user and item id.
struct OneHot<'a> {
    users: Columns<'a>,
    items: Columns<'a>,
    n_cols: u64,
}

impl<'a> OneHot<'a> {
    fn new(users: &'a [String], items: &'a [String]) -> Self {
        OneHot {
            users: Columns::new(users, 0),
            items: Columns::new(items, users.len()),
            n_cols: (users.len() + items.len()) as u64,
        }
    }

    #[inline]
    fn column(ids: &Columns<'_>, id: &str, what: &str, line: u64) -> Result<i64> {
        ids.get(id).ok_or_else(|| {
            parse_error(
                line,
                format!(
                    "{what} id {} was not there in the first pass (did the file change?)",
                    shown(id)
                ),
            )
        })
    }
}

/// Pass 2 over one piece: its one-hot rows, encoded.
fn encode_piece(piece: &Piece<'_>, dialect: &Dialect, columns: &OneHot<'_>) -> Result<(u64, Vec<u8>)> {
    let mut rows = RowBlock::new();
    for_each_rating(piece, dialect, |number, user, item, rating| {
        rows.indices.push(OneHot::column(&columns.users, user, "user", number)?);
        rows.indices.push(OneHot::column(&columns.items, item, "item", number)?);
        rows.values.extend([1.0, 1.0]);
        rows.end_row(rating);
        Ok(())
    })?;
    let bytes = rows.encode(columns.n_cols)?;
    Ok((rows.n_rows() as u64, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::Indices;
    use crate::recordio::{decode_records, split_frames, FeatureValues};
    use crate::text::lines::BLOCK_BYTES;

    fn convert_in(text: &str, delimiter: Option<&str>, block_bytes: usize) -> Result<(RatingsSummary, Vec<u8>)> {
        let mut out = Vec::new();
        let summary = write_in_blocks(|| Ok(text.as_bytes()), &mut out, delimiter, &Unmonitored, block_bytes)?;
        Ok((summary, out))
    }

    fn convert(text: &str, delimiter: Option<&str>) -> Result<(RatingsSummary, Vec<u8>)> {
        convert_in(text, delimiter, BLOCK_BYTES)
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
    fn converts_triples_with_a_header_to_one_hot_rows() {
        let text = "userId,movieId,rating,timestamp\n10,b,4.5,99\n2,a,3,98\n\n10,a,1,97\n";
        let (summary, bytes) = convert(text, None).unwrap();
        assert_eq!(summary.n_rows, 3);
        assert_eq!(summary.users, strings(&["2", "10"]), "numeric order");
        assert_eq!(summary.items, strings(&["a", "b"]), "text order");
        let (n_cols, rows, labels) = decode(&bytes);
        assert_eq!(n_cols, 4);
        assert_eq!(rows, [vec![1, 3], vec![0, 2], vec![1, 2]]);
        assert_eq!(labels, [4.5, 3.0, 1.0]);
        let (_, small) = convert_in(text, None, 5).unwrap();
        assert_eq!(small, bytes, "block size changes nothing");
    }

    #[test]
    fn detects_each_delimiter() {
        for (text, users) in [
            ("1::5::3::978300760\n2::5::4::978300761\n", ["1", "2"]),
            ("1\t5\t3\t881250949\n2\t5\t4\t881250950\n", ["1", "2"]),
            ("u1 , i5 , 3\nu2,i5,4\n", ["u1", "u2"]),
        ] {
            let (summary, bytes) = convert(text, None).unwrap();
            assert_eq!(summary.users, strings(&users), "{text:?}");
            assert_eq!(summary.items.len(), 1);
            assert_eq!(decode(&bytes).2, [3.0, 4.0]);
        }
        // A given delimiter wins over detection; a comma is then part of the id.
        let (summary, _) = convert("a,b;c;5\n", Some(";")).unwrap();
        assert_eq!((summary.users, summary.items), (strings(&["a,b"]), strings(&["c"])));
    }

    #[test]
    fn detects_a_header_only_on_the_first_line() {
        let (summary, _) = convert("\n\nuser\titem\trating:float\n1\t1\t5\n", None).unwrap();
        assert_eq!(summary.n_rows, 1);
        let (summary, _) = convert("1,1,5\n2,2,4\n", None).unwrap();
        assert_eq!(summary.n_rows, 2);
        let (summary, bytes) = convert("user,item,rating\n", None).unwrap();
        assert_eq!((summary.n_rows, bytes.len()), (0, 0));
        let (summary, _) = convert("", None).unwrap();
        assert_eq!(
            summary,
            RatingsSummary {
                n_rows: 0,
                users: vec![],
                items: vec![]
            }
        );
    }

    #[test]
    fn orders_integer_ids_numerically_with_ties_by_text() {
        let ids = ["10", "-3", "07", "7", "2"].map(String::from).to_vec();
        assert_eq!(ordered(ids), strings(&["-3", "2", "07", "7", "10"]));
        let ids = ["10", "9", "x"].map(String::from).to_vec();
        assert_eq!(ordered(ids), strings(&["10", "9", "x"]));
    }

    #[test]
    fn keeps_plain_integers_as_numbers_and_the_rest_as_text() {
        for (id, want) in [("0", Some(0)), ("-12", Some(-12)), ("345", Some(345))] {
            assert_eq!(canonical_int(id), want, "{id}");
        }
        for id in ["", "-", "-0", "07", "+3", "1.5", "x1", "1234567890123456789"] {
            assert_eq!(canonical_int(id), None, "{id}");
        }
        let mut ids = Ids::<String>::default();
        let mut piece = Ids::default();
        for id in ["7", "07", "b", "-1", "7"] {
            piece.insert(id);
        }
        ids.merge(piece);
        assert_eq!(ids.ordered(), strings(&["-1", "07", "7", "b"]));
        let vocabulary = strings(&["-1", "07", "7", "b", "100"]);
        let columns = Columns::new(&vocabulary, 10);
        assert!(matches!(columns.numbers, NumberColumns::Dense { .. }));
        let found: Vec<_> = ["-1", "07", "7", "b", "100", "8", "+7", "c"]
            .map(|id| columns.get(id))
            .to_vec();
        assert_eq!(
            found,
            [Some(10), Some(11), Some(12), Some(13), Some(14), None, None, None]
        );
        let sparse = strings(&["1", "1000000000000"]);
        let columns = Columns::new(&sparse, 0);
        assert!(matches!(columns.numbers, NumberColumns::Sparse(_)));
        assert_eq!((columns.get("1000000000000"), columns.get("2")), (Some(1), None));
    }

    #[test]
    fn reports_each_error_with_its_line() {
        let cases: [(&str, Option<&str>, u64, &str); 6] = [
            ("1 2 3\n", None, 1, "cannot detect the delimiter"),
            ("1,2,3\n1,2\n", None, 2, "expected user,item,rating, got \"1,2\""),
            ("1\t2\t3\n1\t2\n", None, 2, "expected user\\titem\\trating"),
            ("1,2,3\n1,2,good\n", None, 2, "rating \"good\" is not a number"),
            ("1,2,3\n\n,2,3\n", None, 3, "empty user id"),
            ("1;;3\n", Some(";"), 1, "empty item id"),
        ];
        for (text, delimiter, line, message) in cases {
            match convert(text, delimiter) {
                Err(Error::Parse {
                    line: got,
                    message: text,
                }) => {
                    assert_eq!(got, line, "{text}");
                    assert!(text.contains(message), "{text:?} lacks {message:?}");
                }
                other => panic!("{text:?}: expected a parse error, got {other:?}"),
            }
        }
        let err = convert("1,2,3\n", Some("")).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }

    #[test]
    fn writes_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("r.csv"), dir.path().join("r.recordio"));
        std::fs::write(&source, "1,1,5\n2,1,3\n").unwrap();
        let summary = convert_ratings_csv(&source, &target, None, &Unmonitored).unwrap();
        assert_eq!(summary.n_rows, 2);
        assert_eq!(decode(&std::fs::read(&target).unwrap()).1, [vec![0, 2], vec![1, 2]]);
        std::fs::write(&source, "1,1,5\n2,1,x\n").unwrap();
        std::fs::remove_file(&target).unwrap();
        assert!(convert_ratings_csv(&source, &target, None, &Unmonitored).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the source remains"
        );
    }
}
