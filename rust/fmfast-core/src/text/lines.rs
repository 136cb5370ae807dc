//! Text read in bounded blocks of whole lines, each block cut into numbered pieces for parallel
//! parsing, and the helpers every text parser shares (line splitting, error messages, encoding).

use std::io::Read;

use rayon::prelude::*;

use crate::csr::{CsrView, Values};
use crate::error::{Error, Result};
use crate::parallel::{Monitor, Unmonitored};
use crate::recordio::encode::Layout;
use crate::recordio::{encode_rows, EncodeOptions, Rows};

/// Bytes read per block at most: with the block's encoded output, what a conversion holds at once.
pub const BLOCK_BYTES: usize = 32 << 20;
/// Bytes of lines one parallel task parses.
pub const PIECE_BYTES: usize = 256 << 10;
/// Pieces per thread of the pool in a block: enough to balance the threads' work.
const PIECES_PER_THREAD: usize = 8;

/// Bytes read per block on the current pool: `PIECES_PER_THREAD` pieces a thread, at most
/// [`BLOCK_BYTES`]. The monitor hears between blocks, so a block must take well under the second
/// within which Ctrl-C stops a conversion: a full-size block took 1.4 s to parse on one thread.
pub fn block_bytes() -> usize {
    (PIECE_BYTES * PIECES_PER_THREAD * rayon::current_num_threads()).min(BLOCK_BYTES)
}

/// The UTF-8 byte-order mark some editors put at the start of a text file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whole lines of a text file, the first of them line `first_line` (1-based).
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    /// The lines, each ending with `\n` except perhaps the file's last one.
    pub bytes: &'a [u8],
    /// Number of the first line.
    pub first_line: u64,
}

impl<'a> Piece<'a> {
    /// `(line number, line)` pairs, without the `\n` or `\r\n` terminator.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &'a [u8])> {
        let bytes = self.bytes.strip_suffix(b"\n").unwrap_or(self.bytes);
        bytes
            .split(|&b| b == b'\n')
            .zip(self.first_line..)
            .map(|(line, number)| (number, line.strip_suffix(b"\r").unwrap_or(line)))
    }

    /// The whole piece as text; an error names the line and column of the first byte that is
    /// not UTF-8.
    pub fn text(&self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes).map_err(|e| {
            let before = &self.bytes[..e.valid_up_to()];
            let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            parse_error(
                self.first_line + newlines(before),
                format!(
                    "not UTF-8 text (invalid byte at column {})",
                    before.len() - line_start + 1
                ),
            )
        })
    }
}

/// A [`Error::Parse`] at `line`.
pub fn parse_error(line: u64, message: impl Into<String>) -> Error {
    Error::Parse {
        line,
        message: message.into(),
    }
}

/// A token quoted for an error message, shortened when long.
pub fn shown(token: &str) -> String {
    const LONGEST: usize = 60;
    match token.char_indices().nth(LONGEST) {
        Some((cut, _)) => format!("{:?}...", &token[..cut]),
        None => format!("{token:?}"),
    }
}

/// Parses a feature value or label as `f32`, naming `what` and the token when it is not a number.
#[inline]
pub fn parse_f32(token: &str, what: &str, line: u64) -> Result<f32> {
    token
        .parse::<f32>()
        .map_err(|_| parse_error(line, format!("{what} {} is not a number", shown(token))))
}

