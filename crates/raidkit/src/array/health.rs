//! Health that persists: the health record (`format::health`) as the running array keeps
//! it — the counts recorded before this open, plus what this open counted; the paths the
//! members were opened at; the last scrub and rebuild — and when it is written back.
//!
//! Owns the record's contents and the decision to write it. Must not change a member's
//! state (the counts are reports; the error threshold works on this open's counts).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::member::Member;
use super::{Access, Array};
use crate::disk::Disk;
use crate::format::{ErrorCounts, HealthEntry, HealthRecord, RebuildRecord, ScrubRecord};

/// The record as found at assemble, and what this open added to it.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// As read from the members (counts before this open).
    recorded: HealthRecord,
    /// The generation last written, and the last scrub and rebuild as they now stand.
    current: Mutex<Current>,
}

#[derive(Debug, Default)]
struct Current {
    generation: u64,
    scrub: Option<ScrubRecord>,
    rebuild: Option<RebuildRecord>,
    /// Something to record beyond the counts (a scrub, a rebuild, new paths).
    changed: bool,
}

impl Health {
    pub fn new(recorded: HealthRecord) -> Health {
        let current = Current {
            generation: recorded.generation,
            scrub: recorded.scrub,
            rebuild: recorded.rebuild,
            changed: false,
        };
        Health {
            recorded,
            current: Mutex::new(current),
        }
    }

    /// The newest valid record among `disks` (an empty one when none holds one); a
    /// damaged copy is skipped with a warning.
    pub fn load(disks: &[&dyn Disk], array_uuid: &[u8; 16]) -> Health {
        let mut best: Option<HealthRecord> = None;
        for disk in disks {
            match crate::meta::read_health(*disk, array_uuid) {
                Ok(Some(record)) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| record.generation > b.generation)
                    {
                        best = Some(record);
                    }
                }
                Ok(None) => {}
                Err(e) => log::warn!("{}: {e}; its copy is not used", disk.name()),
            }
        }
        Health::new(best.unwrap_or_default())
    }

    /// The counts recorded for member `uuid` before this open.
    pub fn recorded(&self, uuid: &[u8; 16]) -> ErrorCounts {
        self.recorded
            .entry(uuid)
            .map(|e| e.counts)
            .unwrap_or_default()
    }

    /// The path member `uuid` was last recorded at.
    pub fn last_seen(&self, uuid: &[u8; 16]) -> Option<String> {
        self.recorded
            .entry(uuid)
            .map(|e| e.path.clone())
            .filter(|p| !p.is_empty())
    }

    pub fn last_scrub(&self) -> Option<ScrubRecord> {
        self.lock().scrub
    }

    pub fn last_rebuild(&self) -> Option<RebuildRecord> {
        self.lock().rebuild
    }

    pub fn set_scrub(&self, scrub: ScrubRecord) {
        let mut current = self.lock();
        current.scrub = Some(scrub);
        current.changed = true;
    }

    pub fn set_rebuild(&self, rebuild: RebuildRecord) {
        let mut current = self.lock();
        current.rebuild = Some(rebuild);
        current.changed = true;
    }

    /// Marks the paths as worth recording (a writing session started).
    pub fn touch(&self) {
        self.lock().changed = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This open's counts of `member`.
pub(super) fn live_counts(member: &Member) -> ErrorCounts {
    let c = &member.counters;
    ErrorCounts {
        read_errors: c.read_errors.load(Ordering::Relaxed),
        write_errors: c.write_errors.load(Ordering::Relaxed),
        checksum_errors: c.checksum_errors.load(Ordering::Relaxed),
        repaired: c.repaired.load(Ordering::Relaxed),
    }
}

/// Where a disk was opened: its absolute path when its name is a path, else its name.
fn path_of(name: &str) -> String {
    std::fs::canonicalize(name)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| name.to_string())
}

