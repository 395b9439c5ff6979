//! The metadata writer: the newest superblock, the dirty flag it records, and the commits
//! that write it to every member.
//!
//! A commit bumps the event, records the member table the roster gives, and writes and
//! flushes the superblock on every active member, spare and incoming disk, on plain
//! threads (a commit may run inside a pool task, when a member fails mid-write). A member
//! whose update fails is marked faulty and the commit repeated, so the survivors record it.
//!
//! Owns the superblock template and the dirty, ready and creating flags. Must not decide
//! member states beyond marking a failed update (the roster and the array do).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ArrayError;
use super::exec::run_threads;
use super::member::{Incoming, Member, MemberState};
use super::roster::Roster;
use crate::format::{FLAG_DIRTY, Superblock, VERSION_MINOR};

/// The superblock template, under the writer's lock.
#[derive(Debug)]
pub(super) struct Meta {
    /// The newest superblock: what the next update starts from.
    pub sb: Superblock,
}

/// Writes the array's superblocks.
#[derive(Debug)]
pub(super) struct MetaWriter {
    meta: Mutex<Meta>,
    /// The array may hold writes not yet made consistent (recorded as `FLAG_DIRTY`).
    dirty: AtomicBool,
    /// The superblocks record the dirty flag, the writing session and the current member
    /// table (see `Array::prepare_write`).
    ready: AtomicBool,
    /// `create` has not finished: failures are not committed.
    creating: AtomicBool,
}

impl MetaWriter {
    /// A writer starting from `sb`.
    pub fn new(sb: Superblock) -> MetaWriter {
        MetaWriter {
            dirty: AtomicBool::new(sb.is_dirty()),
            meta: Mutex::new(Meta { sb }),
            ready: AtomicBool::new(false),
            creating: AtomicBool::new(false),
        }
    }

    /// The template, locked: commits are serialised by this lock.
    pub fn lock(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the next commit records the array dirty.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Sets what the next commit records.
    pub fn set_dirty(&self, dirty: bool) {
        self.dirty.store(dirty, Ordering::Release);
    }

    /// Whether the superblocks are ready for writes.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records whether the superblocks are ready for writes.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `create` is still writing the first metadata.
    pub fn is_creating(&self) -> bool {
        self.creating.load(Ordering::Acquire)
    }

    /// Marks `create` as running or finished.
    pub fn set_creating(&self, creating: bool) {
        self.creating.store(creating, Ordering::Release);
    }

    /// Writes a new superblock (event + 1) to every active member and spare, and flushes
    /// them. Members that fail are marked faulty and the update is repeated, so the
    /// survivors record the failure.
    pub fn commit(&self, meta: &mut Meta, roster: &Roster, serial: bool) {
        for _ in 0..=roster.len() + 1 {
            if self.commit_strict(meta, roster, serial).is_ok() {
                return;
            }
        }
    }

    /// One superblock update; on a member's failure marks it faulty and returns the error.
    pub fn commit_strict(
        &self,
        meta: &mut Meta,
        roster: &Roster,
        serial: bool,
    ) -> Result<(), ArrayError> {
        meta.sb.event = meta.sb.event.wrapping_add(1);
        // This build writes only the fields of its own minor version.
        meta.sb.minor = VERSION_MINOR;
        meta.sb.utime = now();
        meta.sb.flags = if self.is_dirty() {
            meta.sb.flags | FLAG_DIRTY
        } else {
            meta.sb.flags & !FLAG_DIRTY
        };
        meta.sb.slots = roster.slot_table();
        let others = roster.others();
        let stamp = |uuid: [u8; 16]| {
            let slot = meta.sb.slots.iter().position(|s| s.uuid == uuid)?;
            let mut sb = meta.sb.clone();
            sb.slot = slot as u32;
            sb.member_uuid = uuid;
            Some(sb)
        };
        enum Target<'a> {
            Member(&'a Member),
            Incoming(usize, Arc<Incoming>),
        }
        let mut targets: Vec<(Target, Superblock)> = roster
            .iter()
            .chain(others.iter())
            .filter(|m| matches!(m.state(), MemberState::Active | MemberState::Spare))
            .filter_map(|m| Some((Target::Member(m), stamp(m.uuid())?)))
            .collect();
        for (role, member) in roster.iter().enumerate() {
            if let Some(incoming) = member.incoming()
                && let Some(sb) = stamp(incoming.uuid)
            {
                targets.push((Target::Incoming(role, incoming), sb));
            }
        }
        // Plain threads, not the pool: a commit may run inside a pool task (a member failing
        // mid-write) and must not wait on, or steal, other pool work while holding `meta`.
        let results = run_threads(targets, serial, |(target, sb)| match target {
            Target::Member(member) => {
                let disk = member
                    .disk()
                    .ok_or_else(|| ArrayError::NoSuchMember(member.name()))?;
                crate::meta::write_superblock(disk.as_ref(), &sb)
                    .and_then(|()| disk.flush())
                    .map_err(|e| {
                        member.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                        member.set_state(MemberState::Faulty);
                        log::error!("{}: superblock update failed ({e}); faulty", member.name());
                        ArrayError::Disk(e)
                    })
            }
            Target::Incoming(role, incoming) => {
                crate::meta::write_superblock(incoming.disk.as_ref(), &sb)
                    .and_then(|()| incoming.disk.flush())
                    .map_err(|e| {
                        incoming.failed.store(true, Ordering::Release);
                        let member = &roster[role];
                        let mut slot = member.incoming.write().unwrap_or_else(|e| e.into_inner());
                        if slot.as_ref().is_some_and(|i| Arc::ptr_eq(i, &incoming)) {
                            *slot = None;
                        }
                        log::error!(
                            "{}: superblock update failed ({e}); the rebuild onto it is abandoned",
                            incoming.name
                        );
                        ArrayError::Disk(e)
                    })
            }
        });
        drop(others);
        results.into_iter().collect()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
