//! Writing sessions, the session map, and members that are behind: who is current, and
//! what a member that may have missed writes must get back before it is trusted for them
//! (format: [`crate::format::SessionMapBlock`], the superblock's `session` fields and the
//! behind slot state).
//!
//! A member's own superblock cannot prove it is current: a disk that lost its last writes,
//! or an image rolled back to a snapshot, carries a superblock that looks fine. So every
//! session that writes data starts with a superblock update that records a new session
//! (its start event and a random nonce) before its first write, and the session map
//! records, per region of stripes, the start event of the latest session that wrote it —
//! written to the members before the data it covers can be durable. At assemble a member
//! is *current* only when its superblock shows it went through everything the newest one
//! did (the same update, or the clean close of the same session); otherwise it is *behind
//! since* the first session whose writes it may lack, and the regions those sessions wrote
//! are resynchronised onto it from the others ([`Array::catch_up`]). Until then reads treat
//! its blocks in those regions as absent, and rebuilds never compute from them. Outside
//! them it serves as usual, so a crash during the last superblock update costs a resync of
//! what the last session wrote, not a rebuild.
//!
//! Owns who is current: sessions, the session map, flush stamps and the catch-up policy.
//! Must not read or rebuild stripes by itself (the catch-up goes through `load_rows`).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::member::{Behind, Member, MemberState};
use super::{Array, ArrayError};
use crate::disk::{AlignedBuf, Disk};
use crate::format::{
    FLUSH_STAMP_SIZE, FLUSH_STAMP_START, FlushStamp, Regions, SESSION_MAP_BLOCK,
    SESSION_MAP_PER_BLOCK, SESSION_MAP_START, SessionMapBlock, Superblock,
};

/// A region whose entry could not be read from any current member: treated as written by
/// every session.
const UNKNOWN: u64 = u64::MAX;

/// Where a member stands against the newest superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// It went through every write the newest superblock knows of.
    Current,
    /// It may lack the writes of the sessions that started at this event or later.
    Behind(u64),
    /// Nothing it holds can be trusted (out of the array, or diverged from it).
    Stale,
}

/// Whether the member whose superblock is `sb` is current against `newest`. `slot_since`:
/// the newest member table records it behind since that event.
pub(super) fn standing(sb: &Superblock, newest: &Superblock, slot_since: Option<u64>) -> Standing {
    let known = newest.minor >= 3 && newest.session != 0;
    let level = sb.event == newest.event && (!known || sb.session_nonce == newest.session_nonce);
    let own = if level {
        None
    } else if !known {
        // An older build wrote the array last: only a member at the newest update counts.
        return Standing::Stale;
    } else if sb.minor >= 3 && sb.session == 0 && sb.map_since != 0 {
        // It saw no session, and the map covers every session since it started (the same
        // map: the member recorded the same start): it may lack what the map records.
        if sb.map_since == newest.map_since {
            Some(sb.map_since)
        } else {
            Some(0)
        }
    } else if sb.minor < 3 || sb.session == 0 {
        // Its own superblock predates sessions: it may lack anything.
        Some(0)
    } else if sb.event == newest.event {
        return Standing::Stale; // the same event with another session: diverged
    } else if sb.session == newest.session {
        if sb.session_nonce != newest.session_nonce {
            return Standing::Stale;
        }
        // In the newest session: dirty, it may lack any of its writes; clean, it saw the
        // session closed after a flush and lacks none.
        Some(newest.session + u64::from(!sb.is_dirty()))
    } else if sb.session < newest.session {
        Some(sb.session + u64::from(!sb.is_dirty()))
    } else {
        return Standing::Stale;
    };
    let since = match (own, slot_since) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match since {
        Some(since) if since <= newest.session => Standing::Behind(since),
        _ => Standing::Current,
    }
}

/// The session map as the running array keeps it.
#[derive(Debug)]
pub(super) struct SessionMap {
    /// Stripes per region.
    pub per_region: u64,
    /// Per region: the start event of the latest session that wrote it ([`UNKNOWN`] when no
    /// copy could be read). Set only once the members hold it.
    born: Vec<AtomicU64>,
    /// Serialises marking: the blocks are written under it.
    io: Mutex<()>,
}

