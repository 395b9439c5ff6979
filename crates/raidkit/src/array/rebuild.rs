//! Rebuild, hot spares and hot replace: filling a disk with a role's contents, online.
//!
//! A disk taking a role over is the role's *incoming* disk ([`super::member::Incoming`]).
//! It is filled stripe by stripe from the front: a stripe is locked, the role's blocks are
//! computed (rebuilt from the other members, or for a hot replace copied from the member
//! being replaced and rebuilt only where that member cannot be read), written to the
//! incoming disk, and the count of stripes done moves past it before the lock is released.
//! Reads of the stripes done use the incoming disk when the role has no active member;
//! writes to them reach it in any case. The count is recorded in the superblocks (slot
//! state rebuilding, with a checkpoint) every [`RebuildOptions::checkpoint_every`] bytes,
//! after the incoming disk is flushed, so an interrupted rebuild continues from there
//! after assemble. At the end, under every stripe lock, the incoming disk becomes the
//! role's member.
//!
//! A row that cannot be recovered (a read error on a survivor with no redundancy left) is
//! written as zeros with a checksum entry that never verifies and listed in the incoming
//! disk's bad-block log ([`crate::format::BadLog`]); reads of it fail with a clear error and
//! the rebuild goes on.
//!
//! Owns incoming disks and the fill policy (what a lost row means to the new disk, the swap
//! into the role). Must not recover or walk by itself: it goes through `pipeline`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::member::{BadBlocks, ChecksumTable, Incoming, Member, MemberState};
use super::pipeline::{BS, Found, Heal, Row, Walk};
use super::table::Fill;
use super::{Array, ArrayError, check_block_size, refuse_if_member};
use crate::disk::Disk;
use crate::format::{self, CSUM_BLOCK};

/// XORed into the checksum entry of a block written as lost, so it never verifies.
const POISON: u32 = 0x5a5a_5a5a;

/// Where a long-running operation (rebuild, replace, scrub) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done (of each member's data region).
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Bytes done by this run (a resumed run started at `done - this_run`).
    pub this_run: u64,
    /// Time since this run started.
    pub elapsed: Duration,
}

impl Progress {
    /// Bytes per second over this run.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.this_run as f64 / secs
        } else {
            0.0
        }
    }

    /// Estimated time to the end at this run's rate.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64((self.total - self.done) as f64 / rate))
    }
}

/// How a rebuild or replace runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildOptions {
    /// Bytes of the role's data to rebuild per second at most (None: as fast as the
    /// members go).
    pub rate: Option<u64>,
    /// Record the position in the superblocks after this many bytes, at least every 2 s,
    /// and when stopped.
    pub checkpoint_every: u64,
}

impl Default for RebuildOptions {
    fn default() -> RebuildOptions {
        RebuildOptions {
            rate: None,
            checkpoint_every: 128 << 20,
        }
    }
}

/// A range a rebuild could not recover, recorded in the new member's bad-block log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    /// Byte offset on the member.
    pub member_offset: u64,
    /// Bytes.
    pub len: u64,
    /// The array offset of the range when it holds data (None for parity).
    pub array_offset: Option<u64>,
}

/// What a rebuild or replace did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// The role rebuilt.
    pub role: usize,
    /// The disk that now holds it (or is still being filled, when cancelled).
    pub member: String,
    /// For a hot replace, the member it replaced.
    pub replaced: Option<String>,
    /// Bytes of the data region already done when this run started (a resumed rebuild).
    pub resumed_from: u64,
    /// Bytes of the data region filled by this run.
    pub bytes: u64,
    /// Blocks of other members found damaged on the way and repaired.
    pub repaired: u64,
    /// Ranges that could not be recovered.
    pub lost: Vec<LostRange>,
    /// Stopped before the end (it continues from its checkpoint next time).
    pub cancelled: bool,
    /// Of `bytes`, those skipped: the data map says nothing was ever written there, and
    /// the new disk reads as zeros already (included in `bytes`).
    pub skipped: u64,
}

