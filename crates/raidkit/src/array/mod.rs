//! The array: reads and writes, degraded mode, self-healing checksummed reads, member
//! management and status (create and assemble are `create.rs` and `assemble.rs`).
//!
//! An [`Array`] is `Send + Sync` and used through `&self` from many threads. Each stripe
//! has a reader-writer lock (from a fixed table of locks, hashed by stripe): writes and
//! repairs of a stripe hold it exclusively, verified reads share it, so stripes proceed in
//! parallel while a stripe never changes under a reader. The member I/Os of one stripe are
//! issued together on the array's thread pool.
//!
//! Every 4 KiB block of every member has an entry in that member's checksum table
//! ([`crate::format::checksum_entry`]). A read verifies every block it returns. A block
//! that fails (an `EIO` or a checksum mismatch) is rebuilt from the stripe's redundancy,
//! checked against its own entry, returned and written back; when the stripe has lost more
//! than its redundancy, the read fails with [`ArrayError::Unrecoverable`] naming the range:
//! the array never returns wrong data.
//!
//! ```
//! use raidkit::array::{Array, CreateOptions};
//! use raidkit::disk::{Disk, MemDisk};
//! use raidkit::layout::Level;
//!
//! let disks: Vec<Box<dyn Disk>> = (0..4)
//!     .map(|i| Box::new(MemDisk::new(&format!("m{i}"), 8 << 20, 4096)) as Box<dyn Disk>)
//!     .collect();
//! let array = Array::create(disks, &CreateOptions::new(Level::Parity { m: 1 }).chunk(64 << 10))?;
//! array.write_at(b"hello, stripes", 100_000)?;
//! let mut back = [0u8; 14];
//! array.read_at(&mut back, 100_000)?;
//! assert_eq!(&back, b"hello, stripes");
//! # Ok::<(), raidkit::array::ArrayError>(())
//! ```
//!
//! Owns the array's identity and holds its parts together: the roster (roles, spares, the
//! rebuild swap), the metadata writer (superblock commits), the stripe locks and the
//! executor, and the crash guard (journal, bitmap or none). Must not compute geometry (ask `layout`), encode
//! records (ask `format`/`meta`) or rebuild blocks (that is `pipeline`).

mod assemble;
mod create;
mod datamap;
mod error;
mod exec;
mod guard;
mod health;
mod intent;
mod journal;
mod member;
mod pipeline;
mod pool;
mod readd;
mod rebuild;
mod redundancy;
mod roster;
mod session;
mod stripe;
mod superblocks;
mod table;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use create::{CreateOptions, InitialSync};
pub use error::{ArrayError, MissingMember};
pub use journal::ReplayReport;
pub use member::MemberState;
use member::{BadBlocks, Member};
pub use readd::{ReAddKind, ReAddReport};
pub use rebuild::{AutoRebuild, LostRange, Progress, RebuildOptions, RebuildReport, RebuildStatus};
pub use session::CatchUpReport;
pub use stripe::{DamagedBlock, ResyncReport, ScrubOptions, ScrubReport};
use superblocks::Meta;
pub use table::DEFAULT_TABLE_CACHE;

use crate::disk::Disk;
use crate::format::{
    self, CSUM_BLOCK, FLAG_BITMAP, FLAG_JOURNAL, FormatError, Regions, ScrubMark, Superblock,
};
use crate::layout::{Layout, Level};
use crate::meta::ReadError;
use crate::parity::Engine;

/// Why a member failed when `fail_member` failed it.
const REQUESTED: &str = "failed by request";
/// Large requests are issued this many bytes (whole stripes) at a time.
const BATCH: usize = 16 << 20;

/// Options of a running array.
#[derive(Debug, Clone)]
pub struct ArrayOptions {
    /// The parity engine (default: [`Engine::detect`]).
    pub engine: Option<Engine>,
    /// A member whose read and checksum errors since assemble exceed this is marked faulty.
    pub error_threshold: u64,
    /// Threads issuing member I/O (default: twice the member count, from 4 to 32).
    pub threads: Option<usize>,
    /// Verify every block read against its checksum (default). Turning it off gives up
    /// detecting and healing silent corruption on reads; it exists to measure what
    /// verification costs. Writes always maintain the checksums.
    pub verify_reads: bool,
    /// Start an array that was not closed cleanly *and* is missing members. Refused by
    /// default, as md does: a stripe being written at the crash may have parity that does
    /// not match its data, and a missing member's data would be rebuilt from it wrongly.
    pub allow_dirty_degraded: bool,
    /// Start even when more roles are missing than the redundancy covers (state failed), to
    /// report on it: reads of lost data and every write fail. For status tools.
    pub allow_failed: bool,
    /// Issue every member I/O on the calling thread, one after the other, in a fixed
    /// order (slow). The same calls then reach the members in the same order every run,
    /// which is what a seeded crash simulation needs to replay a case.
    pub serial_io: bool,
    /// A region of the write-intent bitmap is cleared by a flush only once it has had no
    /// write for this long (default 2 s), so regions in use are not marked again, at the
    /// cost of a bitmap write and flush on every member, after every flush.
    pub bitmap_idle: std::time::Duration,
    /// What the array may change (default [`Access::ReadWrite`]).
    pub access: Access,
    /// Start a write-capable array although active members were not given (their roles
    /// then run degraded, and they fall behind). Refused by default
    /// ([`ArrayError::NotGiven`]), so that a member left off a list is never dropped by
    /// accident. Members already failed in the superblocks never need it.
    pub degraded: bool,
    /// When more roles lack an active member than the redundancy covers, take back into
    /// their roles the freshest disks the superblocks mark failed whose own superblock
    /// shows what they missed (a mistaken fail, a crash during a membership change), until
    /// the array can start, like `mdadm --assemble --force`. Each one is named in a
    /// warning; the regions it may have missed are resynchronised from the others, or,
    /// where none can give them, read as lost (never as its old bytes). Write-capable
    /// opens only.
    pub force: bool,
    /// Bytes of checksum-table pages the array keeps in memory, all members together
    /// (default [`DEFAULT_TABLE_CACHE`], 64 MiB). Pages are read from the members as needed
    /// and the least recently used are dropped (written back first when changed), so memory
    /// does not grow with the array's size. Each member's table gets an equal share, of at
    /// least one page.
    pub table_cache: u64,
}

