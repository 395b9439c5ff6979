//! Events: what happened to an array, one record each (the role of `mdadm --monitor` and
//! ZFS's event daemon).
//!
//! Two sources give the same [`Event`]s. An open array sends them as they happen to every
//! receiver [`Array::events`](crate::Array::events) handed out. Another process watches
//! with [`Watch`]: it reads the members' superblocks, health records and bad-block logs
//! every so often, without locks and writing nothing, and turns what changed into events
//! (so it sees what owners record, when they record it).
//!
//! Owns the event vocabulary and the differ; must not open an array.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::disk::Disk;
use crate::format::{CSUM_BLOCK, HealthRecord, SlotState, Superblock};

/// Something that happened to an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member was marked faulty (or left out and recorded so).
    MemberFailed {
        /// Its role.
        role: usize,
        /// Its name (path).
        member: String,
        /// Why, when known.
        reason: String,
    },
    /// A member marked failed or behind is active in its role again (re-add, force, a
    /// resync that brought it back).
    MemberBack {
        /// Its role.
        role: usize,
        /// Its name (path).
        member: String,
    },
    /// A hot spare was added.
    SpareAdded {
        /// Its name (path).
        spare: String,
    },
    /// A hot spare was taken for a role that lost its member.
    SpareActivated {
        /// The role.
        role: usize,
        /// The spare.
        spare: String,
    },
    /// A rebuild (or replace) of a role began.
    RebuildStarted {
        /// The role.
        role: usize,
        /// The disk being filled.
        member: String,
        /// Bytes to fill.
        total: u64,
    },
    /// A rebuild reached a recorded checkpoint.
    RebuildProgress {
        /// The role.
        role: usize,
        /// The disk being filled.
        member: String,
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// A rebuild ended (finished, or stopped with its position recorded).
    RebuildFinished {
        /// The role.
        role: usize,
        /// The disk that was filled.
        member: String,
        /// Bytes filled by the run.
        bytes: u64,
        /// Bytes that could not be rebuilt.
        lost: u64,
        /// Stopped before the end.
        cancelled: bool,
    },
    /// A scrub ended.
    ScrubFinished {
        /// Damaged blocks found.
        found: u64,
        /// Of those, repaired.
        repaired: u64,
        /// Rows or blocks that could not be recovered.
        unrecoverable: u64,
        /// A repairing scrub.
        repair: bool,
        /// Stopped before the end.
        cancelled: bool,
    },
    /// Damaged blocks of a member were rewritten from redundancy.
    BlocksHealed {
        /// The member.
        member: String,
        /// Blocks healed.
        blocks: u64,
    },
    /// A range of a member could not be recovered: its reads fail, naming it.
    RangeLost {
        /// The member.
        member: String,
        /// Byte offset on the member.
        offset: u64,
        /// Bytes.
        len: u64,
    },
}

impl Event {
    /// The event's name in JSON: `member_failed`, `member_back`, `spare_added`,
    /// `spare_activated`, `rebuild_started`, `rebuild_progress`, `rebuild_finished`,
    /// `scrub_finished`, `blocks_healed`, `range_lost`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::MemberFailed { .. } => "member_failed",
            Event::MemberBack { .. } => "member_back",
            Event::SpareAdded { .. } => "spare_added",
            Event::SpareActivated { .. } => "spare_activated",
            Event::RebuildStarted { .. } => "rebuild_started",
            Event::RebuildProgress { .. } => "rebuild_progress",
            Event::RebuildFinished { .. } => "rebuild_finished",
            Event::ScrubFinished { .. } => "scrub_finished",
            Event::BlocksHealed { .. } => "blocks_healed",
            Event::RangeLost { .. } => "range_lost",
        }
    }
}

/// What the members said at one look.
#[derive(Debug, Clone)]
struct Snapshot {
    /// The newest superblock.
    sb: Superblock,
    /// Member UUID → the path it was found at.
    names: BTreeMap<[u8; 16], String>,
    /// The newest health record.
    health: HealthRecord,
    /// Member UUID → its bad-block ranges (first block, count).
    bad: BTreeMap<[u8; 16], BTreeSet<(u64, u64)>>,
}

