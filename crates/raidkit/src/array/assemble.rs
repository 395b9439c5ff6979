//! Assemble, in the stages md's own assembly goes through:
//!
//! 1. **probe**: read each disk's superblock (block size, both copies, the format version);
//! 2. **elect**: the array most disks belong to, its newest superblock, and the refusals
//!    (the same member twice, a member of another array, a geometry that differs);
//! 3. **place**: each disk in the role the newest superblock gives it, with its standing:
//!    current, behind some sessions (from the flush stamps, the session map and the
//!    journal's checkpoints), being filled up to a checkpoint, stale, or a spare;
//! 4. **load**: the checksum tables and bad-block logs of the members placed, the fills to
//!    continue, and the regions a member behind may not serve;
//! 5. **recover**: refuse too many missing members or a dirty degraded start, take the
//!    crash guard's word on what to resync (the write-intent bitmap), build the array and
//!    replay or restart its journal.
//!
//! Owns the decisions of assemble. Stages 1 to 4 only read; stage 5 is the only one that
//! may write, and only through the array it has built (the journal's replay and restart).
//! Must not decode records itself (that is `format`/`meta`) nor compute geometry (that is
//! `layout`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::health::Health;
use super::member::{BadBlocks, Behind, ChecksumTable, Incoming, Member, MemberState};
use super::session::{self, SessionMap, Standing};
use super::{
    Access, Array, ArrayError, ArrayOptions, MissingMember, check_block_size, check_unique_names,
    new_epoch,
};
use crate::disk::Disk;
use crate::format::{
    self, FLAG_BITMAP, FLAG_JOURNAL, FlushStamp, FormatError, Regions, SessionMapBlock, SlotState,
    Superblock,
};
use crate::layout::Layout;
use crate::meta::ReadError;

/// A disk and the superblock it holds.
struct Probed {
    disk: Arc<dyn Disk>,
    sb: Superblock,
}

/// What the members at the newest update say about the last sessions.
struct Sessions {
    /// Per disk, its flush stamp at the newest update (`None`: no usable stamp).
    stamps: Vec<Option<FlushStamp>>,
    /// The last flush completed on every stamped member.
    completed: u64,
    /// The newest stamp (the session continues from it).
    stamped: Option<FlushStamp>,
    /// The session map, as the members that missed no flush hold it.
    map: Option<SessionMap>,
    /// The event since which the map records sessions (0: it records none).
    map_since: u64,
}

/// A disk found being rebuilt into a role.
struct Filling {
    role: usize,
    disk: Arc<dyn Disk>,
    uuid: [u8; 16],
    /// Bytes of member data region trusted.
    checkpoint: u64,
}

/// Every disk in its place.
struct Placed {
    /// The members by role (a `Missing` placeholder where none was given).
    members: Vec<Member>,
    /// Spares, stale disks and missing spares.
    others: Vec<Member>,
    filling: Vec<Filling>,
    /// Members that may lack writes of recent sessions: (role, since).
    behind: Vec<(usize, u64)>,
    /// Disks in their own role that the newest superblock marks failed: what `force` may
    /// take back.
    forcible: Vec<Forcible>,
}

/// A disk in its own role, marked failed by the newest superblock.
struct Forcible {
    role: usize,
    standing: Standing,
    event: u64,
}

/// Where one disk goes.
enum Place {
    /// In its role, or among the others, in a state.
    Member(MemberState),
    /// Into its role as a disk being filled, trusted up to a checkpoint.
    Filling(u64),
}

impl Array {
    /// Assembles an existing array from `disks`, in any order.
    ///
    /// Places each member by the role its superblock gives, and refuses, with an error
    /// naming the member: an invalid superblock in every copy, an unknown format version,
    /// a member of another array, the same member twice, a geometry that differs from the
    /// array's. A member with an older event counter, or marked failed in the newest
    /// superblock, is stale: kept out of the data path and reported. The array starts
    /// degraded when at most m roles lack an active member, and refuses otherwise
    /// ([`ArrayError::TooManyMissing`]). Assemble writes nothing to any member, except to
    /// recover: a journal array that was not closed cleanly replays its journal (and a
    /// journal an older build wrote over is started over) before this returns, so the
    /// array is consistent before it serves anything, read-only callers included. A dirty
    /// journal array starts degraded without `allow_dirty_degraded`.
    pub fn assemble(
        disks: Vec<Box<dyn Disk>>,
        options: &ArrayOptions,
    ) -> Result<Array, ArrayError> {
        let probed = probe(disks)?;
        let newest = elect(&probed)?;
        let layout = newest.layout()?;
        let sessions = read_sessions(&probed, &newest, &layout);
        let mut placed = place(&probed, &newest, &layout, &sessions);
        if options.force && options.access == Access::ReadWrite {
            force_back(&mut placed, &newest, &layout);
        }
        load(
            &mut placed,
            &newest,
            &layout,
            &sessions,
            options.table_pages(layout.members()),
        );
        let disks: Vec<&dyn Disk> = probed.iter().map(|p| p.disk.as_ref()).collect();
        let health = Health::load(&disks, &newest.array_uuid);
        recover(placed, newest, layout, sessions, health, options)
    }
}

