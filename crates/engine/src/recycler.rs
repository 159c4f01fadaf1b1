//! Big buffers freed during a build, kept and handed out again. On the VMs we measure on, the
//! dearest part of sealing ten million members' facts is not the seal's own work but the kernel
//! zeroing fresh pages (half the seal's CPU time in `clear_page_erms`): behind each first touch
//! stands the hypervisor backing the page. A build frees gigabytes (the logs, once grouped) just
//! before it asks for gigabytes (the runs' arenas); freed, they go back to the kernel (glibc unmaps
//! big allocations) and on to the host (free page reporting), and the arenas' pages are faulted in
//! afresh. While a [`Recycling`] guard is held, big buffers freed are kept, still faulted in, and
//! the next big allocation of about their size takes one instead; the outermost guard's end frees
//! what is left.
//!
//! The process opts in by installing [`Recycler`] as its global allocator (the `rxmember` binary
//! does; the engine's own tests do). Without it the guards do nothing. Everything is passed on to
//! the system allocator, except buffers of at least [`MIN`] bytes freed or asked for inside a guard.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Smaller buffers are left to the system allocator (glibc keeps them in its heap for reuse).
const MIN: usize = 1 << 20;
/// Buffers kept at most.
const SLOTS: usize = 32;
/// The alignment of every buffer the system allocator hands out (glibc's malloc on 64-bit), and
/// so the most a buffer kept here can serve.
const ALIGN: usize = 16;

/// The global allocator that keeps big buffers for reuse inside [`Recycling`] guards.
pub struct Recycler;

static STATE: State = State::new();

