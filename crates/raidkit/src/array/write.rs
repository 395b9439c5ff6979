//! The write path: the planners that turn new bytes for some rows of a stripe into the
//! blocks to write, and the two places their output goes.
//!
//! A write is cut into runs of rows that the same data positions change in full or in
//! part. For each run one planner is chosen ([`Method`]) and computes a [`Planned`]
//! write — which blocks, with which bytes — without knowing where it goes:
//!
//! - **mirror**: every copy gets the same bytes (a partial row reads one copy first);
//! - **full stripe**: every data block of the rows is new; no reads, parity computed from
//!   the new data (left to the executor, which may overlap it with the data writes);
//! - **read-modify-write**: reads the old data of the changed blocks and the parity, and
//!   updates the parity by the difference (when fewer reads than reconstruct-write);
//! - **reconstruct-write**: reads the data that does not change and recomputes parity (also
//!   the degraded path: `load_rows` rebuilds what it cannot read).
//!
//! A plan then goes to its sink: straight to the members (`write_positions`), or into a
//! list the journal logs before the blocks go in place (`Array::journal_commit`).
//!
//! Owns the choice of planner and the planners; must not read or recover blocks itself
//! (`load_rows` does), nor know about the journal beyond handing it plans.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::Ordering;

use super::pipeline::BS;
use super::pool::PoolBuf;
use super::roster::Holder;
use super::stripe::aligned_for;
use super::{Array, ArrayError};
use crate::disk::AlignedBuf;
use crate::format::{self, CSUM_BLOCK};
use crate::parity::{BlockUpdate, Codec};

/// Full-stripe rows up to this size per block are written without overlapping the data
/// writes with the parity computation (not worth a hand-off).
const SMALL_WRITE: usize = 64 << 10;

/// The bytes of one planned block write: the caller's, or computed into a pool buffer.
pub(super) enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Pooled(PoolBuf<'a>),
}

impl std::ops::Deref for Bytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Pooled(b) => b,
        }
    }
}

/// A write of whole rows of one stripe, computed but not yet issued: the blocks in `bufs`,
/// and which position gets which (`writes`: position, index in `bufs`).
pub(super) struct Planned<'a> {
    pub stripe: u64,
    pub rows: Range<u64>,
    pub bufs: Vec<Bytes<'a>>,
    pub writes: Vec<(usize, usize)>,
    /// A full-stripe plan whose parity (`bufs[k..]`, positions `k..`) is still to be
    /// computed from its data (`bufs[..k]`, positions `0..k`): see [`Planned::finish`].
    pub pending_parity: bool,
}

impl Planned<'_> {
    /// Computes the parity a full-stripe plan left pending.
    pub fn finish(&mut self, codec: &Codec) -> Result<(), ArrayError> {
        if !self.pending_parity {
            return Ok(());
        }
        let (data, parity) = self.bufs.split_at_mut(codec.k());
        let data_refs: Vec<&[u8]> = data.iter().map(|b| &b[..]).collect();
        encode_into(codec, &data_refs, parity)?;
        self.pending_parity = false;
        Ok(())
    }

    /// The writes as `write_positions` takes them.
    pub fn slices(&self) -> Vec<(usize, &[u8])> {
        self.writes
            .iter()
            .map(|&(pos, i)| (pos, &self.bufs[i][..]))
            .collect()
    }
}

/// Where a plan goes: straight to the members, or into a list that goes through the
/// journal first.
pub(super) enum Sink<'s, 'a> {
    Direct,
    Collect(&'s mut Vec<Planned<'a>>),
}

/// Computes a full-stripe plan's parity into its pool buffers.
fn encode_into(codec: &Codec, data: &[&[u8]], parity: &mut [Bytes<'_>]) -> Result<(), ArrayError> {
    let mut parity_refs: Vec<&mut [u8]> = parity
        .iter_mut()
        .map(|b| match b {
            Bytes::Pooled(b) => &mut b[..],
            Bytes::Borrowed(_) => unreachable!("parity is computed into pool buffers"),
        })
        .collect();
    Ok(codec.encode(data, &mut parity_refs)?)
}

/// New bytes for one data position within a run of rows.
struct Change<'a> {
    pos: usize,
    /// Offset of the new bytes within the rows' buffer.
    at: usize,
    bytes: &'a [u8],
    /// The new bytes cover the whole rows.
    full: bool,
}

