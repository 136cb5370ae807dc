//! libSVM / libFM text into RecordIO, streaming, in two passes.
//!
//! Each line is `label index:value index:value ...`:
//!
//! * everything after `#` is a comment; blank and comment-only lines are skipped (they still count
//!   for line numbers);
//! * tokens are separated by spaces or tabs; `qid:N` tokens (ranking files) are skipped;
//! * indices are 1-based in libSVM and 0-based in libFM. With `zero_based: None` the base is
//!   guessed as scikit-learn's `load_svmlight_file` does: 0-based iff some index is 0;
//! * a row's indices need not be sorted (rows are sorted on output) but must be unique;
//! * labels and values are parsed as `f32` (`nan` and `inf` are accepted, as Rust parses them);
//!   explicit zeros are kept.
//!
//! Pass 1 reads the indices only, to find the feature dimension and the base (it is skipped when
//! both are given); pass 2 parses every line and encodes it. Both work on one bounded block at a
//! time, in parallel pieces.

use std::io::{Read, Write};
use std::path::Path;

use super::lines::{block_bytes, for_each_block, parse_error, parse_f32, parse_pieces, shown, Piece, RowBlock};
use crate::error::Result;
use crate::parallel::Monitor;
use crate::recordio::{open_input, AtomicFile};

/// The largest feature index accepted (columns are stored as `i64`).
const MAX_INDEX: u64 = i64::MAX as u64 - 1;

/// How to read a libSVM/libFM file.
#[derive(Clone, Copy, Debug, Default)]
pub struct LibsvmOptions {
    /// Feature dimension; `None` infers it as the largest column + 1. When given it must exceed
    /// every column.
    pub n_features: Option<u64>,
    /// `Some(true)`: indices are 0-based (libFM); `Some(false)`: 1-based (libSVM, index 0 is an
    /// error); `None`: 0-based iff some index is 0.
    pub zero_based: Option<bool>,
}

/// What a conversion wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LibsvmSummary {
    /// Records written (one per non-blank line).
    pub n_rows: u64,
    /// Feature dimension of every record.
    pub n_cols: u64,
    /// Whether the indices were read as 0-based.
    pub zero_based: bool,
}

/// Converts the libSVM/libFM file `source` into a RecordIO file at `target`, which appears only
/// when the whole file converted. `monitor` gets the bytes read, over both passes (so twice the
/// file size at the end), or over the only pass when `n_features` and `zero_based` are both
/// given (then nothing is left for a first pass to find).
pub fn convert_libsvm(
    source: &Path,
    target: &Path,
    options: &LibsvmOptions,
    monitor: &dyn Monitor,
) -> Result<LibsvmSummary> {
    AtomicFile::write_with(target, |out| write_libsvm(|| open_input(source), out, options, monitor))
}

/// Converts the libSVM/libFM text that `open` yields (called once per pass) into RecordIO records
/// written to `out`.
pub fn write_libsvm<R: Read>(
    open: impl FnMut() -> Result<R>,
    out: &mut dyn Write,
    options: &LibsvmOptions,
    monitor: &dyn Monitor,
) -> Result<LibsvmSummary> {
    write_libsvm_in_blocks(open, out, options, monitor, block_bytes())
}

/// [`write_libsvm`] reading blocks of `block_bytes` (small in tests, to cross block ends).
fn write_libsvm_in_blocks<R: Read>(
    mut open: impl FnMut() -> Result<R>,
    out: &mut dyn Write,
    options: &LibsvmOptions,
    monitor: &dyn Monitor,
    block_bytes: usize,
) -> Result<LibsvmSummary> {
    // With the dimension and the base given, there is nothing for a first pass to find.
    let (n_cols, zero_based, size) = match (options.n_features, options.zero_based) {
        (Some(n_features), Some(zero_based)) => (n_features, zero_based, 0),
        _ => {
            let mut scan = Scan::default();
            let size = for_each_block(open()?, block_bytes, 0, monitor, |pieces| {
                for piece in parse_pieces(pieces, |p| scan_piece(p, options.zero_based))? {
                    scan.merge(piece);
                }
                Ok(())
            })?;
            let zero_based = options.zero_based.unwrap_or(scan.first_zero.is_some());
            // One-based files have no index 0 (refused in pass 1, or the base would be zero).
            let needed = scan.max.map_or(0, |(index, _)| index + 1 - u64::from(!zero_based));
            let n_cols = match (options.n_features, scan.max) {
                (Some(n), Some((index, line))) if n < needed => {
                    return Err(parse_error(
                        line,
                        format!("feature index {index} needs {needed} features but n_features is {n}"),
                    ))
                }
                (Some(n), _) => n,
                (None, _) => needed,
            };
            (n_cols, zero_based, size)
        }
    };
    let base = u64::from(!zero_based);

    let layout = Columns { base, n_cols };
    let mut n_rows = 0u64;
    for_each_block(open()?, block_bytes, size, monitor, |pieces| {
        for (rows, bytes) in parse_pieces(pieces, |p| encode_piece(p, &layout))? {
            n_rows += rows;
            out.write_all(&bytes)?;
        }
        Ok(())
    })?;
    Ok(LibsvmSummary {
        n_rows,
        n_cols,
        zero_based,
    })
}