impl ArrayOptions {
    /// These options, allowing a degraded start ([`ArrayOptions::degraded`]): for callers
    /// that assemble from a partial member list on purpose.
    pub fn allow_degraded(mut self) -> ArrayOptions {
        self.degraded = true;
        self
    }
}

/// What an open array may change on its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Everything: writes, membership, recovery at assemble.
    #[default]
    ReadWrite,
    /// For commands that read (`raidctl read`, a check-only scrub), by the array's one
    /// owner: no superblock update (membership, member states and the event counter stay
    /// as found; failures are kept in memory), no journal replay (an array that needs one
    /// is refused with [`ArrayError::NeedsReplay`]); a damaged block is still rewritten
    /// with the bytes read back from redundancy, and the health records updated. Writes
    /// and management calls fail with [`ArrayError::ReadOnly`].
    ReadOnly,
    /// For reports (`raidctl status`) beside other lookers: nothing at all is written,
    /// damage is found but not rewritten, and a journal waiting for replay is reported
    /// (reads are then refused with [`ArrayError::NeedsReplay`]). Open the members with
    /// [`crate::disk::open_shared`] so no owner can write meanwhile.
    Inspect,
}

impl ArrayOptions {
    /// Pages each member's checksum table may keep cached, for an array of `members`
    /// (one share more for a disk being rebuilt).
    pub(crate) fn table_pages(&self, members: usize) -> usize {
        usize::try_from(self.table_cache / format::CSUM_BLOCK / (members as u64 + 1))
            .unwrap_or(usize::MAX)
            .max(1)
    }
}

impl Default for ArrayOptions {
    fn default() -> ArrayOptions {
        ArrayOptions {
            engine: None,
            error_threshold: 256,
            threads: None,
            verify_reads: true,
            allow_dirty_degraded: false,
            allow_failed: false,
            serial_io: false,
            bitmap_idle: std::time::Duration::from_secs(2),
            access: Access::ReadWrite,
            degraded: false,
            force: false,
            table_cache: table::DEFAULT_TABLE_CACHE,
        }
    }
}

/// How an array stays consistent across a crash (chosen at create, shown by `status`;
/// `docs/design.md` §24 states what each one promises).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every write is logged to the members' journals before it goes in place, and replayed
    /// after a crash: no write hole, even when members are lost at the crash; blocks being
    /// written come back whole, old or new. A dirty degraded array starts without force.
    Journal,
    /// A write-intent bitmap: after a crash only the regions being written are
    /// resynchronised. A member lost at the crash leaves the write hole open in them.
    Bitmap,
    /// Nothing: after a crash the whole array is resynchronised; the write hole is open.
    None,
}

impl Consistency {
    /// Its name: `journal`, `bitmap` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Journal => "journal",
            Consistency::Bitmap => "bitmap",
            Consistency::None => "none",
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Consistency, String> {
        match s {
            "journal" => Ok(Consistency::Journal),
            "bitmap" => Ok(Consistency::Bitmap),
            "none" => Ok(Consistency::None),
            other => Err(format!(
                "unknown consistency mode {other:?} (journal, bitmap or none)"
            )),
        }
    }
}

/// Where one block of the array is stored: which member, and where on its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The member's role (its position in the member table).
    pub role: usize,
    /// The member's name.
    pub member: String,
    /// The byte offset on the member's disk.
    pub disk_offset: u64,
}

/// The array's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayState {
    /// Every role has an active member.
    Clean,
    /// Some roles have no active member, but no more than the redundancy.
    Degraded,
    /// More roles are lost than the redundancy covers: data is lost.
    Failed,
}

impl ArrayState {
    /// The state's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ArrayState::Clean => "clean",
            ArrayState::Degraded => "degraded",
            ArrayState::Failed => "failed",
        }
    }
}

/// One member in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its role (position), or `None` for spares and members not in the array.
    pub role: Option<usize>,
    /// Its disk's name (path), or `(missing)`.
    pub name: String,
    /// Its member UUID.
    pub uuid: String,
    /// Its state.
    pub state: MemberState,
    /// Blocks that could not be read (`EIO`), over its life in the array: the count kept
    /// in the health record plus this open's.
    pub read_errors: u64,
    /// Failed writes and flushes, over its life in the array.
    pub write_errors: u64,
    /// Blocks whose checksum did not match, over its life in the array.
    pub checksum_errors: u64,
    /// Blocks rewritten from redundancy, over its life in the array.
    pub repaired: u64,
    /// The same counts, of this open only (what this command found and healed).
    pub this_open: format::ErrorCounts,
    /// Ranges of its bad-block log: (byte offset on the member, bytes) whose contents were
    /// lost (a rebuild could not recover them).
    pub bad_blocks: Vec<(u64, u64)>,
    /// When it may lack writes of recent sessions (it went back in time, or missed the last
    /// superblock update): the stripes it must get back before it serves them
    /// ([`Array::resync`] does that). `None` when it is current.
    pub behind_stripes: Option<u64>,
}

