//! Large fresh buffers: allocations sized by the caller's arguments that fail as errors, huge-page
//! hints to the operating system, and zeroing in parallel.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// `rows × width` copies of `value`, or [`Error::InvalidInput`] naming `what` when the size
/// overflows or the allocation fails. For buffers whose size follows from the caller's arguments
/// (`num_factors`, `mini_batch_size`, `epochs`): `vec!` would abort the process instead.
pub fn try_filled<T: Clone>(rows: usize, width: usize, value: T, what: &str) -> Result<Vec<T>> {
    let too_large = || cannot_allocate::<T>(what, rows, width);
    let len = rows.checked_mul(width).ok_or_else(too_large)?;
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| too_large())?;
    buffer.resize(len, value);
    Ok(buffer)
}

/// The `len` items of `items` in a vector allocated first, or [`Error::InvalidInput`] naming
/// `what` when the allocation fails (`collect` and `to_vec` would abort the process instead).
pub fn try_collect<T>(len: usize, items: impl IntoIterator<Item = T>, what: &str) -> Result<Vec<T>> {
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| cannot_allocate::<T>(what, len, 1))?;
    buffer.extend(items);
    Ok(buffer)
}

fn cannot_allocate<T>(what: &str, rows: usize, width: usize) -> Error {
    Error::invalid(format!(
        "cannot allocate {what}: {rows} × {width} values of {} bytes",
        std::mem::size_of::<T>()
    ))
}

/// Size of a transparent huge page on x86-64 and most aarch64 Linux systems.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// Asks Linux to back the whole 2 MiB pages inside `buffer` with transparent huge pages: a fresh
/// array of hundreds of MB otherwise takes one page fault per 4 KiB when first written, a large
/// part of the time of filling it. Only a hint: nothing happens on other systems, where huge
/// pages are disabled, or if the call fails; the memory works the same either way.
pub fn advise_huge_pages<T>(buffer: &mut [MaybeUninit<T>]) {
    #[cfg(target_os = "linux")]
    {
        let start = buffer.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buffer);
        let (first, last) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
        if last > first {
            // SAFETY: `[first, last)` lies inside `buffer`, which we hold exclusively, and
            // MADV_HUGEPAGE changes how pages are backed, never their contents.
            unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

/// Zeroes `buffer` on the current rayon pool, after [`advise_huge_pages`], and returns it as
/// initialised bytes: a fresh output buffer of hundreds of MB that one thread would otherwise zero
/// (and page-fault in) before the parallel work that fills it.
pub fn zeroed_in_parallel(buffer: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    advise_huge_pages(buffer);
    buffer
        .par_chunks_mut(1 << 20)
        .for_each(|chunk| chunk.fill(MaybeUninit::new(0)));
    // SAFETY: every byte was initialised just above, and `MaybeUninit<u8>` has the layout of `u8`.
    unsafe { &mut *(buffer as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_beyond_memory_are_errors_not_aborts() {
        for (rows, width) in [(usize::MAX, 2), (1 << 40, 1 << 20), (1 << 20, 1 << 40)] {
            let err = try_filled(rows, width, 0.0f64, "the test buffer").unwrap_err();
            assert!(err.to_string().starts_with("cannot allocate the test buffer:"), "{err}");
        }
        assert_eq!(try_filled(3, 2, 7u8, "a buffer").unwrap(), vec![7; 6]);
    }

    #[test]
    fn buffers_come_back_zeroed_whatever_their_size() {
        for len in [0, 1, 4095, (1 << 20) + 3, 5 << 20] {
            let mut storage: Vec<u8> = Vec::with_capacity(len);
            let bytes = zeroed_in_parallel(&mut storage.spare_capacity_mut()[..len]);
            assert_eq!(bytes.len(), len);
            assert!(bytes.iter().all(|&b| b == 0));
            bytes.fill(7);
            // SAFETY: all `len` bytes were written through `bytes`.
            unsafe { storage.set_len(len) };
            assert!(storage.iter().all(|&b| b == 7));
        }
    }
}