/// What pass 1 learns.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    /// The largest index and the first line holding it.
    max: Option<(u64, u64)>,
    /// The first line with index 0.
    first_zero: Option<u64>,
}

impl Scan {
    /// Folds in the scan of the piece that follows.
    fn merge(&mut self, next: Scan) {
        if let Some((index, line)) = next.max {
            if self.max.is_none_or(|(max, _)| index > max) {
                self.max = Some((index, line));
            }
        }
        self.first_zero = self.first_zero.or(next.first_zero);
    }
}

/// Walks the text of a piece token by token, one line at a time, in a single pass over its bytes.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

/// Bytes that separate tokens within a line (ASCII whitespace but the line feed).
#[inline]
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0C')
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    /// Whether every line has been read.
    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    /// The next token of the current line; `None` at the line's end (a comment starts with
    /// `#`), after which the cursor stands at the start of the next line.
    #[inline]
    fn token(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'\n' => {
                    self.pos += 1;
                    return None;
                }
                b'#' => {
                    self.pos = bytes[self.pos..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |p| self.pos + p + 1);
                    return None;
                }
                b if is_blank(b) => self.pos += 1,
                _ => break,
            }
        }
        let start = self.pos;
        while let Some(&b) = bytes.get(self.pos) {
            if b == b'\n' || b == b'#' || is_blank(b) {
                break;
            }
            self.pos += 1;
        }
        // Cut at ASCII bytes, so always at character boundaries.
        self.text.get(start..self.pos).filter(|t| !t.is_empty())
    }
}

/// The index and value text of an `index:value` token; `None` for a `qid:` token.
#[inline]
fn feature(token: &str, line: u64) -> Result<Option<(u64, &str)>> {
    let bytes = token.as_bytes();
    // The index's digits are read while looking for the colon, in one pass.
    let (mut parsed, mut digits) = (0u64, true);
    let mut colon = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            colon = Some(i);
            break;
        }
        let digit = b.wrapping_sub(b'0');
        digits &= digit <= 9;
        parsed = parsed.wrapping_mul(10).wrapping_add(u64::from(digit));
    }
    let Some(colon) = colon else {
        return Err(parse_error(line, format!("expected index:value, got {}", shown(token))));
    };
    if &bytes[..colon] == b"qid" {
        return Ok(None);
    }
    if !digits || colon == 0 {
        return Err(parse_error(
            line,
            format!("feature index in {} is not a non-negative integer", shown(token)),
        ));
    }
    // Up to 19 digits cannot wrap a u64.
    if colon > 19 || parsed > MAX_INDEX {
        return Err(parse_error(
            line,
            format!("feature index in {} is too large", shown(token)),
        ));
    }
    Ok(Some((parsed, token.get(colon + 1..).unwrap_or_default())))
}

/// Pass 1 over one piece: the largest index and where index 0 first appears.
fn scan_piece(piece: &Piece<'_>, zero_based: Option<bool>) -> Result<Scan> {
    let mut scan = Scan::default();
    let mut cursor = Cursor::new(piece.text()?);
    let mut number = piece.first_line;
    while !cursor.at_end() {
        let line = number;
        number += 1;
        if cursor.token().is_none() {
            continue;
        }
        while let Some(token) = cursor.token() {
            let Some((index, _)) = feature(token, line)? else {
                continue;
            };
            if scan.max.is_none_or(|(max, _)| index > max) {
                scan.max = Some((index, line));
            }
            if index == 0 && scan.first_zero.is_none() {
                if zero_based == Some(false) {
                    return Err(parse_error(
                        line,
                        format!("feature index 0 in {} but indices are 1-based", shown(token)),
                    ));
                }
                scan.first_zero = Some(line);
            }
        }
    }
    Ok(scan)
}