/// A snapshot of the array's state: like `mdadm --detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The array's UUID.
    pub uuid: String,
    /// The array's name.
    pub name: String,
    /// The level.
    pub level: Level,
    /// Data chunks per stripe.
    pub k: usize,
    /// Parity chunks per stripe (a mirror's extra copies).
    pub m: usize,
    /// Chunk size in bytes.
    pub chunk: u64,
    /// The layout's name.
    pub layout: &'static str,
    /// The array's size in bytes.
    pub size: u64,
    /// Where the data region starts on each member, in bytes.
    pub data_offset: u64,
    /// Bytes of data region per member.
    pub data_size: u64,
    /// Overall state.
    pub state: ArrayState,
    /// Whether the array was written since it was last closed cleanly (set on the first
    /// write, cleared by [`Array::close`]). An array assembled dirty may have stripes whose
    /// parity was not updated before the crash.
    pub dirty: bool,
    /// Whether it was already dirty when assembled (not closed cleanly last time).
    pub unclean_start: bool,
    /// The event counter.
    pub event: u64,
    /// How it stays consistent across crashes.
    pub consistency: Consistency,
    /// Whether the array keeps a write-intent bitmap.
    pub bitmap: bool,
    /// What the replay at assemble did (journal mode, after an unclean stop).
    pub replay: Option<ReplayReport>,
    /// Stripes a resync still has to walk: those the bitmap marks after an unclean stop
    /// (all of them without a trusted bitmap); 0 when no resync is pending.
    pub resync_stripes: u64,
    /// Members by role, disks being rebuilt (state rebuilding, with their role), then
    /// spares and members outside the array.
    pub members: Vec<MemberStatus>,
    /// Rebuilds and replaces in progress or interrupted.
    pub rebuilds: Vec<RebuildStatus>,
    /// Where an interrupted scrub stopped (the next scrub continues from there).
    pub scrub: Option<ScrubMark>,
    /// The last scrub's result, from the health record (a check-only scrub that found
    /// nothing is not recorded).
    pub last_scrub: Option<format::ScrubRecord>,
    /// The last rebuild's or replace's result, from the health record.
    pub last_rebuild: Option<format::RebuildRecord>,
    /// Not closed cleanly, with a journal that a write-capable open must replay before the
    /// array can be read (reported by a read-only open, which does not replay).
    pub replay_pending: bool,
    /// Bytes of the array in regions written since create, from the data map (`None`: the
    /// array keeps none — it did not start as zeros, or an older build wrote to it).
    pub data_bytes: Option<u64>,
}

/// A RAID array over member disks. See the [module documentation](self).
#[derive(Debug)]
pub struct Array {
    layout: Layout,
    redundancy: redundancy::Redundancy,
    regions: Regions,
    size: u64,
    uuid: [u8; 16],
    /// The members by role, the spares, and which disk serves each role.
    members: roster::Roster,
    /// The superblock template and its commits.
    meta: superblocks::MetaWriter,
    /// Assembled dirty and not resynchronised since.
    unclean_start: AtomicBool,
    /// The stripe locks.
    locks: exec::StripeLocks,
    /// Runs member I/O.
    io: exec::Executor,
    options: ArrayOptions,
    rotor: AtomicUsize,
    closed: AtomicBool,
    /// Reused stripe buffers.
    buffers: pool::BufPool,
    /// Held by every flush of table pages, bad-block logs and members, and while a rebuild
    /// swaps its disk into the role: a flush sees one consistent member, and a checkpoint
    /// never counts pages another flush is still writing.
    flush_lock: Mutex<()>,
    /// The journal, the write-intent bitmap, or neither.
    guard: guard::Guard,
    /// The resync after an unclean stop needs only the regions the bitmap marks.
    resync_marked_only: AtomicBool,
    /// What the replay at assemble did.
    replayed: Mutex<Option<ReplayReport>>,
    /// The session map (`None` when the members have no room for it).
    sessions: Option<session::SessionMap>,
    /// The start event of the writing session in progress (0: none yet).
    session_start: AtomicU64,
    /// Without a journal: the superblock event and the last flush begun under it, for the
    /// flush stamps (`None` in journal mode or without room for the stamp).
    stamps: Option<Mutex<session::Stamps>>,
    /// The health record: counts, paths, last scrub and rebuild.
    health: health::Health,
    /// Not closed cleanly with a journal to replay, opened to report
    /// ([`Access::Inspect`]): reads are refused.
    needs_replay: bool,
    /// Receivers of [`Array::events`].
    listeners: Mutex<Vec<std::sync::mpsc::Sender<crate::events::Event>>>,
    /// Which regions were written since create (arrays that started as zeros).
    data_map: Option<datamap::DataMap>,
}

/// A random, non-zero bitmap epoch.
fn new_epoch() -> u64 {
    let uuid = crate::ids::new_uuid();
    u64::from_le_bytes(uuid[..8].try_into().expect("eight bytes")) | 1
}

fn check_block_size(disk: &dyn Disk) -> Result<(), ArrayError> {
    let bs = disk.block_size();
    if bs == 0 || !CSUM_BLOCK.is_multiple_of(u64::from(bs)) {
        return Err(ArrayError::BlockSize {
            member: disk.name().to_string(),
            block_size: bs,
        });
    }
    Ok(())
}

fn check_unique_names(disks: &[Arc<dyn Disk>]) -> Result<(), ArrayError> {
    for (i, a) in disks.iter().enumerate() {
        if disks[..i].iter().any(|b| b.name() == a.name()) {
            return Err(ArrayError::DuplicateName {
                member: a.name().to_string(),
            });
        }
    }
    Ok(())
}

