//! A parallel map with the standard library's scoped threads, over items
//! that a producer yields one by one, whose results are taken in input
//! order once the producer is done.
//!
//! The producer runs on the calling thread and cuts its items into
//! blocks. Helper threads (one per core but one) convert each block as
//! soon as it is published, so conversion overlaps production (the loader
//! scans a cluster dump's List while its first items already convert).
//! Then the calling thread gives each result to `consume` in input order
//! as soon as its block is done, and converts a block itself whenever the
//! next one is not. So taking the results (the loader's sequential part:
//! duplicates, origins) overlaps the rest of the conversion too, and no
//! core waits on a slow block.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Below this many items a second thread costs more than it saves.
const PER_THREAD_AT_LEAST: usize = 64;

/// Items per block: small enough that the first results are taken early,
/// large enough that claiming a block costs nothing next to converting it.
const BLOCK: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the threads share, under one lock: the published blocks, each
/// block's results, how many blocks are claimed, and whether the producer
/// is done or some thread failed.
struct State<T, R> {
    blocks: Vec<Arc<Vec<T>>>,
    results: Vec<Option<Vec<R>>>,
    claimed: usize,
    produced: bool,
    failed: bool,
}

impl<T, R> State<T, R> {
    /// Claims the next published block, if one is unclaimed. Blocks are
    /// claimed in order.
    fn claim(&mut self) -> Option<(usize, Arc<Vec<T>>)> {
        let block = Arc::clone(self.blocks.get(self.claimed)?);
        self.claimed += 1;
        Some((self.claimed - 1, block))
    }
}

struct Shared<T, R> {
    state: Mutex<State<T, R>>,
    /// Signalled when a block is published or done, production ends, or a
    /// thread fails.
    changed: Condvar,
}

impl<T, R> Shared<T, R> {
    fn new() -> Self {
        let state = State { blocks: Vec::new(), results: Vec::new(), claimed: 0, produced: false, failed: false };
        Shared { state: Mutex::new(state), changed: Condvar::new() }
    }

    fn update(&self, change: impl FnOnce(&mut State<T, R>)) {
        change(&mut lock(&self.state));
        self.changed.notify_all();
    }

    /// Converts block `b` and stores its results.
    fn convert(&self, b: usize, block: &[T], f: &impl Fn(&T) -> R) {
        let out: Vec<R> = block.iter().map(f).collect();
        self.update(|s| s.results[b] = Some(out));
    }

    /// A helper's loop: converts published blocks in turn until the
    /// producer is done and none is left, or a thread failed.
    fn help(&self, f: &impl Fn(&T) -> R) {
        loop {
            let (b, block) = {
                let mut s = lock(&self.state);
                loop {
                    if s.failed {
                        return;
                    }
                    if let Some(claimed) = s.claim() {
                        break claimed;
                    }
                    if s.produced {
                        return;
                    }
                    s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.convert(b, &block, f);
        }
    }
}

/// Marks the map failed and wakes every thread if its thread unwinds, so
/// that no helper waits for blocks that will never be published and the
/// calling thread does not wait for results that will never come.
struct PanicFlag<'s, T, R>(&'s Shared<T, R>);

impl<T, R> Drop for PanicFlag<'_, T, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.update(|s| s.failed = true);
        }
    }
}

/// `produce`'s items mapped by `f` and given to `consume` in the order
/// produced: `f` on up to one thread per core while `produce` still runs,
/// `produce` and `consume` on the calling thread.
pub(crate) fn map_streamed<T: Send + Sync, R: Send>(
    produce: impl FnOnce(&mut dyn FnMut(T)),
    f: impl Fn(&T) -> R + Sync,
    mut consume: impl FnMut(R),
) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let shared = Shared::<T, R>::new();
    let (shared, f) = (&shared, &f);
    std::thread::scope(|scope| {
        let _flag = PanicFlag(shared);
        let (mut pending, mut total, mut helpers) = (Vec::with_capacity(BLOCK), 0usize, 0usize);
        let mut publish = |pending: &mut Vec<T>, total: usize| {
            let block = Arc::new(std::mem::replace(pending, Vec::with_capacity(BLOCK)));
            shared.update(|s| {
                s.blocks.push(block);
                s.results.push(None);
            });
            // Helpers start once there is enough work for them.
            let wanted = (cores - 1).min(total / PER_THREAD_AT_LEAST);
            while helpers < wanted {
                helpers += 1;
                scope.spawn(move || {
                    let _flag = PanicFlag(shared);
                    shared.help(f);
                });
            }
        };
        produce(&mut |item| {
            pending.push(item);
            total += 1;
            if pending.len() == BLOCK {
                publish(&mut pending, total);
            }
        });
        if !pending.is_empty() {
            publish(&mut pending, total);
        }
        shared.update(|s| s.produced = true);
        let blocks = lock(&shared.state).blocks.len();
        for b in 0..blocks {
            loop {
                let mut s = lock(&shared.state);
                if let Some(out) = s.results[b].take() {
                    drop(s);
                    out.into_iter().for_each(&mut consume);
                    break;
                }
                // Blocks before `b` are taken, so this is `b` or a later one.
                if let Some((claimed, block)) = s.claim() {
                    drop(s);
                    shared.convert(claimed, &block, f);
                    continue;
                }
                if s.failed {
                    // The scope re-raises the helper's panic when it ends.
                    return;
                }
                // Every block is claimed and this one is not done: wait for
                // the helper converting it.
                drop(shared.changed.wait(s).unwrap_or_else(PoisonError::into_inner));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::map_streamed;

    fn collected<T: Send + Sync + Clone, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        let mut out = Vec::new();
        map_streamed(|emit| items.iter().cloned().for_each(emit), f, |r| out.push(r));
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
    fn items_convert_while_the_producer_still_runs() {
        // The producer waits (bounded) after its first blocks until one of
        // them has been converted: only a helper can do that meanwhile.
        let converted = std::sync::atomic::AtomicUsize::new(0);
        let mut seen_while_producing = 0;
        let mut out = Vec::new();
        map_streamed(
            |emit| {
                for i in 0..2_000usize {
                    emit(i);
                    if i == 1_000 {
                        let start = std::time::Instant::now();
                        while converted.load(std::sync::atomic::Ordering::Relaxed) == 0
                            && start.elapsed() < std::time::Duration::from_secs(5)
                        {
                            std::thread::yield_now();
                        }
                        seen_while_producing = converted.load(std::sync::atomic::Ordering::Relaxed);
                    }
                }
            },
            |i| {
                converted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *i
            },
            |r| out.push(r),
        );
        assert_eq!(out, (0..2_000).collect::<Vec<_>>());
        if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) > 1 {
            assert!(seen_while_producing > 0, "nothing converted while the producer ran");
        }
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

    #[test]
    fn a_panic_in_the_producer_or_the_consumer_does_not_hang_the_helpers() {
        let caught = std::panic::catch_unwind(|| {
            map_streamed(
                |emit| {
                    for i in 0..1_000usize {
                        emit(i);
                    }
                    panic!("producer");
                },
                |i| *i,
                |_| {},
            );
        });
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(|| {
            map_streamed(|emit| (0..5_000usize).for_each(emit), |i| *i, |r| assert!(r != 2_000, "consumer"));
        });
        assert!(caught.is_err());
    }
}
