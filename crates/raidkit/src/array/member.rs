//! A member as the running array sees it: its disk, state, checksum table and counters.
//!
//! Owns one member's state: disk, checksum table, bad-block list, counters, the regions it
//! is behind in. Knows nothing of the other members or of stripes.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub(crate) use super::table::ChecksumTable;
use crate::disk::{Disk, DiskError};
use crate::format::BadLog;

/// A member's state in the running array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// In service.
    Active,
    /// Failed (I/O errors, past the error threshold, or marked by the user).
    Faulty,
    /// The role has no disk (absent at assemble, or removed).
    Missing,
    /// Present but out of date (older event counter, or marked failed or rebuilding in the
    /// newest superblock): not trusted for data, needs a rebuild.
    Stale,
    /// A hot spare.
    Spare,
    /// Receiving a role's contents (a rebuild onto it, or a hot replace): serves the
    /// stripes copied so far.
    Rebuilding,
}

impl MemberState {
    fn code(self) -> u8 {
        match self {
            MemberState::Active => 0,
            MemberState::Faulty => 1,
            MemberState::Missing => 2,
            MemberState::Stale => 3,
            MemberState::Spare => 4,
            MemberState::Rebuilding => 5,
        }
    }

    fn from_code(code: u8) -> MemberState {
        match code {
            0 => MemberState::Active,
            1 => MemberState::Faulty,
            2 => MemberState::Missing,
            3 => MemberState::Stale,
            5 => MemberState::Rebuilding,
            _ => MemberState::Spare,
        }
    }

    /// The state's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Faulty => "faulty",
            MemberState::Missing => "missing",
            MemberState::Stale => "stale",
            MemberState::Spare => "spare",
            MemberState::Rebuilding => "rebuilding",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error counters of one member since the array was assembled.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub read_errors: AtomicU64,
    pub write_errors: AtomicU64,
    pub checksum_errors: AtomicU64,
    pub repaired: AtomicU64,
}

/// A member's bad-block log in memory: blocks whose contents are known lost.
#[derive(Debug, Default)]
pub(crate) struct BadBlocks {
    log: Mutex<BadLog>,
    /// Changed since it was last written.
    dirty: AtomicBool,
    /// Holds any range (checked without the lock on every read).
    any: AtomicBool,
}

impl BadBlocks {
    pub fn from_log(log: BadLog) -> BadBlocks {
        let any = !log.ranges.is_empty();
        BadBlocks {
            log: Mutex::new(log),
            dirty: AtomicBool::new(false),
            any: AtomicBool::new(any),
        }
    }

    /// Lists blocks `first..first + count`; false when the log is full.
    pub fn add(&self, first: u64, count: u64) -> bool {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let added = log.add(first, count);
        if added {
            self.dirty.store(true, Ordering::Release);
            self.any.store(true, Ordering::Release);
        }
        added
    }