/// A rebuild or replace in progress, in [`super::Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildStatus {
    /// The role.
    pub role: usize,
    /// The disk being filled.
    pub member: String,
    /// Bytes of the data region done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// A hot replace (the role's member is still active).
    pub replacing: bool,
    /// Running in this process now (else interrupted: it continues on the next rebuild).
    pub running: bool,
}

/// One stripe's fill: blocks of other members repaired, rows of the role lost.
#[derive(Default)]
struct Filled {
    repaired: u64,
    lost_rows: Vec<u64>,
    /// The data map says the stripe holds nothing, and the disk reads as zeros.
    skipped: bool,
}

impl Array {
    /// Rebuilds every role that needs it and can be rebuilt: first any interrupted rebuild
    /// (it continues from its checkpoint), then each role without an active member onto a
    /// hot spare. Online: reads and writes go on. Returns one report per role worked on;
    /// empty when there was nothing to do. `cancel` stops it at the next stripe group with
    /// the position recorded.
    pub fn rebuild(
        &self,
        options: &RebuildOptions,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Vec<RebuildReport>, ArrayError> {
        self.check_writable("rebuild")?;
        let _one = self
            .members
            .rebuilding
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut reports = Vec::new();
        while !cancel.load(Ordering::Relaxed) {
            let Some(role) = self.next_rebuild()? else {
                break;
            };
            let report = self.fill(role, options, cancel, progress)?;
            let stop = report.cancelled;
            reports.push(report);
            if stop {
                break;
            }
        }
        Ok(reports)
    }

    /// Whether [`rebuild`](Array::rebuild) has work: an interrupted rebuild, or a role
    /// without an active member while a spare is present.
    pub fn needs_rebuild(&self) -> bool {
        let interrupted = self
            .members
            .iter()
            .any(|m| !m.is_active() && m.incoming().is_some());
        let open = self
            .members
            .iter()
            .any(|m| !m.is_active() && m.incoming().is_none());
        interrupted || (open && self.spare_present())
    }

    fn spare_present(&self) -> bool {
        self.members
            .others()
            .iter()
            .any(|m| m.state() == MemberState::Spare && m.disk().is_some())
    }

    /// The next role to rebuild, taking a spare for it when needed.
    fn next_rebuild(&self) -> Result<Option<usize>, ArrayError> {
        let n = self.members.len();
        if let Some(role) =
            (0..n).find(|&r| !self.members[r].is_active() && self.members[r].incoming().is_some())
        {
            return Ok(Some(role));
        }
        let Some(role) =
            (0..n).find(|&r| !self.members[r].is_active() && self.members[r].incoming().is_none())
        else {
            return Ok(None);
        };
        let spare = {
            let mut others = self.members.others();
            match others
                .iter()
                .position(|m| m.state() == MemberState::Spare && m.disk().is_some())
            {
                Some(i) => others.remove(i),
                None => return Ok(None),
            }
        };
        let disk = spare.disk().expect("a present spare");
        log::info!(
            "{}: rebuilding role {role} onto the spare {}",
            self.members[role].name(),
            spare.name()
        );
        self.emit(crate::events::Event::SpareActivated {
            role,
            spare: spare.name(),
        });
        if let Err(e) = self.start_incoming(role, spare.name(), disk, spare.uuid()) {
            // It could not even start: the spare is faulty, and stays listed as such.
            spare.set_state(MemberState::Faulty);
            self.members.others().push(spare);
            return Err(e);
        }
        Ok(Some(role))
    }

    /// Replaces the member named `old` with `new`, online. When `old` is active, this is a
    /// hot replace (like `mdadm --replace`): `old` stays in service, so the array keeps
    /// its full redundancy, while its blocks are copied to `new` (only blocks it cannot
    /// read are rebuilt from the others); at the end `new` takes the role and `old` is
    /// released. When `old` has failed (or is stale or missing), this rebuilds its role
    /// onto `new`. `new` must be at least the array's member size; a disk holding a raidkit
    /// superblock is refused unless `force`.
    pub fn replace(
        &self,
        old: &str,
        new: Box<dyn Disk>,
        force: bool,
        options: &RebuildOptions,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<RebuildReport, ArrayError> {
        self.check_writable("replace a member")?;
        let role = self
            .members
            .role_of(old)
            .ok_or_else(|| ArrayError::NoSuchMember(old.to_string()))?;
        let _one = self
            .members
            .rebuilding
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(incoming) = self.members[role].incoming() {
            return Err(ArrayError::MemberState {
                member: old.to_string(),
                action: "replace",
                state: format!("already being rebuilt onto {}", incoming.name),
            });
        }
        if self.members[role].is_active() {
            let spares = self
                .members
                .others()
                .iter()
                .filter(|m| m.state() == MemberState::Spare)
                .count();
            if self.members.len() + spares + 1 > format::MAX_SLOTS {
                return Err(ArrayError::TableFull(format::MAX_SLOTS));
            }
        }
        let disk = self.admit(new, force)?;
        self.start_incoming(role, disk.name().to_string(), disk, crate::ids::new_uuid())?;
        self.fill(role, options, cancel, progress)
    }

    /// Checks a disk that is to join the array (block size, not already a member unless
    /// `force`, large enough, not already in the array) and blanks both superblock copies
    /// (no old copy may outlive the first update, which writes only one of them).
    pub(super) fn admit(
        &self,
        disk: Box<dyn Disk>,
        force: bool,
    ) -> Result<Arc<dyn Disk>, ArrayError> {
        let disk: Arc<dyn Disk> = Arc::from(disk);
        check_block_size(disk.as_ref())?;
        // A spare of this very array (an interrupted hot replace leaves its disk as one),
        // given or recorded, may be taken again without force; it leaves the spare list.
        let own_spare = crate::meta::read_superblock(disk.as_ref())
            .ok()
            .map(|r| r.superblock)
            .filter(|sb| sb.array_uuid == self.uuid)
            .map(|sb| sb.member_uuid)
            .filter(|uuid| {
                self.members.others().iter().any(|m| {
                    &m.uuid() == uuid
                        && matches!(m.state(), MemberState::Spare | MemberState::Missing)
                })
            });
        if !force && own_spare.is_none() {
            refuse_if_member(disk.as_ref())?;
        }
        let needed = self.meta.lock().sb.member_size;
        if disk.len() < needed {
            return Err(ArrayError::MemberTooSmall {
                member: disk.name().to_string(),
                size: disk.len(),
                needed,
            });
        }
        {
            let mut others = self.members.others();
            let role = self.members.iter().enumerate().find_map(|(role, m)| {
                if m.name() == disk.name() {
                    Some(format!("role {role}"))
                } else {
                    m.incoming()
                        .filter(|i| i.name == disk.name())
                        .map(|_| format!("being rebuilt into role {role}"))
                }
            });
            let spare = || {
                others
                    .iter()
                    .filter(|m| Some(m.uuid()) != own_spare)
                    .find(|m| m.name() == disk.name())
                    .map(|m| match m.state() {
                        MemberState::Spare => "a spare".to_string(),
                        _ => "a disk it holds outside its roles".to_string(),
                    })
            };
            if let Some(holder) = role.or_else(spare) {
                return Err(ArrayError::NameTaken {
                    member: disk.name().to_string(),
                    holder,
                });
            }
            others.retain(|m| Some(m.uuid()) != own_spare);
        }
        let blank = crate::disk::AlignedBuf::new(2 * format::SB_SIZE);
        disk.write_at(&blank, format::SB_OFFSETS[0])?;
        Ok(disk)
    }

    /// Makes `disk` the incoming disk of `role` (nothing copied yet) and records it.
    pub(super) fn start_incoming(
        &self,
        role: usize,
        name: String,
        disk: Arc<dyn Disk>,
        uuid: [u8; 16],
    ) -> Result<(), ArrayError> {
        // Asked before anything goes to its table or data regions.
        let starts_zero = self.data_map.is_some() && disk.reads_zero_from(self.regions.csum_offset);
        let bad = Arc::new(BadBlocks::default());
        // Its log must say "nothing lost" before any superblock names it: the disk may hold
        // an older log of its own.
        bad.touch();
        bad.store(disk.as_ref(), &uuid)?;
        disk.flush()?;
        let incoming = Arc::new(Incoming {
            name,
            disk: disk.clone(),
            uuid,
            table: Arc::new(ChecksumTable::fresh(
                disk,
                &self.regions,
                Fill::Zero,
                self.table_pages(),
            )),
            bad,
            done: Default::default(),
            recorded: Default::default(),
            failed: AtomicBool::new(false),
            starts_zero,
        });
        let mut meta = self.meta.lock();
        *self.members[role]
            .incoming
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(incoming.clone());
        if let Err(e) = self.commit_strict(&mut meta) {
            self.commit(&mut meta);
            if incoming.failed.load(Ordering::Acquire)
                || !self.commit_targets_include(&incoming.uuid)
            {
                return Err(e);
            }
        }
        Ok(())
    }

    fn commit_targets_include(&self, uuid: &[u8; 16]) -> bool {
        self.members
            .iter()
            .any(|m| m.incoming().is_some_and(|i| &i.uuid == uuid))
    }

    /// Gives up on `role`'s incoming disk after a failure on it.
    pub(super) fn abandon(&self, role: usize, incoming: &Arc<Incoming>, why: &str) {
        if incoming.failed.swap(true, Ordering::AcqRel) {
            return;
        }
        log::error!(
            "{}: abandoning the rebuild of role {role} onto it: {why}",
            incoming.name
        );
        *self
            .members
            .abandoned
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
        let member = &self.members[role];
        {
            let mut slot = member.incoming.write().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|i| Arc::ptr_eq(i, incoming)) {
                *slot = None;
            }
        }
        let mut meta = self.meta.lock();
        self.commit(&mut meta);
    }

    /// Takes `role`'s incoming disk out of service (under every stripe lock) and lists it as
    /// a spare.
    fn detach_as_spare(&self, role: usize, incoming: &Arc<Incoming>) {
        let _all = self.locks.everything();
        let mut meta = self.meta.lock();
        *self.members[role]
            .incoming
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.members.others().push(Member::new(
            incoming.name.clone(),
            Some(incoming.disk.clone()),
            MemberState::Spare,
            incoming.uuid,
            None,
        ));
        self.commit(&mut meta);
    }

    /// The name of the disk serving `role` in `stripe`.
    pub(super) fn holder_name(&self, role: usize, stripe: u64) -> String {
        match self.members.reader(role, stripe).and_then(|h| h.incoming) {
            Some(incoming) => incoming.name.clone(),
            None => self.members[role].name(),
        }
    }

    /// Fills `role`'s incoming disk from where it stands to the end, then makes it the
    /// role's member. Caller holds `self.members.rebuilding`.
    pub(super) fn fill(
        &self,
        role: usize,
        options: &RebuildOptions,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<RebuildReport, ArrayError> {
        let incoming = self.members[role]
            .incoming()
            .ok_or_else(|| ArrayError::MemberState {
                member: self.members[role].name(),
                action: "rebuild",
                state: "not being rebuilt".to_string(),
            })?;
        let chunk = self.layout.chunk();
        let stripes = self.stripes();
        let start = incoming.done.load(Ordering::Acquire);
        let replacing = self.members[role].is_active();
        let mut report = RebuildReport {
            role,
            member: incoming.name.clone(),
            replaced: replacing.then(|| self.members[role].name()),
            resumed_from: start * chunk,
            ..RebuildReport::default()
        };
        self.members.running.store(role + 1, Ordering::Release);
        let _running = Running(self);
        self.emit(crate::events::Event::RebuildStarted {
            role,
            member: incoming.name.clone(),
            total: stripes * chunk,
        });
        let started = Instant::now();
        let abandoned = |incoming: &Incoming| ArrayError::RebuildAbandoned {
            member: incoming.name.clone(),
            reason: self
                .members
                .abandoned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| "a write to it failed".to_string()),
        };
        // Regions never written need nothing on a disk that reads as zeros.
        let skip = |from: u64, end: u64| {
            if incoming.starts_zero {
                self.next_with_data(from, end)
            } else {
                from
            }
        };
        let walk = Walk {
            stripes: start..stripes,
            group: super::pipeline::group_for(chunk * self.width() as u64),
            cancel,
            rate: options.rate,
            bytes_per_stripe: chunk,
            checkpoint_every: options.checkpoint_every / chunk,
            skip: Some(&skip),
        };
        let walked = self.walk(
            &walk,
            &mut || {
                if incoming.failed.load(Ordering::Acquire) {
                    return Err(abandoned(&incoming));
                }
                self.check_alive()
            },
            &|stripe| self.fill_stripe(stripe, role, &incoming),
            // The stripes are the incoming disk's before their locks are released.
            &|end| incoming.done.store(end, Ordering::Release),
            &mut |next, filled| {
                report.bytes += filled.len() as u64 * chunk;
                for (stripe, f) in filled {
                    report.repaired += f.repaired;
                    if f.skipped {
                        report.skipped += chunk;
                    }
                    self.note_lost(stripe, role, &f.lost_rows, &mut report);
                }
                progress(&Progress {
                    done: next * chunk,
                    total: stripes * chunk,
                    this_run: report.bytes,
                    elapsed: started.elapsed(),
                });
            },
            &mut |_| self.record_fill(&incoming),
        );
        match walked {
            Ok(walked) => {
                report.cancelled = walked.cancelled;
                report.bytes += walked.skipped * chunk;
                report.skipped += walked.skipped * chunk;
            }
            Err(e) if incoming.failed.load(Ordering::Acquire) => {
                log::error!("{}: {e}", incoming.name);
                return Err(abandoned(&incoming));
            }
            Err(e) => return Err(e),
        }
        if report.cancelled {
            if self.members[role].is_active() {
                // A hot replace stopped: the old member still holds the role. The disk
                // stops taking writes and stays as a spare; replacing onto it again starts
                // over.
                self.detach_as_spare(role, &incoming);
            } else {
                self.record_fill(&incoming)?;
            }
            self.note_rebuild(&report);
            return Ok(report);
        }
        self.finish(role, &incoming)?;
        self.note_rebuild(&report);
        Ok(report)
    }

    fn note_lost(&self, stripe: u64, role: usize, rows: &[u64], report: &mut RebuildReport) {
        // A mirror's every copy holds the data (its chunk 0); parity has no array offset.
        let data = self.layout.data_index(stripe, role);
        for &row in rows {
            let member_offset = self.disk_offset(stripe, row);
            let array_offset = data.map(|d| self.layout.array_offset(stripe, d, row * CSUM_BLOCK));
            match report.lost.last_mut() {
                Some(last)
                    if last.member_offset + last.len == member_offset
                        && last.array_offset.map(|a| a + last.len) == array_offset =>
                {
                    last.len += CSUM_BLOCK;
                }
                _ => report.lost.push(LostRange {
                    member_offset,
                    len: CSUM_BLOCK,
                    array_offset,
                }),
            }
        }
    }

    /// Makes the incoming disk's stripes done durable and records them in the superblocks.
    fn record_fill(&self, incoming: &Arc<Incoming>) -> Result<(), ArrayError> {
        let role = self
            .members
            .iter()
            .position(|m| m.incoming().is_some_and(|i| Arc::ptr_eq(&i, incoming)));
        let _flushing = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = incoming.flush() {
            if let Some(role) = role {
                self.abandon(role, incoming, &format!("flush failed: {e}"));
            }
            return Err(ArrayError::RebuildAbandoned {
                member: incoming.name.clone(),
                reason: format!("flush failed: {e}"),
            });
        }
        let done = incoming.done.load(Ordering::Acquire) * self.layout.chunk();
        incoming.recorded.store(done, Ordering::Release);
        let mut meta = self.meta.lock();
        self.commit(&mut meta);
        drop(meta);
        if let Some(role) = role {
            self.emit(crate::events::Event::RebuildProgress {
                role,
                member: incoming.name.clone(),
                done,
                total: self.regions.data_size,
            });
        }
        Ok(())
    }

    /// Computes `role`'s blocks of `stripe` and writes them to `incoming`. Caller holds the
    /// stripe's exclusive lock.
    fn fill_stripe(
        &self,
        stripe: u64,
        role: usize,
        incoming: &Arc<Incoming>,
    ) -> Result<Filled, ArrayError> {
        // Nothing was ever written here, and the disk reads as zeros with zero entries
        // already: nothing to copy (the stripe's lock is held, so no write is on its way).
        if incoming.starts_zero && !self.holds_data(stripe) {
            return Ok(Filled {
                skipped: true,
                ..Filled::default()
            });
        }
        let pos = self.layout.position(stripe, role);
        let rows = 0..self.rows_per_chunk();
        let nrows = rows.end as usize;
        let width = self.width();
        let (mut bufs, status) = self.read_rows_all(stripe, &rows);
        // Rows where the role's block is good need nothing (a hot replace copying it).
        let recovery = self.recover(stripe, &rows, &mut bufs, &status, &|lost| {
            !lost.contains(&pos)
        })?;
        // The policy of a fill: a row is trusted when every damaged block of a present
        // member rebuilds to what its checksum records; otherwise its redundancy cannot be
        // trusted and the role's row is lost. Damage of the other members is healed on the
        // way; the role's own block is only ever written to the incoming disk.
        let mut filled = Filled::default();
        let mut lost_row = vec![false; nrows];
        let mut heal = Heal {
            fix_entries: true,
            repairs: vec![Vec::new(); width],
            ..Heal::default()
        };
        for (r, verdict) in recovery.rows.iter().enumerate() {
            match verdict {
                Row::TooMany(_) => lost_row[r] = true,
                Row::Rebuilt(found) => {
                    let others = found.iter().filter(|f| f.0 != pos);
                    heal.entries.extend(
                        others
                            .clone()
                            .filter(|f| f.1 == Found::Entry)
                            .map(|f| (f.0, r)),
                    );
                    if !verdict.trusted() {
                        lost_row[r] = true;
                        continue;
                    }
                    for &(q, how) in others {
                        match how {
                            Found::Verified => heal.repairs[q].push(r),
                            Found::Listed => heal.relisted.push((q, r)),
                            _ => {}
                        }
                    }
                }
                Row::Intact | Row::Skipped(_) => {}
            }
        }
        self.heal(stripe, &rows, &bufs, &status, &heal)?;
        filled.repaired =
            heal.repairs.iter().map(|r| r.len() as u64).sum::<u64>() + heal.entries.len() as u64;
        // The role's blocks: lost rows as zeros with an entry that never verifies. Entries
        // left from an earlier fill of this stripe (before a resume) no longer count.
        let base = self.block_index(stripe, 0);
        incoming.bad.clear(base, nrows as u64);
        let target = &mut bufs[pos];
        let mut entries = Vec::with_capacity(nrows);
        for (row, block) in target.chunks_mut(BS).enumerate() {
            let index = base + row as u64;
            if lost_row[row] {
                block.fill(0);
                // Never 0 either: 0 vouches for zeros.
                let poisoned = format::checksum_entry(role, index, block) ^ POISON;
                entries.push(if poisoned == 0 { !POISON } else { poisoned });
                if !incoming.bad.add(index, 1) {
                    return Err(ArrayError::BadLogFull {
                        member: incoming.name.clone(),
                    });
                }
                filled.lost_rows.push(row as u64);
            } else {
                entries.push(format::checksum_entry(role, index, block));
            }
        }
        if let Err(e) = incoming.disk.write_at(target, self.disk_offset(stripe, 0)) {
            self.abandon(role, incoming, &format!("write failed: {e}"));
            return Err(ArrayError::RebuildAbandoned {
                member: incoming.name.clone(),
                reason: format!("write failed: {e}"),
            });
        }
        if let Err(e) = incoming.table.set_range(base, &entries) {
            self.abandon(role, incoming, &format!("checksum table: {e}"));
            return Err(ArrayError::RebuildAbandoned {
                member: incoming.name.clone(),
                reason: format!("checksum table: {e}"),
            });
        }
        Ok(filled)
    }

    /// Makes the filled incoming disk `role`'s member, under every stripe lock.
    fn finish(&self, role: usize, incoming: &Arc<Incoming>) -> Result<(), ArrayError> {
        // It got the marks made since it started; now the whole map.
        self.store_session_map(Some(&incoming.disk), false);
        if let Err(e) = incoming.flush() {
            self.abandon(role, incoming, &format!("flush failed: {e}"));
            return Err(ArrayError::RebuildAbandoned {
                member: incoming.name.clone(),
                reason: format!("flush failed: {e}"),
            });
        }
        let _all = self.locks.everything();
        let _flushing = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.guard.journal().is_some() {
            // Every logged record durable in place (on the incoming disk too), so the journal
            // can start over on the new member set below.
            self.flush_locked()?;
        }
        let meta = self.meta.lock();
        let member = &self.members[role];
        let old_name = member.name();
        let old_disk = member.disk();
        let old_state = member.state();
        let old_uuid = member.uuid();
        member.set_disk(Some(incoming.disk.clone()));
        *member.name.write().unwrap_or_else(|e| e.into_inner()) = incoming.name.clone();
        *member.uuid.write().unwrap_or_else(|e| e.into_inner()) = incoming.uuid;
        *member.table.write().unwrap_or_else(|e| e.into_inner()) = Some(incoming.table.clone());
        *member.bad.write().unwrap_or_else(|e| e.into_inner()) = incoming.bad.clone();
        for counter in [
            &member.counters.read_errors,
            &member.counters.write_errors,
            &member.counters.checksum_errors,
            &member.counters.repaired,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        *member.incoming.write().unwrap_or_else(|e| e.into_inner()) = None;
        // The new disk holds every block of the role, whatever the old member lacked.
        member.set_behind(None);
        member.set_state(MemberState::Active);
        if old_state == MemberState::Active {
            log::info!("{}: replaced by {}; released", old_name, incoming.name);
        } else if let Some(disk) = old_disk {
            // The failed member stays listed (faulty) until it is removed.
            self.members.others().push(Member::new(
                old_name,
                Some(disk),
                MemberState::Faulty,
                old_uuid,
                None,
            ));
        }
        log::info!("{}: rebuilt; now role {role}", incoming.name);
        drop(meta);
        let restarted = self.journal_restart();
        let mut meta = self.meta.lock();
        self.commit(&mut meta);
        restarted
    }
}

/// Clears the "rebuild running" mark when a fill ends, however it ends.
struct Running<'a>(&'a Array);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.members.running.store(0, Ordering::Release);
    }
}

