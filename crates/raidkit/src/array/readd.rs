//! Re-adding a member that missed writes while it was failed or absent (like md's bitmap
//! re-add): it gets back only the regions written since the event it last saw, when the
//! session map reaches back that far, and is rebuilt in full only where that cannot be
//! known.
//!
//! Owns the decision partial or full; the partial resync itself is [`Array::catch_up`] and
//! the full one is the rebuild's fill.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::member::{Behind, ChecksumTable, MemberState};
use super::rebuild::{Progress, RebuildOptions};
use super::session::{self, Standing};
use super::{Array, ArrayError};

/// How [`Array::re_add`] brought a member back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReAddKind {
    /// It missed nothing: taken back as it is.
    Current,
    /// Only the regions written since event `since` were resynchronised onto it.
    Partial {
        /// The first event whose writes it may have missed.
        since: u64,
    },
    /// What it missed cannot be known (no session map reaching back that far, or its
    /// superblock diverged from the array's): its whole role was rebuilt onto it.
    Full,
}

impl ReAddKind {
    /// A short name: `current`, `partial` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            ReAddKind::Current => "current",
            ReAddKind::Partial { .. } => "partial",
            ReAddKind::Full => "full",
        }
    }
}

/// What [`Array::re_add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReAddReport {
    /// The member brought back.
    pub member: String,
    /// Its role.
    pub role: usize,
    /// How.
    pub kind: ReAddKind,
    /// Bytes of its data region written back from the others.
    pub bytes: u64,
    /// Bytes of a member's data region (what a full rebuild writes).
    pub member_bytes: u64,
    /// Bytes of its data region that could not be rebuilt onto it (more blocks lost than
    /// the redundancy): their reads fail, naming the range.
    pub lost_bytes: u64,
    /// A full rebuild stopped before the end (it continues on the next rebuild).
    pub cancelled: bool,
    /// It was active in its role already (nothing to bring back; a resync it still owed
    /// was finished).
    pub was_active: bool,
}

impl Array {
    /// Brings back the member named `name`, given at assemble but failed, stale or behind,
    /// into its role. When its superblock shows which sessions it missed and the session
    /// map reaches back that far, only the regions those sessions wrote are resynchronised
    /// from the others ([`ReAddKind::Partial`]); when it missed nothing it is taken back
    /// as it is ([`ReAddKind::Current`]); otherwise its role is rebuilt onto it in full
    /// ([`ReAddKind::Full`]). Online: reads and writes go on. A member that never belonged
    /// to this role (another array, or a disk whose role was given to another) is refused.
    pub fn re_add(
        &self,
        name: &str,
        options: &RebuildOptions,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<ReAddReport, ArrayError> {
        self.check_writable("re-add a member")?;
        let Some(role) = self.members.role_of(name) else {
            // Given, but outside the roles: a former member whose role another disk holds.
            if self.members.others().iter().any(|m| m.name() == name) {
                return Err(ArrayError::MemberState {
                    member: name.to_string(),
                    action: "re-add",
                    state: "no longer the member of a role (another disk took its role); add it as a spare (with force) to use it again".to_string(),
                });
            }
            return Err(ArrayError::NoSuchMember(name.to_string()));
        };
        let _one = self
            .members
            .rebuilding
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let member = &self.members[role];
        let mut report = ReAddReport {
            member: name.to_string(),
            role,
            kind: ReAddKind::Current,
            bytes: 0,
            member_bytes: self.regions.data_size,
            lost_bytes: 0,
            cancelled: false,
            was_active: false,
        };
        let refuse = |state: String| ArrayError::MemberState {
            member: name.to_string(),
            action: "re-add",
            state,
        };
        if let Some(incoming) = member.incoming() {
            return Err(refuse(format!("being rebuilt onto {}", incoming.name)));
        }
        match member.state() {
            MemberState::Active => {
                // Already in its role: finish a resync it still owes, if any.
                report.was_active = true;
                if let Some(behind) = member.behind() {
                    report.kind = ReAddKind::Partial {
                        since: behind.since,
                    };
                    self.resync_behind(role, &mut report)?;
                }
                return Ok(report);
            }
            MemberState::Faulty | MemberState::Stale => {}
            state => return Err(refuse(state.to_string())),
        }
        let disk = member.disk().ok_or_else(|| refuse("missing".to_string()))?;
        let sb = crate::meta::read_superblock(disk.as_ref())
            .map_err(|source| ArrayError::Superblock {
                member: name.to_string(),
                source,
            })?
            .superblock;
        if sb.array_uuid != self.uuid || sb.member_uuid != member.uuid() {
            return Err(refuse(
                "not this role's member any more (add it as a spare to rebuild onto it)"
                    .to_string(),
            ));
        }
        let (newest, map_since) = {
            let meta = self.meta.lock();
            (meta.sb.clone(), meta.sb.map_since)
        };
        // Which regions it may lack; `None`: it cannot be known.
        let pending = match (session::standing(&sb, &newest, None), &self.sessions) {
            (Standing::Current, Some(map)) => Some((None, vec![false; map.regions()])),
            (Standing::Current, None) => Some((None, vec![false])),
            (Standing::Behind(since), Some(map)) if map_since != 0 && since >= map_since => {
                Some((Some(since), map.pending(since, map_since)))
            }
            _ => None,
        };
        let Some((since, pending)) = pending else {
            return self.re_add_full(role, options, cancel, progress, report);
        };
        let table = ChecksumTable::open(disk.clone(), &self.regions, self.table_pages());
        let bad = super::assemble::load_bad_log(disk.as_ref(), &member.uuid(), &self.regions);
        {
            let _all = self.locks.everything();
            let mut meta = self.meta.lock();
            *member.table.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(table));
            *member.bad.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(bad);
            if let Some(since) = since
                && pending.iter().any(|p| *p)
            {
                member.set_behind(Some(Arc::new(Behind::new(since, pending))));
                report.kind = ReAddKind::Partial { since };
            }
            member.set_state(MemberState::Active);
            self.commit(&mut meta);
        }
        log::info!(
            "{name}: re-added to role {role} ({})",
            match report.kind {
                ReAddKind::Partial { since } =>
                    format!("it may lack the writes made since event {since}"),
                _ => "it missed no write".to_string(),
            }
        );
        self.emit(crate::events::Event::MemberBack {
            role,
            member: name.to_string(),
        });
        if member.is_behind() {
            self.resync_behind(role, &mut report)?;
        } else {
            // Its superblock is current now; in a journal array it gets the journal header
            // it was kept from.
            self.flush()?;
            self.journal_checkpoint()?;
        }
        Ok(report)
    }

