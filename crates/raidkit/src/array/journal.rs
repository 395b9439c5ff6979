//! The write journal: every write of stripe rows is logged before it touches the members in
//! place, so a crash — even one that loses members — never leaves a stripe whose parity
//! disagrees with its data (the RAID-5 write hole), and a block being written comes back
//! whole, old or new (format: [`crate::format::JournalHeader`], [`PartHeader`]).
//!
//! A *record* is one planned write of rows of one stripe: the new contents of every block
//! it writes, data and parity. Each block goes, as a *part*, into the journal of the member
//! that holds its position, so the record is coded exactly like the stripe and survives the
//! loss of any m members. Every part names the positions that received a part; a record is
//! replayed only when every one of those positions whose member is trusted at assemble has
//! its part — otherwise the record was never fully logged, and then none of its in-place
//! writes had started.
//!
//! Order of one write: compute the new blocks; reserve room for the parts (in sequence
//! order) and write them to the members' journals; wait until a journal flush that began
//! after they were written has returned on every member written to (group commit: one
//! waiting writer flushes for all, and records become durable in sequence order); write
//! the blocks in place; count the record applied. A member journal is linear: parts follow
//! one another from the region's second block, and a *checkpoint* — every record applied,
//! every member flushed, a new header with `tail` = the next sequence number and a new
//! nonce — empties it.
//! A checkpoint runs when a record does not fit, at a clean close, after a replay, and when
//! a rebuild swaps a disk into a role.
//!
//! Owns the journal's in-memory state, record and header I/O, and replay. Must not rebuild
//! blocks of a stripe itself (missing parts go through `load_rows`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::stripe::aligned_for;
use super::write::Planned;
use super::{Array, ArrayError};
use crate::disk::AlignedBuf;
use crate::format::{CSUM_BLOCK, JOURNAL_BLOCK, JournalHeader, PartHeader};

const JB: u64 = JOURNAL_BLOCK as u64;
/// Parts up to this size go out with their header in one write (a copy); larger ones are
/// written from the caller's buffer after their header.
const SMALL_PART: usize = 64 << 10;

#[derive(Debug)]
struct State {
    /// The next record's sequence number.
    next_seq: u64,
    /// Records below this are applied and durable (the headers say so).
    tail: u64,
    /// The nonce of the current checkpoint.
    nonce: u64,
    /// Checkpoints written before the current one.
    checkpoints: u64,
    /// Bytes of each role's journal used since the checkpoint.
    heads: Vec<u64>,
    /// Records whose parts are still being written.
    writing: BTreeSet<u64>,
    /// Roles whose journal was written since the last journal flush began.
    unflushed: Vec<bool>,
    /// Sequence numbers below this are durable in the journal.
    durable: u64,
    /// A leader is flushing.
    busy: bool,
    /// Records appended and not yet applied in place.
    outstanding: u64,
    /// A checkpoint is running: nothing may be appended.
    checkpointing: bool,
    /// The journal on the members may hold records this build must not replay (an older
    /// build wrote the array last): checkpoint before the first append.
    reset_needed: bool,
}

/// Where one record's parts go: its sequence number, the checkpoint nonce, the positions
/// that get a part, and each part's (position, role, offset in the role's journal, index of
/// its bytes in the plan).
struct Reserved {
    seq: u64,
    nonce: u64,
    positions: Vec<bool>,
    parts: Vec<(usize, usize, u64, usize)>,
}

/// The running journal.
#[derive(Debug)]
pub(super) struct Journal {
    state: Mutex<State>,
    cond: Condvar,
    /// Bytes of each member's journal after its header block.
    capacity: u64,
    /// Rows per chunk.
    chunk_rows: u64,
}

impl Journal {
    /// A journal for `roles` members with `journal_size`-byte regions, continuing after a
    /// checkpoint with `tail` and `nonce`.
    pub fn new(
        roles: usize,
        journal_size: u64,
        chunk: u64,
        tail: u64,
        nonce: u64,
        checkpoints: u64,
        reset_needed: bool,
    ) -> Journal {
        Journal {
            state: Mutex::new(State {
                next_seq: tail,
                tail,
                nonce,
                checkpoints,
                heads: vec![0; roles],
                writing: BTreeSet::new(),
                unflushed: vec![false; roles],
                durable: tail,
                busy: false,
                outstanding: 0,
                checkpointing: false,
                reset_needed,
            }),
            cond: Condvar::new(),
            capacity: journal_size.saturating_sub(JB),
            chunk_rows: chunk / CSUM_BLOCK,
        }
    }

