//! Memory hints for the datapath's large tables: huge pages for the
//! forwarding table, and prefetching its buckets a batch ahead.

/// Asks the kernel to back the whole pages inside `region` with transparent
/// huge pages when they are first touched (`MADV_HUGEPAGE`), so a table of
/// many megabytes costs one TLB entry per 2 MiB instead of per 4 KiB. Only
/// a hint: when huge pages are off (`transparent_hugepage=never`) or none
/// are free, the kernel uses small pages and nothing changes. Returns
/// whether the kernel took the advice.
pub fn advise_huge_pages<T>(region: &[T]) -> bool {
    let page = 4096usize;
    let start = region.as_ptr() as usize;
    let end = start + std::mem::size_of_val(region);
    let (from, to) = (start.next_multiple_of(page), end - end % page);
    if to <= from {
        return false;
    }
    // SAFETY: MADV_HUGEPAGE changes neither the contents nor the validity of
    // any memory: it only marks the mapping as eligible for huge pages. The
    // range lies inside `region`, which the caller owns, rounded inward to
    // page boundaries as madvise(2) requires.
    let rc = unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
    rc == 0
}

/// Starts loading the cache line of `value` into the CPU's caches, so a
/// later access a few hundred cycles on finds it there. Changes nothing
/// observable; a no-op on CPUs without a prefetch instruction here.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only reads into the cache and never faults, even
    // for an unmapped address (this one is a live reference); SSE, which
    // provides it, is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