    /// Resynchronises what `role`'s member is behind in, counting it into `report`.
    fn resync_behind(&self, role: usize, report: &mut ReAddReport) -> Result<(), ArrayError> {
        let member = &self.members[role];
        let chunk = self.layout.chunk();
        let stripes = self.behind_stripes(member).unwrap_or(0);
        let caught = self.catch_up(&|_, _| {})?;
        report.lost_bytes = caught.lost_stripes * chunk;
        report.bytes = stripes.saturating_sub(caught.lost_stripes) * chunk;
        Ok(())
    }

    /// Rebuilds `role` in full onto its own (failed or stale) disk, which gets a new member
    /// identity: nothing it held is trusted.
    fn re_add_full(
        &self,
        role: usize,
        options: &RebuildOptions,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&Progress) + Sync),
        mut report: ReAddReport,
    ) -> Result<ReAddReport, ArrayError> {
        let member = &self.members[role];
        let name = member.name();
        let disk = member
            .disk()
            .ok_or_else(|| ArrayError::NoSuchMember(name.clone()))?;
        log::warn!(
            "{name}: what it missed cannot be known (its superblock diverged from the array's, or the session map does not reach back that far); rebuilding its role in full"
        );
        {
            let _all = self.locks.everything();
            let mut meta = self.meta.lock();
            member.set_disk(None);
            *member.table.write().unwrap_or_else(|e| e.into_inner()) = None;
            member.set_state(MemberState::Missing);
            self.commit(&mut meta);
        }
        let blank = crate::disk::AlignedBuf::new(2 * crate::format::SB_SIZE);
        disk.write_at(&blank, crate::format::SB_OFFSETS[0])?;
        self.start_incoming(role, name, disk, crate::ids::new_uuid())?;
        let rebuilt = self.fill(role, options, cancel, progress)?;
        report.kind = ReAddKind::Full;
        report.bytes = rebuilt.bytes;
        report.lost_bytes = rebuilt.lost.iter().map(|l| l.len).sum();
        report.cancelled = rebuilt.cancelled;
        Ok(report)
    }
}