/// Stage 1: every disk's superblock.
fn probe(disks: Vec<Box<dyn Disk>>) -> Result<Vec<Probed>, ArrayError> {
    if disks.is_empty() {
        return Err(ArrayError::NoMembers);
    }
    let disks: Vec<Arc<dyn Disk>> = disks.into_iter().map(Arc::from).collect();
    check_unique_names(&disks)?;
    let mut probed = Vec::with_capacity(disks.len());
    for disk in disks {
        check_block_size(disk.as_ref())?;
        let read = crate::meta::read_superblock(disk.as_ref()).map_err(|source| match source {
            ReadError::NoValidCopy(FormatError::UnknownVersion { major, minor }, _)
            | ReadError::NoValidCopy(_, FormatError::UnknownVersion { major, minor }) => {
                ArrayError::UnknownVersion {
                    member: disk.name().to_string(),
                    major,
                    minor,
                }
            }
            source => ArrayError::Superblock {
                member: disk.name().to_string(),
                source,
            },
        })?;
        if let Some(other) = read.other.as_ref().filter(|e| **e != FormatError::BadMagic) {
            log::warn!(
                "{}: one superblock copy is invalid ({other}); using the other",
                disk.name()
            );
        }
        probed.push(Probed {
            disk,
            sb: read.superblock,
        });
    }
    Ok(probed)
}

/// Stage 2: the array most disks belong to (the first given on a tie) and its newest
/// superblock; every disk must be a distinct member of it, with its geometry.
fn elect(probed: &[Probed]) -> Result<Superblock, ArrayError> {
    for (i, p) in probed.iter().enumerate() {
        if let Some(j) = probed[..i]
            .iter()
            .position(|o| o.sb.member_uuid == p.sb.member_uuid)
        {
            return Err(ArrayError::DuplicateMember {
                member: p.disk.name().to_string(),
                other: probed[j].disk.name().to_string(),
            });
        }
    }
    let votes = |uuid: &[u8; 16]| probed.iter().filter(|p| &p.sb.array_uuid == uuid).count();
    let first = |uuid: &[u8; 16]| probed.iter().position(|p| &p.sb.array_uuid == uuid);
    let array_uuid = probed
        .iter()
        .map(|p| p.sb.array_uuid)
        .max_by_key(|uuid| (votes(uuid), std::cmp::Reverse(first(uuid))))
        .expect("at least one member");
    if let Some(p) = probed.iter().find(|p| p.sb.array_uuid != array_uuid) {
        return Err(ArrayError::ForeignMember {
            member: p.disk.name().to_string(),
            expected: format::uuid_string(&array_uuid),
            found: format::uuid_string(&p.sb.array_uuid),
        });
    }
    let newest = (0..probed.len())
        .max_by_key(|&i| (probed[i].sb.event, std::cmp::Reverse(i)))
        .expect("at least one member");
    let newest = probed[newest].sb.clone();
    for p in probed {
        check_geometry(p.disk.name(), &p.sb, &newest)?;
    }
    Ok(newest)
}

