//! Create: check every disk given (members and spares) before anything is written, plan
//! the regions, write the checksum tables, bring parity into agreement with the data
//! (the initial sync), and commit the first superblocks last.
//!
//! Owns the create options and the order of create's writes. Must not write anything
//! before every check has passed, nor commit a superblock before the tables are written.

use std::sync::Arc;

use super::member::{ChecksumTable, Member, MemberState};
use super::table::Fill;
use super::{
    Array, ArrayError, ArrayOptions, Consistency, check_block_size, check_unique_names, new_epoch,
    refuse_if_member, session, superblocks::now,
};
use crate::disk::Disk;
use crate::format::{
    self, FLAG_BITMAP, FLAG_JOURNAL, FormatError, Regions, SessionMapBlock, Slot, SlotState,
    Superblock, VERSION_MINOR,
};
use crate::layout::{DEFAULT_CHUNK, Layout, Level};

/// How `create` brings parity into agreement with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialSync {
    /// Skip the sync when every member says it is all zeros (a new sparse file), else sync.
    Auto,
    /// Trust that every member is all zeros (parity of zeros is zeros): no sync.
    AssumeZero,
    /// Always compute parity (copy the first mirror) over the whole array.
    Full,
}

/// Options for [`Array::create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The level.
    pub level: Level,
    /// Chunk size (default 512 KiB, [`DEFAULT_CHUNK`]).
    pub chunk: u64,
    /// The array's name (at most 32 bytes are stored).
    pub name: String,
    /// Overwrite members that already hold a raidkit superblock or a recognisable file
    /// system, swap area, encrypted volume or partition table.
    pub force: bool,
    /// The initial sync.
    pub sync: InitialSync,
    /// How the array stays consistent across crashes (default: [`Consistency::Journal`]
    /// for parity levels, [`Consistency::Bitmap`] for mirrors).
    pub consistency: Option<Consistency>,
    /// Options of the running array.
    pub array: ArrayOptions,
}

impl CreateOptions {
    /// Defaults for `level`: 512 KiB chunks, no name, no force, automatic initial sync.
    pub fn new(level: Level) -> CreateOptions {
        CreateOptions {
            level,
            chunk: DEFAULT_CHUNK,
            name: String::new(),
            force: false,
            sync: InitialSync::Auto,
            consistency: None,
            array: ArrayOptions::default(),
        }
    }

    /// Sets the crash-consistency mode.
    pub fn consistency(mut self, consistency: Consistency) -> CreateOptions {
        self.consistency = Some(consistency);
        self
    }

    /// The mode `create` uses: the one set, else the level's default.
    pub fn effective_consistency(&self) -> Consistency {
        self.consistency.unwrap_or(match self.level {
            Level::Mirror => Consistency::Bitmap,
            Level::Parity { .. } => Consistency::Journal,
        })
    }

    /// Sets the chunk size.
    pub fn chunk(mut self, chunk: u64) -> CreateOptions {
        self.chunk = chunk;
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: &str) -> CreateOptions {
        self.name = name.to_string();
        self
    }

    /// Sets `force`.
    pub fn force(mut self, force: bool) -> CreateOptions {
        self.force = force;
        self
    }

    /// Sets the initial sync.
    pub fn sync(mut self, sync: InitialSync) -> CreateOptions {
        self.sync = sync;
        self
    }

    /// Sets the running array's options.
    pub fn array_options(mut self, options: ArrayOptions) -> CreateOptions {
        self.array = options;
        self
    }

    /// Checks these options for `members` members and `spares` spares without touching
    /// any disk: the level's member count, the chunk size and room in the member table.
    /// [`Array::create_with_spares`] makes the same checks first; a caller that must do
    /// work of its own before it has the disks (create member files, say) asks here.
    pub fn check(&self, members: usize, spares: usize) -> Result<Layout, ArrayError> {
        let layout = Layout::new(self.level, members, self.chunk)?;
        if members.saturating_add(spares) > format::MAX_SLOTS {
            return Err(ArrayError::TableFull(format::MAX_SLOTS));
        }
        Ok(layout)
    }

