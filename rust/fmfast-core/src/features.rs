//! Assembling a CSR feature matrix from column blocks: one-hot codes, multi-hot code lists and
//! numeric columns, each placed at its own column offset.
//!
//! Rows are assembled in parallel chunks; within a row, columns are sorted ascending and
//! duplicate columns (a code repeated in a multi-hot row) are merged by summing their weights.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::parallel::Monitor;

/// Rows assembled by one parallel task.
const ROW_CHUNK: usize = 4096;

/// Rows assembled between two progress reports (and Ctrl-C checks).
const BLOCK_ROWS: usize = 64 * ROW_CHUNK;

/// One block of columns of the assembled matrix.
#[derive(Debug, Clone, Copy)]
pub enum Block<'a> {
    /// One code per row in `0..size` (or `-1`: missing or unknown, no entry), weight 1, at
    /// column `offset + code`.
    OneHot { codes: &'a [i64], offset: u64, size: u64 },
    /// A list of codes per row (`codes[indptr[r]..indptr[r + 1]]`, `-1` skipped), each with
    /// weight 1, or `1/sqrt(n)` when `normalize` (`n`: the row's codes other than `-1`).
    MultiHot {
        indptr: &'a [i64],
        codes: &'a [i64],
        offset: u64,
        size: u64,
        normalize: bool,
    },
    /// One value per row at `column`; NaN means no entry.
    Numeric { values: &'a [f32], column: u64 },
}

impl Block<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Block::OneHot { .. } => "one-hot",
            Block::MultiHot { .. } => "multi-hot",
            Block::Numeric { .. } => "numeric",
        }
    }

    /// Checks lengths and column ranges against `n_rows`.
    fn validate(&self, b: usize, n_rows: usize) -> Result<()> {
        let fail = |message: String| Err(Error::invalid(format!("block {b} ({}): {message}", self.kind())));
        let fits = |offset: u64, size: u64| offset.checked_add(size).is_some_and(|end| end <= i64::MAX as u64);
        match *self {
            Block::OneHot { codes, offset, size } => {
                if codes.len() != n_rows {
                    return fail(format!("{} codes for {n_rows} rows", codes.len()));
                }
                if !fits(offset, size) {
                    return fail(format!("columns {offset} + {size} overflow"));
                }
            }
            Block::MultiHot {
                indptr,
                codes,
                offset,
                size,
                ..
            } => {
                if indptr.len() != n_rows + 1 {
                    return fail(format!("indptr has {} entries for {n_rows} rows", indptr.len()));
                }
                if indptr.first() != Some(&0) || indptr.last().copied() != i64::try_from(codes.len()).ok() {
                    return fail(format!(
                        "indptr must run from 0 to {} (the number of codes)",
                        codes.len()
                    ));
                }
                if let Some(r) = indptr.windows(2).position(|w| w[0] > w[1]) {
                    return fail(format!("indptr decreases at row {r}"));
                }
                if !fits(offset, size) {
                    return fail(format!("columns {offset} + {size} overflow"));
                }
            }
            Block::Numeric { values, column } => {
                if values.len() != n_rows {
                    return fail(format!("{} values for {n_rows} rows", values.len()));
                }
                if column >= i64::MAX as u64 {
                    return fail(format!("column {column} out of range"));
                }
            }
        }
        Ok(())
    }
}

/// Checks `code` against `size`: `Ok(None)` for `-1`, the column for a valid code.
fn column(code: i64, offset: u64, size: u64, row: usize, b: usize, kind: &str) -> Result<Option<i64>> {
    if code == -1 {
        return Ok(None);
    }
    match u64::try_from(code) {
        // `offset + size <= i64::MAX` was checked, so the sum fits.
        Ok(c) if c < size => Ok(Some((offset + c) as i64)),
        _ => Err(Error::invalid(format!(
            "row {row}, block {b} ({kind}): code {code} is outside 0..{size} (or -1 for none)"
        ))),
    }
}