    /// Takes blocks off the list (they were just written whole).
    pub fn clear(&self, first: u64, count: u64) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.remove(first, count) {
            self.dirty.store(true, Ordering::Release);
            self.any.store(!log.ranges.is_empty(), Ordering::Release);
        }
    }

    /// Whether any of blocks `first..first + count` is listed.
    pub fn overlaps(&self, first: u64, count: u64) -> bool {
        self.any.load(Ordering::Acquire)
            && self
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .overlaps(first, count)
    }

    pub fn snapshot(&self) -> BadLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes the log when it changed (member `uuid`); it stays changed if the write fails.
    pub fn store(&self, disk: &dyn Disk, uuid: &[u8; 16]) -> Result<(), DiskError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let log = self.snapshot();
        crate::meta::write_bad_log(disk, uuid, &log).inspect_err(|_| {
            self.dirty.store(true, Ordering::Release);
        })
    }

    /// Whether it changed since it was last written.
    pub fn is_changed(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Marks the log as needing a write (a new member's log replaces whatever is there).
    pub fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// A disk receiving a role's contents: a rebuild onto a spare or new disk (the role has no
/// active member), or a hot replace (the role's member stays active until the end).
/// Stripes below `done` are copied; writes to them reach it too.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub name: String,
    pub disk: Arc<dyn Disk>,
    pub uuid: [u8; 16],
    pub table: Arc<ChecksumTable>,
    pub bad: Arc<BadBlocks>,
    /// Stripes copied (it serves and receives writes for these).
    pub done: AtomicU64,
    /// Bytes of data region recorded as rebuilt in the superblocks.
    pub recorded: AtomicU64,
    /// A write to it failed: the copy is abandoned.
    pub failed: AtomicBool,
    /// Its table and data regions read as zeros from the start of the copy (a new sparse
    /// file), so stripes the data map says hold nothing need nothing written to it.
    pub starts_zero: bool,
}

impl Incoming {
    /// Writes its changed table pages and bad-block log, then flushes it.
    pub fn flush(&self) -> Result<(), DiskError> {
        self.table.write_dirty()?;
        self.bad.store(self.disk.as_ref(), &self.uuid)?;
        self.disk.flush()
    }
}

/// One member of the running array.
#[derive(Debug)]
pub(crate) struct Member {
    pub name: RwLock<String>,
    disk: RwLock<Option<Arc<dyn Disk>>>,
    state: AtomicU8,
    pub uuid: RwLock<[u8; 16]>,
    pub table: RwLock<Option<Arc<ChecksumTable>>>,
    pub counters: Counters,
    pub bad: RwLock<Arc<BadBlocks>>,
    /// A disk taking this role over, while it is being filled.
    pub incoming: RwLock<Option<Arc<Incoming>>>,
    /// The regions it may hold stale data in, while it is behind (see `session`).
    behind: RwLock<Option<Arc<Behind>>>,
    /// Whether `behind` is set (read without the lock on every I/O).
    is_behind: AtomicBool,
}

impl Member {
    pub fn new(
        name: String,
        disk: Option<Arc<dyn Disk>>,
        state: MemberState,
        uuid: [u8; 16],
        table: Option<ChecksumTable>,
    ) -> Member {
        Member {
            name: RwLock::new(name),
            disk: RwLock::new(disk),
            state: AtomicU8::new(state.code()),
            uuid: RwLock::new(uuid),
            table: RwLock::new(table.map(Arc::new)),
            counters: Counters::default(),
            bad: RwLock::new(Arc::new(BadBlocks::default())),
            incoming: RwLock::new(None),
            behind: RwLock::new(None),
            is_behind: AtomicBool::new(false),
        }
    }

    pub fn behind(&self) -> Option<Arc<Behind>> {
        if !self.is_behind() {
            return None;
        }
        self.behind
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_behind(&self) -> bool {
        self.is_behind.load(Ordering::Acquire)
    }

    pub fn set_behind(&self, behind: Option<Arc<Behind>>) {
        let mut slot = self.behind.write().unwrap_or_else(|e| e.into_inner());
        self.is_behind.store(behind.is_some(), Ordering::Release);
        *slot = behind;
    }

    pub fn bad(&self) -> Arc<BadBlocks> {
        self.bad.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn incoming(&self) -> Option<Arc<Incoming>> {
        self.incoming
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn state(&self) -> MemberState {
        MemberState::from_code(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, state: MemberState) {
        self.state.store(state.code(), Ordering::Release);
    }

    /// Moves from `from` to `to`; false when the member was not in `from`.
    pub fn transition(&self, from: MemberState, to: MemberState) -> bool {
        self.state
            .compare_exchange(from.code(), to.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn is_active(&self) -> bool {
        self.state() == MemberState::Active
    }

    pub fn disk(&self) -> Option<Arc<dyn Disk>> {
        self.disk.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_disk(&self, disk: Option<Arc<dyn Disk>>) {
        *self.disk.write().unwrap_or_else(|e| e.into_inner()) = disk;
    }

    pub fn table(&self) -> Option<Arc<ChecksumTable>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn name(&self) -> String {
        self.name.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn uuid(&self) -> [u8; 16] {
        *self.uuid.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A member that may lack the writes of the sessions since `since`: the regions it must get
/// back before it serves them.
#[derive(Debug)]
pub(super) struct Behind {
    /// The first event whose writes it may lack.
    pub since: u64,
    pending: Vec<AtomicBool>,
    left: AtomicU64,
}

impl Behind {
    /// Behind since event `since` in the regions `pending` marks.
    pub fn new(since: u64, pending: Vec<bool>) -> Behind {
        let left = pending.iter().filter(|p| **p).count() as u64;
        Behind {
            since,
            pending: pending.into_iter().map(AtomicBool::new).collect(),
            left: AtomicU64::new(left),
        }
    }

    /// Whether `region` is still to get back.
    pub fn covers(&self, region: usize) -> bool {
        self.pending[region].load(Ordering::Acquire)
    }

    /// Adds `region` (a replay wrote it, but not to this member).
    pub fn add(&self, region: usize) {
        if !self.pending[region].swap(true, Ordering::AcqRel) {
            self.left.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `region` is back.
    pub fn clear(&self, region: usize) {
        if self.pending[region].swap(false, Ordering::AcqRel) {
            self.left.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Regions still to get back.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Acquire)
    }

    /// The regions still to get back.
    pub fn regions(&self) -> Vec<usize> {
        (0..self.pending.len())
            .filter(|&r| self.covers(r))
            .collect()
    }
}