/// Stage 3, first half: the flush stamps and the session map of the members at the newest
/// update. Without a journal, a member whose last flush begun is below a flush completed
/// everywhere went back in time.
fn read_sessions(probed: &[Probed], newest: &Superblock, layout: &Layout) -> Sessions {
    let regions = &newest.regions;
    let at_newest =
        |sb: &Superblock| sb.event == newest.event && sb.session_nonce == newest.session_nonce;
    let stamps: Vec<Option<FlushStamp>> = probed
        .iter()
        .map(|p| {
            let usable = newest.flags & FLAG_JOURNAL == 0
                && newest.minor >= 3
                && newest.session != 0
                && SessionMapBlock::fits(regions)
                && at_newest(&p.sb);
            usable
                .then(|| {
                    session::read_stamp(
                        p.disk.as_ref(),
                        regions,
                        &newest.array_uuid,
                        &p.sb.member_uuid,
                    )
                })
                .flatten()
                .filter(|st| st.session_nonce == newest.session_nonce && st.event == newest.event)
        })
        .collect();
    let completed = stamps.iter().flatten().map(|st| st.done).max().unwrap_or(0);
    let stamped = stamps
        .iter()
        .flatten()
        .max_by_key(|st| (st.begun, st.done))
        .copied();
    let map = SessionMapBlock::fits(regions).then(|| {
        // Only members at the newest update that missed no flush: a member back in time
        // holds an old map that must not outvote copies torn at the crash.
        let sources: Vec<&dyn Disk> = probed
            .iter()
            .zip(&stamps)
            .filter(|(p, stamp)| at_newest(&p.sb) && stamp.map_or(0, |st| st.begun) >= completed)
            .map(|(p, _)| p.disk.as_ref())
            .collect();
        SessionMap::load(
            layout.stripes(regions.data_size),
            &newest.array_uuid,
            regions,
            &sources,
        )
    });
    Sessions {
        stamps,
        completed,
        stamped,
        map,
        map_since: if newest.minor >= 3 {
            newest.map_since
        } else {
            0
        },
    }
}

/// Stage 3: every disk in its role or among the others, by its slot in the newest
/// superblock and its standing; a placeholder for every role no disk fills.
fn place(probed: &[Probed], newest: &Superblock, layout: &Layout, sessions: &Sessions) -> Placed {
    let n = layout.members();
    let mut by_role: Vec<Option<Member>> = (0..n).map(|_| None).collect();
    let mut placed = Placed {
        members: Vec::new(),
        others: Vec::new(),
        filling: Vec::new(),
        behind: Vec::new(),
        forcible: Vec::new(),
    };
    for (index, p) in probed.iter().enumerate() {
        let slot = newest.slots.iter().position(|s| s.uuid == p.sb.member_uuid);
        let name = p.disk.name();
        let missed_flush = sessions.stamps[index].map_or(0, |st| st.begun) < sessions.completed;
        let place = match slot.map(|i| (i, newest.slots[i].state)) {
            Some((i, SlotState::Active)) if i < n => match session::standing(&p.sb, newest, None) {
                Standing::Current if missed_flush => {
                    log::warn!("{name}: missed a flush that completed on the others");
                    placed.behind.push((i, newest.session));
                    Place::Member(MemberState::Active)
                }
                Standing::Current => Place::Member(MemberState::Active),
                Standing::Behind(_) if through_checkpoint(p, newest) => {
                    Place::Member(MemberState::Active)
                }
                Standing::Behind(since) => {
                    placed.behind.push((i, since));
                    Place::Member(MemberState::Active)
                }
                Standing::Stale => Place::Member(MemberState::Stale),
            },
            Some((i, SlotState::Behind { since })) if i < n => {
                match session::standing(&p.sb, newest, Some(since)) {
                    Standing::Stale => Place::Member(MemberState::Stale),
                    Standing::Behind(since) => {
                        placed.behind.push((i, since));
                        Place::Member(MemberState::Active)
                    }
                    Standing::Current => Place::Member(MemberState::Active),
                }
            }
            Some((i, SlotState::Spare)) if i >= n => Place::Member(MemberState::Spare),
            Some((i, SlotState::Faulty)) if i < n => {
                placed.forcible.push(Forcible {
                    role: i,
                    standing: session::standing(&p.sb, newest, None),
                    event: p.sb.event,
                });
                Place::Member(MemberState::Stale)
            }
            Some((i, SlotState::Rebuilding { checkpoint })) if i < n => {
                match fill_checkpoint(&p.sb, newest, checkpoint, layout, sessions) {
                    Some(checkpoint) => Place::Filling(checkpoint),
                    None => Place::Member(MemberState::Stale),
                }
            }
            _ => Place::Member(MemberState::Stale),
        };
        let state = match place {
            Place::Filling(checkpoint) => {
                let role = slot.expect("a disk being filled has a slot");
                placed.filling.push(Filling {
                    role,
                    disk: p.disk.clone(),
                    uuid: p.sb.member_uuid,
                    checkpoint,
                });
                continue;
            }
            Place::Member(state) => state,
        };
        if state == MemberState::Stale {
            log::warn!(
                "{name}: {state} (member event {}, array event {})",
                p.sb.event,
                newest.event
            );
        }
        let member = Member::new(
            name.to_string(),
            Some(p.disk.clone()),
            state,
            p.sb.member_uuid,
            None,
        );
        match slot {
            Some(i) if i < n => by_role[i] = Some(member),
            _ => placed.others.push(member),
        }
    }
    for slot in &newest.slots[n..] {
        let present = probed.iter().any(|p| p.sb.member_uuid == slot.uuid);
        if slot.state == SlotState::Spare && !present {
            placed.others.push(Member::new(
                "(missing spare)".to_string(),
                None,
                MemberState::Missing,
                slot.uuid,
                None,
            ));
        }
    }
    placed.members = by_role
        .into_iter()
        .enumerate()
        .map(|(role, member)| {
            member.unwrap_or_else(|| {
                Member::new(
                    "(missing)".to_string(),
                    None,
                    MemberState::Missing,
                    newest.slots[role].uuid,
                    None,
                )
            })
        })
        .collect();
    placed
}