/// Reads `reader` in blocks of about `block_bytes` of whole lines (a longer line makes a longer
/// block) and calls `visit` with each block cut into pieces. After each block, `monitor` gets
/// `done_before` plus the bytes consumed so far. Returns the number of bytes read.
pub fn for_each_block<R: Read>(
    mut reader: R,
    block_bytes: usize,
    done_before: u64,
    monitor: &dyn Monitor,
    mut visit: impl FnMut(&[Piece<'_>]) -> Result<()>,
) -> Result<u64> {
    let block_bytes = block_bytes.max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(block_bytes);
    let mut read = 0u64;
    let mut next_line = 1u64;
    read += (&mut reader).take(BOM.len() as u64).read_to_end(&mut buf)? as u64;
    if buf == BOM {
        buf.clear();
    }
    let mut eof = false;
    loop {
        let mut want = block_bytes;
        let end = loop {
            if !eof && buf.len() < want {
                let missing = (want - buf.len()) as u64;
                read += (&mut reader).take(missing).read_to_end(&mut buf)? as u64;
                eof = buf.len() < want;
            }
            if eof {
                break buf.len();
            }
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(last) => break last + 1,
                // A line longer than the block: read on until it ends.
                None => want = want.saturating_mul(2),
            }
        };
        if end == 0 {
            return Ok(read);
        }
        let pieces = split_pieces(&buf[..end], next_line, PIECE_BYTES);
        visit(&pieces)?;
        next_line = pieces.last().map_or(next_line, |p| p.first_line + newlines(p.bytes));
        buf.drain(..end);
        monitor.progress(done_before + read - buf.len() as u64)?;
    }
}

/// Number of `\n` bytes.
pub fn newlines(bytes: &[u8]) -> u64 {
    // Counting 64 bytes at a time into a `u8` lets the compiler vectorise the loop.
    let mut chunks = bytes.chunks_exact(64);
    let mut count: u64 = (&mut chunks)
        .map(|chunk| u64::from(chunk.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>()))
        .sum();
    count += chunks.remainder().iter().filter(|&&b| b == b'\n').count() as u64;
    count
}

/// Cuts `block` (whole lines, the first numbered `first_line`) into pieces of about
/// `piece_bytes` that end at line ends, numbering each piece's first line.
pub fn split_pieces(block: &[u8], first_line: u64, piece_bytes: usize) -> Vec<Piece<'_>> {
    let mut ranges = Vec::with_capacity(block.len() / piece_bytes.max(1) + 1);
    let mut start = 0;
    while start < block.len() {
        let target = start + piece_bytes.max(1);
        let end = match block.get(target - 1..) {
            Some(rest) => rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(block.len(), |p| target + p),
            None => block.len(),
        };
        ranges.push(start..end);
        start = end;
    }
    let counts: Vec<u64> = ranges.par_iter().map(|r| newlines(&block[r.clone()])).collect();
    let mut line = first_line;
    ranges
        .into_iter()
        .zip(counts)
        .map(|(range, count)| {
            let piece = Piece {
                bytes: &block[range],
                first_line: line,
            };
            line += count;
            piece
        })
        .collect()
}

