//! The stripe pipeline every path that recovers blocks goes through, in the spirit of md's
//! `analyse_stripe` → `handle_stripe`:
//!
//! 1. **Read and classify** ([`Array::read_positions`]): each block of the rows read is
//!    good, absent (no disk serves it: the member is out, behind, or the disk taking the
//!    role over does not hold the stripe yet), a read error, a checksum mismatch, or listed
//!    in the bad-block log.
//! 2. **Plan the recovery** ([`Array::recover`]): rows are grouped by their set of lost
//!    blocks; each group with no more losses than the redundancy is rebuilt in place, and
//!    every rebuilt block on a present disk is judged ([`Found`]): it matches its own
//!    checksum, it is exactly what is stored (only its checksum entry was damaged), it
//!    disagrees (the row's redundancy and checksums do not agree), or there is nothing to
//!    check it against.
//! 3. **Heal** ([`Array::heal`]): count the errors once the rows are understood (a damaged
//!    entry is no error of the data), rewrite damaged entries, write repaired blocks back,
//!    and take blocks that are back off the bad-block log.
//! 4. **Walk** ([`Array::walk`]): scrub and rebuild go over the array a few stripes at a
//!    time through one walker, which owns the stripe locks, the parallelism, cancelling,
//!    checkpoints and the rate limit.
//!
//! The policies on top are short: reads ([`Array::load_rows`]) fail naming the range
//! when a wanted block is lost; a rebuild fills the incoming disk and lists lost rows; a
//! scrub reports and (with repair) rewrites; a resync restores or lets the data win.
//!
//! This module owns no state of its own; it must not decide policy (what a lost row means
//! to the caller), only find out and carry out what the caller asks.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::exec::LOCKS;
use super::member::Incoming;
use super::pool::PoolBuf;
use super::roster::Holder;
use super::{Array, ArrayError};
use crate::format::{self, CSUM_BLOCK};

pub(super) const BS: usize = CSUM_BLOCK as usize;

/// What is known about one block once read (module step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Blk {
    /// Not read yet.
    Unread,
    /// Read and verified.
    Good,
    /// The member returned an I/O error.
    Eio,
    /// Read, but the checksum does not match.
    Mismatch,
    /// The member is not in service.
    Absent,
    /// In the member's bad-block log: its contents are known lost.
    Listed,
}

/// What the recovery found out about one lost block it rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// No disk serves it (absent), or it was not read: rebuilt, with nothing to check it
    /// against.
    Unchecked,
    /// It failed (read error or checksum); rebuilt, it matches its own checksum.
    Verified,
    /// It failed its checksum, and the redundancy gives back exactly the stored bytes: the
    /// block is intact and its checksum entry is what was damaged.
    Entry,
    /// Rebuilt, it does not match its own checksum: the row's redundancy and checksums
    /// disagree, and the rebuilt bytes cannot be trusted.
    Disagrees,
    /// Listed in its disk's bad-block log: rebuilt from the others.
    Listed,
}

/// What the recovery did with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Row {
    /// Every block is good.
    Intact,
    /// The caller asked not to rebuild rows with these losses.
    Skipped(Vec<usize>),
    /// More blocks lost than the stripe's redundancy: nothing rebuilt.
    TooMany(Vec<usize>),
    /// The lost blocks were rebuilt in place, each judged.
    Rebuilt(Vec<(usize, Found)>),
}

impl Row {
    /// The positions lost in this row.
    pub fn lost(&self) -> Vec<usize> {
        match self {
            Row::Intact => Vec::new(),
            Row::Skipped(lost) | Row::TooMany(lost) => lost.clone(),
            Row::Rebuilt(found) => found.iter().map(|f| f.0).collect(),
        }
    }

    /// Rebuilt, and no rebuilt block disagrees with its checksum.
    pub fn trusted(&self) -> bool {
        match self {
            Row::Rebuilt(found) => found.iter().all(|f| f.1 != Found::Disagrees),
            _ => false,
        }
    }
}