/// How file indices map to columns.
struct Columns {
    /// Subtracted from a file index to give its column (1 for libSVM, 0 for libFM).
    base: u64,
    /// Feature dimension.
    n_cols: u64,
}

/// Pass 2 over one piece: its rows, parsed and encoded.
fn encode_piece(piece: &Piece<'_>, columns: &Columns) -> Result<(u64, Vec<u8>)> {
    let mut rows = RowBlock::new();
    let mut cursor = Cursor::new(piece.text()?);
    let mut next = piece.first_line;
    while !cursor.at_end() {
        let number = next;
        next += 1;
        let Some(label) = cursor.token() else {
            continue;
        };
        let label = parse_f32(label, "label", number)?;
        let start = rows.indices.len();
        while let Some(token) = cursor.token() {
            let Some((index, value)) = feature(token, number)? else {
                continue;
            };
            let column = match index.checked_sub(columns.base) {
                Some(column) if column < columns.n_cols => column,
                Some(column) => {
                    let needed = column + 1;
                    return Err(parse_error(
                        number,
                        format!(
                            "feature index {index} needs {needed} features but n_features is {}",
                            columns.n_cols
                        ),
                    ));
                }
                None => {
                    return Err(parse_error(
                        number,
                        format!("feature index 0 in {} but indices are 1-based", shown(token)),
                    ))
                }
            };
            rows.values.push(parse_f32(value, "value", number)?);
            rows.indices.push(column as i64);
        }
        sort_row(
            &mut rows.indices[start..],
            &mut rows.values[start..],
            number,
            columns.base,
        )?;
        rows.end_row(label);
    }
    let bytes = rows.encode(columns.n_cols)?;
    Ok((rows.n_rows() as u64, bytes))
}

