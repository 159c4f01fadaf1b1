//! A value that a thread of its own may still be working out while its owner goes on: readers
//! wait for it at their first look. A seal hands the recent days' upkeep to such a thread, so that
//! an update's recompute (which does not read them) runs while it finishes.

use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// A value, or the thread working it out (with how long that took, in seconds).
pub(crate) struct Beside<T> {
    done: OnceLock<(T, f64)>,
    worker: Mutex<Option<JoinHandle<(T, f64)>>>,
}

impl<T: Send + 'static> Beside<T> {
    pub(crate) fn ready(value: T) -> Self {
        Beside { done: OnceLock::from((value, 0.0)), worker: Mutex::new(None) }
    }

    /// The value `work` returns, worked out on a thread of its own from now on.
    pub(crate) fn later(work: impl FnOnce() -> T + Send + 'static) -> Self {
        let worker = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let value = work();
            (value, started.elapsed().as_secs_f64())
        });
        Beside { done: OnceLock::new(), worker: Mutex::new(Some(worker)) }
    }

    /// The value, once its thread is done (a panic there goes on here).
    pub(crate) fn get(&self) -> &T {
        &self.done_pair().0
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.done_pair();
        &mut self.done.get_mut().expect("the value was just worked out").0
    }

    /// The value, taken out (`Default` left in its place).
    pub(crate) fn take(&mut self) -> T
    where
        T: Default,
    {
        std::mem::take(self.get_mut())
    }

    /// Whether the value is still being worked out.
    pub(crate) fn pending(&self) -> bool {
        self.done.get().is_none()
    }

    /// How long the thread took (0 for a value that was ready), once done.
    pub(crate) fn busy_s(&self) -> f64 {
        self.done_pair().1
    }

    fn done_pair(&self) -> &(T, f64) {
        self.done.get_or_init(|| {
            let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
            let worker = worker.expect("a value not yet done has its thread");
            match worker.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl<T: Default + Send + 'static> Default for Beside<T> {
    fn default() -> Self {
        Beside::ready(T::default())
    }
}

impl<T: Clone + Send + 'static> Clone for Beside<T> {
    fn clone(&self) -> Self {
        Beside::ready(self.get().clone())
    }
}

impl<T: std::fmt::Debug + Send + 'static> std::fmt::Debug for Beside<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.done.get() {
            Some((value, _)) => value.fmt(f),
            None => f.write_str("(being worked out)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_reader_waits_for_the_thread_and_sees_its_value() {
        let (go, wait) = mpsc::channel::<u32>();
        let mut b = Beside::later(move || wait.recv().expect("the test sends") * 2);
        assert!(b.pending());
        go.send(21).unwrap();
        assert_eq!(*b.get(), 42);
        assert!(!b.pending());
        *b.get_mut() += 1;
        assert_eq!(b.take(), 43);
        assert_eq!(*b.get(), 0);
        assert_eq!(Beside::ready(5).busy_s(), 0.0);
    }

    #[test]
    fn readers_on_several_threads_all_see_the_one_value() {
        let (go, wait) = mpsc::channel::<Vec<u32>>();
        let b = Beside::later(move || wait.recv().expect("the test sends"));
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..4).map(|_| s.spawn(|| b.get().clone())).collect();
            go.send(vec![1, 2, 3]).unwrap();
            for r in readers {
                assert_eq!(r.join().unwrap(), [1, 2, 3]);
            }
        });
        assert!(b.busy_s() >= 0.0);
        assert_eq!(b.clone().get(), &[1, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "worked out badly")]
    fn a_panic_on_the_thread_reaches_the_reader() {
        let b: Beside<u32> = Beside::later(|| panic!("worked out badly"));
        b.get();
    }
}