/// Now, in Unix seconds.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Array {
    /// Records a repairing scrub's result (a check-only scrub only looks: it writes
    /// nothing, its result included).
    pub(super) fn note_scrub(&self, report: &super::ScrubReport, repair: bool) {
        let found = report.damaged.len() as u64;
        self.emit(crate::events::Event::ScrubFinished {
            found,
            repaired: report.damaged.iter().filter(|d| d.repaired).count() as u64,
            unrecoverable: report.unrecoverable.len() as u64,
            repair,
            cancelled: report.cancelled,
        });
        if !repair {
            return;
        }
        self.health.set_scrub(ScrubRecord {
            ended: now(),
            found,
            repaired: report.damaged.iter().filter(|d| d.repaired).count() as u64,
            unrecoverable: report.unrecoverable.len() as u64,
            repair,
            cancelled: report.cancelled,
        });
        self.store_health(true);
    }

    /// Records a rebuild's or replace's result.
    pub(super) fn note_rebuild(&self, report: &super::RebuildReport) {
        for lost in &report.lost {
            self.emit(crate::events::Event::RangeLost {
                member: report.member.clone(),
                offset: lost.member_offset,
                len: lost.len,
            });
        }
        self.emit(crate::events::Event::RebuildFinished {
            role: report.role,
            member: report.member.clone(),
            bytes: report.bytes,
            lost: report.lost.iter().map(|l| l.len).sum(),
            cancelled: report.cancelled,
        });
        self.health.set_rebuild(RebuildRecord {
            ended: now(),
            role: report.role as u32,
            replace: report.replaced.is_some(),
            cancelled: report.cancelled,
            bytes: report.bytes,
            lost: report.lost.iter().map(|l| l.len).sum(),
        });
        self.store_health(true);
    }

    /// Whether the record on the members is behind this open: a count, a scrub, a rebuild
    /// or a writing session since assemble.
    fn health_changed(&self) -> bool {
        self.health.lock().changed
            || self
                .members
                .iter()
                .chain(self.members.others().iter())
                .any(|m| !live_counts(m).is_zero())
    }

    /// The record as it now stands: every member of the table with its counts (recorded
    /// plus this open's) and path (where it is now, else where it was last seen).
    fn health_record(&self, generation: u64) -> HealthRecord {
        let health = &self.health;
        let current = health.lock();
        let mut members = Vec::new();
        let others = self.members.others();
        for member in self.members.iter().chain(others.iter()) {
            let uuid = member.uuid();
            if members.iter().any(|e: &HealthEntry| e.uuid == uuid) {
                continue;
            }
            let path = match member.disk() {
                Some(disk) => path_of(disk.name()),
                None => health.last_seen(&uuid).unwrap_or_default(),
            };
            members.push(HealthEntry {
                uuid,
                counts: health.recorded(&uuid).plus(live_counts(member)),
                path,
            });
        }
        HealthRecord {
            generation,
            scrub: current.scrub,
            rebuild: current.rebuild,
            members,
        }
    }

    /// Writes the health record to every active member and spare when it changed, then
    /// flushes them when `flush`. Never from a report ([`Access::Inspect`]), and from a
    /// read-only open only when it repaired something; a member that
    /// fails to take it is only logged (the others keep the record, and the next write
    /// tries again).
    pub(super) fn store_health(&self, flush: bool) {
        let allowed = match self.options.access {
            Access::ReadWrite => true,
            // An open that only reads writes only when it repaired something: the repairs
            // and, with them, what was counted.
            Access::ReadOnly => self
                .members
                .iter()
                .chain(self.members.others().iter())
                .any(|m| live_counts(m).repaired > 0),
            Access::Inspect => false,
        };
        if !allowed || !self.health_changed() {
            return;
        }
        let generation = {
            let mut current = self.health.lock();
            current.generation = current.generation.wrapping_add(1);
            current.changed = false;
            current.generation
        };
        let record = self.health_record(generation);
        let mut disks: Vec<std::sync::Arc<dyn Disk>> = Vec::new();
        for member in self.members.iter() {
            if member.is_active()
                && let Some(disk) = member.disk()
            {
                disks.push(disk);
            }
            if let Some(incoming) = member.incoming() {
                disks.push(incoming.disk.clone());
            }
        }
        for member in self.members.others().iter() {
            if member.state() == super::MemberState::Spare
                && let Some(disk) = member.disk()
            {
                disks.push(disk);
            }
        }
        for disk in disks {
            let result = crate::meta::write_health(disk.as_ref(), &self.uuid, &record)
                .and_then(|()| if flush { disk.flush() } else { Ok(()) });
            if let Err(e) = result {
                log::warn!("{}: cannot write the health record: {e}", disk.name());
            }
        }
    }
}
