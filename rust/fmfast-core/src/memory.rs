//! Hints to the operating system about large output arrays we are about to fill.

use std::mem::MaybeUninit;

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