    /// The most rows one record may cover: a part (header and rows) fits the journal four
    /// times, so records of several writers share a checkpoint.
    pub fn max_rows(&self) -> u64 {
        (self.capacity / JB / 4)
            .saturating_sub(1)
            .clamp(1, self.chunk_rows)
    }

    /// Whether the journal on the members must be started over before anything else.
    pub fn reset_needed(&self) -> bool {
        self.lock().reset_needed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}

/// What a replay found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records found complete and written in place again.
    pub replayed: u64,
    /// Records found incomplete (never fully logged, so never started in place): skipped.
    pub incomplete: u64,
    /// Parts read from the members' journals.
    pub parts: u64,
}

/// One record as found on the members at replay.
struct Found {
    stripe: u64,
    first_row: u64,
    rows: u32,
    positions: Vec<bool>,
    parts: Vec<(usize, AlignedBuf)>,
    consistent: bool,
}

impl Array {
    /// Logs `plans` and then writes them in place: as many as fit at a time; a checkpoint
    /// makes room when none does. Called on the writer's own thread, never in a pool task.
    ///
    /// The writer reserves room for its parts, writes them itself, and waits for a journal
    /// flush that began after they were written (group commit: whichever waiting writer
    /// finds no flush running flushes for all). Records become durable in sequence order,
    /// so a record is never durable while an older one could still be missing a part: a
    /// replay, which stops each member's journal at the first invalid header, then never
    /// drops a durable record.
    pub(super) fn journal_commit(&self, plans: Vec<Planned<'_>>) -> Result<(), ArrayError> {
        let journal = self.guard.journal().expect("journal mode");
        let mut at = 0;
        while at < plans.len() {
            let reserved = self.journal_append(&plans[at..])?;
            let taken = reserved.len();
            let batch = &plans[at..at + taken];
            self.write_parts(batch, &reserved);
            {
                let mut st = journal.lock();
                for r in &reserved {
                    st.writing.remove(&r.seq);
                    for &(_, role, _, _) in &r.parts {
                        st.unflushed[role] = true;
                    }
                }
                journal.cond.notify_all();
            }
            let last = reserved.last().expect("at least one").seq;
            let results = match self.journal_wait(last) {
                Ok(()) => self.io.parallel(batch.iter().collect(), |plan| {
                    self.write_positions(plan.stripe, &plan.rows, plan.slices())
                }),
                Err(e) => vec![Err(e)],
            };
            {
                let mut st = journal.lock();
                st.outstanding -= taken as u64;
                if st.outstanding == 0 {
                    journal.cond.notify_all();
                }
            }
            results.into_iter().collect::<Result<(), ArrayError>>()?;
            at += taken;
        }
        Ok(())
    }

