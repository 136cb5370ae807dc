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
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use super::lines::{for_each_block, parse_error, parse_f32, parse_pieces, shown, Piece, RowBlock, BLOCK_BYTES};
use crate::error::{Error, Result};
use crate::parallel::Monitor;
use crate::recordio::AtomicFile;

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
    let mut out = AtomicFile::create(target)?;
    let summary = write_ratings_csv(|| File::open(source), &mut out, delimiter, monitor)?;
    out.commit()?;
    Ok(summary)
}

/// Converts the rating triples that `open` yields (called once per pass) into RecordIO records
/// written to `out`.
pub fn write_ratings_csv<R: Read>(
    open: impl FnMut() -> io::Result<R>,
    out: &mut dyn Write,
    delimiter: Option<&str>,
    monitor: &dyn Monitor,
) -> Result<RatingsSummary> {
    write_in_blocks(open, out, delimiter, monitor, BLOCK_BYTES)
}

/// How the lines are laid out, fixed by the first non-blank line.
#[derive(Debug)]
struct Dialect {
    delimiter: String,
    /// The header's line number, when there is one.
    header: Option<u64>,
}

fn write_in_blocks<R: Read>(
    mut open: impl FnMut() -> io::Result<R>,
    out: &mut dyn Write,
    delimiter: Option<&str>,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<RatingsSummary> {
    if delimiter == Some("") {
        return Err(Error::invalid("the delimiter is empty"));
    }
    let mut dialect: Option<Dialect> = None;
    let (mut users, mut items) = (HashSet::<String>::new(), HashSet::<String>::new());
    let size = for_each_block(open()?, block_bytes, 0, monitor, |pieces| {
        let dialect = match &mut dialect {
            Some(dialect) => dialect,
            slot => match first_line(pieces)? {
                Some((number, text)) => slot.insert(detect(number, text, delimiter)?),
                None => return Ok(()),
            },
        };
        for (piece_users, piece_items) in parse_pieces(pieces, |p| collect_piece(p, dialect))? {
            for (ids, found) in [(&mut users, piece_users), (&mut items, piece_items)] {
                for id in found {
                    if !ids.contains(id) {
                        ids.insert(id.to_owned());
                    }
                }
            }
        }
        Ok(())
    })?;
    let (users, items) = (ordered(users), ordered(items));
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

/// The user, item and rating fields of a line, trimmed.
#[inline]
fn fields<'a>(text: &'a str, delimiter: &str, line: u64) -> Result<(&'a str, &'a str, &'a str)> {
    let mut split = text.split(delimiter).map(str::trim_ascii);
    match (split.next(), split.next(), split.next()) {
        (Some(user), Some(item), Some(rating)) => {
            for (what, id) in [("user", user), ("item", item)] {
                if id.is_empty() {
                    return Err(parse_error(line, format!("empty {what} id in {}", shown(text))));
                }
            }
            Ok((user, item, rating))
        }
        _ => Err(parse_error(
            line,
            format!("expected user{delimiter}item{delimiter}rating, got {}", shown(text)).replace('\t', "\\t"),
        )),
    }
}

/// The data lines of a piece as `(line, user, item, rating)`, header skipped, ratings parsed.
fn ratings<'a>(
    piece: &Piece<'a>,
    dialect: &'a Dialect,
) -> impl Iterator<Item = Result<(u64, &'a str, &'a str, f32)>> + 'a {
    piece.text_lines().filter_map(move |line| {
        let parsed = line.and_then(|(number, text)| {
            if Some(number) == dialect.header {
                return Ok(None);
            }
            let (user, item, rating) = fields(text, &dialect.delimiter, number)?;
            Ok(Some((number, user, item, parse_f32(rating, "rating", number)?)))
        });
        parsed.transpose()
    })
}

/// Pass 1 over one piece: the distinct user and item ids in it.
fn collect_piece<'a>(piece: &Piece<'a>, dialect: &'a Dialect) -> Result<(HashSet<&'a str>, HashSet<&'a str>)> {
    let (mut users, mut items) = (HashSet::new(), HashSet::new());
    for rating in ratings(piece, dialect) {
        let (_, user, item, _) = rating?;
        users.insert(user);
        items.insert(item);
    }
    Ok((users, items))
}

/// Ids in numeric order when all are integers, else in text order.
fn ordered(ids: HashSet<String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().collect();
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

/// Column of each user and item id.
struct OneHot<'a> {
    users: HashMap<&'a str, i64>,
    items: HashMap<&'a str, i64>,
    n_cols: u64,
}

impl<'a> OneHot<'a> {
    fn new(users: &'a [String], items: &'a [String]) -> Self {
        let index = |ids: &'a [String], first: usize| -> HashMap<&'a str, i64> {
            ids.iter()
                .enumerate()
                .map(|(j, id)| (id.as_str(), (first + j) as i64))
                .collect()
        };
        OneHot {
            users: index(users, 0),
            items: index(items, users.len()),
            n_cols: (users.len() + items.len()) as u64,
        }
    }

    fn column(ids: &HashMap<&str, i64>, id: &str, what: &str, line: u64) -> Result<i64> {
        ids.get(id).copied().ok_or_else(|| {
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
    for rating in ratings(piece, dialect) {
        let (number, user, item, rating) = rating?;
        rows.indices.push(OneHot::column(&columns.users, user, "user", number)?);
        rows.indices.push(OneHot::column(&columns.items, item, "item", number)?);
        rows.values.extend([1.0, 1.0]);
        rows.end_row(rating);
    }
    let bytes = rows.encode(columns.n_cols)?;
    Ok((rows.n_rows() as u64, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::Indices;
    use crate::recordio::{decode_records, split_frames, FeatureValues};

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
        let ids = HashSet::from(["10", "-3", "07", "7", "2"].map(String::from));
        assert_eq!(ordered(ids), strings(&["-3", "2", "07", "7", "10"]));
        let ids = HashSet::from(["10", "9", "x"].map(String::from));
        assert_eq!(ordered(ids), strings(&["10", "9", "x"]));
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