impl SessionMap {
    /// A map of `stripes` stripes with every entry `entry`.
    pub fn new(stripes: u64, entry: u64) -> SessionMap {
        let (per_region, count) = SessionMapBlock::geometry(stripes);
        SessionMap {
            per_region,
            born: (0..count).map(|_| AtomicU64::new(entry)).collect(),
            io: Mutex::new(()),
        }
    }

    /// The map the members at the newest update hold (`disks`): per region the highest
    /// entry any valid copy gives, [`UNKNOWN`] where none is valid.
    pub fn load(
        stripes: u64,
        array_uuid: &[u8; 16],
        regions: &Regions,
        disks: &[&dyn Disk],
    ) -> SessionMap {
        let map = SessionMap::new(stripes, 0);
        let count = map.born.len() as u64;
        let mut buf = AlignedBuf::new(SESSION_MAP_BLOCK);
        for index in 0..SessionMapBlock::blocks(count) {
            let mut best: Option<Vec<u64>> = None;
            for disk in disks {
                let offset =
                    regions.bitmap_offset + SESSION_MAP_START + (index * SESSION_MAP_BLOCK) as u64;
                if disk.read_at(&mut buf, offset).is_err() {
                    continue;
                }
                let Some(block) = SessionMapBlock::decode(&buf, array_uuid, stripes, index) else {
                    continue;
                };
                match &mut best {
                    None => best = Some(block.entries),
                    Some(best) => {
                        for (a, b) in best.iter_mut().zip(block.entries) {
                            *a = (*a).max(b);
                        }
                    }
                }
            }
            let first = index * SESSION_MAP_PER_BLOCK;
            let last = (first + SESSION_MAP_PER_BLOCK).min(count as usize);
            for r in first..last {
                let entry = best.as_ref().map_or(UNKNOWN, |b| b[r - first]);
                map.born[r].store(entry, Ordering::Relaxed);
            }
        }
        map
    }

    pub fn regions(&self) -> usize {
        self.born.len()
    }

    pub fn region_of(&self, stripe: u64) -> usize {
        (stripe / self.per_region) as usize
    }

    /// The regions a member behind since `since` must get back (every region when the map
    /// does not reach back that far: `since < map_since`).
    pub fn pending(&self, since: u64, map_since: u64) -> Vec<bool> {
        let all = map_since == 0 || since < map_since;
        self.born
            .iter()
            .map(|b| all || b.load(Ordering::Relaxed) >= since)
            .collect()
    }

    /// Entries no copy could give (torn at a crash) become `session`: as if this session
    /// wrote them, which can only make a later resync do more. Returns whether any did.
    pub fn settle_unknown(&self, session: u64) -> bool {
        let mut any = false;
        for b in &self.born {
            if b.load(Ordering::Relaxed) == UNKNOWN {
                b.store(session, Ordering::Relaxed);
                any = true;
            }
        }
        any
    }

    /// Sets every entry to zero (a new map).
    pub fn reset(&self) {
        for b in &self.born {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// Block `index` as it is now, with `extra` regions set to `session`.
    fn block(&self, index: usize, extra: &BTreeSet<usize>, session: u64) -> SessionMapBlock {
        let first = index * SESSION_MAP_PER_BLOCK;
        let last = (first + SESSION_MAP_PER_BLOCK).min(self.born.len());
        SessionMapBlock {
            index,
            stripes_per_region: self.per_region,
            regions: self.born.len() as u64,
            entries: (first..last)
                .map(|r| {
                    if extra.contains(&r) {
                        session
                    } else {
                        self.born[r].load(Ordering::Relaxed)
                    }
                })
                .collect(),
        }
    }
}

/// The flush stamps as this array last wrote them.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    /// The superblock event the current count runs under.
    pub event: u64,
    /// The last flush begun under it.
    pub begun: u64,
    /// Stamp writes so far (which copy the next one goes to).
    pub writes: u64,
    /// The last stamp written (kept in the other copy by the next write).
    pub last: Option<FlushStamp>,
}

/// A member's flush stamp, when it holds a valid one.
pub(super) fn read_stamp(
    disk: &dyn Disk,
    regions: &Regions,
    array_uuid: &[u8; 16],
    member_uuid: &[u8; 16],
) -> Option<FlushStamp> {
    let mut buf = AlignedBuf::new(FLUSH_STAMP_SIZE);
    disk.read_at(&mut buf, regions.bitmap_offset + FLUSH_STAMP_START)
        .ok()?;
    FlushStamp::decode(&buf, array_uuid, member_uuid)
}

/// What [`Array::catch_up`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Members brought back (every region they were behind in resynchronised).
    pub members: usize,
    /// Stripes whose blocks were rebuilt onto a member that was behind.
    pub stripes: u64,
    /// Stripes that could not be rebuilt (too many blocks lost): their regions stay behind.
    pub lost_stripes: u64,
}

