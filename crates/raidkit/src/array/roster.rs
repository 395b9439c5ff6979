//! The member set and its routing: which disk holds each role (the member, and the disk
//! taking the role over during a rebuild or replace), the spares and other present disks,
//! which disk serves a role's reads and which receive its writes for each stripe, and the
//! member table the superblocks record.
//!
//! Owns the roles' members, the spares, and the rebuild swap's bookkeeping (one rebuild at
//! a time, which role is being filled, why the last incoming disk was abandoned). Must not
//! read or write blocks, nor write superblocks (`superblocks` does, from `slot_table`).

use std::ops::Index;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::member::{BadBlocks, ChecksumTable, Incoming, Member, MemberState};
use crate::disk::Disk;
use crate::format::{Slot, SlotState};

/// A disk holding a role's blocks of one stripe: the role's member, or the disk taking the
/// role over (for stripes it already holds).
pub(super) struct Holder {
    pub disk: Arc<dyn Disk>,
    pub table: Arc<ChecksumTable>,
    pub bad: Arc<BadBlocks>,
    /// Set when this is the role's incoming disk.
    pub incoming: Option<Arc<Incoming>>,
}

/// The array's members by role, and its other disks.
#[derive(Debug)]
pub(super) struct Roster {
    /// Members by role.
    roles: Vec<Member>,
    /// Spares, and present members that are not in the array.
    others: Mutex<Vec<Member>>,
    /// Stripes per session-map region (`None` without a map: a member behind may hold
    /// stale blocks anywhere).
    per_region: Option<u64>,
    /// Held while a rebuild or replace runs (one at a time).
    pub rebuilding: Mutex<()>,
    /// The role being filled now, plus one (0: none).
    pub running: AtomicUsize,
    /// Why the last incoming disk was abandoned.
    pub abandoned: Mutex<Option<String>>,
}

impl Index<usize> for Roster {
    type Output = Member;
    fn index(&self, role: usize) -> &Member {
        &self.roles[role]
    }
}

impl Roster {
    /// A roster of `roles` and `others`.
    pub fn new(roles: Vec<Member>, others: Vec<Member>, per_region: Option<u64>) -> Roster {
        Roster {
            roles,
            others: Mutex::new(others),
            per_region,
            rebuilding: Mutex::new(()),
            running: AtomicUsize::new(0),
            abandoned: Mutex::new(None),
        }
    }

    /// The members, by role.
    pub fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.roles.iter()
    }

    /// The number of roles.
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// The spares and other present disks.
    pub fn others(&self) -> MutexGuard<'_, Vec<Member>> {
        self.others.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The roles with an active member, and the members.
    pub fn active(&self) -> Vec<(usize, &Member)> {
        self.roles
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_active())
            .collect()
    }

    /// Roles without an active member.
    pub fn unavailable(&self) -> usize {
        self.roles.iter().filter(|m| !m.is_active()).count()
    }

    /// The role of the member named `name`.
    pub fn role_of(&self, name: &str) -> Option<usize> {
        self.roles.iter().position(|m| m.name() == name)
    }

    /// Whether `role`'s member may hold stale blocks of `stripe` (behind, and the stripe not
    /// yet resynchronised onto it).
    pub fn behind_covers(&self, role: usize, stripe: u64) -> bool {
        let member = &self.roles[role];
        if !member.is_behind() {
            return false;
        }
        match (member.behind(), self.per_region) {
            (Some(behind), Some(per_region)) => behind.covers((stripe / per_region) as usize),
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The disk taking `role` over, when it already holds `stripe`.
    pub fn incoming_holder(&self, role: usize, stripe: u64) -> Option<Holder> {
        let incoming = self.roles[role].incoming()?;
        let holds = stripe < incoming.done.load(Ordering::Acquire)
            && !incoming.failed.load(Ordering::Acquire);
        holds.then(|| Holder {
            disk: incoming.disk.clone(),
            table: incoming.table.clone(),
            bad: incoming.bad.clone(),
            incoming: Some(incoming),
        })
    }

    /// The role's member, when active.
    fn member_holder(&self, role: usize) -> Option<Holder> {
        let member = &self.roles[role];
        if !member.is_active() {
            return None;
        }
        Some(Holder {
            disk: member.disk()?,
            table: member.table()?,
            bad: member.bad(),
            incoming: None,
        })
    }

    /// Where reads of `role`'s blocks in `stripe` go: the disk taking the role over when it
    /// already holds the stripe (freshly written and verified: during a hot replace the
    /// old member is usually the one in doubt), else the role's member when active.
    /// A member that is behind serves no stripe it may hold stale blocks of.
    pub fn reader(&self, role: usize, stripe: u64) -> Option<Holder> {
        self.incoming_holder(role, stripe).or_else(|| {
            self.member_holder(role)
                .filter(|_| !self.behind_covers(role, stripe))
        })
    }

    /// Whether `role` holds current blocks of `stripe`.
    pub fn serves(&self, role: usize, stripe: u64) -> bool {
        (self.roles[role].is_active() && !self.behind_covers(role, stripe))
            || self.incoming_holder(role, stripe).is_some()
    }

    /// Where writes of `role`'s blocks in `stripe` go: its member when active, and the disk
    /// taking the role over if it already holds the stripe.
    pub fn writers(&self, role: usize, stripe: u64) -> Vec<Holder> {
        self.member_holder(role)
            .into_iter()
            .chain(self.incoming_holder(role, stripe))
            .collect()
    }

    /// The member table as it should be recorded now.
    pub fn slot_table(&self) -> Vec<Slot> {
        let mut slots: Vec<Slot> = self
            .iter()
            .map(|member| {
                if let Some(incoming) = member.incoming()
                    && !member.is_active()
                    && !incoming.failed.load(Ordering::Acquire)
                {
                    return Slot {
                        uuid: incoming.uuid,
                        state: SlotState::Rebuilding {
                            checkpoint: incoming.recorded.load(Ordering::Acquire),
                        },
                    };
                }
                let state = match member.state() {
                    MemberState::Active => match member.behind() {
                        Some(behind) => SlotState::Behind {
                            since: behind.since,
                        },
                        None => SlotState::Active,
                    },
                    MemberState::Missing if member.uuid() == [0; 16] => SlotState::Empty,
                    // Faulty, stale, missing; also a role whose rebuild was abandoned (its
                    // checkpoint must not outlive it).
                    _ => SlotState::Faulty,
                };
                Slot {
                    uuid: member.uuid(),
                    state,
                }
            })
            .collect();
        // A disk receiving a hot replace is recorded as a spare: after a crash it comes back
        // as one, and the replace starts again.
        slots.extend(
            self.roles
                .iter()
                .filter(|m| m.is_active())
                .filter_map(|m| m.incoming())
                .filter(|i| !i.failed.load(Ordering::Acquire))
                .map(|i| Slot {
                    uuid: i.uuid,
                    state: SlotState::Spare,
                }),
        );
        let others = self.others();
        // Spares, also those absent this time (they keep their slot).
        slots.extend(
            others
                .iter()
                .filter(|m| matches!(m.state(), MemberState::Spare | MemberState::Missing))
                .map(|m| Slot {
                    uuid: m.uuid(),
                    state: SlotState::Spare,
                }),
        );
        slots
    }
}