/// `force`: while more roles lack an active member than the redundancy covers, takes back
/// the freshest disk marked failed in its own role whose superblock shows what it missed
/// (current, or behind since an event: those regions are then resynchronised, or read as
/// lost where nothing else holds them). A disk whose superblock diverged stays out.
fn force_back(placed: &mut Placed, newest: &Superblock, layout: &Layout) {
    let mut candidates = std::mem::take(&mut placed.forcible);
    candidates.sort_by_key(|c| std::cmp::Reverse(c.event));
    for c in candidates {
        let lacking = placed.members.iter().filter(|m| !m.is_active()).count();
        if lacking <= layout.m() {
            break;
        }
        let member = &placed.members[c.role];
        let name = member.name();
        let missed = match c.standing {
            Standing::Stale => {
                log::warn!(
                    "--force: {name} stays out: its superblock (event {}) diverged from the array's",
                    c.event
                );
                continue;
            }
            Standing::Current => "it missed no write".to_string(),
            Standing::Behind(since) => {
                placed.behind.push((c.role, since));
                format!("the regions written since event {since} are not trusted on it")
            }
        };
        member.set_state(MemberState::Active);
        log::warn!(
            "--force: {name} (event {}, array event {}) taken back into role {} although the array had marked it failed; {missed}",
            c.event,
            newest.event,
            c.role
        );
    }
}

/// In a journal array, a member that went through the newest journal checkpoint holds
/// every write made before it (a checkpoint flushes every member before any header names
/// it), and every write since is in the journal: a clean close checkpoints last, and after
/// a crash the replay writes the records again, rebuilding any part the member lacks.
fn through_checkpoint(p: &Probed, newest: &Superblock) -> bool {
    newest.flags & FLAG_JOURNAL != 0
        && newest.minor >= 3
        && crate::meta::read_journal_header(
            p.disk.as_ref(),
            &newest.regions,
            &newest.array_uuid,
            &p.sb.member_uuid,
        )
        .is_some_and(|h| h.age().1 >= newest.journal_checkpoints)
}

/// How far a disk being filled is trusted: up to its checkpoint, and no further than its
/// own superblock recorded, nor past the first region written in a session it may have
/// missed (`None`: not at all, it is stale).
fn fill_checkpoint(
    sb: &Superblock,
    newest: &Superblock,
    checkpoint: u64,
    layout: &Layout,
    sessions: &Sessions,
) -> Option<u64> {
    match session::standing(sb, newest, None) {
        Standing::Current => Some(checkpoint),
        Standing::Behind(since) => {
            let own = sb
                .slots
                .iter()
                .find(|s| s.uuid == sb.member_uuid)
                .and_then(|s| match s.state {
                    SlotState::Rebuilding { checkpoint } => Some(checkpoint),
                    _ => None,
                })
                .unwrap_or(0);
            let first_written = match &sessions.map {
                Some(map) => map
                    .pending(since, sessions.map_since)
                    .iter()
                    .position(|p| *p)
                    .map_or(u64::MAX, |r| r as u64 * map.per_region * layout.chunk()),
                None => 0,
            };
            Some(checkpoint.min(own).min(first_written))
        }
        Standing::Stale => None,
    }
}

