//! The read side of one stripe: verified reads, recovery and repair, resync and scrub
//! (writes are planned in `write`).
//!
//! Positions: a stripe's blocks are numbered by codeword position — data chunks `0..k` in
//! logical order, then parity rows `k..k+m` (for a mirror, position i is member i). A
//! *row* is one 4 KiB block offset within the chunk: the blocks of all positions at that
//! offset form one codeword, so rows are verified and recovered independently.
//!
//! Owns the per-stripe policies: the read fast path and `load_rows`, which disk holds a
//! role's blocks (`reader`, `writers`), resync and scrub. Must not rebuild or judge blocks itself
//! (`pipeline::recover`), nor write back what a recovery found (`pipeline::heal`), nor walk
//! the array (`pipeline::walk`).

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::member::ChecksumTable;
use super::pipeline::{BS, Blk, Found, Heal, Row, Walk};
use super::pool::PoolBuf;
use super::roster::Holder;
use super::{Array, ArrayError, Progress};
use crate::disk::Disk;
use crate::format::{self, CSUM_BLOCK};
use crate::layout::Level;

/// One data piece of a read: stripe, data position, byte range within the chunk, and the
/// caller's bytes it fills.
type Piece<'a> = (u64, usize, Range<u64>, &'a mut [u8]);

/// Whole rows as read by a resync or scrub: the blocks of every position, each block's
/// status, and the parity the data implies (positions `k..`).
type WholeRows<'a> = (Vec<PoolBuf<'a>>, Vec<Vec<Blk>>, Vec<PoolBuf<'a>>);

pub(super) fn aligned_for(disk: &dyn Disk, buf: &[u8]) -> bool {
    let align = disk.buffer_align();
    align <= 1 || (buf.as_ptr() as usize).is_multiple_of(align)
}

impl Array {
    pub(super) fn width(&self) -> usize {
        self.layout.members()
    }

    pub(super) fn rows_per_chunk(&self) -> u64 {
        self.layout.chunk() / CSUM_BLOCK
    }

    /// Stripes in each member's data region.
    pub(super) fn stripes(&self) -> u64 {
        self.layout.stripes(self.regions.data_size)
    }

    /// Byte offset on a member (absolute) of `row` of `stripe`.
    pub(super) fn disk_offset(&self, stripe: u64, row: u64) -> u64 {
        self.regions.data_offset + stripe * self.layout.chunk() + row * CSUM_BLOCK
    }

    /// Index in the checksum table of `row` of `stripe`.
    pub(super) fn block_index(&self, stripe: u64, row: u64) -> u64 {
        stripe * self.rows_per_chunk() + row
    }

    /// Checks the blocks of `buf` (rows from `first_row`) against `table` (of `role`): the
    /// indices of the blocks that do not match.
    pub(super) fn verify(
        &self,
        table: &ChecksumTable,
        role: usize,
        stripe: u64,
        first_row: u64,
        buf: &[u8],
    ) -> Vec<usize> {
        let base = self.block_index(stripe, first_row);
        // A chunk's entries fit on the stack; more (large chunks) go to the heap.
        let blocks = buf.len().div_ceil(BS);
        let mut stack = [None; 128];
        let mut heap = Vec::new();
        let entries = if blocks <= stack.len() {
            &mut stack[..blocks]
        } else {
            heap.resize(blocks, None);
            &mut heap[..]
        };
        table.get_range(base, entries);
        buf.chunks(BS)
            .zip(entries.iter().copied())
            .enumerate()
            .filter(|(i, (block, entry))| {
                !entry.is_some_and(|e| format::entry_verifies(e, role, base + *i as u64, block))
            })
            .map(|(i, _)| i)
            .collect()
    }

    pub(super) fn note_errors(&self, role: usize, eio: u64, mismatch: u64) {
        if eio + mismatch == 0 {
            return;
        }
        let counters = &self.members[role].counters;
        let reads = counters.read_errors.fetch_add(eio, Ordering::Relaxed) + eio;
        let sums = counters
            .checksum_errors
            .fetch_add(mismatch, Ordering::Relaxed)
            + mismatch;
        if reads + sums > self.options.error_threshold {
            self.fail_role(
                role,
                &format!("{reads} read and {sums} checksum errors, past the threshold"),
            );
        }
    }

    // ---------------------------------------------------------------- reads

    /// Reads `out.len()` bytes at `start` within `stripe`'s data.
    pub(super) fn read_stripe(
        &self,
        stripe: u64,
        start: u64,
        out: &mut [u8],
    ) -> Result<(), ArrayError> {
        {
            let _shared = self.locks.shared(stripe);
            let mut jobs = Vec::new();
            self.split_pieces(stripe, start, out, &mut jobs);
            if self.read_pieces(jobs) {
                return Ok(());
            }
        }
        let _exclusive = self.locks.exclusive(stripe);
        self.read_slow(stripe, start, out)
    }

    /// Reads whole consecutive stripes' worth of data (`out` starts at `start` within
    /// `first`) with every member I/O of every stripe issued together; falls back to
    /// stripe-by-stripe reads when anything needs recovery.
    pub(super) fn read_stripes(
        &self,
        first: u64,
        start: u64,
        out: &mut [u8],
    ) -> Result<(), ArrayError> {
        let stripe_data = self.layout.stripe_data();
        let last = first + (start + out.len() as u64 - 1) / stripe_data;
        {
            let _shared = self.locks.shared_all(first..=last);
            let mut jobs = Vec::new();
            let mut rest = &mut out[..];
            let mut offset = start;
            for stripe in first..=last {
                let take = ((stripe_data - offset) as usize).min(rest.len());
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(take);
                rest = tail;
                self.split_pieces(stripe, offset, mine, &mut jobs);
                offset = 0;
            }
            if self.read_pieces(jobs) {
                return Ok(());
            }
        }
        let mut done = 0usize;
        let mut offset = start;
        for stripe in first..=last {
            let take = ((stripe_data - offset) as usize).min(out.len() - done);
            self.read_stripe(stripe, offset, &mut out[done..done + take])?;
            done += take;
            offset = 0;
        }
        Ok(())
    }