    /// Reserves room for the parts of as many of `plans` as fit (at least one: checkpoints
    /// until it does), in sequence order.
    fn journal_append(&self, plans: &[Planned<'_>]) -> Result<Vec<Reserved>, ArrayError> {
        let journal = self.guard.journal().expect("journal mode");
        let width = self.width();
        loop {
            let mut st = journal.lock();
            while st.checkpointing {
                st = journal.wait(st);
            }
            if !st.reset_needed {
                let mut out = Vec::new();
                for plan in plans {
                    let part = JB + (plan.rows.end - plan.rows.start) * CSUM_BLOCK;
                    let parts: Vec<(usize, usize, usize)> = plan
                        .writes
                        .iter()
                        .map(|&(pos, i)| (pos, self.layout.member_at(plan.stripe, pos), i))
                        .filter(|&(_, r, _)| self.members[r].is_active())
                        .collect();
                    if parts
                        .iter()
                        .any(|&(_, r, _)| st.heads[r] + part > journal.capacity)
                    {
                        break;
                    }
                    let seq = st.next_seq;
                    st.next_seq += 1;
                    st.writing.insert(seq);
                    st.outstanding += 1;
                    let mut positions = vec![false; width];
                    let parts = parts
                        .into_iter()
                        .map(|(pos, role, i)| {
                            positions[pos] = true;
                            let offset = st.heads[role];
                            st.heads[role] += part;
                            (pos, role, offset, i)
                        })
                        .collect();
                    out.push(Reserved {
                        seq,
                        nonce: st.nonce,
                        positions,
                        parts,
                    });
                }
                if !out.is_empty() {
                    return Ok(out);
                }
            }
            drop(st);
            self.journal_checkpoint()?;
        }
    }

    /// Writes the parts of `plans` where `reserved` put them. A member whose write fails is
    /// marked faulty, and that is on record before this returns (replay ignores the parts of
    /// members recorded faulty, and only of those).
    fn write_parts(&self, plans: &[Planned<'_>], reserved: &[Reserved]) {
        let base = self.regions.journal_offset + JB;
        let width = self.width() as u16;
        let mut jobs = Vec::new();
        let mut bytes = 0;
        for (plan, r) in plans.iter().zip(reserved) {
            for &(pos, role, offset, i) in &r.parts {
                let data = &plan.bufs[i][..];
                let header = PartHeader {
                    nonce: r.nonce,
                    seq: r.seq,
                    stripe: plan.stripe,
                    first_row: plan.rows.start,
                    rows: (plan.rows.end - plan.rows.start) as u32,
                    position: pos as u16,
                    width,
                    data_crc: crc32fast::hash(data),
                    positions: r.positions.clone(),
                };
                bytes += JOURNAL_BLOCK + data.len();
                jobs.push((role, base + offset, header, data));
            }
        }
        let failed = self
            .io
            .parallel_sized(jobs, bytes, |(role, at, header, data)| {
                let member = &self.members[role];
                let disk = member.disk()?;
                let head = header.encode(&self.uuid, &member.uuid());
                let result = if data.len() <= SMALL_PART || !aligned_for(disk.as_ref(), data) {
                    // One write: the header and a copy of the data.
                    let mut buf = AlignedBuf::new(JOURNAL_BLOCK + data.len());
                    buf[..JOURNAL_BLOCK].copy_from_slice(&head);
                    buf[JOURNAL_BLOCK..].copy_from_slice(data);
                    disk.write_at(&buf, at)
                } else {
                    let mut buf = AlignedBuf::new(JOURNAL_BLOCK);
                    buf.copy_from_slice(&head);
                    disk.write_at(&buf, at)
                        .and_then(|()| disk.write_at(data, at + JB))
                };
                result.err().map(|e| (role, e))
            });
        self.journal_failures(failed.into_iter().flatten().collect(), "journal write");
    }

    /// Marks the members whose journal I/O failed faulty and makes sure that is recorded.
    fn journal_failures(&self, failed: Vec<(usize, crate::disk::DiskError)>, what: &str) {
        if failed.is_empty() {
            return;
        }
        for (role, e) in failed {
            self.members[role]
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            self.fail_role(role, &format!("{what} failed: {e}"));
        }
        // Another thread may have marked the member first and still be writing the update:
        // one more update, under the lock, is on disk when this returns.
        let mut meta = self.meta.lock();
        self.commit(&mut meta);
    }

    /// Waits until record `seq` is durable in the journal, flushing as the leader when no
    /// other thread is and every older record is written. Fails if the array failed.
    fn journal_wait(&self, seq: u64) -> Result<(), ArrayError> {
        let journal = self.guard.journal().expect("journal mode");
        let mut st = journal.lock();
        while st.durable <= seq {
            let frontier = st.writing.first().copied().unwrap_or(st.next_seq);
            if !st.busy && frontier > st.durable {
                st = self.lead_flush(st, frontier);
            } else {
                st = journal.wait(st);
            }
        }
        drop(st);
        self.check_alive()
    }

    /// Flushes the journals written since the last flush began; then every record below
    /// `frontier` (all written before this began) is durable. The state is released
    /// during the I/O.
    fn lead_flush<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        frontier: u64,
    ) -> MutexGuard<'a, State> {
        let journal = self.guard.journal().expect("journal mode");
        st.busy = true;
        let roles: Vec<usize> = (0..st.unflushed.len())
            .filter(|&r| std::mem::replace(&mut st.unflushed[r], false))
            .collect();
        drop(st);
        let failed = self.io.parallel_sized(roles, 0, |role| {
            let disk = self.members[role].disk()?;
            disk.flush().err().map(|e| (role, e))
        });
        self.journal_failures(failed.into_iter().flatten().collect(), "journal flush");
        let mut st = journal.lock();
        st.busy = false;
        st.durable = st.durable.max(frontier);
        journal.cond.notify_all();
        st
    }