/// Stage 4: the checksum tables and bad-block logs of the active members (a member whose
/// table cannot be read is faulty), the fills that continue from their checkpoints, and
/// the regions members behind may not serve until a resync brings them back (all of them
/// without a session map).
fn load(
    placed: &mut Placed,
    newest: &Superblock,
    layout: &Layout,
    sessions: &Sessions,
    pages: usize,
) {
    let regions = &newest.regions;
    for member in placed.members.iter().filter(|m| m.is_active()) {
        let disk = member.disk().expect("active members have disks");
        // Opened, not read: pages come in as entries are needed (a page that cannot be
        // read fails the blocks it covers, which are then served from redundancy).
        *member.table.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new(ChecksumTable::open(disk.clone(), regions, pages)));
        *member.bad.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(load_bad_log(disk.as_ref(), &member.uuid(), regions));
    }
    for fill in std::mem::take(&mut placed.filling) {
        let name = fill.disk.name().to_string();
        let table = ChecksumTable::open(fill.disk.clone(), regions, pages);
        log::info!(
            "{name}: rebuilding role {}: {} of {} bytes done",
            fill.role,
            fill.checkpoint,
            regions.data_size
        );
        let incoming = Incoming {
            name,
            bad: Arc::new(load_bad_log(fill.disk.as_ref(), &fill.uuid, regions)),
            disk: fill.disk,
            uuid: fill.uuid,
            table: Arc::new(table),
            done: AtomicU64::new(fill.checkpoint / layout.chunk()),
            recorded: AtomicU64::new(fill.checkpoint),
            failed: AtomicBool::new(false),
            // Resumed: whatever it holds beyond the checkpoint is rewritten.
            starts_zero: false,
        };
        *placed.members[fill.role]
            .incoming
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(incoming));
    }
    for &(role, since) in &placed.behind {
        let member = &placed.members[role];
        let pending = match &sessions.map {
            Some(map) => map.pending(since, sessions.map_since),
            None => vec![true],
        };
        if pending.iter().any(|p| *p) && member.is_active() {
            log::warn!(
                "{}: may lack writes of the sessions since event {since} (array event {}); its blocks there are not used until a resync brings them back",
                member.name(),
                newest.event
            );
            member.set_behind(Some(Arc::new(Behind::new(since, pending))));
        }
    }
}