// SAFETY: every call goes to the system allocator or to `State`, which hands out only whole
// buffers the system allocator gave and nobody holds.
unsafe impl GlobalAlloc for Recycler {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { STATE.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { STATE.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { STATE.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above; a buffer handed out again is the system allocator's, whatever its size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Keeps big buffers freed for reuse until dropped (the outermost guard of those alive frees what
/// is kept). Cheap; nest freely.
#[must_use = "buffers are kept only while the guard lives"]
pub struct Recycling(&'static State);

/// Big buffers freed from now until the guard drops are kept for the next big allocations.
pub fn recycling() -> Recycling {
    STATE.enter()
}

impl Drop for Recycling {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A recycler's state: how many guards are alive, and the buffers kept.
struct State {
    guards: AtomicUsize,
    /// Buffers kept (a lock-free look before taking the lock for one).
    count: AtomicUsize,
    kept: Mutex<Kept>,
}

impl State {
    const fn new() -> State {
        State { guards: AtomicUsize::new(0), count: AtomicUsize::new(0), kept: Mutex::new(Kept::new()) }
    }

    fn enter(&'static self) -> Recycling {
        self.guards.fetch_add(1, Ordering::SeqCst);
        Recycling(self)
    }

    /// The last guard's end frees the buffers kept. A buffer freed by another thread meanwhile may
    /// stay kept until the next guard's end; nothing is lost.
    fn leave(&self) {
        if self.guards.fetch_sub(1, Ordering::SeqCst) == 1 {
            let all = self.lock().drain();
            self.count.store(0, Ordering::SeqCst);
            for (addr, size) in all.into_iter().filter(|s| s.1 > 0) {
                // SAFETY: a kept buffer came from the system allocator with this size (or a
                // smaller one it was handed out for; glibc's free needs only the address).
                unsafe { System.dealloc(addr as *mut u8, Layout::from_size_align_unchecked(size, ALIGN)) };
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Nothing panics while the lock is held; should it, the slots are still whole.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn serves(layout: Layout) -> bool {
        layout.size() >= MIN && layout.align() <= ALIGN
    }

    /// A kept buffer for `layout`, grown to its size if it was smaller.
    unsafe fn reuse(&self, layout: Layout) -> Option<*mut u8> {
        if !Self::serves(layout) || self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let (addr, size) = {
            let mut kept = self.lock();
            let taken = kept.take(layout.size());
            self.count.store(kept.len(), Ordering::Relaxed);
            taken?
        };
        let ptr = addr as *mut u8;
        if size >= layout.size() {
            return Some(ptr);
        }
        // SAFETY: a buffer of the system allocator's, of `size` bytes, held by nobody; glibc
        // moves a big one's pages to the new size without copying them (mremap).
        let grown = unsafe { System.realloc(ptr, Layout::from_size_align_unchecked(size, ALIGN), layout.size()) };
        (!grown.is_null()).then_some(grown)
    }

    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.reuse(layout).unwrap_or_else(|| System.alloc(layout)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above; a reused buffer is zeroed here (still cheaper than fresh pages).
        unsafe {
            match self.reuse(layout) {
                Some(ptr) => {
                    ptr.write_bytes(0, layout.size());
                    ptr
                }
                None => System.alloc_zeroed(layout),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::serves(layout) && self.guards.load(Ordering::Relaxed) > 0 {
            let evicted = {
                let mut kept = self.lock();
                let evicted = kept.keep(ptr as usize, layout.size());
                self.count.store(kept.len(), Ordering::Relaxed);
                evicted
            };
            if let Some((addr, size)) = evicted {
                // SAFETY: a buffer of the system allocator's nobody holds any more.
                unsafe { System.dealloc(addr as *mut u8, Layout::from_size_align_unchecked(size, ALIGN)) };
            }
            return;
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The buffers kept: (address, bytes), 0 bytes for an empty slot.
struct Kept {
    slots: [(usize, usize); SLOTS],
}

impl Kept {
    const fn new() -> Kept {
        Kept { slots: [(0, 0); SLOTS] }
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.1 > 0).count()
    }

    /// Keeps a buffer; returns the one to free instead when every slot is taken (the smallest).
    fn keep(&mut self, addr: usize, size: usize) -> Option<(usize, usize)> {
        let i = self.slots.iter().enumerate().min_by_key(|(_, s)| s.1).map(|(i, _)| i).expect("slots");
        if self.slots[i].1 >= size {
            return Some((addr, size));
        }
        let out = self.slots[i];
        self.slots[i] = (addr, size);
        (out.1 > 0).then_some(out)
    }

    /// A buffer for `size` bytes, taken out: the smallest at least as big, if it is not more than
    /// four times as big (a small ask must not take a big buffer another ask would use whole);
    /// else the biggest smaller one down to an eighth of the size, to be grown.
    fn take(&mut self, size: usize) -> Option<(usize, usize)> {
        let fits = self.slots.iter().enumerate().filter(|(_, s)| s.1 >= size).min_by_key(|(_, s)| s.1);
        let pick = match fits {
            Some((i, s)) if s.1 / 4 <= size => Some(i),
            _ => self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.1 > 0 && s.1 < size && s.1 >= size / 8)
                .max_by_key(|(_, s)| s.1)
                .map(|(i, _)| i),
        }?;
        Some(std::mem::take(&mut self.slots[pick]))
    }

    /// Every slot, emptied (no allocation: the lock is held).
    fn drain(&mut self) -> [(usize, usize); SLOTS] {
        std::mem::replace(&mut self.slots, [(0, 0); SLOTS])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    #[test]
    fn an_ask_takes_the_smallest_buffer_that_fits_unless_it_is_far_too_big() {
        let mut kept = Kept::new();
        assert_eq!(kept.keep(0x1000, 64 * MB), None);
        assert_eq!(kept.keep(0x2000, 8 * MB), None);
        assert_eq!(kept.keep(0x3000, 20 * MB), None);
        // 8 MB fits 6 MB best.
        assert_eq!(kept.take(6 * MB), Some((0x2000, 8 * MB)));
        // Nothing of 3 to 12 MB left; 20 MB is more than four times 3 MB, and nothing smaller.
        assert_eq!(kept.take(3 * MB), None);
        // 20 MB is no more than four times 5 MB.
        assert_eq!(kept.take(5 * MB), Some((0x3000, 20 * MB)));
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn an_ask_bigger_than_every_buffer_grows_the_biggest_down_to_an_eighth() {
        let mut kept = Kept::new();
        kept.keep(0x1000, 10 * MB);
        kept.keep(0x2000, 30 * MB);
        assert_eq!(kept.take(300 * MB), None, "30 MB is less than an eighth of 300 MB");
        assert_eq!(kept.take(100 * MB), Some((0x2000, 30 * MB)));
        assert_eq!(kept.take(100 * MB), None, "10 MB is less than an eighth of 100 MB");
        assert_eq!(kept.take(40 * MB), Some((0x1000, 10 * MB)));
        assert_eq!(kept.len(), 0);
    }

    #[test]
    fn full_slots_give_up_the_smallest_buffer() {
        let mut kept = Kept::new();
        for k in 0..SLOTS {
            assert_eq!(kept.keep(k + 1, (k + 2) * MB), None);
        }
        // Smaller than all kept: itself given back.
        assert_eq!(kept.keep(0xbeef, MB), Some((0xbeef, MB)));
        // Bigger: the smallest kept given back, this one kept.
        assert_eq!(kept.keep(0xcafe, 100 * MB), Some((1, 2 * MB)));
        assert_eq!(kept.take(100 * MB), Some((0xcafe, 100 * MB)));
        let mut left: Vec<_> = kept.drain().into_iter().filter(|s| s.1 > 0).collect();
        left.sort();
        assert_eq!(left, (2..=SLOTS).map(|k| (k, (k + 1) * MB)).collect::<Vec<_>>());
        assert_eq!(kept.len(), 0);
    }

    /// A recycler of its own (the global one serves every test thread at once): a buffer freed
    /// inside a guard is handed out again, its contents zeroed when zeroes are asked for, grown
    /// when the ask is bigger, and the guard's end frees what is kept.
    #[test]
    fn a_buffer_freed_inside_a_guard_is_handed_out_again() {
        static MINE: State = State::new();
        let layout = Layout::from_size_align(8 * MB, 8).unwrap();
        unsafe {
            let outside = MINE.alloc(layout);
            MINE.dealloc(outside, layout);
            assert_eq!(MINE.lock().len(), 0, "nothing is kept without a guard");

            let guard = MINE.enter();
            let inner = MINE.enter();
            let a = MINE.alloc(layout);
            a.write_bytes(0xab, layout.size());
            MINE.dealloc(a, layout);
            let b = MINE.alloc_zeroed(layout);
            assert_eq!(b, a, "the buffer kept is handed out again");
            assert!(std::slice::from_raw_parts(b, layout.size()).iter().all(|&x| x == 0));
            b.write_bytes(0xcd, layout.size());
            MINE.dealloc(b, layout);
            let bigger = Layout::from_size_align(24 * MB, 8).unwrap();
            let c = MINE.alloc(bigger);
            assert!(!c.is_null());
            assert!(std::slice::from_raw_parts(c, layout.size()).iter().all(|&x| x == 0xcd), "grown with its contents");
            c.add(bigger.size() - 1).write(1);
            MINE.dealloc(c, bigger);
            drop(inner);
            assert_eq!(MINE.lock().len(), 1, "an inner guard's end keeps what is kept");
            drop(guard);
            assert_eq!(MINE.lock().len(), 0, "the outermost guard's end frees it");
            assert_eq!(MINE.count.load(Ordering::SeqCst), 0);
        }
    }

    #[test]
    fn small_and_overaligned_asks_go_to_the_system() {
        static MINE: State = State::new();
        let _guard = MINE.enter();
        unsafe {
            for layout in [Layout::from_size_align(MB - 1, 8).unwrap(), Layout::from_size_align(4 * MB, 4096).unwrap()]
            {
                let p = MINE.alloc(layout);
                assert_eq!(p as usize % layout.align(), 0);
                MINE.dealloc(p, layout);
                assert_eq!(MINE.lock().len(), 0);
            }
        }
    }
}