/// Sorts one row's entries by column; a repeated column is an error.
fn sort_row(columns: &mut [i64], values: &mut [f32], line: u64, base: u64) -> Result<()> {
    if columns.windows(2).all(|w| w[0] < w[1]) {
        return Ok(());
    }
    let mut entries: Vec<(i64, f32)> = columns.iter().copied().zip(values.iter().copied()).collect();
    entries.sort_by_key(|&(column, _)| column);
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        let index = w[0].0 as u64 + base;
        return Err(parse_error(line, format!("feature index {index} appears twice")));
    }
    for ((column, value), (c, v)) in columns.iter_mut().zip(values.iter_mut()).zip(entries) {
        (*column, *value) = (c, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::parallel::Unmonitored;
    use crate::recordio::decode::Indices;
    use crate::recordio::{decode_records, split_frames, FeatureValues};
    use crate::text::lines::BLOCK_BYTES;

    /// Expected rows: `(label, [(column, value)])`.
    type Expected<'a> = &'a [(f32, &'a [(i64, f32)])];

    /// Converts `text` with blocks of `block_bytes`, returning the summary and the bytes.
    fn convert_in(text: &[u8], options: LibsvmOptions, block_bytes: usize) -> Result<(LibsvmSummary, Vec<u8>)> {
        let mut out = Vec::new();
        let summary = write_libsvm_in_blocks(|| Ok(text), &mut out, &options, &Unmonitored, block_bytes)?;
        Ok((summary, out))
    }

    fn convert(text: &str, options: LibsvmOptions) -> Result<(LibsvmSummary, Vec<u8>)> {
        convert_in(text.as_bytes(), options, BLOCK_BYTES)
    }

    /// Decodes `bytes` and checks them against `expected` rows of `n_cols` columns.
    fn check_decodes(bytes: &[u8], n_cols: u64, expected: Expected<'_>) {
        let decoded = decode_records(&split_frames(bytes, 0).unwrap(), &Unmonitored).unwrap();
        assert_eq!(decoded.n_rows, expected.len());
        if !expected.is_empty() {
            assert_eq!(decoded.n_cols, n_cols);
        }
        let (indptr, indices): (Vec<i64>, Vec<i64>) = match decoded.indices {
            Indices::I32 { indptr, indices } => (
                indptr.into_iter().map(i64::from).collect(),
                indices.into_iter().map(i64::from).collect(),
            ),
            Indices::I64 { indptr, indices } => (indptr, indices),
        };
        let mut want = RowBlock::new();
        for (label, entries) in expected {
            for &(column, value) in *entries {
                want.indices.push(column);
                want.values.push(value);
            }
            want.end_row(*label);
        }
        assert_eq!(indptr, want.indptr);
        assert_eq!(indices, want.indices);
        assert_eq!(decoded.values, FeatureValues::F32(want.values));
        assert_eq!(decoded.labels, Some(FeatureValues::F32(want.labels)));
    }

    fn parse_err(text: &str, options: LibsvmOptions) -> (u64, String) {
        match convert(text, options) {
            Err(Error::Parse { line, message }) => (line, message),
            other => panic!("expected a parse error, got {:?}", other.map(|(s, _)| s)),
        }
    }

    const ONE_BASED: &str = "1 1:0.5 3:2\n\
                             # a comment line\n\
                             \n\
                             -1 2:1e-3   4:-7 # trailing comment\r\n\
                             0\n\
                             +1\tqid:3\t1:1\n";

    #[test]
    fn converts_one_based_libsvm() {
        let (summary, bytes) = convert(ONE_BASED, LibsvmOptions::default()).unwrap();
        assert_eq!(
            summary,
            LibsvmSummary {
                n_rows: 4,
                n_cols: 4,
                zero_based: false
            }
        );
        let expected: Expected = &[
            (1.0, &[(0, 0.5), (2, 2.0)]),
            (-1.0, &[(1, 1e-3), (3, -7.0)]),
            (0.0, &[]),
            (1.0, &[(0, 1.0)]),
        ];
        check_decodes(&bytes, 4, expected);
        // Tiny blocks and pieces give the same bytes.
        let (_, small) = convert_in(ONE_BASED.as_bytes(), LibsvmOptions::default(), 7).unwrap();
        assert_eq!(small, bytes);
    }

    #[test]
    fn guesses_zero_based_when_an_index_is_zero() {
        let text = "3 0:1 5:2\n4 2:0\n";
        let (summary, bytes) = convert(text, LibsvmOptions::default()).unwrap();
        assert_eq!((summary.n_cols, summary.zero_based), (6, true));
        let expected: Expected = &[(3.0, &[(0, 1.0), (5, 2.0)]), (4.0, &[(2, 0.0)])];
        check_decodes(&bytes, 6, expected);
    }

    #[test]
    fn honours_an_explicit_base_and_n_features() {
        let text = "1 1:1 3:1\n";
        let zero = LibsvmOptions {
            zero_based: Some(true),
            n_features: Some(10),
        };
        let (summary, bytes) = convert(text, zero).unwrap();
        assert_eq!((summary.n_cols, summary.zero_based), (10, true));
        check_decodes(&bytes, 10, &[(1.0, &[(1, 1.0), (3, 1.0)])]);
        let one = LibsvmOptions {
            zero_based: Some(false),
            n_features: Some(3),
        };
        let (summary, bytes) = convert(text, one).unwrap();
        assert_eq!((summary.n_cols, summary.zero_based), (3, false));
        check_decodes(&bytes, 3, &[(1.0, &[(0, 1.0), (2, 1.0)])]);
        // Both given: a single pass.
        let mut opened = 0;
        let open = || {
            opened += 1;
            Ok(text.as_bytes())
        };
        write_libsvm(open, &mut Vec::new(), &one, &Unmonitored).unwrap();
        assert_eq!(opened, 1);
    }

    #[test]
    fn sorts_rows_and_accepts_nan() {
        let (_, bytes) = convert("1 5:1 2:2 9:3\nnan 1:inf\n", LibsvmOptions::default()).unwrap();
        let decoded = decode_records(&split_frames(&bytes, 0).unwrap(), &Unmonitored).unwrap();
        match decoded.indices {
            Indices::I32 { indices, .. } => assert_eq!(indices, [1, 4, 8, 0]),
            Indices::I64 { indices, .. } => assert_eq!(indices, [1, 4, 8, 0]),
        }
        assert_eq!(decoded.values, FeatureValues::F32(vec![2.0, 1.0, 3.0, f32::INFINITY]));
        let Some(FeatureValues::F32(labels)) = decoded.labels else {
            panic!("no float32 labels")
        };
        assert!(labels[0] == 1.0 && labels[1].is_nan());
    }

    #[test]
    fn comments_may_touch_tokens_and_lines_may_lack_an_end() {
        let (summary, bytes) =
            convert("2 1:3#note\r\n \t\r\n#only a comment\n4\t2:5", LibsvmOptions::default()).unwrap();
        assert_eq!((summary.n_rows, summary.n_cols), (2, 2));
        check_decodes(&bytes, 2, &[(2.0, &[(0, 3.0)]), (4.0, &[(1, 5.0)])]);
    }

    #[test]
    fn empty_and_featureless_inputs() {
        let (summary, bytes) = convert("", LibsvmOptions::default()).unwrap();
        assert_eq!((summary.n_rows, summary.n_cols), (0, 0));
        assert!(bytes.is_empty());
        let (summary, bytes) = convert("# nothing\n\n1\n", LibsvmOptions::default()).unwrap();
        assert_eq!((summary.n_rows, summary.n_cols), (1, 0));
        check_decodes(&bytes, 0, &[(1.0, &[])]);
    }

    #[test]
    fn reports_each_error_with_its_line_and_token() {
        let default = LibsvmOptions::default();
        let cases: [(&str, LibsvmOptions, u64, &str); 9] = [
            ("1 1:1\n1 2\n", default, 2, "expected index:value, got \"2\""),
            (
                "1 1:1\n\n1 x:1\n",
                default,
                3,
                "feature index in \"x:1\" is not a non-negative integer",
            ),
            ("1 -1:1\n", default, 1, "\"-1:1\" is not a non-negative integer"),
            ("1 99999999999999999999:1\n", default, 1, "is too large"),
            ("1 1:1\nyes 1:1\n", default, 2, "label \"yes\" is not a number"),
            ("1 1:1 2:abc\n", default, 1, "value \"abc\" is not a number"),
            ("1 1:1 3:1 1:2\n", default, 1, "feature index 1 appears twice"),
            (
                "1 1:1\n1 0:1\n",
                LibsvmOptions {
                    zero_based: Some(false),
                    n_features: None,
                },
                2,
                "feature index 0 in \"0:1\" but indices are 1-based",
            ),
            (
                "1 1:1\n1 7:1\n",
                LibsvmOptions {
                    zero_based: None,
                    n_features: Some(5),
                },
                2,
                "feature index 7 needs 7 features but n_features is 5",
            ),
        ];
        let given = |zero_based| LibsvmOptions {
            zero_based: Some(zero_based),
            n_features: Some(5),
        };
        let single_pass = [
            (
                "1 1:1\n1 0:1\n",
                given(false),
                2,
                "feature index 0 in \"0:1\" but indices are 1-based",
            ),
            (
                "1 1:1\n1 7:1\n",
                given(false),
                2,
                "feature index 7 needs 7 features but n_features is 5",
            ),
            (
                "1 1:1\n1 5:1\n",
                given(true),
                2,
                "feature index 5 needs 6 features but n_features is 5",
            ),
        ];
        for (text, options, line, message) in cases.into_iter().chain(single_pass) {
            let (got_line, got) = parse_err(text, options);
            assert_eq!(got_line, line, "{text:?}: {got}");
            assert!(got.contains(message), "{text:?}: {got:?} lacks {message:?}");
        }
        let err = convert_in(b"1 1:1\n1 \xC3(\n", default, BLOCK_BYTES).unwrap_err();
        assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
    }

    #[test]
    fn the_earliest_error_wins_whatever_the_blocks() {
        let text = "1 1:1\n".repeat(50) + "1 1:x\n" + &"1 1:1\n".repeat(50) + "1 2:y\n";
        for block in [8, 64, 1 << 20] {
            let err = convert_in(text.as_bytes(), LibsvmOptions::default(), block).unwrap_err();
            assert!(matches!(err, Error::Parse { line: 51, .. }), "{err}");
        }
    }

    #[test]
    fn writes_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("in.libsvm"), dir.path().join("out.recordio"));
        std::fs::write(&source, ONE_BASED).unwrap();
        let summary = convert_libsvm(&source, &target, &LibsvmOptions::default(), &Unmonitored).unwrap();
        assert_eq!(summary.n_rows, 4);
        let (_, bytes) = convert(ONE_BASED, LibsvmOptions::default()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), bytes);

        std::fs::write(&source, "1 1:1\n1 1:oops\n").unwrap();
        std::fs::remove_file(&target).unwrap();
        let err = convert_libsvm(&source, &target, &LibsvmOptions::default(), &Unmonitored).unwrap_err();
        assert!(matches!(err, Error::Parse { line: 2, .. }));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the source remains"
        );
    }
}