impl Array {
    /// Stripes a member behind must still get back.
    pub(super) fn behind_stripes(&self, member: &Member) -> Option<u64> {
        let behind = member.behind()?;
        let stripes = self.stripes();
        let Some(map) = &self.sessions else {
            return Some(stripes);
        };
        Some(
            behind
                .regions()
                .into_iter()
                .map(|r| {
                    let first = r as u64 * map.per_region;
                    (first + map.per_region).min(stripes) - first
                })
                .sum(),
        )
    }

    /// Makes `role`'s member behind since `since` (the map says which regions), or adds to
    /// what it is behind in. Does not record it; the next superblock update does.
    pub(super) fn set_behind(&self, role: usize, since: u64) {
        let member = &self.members[role];
        let map_since = self.meta.lock().sb.map_since;
        let pending = match &self.sessions {
            Some(map) => map.pending(since, map_since),
            None => vec![true],
        };
        match member.behind() {
            Some(old) => {
                for (r, p) in pending.iter().enumerate() {
                    if *p {
                        old.add(r);
                    }
                }
            }
            None => {
                log::warn!(
                    "{}: may lack writes of the sessions since event {since}; its blocks there are not used until a resync brings them back",
                    member.name()
                );
                member.set_behind(Some(Arc::new(Behind::new(since, pending))));
            }
        }
    }

    /// Before stripes `stripes` are written in the current session: their regions carry the
    /// session's start event on every member (written, not flushed: the flush that makes a
    /// covered write durable makes the entry durable first). Entries are set in memory only
    /// once written, so a writer that finds its regions marked never overtakes the write.
    pub(super) fn mark_written(&self, stripes: RangeInclusive<u64>) {
        let Some(map) = &self.sessions else {
            return;
        };
        let session = self.session_start.load(Ordering::Acquire);
        if session == 0 {
            return;
        }
        let regions = map.region_of(*stripes.start())..=map.region_of(*stripes.end());
        let done = |r: usize| {
            let b = map.born[r].load(Ordering::Acquire);
            b == session || b == UNKNOWN
        };
        if regions.clone().all(done) {
            return;
        }
        let _io = map.io.lock().unwrap_or_else(|e| e.into_inner());
        let extra: BTreeSet<usize> = regions.filter(|&r| !done(r)).collect();
        if extra.is_empty() {
            return;
        }
        let blocks: BTreeSet<usize> = extra.iter().map(|r| r / SESSION_MAP_PER_BLOCK).collect();
        let encoded: Vec<(usize, Vec<u8>)> = blocks
            .into_iter()
            .map(|i| (i, map.block(i, &extra, session).encode(&self.uuid)))
            .collect();
        self.store_map_blocks(&encoded, None, false);
        for r in extra {
            map.born[r].store(session, Ordering::Release);
        }
    }

    /// Writes the whole session map to every member (`None`) or to one disk. `meta_held`:
    /// the caller holds the superblock lock and records failures with its next update.
    pub(super) fn store_session_map(&self, only: Option<&Arc<dyn Disk>>, meta_held: bool) {
        let Some(map) = &self.sessions else {
            return;
        };
        let _io = map.io.lock().unwrap_or_else(|e| e.into_inner());
        let none = BTreeSet::new();
        let encoded: Vec<(usize, Vec<u8>)> = (0..SessionMapBlock::blocks(map.regions() as u64))
            .map(|i| (i, map.block(i, &none, 0).encode(&self.uuid)))
            .collect();
        self.store_map_blocks(&encoded, only, meta_held);
    }

