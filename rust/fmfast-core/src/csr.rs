//! Borrowed compressed-sparse-row matrices whose invariants are checked once, on construction.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// An integer type scipy uses for `indptr` and `indices` (int32 or int64).
pub trait CsrIndex: Copy + Send + Sync + 'static {
    /// The value as an unsigned offset or column; `None` when negative.
    fn to_u64(self) -> Option<u64>;
    /// Converts back, `None` when `v` does not fit.
    fn from_u64(v: u64) -> Option<Self>;
}

macro_rules! csr_index {
    ($($t:ty),*) => {$(
        impl CsrIndex for $t {
            #[inline]
            fn to_u64(self) -> Option<u64> {
                u64::try_from(self).ok()
            }
            #[inline]
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
        }
    )*};
}
csr_index!(i32, i64);

/// A CSR matrix borrowed from caller-owned arrays, with `indptr`, `indices` and the column
/// count validated; values are borrowed separately by whoever needs them (see [`Values`]).
#[derive(Clone, Copy)]
pub struct CsrView<'a, I> {
    indptr: &'a [I],
    indices: &'a [I],
    n_cols: u64,
}

impl<'a, I: CsrIndex> CsrView<'a, I> {
    /// Checks that `indptr` starts at 0, never decreases and ends at `nnz`, that `nnz` values are
    /// given, and that every column index lies in `0..n_cols`.
    pub fn new(indptr: &'a [I], indices: &'a [I], nnz_values: usize, n_cols: u64) -> Result<Self> {
        let view = Self::new_columns_unchecked(indptr, indices, nnz_values, n_cols)?;
        view.check_columns()?;
        Ok(view)
    }

    /// [`CsrView::new`] without the check of the column indices, for a consumer that checks
    /// each one itself as it reads it (with [`column_error`]), saving a pass over `indices`.
    pub(crate) fn new_columns_unchecked(
        indptr: &'a [I],
        indices: &'a [I],
        nnz_values: usize,
        n_cols: u64,
    ) -> Result<Self> {
        let nnz = indices.len();
        if nnz_values != nnz {
            return Err(Error::invalid(format!(
                "invalid CSR: {nnz} indices but {nnz_values} values"
            )));
        }
        let first = indptr
            .first()
            .ok_or_else(|| Error::invalid("invalid CSR: indptr is empty"))?;
        if first.to_u64() != Some(0) {
            return Err(Error::invalid("invalid CSR: indptr[0] is not 0"));
        }
        let mut previous = 0u64;
        for (row, end) in indptr[1..].iter().enumerate() {
            match end.to_u64() {
                Some(end) if end >= previous => previous = end,
                _ => return Err(Error::invalid(format!("invalid CSR: indptr decreases at row {row}"))),
            }
        }
        if previous != nnz as u64 {
            return Err(Error::invalid(format!(
                "invalid CSR: indptr ends at {previous} but there are {nnz} indices"
            )));
        }
        Ok(CsrView {
            indptr,
            indices,
            n_cols,
        })
    }

    fn check_columns(&self) -> Result<()> {
        const ROWS_PER_TASK: usize = 4096;
        let n_rows = self.n_rows();
        (0..n_rows.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .try_for_each(|task| {
                let rows = task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(n_rows);
                for row in rows {
                    let range = self.row_range(row);
                    let bad = self.indices[range]
                        .iter()
                        .find(|c| c.to_u64().is_none_or(|c| c >= self.n_cols));
                    if let Some(&bad) = bad {
                        return Err(column_error(row, bad, self.n_cols));
                    }
                }
                Ok(())
            })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of columns.
    pub fn n_cols(&self) -> u64 {
        self.n_cols
    }

    /// Positions of row `row`'s entries in `indices` and the values array.
    #[inline]
    pub fn row_range(&self, row: usize) -> std::ops::Range<usize> {
        // Validated on construction: offsets are non-negative and at most nnz.
        let at = |i: usize| self.indptr[i].to_u64().unwrap_or(0) as usize;
        at(row)..at(row + 1)
    }

    /// Column indices of all entries.
    #[inline]
    pub fn indices(&self) -> &'a [I] {
        self.indices
    }

    /// Column indices of row `row`.
    #[inline]
    pub fn row_indices(&self, row: usize) -> &'a [I] {
        &self.indices[self.row_range(row)]
    }
}

/// The error for column index `bad` of row `row` outside `0..n_cols`.
#[cold]
#[inline(never)]
pub(crate) fn column_error<I: CsrIndex>(row: usize, bad: I, n_cols: u64) -> Error {
    let shown = bad
        .to_u64()
        .map_or_else(|| "a negative index".to_string(), |c| c.to_string());
    Error::invalid(format!(
        "invalid CSR: row {row} has column {shown}, outside 0..{n_cols}"
    ))
}

/// A borrowed array of feature or label values in one of the element types callers hand in.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl<'a> Values<'a> {
    /// The elements in `range` (which must lie within the array).
    #[inline]
    pub fn slice(&self, range: std::ops::Range<usize>) -> Values<'a> {
        match *self {
            Values::F32(v) => Values::F32(&v[range]),
            Values::F64(v) => Values::F64(&v[range]),
            Values::I32(v) => Values::I32(&v[range]),
            Values::I64(v) => Values::I64(&v[range]),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f64` (which must lie within the array).
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match *self {
            Values::F32(v) => f64::from(v[i]),
            Values::F64(v) => v[i],
            Values::I32(v) => f64::from(v[i]),
            Values::I64(v) => v[i] as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_matrix() {
        let view = CsrView::new(&[0i32, 2, 2, 3], &[0, 4, 1], 3, 5).unwrap();
        assert_eq!(view.n_rows(), 3);
        assert_eq!(view.row_indices(0), &[0, 4]);
        assert!(view.row_indices(1).is_empty());
    }

    #[test]
    fn rejects_each_broken_invariant() {
        type Case<'a> = (&'a [i64], &'a [i64], usize, u64, &'a str);
        let cases: [Case; 6] = [
            (&[], &[], 0, 3, "indptr is empty"),
            (&[1, 2], &[0], 1, 3, "indptr[0] is not 0"),
            (&[0, 2, 1], &[0, 1], 2, 3, "decreases at row 1"),
            (&[0, 1], &[0, 1], 2, 3, "ends at 1"),
            (&[0, 2], &[0, 3], 2, 3, "row 0 has column 3"),
            (&[0, 1], &[-1], 1, 3, "negative index"),
        ];
        for (indptr, indices, nnz, n_cols, message) in cases {
            let err = CsrView::new(indptr, indices, nnz, n_cols).err().expect(message);
            assert!(err.to_string().contains(message), "{err} lacks {message}");
        }
        let err = CsrView::new(&[0i32, 1], &[0], 2, 3).err().unwrap();
        assert!(err.to_string().contains("1 indices but 2 values"));
    }
}