    /// Empties the journal: waits until every appended record is durable and applied, makes
    /// the members durable, then writes a new header (tail = next sequence number, new
    /// nonce) to every active member.
    pub(super) fn journal_checkpoint(&self) -> Result<(), ArrayError> {
        let Some(journal) = self.guard.journal() else {
            return Ok(());
        };
        let mut st = journal.lock();
        while st.checkpointing {
            st = journal.wait(st);
        }
        st.checkpointing = true;
        while st.outstanding > 0 || st.busy {
            st = journal.wait(st);
        }
        let tail = st.next_seq;
        let count = st.checkpoints + 1;
        drop(st);
        let nonce = crate::ids::new_nonce();
        let result = self
            .flush()
            .and_then(|()| self.write_journal_headers(tail, nonce, count))
            .map(|()| self.record_journal_checkpoint(count));
        let mut st = journal.lock();
        if result.is_ok() {
            st.tail = tail;
            st.nonce = nonce;
            st.checkpoints = count;
            st.heads.iter_mut().for_each(|h| *h = 0);
            st.reset_needed = false;
        }
        st.checkpointing = false;
        journal.cond.notify_all();
        result
    }

    /// Starts a new journal on the members as they are now (a disk was swapped into a role):
    /// the caller has flushed every member and holds every stripe lock, so no record is
    /// outstanding.
    pub(super) fn journal_restart(&self) -> Result<(), ArrayError> {
        let Some(journal) = self.guard.journal() else {
            return Ok(());
        };
        let (tail, count) = {
            let st = journal.lock();
            (st.next_seq, st.checkpoints + 1)
        };
        let nonce = crate::ids::new_nonce();
        self.write_journal_headers(tail, nonce, count)?;
        self.record_journal_checkpoint(count);
        let mut st = journal.lock();
        st.tail = tail;
        st.nonce = nonce;
        st.checkpoints = count;
        st.heads.iter_mut().for_each(|h| *h = 0);
        Ok(())
    }

    /// Records in the superblocks that every active member holds the header of checkpoint
    /// `count` (before anything is logged under it): a member found later with an older
    /// header went back in time.
    ///
    /// Only in a writing session: a checkpoint with nothing written since the last one
    /// recorded (a replay that found nothing, at assemble) leaves every member's data as it
    /// was, and recording it would mark members left out of a read-only start as faulty.
    fn record_journal_checkpoint(&self, count: u64) {
        if !self.meta.is_ready() {
            return;
        }
        let mut meta = self.meta.lock();
        meta.sb.journal_checkpoints = count;
        self.commit(&mut meta);
    }

    /// Writes the journal header to every active member and flushes it. A member that fails
    /// is marked faulty.
    pub(super) fn write_journal_headers(
        &self,
        tail: u64,
        nonce: u64,
        checkpoints: u64,
    ) -> Result<(), ArrayError> {
        let header = JournalHeader {
            tail,
            nonce,
            checkpoints,
        };
        self.write_vouching(
            self.regions.journal_offset,
            true,
            "journal header",
            |uuid| header.encode(&self.uuid, uuid),
        );
        self.check_alive()
    }

