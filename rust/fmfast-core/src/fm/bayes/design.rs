//! The design matrix as the sweeps read it, built once per fit: by rows (to recompute the factor
//! caches) and by columns (each coordinate's entries), values as `f64`, and the runs of columns
//! that share no row: the blocks that block Gibbs (or ALS) updates at the same time.

use crate::csr::{CsrIndex, CsrView};
use crate::error::{Error, Result};
use crate::fm::Feature;
use crate::memory::{try_collect, try_filled};

/// `X` by rows and by columns: the columns and values of row `r` are
/// `row_columns[row_start[r]..row_start[r + 1]]` and `row_values[...]`; the rows and values of
/// column `j`, `rows[start[j]..start[j + 1]]` and `values[...]`, rows increasing.
pub(crate) struct Design {
    row_start: Vec<usize>,
    row_columns: Vec<u32>,
    row_values: Vec<f64>,
    start: Vec<usize>,
    rows: Vec<u32>,
    values: Vec<f64>,
    /// Consecutive column ranges, covering every column in order, within which no two columns
    /// have an entry in the same row.
    pub(crate) runs: Vec<std::ops::Range<usize>>,
}

impl Design {
    /// The design of `x` (whose values are `values`): at most 2³² − 1 rows, and columns that
    /// `Weights` accepted (below 2³²).
    pub(crate) fn new<I: CsrIndex, T: Feature>(x: &CsrView<'_, I>, values: &[T]) -> Result<Self> {
        let n_rows = x.n_rows();
        if u32::try_from(n_rows).is_err() {
            return Err(Error::invalid(format!(
                "optimizer 'als' and 'mcmc' train on at most 2^32 - 1 rows, got {n_rows}"
            )));
        }
        // The view checked every column against n_cols, which Weights checked against usize.
        let d = x.n_cols() as usize;
        let column = |i: I| i.to_u64().unwrap_or(0) as usize;
        let mut start = try_filled(d + 1, 1, 0usize, "the design's column starts")?;
        for &i in x.indices() {
            start[column(i) + 1] += 1;
        }
        for j in 0..d {
            start[j + 1] += start[j];
        }
        let nnz = start[d];
        let mut next = try_collect(d, start[..d].iter().copied(), "the design's column starts")?;
        let mut rows = try_filled(nnz, 1, 0u32, "the design by columns")?;
        let mut column_values = try_filled(nnz, 1, 0.0, "the design by columns")?;
        for row in 0..n_rows {
            let range = x.row_range(row);
            for (&i, &v) in x.row_indices(row).iter().zip(&values[range]) {
                let j = column(i);
                let slot = &mut next[j];
                // A column holds each row at most once: the sweeps share its entries between
                // threads, and a repeated entry makes ŷ quadratic in the coordinate.
                if *slot > start[j] && rows[*slot - 1] == row as u32 {
                    return Err(Error::invalid(format!(
                        "row {row} has column {j} twice: optimizer 'als' and 'mcmc' need each column at most once a row (sum duplicates first)"
                    )));
                }
                rows[*slot] = row as u32;
                column_values[*slot] = v.to_f64();
                *slot += 1;
            }
        }
        let runs = exclusive_runs(&start, &rows, n_rows)?;
        let row_start = try_collect(
            n_rows + 1,
            (0..=n_rows).map(|r| if r == n_rows { nnz } else { x.row_range(r).start }),
            "the design by rows",
        )?;
        Ok(Design {
            row_start,
            row_columns: try_collect(nnz, x.indices().iter().map(|&i| column(i) as u32), "the design by rows")?,
            row_values: try_collect(values.len(), values.iter().map(|v| v.to_f64()), "the design by rows")?,
            start,
            rows,
            values: column_values,
            runs,
        })
    }

    /// The columns and values of row `r`.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> (&[u32], &[f64]) {
        let range = self.row_start[r]..self.row_start[r + 1];
        (&self.row_columns[range.clone()], &self.row_values[range])
    }

    /// For each one-hot group of features (`groups[j]`, the group of column `j`), in group order:
    /// the level of each row, the position among the group's columns of the one column where it
    /// is nonzero, and the number of levels (the group's columns). A group is one-hot when every
    /// row has exactly one nonzero value among its columns; a fit without rows has none.
    pub(crate) fn one_hot_levels(&self, groups: &[u32]) -> Result<Vec<(Vec<u32>, usize)>> {
        let n_rows = self.row_start.len() - 1;
        let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
        let mut position = try_filled(groups.len(), 1, 0u32, "the one-hot groups")?;
        let mut sizes = try_filled(n_groups, 1, 0usize, "the one-hot groups")?;
        for (j, &g) in groups.iter().enumerate() {
            position[j] = sizes[g as usize] as u32;
            sizes[g as usize] += 1;
        }
        // Rows with a nonzero value in each group, and whether one had two; counted with the last
        // row seen in each group (from 1), so that nothing of the rows' size is held per group.
        let mut last = try_filled(n_groups, 1, 0usize, "the one-hot groups")?;
        let mut rows = try_filled(n_groups, 1, 0usize, "the one-hot groups")?;
        let mut twice = try_filled(n_groups, 1, false, "the one-hot groups")?;
        for r in 0..n_rows {
            let (columns, xs) = self.row(r);
            for (&j, &x) in columns.iter().zip(xs) {
                let g = groups[j as usize] as usize;
                if x != 0.0 {
                    twice[g] |= last[g] == r + 1;
                    rows[g] += usize::from(last[g] != r + 1);
                    last[g] = r + 1;
                }
            }
        }
        let one_hot: Vec<usize> = (0..n_groups)
            .filter(|&g| n_rows > 0 && rows[g] == n_rows && !twice[g])
            .collect();
        // One level a row for each one-hot group: no more than the entries.
        one_hot
            .into_iter()
            .map(|g| {
                let levels = (0..n_rows).map(|r| {
                    let (columns, xs) = self.row(r);
                    columns
                        .iter()
                        .zip(xs)
                        .find(|&(&j, &x)| groups[j as usize] as usize == g && x != 0.0)
                        .map_or(0, |(&j, _)| position[j as usize])
                });
                Ok((try_collect(n_rows, levels, "the rows' noise levels")?, sizes[g]))
            })
            .collect()
    }

    /// The rows and values of column `j`.
    #[inline]
    pub(crate) fn column(&self, j: usize) -> (&[u32], &[f64]) {
        let range = self.start[j]..self.start[j + 1];
        (&self.rows[range.clone()], &self.values[range])
    }
}