    /// Splits a read of `out.len()` bytes at `start` within `stripe` into its data pieces,
    /// each with its part of `out`.
    fn split_pieces<'a>(
        &self,
        stripe: u64,
        start: u64,
        out: &'a mut [u8],
        jobs: &mut Vec<Piece<'a>>,
    ) {
        let mut rest = out;
        for (d, range, _) in self.pieces(start, rest.len() as u64) {
            let (mine, tail) =
                std::mem::take(&mut rest).split_at_mut((range.end - range.start) as usize);
            rest = tail;
            jobs.push((stripe, d, range, mine));
        }
    }

    /// The data pieces of `[start, start + len)` in a stripe (`layout`'s extents, counted
    /// from the stripe's start): (data position, byte range within the chunk, offset in
    /// the caller's buffer).
    pub(super) fn pieces(&self, start: u64, len: u64) -> Vec<(usize, Range<u64>, usize)> {
        let mut at = 0;
        self.layout
            .extents(start, len)
            .map(|(location, take)| {
                let piece = (
                    location.data_index,
                    location.within_chunk..location.within_chunk + take,
                    at,
                );
                at += take as usize;
                piece
            })
            .collect()
    }

    /// The position a read of data position `d` of `stripe` uses: itself, or for a mirror
    /// an active copy chosen to spread reads over the mirrors.
    fn read_position(&self, stripe: u64, d: usize) -> usize {
        match self.layout.level() {
            Level::Parity { .. } => d,
            Level::Mirror => {
                let n = self.width();
                let spin = self.rotor.fetch_add(1, Ordering::Relaxed);
                let first = (stripe as usize).wrapping_add(spin) % n;
                (0..n)
                    .map(|i| (first + i) % n)
                    .find(|&p| self.members.serves(p, stripe))
                    .unwrap_or(first)
            }
        }
    }

    /// The common case: every piece read from its member and verified. False when anything
    /// needs recovery (nothing is counted or repaired here; the slow path does that).
    fn read_pieces(&self, jobs: Vec<Piece<'_>>) -> bool {
        let largest = jobs.iter().map(|j| j.3.len()).max().unwrap_or(0);
        let results = self
            .io
            .parallel_sized(jobs, largest, |(stripe, d, range, mine)| {
                let pos = self.read_position(stripe, d);
                let role = self.layout.member_at(stripe, pos);
                let Some(Holder {
                    disk, table, bad, ..
                }) = self.members.reader(role, stripe)
                else {
                    return false;
                };
                let first_row = range.start / CSUM_BLOCK;
                let rows_end = range.end.div_ceil(CSUM_BLOCK);
                let base = self.block_index(stripe, first_row);
                if bad.overlaps(base, rows_end - first_row) {
                    return false;
                }
                let whole =
                    range.start.is_multiple_of(CSUM_BLOCK) && range.end.is_multiple_of(CSUM_BLOCK);
                let verify = self.options.verify_reads;
                if whole && aligned_for(disk.as_ref(), mine) {
                    disk.read_at(mine, self.disk_offset(stripe, first_row))
                        .is_ok()
                        && (!verify
                            || self
                                .verify(&table, role, stripe, first_row, mine)
                                .is_empty())
                } else {
                    let mut buf = self
                        .buffers
                        .take(((rows_end - first_row) * CSUM_BLOCK) as usize);
                    if disk
                        .read_at(&mut buf, self.disk_offset(stripe, first_row))
                        .is_err()
                        || (verify
                            && !self
                                .verify(&table, role, stripe, first_row, &buf)
                                .is_empty())
                    {
                        return false;
                    }
                    let skip = (range.start - first_row * CSUM_BLOCK) as usize;
                    mine.copy_from_slice(&buf[skip..skip + mine.len()]);
                    true
                }
            });
        results.into_iter().all(|ok| ok)
    }

    /// Reads with recovery and repair, under the stripe's exclusive lock.
    fn read_slow(&self, stripe: u64, start: u64, out: &mut [u8]) -> Result<(), ArrayError> {
        for (d, range, at) in self.pieces(start, out.len() as u64) {
            let rows = range.start / CSUM_BLOCK..range.end.div_ceil(CSUM_BLOCK);
            let pos = self.read_position(stripe, d);
            let mut want = vec![false; self.width()];
            want[pos] = true;
            let mut bufs = self.row_buffers(&rows);
            self.load_rows(stripe, rows.clone(), &want, &mut bufs)?;
            let skip = (range.start - rows.start * CSUM_BLOCK) as usize;
            let len = (range.end - range.start) as usize;
            out[at..at + len].copy_from_slice(&bufs[pos][skip..skip + len]);
        }
        Ok(())
    }

    /// One buffer per position for `rows` (contents unspecified until filled).
    pub(super) fn row_buffers(&self, rows: &Range<u64>) -> Vec<PoolBuf<'_>> {
        let len = ((rows.end - rows.start) * CSUM_BLOCK) as usize;
        (0..self.width()).map(|_| self.buffers.take(len)).collect()
    }

    /// Fills `bufs[pos]` with rows `rows` of `stripe` for every wanted position: read and
    /// verified, or rebuilt from the stripe's redundancy (then checked against the block's
    /// own checksum where the member is present, and written back). Fails naming the range
    /// when a wanted block cannot be recovered. Caller holds the stripe's exclusive lock.
    pub(super) fn load_rows(
        &self,
        stripe: u64,
        rows: Range<u64>,
        want: &[bool],
        bufs: &mut [PoolBuf<'_>],
    ) -> Result<(), ArrayError> {
        let width = self.width();
        let mut status = self.unread(stripe, &rows);
        // The wanted blocks first; the others only when one of those needs recovering.
        // Errors are counted once the rows are understood (`heal`).
        let first: Vec<bool> = (0..width)
            .map(|p| want[p] && status[p][0] == Blk::Unread)
            .collect();
        self.read_positions(stripe, &rows, &first, bufs, &mut status);
        if (0..width).all(|p| !want[p] || status[p].iter().all(|s| *s == Blk::Good)) {
            return Ok(());
        }
        let rest: Vec<bool> = (0..width).map(|p| status[p][0] == Blk::Unread).collect();
        self.read_positions(stripe, &rows, &rest, bufs, &mut status);
        let recovery = self.recover(stripe, &rows, bufs, &status, &|_| false)?;

        // The policy of a read: a block is judged on its own (a repaired block is written
        // back whatever else its row holds); a listed block is back only when its row's
        // redundancy agreed with every checksum; a wanted block that cannot be rebuilt, or
        // rebuilds to something its checksum rejects, is an error naming the range.
        let m = self.layout.m();
        let mut unrecoverable: Option<(u64, u64, String)> = None;
        let mut heal = Heal {
            fix_entries: true,
            repairs: vec![Vec::new(); width],
            ..Heal::default()
        };
        for (r, row) in recovery.rows.iter().enumerate() {
            match row {
                Row::TooMany(lost) => {
                    let Some(&p) = lost.iter().find(|&&p| want[p]) else {
                        continue;
                    };
                    if unrecoverable.is_some() {
                        continue;
                    }
                    // The run of rows lost the same way.
                    let end = (r..recovery.rows.len())
                        .take_while(|&e| recovery.rows[e] == *row)
                        .last()
                        .map_or(r + 1, |e| e + 1);
                    let listed: Vec<String> = lost
                        .iter()
                        .filter(|&&q| (r..end).any(|x| status[q][x] == Blk::Listed))
                        .map(|&q| self.holder_name(self.layout.member_at(stripe, q), stripe))
                        .collect();
                    let why = if listed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; lost blocks of {} are in its bad-block log (not recoverable when it was rebuilt)",
                            listed.join(", ")
                        )
                    };
                    unrecoverable = Some((
                        rows.start + r as u64,
                        rows.start + end as u64,
                        format!(
                            "{} of {width} blocks per row are unreadable or damaged (position {p}); the stripe survives {m}{why}",
                            lost.len()
                        ),
                    ));
                }
                Row::Rebuilt(found) => {
                    let mut suspect = false;
                    let mut listed = Vec::new();
                    for &(pos, how) in found {
                        match how {
                            Found::Entry => heal.entries.push((pos, r)),
                            Found::Verified => heal.repairs[pos].push(r),
                            Found::Listed => listed.push((pos, r)),
                            Found::Disagrees => {
                                if want[pos] && unrecoverable.is_none() {
                                    let role = self.layout.member_at(stripe, pos);
                                    unrecoverable = Some((
                                        rows.start + r as u64,
                                        rows.start + r as u64 + 1,
                                        format!(
                                            "the block rebuilt for {} does not match its checksum (redundancy and checksums disagree)",
                                            self.members[role].name()
                                        ),
                                    ));
                                }
                                suspect = true;
                            }
                            Found::Unchecked => {}
                        }
                    }
                    if suspect {
                        continue;
                    }
                    // The blocks were read to rebuild this row: the redundancy left over
                    // checks them before any is returned. A present block its checksum
                    // vouches for but the equations single out is rewritten; a row that
                    // disagrees with no single block to blame is not returned.
                    let lost: Vec<usize> = found.iter().map(|f| f.0).collect();
                    if lost.len() >= m {
                        heal.relisted.extend(listed);
                        continue;
                    }
                    let span = r * BS..(r + 1) * BS;
                    let only_absent = found.iter().all(|f| f.1 == Found::Unchecked);
                    let mut copy: Vec<Vec<u8>> =
                        bufs.iter().map(|b| b[span.clone()].to_vec()).collect();
                    let mut slices: Vec<&mut [u8]> = copy.iter_mut().map(|b| &mut b[..]).collect();
                    match self.check_rebuilt_row(&mut slices, &lost, self.layout.k())? {
                        Leftover::Consistent | Leftover::Nothing => heal.relisted.extend(listed),
                        Leftover::Culprit(p) if only_absent => {
                            for (buf, fixed) in bufs.iter_mut().zip(&copy) {
                                buf[span.clone()].copy_from_slice(fixed);
                            }
                            heal.relisted.push((p, r));
                        }
                        Leftover::Culprit(_) | Leftover::Unexplained => {
                            if unrecoverable.is_none() && (0..width).any(|p| want[p]) {
                                unrecoverable = Some((
                                    rows.start + r as u64,
                                    rows.start + r as u64 + 1,
                                    format!(
                                        "with {} of {width} blocks rebuilt, the row's redundancy does not match the blocks their checksums vouch for, and no single block explains it",
                                        lost.len()
                                    ),
                                ));
                            }
                        }
                    }
                }
                Row::Intact | Row::Skipped(_) => {}
            }
        }
        self.heal(stripe, &rows, bufs, &status, &heal)?;
        match unrecoverable {
            None => Ok(()),
            Some((r0, r1, reason)) => {
                let d = (0..self.layout.k()).find(|&d| want[d]).unwrap_or(0);
                Err(ArrayError::Unrecoverable {
                    offset: self.layout.array_offset(stripe, d, r0 * CSUM_BLOCK),
                    end: self.layout.array_offset(stripe, d, r1 * CSUM_BLOCK),
                    stripe,
                    reason,
                })
            }
        }
    }

    /// Rebuilds the `lost` positions of one group of rows.
    pub(super) fn reconstruct(
        &self,
        blocks: &mut [&mut [u8]],
        lost: &[usize],
    ) -> Result<(), ArrayError> {
        self.redundancy.reconstruct(blocks, lost)
    }

    // ---------------------------------------------------------------- create

    /// Brings parity into agreement with the data over the whole array (create), and
    /// computes every member's checksum table from what is on it.
    pub(super) fn initial_sync(
        &self,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<(), ArrayError> {
        let chunk = self.layout.chunk();
        let stripes = self.stripes();
        let total = self.regions.data_size;
        let rows = 0..self.rows_per_chunk();
        let k = self.layout.k();
        let walk = Walk::serial(0..stripes, chunk);
        // Nothing is verified yet (the tables are being computed): the data is read as it
        // is, the redundancy computed from it, and every block written with its entry.
        self.walk(
            &walk,
            &mut || Ok(()),
            &|stripe| {
                let mut bufs = self.row_buffers(&rows);
                let reads: Vec<(usize, &mut PoolBuf)> =
                    bufs.iter_mut().take(k).enumerate().collect();
                let results = self.io.parallel(reads, |(pos, buf)| {
                    let role = self.layout.member_at(stripe, pos);
                    let disk = self.members[role]
                        .disk()
                        .expect("created members have disks");
                    disk.read_at(buf, self.disk_offset(stripe, 0))
                });
                results.into_iter().collect::<Result<(), _>>()?;
                let (data, redundant) = bufs.split_at_mut(k);
                let data_refs: Vec<&[u8]> = data.iter().map(|b| &b[..]).collect();
                let mut out: Vec<&mut [u8]> = redundant.iter_mut().map(|b| &mut b[..]).collect();
                self.redundancy.encode(&data_refs, &mut out)?;
                let writes: Vec<(usize, &[u8])> =
                    bufs.iter().enumerate().map(|(p, b)| (p, &b[..])).collect();
                self.write_positions(stripe, &rows, writes)
            },
            &|_| {},
            &mut |next, _| progress(next * chunk, total),
            &mut |_| Ok(()),
        )?;
        Ok(())
    }
}