    /// Replays the journal after an unclean stop: reads every trusted member's parts, and
    /// writes every complete record in place again, oldest first; then checkpoints. Runs
    /// at assemble, before anything is served.
    ///
    /// A member whose journal shows it went back in time — its header older than the
    /// newest, or a part missing from a record that was provably durable (it, or a later
    /// record, had begun to go in place) — is behind: it is not asked for parts, the
    /// records are replayed without it, and its blocks of the regions this session wrote
    /// are rebuilt onto it later ([`Array::catch_up`]).
    pub(super) fn replay(&self) -> Result<ReplayReport, ArrayError> {
        let journal = self.guard.journal().expect("journal mode");
        let mut report = ReplayReport::default();
        let since = self.meta.lock().sb.session;
        let trusted = |m: &super::member::Member| m.is_active() && !m.is_behind();
        // The newest checkpoint any member recorded.
        let headers: Vec<Option<JournalHeader>> = self
            .members
            .iter()
            .map(|m| {
                let disk = m.disk().filter(|_| trusted(m))?;
                crate::meta::read_journal_header(
                    disk.as_ref(),
                    &self.regions,
                    &self.uuid,
                    &m.uuid(),
                )
            })
            .collect();
        // The checkpoint to replay from: the newest one every member is known to hold (the
        // superblocks record it once its headers are on every member, before anything is
        // logged under it), unless no member holds that one any more (a newer one's headers
        // reached them all, and only its record in the superblocks was cut).
        let complete = self.meta.lock().sb.journal_checkpoints;
        let valid = || headers.iter().flatten();
        let Some(current) = valid()
            .filter(|h| h.checkpoints == complete)
            .max_by_key(|h| h.age())
            .or_else(|| valid().max_by_key(|h| h.age()))
            .copied()
        else {
            log::warn!("no member holds a valid journal header; nothing to replay");
            journal.lock().reset_needed = true;
            return Ok(report);
        };
        // A member whose header is older than a checkpoint every member held went back in
        // time to before it. (A torn header was being written at the crash: its member
        // holds everything the checkpoint before it covers.)
        let older: Vec<usize> = (0..self.members.len())
            .filter(|&r| trusted(&self.members[r]))
            .filter(|&r| headers[r].is_some_and(|h| h.checkpoints < complete))
            .collect();
        self.fall_behind(&older, since, "its journal header is older than the newest");
        let found = self.gather(current, &mut report);
        let mut last = current.tail;
        let records: Vec<(u64, Found)> = found
            .into_iter()
            .filter(|(seq, record)| {
                last = last.max(seq + 1);
                if !record.consistent {
                    report.incomplete += 1;
                }
                record.consistent
            })
            .collect();
        // A disk being rebuilt into a role with no active member got no parts, and may have
        // missed in-place writes of stripes it held: it goes back to before the first
        // replayed stripe, and the rebuild refills from there.
        if let Some(lowest) = records.iter().map(|(_, r)| r.stripe).min() {
            for member in self.members.iter().filter(|m| !m.is_active()) {
                if let Some(incoming) = member.incoming()
                    && incoming.done.load(Ordering::Acquire) > lowest
                {
                    log::info!(
                        "{}: rebuild goes back to stripe {lowest} (written since its checkpoint)",
                        incoming.name
                    );
                    incoming.done.store(lowest, Ordering::Release);
                    incoming
                        .recorded
                        .store(lowest * self.layout.chunk(), Ordering::Release);
                }
            }
        }
        if !records.is_empty() {
            self.prepare_write();
        }
        // Blocks whose part is missing are rebuilt once every record is in place, from the
        // final contents of the rest of their rows: (stripe, row) → positions.
        let mut rebuild: BTreeMap<(u64, u64), BTreeSet<usize>> = BTreeMap::new();
        for (_, record) in &records {
            if self.replay_record(record, &mut rebuild)? {
                report.replayed += 1;
            } else {
                report.incomplete += 1;
            }
        }
        self.rebuild_missing_parts(&rebuild)?;
        {
            let mut st = journal.lock();
            st.next_seq = last;
            st.durable = last;
        }
        // Always a new checkpoint (new nonce): parts of this checkpoint that were not
        // reached (behind a torn header) must never be chained after new ones.
        self.journal_checkpoint()?;
        Ok(report)
    }