/// Watches an array from outside its owner by reading its members over and over.
#[derive(Debug)]
pub struct Watch {
    paths: Vec<PathBuf>,
    array: [u8; 16],
    last: Snapshot,
}

/// Why a watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// No path holds a valid superblock.
    #[error("no raidkit member among the paths given")]
    NoMember,
}

impl Watch {
    /// Starts watching the array most of `paths` belong to (read once now).
    pub fn new(paths: &[PathBuf]) -> Result<Watch, WatchError> {
        let mut uuids: BTreeMap<[u8; 16], usize> = BTreeMap::new();
        for (_, sb) in read_superblocks(paths) {
            *uuids.entry(sb.array_uuid).or_default() += 1;
        }
        let array = uuids
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(u, _)| u)
            .ok_or(WatchError::NoMember)?;
        let last = snapshot(paths, &array).ok_or(WatchError::NoMember)?;
        Ok(Watch {
            paths: paths.to_vec(),
            array,
            last,
        })
    }

    /// The array's UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.array
    }

    /// The array's name (from the newest superblock seen).
    pub fn name(&self) -> &str {
        &self.last.sb.name
    }

    /// Reads the members again and returns what changed since the last look (nothing
    /// when no member could be read this time).
    pub fn poll(&mut self) -> Vec<Event> {
        let Some(now) = snapshot(&self.paths, &self.array) else {
            return Vec::new();
        };
        if now.sb.event < self.last.sb.event {
            // A torn read of an older copy: look again next time.
            return Vec::new();
        }
        let events = diff(&self.last, &now);
        self.last = now;
        events
    }
}

/// Each path's superblock, where one is valid.
fn read_superblocks(paths: &[PathBuf]) -> Vec<(crate::disk::ReadOnlyDisk, Superblock)> {
    paths
        .iter()
        .filter_map(|p| {
            let disk = crate::disk::open_read_only(p).ok()?;
            let sb = crate::meta::read_superblock(&disk).ok()?.superblock;
            Some((disk, sb))
        })
        .collect()
}

fn snapshot(paths: &[PathBuf], array: &[u8; 16]) -> Option<Snapshot> {
    let disks: Vec<_> = read_superblocks(paths)
        .into_iter()
        .filter(|(_, sb)| &sb.array_uuid == array)
        .collect();
    let sb = disks
        .iter()
        .map(|(_, sb)| sb)
        .max_by_key(|sb| sb.event)?
        .clone();
    let names = disks
        .iter()
        .map(|(d, s)| (s.member_uuid, d.name().to_string()))
        .collect();
    let health = disks
        .iter()
        .filter_map(|(d, _)| crate::meta::read_health(d, array).ok().flatten())
        .max_by_key(|h| h.generation)
        .unwrap_or_default();
    let bad = disks
        .iter()
        .filter_map(|(d, s)| {
            let log = crate::meta::read_bad_log(d, &s.member_uuid, &sb.regions).ok()?;
            Some((s.member_uuid, log.ranges.into_iter().collect()))
        })
        .collect();
    Some(Snapshot {
        sb,
        names,
        health,
        bad,
    })
}