/// What [`Array::resync`] found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResyncReport {
    /// Stripes walked.
    pub stripes: u64,
    /// Rows whose blocks and checksums already agreed.
    pub consistent_rows: u64,
    /// Rows put back to what their checksums record, by rebuilding blocks from the others.
    pub restored_rows: u64,
    /// Rows where the data on disk was kept and parity and checksums recomputed from it.
    pub recomputed_rows: u64,
    /// Rows left as they were because a data block could not be read or is listed as lost
    /// (reads of it keep failing).
    pub lost_rows: u64,
    /// Stripes not walked: the write-intent bitmap showed they were not being written, or
    /// the data map that they were never written.
    pub skipped_stripes: u64,
    /// What was resynchronised onto members that were behind (done first).
    pub caught_up: super::CatchUpReport,
}

impl Array {
    /// Brings every stripe's parity and checksums into agreement after an unclean stop (the
    /// array was assembled dirty), like md's resync; then the array can be closed clean.
    ///
    /// Row by row: when every block matches its checksum and the parity matches the data,
    /// nothing is done. When some blocks do not match their checksums (a write in flight
    /// at the crash, or damage) and rebuilding them from the others gives exactly what
    /// their checksums record, they are restored. Otherwise the data on the members wins,
    /// as in md: parity is recomputed from it and every checksum of the row updated (a
    /// block being written when the array stopped holds its old or its new contents).
    /// Needs every member active. Members that are behind are brought back first
    /// ([`Array::catch_up`]). `progress(done, total)` is called per stripe, in bytes of
    /// member data region.
    pub fn resync(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<ResyncReport, ArrayError> {
        self.check_writable("resync")?;
        if let Some(role) = (0..self.width()).find(|&r| !self.members[r].is_active()) {
            return Err(ArrayError::MemberState {
                member: self.members[role].name(),
                action: "resync (every member must be active)",
                state: self.members[role].state().to_string(),
            });
        }
        let mut report = ResyncReport {
            caught_up: self.catch_up(&|_, _| {})?,
            ..ResyncReport::default()
        };
        self.prepare_write();
        let chunk = self.layout.chunk();
        let stripes = self.stripes();
        let marked_only = self.resync_marked_only.load(Ordering::Acquire);
        // Regions never written since create: no write ever began there.
        let skip = |from: u64, end: u64| self.next_with_data(from, end);
        let walk = Walk {
            skip: Some(&skip),
            ..Walk::serial(0..stripes, chunk)
        };
        let walked = self.walk(
            &walk,
            &mut || Ok(()),
            &|stripe| {
                if marked_only
                    && let Some(intent) = self.guard.intent()
                    && !intent.marked(stripe)
                {
                    return Ok(ResyncReport {
                        skipped_stripes: 1,
                        ..ResyncReport::default()
                    });
                }
                self.resync_stripe(stripe)
            },
            &|_| {},
            &mut |next, parts| {
                for (_, part) in parts {
                    report.stripes += part.stripes;
                    report.consistent_rows += part.consistent_rows;
                    report.restored_rows += part.restored_rows;
                    report.recomputed_rows += part.recomputed_rows;
                    report.lost_rows += part.lost_rows;
                    report.skipped_stripes += part.skipped_stripes;
                }
                progress(next * chunk, stripes * chunk);
            },
            &mut |_| Ok(()),
        )?;
        report.skipped_stripes += walked.skipped;
        self.flush()?;
        self.unclean_start.store(false, Ordering::Release);
        self.resync_marked_only.store(false, Ordering::Release);
        Ok(report)
    }

    /// Resyncs one stripe (see [`Array::resync`]); the caller holds its lock.
    fn resync_stripe(&self, stripe: u64) -> Result<ResyncReport, ArrayError> {
        let rows = 0..self.rows_per_chunk();
        let width = self.width();
        let k = self.layout.k();
        let mut report = ResyncReport::default();
        if !self.holds_data(stripe) {
            // No write ever began here (the map is durable before the first one).
            return Ok(report);
        }
        // Mismatches are expected here (writes in flight at the stop): not counted.
        let (mut bufs, status, implied) = self.read_whole_rows(stripe, &rows, k)?;
        self.check_alive()?;
        let recovery = self.recover(stripe, &rows, &mut bufs, &status, &|_| false)?;
        let mut rewrites: Vec<(usize, u64)> = Vec::new();
        for (r, verdict) in recovery.rows.iter().enumerate() {
            let row = r as u64;
            let span = r * BS..(r + 1) * BS;
            match verdict {
                Row::Intact => {
                    if (k..width).all(|p| bufs[p][span.clone()] == implied[p - k][span.clone()]) {
                        report.consistent_rows += 1;
                        continue;
                    }
                }
                // Restore what the checksums record: every rebuilt block verified. The
                // blocks that verified may come from different states (a crash in the
                // middle of a flush leaves some members' table pages new and some old):
                // the restored row must also agree with itself.
                Row::Rebuilt(found) => {
                    let row_bufs: Vec<Vec<u8>> =
                        bufs.iter().map(|b| b[span.clone()].to_vec()).collect();
                    if found.iter().all(|f| f.1 == Found::Verified)
                        && self.row_agrees(&row_bufs, k)?
                    {
                        rewrites.extend(found.iter().map(|f| (f.0, row)));
                        report.restored_rows += 1;
                        continue;
                    }
                    // Not restored: the blocks go back to what was read.
                    for &(p, _) in found {
                        if let Some(read) = recovery.stored(p, r) {
                            bufs[p][span.clone()].copy_from_slice(read);
                        }
                    }
                }
                Row::TooMany(_) | Row::Skipped(_) => {}
            }
            // The data wins, when there is data to win: every data block was read (an
            // unreadable block, or one listed as lost, holds nothing to keep — the row
            // is left as it is and still fails reads, never turned into data).
            let readable = (0..k).all(|p| matches!(status[p][r], Blk::Good | Blk::Mismatch));
            if !readable {
                report.lost_rows += 1;
                continue;
            }
            for p in k..width {
                bufs[p][span.clone()].copy_from_slice(&implied[p - k][span.clone()]);
            }
            rewrites.extend((0..width).map(|p| (p, row)));
            report.recomputed_rows += 1;
        }
        if !rewrites.is_empty() {
            self.mark_written(stripe..=stripe);
            self.mark_data(stripe..=stripe);
        }
        self.write_blocks(stripe, &bufs, &rewrites)?;
        report.stripes += 1;
        Ok(report)
    }

    /// Reads every present position of `rows` of `stripe`, verifying each block, and
    /// computes the parity the data read implies: (blocks, per-block status, implied
    /// parity for positions `k..`). Absent members' blocks are marked absent.
    fn read_whole_rows(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        k: usize,
    ) -> Result<WholeRows<'_>, ArrayError> {
        let width = self.width();
        let (bufs, status) = self.read_rows_all(stripe, rows);
        let mut implied: Vec<PoolBuf> = (k..width)
            .map(|_| self.buffers.take(bufs[0].len()))
            .collect();
        {
            let data: Vec<&[u8]> = bufs[..k].iter().map(|b| &b[..]).collect();
            let mut parity: Vec<&mut [u8]> = implied.iter_mut().map(|b| &mut b[..]).collect();
            self.encode(&data, &mut parity)?;
        }
        Ok((bufs, status, implied))
    }