    /// Makes `roles` behind since `since` (why: `why`), when the redundancy still covers
    /// every role that lacks data; otherwise leaves them as they are (more members went
    /// back in time than the array survives). Returns whether it did.
    fn fall_behind(&self, roles: &[usize], since: u64, why: &str) -> bool {
        if roles.is_empty() {
            return false;
        }
        let lacking = self
            .members
            .iter()
            .filter(|m| !m.is_active() || m.is_behind())
            .count();
        if lacking + roles.len() > self.layout.m() {
            log::warn!(
                "role(s) {roles:?}: {why}, but more members would lack data than the array survives; trusting them"
            );
            return false;
        }
        for &role in roles {
            log::warn!("{}: {why}", self.members[role].name());
            self.set_behind(role, since);
        }
        true
    }

    /// The parts of every trusted member's journal under checkpoint `current`, grouped into
    /// records by sequence number.
    fn gather(
        &self,
        current: JournalHeader,
        report: &mut ReplayReport,
    ) -> std::collections::BTreeMap<u64, Found> {
        let mut found: std::collections::BTreeMap<u64, Found> = Default::default();
        for (role, member) in self.members.iter().enumerate() {
            let Some(disk) = member
                .disk()
                .filter(|_| member.is_active() && !member.is_behind())
            else {
                continue;
            };
            let (parts, unreadable) = self.read_parts(disk.as_ref(), &member.uuid(), current);
            if let Some(e) = unreadable {
                // Its parts cannot be known: it must not be required, and its blocks of the
                // replayed stripes are rebuilt from the others.
                self.journal_failures(vec![(role, e)], "journal read");
                continue;
            }
            for (header, data) in parts {
                if self
                    .layout
                    .member_at(header.stripe, usize::from(header.position))
                    != role
                {
                    continue;
                }
                report.parts += 1;
                let record = found.entry(header.seq).or_insert_with(|| Found {
                    stripe: header.stripe,
                    first_row: header.first_row,
                    rows: header.rows,
                    positions: header.positions.clone(),
                    parts: Vec::new(),
                    consistent: true,
                });
                if record.stripe != header.stripe
                    || record.first_row != header.first_row
                    || record.rows != header.rows
                    || record.positions != header.positions
                {
                    record.consistent = false;
                }
                record.parts.push((usize::from(header.position), data));
            }
        }
        found
    }

    /// Writes one record in place again: the parts found. A part missing from a trusted
    /// member's journal (a crash before it was written, damage, or a member that went back in
    /// time) is rebuilt later, from the rows' final contents (`rebuild`), when the
    /// redundancy allows: the record is coded like the stripe. A record missing more is
    /// skipped (it was never durable, so none of it went in place). Returns whether it was
    /// written.
    fn replay_record(
        &self,
        record: &Found,
        rebuild: &mut BTreeMap<(u64, u64), BTreeSet<usize>>,
    ) -> Result<bool, ArrayError> {
        let rows = record.first_row..record.first_row + u64::from(record.rows);
        let stripe = record.stripe;
        let listed = |pos: usize| record.positions.get(pos).copied().unwrap_or(false);
        let has_part = |pos: usize| record.parts.iter().any(|(p, _)| *p == pos);
        let serves = |pos: usize| {
            self.members
                .serves(self.layout.member_at(stripe, pos), stripe)
        };
        let width = self.width();
        let missing: Vec<usize> = (0..width)
            .filter(|&pos| listed(pos) && serves(pos) && !has_part(pos))
            .collect();
        let absent = (0..width).filter(|&pos| !serves(pos)).count();
        // With the blocks earlier records left missing in the same rows, each row must
        // still be rebuildable; otherwise this record is taken as never durable (more
        // members than the redundancy would lack parts of durable records).
        let rebuildable = rows.clone().all(|row| {
            let earlier = rebuild.get(&(stripe, row));
            let left = earlier.map_or(0, |e| {
                e.iter()
                    .filter(|&&p| !has_part(p) && !missing.contains(&p))
                    .count()
            });
            left + missing.len() + absent <= self.layout.m()
        });
        if !rebuildable {
            return Ok(false);
        }
        self.mark_written(stripe..=stripe);
        self.mark_data(stripe..=stripe);
        // A member behind gets nothing here: its blocks come back with the rest.
        for pos in (0..width).filter(|&pos| listed(pos)) {
            let member = &self.members[self.layout.member_at(stripe, pos)];
            if let (Some(behind), Some(map)) = (member.behind(), &self.sessions) {
                behind.add(map.region_of(stripe));
            }
        }
        let writes: Vec<(usize, &[u8])> = record
            .parts
            .iter()
            .filter(|(p, _)| serves(*p))
            .map(|(p, d)| (*p, &d[..]))
            .collect();
        self.write_positions(stripe, &rows, writes)?;
        for row in rows {
            // A block this record wrote supersedes an earlier record's missing one.
            let entry = rebuild.entry((stripe, row)).or_default();
            for (pos, _) in &record.parts {
                entry.remove(pos);
            }
            entry.extend(missing.iter().copied());
        }
        Ok(true)
    }