/// Cuts the columns, in order, into maximal runs whose columns share no row (greedy, O(nnz)):
/// the users of a one-hot user block form one run, the movies another.
fn exclusive_runs(start: &[usize], rows: &[u32], n_rows: usize) -> Result<Vec<std::ops::Range<usize>>> {
    let d = start.len() - 1;
    // The run (numbered from 1) that last took each row.
    let mut taken_by = try_filled(n_rows, 1, 0usize, "the design's runs")?;
    let mut runs = Vec::new();
    let mut first = 0;
    for j in 0..d {
        let column = &rows[start[j]..start[j + 1]];
        let run = runs.len() + 1;
        if column.iter().any(|&r| taken_by[r as usize] == run) {
            runs.push(first..j);
            first = j;
        }
        let run = runs.len() + 1;
        for &r in column {
            taken_by[r as usize] = run;
        }
    }
    if d > 0 {
        runs.push(first..d);
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_runs_of_one_hot_blocks() {
        // Rows: (user 0, item 3), (user 1, item 3), (user 0, item 4); column 2 is empty; then an
        // implicit block (5, 6) present together in row 0.
        let indptr = [0i64, 4, 6, 8];
        let indices = [0i64, 3, 5, 6, 1, 3, 0, 4];
        let values = [1.0f32, 1.0, 0.5, 0.5, 1.0, 2.0, 1.0, 1.0];
        let x = CsrView::new(&indptr, &indices, values.len(), 7).unwrap();
        let c = Design::new(&x, &values).unwrap();
        assert_eq!(c.column(0), (&[0u32, 2][..], &[1.0, 1.0][..]));
        assert_eq!(c.column(3), (&[0u32, 1][..], &[1.0, 2.0][..]));
        assert!(c.column(2).0.is_empty());
        assert_eq!(c.row(1), (&[1u32, 3][..], &[1.0, 2.0][..]));
        assert_eq!(c.runs, vec![0..3, 3..5, 5..6, 6..7]);
    }

    #[test]
    fn one_hot_groups_give_each_row_its_level() {
        // Groups: user (columns 0, 1, 5), item (3, 4), implicit (2, 6); rows (user 0, item 3),
        // (user 1, item 3, implicit 2 and 6), (user 5, item 4), (user 0 twice over a zero, item 4).
        let indptr = [0i64, 2, 6, 8, 11];
        let indices = [0i64, 3, 1, 3, 2, 6, 5, 4, 0, 1, 4];
        let values = [1.0f32, 1.0, 1.0, 2.0, 0.5, 0.5, 1.0, 1.0, 1.0, 0.0, 1.0];
        let x = CsrView::new(&indptr, &indices, values.len(), 7).unwrap();
        let design = Design::new(&x, &values).unwrap();
        let groups = [0u32, 0, 2, 1, 1, 0, 2];
        assert_eq!(
            design.one_hot_levels(&groups).unwrap(),
            vec![(vec![0, 1, 2, 0], 3), (vec![0, 0, 1, 1], 2)],
            "user and item; the implicit block is in two rows of four"
        );
        // A second nonzero user in the last row: users are no longer one-hot.
        let values = [1.0f32, 1.0, 1.0, 2.0, 0.5, 0.5, 1.0, 1.0, 1.0, 0.3, 1.0];
        let design = Design::new(&x, &values).unwrap();
        assert_eq!(design.one_hot_levels(&groups).unwrap(), vec![(vec![0, 0, 1, 1], 2)]);
        // One group for every column: none.
        assert!(design.one_hot_levels(&[0; 7]).unwrap().is_empty());
    }

    #[test]
    fn a_column_twice_in_a_row_is_refused() {
        let (indptr, indices, values) = ([0i64, 1, 3], [0i64, 1, 1], [1.0f32; 3]);
        let x = CsrView::new(&indptr, &indices, values.len(), 2).unwrap();
        let message = Design::new(&x, &values).err().unwrap().to_string();
        assert!(message.contains("row 1 has column 1 twice"), "{message}");
    }
}