    /// The smallest member size, in whole MiB, for which `members` members make an array of
    /// at least `capacity` bytes with these options (room for the superblocks, journal,
    /// bitmap and checksum tables included).
    pub fn member_size_for(&self, members: usize, capacity: u64) -> Result<u64, ArrayError> {
        let layout = Layout::new(self.level, members, self.chunk)?;
        let holds = |member: u64| {
            Regions::plan(member, self.chunk)
                .ok()
                .and_then(|r| layout.checked_capacity(r.data_size))
                .is_some_and(|c| c >= capacity)
        };
        // Grow until it holds, then bisect down to the smallest whole MiB that does.
        let mut high = format::MIB;
        while !holds(high) {
            high = high.checked_mul(2).ok_or(ArrayError::OutOfRange {
                op: "size",
                offset: 0,
                len: capacity,
                size: u64::MAX,
            })?;
        }
        let mut low = 0u64;
        while high - low > format::MIB {
            let mid = (low + high) / 2 / format::MIB * format::MIB;
            if mid > low && holds(mid) {
                high = mid;
            } else if mid > low {
                low = mid;
            } else {
                break;
            }
        }
        Ok(high)
    }
}

impl Array {
    /// Creates an array over `disks` (in role order) and returns it, open.
    ///
    /// Checks the members (count for the level, block size, size: the smallest member's
    /// size is used for all, and a log line says so), refuses a member that already holds
    /// a raidkit superblock unless `force`, writes checksum tables and superblocks, and
    /// brings parity into agreement with the data ([`InitialSync`]). Nothing is written
    /// until every check has passed.
    pub fn create(disks: Vec<Box<dyn Disk>>, options: &CreateOptions) -> Result<Array, ArrayError> {
        Array::create_with_progress(disks, options, &|_, _| {})
    }

