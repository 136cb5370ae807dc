//! Decoded arrays lent to NumPy: each NumPy array views the memory of a vector that its base
//! object holds, and that object gives the vector back to the stream's [`ArrayPool`] when NumPy
//! frees it, for a later batch to fill without fresh memory (see `fmfast_core::recordio::pool`).

use std::sync::Arc;

use fmfast_core::recordio::{ArrayPool, Pooled};
use numpy::ndarray::ArrayView1;
use numpy::{Element, PyArray1};
use pyo3::prelude::*;

/// The vector that a NumPy array views, as the array's base object.
#[pyclass(frozen, module = "fmfast._fmfast")]
pub struct LentArray {
    array: Lent,
    pool: Arc<ArrayPool>,
}

/// A lent vector, by element type.
pub enum Lent {
    I32(Vec<i32>),
    F32(Vec<f32>),
}

impl Drop for LentArray {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.array, Lent::I32(Vec::new())) {
            Lent::I32(array) => self.pool.give(array),
            Lent::F32(array) => self.pool.give(array),
        }
    }
}

/// The element types lent: those an [`ArrayPool`] keeps.
pub trait Lendable: Pooled + Element {
    /// `array` as a [`Lent`] of its type.
    fn lent(array: Vec<Self>) -> Lent;
    /// The items of `lent`, a [`Lent`] of this type.
    fn items(lent: &Lent) -> &[Self];
}

impl Lendable for i32 {
    fn lent(array: Vec<Self>) -> Lent {
        Lent::I32(array)
    }

    fn items(lent: &Lent) -> &[Self] {
        match lent {
            Lent::I32(array) => array,
            Lent::F32(_) => &[],
        }
    }
}

impl Lendable for f32 {
    fn lent(array: Vec<Self>) -> Lent {
        Lent::F32(array)
    }

    fn items(lent: &Lent) -> &[Self] {
        match lent {
            Lent::F32(array) => array,
            Lent::I32(_) => &[],
        }
    }
}

/// `array` as a NumPy array whose memory goes back to `pool` once NumPy frees it.
pub fn lend<'py, T: Lendable>(py: Python<'py>, array: Vec<T>, pool: &Arc<ArrayPool>) -> PyResult<Bound<'py, PyAny>> {
    let owner = Bound::new(
        py,
        LentArray {
            array: T::lent(array),
            pool: Arc::clone(pool),
        },
    )?;
    let view = ArrayView1::from(T::items(&owner.get().array));
    // SAFETY: the view is of the vector that `owner` holds, which nothing changes or moves until
    // `owner` is dropped (it is frozen; `Drop` takes the vector), and NumPy drops `owner`, the
    // array's base, only once the array is freed.
    Ok(unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) }.into_any())
}