    /// Writes single blocks (position, row) of `bufs` back to their members, with their
    /// checksum entries.
    fn write_blocks(
        &self,
        stripe: u64,
        bufs: &[PoolBuf<'_>],
        blocks: &[(usize, u64)],
    ) -> Result<(), ArrayError> {
        for &(pos, row) in blocks {
            let r = row as usize;
            let block = &bufs[pos][r * BS..(r + 1) * BS];
            self.write_positions(stripe, &(row..row + 1), vec![(pos, block)])?;
        }
        Ok(())
    }

    /// Checks a row whose `lost` positions were rebuilt from the others against the
    /// redundancy left over (m − lost equations). With none left there is nothing to check;
    /// with one, an inconsistency is found but cannot be pinned on a block; with two or
    /// more, the one present block whose loss makes the row consistent is named, and the
    /// row (that block and the `lost` ones) is rebuilt without it. Mirrors: copies are
    /// compared, and with three present the odd one out is named.
    fn check_rebuilt_row(
        &self,
        row: &mut [&mut [u8]],
        lost: &[usize],
        k: usize,
    ) -> Result<Leftover, ArrayError> {
        let width = row.len();
        let spare = (width - k).saturating_sub(lost.len());
        if spare == 0 {
            return Ok(Leftover::Nothing);
        }
        let copy: Vec<Vec<u8>> = row.iter().map(|b| b.to_vec()).collect();
        if self.row_agrees(&copy, k)? {
            return Ok(Leftover::Consistent);
        }
        if spare < 2 {
            return Ok(Leftover::Unexplained);
        }
        let mut fits = Vec::new();
        for p in (0..width).filter(|p| !lost.contains(p)) {
            let mut trial = copy.clone();
            let mut erased = lost.to_vec();
            erased.push(p);
            erased.sort_unstable();
            let mut slices: Vec<&mut [u8]> = trial.iter_mut().map(|b| &mut b[..]).collect();
            self.reconstruct(&mut slices, &erased)?;
            if self.row_agrees(&trial, k)? {
                fits.push((p, trial));
                if fits.len() > 1 {
                    return Ok(Leftover::Unexplained);
                }
            }
        }
        let Some((p, trial)) = fits.pop() else {
            return Ok(Leftover::Unexplained);
        };
        for (block, fixed) in row.iter_mut().zip(&trial) {
            block.copy_from_slice(fixed);
        }
        Ok(Leftover::Culprit(p))
    }

    /// Whether the parity blocks of one row (`row[k..]`) are what its data implies.
    fn row_agrees(&self, row: &[Vec<u8>], k: usize) -> Result<bool, ArrayError> {
        let data: Vec<&[u8]> = row[..k].iter().map(|b| &b[..]).collect();
        let mut implied: Vec<Vec<u8>> = row[k..].iter().map(|b| vec![0u8; b.len()]).collect();
        let mut refs: Vec<&mut [u8]> = implied.iter_mut().map(|b| &mut b[..]).collect();
        self.encode(&data, &mut refs)?;
        Ok(implied.iter().zip(&row[k..]).all(|(a, b)| a == b))
    }

    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), ArrayError> {
        self.redundancy.encode(data, parity)
    }
}

