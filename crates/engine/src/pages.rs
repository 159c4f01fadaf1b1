//! Big buffers: the runs' arenas, on 2 MB pages where asked, and the logs read fact by fact,
//! faulted in ahead of their writer and given back once read. On the VMs we measure on, the first
//! touch of memory is the dearest part of a build: a page the host must back anew is faulted in at
//! about 0.4 GB/s, one the guest kernel has just had back at 2–5 GB/s (a guest hands its free pages
//! to the host within seconds). So a seal gives its logs back as it reads them
//! ([`release`]) and its next buffers take those pages.
//! Linux backs memory with 2 MB pages where asked (`MADV_HUGEPAGE`; the usual default of
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise`). Elsewhere these are plain
//! allocations.

/// Buffers below this are left alone.
const BIG: usize = 32 << 20;

/// 2 MB pages are asked for the arenas only with `RXMEMBER_HUGE_PAGES=on`. A 2 MB page needs 512
/// free pages in one piece: the 4 KB pages the seal's logs give back seldom make one, so the
/// arenas' first touches went to the host for fresh memory (1M members, back to back: seal
/// 6.5–6.6 s with 2 MB pages, 5.0–5.5 s without). Once written, the runs are read member by
/// member, where 2 MB pages gained nothing measurable (counts, updates).
fn wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var("RXMEMBER_HUGE_PAGES").is_ok_and(|v| v == "on"))
}

/// A vector with room for `n` elements, on 2 MB pages when big and asked for ([`wanted`]).
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
    } else if v.len() & (WINDOW - 1) == 0 {
        prefault_ahead(v);
    }
    v.push(x);
}

#[cold]
fn grow<T>(v: &mut Vec<T>) {
    v.reserve_exact(v.capacity().max(1 << 12));
    prefault_ahead(v);
}

/// Elements of a log faulted in ahead of its writer at a time (see [`prefault_ahead`]).
const WINDOW: usize = 1 << 20;

/// Has a helper thread fault in the log's next two [`WINDOW`]s of room while the owner goes on
/// writing: on a VM a first touch of memory is the dearest part of writing a log, and the other
/// core is idle while facts are read in. A window at a time, so no more memory is committed than
/// the log is about to fill. The kernel's `MADV_POPULATE_WRITE` maps pages without reading or
/// writing their contents, so it races with nothing the owner writes; should the vector move
/// meanwhile, the call fails on the range it left, or maps pages of whatever mapping took the
/// range, their contents unchanged. `RXMEMBER_PREFAULT=off` turns it off.
#[cold]
fn prefault_ahead<T>(v: &Vec<T>) {
    let size = std::mem::size_of::<T>();
    if v.capacity() * size < BIG || !prefault_wanted() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let base = v.as_ptr() as usize;
        let start = (base + v.len() * size).next_multiple_of(PAGE);
        let end = (base + (v.len() + 2 * WINDOW).min(v.capacity()) * size) / PAGE * PAGE;
        if end > start {
            // No thread to be had (a process at its limit) only means no faulting ahead.
            let _ = std::thread::Builder::new().name("prefault".into()).spawn(move || {
                // SAFETY: advice over whole pages the vector owned when it was given; it maps
                // pages and never reads or writes their contents. A refusal (a kernel before 5.14,
                // a range since unmapped) is harmless.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE);
                }
            });
        }
    }
}

fn prefault_wanted() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTED.get_or_init(|| std::env::var("RXMEMBER_PREFAULT").map_or(true, |v| v != "off"))
}

/// Bytes of a buffer read once in order that [`release`] is asked to give back at a time.
pub(crate) const RELEASE_STEP: usize = 32 << 20;

/// Gives the whole pages inside `len` bytes from `start` back to the kernel (`MADV_DONTNEED`), for
/// a buffer read once in order whose read part is not needed again but whose owner goes on with the
/// rest: the process's next first touches elsewhere then take pages the kernel has just had back.
/// On these VMs that is the difference between 2–5 GB/s (pages the guest holds) and 0.4 GB/s
/// (pages the host must back anew; a guest gives free pages back to the host within seconds), and
/// the seal writes as many bytes as it has read. Elsewhere than Linux, nothing.
///
/// # Safety
/// Nothing reads or writes those bytes again, and no reference to them is alive (the kernel
/// replaces them with zeroes); the buffer's owner may still free it.
pub(crate) unsafe fn release(start: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let from = (start as usize).next_multiple_of(PAGE);
        let to = (start as usize + len) / PAGE * PAGE;
        if to > from {
            // SAFETY: whole pages inside the range the caller gives up. A refusal only leaves the
            // pages where they are.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// Reserves room for `additional` more elements, on 2 MB pages when big and asked for.
pub(crate) fn reserve_exact<T>(v: &mut Vec<T>, additional: usize) {
    v.reserve_exact(additional);
    advise(v);
}

/// Asks for 2 MB pages over the whole 2 MB pages inside the vector's buffer, when it is big and
/// they are wanted.
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

/// Asks the processor to bring the cache line holding `p` in (a hint: nothing is read, and an
/// address outside the process is ignored). An update reads and writes members scattered over
/// arenas of gigabytes, each member's slot and run a cache miss or two: asking for the next
/// members' while one is worked on overlaps those waits (see [`crate::data::CompanyData::read_ahead`]).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault; SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    /// A log grown past the size from which its room is faulted in on another thread holds every
    /// element pushed, in order (the helper maps pages and never writes them).
    #[test]
    fn a_big_log_keeps_what_was_pushed_while_its_room_is_faulted_in() {
        let n = 3 * (super::BIG / std::mem::size_of::<u64>());
        let mut v: Vec<u64> = Vec::new();
        for i in 0..n as u64 {
            super::push(&mut v, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert_eq!(v.len(), n);
        assert!(v.iter().enumerate().all(|(i, &x)| x == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    }
}