impl Array {
    /// `marked`: the regions a trusted write-intent bitmap marked at an unclean start.
    #[allow(clippy::too_many_arguments)]
    fn build(
        layout: Layout,
        regions: Regions,
        sb: Superblock,
        members: Vec<Member>,
        others: Vec<Member>,
        unclean_start: bool,
        marked: Option<Vec<bool>>,
        options: &ArrayOptions,
        sessions: Option<session::SessionMap>,
        stamped: Option<format::FlushStamp>,
    ) -> Result<Array, ArrayError> {
        let engine = match options.engine {
            Some(engine) => engine,
            None => Engine::detect()?,
        };
        let redundancy = redundancy::Redundancy::new(&layout, engine)?;
        let stripes = layout.stripes(regions.data_size);
        if sb.flags & FLAG_JOURNAL != 0
            && !(format::MIB..=64 * format::MIB).contains(&regions.journal_size)
        {
            return Err(ArrayError::Format(FormatError::Invalid {
                field: "journal_size",
                reason: format!(
                    "{} bytes; a journal array needs 1 MiB to 64 MiB",
                    regions.journal_size
                ),
            }));
        }
        let guard = if sb.flags & FLAG_JOURNAL != 0 {
            let (tail, nonce, checkpoints, reset) = newest_checkpoint(&members, &regions, &sb);
            guard::Guard::Journal(journal::Journal::new(
                members.len(),
                regions.journal_size,
                layout.chunk(),
                tail,
                nonce,
                checkpoints,
                reset,
            ))
        } else if sb.flags & FLAG_BITMAP != 0 {
            guard::Guard::Bitmap(intent::Intent::new(
                stripes,
                sb.bitmap_epoch,
                marked.clone(),
            ))
        } else {
            guard::Guard::None
        };
        // The data map, where the newest superblock vouches for it: one written by a build
        // before minor 4 may have written regions without marking them, so the flag goes.
        let mut sb = sb;
        let data_map = if sb.flags & format::FLAG_DATA_MAP != 0 && sb.minor >= 4 {
            let disks: Vec<Arc<dyn Disk>> = members
                .iter()
                .filter(|m| m.is_active())
                .filter_map(|m| m.disk())
                .collect();
            Some(datamap::DataMap::load(stripes, &sb.array_uuid, &disks))
        } else {
            sb.flags &= !format::FLAG_DATA_MAP;
            None
        };
        // Twice the members: a long walk keeps two groups of stripes in flight, and a
        // thread blocked in a member's I/O is one request queued on it.
        let threads = options.threads.unwrap_or(2 * layout.members()).clamp(4, 32);
        let io = exec::Executor::new(threads, options.serial_io)?;
        let stamps = (sb.flags & FLAG_JOURNAL == 0 && sessions.is_some()).then(|| {
            Mutex::new(session::Stamps {
                event: sb.event,
                begun: stamped.map_or(0, |st| st.begun),
                writes: 0,
                last: stamped,
            })
        });
        Ok(Array {
            layout,
            redundancy,
            regions,
            size: sb.array_size,
            uuid: sb.array_uuid,
            members: roster::Roster::new(members, others, sessions.as_ref().map(|m| m.per_region)),
            unclean_start: AtomicBool::new(unclean_start),
            meta: superblocks::MetaWriter::new(sb),
            locks: exec::StripeLocks::new(),
            io,
            options: options.clone(),
            rotor: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            buffers: pool::BufPool::default(),
            flush_lock: Mutex::new(()),
            guard,
            resync_marked_only: AtomicBool::new(marked.is_some()),
            replayed: Mutex::new(None),
            stamps,
            sessions,
            session_start: AtomicU64::new(0),
            health: health::Health::default(),
            needs_replay: false,
            listeners: Mutex::new(Vec::new()),
            data_map,
        })
    }