    /// Writes encoded map blocks to the active members and disks being filled (or to
    /// `only`). A member whose write fails is marked faulty.
    fn store_map_blocks(
        &self,
        blocks: &[(usize, Vec<u8>)],
        only: Option<&Arc<dyn Disk>>,
        meta_held: bool,
    ) {
        let base = self.regions.bitmap_offset + SESSION_MAP_START;
        let write = |disk: &dyn Disk| -> Result<(), crate::disk::DiskError> {
            let mut buf = AlignedBuf::new(SESSION_MAP_BLOCK);
            for (index, bytes) in blocks {
                buf.copy_from_slice(bytes);
                disk.write_at(&buf, base + (*index * SESSION_MAP_BLOCK) as u64)?;
            }
            Ok(())
        };
        if let Some(disk) = only {
            if let Err(e) = write(disk.as_ref()) {
                log::warn!("{}: cannot write the session map ({e})", disk.name());
            }
            return;
        }
        let targets: Vec<(usize, Arc<dyn Disk>, bool)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.state() == MemberState::Active)
            .filter_map(|(role, m)| Some((role, m.disk()?, false)))
            .chain(
                self.members
                    .iter()
                    .enumerate()
                    .filter_map(|(role, m)| Some((role, m.incoming()?.disk.clone(), true))),
            )
            .collect();
        let failed = self.io.parallel(targets, |(role, disk, incoming)| {
            write(disk.as_ref()).err().map(|e| (role, incoming, e))
        });
        for (role, incoming, e) in failed.into_iter().flatten() {
            let why = format!("session map write failed: {e}");
            if incoming {
                if let Some(i) = self.members[role].incoming() {
                    self.abandon(role, &i, &why);
                }
            } else {
                let member = &self.members[role];
                member.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                if meta_held {
                    if member.transition(MemberState::Active, MemberState::Faulty) {
                        log::error!("{}: marked faulty: {why}", member.name());
                    }
                } else {
                    self.fail_role(role, &why);
                }
            }
        }
    }

    /// The first round of a flush without a journal: every active member gets a stamp
    /// saying this flush began (the member flush that follows makes it durable with the
    /// data). Returns the stamp for [`stamp_done`](Array::stamp_done).
    pub(super) fn stamp_begin(&self) -> Option<FlushStamp> {
        let (event, nonce) = {
            let meta = self.meta.lock();
            (meta.sb.event, meta.sb.session_nonce)
        };
        let stamps = self.stamps.as_ref()?;
        let begun = {
            let mut state = stamps.lock().unwrap_or_else(|e| e.into_inner());
            if state.event != event {
                state.event = event;
                state.begun = 0;
            }
            state.begun += 1;
            state.begun
        };
        let stamp = FlushStamp {
            session_nonce: nonce,
            event,
            begun,
            done: begun - 1,
        };
        self.write_stamps(&stamp, false);
        Some(stamp)
    }

    /// The second round: the flush completed on every member, and every member says so
    /// (written and flushed) before the flush returns.
    pub(super) fn stamp_done(&self, begun: FlushStamp) {
        let stamp = FlushStamp {
            done: begun.begun,
            ..begun
        };
        self.write_stamps(&stamp, true);
    }

    /// Writes `stamp` to every active member (the caller holds `flush_lock`): into the copy
    /// after the last one written, keeping the previous stamp in the other.
    fn write_stamps(&self, stamp: &FlushStamp, flush: bool) {
        let Some(stamps) = self.stamps.as_ref() else {
            return;
        };
        let (previous, copy) = {
            let mut state = stamps.lock().unwrap_or_else(|e| e.into_inner());
            let previous = state.last.replace(*stamp);
            state.writes += 1;
            (previous, state.writes as usize)
        };
        self.write_vouching(
            self.regions.bitmap_offset + FLUSH_STAMP_START,
            flush,
            "flush stamp",
            |uuid| stamp.encode(previous.as_ref(), copy, &self.uuid, uuid),
        );
    }

    /// Writes a block that vouches for a member's data (a flush stamp, a journal header) at
    /// `offset` of every active member — not of a member behind, which may lack the data —
    /// flushing it when `flush`. `encode` gives the block for a member UUID. A member whose
    /// write fails is marked faulty.
    pub(super) fn write_vouching(
        &self,
        offset: u64,
        flush: bool,
        what: &str,
        encode: impl Fn(&[u8; 16]) -> Vec<u8> + Sync,
    ) {
        let targets: Vec<(usize, &Member)> = self
            .members
            .active()
            .into_iter()
            .filter(|(_, m)| !m.is_behind())
            .collect();
        let failed = self.io.parallel(targets, |(role, member)| {
            let disk = member.disk()?;
            let bytes = encode(&member.uuid());
            let mut buf = AlignedBuf::new(bytes.len());
            buf.copy_from_slice(&bytes);
            disk.write_at(&buf, offset)
                .and_then(|()| if flush { disk.flush() } else { Ok(()) })
                .err()
                .map(|e| (role, e))
        });
        for (role, e) in failed.into_iter().flatten() {
            self.members[role]
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            self.fail_role(role, &format!("{what} write failed: {e}"));
        }
    }

    /// Brings every member that is behind current: each region it may lack is rebuilt onto
    /// it, stripe by stripe, from the other members (online: each stripe is locked while it
    /// is rebuilt). A member whose regions all came back is flushed and recorded active.
    /// Stripes that cannot be rebuilt (more blocks lost than the redundancy) keep their
    /// region behind: their reads keep failing, naming the range. `progress(done, total)`
    /// in stripes.
    pub fn catch_up(
        &self,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<CatchUpReport, ArrayError> {
        self.check_writable("resync members behind")?;
        let mut report = CatchUpReport::default();
        let behind: Vec<(usize, Arc<Behind>)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_active())
            .filter_map(|(role, m)| Some((role, m.behind()?)))
            .collect();
        if behind.is_empty() {
            return Ok(report);
        }
        let Some(map) = &self.sessions else {
            return Err(ArrayError::MemberState {
                member: self.members[behind[0].0].name(),
                action: "catch up (this array keeps no session map; replace it instead)",
                state: "behind".to_string(),
            });
        };
        // Rebuilding a member's regions needs the redundancy to cover it and every role
        // without an active member; otherwise nothing is written (a start that left members
        // out would otherwise record them faulty for nothing).
        let unavailable = self.members.unavailable();
        if unavailable + 1 > self.layout.m() {
            let (role, _) = &behind[0];
            return Err(ArrayError::MemberState {
                member: self.members[*role].name(),
                action: "bring back (rebuilding its regions needs the other members: give every member)",
                state: format!("behind, with {unavailable} role(s) lacking an active member"),
            });
        }
        self.prepare_write();
        let stripes = self.stripes();
        let total: u64 = behind
            .iter()
            .filter_map(|(role, _)| self.behind_stripes(&self.members[*role]))
            .sum();
        let rows = 0..self.rows_per_chunk();
        let mut done = 0;
        for (role, state) in behind {
            for region in state.regions() {
                let first = region as u64 * map.per_region;
                let mut whole = true;
                for stripe in first..(first + map.per_region).min(stripes) {
                    self.check_alive()?;
                    if !self.members[role].is_active() {
                        return Ok(report);
                    }
                    let _exclusive = self.locks.exclusive_all(std::iter::once(stripe));
                    let pos = self.layout.position(stripe, role);
                    let mut want = vec![false; self.width()];
                    want[pos] = true;
                    let mut bufs = self.row_buffers(&rows);
                    match self.load_rows(stripe, rows.clone(), &want, &mut bufs) {
                        Ok(()) => {
                            self.write_positions(stripe, &rows, vec![(pos, &bufs[pos][..])])?;
                            report.stripes += 1;
                        }
                        Err(ArrayError::Unrecoverable { .. }) => {
                            whole = false;
                            report.lost_stripes += 1;
                        }
                        Err(e) => return Err(e),
                    }
                    done += 1;
                    progress(done, total);
                }
                if whole {
                    state.clear(region);
                }
            }
            if state.left() == 0 {
                let member = &self.members[role];
                // Its data and table pages durable, its map current, then it is recorded
                // as current.
                self.flush()?;
                if let Some(disk) = member.disk() {
                    self.store_session_map(Some(&disk), false);
                    disk.flush().map_err(ArrayError::Disk)?;
                }
                member.set_behind(None);
                log::info!("{}: resynchronised; current again", member.name());
                {
                    let mut meta = self.meta.lock();
                    self.commit(&mut meta);
                }
                // In a journal array it gets the journal header it was kept from.
                self.journal_checkpoint()?;
                report.members += 1;
            } else {
                log::warn!(
                    "{}: {} region(s) could not be resynchronised (too many blocks lost); it stays behind in them",
                    self.members[role].name(),
                    state.left()
                );
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format;

    fn sb(event: u64, session: u64, nonce: u64, dirty: bool) -> Superblock {
        let regions = Regions::plan(64 << 20, 64 << 10).unwrap();
        let layout =
            crate::layout::Layout::new(crate::layout::Level::Parity { m: 1 }, 3, 64 << 10).unwrap();
        Superblock {
            minor: format::VERSION_MINOR,
            array_uuid: [1; 16],
            member_uuid: [2; 16],
            slot: 0,
            level: crate::layout::Level::Parity { m: 1 },
            k: 2,
            m: 1,
            members: 3,
            chunk: 64 << 10,
            flags: if dirty { format::FLAG_DIRTY } else { 0 },
            event,
            ctime: 0,
            utime: 0,
            name: String::new(),
            member_size: 64 << 20,
            array_size: layout.capacity(regions.data_size),
            regions,
            slots: Vec::new(),
            scrub: None,
            bitmap_epoch: 0,
            session,
            session_nonce: nonce,
            map_since: 1,
            journal_checkpoints: 0,
        }
    }

    #[test]
    fn who_is_current() {
        // The newest: session started at event 10, closed cleanly at 12.
        let newest = sb(12, 10, 7, false);
        // The same update.
        assert_eq!(
            standing(&sb(12, 10, 7, false), &newest, None),
            Standing::Current
        );
        // It missed only the close of the session it was in: it may lack any of its writes.
        assert_eq!(
            standing(&sb(11, 10, 7, true), &newest, None),
            Standing::Behind(10)
        );
        // Clean after the same session, later updates missed (they wrote no data).
        assert_eq!(
            standing(&sb(11, 10, 7, false), &newest, None),
            Standing::Current
        );
        // Clean before the session began: lacks the session's writes.
        assert_eq!(
            standing(&sb(9, 5, 3, false), &newest, None),
            Standing::Behind(6)
        );
        // Dirty in an older session: lacks that session's writes and all after.
        assert_eq!(
            standing(&sb(6, 5, 3, true), &newest, None),
            Standing::Behind(5)
        );
        // Level, but recorded behind by the member table.
        assert_eq!(
            standing(&sb(12, 10, 7, false), &newest, Some(8)),
            Standing::Behind(8)
        );
        // Level with another session: diverged.
        assert_eq!(
            standing(&sb(12, 10, 9, false), &newest, None),
            Standing::Stale
        );
        assert_eq!(
            standing(&sb(11, 10, 9, true), &newest, None),
            Standing::Stale
        );
        // A superblock from before sessions existed: behind since the beginning.
        let mut old = sb(11, 0, 0, false);
        old.minor = 2;
        assert_eq!(standing(&old, &newest, None), Standing::Behind(0));
        // An array an older build wrote last: only the newest update counts.
        let mut legacy = sb(12, 0, 0, false);
        legacy.minor = 2;
        let mut one_behind = sb(11, 0, 0, false);
        one_behind.minor = 2;
        assert_eq!(standing(&one_behind, &legacy, None), Standing::Stale);
        assert_eq!(standing(&legacy.clone(), &legacy, None), Standing::Current);
    }

    #[test]
    fn pending_regions() {
        let map = SessionMap::new(20, 0);
        map.born[3].store(10, Ordering::Relaxed);
        map.born[5].store(12, Ordering::Relaxed);
        map.born[7].store(UNKNOWN, Ordering::Relaxed);
        let pending = map.pending(11, 1);
        let set: Vec<usize> = (0..20).filter(|&r| pending[r]).collect();
        assert_eq!(set, vec![5, 7]);
        assert!(map.pending(0, 1).iter().all(|p| *p));
        assert!(map.pending(11, 0).iter().all(|p| *p));
        let behind = Behind::new(11, pending);
        assert_eq!(behind.left(), 2);
        behind.clear(5);
        behind.clear(5);
        behind.add(9);
        assert_eq!(behind.left(), 2);
        assert!(behind.covers(9) && !behind.covers(5));
    }
}