/// The recovery of some rows of one stripe: one [`Row`] per row, and the bytes the blocks
/// that failed their checksum held before they were rebuilt over.
pub(super) struct Recovery {
    pub rows: Vec<Row>,
    /// (position, row index, bytes as read) of every rebuilt block that was read but did
    /// not match its checksum.
    pub stored: Vec<(usize, usize, Vec<u8>)>,
}

impl Recovery {
    /// The bytes block (`pos`, `r`) held as read, when it failed its checksum and was
    /// rebuilt over.
    pub fn stored(&self, pos: usize, r: usize) -> Option<&[u8]> {
        self.stored
            .iter()
            .find(|(p, row, _)| *p == pos && *row == r)
            .map(|(_, _, bytes)| &bytes[..])
    }
}

/// What to write back after a recovery: damaged checksum entries of intact blocks, repaired
/// blocks (to the disk they were read from), and blocks rebuilt out of the bad-block log
/// (to every disk holding the role, which takes them off the log).
#[derive(Debug, Default)]
pub(super) struct Heal {
    /// (position, row index) of intact blocks whose entry was damaged.
    pub entries: Vec<(usize, usize)>,
    /// Rewrite the entries (else they are only left out of the error counts).
    pub fix_entries: bool,
    /// Per position, the row indexes of repaired blocks.
    pub repairs: Vec<Vec<usize>>,
    /// (position, row index) of blocks that are back.
    pub relisted: Vec<(usize, usize)>,
}

/// How [`Array::walk`] goes over stripes.
/// A walk's position is recorded at least this often (besides every `checkpoint_every`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

pub(super) struct Walk<'w> {
    /// The stripes, from the first to walk.
    pub stripes: Range<u64>,
    /// Stripes handled at once (their locks are taken together).
    pub group: u64,
    /// Stops the walk before the next group when set.
    pub cancel: &'w AtomicBool,
    /// Bytes per second at most, counted as `bytes_per_stripe` per stripe.
    pub rate: Option<u64>,
    /// What one stripe counts for the rate.
    pub bytes_per_stripe: u64,
    /// Calls the checkpoint after this many stripes (and never at the end: the caller
    /// records the end itself).
    pub checkpoint_every: u64,
    /// Stripes that need no work: `skip(next, end)` is the first stripe of `next..end` to
    /// walk (`next` when none can be skipped). Asked again under the locks of the run it
    /// skips, which then count as walked (`under_locks` and `done` with no results).
    pub skip: Option<&'w (dyn Fn(u64, u64) -> u64 + Sync)>,
}

/// Bytes of stripe buffers one group of a long walk holds at most (two groups are in
/// flight, within what the buffer pool keeps for reuse).
const GROUP_BYTES: u64 = 24 << 20;

/// Stripes per group of a long walk (scrub, rebuild) over stripes of `stripe_bytes` on
/// every member together: as many as fit in [`GROUP_BYTES`], from 4 to 64. More stripes
/// in flight keep more requests queued on each member; fewer keep user writes to those
/// stripes from waiting long.
pub(super) fn group_for(stripe_bytes: u64) -> u64 {
    (GROUP_BYTES / stripe_bytes.max(1)).clamp(4, 64)
}

impl Walk<'static> {
    /// One stripe at a time, on the caller's thread, to the end (no cancel, rate or
    /// checkpoints): for walks whose stripes may mark the session map, whose lock must
    /// never be awaited from a pool task (the pool could run another stripe's task on the
    /// thread holding it).
    pub fn serial(stripes: Range<u64>, bytes_per_stripe: u64) -> Walk<'static> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Walk {
            stripes,
            group: 1,
            cancel: &NEVER,
            rate: None,
            bytes_per_stripe,
            checkpoint_every: u64::MAX,
            skip: None,
        }
    }
}

