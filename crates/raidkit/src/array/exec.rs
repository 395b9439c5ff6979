//! The I/O executor and the stripe locks.
//!
//! [`Executor`] runs member tasks: in parallel on the array's thread pool, on the calling
//! thread when they are small and fast enough that a hand-off would cost more than it
//! saves, or one after the other in a fixed order when the array is opened for a seeded
//! simulation (`ArrayOptions::serial_io`). [`StripeLocks`] is the fixed table of
//! reader-writer locks that stripes hash into, with the one ordering rule that keeps
//! multi-stripe requests from deadlocking.
//!
//! Owns the thread pool, the small-task estimate and the lock table. Knows nothing of
//! members, blocks or what a task does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::ArrayError;

/// Member tasks up to this size may run on the calling thread (see `parallel_sized`).
const SMALL_TASK: usize = 64 << 10;
/// Running small tasks one after the other is preferred while it is estimated to cost less
/// than this more than running them in parallel (about what a pool hand-off costs).
const INLINE_BUDGET_NS: u64 = 20_000;
/// Stripe locks in the lock table.
pub(super) const LOCKS: usize = 1024;

/// Runs member tasks for one array.
#[derive(Debug)]
pub(super) struct Executor {
    pool: rayon::ThreadPool,
    /// Every task on the caller's thread, in order (seeded simulations).
    serial: bool,
    /// Moving average of how long one small member task takes, in nanoseconds.
    small_task_ns: AtomicU64,
}

impl Executor {
    /// An executor with `threads` pool threads.
    pub fn new(threads: usize, serial: bool) -> Result<Executor, ArrayError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("raidkit-io-{i}"))
            .build()
            .map_err(|e| ArrayError::Threads(e.to_string()))?;
        Ok(Executor {
            pool,
            serial,
            small_task_ns: AtomicU64::new(0),
        })
    }

    /// Whether every task runs on the caller's thread, in order.
    pub fn serial(&self) -> bool {
        self.serial
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs member tasks of up to `bytes` each: on the calling thread, one after the
    /// other, when small tasks have been measured to take so little time that handing them
    /// to the pool would cost more than it saves (memory-speed members such as tmpfs files
    /// or the page cache); otherwise in parallel on the pool. Slow members (disks, remote
    /// members) keep their I/Os concurrent.
    pub fn parallel_sized<T: Send, R: Send>(
        &self,
        items: Vec<T>,
        bytes: usize,
        f: impl Fn(T) -> R + Sync,
    ) -> Vec<R> {
        if bytes > SMALL_TASK || self.serial {
            return self.parallel(items, f);
        }
        let record = |started: std::time::Instant| {
            let took = started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u64;
            let _ = self
                .small_task_ns
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    Some((old * 7 + took) / 8)
                });
        };
        let timed = |item: T| {
            let started = std::time::Instant::now();
            let result = f(item);
            record(started);
            result
        };
        let estimate = self.small_task_ns.load(Ordering::Relaxed);
        if items.len() <= 1 || estimate * (items.len() as u64 - 1) < INLINE_BUDGET_NS {
            items.into_iter().map(timed).collect()
        } else {
            self.parallel(items, timed)
        }
    }

    /// Runs `f` on every item, in parallel on the pool when there are several.
    pub fn parallel<T: Send, R: Send>(&self, items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
        if items.len() <= 1 || self.serial {
            return items.into_iter().map(f).collect();
        }
        let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
        // The caller runs the last task itself rather than waiting idle: one hand-off fewer.
        self.pool.in_place_scope(|scope| {
            let f = &f;
            let mut pairs = items.into_iter().zip(results.iter_mut());
            let last = pairs.next_back();
            for (item, result) in pairs {
                scope.spawn(move |_| *result = Some(f(item)));
            }
            if let Some((item, result)) = last {
                *result = Some(f(item));
            }
        });
        results
            .into_iter()
            .map(|r| r.expect("every task ran"))
            .collect()
    }

    /// Runs `background` and `foreground` together: `background` on the pool while the
    /// caller runs `foreground`, when `big` and the executor is not serial; otherwise one
    /// after the other, `background` first.
    pub fn beside<A: Send, B>(
        &self,
        big: bool,
        background: impl FnOnce() -> A + Send,
        foreground: impl FnOnce() -> B,
    ) -> (A, B) {
        if !big || self.serial {
            let a = background();
            return (a, foreground());
        }
        let mut a = None;
        let mut b = None;
        self.pool.in_place_scope(|scope| {
            let a = &mut a;
            scope.spawn(move |_| *a = Some(background()));
            b = Some(foreground());
        });
        (
            a.expect("the background task ran"),
            b.expect("the foreground task ran"),
        )
    }
}