/// What the redundancy left over says of a row rebuilt around lost positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    /// None left over: nothing to check.
    Nothing,
    /// The row is consistent.
    Consistent,
    /// Inconsistent, and exactly this present position explains it (rebuilt already).
    Culprit(usize),
    /// Inconsistent, and no single present position explains it.
    Unexplained,
}

/// How [`Array::scrub`] runs.
#[derive(Debug, Clone, Copy)]
pub struct ScrubOptions {
    /// Rewrite what is wrong (else only report).
    pub repair: bool,
    /// Bytes per second of each member's data region to check at most, as a rebuild's rate
    /// counts (None: as fast as the members go).
    pub rate: Option<u64>,
    /// Start from the beginning even when an interrupted scrub left a position.
    pub restart: bool,
    /// Record the position in the superblocks after this many bytes of each member's data
    /// region (and when cancelled).
    pub checkpoint_every: u64,
}

impl Default for ScrubOptions {
    fn default() -> ScrubOptions {
        ScrubOptions {
            repair: false,
            rate: None,
            restart: false,
            checkpoint_every: 256 << 20,
        }
    }
}

/// How a scrub found a damaged block (shown as [`DamagedBlock::found_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoundBy {
    /// The member returned an error.
    ReadError,
    /// The block is in the member's bad-block log.
    BadBlockLog,
    /// The block does not match its checksum entry.
    Checksum,
    /// The block is intact: its checksum entry was damaged.
    ChecksumEntry,
    /// Every checksum matched, but the row's redundancy named this block.
    Syndrome,
}