/// Where a walk stopped.
pub(super) struct Walked {
    /// The first stripe not walked.
    pub next: u64,
    /// Whether `cancel` stopped it.
    pub cancelled: bool,
    /// Stripes `Walk::skip` let it pass over.
    pub skipped: u64,
}

/// Where a walk stands, between groups.
struct Progressed {
    started: Instant,
    /// The first stripe not done.
    next: u64,
    /// The position last checkpointed.
    recorded: u64,
    /// Stripes walked (not skipped), for the rate.
    walked: u64,
    skipped: u64,
    last_checkpoint: Instant,
    /// Checkpoints also every [`CHECKPOINT_INTERVAL`].
    timed: bool,
}

impl Progressed {
    /// Calls `checkpoint` when it is due (never at the end: the caller records that).
    fn checkpoint(
        &mut self,
        walk: &Walk<'_>,
        end: u64,
        checkpoint: &mut dyn FnMut(u64) -> Result<(), ArrayError>,
    ) -> Result<(), ArrayError> {
        let every = walk.checkpoint_every.max(1);
        let due = self.timed && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL;
        if (self.next - self.recorded >= every || due) && self.next < end {
            checkpoint(self.next)?;
            self.recorded = self.next;
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }
}

/// A group's results, stripe by stripe.
type GroupResult<T> = Result<Vec<(u64, T)>, ArrayError>;

/// A yes/no set once by one group's thread and awaited by the next one's; set to no if the
/// thread ends without setting it (an early return or a panic), so nobody waits forever.
#[derive(Default)]
struct Signal {
    value: Mutex<Option<bool>>,
    set: Condvar,
}

impl Signal {
    fn set(&self, value: bool) {
        let mut slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(value);
            self.set.notify_all();
        }
    }

    fn wait(&self) -> bool {
        let mut slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(value) = *slot {
                return value;
            }
            slot = self.set.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Sets a signal to no when dropped unset.
struct SetOnDrop(Arc<Signal>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// A group of a walk running on its own thread, which holds the group's stripe locks.
struct InFlight<'scope, T> {
    handle: Option<std::thread::ScopedJoinHandle<'scope, GroupResult<T>>>,
    /// Set once the group holds every one of its locks.
    locked: Arc<Signal>,
    /// Set once the group is done under its locks (`under_locks` ran: yes) or failed (no).
    settled: Arc<Signal>,
}

impl<T> InFlight<'_, T> {
    /// The group's results, once its thread ended (its locks released).
    fn wait(&mut self) -> GroupResult<T> {
        match self.handle.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Ok(Vec::new()),
        }
    }
}