/// A thread that rebuilds onto hot spares as soon as a member fails (see
/// [`Array::start_auto_rebuild`]). Stopping it (or dropping it) cancels a rebuild in
/// progress at its next stripe group, with the position recorded.
#[derive(Debug)]
pub struct AutoRebuild {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<RebuildReport>>>,
}

impl AutoRebuild {
    /// Stops the thread and returns the reports of the rebuilds it ran.
    pub fn stop(mut self) -> Vec<RebuildReport> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Vec<RebuildReport> {
        self.stop.store(true, Ordering::Release);
        self.handle
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for AutoRebuild {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

impl Array {
    /// Starts a thread that watches the array and, whenever a role has no active member
    /// and a hot spare is present (or a rebuild was interrupted), rebuilds it
    /// ([`rebuild`](Array::rebuild)) with `options`, calling `progress`.
    pub fn start_auto_rebuild(
        self: &Arc<Array>,
        options: RebuildOptions,
        progress: Arc<dyn Fn(&Progress) + Send + Sync>,
    ) -> AutoRebuild {
        let stop = Arc::new(AtomicBool::new(false));
        let array = Arc::clone(self);
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("raidkit-rebuild".to_string())
            .spawn(move || {
                let mut reports = Vec::new();
                while !flag.load(Ordering::Acquire) {
                    if array.needs_rebuild() {
                        match array.rebuild(&options, &flag, &*progress) {
                            Ok(done) => reports.extend(done),
                            Err(e) => {
                                log::error!("automatic rebuild: {e}");
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                reports
            })
            .expect("spawning the rebuild thread");
        AutoRebuild {
            stop,
            handle: Some(handle),
        }
    }
}