/// Stage 5: refuse what cannot start, decide what the resync must cover, build the array
/// and let the journal recover it.
fn recover(
    placed: Placed,
    mut newest: Superblock,
    layout: Layout,
    sessions: Sessions,
    health: Health,
    options: &ArrayOptions,
) -> Result<Array, ArrayError> {
    let n = layout.members();
    let members = placed.members;
    let writable = options.access == Access::ReadWrite;
    if writable && !options.degraded {
        // Active members left off the list would fall behind at the first write: only on
        // purpose.
        let missing: Vec<MissingMember> = (0..n)
            .filter(|&r| {
                matches!(
                    newest.slots[r].state,
                    SlotState::Active | SlotState::Behind { .. }
                ) && members[r].disk().is_none()
            })
            .map(|role| {
                let uuid = newest.slots[role].uuid;
                MissingMember {
                    role,
                    uuid: format::uuid_string(&uuid),
                    last_seen: health.last_seen(&uuid),
                }
            })
            .collect();
        if !missing.is_empty() {
            return Err(ArrayError::NotGiven { missing });
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&r| !members[r].is_active()).collect();
    if missing.len() > layout.m() && !options.allow_failed {
        return Err(ArrayError::TooManyMissing {
            present: n - missing.len(),
            missing,
            members: n,
            needed: n - layout.m(),
        });
    }
    let unclean = newest.is_dirty();
    // A journal written by this format can be replayed; one a build of an older minor
    // wrote over last cannot be trusted (it did not log its writes).
    let journaled = newest.flags & FLAG_JOURNAL != 0 && newest.minor >= 2;
    let lacking: Vec<usize> = (0..n)
        .filter(|&r| !members[r].is_active() || members[r].is_behind())
        .collect();
    if unclean && journaled && options.access == Access::ReadOnly {
        return Err(ArrayError::NeedsReplay);
    }
    if unclean && !lacking.is_empty() && !options.allow_dirty_degraded && !journaled && writable {
        return Err(ArrayError::DirtyDegraded { missing: lacking });
    }
    if unclean {
        log::warn!(
            "the array was not closed cleanly (dirty); parity of stripes being written at the time may be stale"
        );
    }
    let regions = newest.regions;
    let mut marked = None;
    if newest.flags & FLAG_BITMAP != 0 {
        if unclean && newest.bitmap_epoch != 0 {
            marked = read_intent(&members, &regions, &newest, layout.chunk());
        }
        if unclean && marked.is_none() {
            // No bitmap to trust: every region is marked (and stays so on the members
            // until a full resync), so a second crash cannot forget any of them.
            let (_, count) = format::IntentBitmap::geometry(layout.stripes(regions.data_size));
            marked = Some(vec![true; count as usize]);
        }
        if newest.bitmap_epoch == 0 {
            // A writer that does not know the bitmap touched the array: start a new one.
            newest.bitmap_epoch = new_epoch();
        }
    }
    if unclean {
        match &marked {
            Some(bits) => log::info!(
                "the write-intent bitmap marks {} of {} regions for resync",
                bits.iter().filter(|b| **b).count(),
                bits.len()
            ),
            None => log::info!("a resync walks every stripe"),
        }
    }
    let mut array = Array::build(
        layout,
        regions,
        newest,
        members,
        placed.others,
        unclean && !journaled,
        marked,
        options,
        sessions.map,
        sessions.stamped,
    )?;
    array.health = health;
    if !writable {
        // Nothing is recovered by an open that only reads: a journal to replay leaves a
        // report that says so ([`Access::ReadOnly`] was refused above).
        array.needs_replay = unclean && journaled;
        return Ok(array);
    }
    if let Some(journal) = array.guard.journal()
        && journal.reset_needed()
        && array.check_alive().is_ok()
    {
        // The journal was last written under another checkpoint than the one the members
        // name (an older build, or no valid header): start it over before any superblock
        // update can record this build's minor over it.
        log::info!("the journal is started over");
        array.journal_checkpoint()?;
    }
    if unclean && journaled {
        let report = array.replay()?;
        log::info!(
            "journal replayed: {} records written again, {} incomplete ones skipped",
            report.replayed,
            report.incomplete
        );
        *array.replayed.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }
    Ok(array)
}

/// The union of the write-intent bitmaps of the active members that carry the array's
/// epoch (`None` when none does: the resync must walk everything).
fn read_intent(
    members: &[Member],
    regions: &Regions,
    sb: &Superblock,
    chunk: u64,
) -> Option<Vec<bool>> {
    let stripes = regions.data_size / chunk;
    let mut union: Option<Vec<bool>> = None;
    for member in members.iter().filter(|m| m.is_active()) {
        let disk = member.disk()?;
        let mut buf = crate::disk::AlignedBuf::new(format::INTENT_SIZE);
        if disk.read_at(&mut buf, regions.bitmap_offset).is_err() {
            continue;
        }
        let Some(map) = format::IntentBitmap::decode(&buf, &sb.array_uuid, stripes)
            .filter(|m| m.epoch == sb.bitmap_epoch)
        else {
            continue;
        };
        match &mut union {
            None => union = Some(map.bits),
            Some(bits) => {
                for (a, b) in bits.iter_mut().zip(map.bits) {
                    *a |= b;
                }
            }
        }
    }
    union
}

/// A member's bad-block log; a damaged one counts as empty, with a warning (its blocks
/// still fail verification: a lost block's checksum entry never matches).
pub(super) fn load_bad_log(disk: &dyn Disk, uuid: &[u8; 16], regions: &Regions) -> BadBlocks {
    match crate::meta::read_bad_log(disk, uuid, regions) {
        Ok(log) => BadBlocks::from_log(log),
        Err(e) => {
            log::warn!("{}: cannot read its bad-block log ({e})", disk.name());
            BadBlocks::default()
        }
    }
}

/// Refuses a member whose geometry differs from the array's, naming the first field.
fn check_geometry(member: &str, sb: &Superblock, array: &Superblock) -> Result<(), ArrayError> {
    let fields: [(&'static str, String, String); 7] = [
        (
            "level",
            format!("{:?}", sb.level),
            format!("{:?}", array.level),
        ),
        ("members", sb.members.to_string(), array.members.to_string()),
        ("chunk", sb.chunk.to_string(), array.chunk.to_string()),
        ("k", sb.k.to_string(), array.k.to_string()),
        (
            "data_offset",
            sb.regions.data_offset.to_string(),
            array.regions.data_offset.to_string(),
        ),
        (
            "data_size",
            sb.regions.data_size.to_string(),
            array.regions.data_size.to_string(),
        ),
        (
            "regions",
            format!("{:?}", sb.regions),
            format!("{:?}", array.regions),
        ),
    ];
    for (field, found, expected) in fields {
        if found != expected {
            return Err(ArrayError::GeometryMismatch {
                member: member.to_string(),
                field,
                found,
                expected,
            });
        }
    }
    Ok(())
}