impl<T> Drop for InFlight<'_, T> {
    /// Waits for the group's thread, also when the walk stops early with an error.
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Array {
    /// Rebuilds the lost blocks of `rows` of `stripe` in place in `bufs`, group by group of
    /// rows with the same losses (see the module's step 2). Groups whose losses `skip`
    /// accepts are left as they are. Nothing is written and nothing counted.
    pub(super) fn recover(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        bufs: &mut [PoolBuf<'_>],
        status: &[Vec<Blk>],
        skip: &dyn Fn(&[usize]) -> bool,
    ) -> Result<Recovery, ArrayError> {
        let width = self.width();
        let m = self.layout.m();
        let nrows = (rows.end - rows.start) as usize;
        let lost_at = |r: usize| -> Vec<usize> {
            (0..width).filter(|&p| status[p][r] != Blk::Good).collect()
        };
        // Rows `a` and `b` lost the same positions (compared without collecting them).
        let same_losses = |a: usize, b: usize| {
            (0..width).all(|p| (status[p][a] == Blk::Good) == (status[p][b] == Blk::Good))
        };
        let mut out = Recovery {
            rows: Vec::with_capacity(nrows),
            stored: Vec::new(),
        };
        let mut row = 0;
        while row < nrows {
            let lost = lost_at(row);
            let mut end = row + 1;
            while end < nrows && same_losses(row, end) {
                end += 1;
            }
            let group = row..end;
            row = end;
            let verdict = if lost.is_empty() {
                Row::Intact
            } else if skip(&lost) {
                Row::Skipped(lost.clone())
            } else if lost.len() > m {
                Row::TooMany(lost.clone())
            } else {
                // Keep what failed its checksum before it is rebuilt over.
                for &pos in &lost {
                    for r in group.clone() {
                        if status[pos][r] == Blk::Mismatch {
                            out.stored
                                .push((pos, r, bufs[pos][r * BS..(r + 1) * BS].to_vec()));
                        }
                    }
                }
                let bytes = group.start * BS..group.end * BS;
                let mut slices: Vec<&mut [u8]> =
                    bufs.iter_mut().map(|b| &mut b[bytes.clone()]).collect();
                self.reconstruct(&mut slices, &lost)?;
                // Judged per row below.
                Row::Rebuilt(Vec::new())
            };
            if !matches!(verdict, Row::Rebuilt(_)) {
                out.rows.extend(group.map(|_| verdict.clone()));
                continue;
            }
            // Who holds each lost position is the same for every row of the stripe.
            let holders: Vec<(usize, Option<Holder>)> = lost
                .iter()
                .map(|&pos| {
                    let role = self.layout.member_at(stripe, pos);
                    (pos, self.members.reader(role, stripe))
                })
                .collect();
            for r in group {
                let found = holders
                    .iter()
                    .map(|(pos, holder)| {
                        let verdict =
                            self.judge(stripe, rows, bufs, status, &out, *pos, r, holder.as_ref());
                        (*pos, verdict)
                    })
                    .collect();
                out.rows.push(Row::Rebuilt(found));
            }
        }
        Ok(out)
    }

    /// Judges rebuilt block (`pos`, row index `r`): see [`Found`].
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        bufs: &[PoolBuf<'_>],
        status: &[Vec<Blk>],
        recovery: &Recovery,
        pos: usize,
        r: usize,
        holder: Option<&Holder>,
    ) -> Found {
        let Some(holder) = holder else {
            return Found::Unchecked;
        };
        match status[pos][r] {
            Blk::Eio | Blk::Mismatch => {}
            Blk::Listed => return Found::Listed,
            _ => return Found::Unchecked,
        }
        let block = &bufs[pos][r * BS..(r + 1) * BS];
        if recovery.stored(pos, r) == Some(block) {
            return Found::Entry;
        }
        let role = self.layout.member_at(stripe, pos);
        if self
            .verify(&holder.table, role, stripe, rows.start + r as u64, block)
            .is_empty()
        {
            Found::Verified
        } else {
            Found::Disagrees
        }
    }

    /// Writes back what a recovery of `rows` of `stripe` found (module step 3): counts the
    /// read and checksum errors of `status` (leaving out damaged entries), rewrites the
    /// entries, writes repaired blocks to the disks they came from, and blocks that are back
    /// to every disk holding their role.
    pub(super) fn heal(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        bufs: &[PoolBuf<'_>],
        status: &[Vec<Blk>],
        heal: &Heal,
    ) -> Result<(), ArrayError> {
        self.count_errors(stripe, status, &heal.entries);
        if heal.fix_entries {
            for &(pos, r) in &heal.entries {
                self.fix_entry(
                    stripe,
                    pos,
                    rows.start + r as u64,
                    &bufs[pos][r * BS..(r + 1) * BS],
                );
            }
        }
        if heal.repairs.iter().any(|r| !r.is_empty()) {
            self.write_repairs(stripe, rows, bufs, &heal.repairs);
        }
        for &(pos, r) in &heal.relisted {
            let row = rows.start + r as u64;
            let block = &bufs[pos][r * BS..(r + 1) * BS];
            self.write_positions(stripe, &(row..row + 1), vec![(pos, block)])?;
        }
        Ok(())
    }

    /// Goes over `walk.stripes` a group at a time (module step 4): the group's locks are
    /// taken in lock-table order, never inside a pool task (a task blocked on a lock held
    /// by a caller waiting for the pool would deadlock); `each` runs for every stripe of
    /// the group on lanes of their own (`run_group`); `under_locks(end)` runs once the group and every group before
    /// it succeeded, before its locks are released; `done(next, results)` gets the group's
    /// results in stripe order; `checkpoint(next)` every `checkpoint_every` stripes; then
    /// the rate limit. `before` runs before each group and may stop the walk with an error.
    /// `before`, `done` and `checkpoint` run on the caller's thread holding no stripe lock
    /// (they may read and write the array).
    ///
    /// Two groups are in flight at once (except in seeded runs, paced walks and one-stripe
    /// walks), each on its own thread holding its own locks: the next group starts before
    /// the last one is waited for, so the members' queues never drain between groups (one
    /// group's reads run beside the other's writes). A group takes its locks only once the
    /// group before it holds all of its own, so locks are still taken as one ascending run
    /// would take them; and it runs `under_locks` only after the group before it did.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn walk<T: Send>(
        &self,
        walk: &Walk<'_>,
        before: &mut dyn FnMut() -> Result<(), ArrayError>,
        each: &(dyn Fn(u64) -> Result<T, ArrayError> + Sync),
        under_locks: &(dyn Fn(u64) + Sync),
        done: &mut dyn FnMut(u64, Vec<(u64, T)>),
        checkpoint: &mut dyn FnMut(u64) -> Result<(), ArrayError>,
    ) -> Result<Walked, ArrayError> {
        let end = walk.stripes.end;
        // A paced walk sleeps between groups: not with a second group's locks held.
        let overlap = !self.options.serial_io && walk.group > 1 && walk.rate.is_none_or(|r| r == 0);
        let mut at = Progressed {
            started: Instant::now(),
            next: walk.stripes.start,
            recorded: walk.stripes.start,
            walked: 0,
            skipped: 0,
            last_checkpoint: Instant::now(),
            // A slow walk also records its position every few seconds (for watchers, and
            // a closer restart), except in serial runs, which must replay call for call.
            timed: !self.options.serial_io && walk.checkpoint_every != u64::MAX,
        };
        // A group never spans more than a checkpoint interval, nor (paced) more than a
        // tenth of a second at the rate, so the pace stays smooth and checkpoints come on
        // time.
        let paced = walk
            .rate
            .filter(|&r| r > 0)
            .map_or(u64::MAX, |rate| rate / 10 / walk.bytes_per_stripe.max(1));
        let group = walk.group.min(walk.checkpoint_every).min(paced).max(1);
        std::thread::scope(|scope| {
            let mut pending: Option<InFlight<'_, T>> = None;
            // The first stripe not started.
            let mut queued = at.next;
            while queued < end {
                if walk.cancel.load(Ordering::Relaxed) {
                    break;
                }
                before()?;
                if let Some(skip) = walk.skip
                    && skip(queued, end) > queued
                {
                    if let Some(group) = pending.take() {
                        self.settle(group, walk, &mut at, done, checkpoint)?;
                    }
                    // A long run takes every lock (cheaper than a lock per stripe).
                    let upto = skip(queued, end);
                    let _locks = if upto - queued >= LOCKS as u64 {
                        self.locks.everything()
                    } else {
                        self.locks.exclusive_all(queued..upto)
                    };
                    let upto = skip(queued, upto);
                    if upto > queued {
                        under_locks(upto);
                        at.skipped += upto - queued;
                        at.next = upto;
                        queued = upto;
                        drop(_locks);
                        done(upto, Vec::new());
                        at.checkpoint(walk, end, checkpoint)?;
                        continue;
                    }
                }
                let last = end.min(queued + group);
                let stripes = queued..last;
                queued = last;
                if !overlap {
                    let results = {
                        let _locks = self.locks.exclusive_all(stripes.clone());
                        let results = self.run_group(stripes, each)?;
                        under_locks(last);
                        results
                    };
                    self.advance(results, walk, &mut at, done, checkpoint)?;
                    continue;
                }
                let locked = Arc::new(Signal::default());
                let settled = Arc::new(Signal::default());
                let previous = pending
                    .as_ref()
                    .map(|p| (p.locked.clone(), p.settled.clone()));
                let handle = {
                    let (locked, settled) = (locked.clone(), settled.clone());
                    scope.spawn(move || {
                        let _unset = (SetOnDrop(locked.clone()), SetOnDrop(settled.clone()));
                        if let Some((previous, _)) = &previous {
                            previous.wait();
                        }
                        let _locks = self.locks.exclusive_all(stripes.clone());
                        locked.set(true);
                        let results = self.run_group(stripes, each);
                        let before_ok = previous.as_ref().is_none_or(|(_, s)| s.wait());
                        if before_ok && results.is_ok() {
                            under_locks(last);
                            settled.set(true);
                        }
                        results
                    })
                };
                let started = InFlight {
                    handle: Some(handle),
                    locked,
                    settled,
                };
                if let Some(group) = pending.replace(started) {
                    self.settle(group, walk, &mut at, done, checkpoint)?;
                }
            }
            if let Some(group) = pending.take() {
                self.settle(group, walk, &mut at, done, checkpoint)?;
            }
            Ok(Walked {
                next: at.next,
                cancelled: at.next < end,
                skipped: at.skipped,
            })
        })
    }

    /// Runs `each` for every stripe of a group: on lanes of their own (scoped threads, as
    /// many as the pool has), never as pool tasks. A stripe's work may wait on array
    /// locks (the data map, the journal) whose holders wait on the pool for their member
    /// I/O; pool threads blocked that way could leave none to serve them. The lanes hand
    /// only member I/O to the pool. Seeded runs: in order on the caller's thread.
    fn run_group<T: Send>(
        &self,
        stripes: Range<u64>,
        each: &(dyn Fn(u64) -> Result<T, ArrayError> + Sync),
    ) -> GroupResult<T> {
        let stripes: Vec<u64> = stripes.collect();
        if self.io.serial() {
            return stripes
                .into_iter()
                .map(|stripe| each(stripe).map(|t| (stripe, t)))
                .collect();
        }
        let lanes = self.io.threads().clamp(1, stripes.len().max(1));
        let work: Vec<Vec<u64>> = (0..lanes)
            .map(|lane| stripes.iter().copied().skip(lane).step_by(lanes).collect())
            .collect();
        let mut done: Vec<(u64, Result<T, ArrayError>)> =
            super::exec::run_threads(work, false, |mine| {
                mine.into_iter()
                    .map(|stripe| (stripe, each(stripe)))
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect();
        done.sort_by_key(|(stripe, _)| *stripe);
        done.into_iter()
            .map(|(stripe, result)| result.map(|t| (stripe, t)))
            .collect()
    }

    /// Waits for a group in flight, then hands its results on as [`Array::walk`] says.
    fn settle<T: Send>(
        &self,
        mut group: InFlight<'_, T>,
        walk: &Walk<'_>,
        at: &mut Progressed,
        done: &mut dyn FnMut(u64, Vec<(u64, T)>),
        checkpoint: &mut dyn FnMut(u64) -> Result<(), ArrayError>,
    ) -> Result<(), ArrayError> {
        let results = group.wait()?;
        self.advance(results, walk, at, done, checkpoint)
    }

    /// Counts a group done: `done`, the checkpoint when due, then the rate limit.
    fn advance<T: Send>(
        &self,
        results: Vec<(u64, T)>,
        walk: &Walk<'_>,
        at: &mut Progressed,
        done: &mut dyn FnMut(u64, Vec<(u64, T)>),
        checkpoint: &mut dyn FnMut(u64) -> Result<(), ArrayError>,
    ) -> Result<(), ArrayError> {
        at.walked += results.len() as u64;
        at.next = at.next.max(results.last().map_or(at.next, |r| r.0 + 1));
        done(at.next, results);
        at.checkpoint(walk, walk.stripes.end, checkpoint)?;
        if let Some(rate) = walk.rate.filter(|&r| r > 0) {
            let bytes = at.walked * walk.bytes_per_stripe;
            let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(at.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    }

    /// Counts the read and checksum errors of `status` against the members holding them
    /// (not against a disk being filled), leaving out the blocks in `except` (intact blocks
    /// whose checksum entry was damaged).
    pub(super) fn count_errors(&self, stripe: u64, status: &[Vec<Blk>], except: &[(usize, usize)]) {
        for (pos, blocks) in status.iter().enumerate() {
            let eio = blocks.iter().filter(|s| **s == Blk::Eio).count() as u64;
            let mismatch = blocks
                .iter()
                .enumerate()
                .filter(|(r, s)| **s == Blk::Mismatch && !except.contains(&(pos, *r)))
                .count() as u64;
            if eio == 0 && mismatch == 0 {
                continue;
            }
            let role = self.layout.member_at(stripe, pos);
            if self
                .members
                .reader(role, stripe)
                .is_none_or(|h| h.incoming.is_some())
            {
                continue;
            }
            self.note_errors(role, eio, mismatch);
        }
    }

    /// Rewrites the checksum entry of an intact block (`row` of `pos` in `stripe`) whose
    /// entry was damaged: the row's redundancy gave back exactly the stored bytes.
    pub(super) fn fix_entry(&self, stripe: u64, pos: usize, row: u64, block: &[u8]) {
        // A report writes nothing, not even a table page an eviction would write back.
        if self.options.access == super::Access::Inspect {
            return;
        }
        let role = self.layout.member_at(stripe, pos);
        let Some(holder) = self.members.reader(role, stripe) else {
            return;
        };
        let index = self.block_index(stripe, row);
        if let Err(e) = holder
            .table
            .set_range(index, &[format::checksum_entry(role, index, block)])
        {
            log::warn!("role {role}: its checksum entry could not be fixed ({e})");
            return;
        }
        if holder.incoming.is_none() {
            self.members[role]
                .counters
                .repaired
                .fetch_add(1, Ordering::Relaxed);
            self.emit(crate::events::Event::BlocksHealed {
                member: self.members[role].name(),
                blocks: 1,
            });
        }
        log::info!(
            "{}: the checksum entry of block {index} was damaged (the block agrees with the row's redundancy); rewritten",
            self.holder_name(role, stripe)
        );
    }

    /// Rewrites repaired blocks on the disks they were read from.
    pub(super) fn write_repairs(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        bufs: &[PoolBuf<'_>],
        repairs: &[Vec<usize>],
    ) {
        if self.options.access == super::Access::Inspect {
            // A report writes nothing: the damage is counted, and left for an owner.
            return;
        }
        let jobs: Vec<(usize, &Vec<usize>)> = repairs
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .collect();
        let failed = self.io.parallel_sized(jobs, 0, |(pos, list)| {
            let role = self.layout.member_at(stripe, pos);
            let holder = self.members.reader(role, stripe)?;
            for &r in list {
                let offset = self.disk_offset(stripe, rows.start + r as u64);
                if let Err(e) = holder
                    .disk
                    .write_at(&bufs[pos][r * BS..(r + 1) * BS], offset)
                {
                    if let Some(incoming) = &holder.incoming {
                        self.abandon(role, incoming, &format!("repair write failed: {e}"));
                        return None;
                    }
                    self.members[role]
                        .counters
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return Some((role, format!("repair write failed: {e}")));
                }
                self.members[role]
                    .counters
                    .repaired
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.emit(crate::events::Event::BlocksHealed {
                member: self.members[role].name(),
                blocks: list.len() as u64,
            });
            log::info!(
                "{}: rewrote {} block(s) of stripe {stripe} from redundancy",
                self.members[role].name(),
                list.len()
            );
            None
        });
        for (role, why) in failed.into_iter().flatten() {
            self.fail_role(role, &why);
        }
    }

    /// Reads rows `rows` of `stripe` of the `positions` given into `bufs`, verifying every
    /// block against its disk's checksum table, and sets each block's status (module step
    /// 1). Positions no disk serves are absent. A disk that fails with anything but a media
    /// error is taken out of service (its member failed, or the incoming disk abandoned).
    pub(super) fn read_positions(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        positions: &[bool],
        bufs: &mut [PoolBuf<'_>],
        status: &mut [Vec<Blk>],
    ) {
        let jobs: Vec<_> = bufs
            .iter_mut()
            .zip(status.iter_mut())
            .enumerate()
            .filter(|(pos, _)| positions[*pos])
            .collect();
        let bytes = ((rows.end - rows.start) * CSUM_BLOCK) as usize;
        type Failure = (usize, String, Option<Arc<Incoming>>);
        let failed: Vec<Option<Failure>> =
            self.io.parallel_sized(jobs, bytes, |(pos, (buf, status))| {
                let role = self.layout.member_at(stripe, pos);
                let Some(Holder {
                    disk,
                    table,
                    bad,
                    incoming,
                }) = self.members.reader(role, stripe)
                else {
                    status.fill(Blk::Absent);
                    return None;
                };
                let offset = self.disk_offset(stripe, rows.start);
                let base = self.block_index(stripe, rows.start);
                if bad.overlaps(base, rows.end - rows.start) {
                    for (i, s) in status.iter_mut().enumerate() {
                        if bad.overlaps(base + i as u64, 1) {
                            *s = Blk::Listed;
                        }
                    }
                }
                match disk.read_at(buf, offset) {
                    Ok(()) => {}
                    Err(e) if e.is_io() => {
                        // Find the blocks that fail, one by one.
                        for (i, block) in buf.chunks_mut(BS).enumerate() {
                            if disk.read_at(block, offset + (i * BS) as u64).is_err() {
                                status[i] = Blk::Eio;
                            }
                        }
                    }
                    Err(e) => {
                        status.fill(Blk::Absent);
                        return Some((role, e.to_string(), incoming));
                    }
                }
                let wrong = self.verify(&table, role, stripe, rows.start, buf);
                for (i, s) in status.iter_mut().enumerate() {
                    if *s == Blk::Unread {
                        *s = if wrong.contains(&i) {
                            Blk::Mismatch
                        } else {
                            Blk::Good
                        };
                    }
                }
                None
            });
        for (role, why, incoming) in failed.into_iter().flatten() {
            match incoming {
                Some(incoming) => self.abandon(role, &incoming, &why),
                None => self.fail_role(role, &why),
            }
        }
    }

    /// Reads every position of `rows` of `stripe` that is in service, verifying each
    /// block: (blocks, per-block status). Positions out of service are marked absent.
    pub(super) fn read_rows_all(
        &self,
        stripe: u64,
        rows: &Range<u64>,
    ) -> (Vec<PoolBuf<'_>>, Vec<Vec<Blk>>) {
        let mut bufs = self.row_buffers(rows);
        let mut status = self.unread(stripe, rows);
        let present: Vec<bool> = status.iter().map(|s| s[0] != Blk::Absent).collect();
        self.read_positions(stripe, rows, &present, &mut bufs, &mut status);
        (bufs, status)
    }

    /// The status of `rows` of `stripe` before anything is read: unread where a disk
    /// serves the position, absent elsewhere.
    pub(super) fn unread(&self, stripe: u64, rows: &Range<u64>) -> Vec<Vec<Blk>> {
        let len = (rows.end - rows.start) as usize;
        (0..self.width())
            .map(|pos| {
                let serves = self
                    .members
                    .serves(self.layout.member_at(stripe, pos), stripe);
                vec![if serves { Blk::Unread } else { Blk::Absent }; len]
            })
            .collect()
    }
}