/// Runs `parse` on every piece in parallel; the results in order, or the error of the earliest
/// piece that failed (so the reported line never depends on the thread count).
pub fn parse_pieces<'a, T: Send>(
    pieces: &[Piece<'a>],
    parse: impl Fn(&Piece<'a>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let outcomes: Vec<Result<T>> = pieces.par_iter().map(&parse).collect();
    outcomes.into_iter().collect()
}

/// Rows parsed from a piece: CSR arrays with `f32` values and one `f32` label per row.
#[derive(Debug, Default)]
pub struct RowBlock {
    /// Row pointers, starting at 0.
    pub indptr: Vec<i64>,
    /// Column of each stored value.
    pub indices: Vec<i64>,
    /// Stored values.
    pub values: Vec<f32>,
    /// One label per row.
    pub labels: Vec<f32>,
}

impl RowBlock {
    /// An empty block.
    pub fn new() -> Self {
        RowBlock {
            indptr: vec![0],
            ..RowBlock::default()
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// Ends the current row, whose entries are those pushed since the previous call.
    pub fn end_row(&mut self, label: f32) {
        self.indptr.push(self.indices.len() as i64);
        self.labels.push(label);
    }

    /// The rows as framed RecordIO records (float32 features and labels), as
    /// [`crate::recordio::encode_rows`] writes them for the same CSR matrix.
    pub fn encode(&self, n_cols: u64) -> Result<Vec<u8>> {
        let csr = CsrView::new(&self.indptr, &self.indices, self.values.len(), n_cols)?;
        let rows = Rows::sparse(Layout::CsrI64(csr), Values::F32(&self.values));
        let mut out = Vec::new();
        encode_rows(
            &rows,
            Some(Values::F32(&self.labels)),
            &EncodeOptions::default(),
            &Unmonitored,
            |chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            },
        )?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Every block's pieces, flattened to `(first_line, text)`, and the progress reports.
    fn blocks(text: &[u8], block_bytes: usize) -> (Vec<Vec<(u64, String)>>, Vec<u64>) {
        struct Record(Mutex<Vec<u64>>);
        impl Monitor for Record {
            fn progress(&self, done: u64) -> Result<()> {
                self.0.lock().unwrap().push(done);
                Ok(())
            }
        }
        let monitor = Record(Mutex::new(Vec::new()));
        let mut seen = Vec::new();
        let read = for_each_block(text, block_bytes, 100, &monitor, |pieces| {
            let lines = pieces
                .iter()
                .flat_map(|p| p.lines())
                .map(|(n, l)| (n, String::from_utf8(l.to_vec()).unwrap()))
                .collect();
            seen.push(lines);
            Ok(())
        })
        .unwrap();
        assert_eq!(read, text.len() as u64);
        (seen, monitor.0.into_inner().unwrap())
    }

    #[test]
    fn cuts_blocks_at_line_ends_and_numbers_lines() {
        let (seen, progress) = blocks(b"ab\ncd\r\n\nef", 4);
        let lines: Vec<_> = seen.concat();
        assert_eq!(
            lines,
            [(1, "ab".into()), (2, "cd".into()), (3, String::new()), (4, "ef".into())]
        );
        assert!(seen.iter().all(|b| !b.is_empty()));
        assert_eq!(progress.last(), Some(&(100 + 10)));
        assert!(progress.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_line_longer_than_the_block_grows_it() {
        let (seen, _) = blocks(b"0123456789\nx\n", 2);
        assert_eq!(seen[0][0], (1, "0123456789".to_string()));
        assert_eq!(seen.concat(), [(1, "0123456789".into()), (2, "x".into())]);
    }

    #[test]
    fn skips_a_byte_order_mark_and_handles_empty_input() {
        let (seen, _) = blocks(b"\xEF\xBB\xBFa\n", 1 << 10);
        assert_eq!(seen, [[(1, "a".to_string())]]);
        let (seen, progress) = blocks(b"", 1 << 10);
        assert!(seen.is_empty() && progress.is_empty());
    }

    #[test]
    fn pieces_number_their_first_line() {
        let block = b"a\nb\nc\nd\ne\n";
        let pieces = split_pieces(block, 7, 3);
        let firsts: Vec<_> = pieces.iter().map(|p| p.first_line).collect();
        assert_eq!(firsts, [7, 9, 11]);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.bytes.to_vec()).collect();
        assert_eq!(joined, block);
    }

    #[test]
    fn reports_the_earliest_failing_piece_and_bad_utf8() {
        let block = b"ok\nbad 1\nok\nbad 2\n";
        let pieces = split_pieces(block, 1, 1);
        let err = parse_pieces(&pieces, |p| {
            for (n, line) in p.lines() {
                if line.starts_with(b"bad") {
                    return Err(parse_error(n, "bad"));
                }
            }
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
        let piece = Piece {
            bytes: b" \nx\xFFy\n",
            first_line: 5,
        };
        let err = piece.text().unwrap_err();
        assert_eq!(err.to_string(), "line 6: not UTF-8 text (invalid byte at column 2)");
        let piece = Piece {
            bytes: "é\n".as_bytes(),
            first_line: 1,
        };
        assert_eq!(piece.text().unwrap(), "é\n");
    }

    #[test]
    fn counts_newlines_in_long_and_short_runs() {
        let text: Vec<u8> = (0..1000u32).map(|i| if i % 7 == 0 { b'\n' } else { b'x' }).collect();
        for len in [0, 1, 63, 64, 65, 1000] {
            let want = text[..len].iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(newlines(&text[..len]), want, "{len}");
        }
        assert_eq!(newlines(&[b'\n'; 200]), 200);
    }

    #[test]
    fn shortens_long_tokens() {
        assert_eq!(shown("a:b"), "\"a:b\"");
        assert!(shown(&"x".repeat(100)).ends_with("\"..."));
    }
}