    /// Rebuilds the blocks whose journal part was missing, row by row, from the other
    /// blocks of the row as the replay left them (every record in place), and writes them.
    fn rebuild_missing_parts(
        &self,
        rebuild: &BTreeMap<(u64, u64), BTreeSet<usize>>,
    ) -> Result<(), ArrayError> {
        let width = self.width();
        for (&(stripe, row), positions) in rebuild.iter().filter(|(_, p)| !p.is_empty()) {
            let rows = row..row + 1;
            let lost: Vec<usize> = (0..width)
                .filter(|&pos| {
                    positions.contains(&pos)
                        || !self
                            .members
                            .serves(self.layout.member_at(stripe, pos), stripe)
                })
                .collect();
            if lost.len() > self.layout.m() {
                continue;
            }
            let want: Vec<bool> = (0..width).map(|pos| !lost.contains(&pos)).collect();
            let mut bufs = self.row_buffers(&rows);
            if self
                .load_rows(stripe, rows.clone(), &want, &mut bufs)
                .is_err()
            {
                continue;
            }
            {
                let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
                self.reconstruct(&mut slices, &lost)?;
            }
            let writes: Vec<(usize, &[u8])> =
                positions.iter().map(|&pos| (pos, &bufs[pos][..])).collect();
            self.write_positions(stripe, &rows, writes)?;
        }
        Ok(())
    }

    /// The valid parts of one member's journal, in order: the chain from the first block,
    /// up to the first header that is not a part of this checkpoint or breaks the order.
    /// A read error ends the walk and is returned with what was read before it.
    #[allow(clippy::type_complexity)]
    fn read_parts(
        &self,
        disk: &dyn crate::disk::Disk,
        member_uuid: &[u8; 16],
        current: JournalHeader,
    ) -> (
        Vec<(PartHeader, AlignedBuf)>,
        Option<crate::disk::DiskError>,
    ) {
        let journal = self.guard.journal().expect("journal mode");
        let base = self.regions.journal_offset + JB;
        let stripes = self.stripes();
        let mut out = Vec::new();
        let mut pos = 0u64;
        let mut prev = None;
        let mut buf = AlignedBuf::new(JOURNAL_BLOCK);
        while pos + JB <= journal.capacity {
            if let Err(e) = disk.read_at(&mut buf, base + pos) {
                return (out, Some(e));
            }
            let Some(header) = PartHeader::decode(&buf, &self.uuid, member_uuid) else {
                break;
            };
            let rows: Range<u64> =
                header.first_row..header.first_row.saturating_add(u64::from(header.rows));
            if header.nonce != current.nonce
                || header.seq < current.tail
                || prev.is_some_and(|p| header.seq <= p)
                || usize::from(header.width) != self.width()
                || header.stripe >= stripes
                || rows.end > journal.chunk_rows
                || pos + JB + header.data_len() > journal.capacity
            {
                break;
            }
            let mut data = AlignedBuf::new(header.data_len() as usize);
            if let Err(e) = disk.read_at(&mut data, base + pos + JB) {
                return (out, Some(e));
            }
            pos += JB + header.data_len();
            prev = Some(header.seq);
            if crc32fast::hash(&data) == header.data_crc {
                out.push((header, data));
            } else {
                log::warn!(
                    "{}: journal part of record {} is damaged; skipped",
                    disk.name(),
                    header.seq
                );
            }
        }
        (out, None)
    }
}
