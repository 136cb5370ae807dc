//! Arrays of decoded batches given back once used, for later batches to fill again.
//!
//! A stream read batch by batch fills new arrays every batch, and fresh memory costs the system a
//! page fault every 4 KiB: on the 2-core VM measured, about 2 µs each, 0.5 ms a MiB, some 12 ns a
//! row of the 5M set's shape (24 bytes of arrays a row), more than decoding it. Memory given back
//! and filled again costs none. The binding lends a batch's arrays to NumPy and gives each back
//! when NumPy frees it; the stream takes them for its next batches.

use std::sync::Mutex;

/// Arrays of each element type kept at most: two batches' (the one trained on and the one read
/// meanwhile), two arrays of each type a batch (`indptr` and `indices`; values and labels).
const KEPT: usize = 4;

/// Emptied arrays waiting to be filled again, by element type.
#[derive(Default)]
pub struct ArrayPool {
    i32s: Mutex<Vec<Vec<i32>>>,
    f32s: Mutex<Vec<Vec<f32>>>,
}

/// The element types an [`ArrayPool`] keeps: those of the fused decoder's arrays.
pub trait Pooled: Sized {
    /// The arrays of this type that `pool` keeps.
    fn shelf(pool: &ArrayPool) -> &Mutex<Vec<Vec<Self>>>;
}

impl Pooled for i32 {
    fn shelf(pool: &ArrayPool) -> &Mutex<Vec<Vec<Self>>> {
        &pool.i32s
    }
}

impl Pooled for f32 {
    fn shelf(pool: &ArrayPool) -> &Mutex<Vec<Vec<Self>>> {
        &pool.f32s
    }
}

impl ArrayPool {
    /// Keeps `array`'s memory for a later [`ArrayPool::take`] (dropped when four of its type are kept already).
    pub fn give<T: Pooled>(&self, mut array: Vec<T>) {
        array.clear();
        if let Ok(mut shelf) = T::shelf(self).lock() {
            if shelf.len() < KEPT && array.capacity() > 0 {
                shelf.push(array);
            }
        }
    }

    /// An empty array with room for `capacity` items: the smallest kept one that has it, else the
    /// largest (grown), else a new one.
    pub fn take<T: Pooled>(&self, capacity: usize) -> Vec<T> {
        let kept = T::shelf(self).lock().ok().and_then(|mut shelf| {
            let fits = |a: &&Vec<T>| a.capacity() >= capacity;
            let best = match shelf.iter().filter(fits).min_by_key(|a| a.capacity()) {
                Some(smallest) => smallest.capacity(),
                None => shelf.iter().map(Vec::capacity).max()?,
            };
            let at = shelf.iter().position(|a| a.capacity() == best)?;
            Some(shelf.swap_remove(at))
        });
        let mut array = kept.unwrap_or_default();
        array.reserve(capacity);
        array
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_given_back_is_taken_again_without_a_new_allocation() {
        let pool = ArrayPool::default();
        let small: Vec<i32> = Vec::with_capacity(10);
        let large: Vec<i32> = vec![7; 100];
        let large_at = large.as_ptr();
        pool.give(small);
        pool.give(large);
        // The smallest that fits, emptied.
        let taken = pool.take::<i32>(50);
        assert_eq!((taken.as_ptr(), taken.len()), (large_at, 0));
        // None fits: the largest, grown.
        assert!(pool.take::<i32>(1000).capacity() >= 1000);
        // Each type keeps its own.
        assert_eq!(pool.take::<f32>(0).capacity(), 0);
    }

    #[test]
    fn at_most_a_few_arrays_are_kept() {
        let pool = ArrayPool::default();
        (0..10).for_each(|_| pool.give(vec![1.0f32; 8]));
        assert_eq!(pool.f32s.lock().unwrap().len(), KEPT);
    }
}