/// The planners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Mirror,
    FullStripe,
    ReadModifyWrite,
    ReconstructWrite,
}

impl Array {
    /// Writes `data` at `start` within `stripe`'s data, under the stripe's exclusive lock.
    pub(super) fn write_stripe(
        &self,
        stripe: u64,
        start: u64,
        data: &[u8],
    ) -> Result<(), ArrayError> {
        let _exclusive = self.locks.exclusive(stripe);
        if self.guard.journal().is_some() {
            let mut plans = Vec::new();
            self.write_stripe_locked(stripe, start, data, &mut Sink::Collect(&mut plans))?;
            return self.journal_commit(plans);
        }
        self.write_stripe_locked(stripe, start, data, &mut Sink::Direct)
    }

    /// Writes several stripes (`data` starts at `start` within `first`) under all their
    /// locks, the stripes in parallel on the pool.
    pub(super) fn write_stripes(
        &self,
        first: u64,
        start: u64,
        data: &[u8],
    ) -> Result<(), ArrayError> {
        let stripe_data = self.layout.stripe_data();
        let last = first + (start + data.len() as u64 - 1) / stripe_data;
        let _exclusive = self.locks.exclusive_all(first..=last);
        let mut jobs = Vec::new();
        let mut done = 0usize;
        let mut offset = start;
        for stripe in first..=last {
            let take = ((stripe_data - offset) as usize).min(data.len() - done);
            jobs.push((stripe, offset, &data[done..done + take]));
            done += take;
            offset = 0;
        }
        if self.guard.journal().is_some() {
            // Compute every stripe's blocks in parallel, then log them all (one group
            // commit) and write them in place. Pool tasks never wait on the journal.
            let planned: Vec<Result<Vec<Planned>, ArrayError>> =
                self.io.parallel(jobs, |(stripe, offset, bytes)| {
                    let mut plans = Vec::new();
                    self.write_stripe_locked(stripe, offset, bytes, &mut Sink::Collect(&mut plans))
                        .map(|()| plans)
                });
            let mut plans = Vec::new();
            for p in planned {
                plans.extend(p?);
            }
            return self.journal_commit(plans);
        }
        self.io
            .parallel(jobs, |(stripe, offset, bytes)| {
                self.write_stripe_locked(stripe, offset, bytes, &mut Sink::Direct)
            })
            .into_iter()
            .collect()
    }