    /// A receiver of every [`Event`](crate::events::Event) from now on: members failed,
    /// spares added and activated, rebuilds started, progressing and finished, scrubs
    /// finished, blocks healed, ranges lost. Sending never blocks the array; a receiver
    /// dropped is forgotten.
    pub fn events(&self) -> std::sync::mpsc::Receiver<crate::events::Event> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// Sends `event` to every receiver.
    pub(super) fn emit(&self, event: crate::events::Event) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if listeners.is_empty() {
            return;
        }
        listeners.retain(|tx| tx.send(event.clone()).is_ok());
    }

    /// How the array stays consistent across crashes.
    pub fn consistency(&self) -> Consistency {
        self.guard.consistency()
    }

    /// The array's size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the array has no bytes (never true for a created array).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The region map of every member.
    pub fn regions(&self) -> &Regions {
        &self.regions
    }

    /// The array's UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// Where the array's byte `offset` is stored (for a mirror, the first copy).
    pub fn locate(&self, offset: u64) -> Result<Placement, ArrayError> {
        self.check_range("locate", offset, 1)?;
        let at = self.layout.locate(offset);
        Ok(self.placement(at.member, at.member_offset))
    }

    /// Where parity block `parity` (0 is P, 1 is Q, …; for a mirror, copy `parity + 1`) of
    /// the row holding the array's byte `offset` is stored, at the same offset within its
    /// chunk.
    pub fn locate_parity(&self, offset: u64, parity: usize) -> Result<Placement, ArrayError> {
        self.check_range("locate", offset, 1)?;
        if parity >= self.layout.m() {
            return Err(ArrayError::OutOfRange {
                op: "locate parity",
                offset: parity as u64,
                len: 1,
                size: self.layout.m() as u64,
            });
        }
        let at = self.layout.locate(offset);
        let role = self.layout.member_at(at.stripe, self.layout.k() + parity);
        Ok(self.placement(role, at.member_offset))
    }

    fn placement(&self, role: usize, member_offset: u64) -> Placement {
        Placement {
            role,
            member: self.members[role].name(),
            disk_offset: self.regions.data_offset + member_offset,
        }
    }

    /// Writes a new superblock (event + 1) to every active member and spare (see
    /// [`MetaWriter::commit`](superblocks::MetaWriter::commit)).
    /// A read-only open commits nothing: what changed stays in memory.
    fn commit(&self, meta: &mut Meta) {
        if self.options.access == Access::ReadWrite {
            self.meta.commit(meta, &self.members, self.io.serial());
        }
    }

    /// One superblock update; on a member's failure marks it faulty and returns the error.
    fn commit_strict(&self, meta: &mut Meta) -> Result<(), ArrayError> {
        self.check_writable("update the superblocks")?;
        self.meta
            .commit_strict(meta, &self.members, self.io.serial())
    }

    /// Refuses `op` on an array opened read-only.
    /// Pages each member's checksum table may keep cached.
    fn table_pages(&self) -> usize {
        self.options.table_pages(self.layout.members())
    }

    fn check_writable(&self, op: &'static str) -> Result<(), ArrayError> {
        match self.options.access {
            Access::ReadWrite => Ok(()),
            Access::ReadOnly | Access::Inspect => Err(ArrayError::ReadOnly { op }),
        }
    }

    /// What this open may change.
    pub fn access(&self) -> Access {
        self.options.access
    }

    /// Marks member `role` faulty after an error (once) and records it in the superblocks.
    /// Safe to call from pool tasks: the superblock update does not use the pool.
    fn fail_role(&self, role: usize, why: &str) {
        let member = &self.members[role];
        if member.transition(MemberState::Active, MemberState::Faulty) {
            if why == REQUESTED {
                log::info!("{}: marked faulty: {why}", member.name());
            } else {
                log::error!("{}: marked faulty: {why}", member.name());
            }
            self.emit(crate::events::Event::MemberFailed {
                role,
                member: member.name(),
                reason: why.to_string(),
            });
            if self.meta.is_creating() {
                // No superblock may exist before create has written the tables.
                return;
            }
            let mut meta = self.meta.lock();
            self.commit(&mut meta);
        }
    }

    /// Before any data is written: the superblocks must be durable with the dirty flag set,
    /// a new writing session recorded, and the current member table (members missing or
    /// stale since assemble recorded as faulty, members behind as behind, so they can never
    /// come back as current). Writers wait here until that update is on disk.
    fn prepare_write(&self) {
        if self.meta.is_ready() {
            return;
        }
        let mut meta = self.meta.lock();
        if self.meta.is_ready() {
            return;
        }
        self.meta.set_dirty(true);
        // A new session, recorded before its first write even when the superblocks are
        // already dirty: a member that misses it is never taken as current.
        let start = meta.sb.event.wrapping_add(1);
        if self.sessions.is_some() && (meta.sb.map_since == 0 || meta.sb.minor < 3) {
            // No map an older build kept up to date: a new one, starting with this session
            // (a member behind since before it gets every region back).
            if let Some(map) = &self.sessions {
                map.reset();
            }
            self.store_session_map(None, true);
            meta.sb.map_since = start;
        } else if self
            .sessions
            .as_ref()
            .is_some_and(|map| map.settle_unknown(start))
        {
            self.store_session_map(None, true);
        }
        meta.sb.session = start;
        meta.sb.session_nonce = crate::ids::new_nonce();
        self.session_start.store(start, Ordering::Release);
        self.commit(&mut meta);
        // Where the members are now: what an error about a missing one will name.
        self.health.touch();
        self.store_health(false);
        self.meta.set_ready(true);
    }

    fn check_alive(&self) -> Result<(), ArrayError> {
        let failed = self.members.unavailable();
        if failed > self.layout.m() {
            return Err(ArrayError::Failed {
                failed,
                members: self.members.len(),
                m: self.layout.m(),
            });
        }
        Ok(())
    }

    fn check_range(&self, op: &'static str, offset: u64, len: usize) -> Result<(), ArrayError> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(ArrayError::OutOfRange {
                op,
                offset,
                len: len as u64,
                size: self.size,
            });
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at array offset `offset`. Every block is verified; damaged
    /// blocks are rebuilt from redundancy, returned and rewritten. Fails, naming the range,
    /// when the data cannot be recovered.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ArrayError> {
        if self.needs_replay {
            return Err(ArrayError::NeedsReplay);
        }
        self.check_range("read", offset, buf.len())?;
        let mut done = 0usize;
        while done < buf.len() {
            let (stripe, start, take) = self.next_batch(offset + done as u64, buf.len() - done);
            let out = &mut buf[done..done + take];
            if start + take as u64 <= self.layout.stripe_data() {
                self.read_stripe(stripe, start, out)?;
            } else {
                self.read_stripes(stripe, start, out)?;
            }
            done += take;
        }
        Ok(())
    }

    /// The next piece of a request at array offset `at` with `left` bytes to go: its first
    /// stripe, the offset within that stripe, and its length — up to the end of the
    /// stripe, or for large requests several whole stripes (up to [`BATCH`] bytes), whose
    /// member I/Os are then issued together.
    fn next_batch(&self, at: u64, left: usize) -> (u64, u64, usize) {
        let stripe_data = self.layout.stripe_data();
        let (stripe, start) = self.layout.stripe_of(at);
        let to_stripe_end = (stripe_data - start) as usize;
        let batch = (BATCH as u64 / stripe_data).max(1) * stripe_data;
        let take = if left > to_stripe_end {
            let whole = (batch - start).min(left as u64) as usize;
            whole.max(to_stripe_end)
        } else {
            left
        };
        (stripe, start, take)
    }

    /// Writes `buf` at array offset `offset`, keeping every redundancy that remains.
    /// Durable after a later [`flush`](Array::flush).
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ArrayError> {
        self.check_writable("write")?;
        self.check_range("write", offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        self.check_alive()?;
        self.prepare_write();
        let stripe_data = self.layout.stripe_data();
        let stripes = offset / stripe_data..=(offset + buf.len() as u64 - 1) / stripe_data;
        self.mark_written(stripes.clone());
        self.mark_data(stripes.clone());
        self.intent_begin(stripes.clone());
        let result = self.write_batches(buf, offset);
        self.intent_end(stripes);
        result
    }

    /// Writes `len` zero bytes at `offset` (for NBD's `WRITE_ZEROES`), in pieces of whole
    /// stripes where the range allows, skipping pieces in regions never written since
    /// create (arrays with a data map): they hold zeros already. Durable after a later
    /// [`flush`](Array::flush).
    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), ArrayError> {
        self.check_writable("write zeroes")?;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(ArrayError::OutOfRange {
                op: "write zeroes",
                offset,
                len,
                size: self.size,
            });
        }
        let stripe_data = self.layout.stripe_data();
        let piece = (BATCH as u64 / stripe_data).max(1) * stripe_data;
        let zeros = vec![0u8; piece.min(len) as usize];
        let mut at = offset;
        let end = offset + len;
        while at < end {
            // Up to the next piece boundary, so the pieces after the first are whole
            // stripes.
            let next = ((at / piece) + 1) * piece;
            let take = (next.min(end) - at) as usize;
            // Stripes the data map says were never written hold zeros already (with zero
            // checksum entries): nothing to write, and the map stays as it is. A write
            // that returned before this call marked its region first, so it is seen here.
            let (first, last) = (at / stripe_data, (at + take as u64 - 1) / stripe_data);
            if self.next_with_data(first, last + 1) <= last {
                self.write_at(&zeros[..take], at)?;
            }
            at += take as u64;
        }
        Ok(())
    }

    /// Discards `len` bytes at `offset` (for NBD's `TRIM`): they read back as zeros
    /// afterwards. This writes the zeros, except over regions the data map says were never
    /// written (see [`write_zeroes`](Array::write_zeroes)); a discarded region stays
    /// marked as holding data.
    pub fn discard(&self, offset: u64, len: u64) -> Result<(), ArrayError> {
        self.check_writable("discard")?;
        self.write_zeroes(offset, len)
    }

    fn write_batches(&self, buf: &[u8], offset: u64) -> Result<(), ArrayError> {
        let mut done = 0usize;
        while done < buf.len() {
            let (stripe, start, take) = self.next_batch(offset + done as u64, buf.len() - done);
            let data = &buf[done..done + take];
            if start + take as u64 <= self.layout.stripe_data() {
                self.write_stripe(stripe, start, data)?;
            } else {
                self.write_stripes(stripe, start, data)?;
            }
            done += take;
        }
        Ok(())
    }

    /// Makes every write that returned before this call durable on every active member:
    /// changed checksum-table pages are written, then each member is flushed. A member
    /// whose flush fails is marked faulty (a failed flush is never retried); the call fails
    /// only if the array no longer holds the data.
    pub fn flush(&self) -> Result<(), ArrayError> {
        let _flushing = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_locked()
    }

    /// [`flush`](Array::flush)'s work; the caller holds `flush_lock`.
    fn flush_locked(&self) -> Result<(), ArrayError> {
        match self.options.access {
            Access::ReadWrite => {}
            Access::ReadOnly => {
                self.flush_repairs();
                return self.check_alive();
            }
            Access::Inspect => return self.check_alive(),
        }
        let generation = self.intent_flush_begins();
        let stamp = self.stamp_begin();
        let failed = self.flush_members(false);
        for (role, member) in self.members.iter().enumerate() {
            if let Some(incoming) = member.incoming()
                && let Err(e) = incoming.flush()
            {
                self.abandon(role, &incoming, &format!("flush failed: {e}"));
            }
        }
        self.fail_flushes(failed);
        if let Some(stamp) = stamp {
            self.stamp_done(stamp);
        }
        self.intent_settle(generation);
        self.check_alive()
    }

    /// A read-only open's flush: the checksum entries and bad-block logs its repairs
    /// changed, then the members (no flush stamp, bitmap or superblock: nothing else
    /// changes); nothing at all when nothing changed. A member that fails is marked faulty
    /// (in memory only, when read-only).
    fn flush_repairs(&self) {
        let failed = self.flush_members(true);
        self.fail_flushes(failed);
    }

    /// Writes every active member's changed checksum pages and bad-block log, then flushes
    /// it (with `only_changed`, only members that had something changed); the members
    /// that failed, with their errors.
    fn flush_members(&self, only_changed: bool) -> Vec<(usize, crate::disk::DiskError)> {
        self.io
            .parallel(self.members.active(), |(role, member)| {
                let (Some(disk), Some(table)) = (member.disk(), member.table()) else {
                    return None;
                };
                if only_changed && !table.is_dirty() && !member.bad().is_changed() {
                    return None;
                }
                let result = table
                    .write_dirty()
                    .and_then(|()| member.bad().store(disk.as_ref(), &member.uuid()))
                    .and_then(|()| disk.flush());
                result.err().map(|e| (role, e))
            })
            .into_iter()
            .flatten()
            .collect()
    }

    /// Counts and fails the members whose flush failed.
    fn fail_flushes(&self, failed: Vec<(usize, crate::disk::DiskError)>) {
        for (role, e) in failed {
            self.members[role]
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            self.fail_role(role, &format!("flush failed: {e}"));
        }
    }

    /// Flushes and marks the array clean. Dropping an array closes it too (errors are
    /// logged); call this to see them.
    pub fn close(self) -> Result<(), ArrayError> {
        self.close_inner()
    }

    /// Lets the array go as a killed process would: nothing more is written (no flush, no
    /// clean mark, no journal checkpoint) and the members are released, so the next open
    /// finds the array as a crash at this instant left it. For crash tests, and for an
    /// owner that must let go at once.
    pub fn kill(self) {
        self.closed.store(true, Ordering::Release);
    }

    fn close_inner(&self) -> Result<(), ArrayError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if self.options.access != Access::ReadWrite
            || !self.meta.is_dirty()
            || !self.meta.is_ready()
        {
            // Nothing was written in this session (an array that started dirty stays
            // dirty until a resync): only repairs and what they counted are made durable.
            if self.options.access != Access::Inspect {
                self.flush_repairs();
                self.store_health(true);
            }
            return Ok(());
        }
        self.flush()?;
        self.store_health(false);
        if self.guard.journal().is_some() {
            // Empty the journal: every record applied and durable.
            self.journal_checkpoint()?;
        }
        if self.unclean_start.load(Ordering::Acquire) {
            // Started dirty: parity of stripes written before the crash may be stale, and
            // nothing has resynchronised them. The flag stays until a resync clears it.
            return self.check_alive();
        }
        let mut meta = self.meta.lock();
        self.meta.set_dirty(false);
        self.commit(&mut meta);
        drop(meta);
        self.check_alive()
    }

    /// The array's state and every member's, with error counters.
    pub fn status(&self) -> Status {
        let meta = self.meta.lock();
        let describe = |role: Option<usize>, member: &Member| {
            let this_open = health::live_counts(member);
            let life = self.health.recorded(&member.uuid()).plus(this_open);
            MemberStatus {
                role,
                name: member.name(),
                uuid: format::uuid_string(&member.uuid()),
                state: member.state(),
                read_errors: life.read_errors,
                write_errors: life.write_errors,
                checksum_errors: life.checksum_errors,
                repaired: life.repaired,
                this_open,
                bad_blocks: self.bad_ranges(&member.bad()),
                behind_stripes: member
                    .is_active()
                    .then(|| self.behind_stripes(member))
                    .flatten(),
            }
        };
        let mut members: Vec<MemberStatus> = self
            .members
            .iter()
            .enumerate()
            .map(|(role, m)| describe(Some(role), m))
            .collect();
        let chunk = self.layout.chunk();
        let running = self.members.running.load(Ordering::Acquire);
        let mut rebuilds = Vec::new();
        for (role, member) in self.members.iter().enumerate() {
            let Some(incoming) = member.incoming() else {
                continue;
            };
            members.push(MemberStatus {
                role: Some(role),
                name: incoming.name.clone(),
                uuid: format::uuid_string(&incoming.uuid),
                state: MemberState::Rebuilding,
                read_errors: 0,
                write_errors: 0,
                checksum_errors: 0,
                repaired: 0,
                this_open: format::ErrorCounts::default(),
                bad_blocks: self.bad_ranges(&incoming.bad),
                behind_stripes: None,
            });
            rebuilds.push(RebuildStatus {
                role,
                member: incoming.name.clone(),
                done: incoming.done.load(Ordering::Acquire) * chunk,
                total: self.regions.data_size,
                replacing: member.is_active(),
                running: running == role + 1,
            });
        }
        members.extend(self.members.others().iter().map(|m| describe(None, m)));
        let lost = self.members.unavailable();
        Status {
            uuid: format::uuid_string(&self.uuid),
            name: meta.sb.name.clone(),
            level: self.layout.level(),
            k: self.layout.k(),
            m: self.layout.m(),
            chunk: self.layout.chunk(),
            layout: meta.sb.layout_name(),
            size: self.size,
            data_offset: self.regions.data_offset,
            data_size: self.regions.data_size,
            state: match lost {
                0 if !self.members.iter().any(|m| m.is_active() && m.is_behind()) => {
                    ArrayState::Clean
                }
                0 => ArrayState::Degraded,
                l if l <= self.layout.m() => ArrayState::Degraded,
                _ => ArrayState::Failed,
            },
            dirty: self.meta.is_dirty(),
            unclean_start: self.unclean_start.load(Ordering::Acquire),
            event: meta.sb.event,
            consistency: self.consistency(),
            bitmap: self.guard.intent().is_some(),
            replay: self
                .replayed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            resync_stripes: if self.unclean_start.load(Ordering::Acquire) {
                let stripes = self.stripes();
                match self.guard.intent() {
                    Some(intent) if self.resync_marked_only.load(Ordering::Acquire) => {
                        intent.marked_stripes(stripes)
                    }
                    _ => stripes,
                }
            } else {
                0
            },
            members,
            rebuilds,
            scrub: meta.sb.scrub,
            last_scrub: self.health.last_scrub(),
            last_rebuild: self.health.last_rebuild(),
            replay_pending: self.needs_replay,
            data_bytes: self
                .data_map
                .as_ref()
                .map(|map| (map.stripes_held() * self.layout.stripe_data()).min(self.size)),
        }
    }

    /// A bad-block log as (member byte offset, bytes) ranges.
    fn bad_ranges(&self, bad: &BadBlocks) -> Vec<(u64, u64)> {
        bad.snapshot()
            .ranges
            .iter()
            .map(|&(first, count)| {
                (
                    self.regions.data_offset + first * CSUM_BLOCK,
                    count * CSUM_BLOCK,
                )
            })
            .collect()
    }

    /// Whether failing member `name` keeps some redundancy: refuses
    /// ([`ArrayError::LastRedundancy`]) when afterwards as many roles as the redundancy, or
    /// more, would lack an active member. For tools that ask for force before they take
    /// the last redundancy away; [`Array::fail_member`] itself does not ask.
    pub fn check_fail(&self, name: &str) -> Result<(), ArrayError> {
        let role = self
            .members
            .role_of(name)
            .ok_or_else(|| ArrayError::NoSuchMember(name.to_string()))?;
        let unavailable = self.members.unavailable()
            + usize::from(self.members[role].state() == MemberState::Active);
        if unavailable >= self.layout.m() {
            return Err(ArrayError::LastRedundancy {
                member: name.to_string(),
                unavailable,
                m: self.layout.m(),
            });
        }
        Ok(())
    }

    /// Marks the member named `name` faulty (like `mdadm --fail`): it takes no more I/O.
    pub fn fail_member(&self, name: &str) -> Result<(), ArrayError> {
        self.check_writable("fail a member")?;
        let role = self
            .members
            .role_of(name)
            .ok_or_else(|| ArrayError::NoSuchMember(name.to_string()))?;
        let member = &self.members[role];
        match member.state() {
            MemberState::Active => {
                self.fail_role(role, REQUESTED);
                Ok(())
            }
            MemberState::Faulty => Ok(()),
            state => Err(ArrayError::MemberState {
                member: name.to_string(),
                action: "fail",
                state: state.to_string(),
            }),
        }
    }

    /// Removes a faulty or stale member, or a spare, from the array and closes its disk.
    /// An active member must be failed first.
    pub fn remove_member(&self, name: &str) -> Result<(), ArrayError> {
        self.check_writable("remove a member")?;
        let mut meta = self.meta.lock();
        if let Some(role) = self.members.role_of(name) {
            let member = &self.members[role];
            let state = member.state();
            if !matches!(state, MemberState::Faulty | MemberState::Stale) {
                return Err(ArrayError::MemberState {
                    member: name.to_string(),
                    action: "remove",
                    state: state.to_string(),
                });
            }
            member.set_disk(None);
            // Its table holds the disk open too.
            *member.table.write().unwrap_or_else(|e| e.into_inner()) = None;
            member.set_state(MemberState::Missing);
            *member.name.write().unwrap_or_else(|e| e.into_inner()) = "(missing)".to_string();
        } else {
            let mut others = self.members.others();
            let index = others
                .iter()
                .position(|m| m.name() == name)
                .ok_or_else(|| ArrayError::NoSuchMember(name.to_string()))?;
            others.remove(index);
        }
        self.commit(&mut meta);
        Ok(())
    }

    /// Adds a hot spare. Its size must hold the array's regions; a disk that already holds
    /// a raidkit superblock is refused unless `force`. Both superblock copies of the spare
    /// are overwritten (state spare) and the member table of every member records it.
    pub fn add_spare(&self, disk: Box<dyn Disk>, force: bool) -> Result<(), ArrayError> {
        self.check_writable("add a spare")?;
        {
            let others = self.members.others();
            let spares = others
                .iter()
                .filter(|m| m.state() == MemberState::Spare)
                .count();
            if self.members.len() + spares + 1 > format::MAX_SLOTS {
                return Err(ArrayError::TableFull(format::MAX_SLOTS));
            }
        }
        let disk = self.admit(disk, force)?;
        let mut meta = self.meta.lock();
        self.members.others().push(Member::new(
            disk.name().to_string(),
            Some(disk),
            MemberState::Spare,
            crate::ids::new_uuid(),
            None,
        ));
        let uuid = self.members.others().last().map(|m| m.uuid());
        self.emit(crate::events::Event::SpareAdded {
            spare: self
                .members
                .others()
                .last()
                .map(|m| m.name())
                .unwrap_or_default(),
        });
        if let Err(e) = self.commit_strict(&mut meta) {
            // Record whatever failed; if it was the spare, say so.
            self.commit(&mut meta);
            let spare_ok = self
                .members
                .others()
                .iter()
                .any(|m| Some(m.uuid()) == uuid && m.state() == MemberState::Spare);
            if !spare_ok {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Opens member paths for create or assemble ([`crate::disk::open`] each), refusing the
/// same file or device given twice, under the same or another name (a link), before any
/// is opened.
pub fn open_members(paths: &[std::path::PathBuf]) -> Result<Vec<Box<dyn Disk>>, ArrayError> {
    check_distinct(paths)?;
    paths
        .iter()
        .map(|p| Ok(Box::new(crate::disk::open(p)?) as Box<dyn Disk>))
        .collect()
}

/// Opens member paths for a report ([`Access::Inspect`]): read-only, each with a shared
/// lock ([`crate::disk::open_shared`]), so the report runs beside other lookers and is
/// refused while an owner holds the array.
pub fn open_members_shared(paths: &[std::path::PathBuf]) -> Result<Vec<Box<dyn Disk>>, ArrayError> {
    check_distinct(paths)?;
    paths
        .iter()
        .map(|p| Ok(Box::new(crate::disk::open_shared(p)?) as Box<dyn Disk>))
        .collect()
}

/// Refuses the same file or device named twice in `paths` (also through a link or another
/// spelling), without opening anything.
pub fn check_distinct(paths: &[std::path::PathBuf]) -> Result<(), ArrayError> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: Vec<((u64, u64), &std::path::PathBuf)> = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| {
            crate::disk::DiskError::io(&path.display().to_string(), crate::disk::Op::Open, 0, 0, e)
        })?;
        // For a device node, the device it names; for a file, its inode.
        let id = if meta.rdev() != 0 {
            (u64::MAX, meta.rdev())
        } else {
            (meta.dev(), meta.ino())
        };
        if let Some((_, other)) = seen.iter().find(|(seen_id, _)| *seen_id == id) {
            if other == &path {
                return Err(ArrayError::DuplicateName {
                    member: path.display().to_string(),
                });
            }
            return Err(ArrayError::DuplicateMember {
                member: path.display().to_string(),
                other: other.display().to_string(),
            });
        }
        seen.push((id, path));
    }
    Ok(())
}