/// One chunk of assembled rows: entries per row, then the rows' columns and weights.
struct Chunk {
    counts: Vec<i64>,
    indices: Vec<i64>,
    data: Vec<f32>,
}

/// Whether the blocks' columns lie side by side in block order (each block's columns after the
/// one before's), as an encoder lays them out: then a row's entries are in column order once each
/// multi-hot block's own are sorted.
fn in_column_order(blocks: &[Block]) -> bool {
    let span = |block: &Block| match *block {
        Block::OneHot { offset, size, .. } | Block::MultiHot { offset, size, .. } => (offset, offset + size),
        Block::Numeric { column, .. } => (column, column + 1),
    };
    blocks.windows(2).all(|w| span(&w[0]).1 <= span(&w[1]).0)
}

fn assemble_rows(blocks: &[Block], rows: std::ops::Range<usize>, ordered: bool) -> Result<Chunk> {
    // Not reserved at their final size: a chunk's arrays (some 200 KiB) would each be a fresh
    // mmap of glibc's, page-faulted in every batch (155K faults against 5K over 24 batches of
    // the benchmark's table: 250 against 190 ns a row). Grown, they come from the heap.
    let mut chunk = Chunk {
        counts: Vec::with_capacity(rows.len()),
        indices: Vec::new(),
        data: Vec::new(),
    };
    let mut entries: Vec<(i64, f32)> = Vec::new();
    for r in rows {
        entries.clear();
        for (b, block) in blocks.iter().enumerate() {
            match *block {
                Block::OneHot { codes, offset, size } => {
                    if let Some(col) = column(codes[r], offset, size, r, b, block.kind())? {
                        entries.push((col, 1.0));
                    }
                }
                Block::MultiHot {
                    indptr,
                    codes,
                    offset,
                    size,
                    normalize,
                } => {
                    // Validated: 0 <= indptr[r] <= indptr[r + 1] <= codes.len().
                    let row_codes = &codes[indptr[r] as usize..indptr[r + 1] as usize];
                    let start = entries.len();
                    for &code in row_codes {
                        if let Some(col) = column(code, offset, size, r, b, block.kind())? {
                            entries.push((col, 1.0));
                        }
                    }
                    let n = entries.len() - start;
                    if normalize && n > 0 {
                        let weight = 1.0 / (n as f32).sqrt();
                        entries[start..].iter_mut().for_each(|e| e.1 = weight);
                    }
                    if ordered {
                        entries[start..].sort_unstable_by_key(|e| e.0);
                    }
                }
                Block::Numeric { values, column } => {
                    if !values[r].is_nan() {
                        entries.push((column as i64, values[r]));
                    }
                }
            }
        }
        if !ordered {
            entries.sort_unstable_by_key(|e| e.0);
        }
        let before = chunk.indices.len();
        for &(col, value) in &entries {
            if chunk.indices.len() > before && chunk.indices.last() == Some(&col) {
                if let Some(last) = chunk.data.last_mut() {
                    *last += value;
                }
            } else {
                chunk.indices.push(col);
                chunk.data.push(value);
            }
        }
        chunk.counts.push((chunk.indices.len() - before) as i64);
    }
    Ok(chunk)
}

