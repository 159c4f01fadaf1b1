//! Big buffers written out of order on 2 MB pages. The seal scatters tens of millions of facts over
//! buffers of gigabytes; on 4 KB pages nearly every scattered write misses the TLB and every first
//! touch is a page fault. Buffers written in order (the logs read fact by fact) stay on 4 KB pages.
//! Linux backs memory with 2 MB pages where asked (`MADV_HUGEPAGE`; the usual default of
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise`). Elsewhere these are plain
//! allocations.

/// Buffers below this are left alone.
const BIG: usize = 32 << 20;

/// 2 MB pages are asked for unless `RXMEMBER_HUGE_PAGES=off`: with the kernel's `defrag` setting
/// at `madvise`, a fault on such a page may wait for the kernel to compact memory, which on a
/// fragmented machine costs more than the pages save.
fn wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var("RXMEMBER_HUGE_PAGES").map_or(true, |v| v != "off"))
}

/// A vector with room for `n` elements, on 2 MB pages when big.
pub(crate) fn with_capacity<T>(n: usize) -> Vec<T> {
    let v = Vec::with_capacity(n);
    advise(&v);
    v
}

/// Pushes onto a vector that may grow big (a log read fact by fact), growing it by doubling. A log
/// is written and read in order, so it stays on 4 KB pages: a 2 MB page's first touch costs more
/// than its fewer TLB misses save on sequential access (measured at 10M members: reading the facts
/// in took 21 s on 4 KB pages against 33 s with 2 MB pages asked for).
#[inline]
pub(crate) fn push<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        grow(v);
    }
    v.push(x);
}

#[cold]
fn grow<T>(v: &mut Vec<T>) {
    v.reserve_exact(v.capacity().max(1 << 12));
}

/// Reserves room for `additional` more elements, on 2 MB pages when big.
pub(crate) fn reserve_exact<T>(v: &mut Vec<T>, additional: usize) {
    v.reserve_exact(additional);
    advise(v);
}

/// Asks for 2 MB pages over the whole 2 MB pages inside the vector's buffer, when it is big.
fn advise<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < BIG || !wanted() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE_PAGE: usize = 2 << 20;
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let end = (v.as_ptr() as usize + bytes) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: advice on whole pages inside a buffer this vector owns; it changes how the
            // kernel backs them, never their contents. A refusal (an old kernel) is harmless.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}