/// Runs `f` on every item on its own scoped thread (on the caller's when there is one, or
/// when `serial`, one after the other). For work that may run inside a pool task and must
/// not wait on, or steal, other pool work.
pub(super) fn run_threads<T: Send, R: Send>(
    items: Vec<T>,
    serial: bool,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if items.len() <= 1 || serial {
        return items.into_iter().map(f).collect();
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The stripe locks: a fixed table of reader-writer locks that stripes hash into. Writes
/// and repairs of a stripe hold its lock exclusively, verified reads share it. A request
/// over several stripes takes their locks in table order, so two such requests never wait
/// for each other in a cycle.
#[derive(Debug)]
pub(super) struct StripeLocks {
    locks: Vec<RwLock<()>>,
}

impl StripeLocks {
    /// A table of unlocked locks.
    pub fn new() -> StripeLocks {
        StripeLocks {
            locks: (0..LOCKS).map(|_| RwLock::new(())).collect(),
        }
    }

    fn slot(&self, stripe: u64) -> usize {
        (stripe % self.locks.len() as u64) as usize
    }

    /// Table indices of `stripes`, sorted and without repeats.
    fn order(&self, stripes: impl Iterator<Item = u64>) -> Vec<usize> {
        let mut order: Vec<usize> = stripes.map(|s| self.slot(s)).collect();
        order.sort_unstable();
        order.dedup();
        order
    }

    /// `stripe`'s lock, shared.
    pub fn shared(&self, stripe: u64) -> RwLockReadGuard<'_, ()> {
        self.locks[self.slot(stripe)]
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `stripe`'s lock, exclusive.
    pub fn exclusive(&self, stripe: u64) -> RwLockWriteGuard<'_, ()> {
        self.locks[self.slot(stripe)]
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The shared locks of `stripes`, in table order.
    pub fn shared_all(&self, stripes: impl Iterator<Item = u64>) -> Vec<RwLockReadGuard<'_, ()>> {
        self.order(stripes)
            .into_iter()
            .map(|i| self.locks[i].read().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    /// The exclusive locks of `stripes`, in table order.
    pub fn exclusive_all(
        &self,
        stripes: impl Iterator<Item = u64>,
    ) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.order(stripes)
            .into_iter()
            .map(|i| self.locks[i].write().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    /// Every lock, exclusive: no stripe is read or written until they are dropped.
    pub fn everything(&self) -> Vec<RwLockWriteGuard<'_, ()>> {
        self.exclusive_all(0..self.locks.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_stripe_locks_are_taken_once_each_in_table_order() {
        let locks = StripeLocks::new();
        // Stripes that hash to the same slot share one lock; taking it twice would deadlock.
        let held = locks.exclusive_all([5, 5 + LOCKS as u64, 3, 2 * LOCKS as u64 + 3].into_iter());
        assert_eq!(held.len(), 2);
        assert_eq!(
            locks.order([9, 1, 9 + LOCKS as u64].into_iter()),
            vec![1, 9]
        );
        // A stripe not held can still be taken; one held cannot.
        assert!(locks.locks[7].try_read().is_ok());
        assert!(locks.locks[5].try_read().is_err());
        drop(held);
        assert!(locks.locks[5].try_write().is_ok());
        assert_eq!(locks.everything().len(), LOCKS);
    }

    #[test]
    fn every_item_runs_once_and_results_keep_their_order() {
        for serial in [false, true] {
            let exec = Executor::new(3, serial).unwrap();
            let out = exec.parallel((0..50).collect(), |i: u64| i * i);
            assert_eq!(out, (0..50).map(|i| i * i).collect::<Vec<_>>());
            let out = exec.parallel_sized((0..50).collect(), 4096, |i: u64| i + 1);
            assert_eq!(out, (1..51).collect::<Vec<_>>());
            let (a, b) = exec.beside(true, || 1, || 2);
            assert_eq!((a, b), (1, 2));
            let threads = run_threads((0..4).collect(), serial, |i: u32| i * 10);
            assert_eq!(threads, vec![0, 10, 20, 30]);
        }
    }
}
