//! A parallel map over a slice with the standard library's scoped threads,
//! whose results are taken in input order while later items still convert.
//!
//! The items are cut into blocks. Helper threads (one per core but one)
//! convert blocks in turn; the calling thread gives each result to
//! `consume` in input order as soon as its block is done, and converts a
//! block itself whenever the next one is not. So taking the results (the
//! loader's sequential part: duplicates, origins) overlaps the conversion
//! instead of following it, and no core waits on a slow block.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Below this many items a second thread costs more than it saves.
const PER_THREAD_AT_LEAST: usize = 64;

/// Items per block: small enough that the first results are taken early,
/// large enough that claiming a block costs nothing next to converting it.
const BLOCK: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the threads share: the next block to claim, each block's results,
/// and the signal that a block is done (or a helper panicked).
struct Shared<'t, T, R> {
    blocks: Vec<&'t [T]>,
    next: AtomicUsize,
    done: Vec<Mutex<Option<Vec<R>>>>,
    signal: Mutex<()>,
    changed: Condvar,
    failed: AtomicBool,
}

impl<T, R> Shared<'_, T, R> {
    /// Converts the next unclaimed block; false when none is left.
    fn convert_next(&self, f: &impl Fn(&T) -> R) -> bool {
        let b = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(block) = self.blocks.get(b) else { return false };
        let out: Vec<R> = block.iter().map(f).collect();
        *lock(&self.done[b]) = Some(out);
        // Notified under the signal's lock: a waiter that saw the block
        // missing is already waiting, so it cannot miss this.
        let _signal = lock(&self.signal);
        self.changed.notify_all();
        true
    }
}

/// Sets `failed` and wakes the calling thread if a helper unwinds, so that
/// it stops waiting for a block that will never be done.
struct PanicFlag<'s, 't, T, R>(&'s Shared<'t, T, R>);

impl<T, R> Drop for PanicFlag<'_, '_, T, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Relaxed);
            let _signal = lock(&self.0.signal);
            self.0.changed.notify_all();
        }
    }
}

/// `items.iter().map(f).for_each(consume)`, with `f` on up to one thread
/// per core and `consume` on the calling thread, in input order.
pub(crate) fn map_in_order<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync, mut consume: impl FnMut(R)) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let helpers = (cores - 1).min(items.len() / PER_THREAD_AT_LEAST);
    if helpers == 0 {
        items.iter().map(f).for_each(consume);
        return;
    }
    let blocks: Vec<&[T]> = items.chunks(BLOCK).collect();
    let shared = Shared {
        done: (0..blocks.len()).map(|_| Mutex::new(None)).collect(),
        blocks,
        next: AtomicUsize::new(0),
        signal: Mutex::new(()),
        changed: Condvar::new(),
        failed: AtomicBool::new(false),
    };
    let (shared, f) = (&shared, &f);
    std::thread::scope(|s| {
        for _ in 0..helpers {
            s.spawn(move || {
                let _flag = PanicFlag(shared);
                while shared.convert_next(f) {}
            });
        }
        for b in 0..shared.blocks.len() {
            loop {
                if let Some(out) = lock(&shared.done[b]).take() {
                    out.into_iter().for_each(&mut consume);
                    break;
                }
                if shared.convert_next(f) {
                    continue;
                }
                // Every block is claimed and this one is not done: wait for
                // the helper converting it.
                let signal = lock(&shared.signal);
                if shared.failed.load(Ordering::Relaxed) {
                    // The scope re-raises the helper's panic when it ends.
                    return;
                }
                if lock(&shared.done[b]).is_none() {
                    drop(shared.changed.wait(signal).unwrap_or_else(PoisonError::into_inner));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::map_in_order;

    fn collected<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let mut out = Vec::new();
        map_in_order(items, f, |r| out.push(r));
        out
    }

    #[test]
    fn results_are_taken_in_the_input_order() {
        let items: Vec<usize> = (0..10_000).collect();
        assert_eq!(collected(&items, |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        // Blocks that take longer than later ones still come first.
        let slow = collected(&items, |i| {
            if i % 700 < 3 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            *i
        });
        assert_eq!(slow, items);
        assert_eq!(collected(&[1, 2], |i| i + 1), [2, 3]);
        assert!(collected(&[] as &[u8], |i| *i).is_empty());
    }

    #[test]
    fn a_panic_in_a_conversion_reaches_the_caller_and_nothing_hangs() {
        let items: Vec<usize> = (0..5_000).collect();
        for bad in [0, 300, 4_999] {
            let caught = std::panic::catch_unwind(|| {
                collected(&items, |i| {
                    assert!(*i != bad, "item {bad}");
                    *i
                })
            });
            assert!(caught.is_err(), "the panic at {bad} was lost");
        }
    }
}