    /// [`create`](Array::create), calling `progress(done, total)` (bytes of member data
    /// region) during the initial sync.
    pub fn create_with_progress(
        disks: Vec<Box<dyn Disk>>,
        options: &CreateOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Array, ArrayError> {
        Array::create_with_spares(disks, Vec::new(), options, progress)
    }

    /// [`create_with_progress`](Array::create_with_progress), with `spares` as hot spares
    /// from the start. The spares are checked with the members, before anything is
    /// written to any disk: block size, distinct names, a raidkit superblock (valid or
    /// damaged) or foreign data unless `force`, at least the members' size, room in the
    /// member table. The first superblocks already record them.
    pub fn create_with_spares(
        disks: Vec<Box<dyn Disk>>,
        spares: Vec<Box<dyn Disk>>,
        options: &CreateOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Array, ArrayError> {
        if disks.is_empty() {
            return Err(ArrayError::NoMembers);
        }
        let disks: Vec<Arc<dyn Disk>> = disks.into_iter().map(Arc::from).collect();
        let spares: Vec<Arc<dyn Disk>> = spares.into_iter().map(Arc::from).collect();
        let layout = options.check(disks.len(), spares.len())?;
        let every: Vec<Arc<dyn Disk>> = disks.iter().chain(&spares).cloned().collect();
        check_unique_names(&every)?;
        for disk in &every {
            check_block_size(disk.as_ref())?;
        }
        if !options.force {
            for disk in &every {
                refuse_if_member(disk.as_ref())?;
                if let Some(what) = crate::disk::foreign_signature(disk.as_ref())? {
                    return Err(ArrayError::ForeignData {
                        member: disk.name().to_string(),
                        what,
                    });
                }
            }
        }
        let smallest = disks
            .iter()
            .min_by_key(|d| d.len())
            .expect("at least one member");
        let regions = Regions::plan(smallest.len(), layout.chunk()).map_err(|e| match e {
            FormatError::TooSmall { size, needed } => ArrayError::MemberTooSmall {
                member: smallest.name().to_string(),
                size,
                needed,
            },
            other => ArrayError::Format(other),
        })?;
        if let Some(spare) = spares.iter().find(|d| d.len() < smallest.len()) {
            return Err(ArrayError::MemberTooSmall {
                member: spare.name().to_string(),
                size: spare.len(),
                needed: smallest.len(),
            });
        }
        if disks.iter().any(|d| d.len() != smallest.len()) {
            log::info!(
                "members differ in size; using {} bytes of each (the size of {})",
                smallest.len(),
                smallest.name()
            );
        }
        // Asked before anything is written: members that read as zeros need no sync, and
        // their (zero) table regions already vouch for every block (format minor 4).
        let known_zero: Vec<bool> = disks.iter().map(|d| d.is_known_zeroed()).collect();
        let zero = match options.sync {
            InitialSync::AssumeZero => true,
            InitialSync::Full => false,
            InitialSync::Auto => known_zero.iter().all(|z| *z),
        };
        let array_uuid = crate::ids::new_uuid();
        let size = layout.capacity(regions.data_size);
        let consistency = options.effective_consistency();
        let n = disks.len();
        let slots: Vec<Slot> = (0..n)
            .map(|_| Slot {
                uuid: crate::ids::new_uuid(),
                state: SlotState::Active,
            })
            .collect();
        let time = now();
        let sb = Superblock {
            minor: VERSION_MINOR,
            array_uuid,
            member_uuid: slots[0].uuid,
            slot: 0,
            level: layout.level(),
            k: layout.k() as u16,
            m: layout.m() as u8,
            members: n as u16,
            chunk: layout.chunk(),
            flags: match consistency {
                Consistency::Journal => FLAG_JOURNAL,
                Consistency::Bitmap => FLAG_BITMAP,
                Consistency::None => 0,
            } | if zero { format::FLAG_DATA_MAP } else { 0 },
            event: 0,
            ctime: time,
            utime: time,
            name: format::clip_name(&options.name),
            member_size: smallest.len(),
            array_size: size,
            regions,
            slots: slots.clone(),
            scrub: None,
            bitmap_epoch: if consistency == Consistency::Bitmap {
                new_epoch()
            } else {
                0
            },
            session: 0,
            session_nonce: 0,
            // Every region is zero (never written by a session) from the start.
            map_since: u64::from(SessionMapBlock::fits(&regions)),
            journal_checkpoints: 0,
        };
        let members: Vec<Member> = disks
            .iter()
            .zip(&slots)
            .map(|(disk, slot)| {
                // Zero entries (zero blocks) until the sync writes; stored whole at the end
                // unless the member reads as zeros already.
                let table = ChecksumTable::fresh(
                    disk.clone(),
                    &regions,
                    Fill::Zero,
                    options.array.table_pages(n),
                );
                Member::new(
                    disk.name().to_string(),
                    Some(disk.clone()),
                    MemberState::Active,
                    slot.uuid,
                    Some(table),
                )
            })
            .collect();
        let spares = spares
            .iter()
            .map(|disk| {
                Member::new(
                    disk.name().to_string(),
                    Some(disk.clone()),
                    MemberState::Spare,
                    crate::ids::new_uuid(),
                    None,
                )
            })
            .collect();
        let mut array = Array::build(
            layout,
            regions,
            sb,
            members,
            spares,
            false,
            None,
            &options.array,
            SessionMapBlock::fits(&regions)
                .then(|| session::SessionMap::new(layout.stripes(regions.data_size), 0)),
            None,
        )?;
        // An array that starts as zeros keeps a data map, every region empty.
        if zero {
            array.data_map = Some(super::datamap::DataMap::new(
                layout.stripes(regions.data_size),
                false,
            ));
        }
        // Until the tables are written no superblock may be: a member failing during the
        // initial sync is not committed.
        array.meta.set_creating(true);
        // An old superblock (create with force) must not outlive the start of the sync: a
        // create stopped half-way would leave it naming members whose parity it rewrote.
        for disk in &every {
            if crate::meta::read_superblock(disk.as_ref()).is_ok() {
                crate::meta::wipe_member(disk.as_ref())?;
            }
        }
        if !zero {
            array.initial_sync(progress)?;
        }
        // Tables first, superblocks last: a member without a valid superblock is not an
        // array member, whatever else was written. A member known to read as zeros with no
        // sync run has a zero table region already: only the pages written since (none
        // unless something wrote) go to it, so a sparse member stays sparse.
        array
            .io
            .parallel(
                array.members.iter().zip(&known_zero).collect(),
                |(member, &known_zero)| {
                    let table = member.table().expect("created members have tables");
                    if zero && known_zero {
                        table.write_dirty()?;
                    } else {
                        table.store_all()?;
                    }
                    Ok::<(), ArrayError>(())
                },
            )
            .into_iter()
            .collect::<Result<(), ArrayError>>()?;
        if array.guard.journal().is_some() {
            array.write_journal_headers(1, crate::ids::new_nonce(), 0)?;
        }
        array.store_whole_data_map();
        array.store_session_map(None, false);
        array.health.touch();
        array.store_health(false);
        {
            let mut meta = array.meta.lock();
            // Event 0 into copy 0, event 1 into copy 1: both copies valid from the start.
            meta.sb.event = u64::MAX;
            array.meta.set_creating(false);
            array.commit_strict(&mut meta)?;
            array.commit_strict(&mut meta)?;
        }
        Ok(array)
    }
}