    /// [`write_stripe`](Array::write_stripe)'s work; the caller holds the stripe's
    /// exclusive lock. In journal mode rows are cut so that one position's part of a
    /// record fits the journal several times over.
    fn write_stripe_locked<'a>(
        &'a self,
        stripe: u64,
        start: u64,
        data: &'a [u8],
        sink: &mut Sink<'_, 'a>,
    ) -> Result<(), ArrayError> {
        let pieces = self.pieces(start, data.len() as u64);
        let mut cuts = BTreeSet::new();
        for (_, range, _) in &pieces {
            cuts.insert(range.start / CSUM_BLOCK);
            cuts.insert(range.end.div_ceil(CSUM_BLOCK));
        }
        if let Some(journal) = self.guard.journal() {
            let (first, last) = (
                *cuts.first().expect("a piece"),
                *cuts.last().expect("a piece"),
            );
            let step = journal.max_rows();
            cuts.extend((first..last).step_by(step as usize));
        }
        let cuts: Vec<u64> = cuts.into_iter().collect();
        for window in cuts.windows(2) {
            let rows = window[0]..window[1];
            let changed: Vec<&(usize, Range<u64>, usize)> = pieces
                .iter()
                .filter(|(_, range, _)| {
                    range.start / CSUM_BLOCK <= rows.start
                        && rows.end <= range.end.div_ceil(CSUM_BLOCK)
                })
                .collect();
            if !changed.is_empty() {
                self.write_rows(stripe, rows, &changed, data, sink)?;
            }
        }
        Ok(())
    }

    /// Writes rows `rows` of `stripe` where the data positions in `changed` get new bytes:
    /// chooses a planner, runs it, and sends its plan to `sink`.
    fn write_rows<'a>(
        &'a self,
        stripe: u64,
        rows: Range<u64>,
        changed: &[&(usize, Range<u64>, usize)],
        data: &'a [u8],
        sink: &mut Sink<'_, 'a>,
    ) -> Result<(), ArrayError> {
        let span = rows.start * CSUM_BLOCK..rows.end * CSUM_BLOCK;
        let changes: Vec<Change> = changed
            .iter()
            .map(|(d, range, buf_at)| {
                let a = range.start.max(span.start);
                let e = range.end.min(span.end);
                let from = buf_at + (a - range.start) as usize;
                Change {
                    pos: *d,
                    at: (a - span.start) as usize,
                    bytes: &data[from..from + (e - a) as usize],
                    full: a == span.start && e == span.end,
                }
            })
            .collect();
        let mut plan = match self.method(stripe, &changes) {
            Method::Mirror => self.plan_mirror(stripe, rows, &changes[0])?,
            Method::FullStripe => self.plan_full_stripe(stripe, rows, &changes),
            Method::ReadModifyWrite => self.plan_read_modify_write(stripe, rows, &changes)?,
            Method::ReconstructWrite => self.plan_reconstruct_write(stripe, rows, &changes)?,
        };
        match sink {
            Sink::Direct => self.apply(plan),
            Sink::Collect(plans) => {
                if let Some(codec) = self.redundancy.parity() {
                    plan.finish(codec)?;
                }
                plans.push(plan);
                Ok(())
            }
        }
    }

    /// Which planner writes `changes` to `stripe`: the one with the fewest reads.
    fn method(&self, stripe: u64, changes: &[Change<'_>]) -> Method {
        if self.redundancy.parity().is_none() {
            return Method::Mirror;
        }
        let k = self.layout.k();
        if changes.len() == k && changes.iter().all(|c| c.full) {
            return Method::FullStripe;
        }
        let all_active = (0..self.width()).all(|p| {
            self.members
                .serves(self.layout.member_at(stripe, p), stripe)
        });
        let partial = changes.iter().filter(|c| !c.full).count();
        let rmw_reads = changes.len() + self.layout.m();
        let rcw_reads = k - changes.len() + partial;
        if all_active && rmw_reads < rcw_reads {
            Method::ReadModifyWrite
        } else {
            Method::ReconstructWrite
        }
    }

    /// Mirror: every copy gets the same bytes; a partial row is read from one copy first.
    fn plan_mirror<'a>(
        &'a self,
        stripe: u64,
        rows: Range<u64>,
        change: &Change<'a>,
    ) -> Result<Planned<'a>, ArrayError> {
        let width = self.width();
        let bytes = if change.full {
            Bytes::Borrowed(change.bytes)
        } else {
            let source = (0..width)
                .find(|&p| self.members.serves(p, stripe))
                .unwrap_or(0);
            let mut want = vec![false; width];
            want[source] = true;
            let mut bufs = self.row_buffers(&rows);
            self.load_rows(stripe, rows.clone(), &want, &mut bufs)?;
            bufs[source][change.at..change.at + change.bytes.len()].copy_from_slice(change.bytes);
            Bytes::Pooled(bufs.swap_remove(source))
        };
        Ok(Planned {
            stripe,
            rows,
            bufs: vec![bytes],
            writes: (0..width).map(|p| (p, 0)).collect(),
            pending_parity: false,
        })
    }

    /// Full stripe rows: no reads; the parity is left for the sink to compute
    /// ([`Planned::finish`]), so the data writes can start before it.
    fn plan_full_stripe<'a>(
        &'a self,
        stripe: u64,
        rows: Range<u64>,
        changes: &[Change<'a>],
    ) -> Planned<'a> {
        let len = ((rows.end - rows.start) * CSUM_BLOCK) as usize;
        let mut bufs: Vec<Bytes> = changes.iter().map(|c| Bytes::Borrowed(c.bytes)).collect();
        bufs.extend((0..self.layout.m()).map(|_| Bytes::Pooled(self.buffers.take(len))));
        let width = self.width();
        debug_assert!(changes.iter().enumerate().all(|(i, c)| c.pos == i));
        Planned {
            stripe,
            rows,
            bufs,
            writes: (0..width).map(|p| (p, p)).collect(),
            pending_parity: true,
        }
    }

    /// Buffers for `rows` of `stripe` with the positions `want` says loaded through the
    /// read pipeline (missing or damaged ones rebuilt); the others hold unspecified bytes.
    fn loaded(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        want: impl Fn(usize) -> bool,
    ) -> Result<Vec<PoolBuf<'_>>, ArrayError> {
        let mut bufs = self.row_buffers(rows);
        let want: Vec<bool> = (0..self.width()).map(want).collect();
        self.load_rows(stripe, rows.clone(), &want, &mut bufs)?;
        Ok(bufs)
    }

    /// Read-modify-write: reads the old data of the changed blocks and the parity, and
    /// updates the parity by the difference.
    fn plan_read_modify_write<'a>(
        &'a self,
        stripe: u64,
        rows: Range<u64>,
        changes: &[Change<'a>],
    ) -> Result<Planned<'a>, ArrayError> {
        let codec = self.redundancy.parity().expect("a parity level");
        let k = self.layout.k();
        let len = ((rows.end - rows.start) * CSUM_BLOCK) as usize;
        let mut bufs = self.loaded(stripe, &rows, |p| {
            p >= k || changes.iter().any(|c| c.pos == p)
        })?;
        let news: Vec<PoolBuf> = changes
            .iter()
            .map(|c| {
                let mut new = self.buffers.take(len);
                new.copy_from_slice(&bufs[c.pos]);
                new[c.at..c.at + c.bytes.len()].copy_from_slice(c.bytes);
                new
            })
            .collect();
        let (data_bufs, parity_bufs) = bufs.split_at_mut(k);
        let updates: Vec<BlockUpdate> = changes
            .iter()
            .zip(&news)
            .map(|(c, new)| BlockUpdate {
                position: c.pos,
                old: &data_bufs[c.pos],
                new,
            })
            .collect();
        {
            let mut parity_refs: Vec<&mut [u8]> =
                parity_bufs.iter_mut().map(|b| &mut b[..]).collect();
            codec.update(&updates, &mut parity_refs)?;
        }
        let mut writes: Vec<(usize, usize)> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.pos, i))
            .collect();
        let mut out: Vec<Bytes> = news.into_iter().map(Bytes::Pooled).collect();
        for (r, b) in bufs.into_iter().skip(k).enumerate() {
            writes.push((k + r, out.len()));
            out.push(Bytes::Pooled(b));
        }
        Ok(Planned {
            stripe,
            rows,
            bufs: out,
            writes,
            pending_parity: false,
        })
    }

    /// Reconstruct-write: reads the data that does not change (and what changes only in
    /// part) and recomputes the parity. The degraded path too: `load_rows` rebuilds
    /// missing data.
    fn plan_reconstruct_write<'a>(
        &'a self,
        stripe: u64,
        rows: Range<u64>,
        changes: &[Change<'a>],
    ) -> Result<Planned<'a>, ArrayError> {
        let codec = self.redundancy.parity().expect("a parity level");
        let k = self.layout.k();
        let mut bufs = self.loaded(stripe, &rows, |p| {
            p < k && changes.iter().all(|c| c.pos != p || !c.full)
        })?;
        for c in changes {
            bufs[c.pos][c.at..c.at + c.bytes.len()].copy_from_slice(c.bytes);
        }
        let (data_bufs, parity_bufs) = bufs.split_at_mut(k);
        {
            let data_refs: Vec<&[u8]> = data_bufs.iter().map(|b| &b[..]).collect();
            let mut parity_refs: Vec<&mut [u8]> =
                parity_bufs.iter_mut().map(|b| &mut b[..]).collect();
            codec.encode(&data_refs, &mut parity_refs)?;
        }
        let mut out: Vec<Bytes> = Vec::new();
        let mut writes: Vec<(usize, usize)> = Vec::new();
        for (p, b) in bufs.into_iter().enumerate() {
            if p >= k || changes.iter().any(|c| c.pos == p) {
                writes.push((p, out.len()));
                out.push(Bytes::Pooled(b));
            }
        }
        Ok(Planned {
            stripe,
            rows,
            bufs: out,
            writes,
            pending_parity: false,
        })
    }

    /// Writes a plan to the members. A full-stripe plan's data writes start while its
    /// parity is computed (they do not depend on it); then the parity is written.
    fn apply(&self, mut plan: Planned<'_>) -> Result<(), ArrayError> {
        let Some(codec) = self.redundancy.parity().filter(|_| plan.pending_parity) else {
            return self.write_positions(plan.stripe, &plan.rows, plan.slices());
        };
        let k = codec.k();
        let len = ((plan.rows.end - plan.rows.start) * CSUM_BLOCK) as usize;
        let (stripe, rows) = (plan.stripe, plan.rows.clone());
        let (data, parity) = plan.bufs.split_at_mut(k);
        let data_writes: Vec<(usize, &[u8])> =
            data.iter().enumerate().map(|(p, b)| (p, &b[..])).collect();
        let data_refs: Vec<&[u8]> = data.iter().map(|b| &b[..]).collect();
        let (data_result, parity_result) = self.io.beside(
            len > SMALL_WRITE,
            || self.write_positions(stripe, &rows, data_writes),
            || {
                encode_into(codec, &data_refs, parity)?;
                let writes: Vec<(usize, &[u8])> = parity
                    .iter()
                    .enumerate()
                    .map(|(r, b)| (k + r, &b[..]))
                    .collect();
                self.write_positions(stripe, &rows, writes)
            },
        );
        data_result.and(parity_result)
    }

    /// Writes whole rows of positions to their members (skipping members not in service),
    /// with their checksum entries. A member whose write fails is marked faulty; the call
    /// fails only when the stripe no longer holds the data.
    pub(super) fn write_positions(
        &self,
        stripe: u64,
        rows: &Range<u64>,
        writes: Vec<(usize, &[u8])>,
    ) -> Result<(), ArrayError> {
        let offset = self.disk_offset(stripe, rows.start);
        let base = self.block_index(stripe, rows.start);
        let size = ((rows.end - rows.start) * CSUM_BLOCK) as usize;
        let jobs: Vec<(usize, usize, &[u8], Holder)> = writes
            .into_iter()
            .flat_map(|(pos, bytes)| {
                let role = self.layout.member_at(stripe, pos);
                self.members
                    .writers(role, stripe)
                    .into_iter()
                    .map(move |holder| (pos, role, bytes, holder))
            })
            .collect();
        let failed = self
            .io
            .parallel_sized(jobs, size, |(_, role, bytes, holder)| {
                let entries: Vec<u32> = bytes
                    .chunks(BS)
                    .enumerate()
                    .map(|(i, block)| format::checksum_entry(role, base + i as u64, block))
                    .collect();
                let disk = holder.disk.as_ref();
                let result = if aligned_for(disk, bytes) {
                    disk.write_at(bytes, offset)
                } else {
                    let mut copy = AlignedBuf::new(bytes.len());
                    copy.copy_from_slice(bytes);
                    disk.write_at(&copy, offset)
                };
                let blocks = (bytes.len() / BS) as u64;
                // The entries go in once the blocks are written; a table page that
                // cannot be read fails the write like the member's own error.
                let result = result.and_then(|()| holder.table.set_range(base, &entries));
                match result {
                    Ok(()) => {
                        holder.bad.clear(base, blocks);
                        None
                    }
                    Err(e) => {
                        self.members[role]
                            .counters
                            .write_errors
                            .fetch_add(1, Ordering::Relaxed);
                        if let Some(incoming) = &holder.incoming {
                            self.abandon(role, incoming, &format!("write failed: {e}"));
                            None
                        } else {
                            Some((role, format!("write failed: {e}")))
                        }
                    }
                }
            });
        for (role, why) in failed.into_iter().flatten() {
            self.fail_role(role, &why);
        }
        self.check_alive()
    }
}