impl FoundBy {
    /// The name `found_by` carries.
    fn name(self) -> &'static str {
        match self {
            FoundBy::ReadError => "read error",
            FoundBy::BadBlockLog => "bad-block log",
            FoundBy::Checksum => "checksum",
            FoundBy::ChecksumEntry => "checksum entry",
            FoundBy::Syndrome => "syndrome",
        }
    }
}

/// A damaged block found by a scrub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedBlock {
    /// The member's role.
    pub role: usize,
    /// Byte offset on the member.
    pub member_offset: u64,
    /// The array offset of the block (for parity blocks, of the first data block of the
    /// same row).
    pub array_offset: u64,
    /// Whether it holds parity.
    pub parity: bool,
    /// What was wrong: `"checksum"`, `"read error"`, `"syndrome"` (named by the parity
    /// equations although its checksum matched), `"bad-block log"` (listed as lost by a
    /// rebuild), or `"checksum entry"` (the block is intact — the redundancy gives back
    /// exactly what is stored — and its checksum entry was damaged; repairing rewrites the
    /// entry).
    pub found_by: &'static str,
    /// Whether it was rewritten with the right contents.
    pub repaired: bool,
}

/// What a scrub found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Stripes walked.
    pub stripes: u64,
    /// Bytes of member data read.
    pub bytes: u64,
    /// Every damaged block found.
    pub damaged: Vec<DamagedBlock>,
    /// Array ranges that cannot be recovered (more damage than redundancy, or damage
    /// that cannot be attributed): (offset, end, reason).
    pub unrecoverable: Vec<(u64, u64, String)>,
    /// Bytes of member data not read: regions the data map says were never written
    /// (they hold zeros; counted neither in `stripes` nor in `bytes`).
    pub skipped: u64,
    /// Whether the scrub was cancelled before the end (the next one continues from where
    /// it stopped).
    pub cancelled: bool,
    /// Bytes of each member's data region an interrupted scrub had already checked: this
    /// one started there.
    pub resumed_from: u64,
}

impl ScrubReport {
    /// Damaged blocks not repaired.
    pub fn unrepaired(&self) -> usize {
        self.damaged.iter().filter(|d| !d.repaired).count()
    }
}