/// The newest journal checkpoint the active members record: (tail, nonce, checkpoint
/// count, reset needed). Members behind are not asked.
/// Without a valid header (or when an older build wrote the array last) the journal starts
/// over at the first write, after a checkpoint.
fn newest_checkpoint(
    members: &[Member],
    regions: &Regions,
    sb: &Superblock,
) -> (u64, u64, u64, bool) {
    let newest = members
        .iter()
        .filter(|m| m.is_active() && !m.is_behind())
        .filter_map(|m| {
            crate::meta::read_journal_header(m.disk()?.as_ref(), regions, &sb.array_uuid, &m.uuid())
        })
        .max_by_key(|h| h.age());
    match newest {
        Some(h) if sb.minor >= 2 => (h.tail, h.nonce, h.checkpoints, false),
        Some(h) => (h.tail, h.nonce, h.checkpoints, true),
        None => (1, 0, 0, true),
    }
}

/// Refuses a disk that holds a raidkit superblock copy (valid or not: a newer version's, a
/// damaged one) or that cannot be read.
fn refuse_if_member(disk: &dyn Disk) -> Result<(), ArrayError> {
    let array = match crate::meta::read_superblock(disk) {
        Ok(found) => format::uuid_string(&found.superblock.array_uuid),
        Err(ReadError::NoValidCopy(FormatError::BadMagic, FormatError::BadMagic))
        | Err(ReadError::TooSmall { .. }) => return Ok(()),
        Err(ReadError::Disk(e)) => return Err(ArrayError::Disk(e)),
        Err(e) => format!("(unreadable superblock: {e})"),
    };
    Err(ArrayError::AlreadyMember {
        member: disk.name().to_string(),
        array,
    })
}

impl Drop for Array {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            log::error!("closing the array: {e}");
        }
    }
}