/// The events that take the array from `a` to `b`.
fn diff(a: &Snapshot, b: &Snapshot) -> Vec<Event> {
    let mut out = Vec::new();
    let n = b.sb.members as usize;
    let name = |uuid: &[u8; 16]| {
        b.names
            .get(uuid)
            .or_else(|| a.names.get(uuid))
            .cloned()
            .or_else(|| {
                b.health
                    .entry(uuid)
                    .map(|e| e.path.clone())
                    .filter(|p| !p.is_empty())
            })
            .unwrap_or_else(|| crate::format::uuid_string(uuid))
    };
    let total = b.sb.regions.data_size;
    let was_spare = |uuid: &[u8; 16]| {
        a.sb.slots[n.min(a.sb.slots.len())..]
            .iter()
            .any(|s| &s.uuid == uuid && s.state == SlotState::Spare)
    };
    for role in 0..n.min(a.sb.slots.len()).min(b.sb.slots.len()) {
        let (sa, sb) = (a.sb.slots[role], b.sb.slots[role]);
        if sa == sb {
            continue;
        }
        let same = sa.uuid == sb.uuid;
        let failed = |reason: &str| Event::MemberFailed {
            role,
            member: name(&sa.uuid),
            reason: reason.to_string(),
        };
        // `taken_over`: the role lost its member to the disk now in it (a hot replace's
        // disk is recorded as a spare too, but takes over from an active member).
        let started = |out: &mut Vec<Event>, taken_over: bool| {
            if was_spare(&sb.uuid) && taken_over {
                out.push(Event::SpareActivated {
                    role,
                    spare: name(&sb.uuid),
                });
            }
            out.push(Event::RebuildStarted {
                role,
                member: name(&sb.uuid),
                total,
            });
        };
        match (sa.state, sb.state) {
            (SlotState::Active, SlotState::Faulty) if same => out.push(failed("recorded faulty")),
            (SlotState::Active, SlotState::Behind { .. }) if same => {
                out.push(failed("left out while the others were written: behind"))
            }
            (SlotState::Faulty | SlotState::Behind { .. }, SlotState::Active) if same => {
                out.push(Event::MemberBack {
                    role,
                    member: name(&sb.uuid),
                })
            }
            (_, SlotState::Rebuilding { checkpoint }) => {
                let continuing = same && matches!(sa.state, SlotState::Rebuilding { .. });
                if !continuing {
                    if sa.state == SlotState::Active {
                        // Failed and taken over between two looks.
                        out.push(failed("recorded faulty"));
                    }
                    started(&mut out, true);
                }
                if checkpoint > 0 {
                    out.push(Event::RebuildProgress {
                        role,
                        member: name(&sb.uuid),
                        done: checkpoint,
                        total,
                    });
                }
            }
            // Another disk holds the role: a hot replace, or a rebuild that began and ended
            // between two looks (its end comes from the health record).
            (_, SlotState::Active) if !same => started(&mut out, sa.state != SlotState::Active),
            _ => {}
        }
    }
    for slot in b.sb.slots.iter().skip(n) {
        let known = a.sb.slots.iter().any(|s| s.uuid == slot.uuid);
        if slot.state == SlotState::Spare && !known {
            out.push(Event::SpareAdded {
                spare: name(&slot.uuid),
            });
        }
    }
    if let Some(r) = b.health.rebuild
        && a.health.rebuild.is_none_or(|old| old != r)
    {
        let role = r.role as usize;
        let uuid = b.sb.slots.get(role).map(|s| s.uuid).unwrap_or([0; 16]);
        out.push(Event::RebuildFinished {
            role,
            member: name(&uuid),
            bytes: r.bytes,
            lost: r.lost,
            cancelled: r.cancelled,
        });
    }
    if let Some(s) = b.health.scrub
        && a.health.scrub.is_none_or(|old| old != s)
    {
        out.push(Event::ScrubFinished {
            found: s.found,
            repaired: s.repaired,
            unrecoverable: s.unrecoverable,
            repair: s.repair,
            cancelled: s.cancelled,
        });
    }
    for entry in &b.health.members {
        let before = a.health.entry(&entry.uuid).map_or(0, |e| e.counts.repaired);
        if entry.counts.repaired > before {
            out.push(Event::BlocksHealed {
                member: name(&entry.uuid),
                blocks: entry.counts.repaired - before,
            });
        }
    }
    for (uuid, ranges) in &b.bad {
        let old = a.bad.get(uuid);
        for &(first, count) in ranges {
            if old.is_some_and(|o| o.contains(&(first, count))) {
                continue;
            }
            out.push(Event::RangeLost {
                member: name(uuid),
                offset: b.sb.regions.data_offset + first * CSUM_BLOCK,
                len: count * CSUM_BLOCK,
            });
        }
    }
    out
}