/// Assembles `n_rows` rows from `blocks` into CSR arrays `(indptr, indices, data)`, columns sorted
/// within each row. Runs on the current rayon pool, reporting the rows done to `monitor` between
/// blocks; errors name the row and the block (by index).
pub fn assemble(blocks: &[Block], n_rows: usize, monitor: &dyn Monitor) -> Result<(Vec<i64>, Vec<i64>, Vec<f32>)> {
    for (b, block) in blocks.iter().enumerate() {
        block.validate(b, n_rows)?;
    }
    let mut chunks = Vec::with_capacity(n_rows.div_ceil(ROW_CHUNK));
    let ordered = in_column_order(blocks);
    for first in (0..n_rows).step_by(BLOCK_ROWS) {
        let end = (first + BLOCK_ROWS).min(n_rows);
        let block = (first..end)
            .into_par_iter()
            .step_by(ROW_CHUNK)
            .map(|start| assemble_rows(blocks, start..(start + ROW_CHUNK).min(end), ordered))
            .collect::<Result<Vec<Chunk>>>()?;
        chunks.extend(block);
        monitor.progress(end as u64)?;
    }
    let nnz: usize = chunks.iter().map(|c| c.indices.len()).sum();
    let mut indptr = Vec::with_capacity(n_rows + 1);
    let (mut indices, mut data) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
    let mut total = 0i64;
    indptr.push(0);
    for chunk in chunks {
        for count in chunk.counts {
            total += count;
            indptr.push(total);
        }
        indices.extend_from_slice(&chunk.indices);
        data.extend_from_slice(&chunk.data);
    }
    Ok((indptr, indices, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Unmonitored;

    #[test]
    fn one_hot_multi_hot_and_numeric() {
        let codes = [1, -1, 0];
        let (mp, mc) = ([0, 2, 2, 5], [2, 0, 1, 1, -1]);
        let values = [0.5, f32::NAN, -2.0];
        let blocks = [
            Block::Numeric {
                values: &values,
                column: 0,
            },
            Block::MultiHot {
                indptr: &mp,
                codes: &mc,
                offset: 3,
                size: 3,
                normalize: false,
            },
            Block::OneHot {
                codes: &codes,
                offset: 1,
                size: 2,
            },
        ];
        let (indptr, indices, data) = assemble(&blocks, 3, &Unmonitored).unwrap();
        assert_eq!(indptr, vec![0, 4, 4, 3 + 4]);
        assert_eq!(indices, vec![0, 2, 3, 5, 0, 1, 4]);
        assert_eq!(data, vec![0.5, 1.0, 1.0, 1.0, -2.0, 1.0, 2.0]);
    }

    #[test]
    fn blocks_in_column_order_sort_only_their_lists_and_agree_with_a_full_sort() {
        let codes = [1, -1, 0, 2];
        let (mp, mc) = ([0, 4, 4, 5, 8], [3, 0, 3, -1, 2, 1, 1, 0]);
        let values = [0.5, f32::NAN, -2.0, 1.0];
        let blocks = [
            Block::OneHot {
                codes: &codes,
                offset: 0,
                size: 3,
            },
            Block::MultiHot {
                indptr: &mp,
                codes: &mc,
                offset: 3,
                size: 4,
                normalize: true,
            },
            Block::Numeric {
                values: &values,
                column: 7,
            },
        ];
        assert!(in_column_order(&blocks));
        let mut swapped = blocks;
        swapped.swap(0, 2);
        assert!(!in_column_order(&swapped));
        let ordered = assemble_rows(&blocks, 0..4, true).unwrap();
        let sorted = assemble_rows(&blocks, 0..4, false).unwrap();
        assert_eq!(ordered.counts, sorted.counts);
        assert_eq!(ordered.indices, sorted.indices);
        assert_eq!(ordered.data, sorted.data);
        assert_eq!(ordered.indices, vec![1, 3, 6, 7, 0, 5, 7, 2, 3, 4, 7]);
        assert_eq!(ordered.counts, vec![4, 0, 3, 4]);
    }

    #[test]
    fn normalized_multi_hot_counts_known_codes() {
        let (p, c) = ([0, 4, 5], [0, 1, -1, 3, 2]);
        let blocks = [Block::MultiHot {
            indptr: &p,
            codes: &c,
            offset: 10,
            size: 4,
            normalize: true,
        }];
        let (indptr, indices, data) = assemble(&blocks, 2, &Unmonitored).unwrap();
        assert_eq!(indptr, vec![0, 3, 4]);
        assert_eq!(indices, vec![10, 11, 13, 12]);
        let w = 1.0 / 3f32.sqrt();
        assert_eq!(data, vec![w, w, w, 1.0]);
    }

    #[test]
    fn many_rows_across_chunks_keep_order() {
        let n = BLOCK_ROWS * 2 + ROW_CHUNK + 17;
        let codes: Vec<i64> = (0..n as i64).map(|r| r % 7).collect();
        let values: Vec<f32> = (0..n).map(|r| r as f32).collect();
        let blocks = [
            Block::OneHot {
                codes: &codes,
                offset: 1,
                size: 7,
            },
            Block::Numeric {
                values: &values,
                column: 0,
            },
        ];
        let (indptr, indices, data) = crate::parallel::with_threads(4, || assemble(&blocks, n, &Unmonitored)).unwrap();
        assert_eq!(indptr.len(), n + 1);
        for r in 0..n {
            assert_eq!(indptr[r], 2 * r as i64);
            assert_eq!(&indices[2 * r..2 * r + 2], &[0, 1 + (r as i64 % 7)]);
            assert_eq!(data[2 * r], r as f32);
        }
    }

    #[test]
    fn reports_progress_between_blocks_and_stops_on_request() {
        struct StopAfterFirst(std::sync::Mutex<Vec<u64>>);
        impl Monitor for StopAfterFirst {
            fn progress(&self, done: u64) -> Result<()> {
                let mut seen = self.0.lock().map_err(|_| Error::Interrupted)?;
                seen.push(done);
                if seen.len() > 1 {
                    return Err(Error::Interrupted);
                }
                Ok(())
            }
        }
        let n = BLOCK_ROWS * 3;
        let values = vec![1.0f32; n];
        let monitor = StopAfterFirst(std::sync::Mutex::new(Vec::new()));
        let result = assemble(
            &[Block::Numeric {
                values: &values,
                column: 0,
            }],
            n,
            &monitor,
        );
        assert!(matches!(result, Err(Error::Interrupted)));
        assert_eq!(*monitor.0.lock().unwrap(), [BLOCK_ROWS as u64, 2 * BLOCK_ROWS as u64]);
    }

    #[test]
    fn out_of_range_code_names_row_and_block() {
        let codes = [0, 5];
        let blocks = [
            Block::Numeric {
                values: &[1.0, 2.0],
                column: 0,
            },
            Block::OneHot {
                codes: &codes,
                offset: 1,
                size: 5,
            },
        ];
        let err = assemble(&blocks, 2, &Unmonitored).unwrap_err().to_string();
        assert!(err.contains("row 1, block 1"), "{err}");
        let bad = [-2];
        let err = assemble(
            &[Block::OneHot {
                codes: &bad,
                offset: 0,
                size: 5,
            }],
            1,
            &Unmonitored,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("row 0, block 0"), "{err}");
    }

    #[test]
    fn inconsistent_lengths_are_errors() {
        let err = assemble(
            &[Block::Numeric {
                values: &[1.0],
                column: 0,
            }],
            2,
            &Unmonitored,
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 values for 2 rows"));
        let p = [0, 2];
        let c = [0];
        let block = Block::MultiHot {
            indptr: &p,
            codes: &c,
            offset: 0,
            size: 1,
            normalize: false,
        };
        assert!(assemble(&[block], 1, &Unmonitored).is_err());
        let big = Block::OneHot {
            codes: &[0],
            offset: u64::MAX,
            size: 2,
        };
        assert!(assemble(&[big], 1, &Unmonitored).is_err());
    }

    #[test]
    fn empty_input() {
        let (indptr, indices, data) = assemble(&[], 0, &Unmonitored).unwrap();
        assert_eq!((indptr, indices.len(), data.len()), (vec![0], 0, 0));
        let (indptr, _, _) = assemble(&[], 2, &Unmonitored).unwrap();
        assert_eq!(indptr, vec![0, 0, 0]);
    }
}