impl Array {
    /// Walks every stripe, verifying every block of every active member against its
    /// checksum and every row's parity against its data, and (with `repair`) rewrites what
    /// is wrong. A wrong block is named by its checksum first; when every checksum matches
    /// but the parity does not (a block whose checksum entry was damaged along with it),
    /// the parity equations name the single block that, rebuilt, makes the row consistent —
    /// possible with two or more parity blocks. A mismatch nobody can attribute is reported
    /// as unrecoverable and never "repaired" by guessing.
    ///
    /// Online: each stripe is locked only while it is checked. Resumable: the position is
    /// recorded in the superblocks every [`ScrubOptions::checkpoint_every`] bytes and when
    /// `cancel` stops it, and a scrub continues from a recorded position unless
    /// [`ScrubOptions::restart`]. `progress` is called per group of stripes (bytes of each
    /// member's data region).
    pub fn scrub(
        &self,
        options: ScrubOptions,
        cancel: &std::sync::atomic::AtomicBool,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<ScrubReport, ArrayError> {
        let chunk = self.layout.chunk();
        let stripes = self.stripes();
        let rows = 0..self.rows_per_chunk();
        let width = self.width();
        let (k, m) = (self.layout.k(), self.layout.m());
        let started = std::time::Instant::now();
        let mut report = ScrubReport::default();
        if options.repair {
            self.check_writable("repair")?;
            self.prepare_write();
        }
        let mut next = 0;
        if !options.restart
            && let Some(mark) = self.meta.lock().sb.scrub
        {
            next = (mark.position / chunk).min(stripes);
            report.resumed_from = next * chunk;
            log::info!("continuing an interrupted scrub at {} bytes", next * chunk);
        }
        // Regions never written since create hold zeros on every member: nothing to check.
        let skip = |from: u64, end: u64| self.next_with_data(from, end);
        let walk = Walk {
            stripes: next..stripes,
            group: super::pipeline::group_for(self.layout.chunk() * self.width() as u64),
            cancel,
            rate: options.rate,
            // The rate is per member, as a rebuild's is.
            bytes_per_stripe: chunk,
            checkpoint_every: options.checkpoint_every / chunk,
            skip: Some(&skip),
        };
        let walked = self.walk(
            &walk,
            &mut || Ok(()),
            &|stripe| {
                let mut part = ScrubReport::default();
                self.scrub_stripe(stripe, &rows, k, m, options.repair, &mut part)
                    .map(|()| part)
            },
            &|_| {},
            &mut |next, parts| {
                for (_, part) in parts {
                    report.damaged.extend(part.damaged);
                    report.unrecoverable.extend(part.unrecoverable);
                    if part.skipped > 0 {
                        report.skipped += part.skipped;
                        continue;
                    }
                    report.stripes += 1;
                    report.bytes += chunk * width as u64;
                }
                progress(&Progress {
                    done: next * chunk,
                    total: stripes * chunk,
                    this_run: next * chunk - report.resumed_from,
                    elapsed: started.elapsed(),
                });
            },
            &mut |next| self.record_scrub(Some(next * chunk), options.repair),
        )?;
        report.cancelled = walked.cancelled;
        report.skipped += walked.skipped * chunk * width as u64;
        let next = walked.next;
        let position = report.cancelled.then_some(next * chunk);
        // A repairing scrub over every stripe, with every member in service, that left
        // nothing wrong did what a resync does after an unclean stop: every row now agrees
        // with its checksums and with its redundancy. (One that found a row it could not
        // attribute, such as stale RAID-5 parity, leaves the resync to do.)
        if options.repair
            && !report.cancelled
            && report.resumed_from == 0
            && report.unrecoverable.is_empty()
            && report.unrepaired() == 0
            && (0..width).all(|r| self.members[r].is_active() && self.members[r].behind().is_none())
        {
            self.unclean_start.store(false, Ordering::Release);
            self.resync_marked_only.store(false, Ordering::Release);
        }
        self.record_scrub(position, options.repair)?;
        self.note_scrub(&report, options.repair);
        Ok(report)
    }

    /// Records where a scrub is (`None`: finished) in the superblocks; repairs made so far
    /// are flushed first, so a recorded position never covers a lost repair.
    fn record_scrub(&self, position: Option<u64>, repair: bool) -> Result<(), ArrayError> {
        if repair {
            self.flush()?;
        }
        let mut meta = self.meta.lock();
        if !repair && self.members.slot_table() != meta.sb.slots {
            // A check-only scrub must not be what records a member absent since assemble
            // as faulty: the position is not kept this time.
            log::info!("not recording the scrub position: a member is absent");
            return Ok(());
        }
        let mark = position.map(|position| format::ScrubMark { position, repair });
        if meta.sb.scrub != mark {
            meta.sb.scrub = mark;
            self.commit(&mut meta);
        }
        Ok(())
    }

    fn scrub_stripe(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        k: usize,
        m: usize,
        repair: bool,
        report: &mut ScrubReport,
    ) -> Result<(), ArrayError> {
        let width = self.width();
        if !self.holds_data(stripe) {
            // Never written since create: zeros on every member, nothing to check.
            report.skipped += self.layout.chunk() * width as u64;
            return Ok(());
        }
        let (mut bufs, status, implied) = self.read_whole_rows(stripe, rows, k)?;
        let recovery = self.recover(stripe, rows, &mut bufs, &status, &|_| false)?;
        // Rewrites go through `heal` as blocks that are back: to every disk holding the
        // role, with their checksum entries.
        let mut heal = Heal {
            fix_entries: repair,
            ..Heal::default()
        };
        for (r, verdict) in recovery.rows.iter().enumerate() {
            let row = rows.start + r as u64;
            let span = r * BS..(r + 1) * BS;
            // What is wrong with each block present: named by its own status first.
            let mut found: Vec<(usize, FoundBy)> = (0..width)
                .filter(|&p| !matches!(status[p][r], Blk::Good | Blk::Absent))
                .map(|p| {
                    let how = match status[p][r] {
                        Blk::Eio => FoundBy::ReadError,
                        Blk::Listed => FoundBy::BadBlockLog,
                        _ => FoundBy::Checksum,
                    };
                    (p, how)
                })
                .collect();
            let fixable = match verdict {
                // Every checksum matches: does the parity? If not, the parity equations
                // may name the one block that, rebuilt, makes the row consistent.
                Row::Intact => {
                    if (k..width).all(|p| bufs[p][span.clone()] == implied[p - k][span.clone()]) {
                        continue;
                    }
                    let row_blocks: Vec<&[u8]> = bufs.iter().map(|b| &b[span.clone()]).collect();
                    let Some(p) = self.redundancy.locate(&row_blocks)? else {
                        report.unrecoverable.push((
                            self.layout.array_offset(stripe, 0, row * CSUM_BLOCK),
                            self.layout.array_offset(stripe, 0, row * CSUM_BLOCK) + CSUM_BLOCK,
                            format!("stripe {stripe} row {row}: parity does not match the data and no single block explains it"),
                        ));
                        continue;
                    };
                    let mut slices: Vec<&mut [u8]> =
                        bufs.iter_mut().map(|b| &mut b[span.clone()]).collect();
                    self.reconstruct(&mut slices, &[p])?;
                    found.push((p, FoundBy::Syndrome));
                    true
                }
                // Only absent members, rebuilt from the others: the redundancy left over
                // checks them, and with two equations or more to spare names one bad block.
                Row::Rebuilt(rebuilt) if found.is_empty() => {
                    let lost: Vec<usize> = rebuilt.iter().map(|f| f.0).collect();
                    let mut slices: Vec<&mut [u8]> =
                        bufs.iter_mut().map(|b| &mut b[span.clone()]).collect();
                    match self.check_rebuilt_row(&mut slices, &lost, k)? {
                        Leftover::Consistent | Leftover::Nothing => continue,
                        Leftover::Culprit(p) => {
                            found.push((p, FoundBy::Syndrome));
                            true
                        }
                        Leftover::Unexplained => {
                            report.unrecoverable.push((
                                self.layout.array_offset(stripe, 0, row * CSUM_BLOCK),
                                self.layout.array_offset(stripe, 0, row * CSUM_BLOCK) + CSUM_BLOCK,
                                format!(
                                    "stripe {stripe} row {row}: with {} of {width} blocks absent, the redundancy left does not match the data and no single block explains it",
                                    lost.len()
                                ),
                            ));
                            continue;
                        }
                    }
                }
                // A block named by its checksum that the redundancy gives back exactly as
                // stored is intact: its checksum entry is what was damaged. The row can be
                // repaired when no rebuilt block disagrees with its own checksum.
                Row::Rebuilt(judged) => {
                    for f in found.iter_mut() {
                        if judged.contains(&(f.0, Found::Entry)) {
                            f.1 = FoundBy::ChecksumEntry;
                        }
                    }
                    // The blocks rebuilt agree with their checksums; the redundancy left
                    // over must agree too, or the row is not repaired from a guess.
                    let lost: Vec<usize> = judged.iter().map(|f| f.0).collect();
                    verdict.trusted()
                        && (lost.len() >= m || {
                            let mut copy: Vec<Vec<u8>> =
                                bufs.iter().map(|b| b[span.clone()].to_vec()).collect();
                            let mut slices: Vec<&mut [u8]> =
                                copy.iter_mut().map(|b| &mut b[..]).collect();
                            self.check_rebuilt_row(&mut slices, &lost, k)? == Leftover::Consistent
                        })
                }
                Row::TooMany(_) | Row::Skipped(_) => false,
            };
            for &(pos, how) in &found {
                let role = self.layout.member_at(stripe, pos);
                // A mirror's copies all hold data, none parity.
                let data = self.layout.data_index(stripe, role);
                report.damaged.push(DamagedBlock {
                    role,
                    member_offset: self.disk_offset(stripe, row),
                    array_offset: self.layout.array_offset(
                        stripe,
                        data.unwrap_or(0),
                        row * CSUM_BLOCK,
                    ),
                    parity: data.is_none(),
                    found_by: how.name(),
                    repaired: fixable && repair,
                });
            }
            if !fixable {
                let lost = verdict.lost().len();
                report.unrecoverable.push((
                    self.layout.array_offset(stripe, 0, row * CSUM_BLOCK),
                    self.layout.array_offset(stripe, k - 1, (row + 1) * CSUM_BLOCK),
                    format!("stripe {stripe} row {row}: {lost} of {width} blocks lost or damaged; the stripe survives {m}"),
                ));
                continue;
            }
            for &(pos, how) in &found {
                if how == FoundBy::ChecksumEntry {
                    heal.entries.push((pos, r));
                } else if repair {
                    heal.relisted.push((pos, r));
                }
            }
        }
        self.heal(stripe, rows, &bufs, &status, &heal)?;
        for &(pos, _) in &heal.relisted {
            let role = self.layout.member_at(stripe, pos);
            self.members[role]
                .counters
                .repaired
                .fetch_add(1, Ordering::Relaxed);
            self.emit(crate::events::Event::BlocksHealed {
                member: self.members[role].name(),
                blocks: 1,
            });
        }
        Ok(())
    }
}
