//! A member's checksum table, read and written by page through a bounded cache.
//!
//! Owns the cached pages of one member's table (format §8: one 32-bit entry per 4 KiB data
//! block, 1,024 entries to a 4 KiB page). Nothing proportional to the member's size is held:
//! a page is read from the member when an entry of it is first needed, and the least
//! recently used pages are dropped when the cache is over its size, a changed page being
//! written back first. Knows nothing of stripes, roles' meaning or the other members.
//!
//! **Ordering.** A page written back early (an eviction between flushes) puts entries on
//! the member before the flush that would have written them. Entries change only after the
//! member write of their block returned, so such a page is exactly what a crash in the
//! middle of a flush can leave (new entries, data of either age): the resync and the replay
//! already handle it (`docs/design.md` §18, §24). `flush` still writes every changed page
//! before the members are flushed.
//!
//! **Concurrency.** Pages live in a few locked maps (by page number); a caller holds a page
//! by `Arc` only while it reads or changes entries. A page is dropped from its map only when
//! no caller holds it and it is clean, both checked under the map's lock, so no change is
//! ever made to a page that has left the cache. Entries are atomics: readers never wait for
//! a writer of another entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::disk::{AlignedBuf, Disk, DiskError};
use crate::format::{CSUM_BLOCK, CSUM_ENTRY, Regions};

/// Entries per table page.
pub(crate) const PER_PAGE: u64 = CSUM_BLOCK / CSUM_ENTRY;

/// Maps the pages are spread over, so lookups of different pages rarely wait.
const SHARDS: usize = 16;

/// Pages written back per member write when a whole table is stored (create).
const STORE_BATCH: u64 = 256;

/// The default size of an array's table cache (all its members' tables together).
pub const DEFAULT_TABLE_CACHE: u64 = 64 << 20;

/// One cached page.
#[derive(Debug)]
struct Page {
    entries: Box<[AtomicU32]>,
    /// Changed since it was last written.
    dirty: AtomicBool,
    /// Used since the eviction hand last passed (the clock's reference bit).
    used: AtomicBool,
}

impl Page {
    fn new(values: impl Iterator<Item = u32>) -> Page {
        Page {
            entries: values.map(AtomicU32::new).collect(),
            dirty: AtomicBool::new(false),
            used: AtomicBool::new(true),
        }
    }

    /// Its bytes as they go on the member.
    fn encode(&self, out: &mut [u8]) {
        for (slot, entry) in out.chunks_exact_mut(4).zip(self.entries.iter()) {
            slot.copy_from_slice(&entry.load(Ordering::Acquire).to_le_bytes());
        }
    }
}

/// What a page that was never written back holds, for a table being filled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fill {
    /// Zero entries: each vouches for a block of zeros (format minor 4), as the table of a
    /// member that reads as zeros does (a member being created, a disk being rebuilt).
    Zero,
}

/// A table whose pages on the member are not yet valid: those never written back read as
/// `fill` instead.
#[derive(Debug)]
struct Fresh {
    fill: Fill,
    /// One bit per page: written back at least once (from then on read from the member).
    written: Vec<AtomicU64>,
}

impl Fresh {
    fn is_written(&self, page: u64) -> bool {
        self.written[(page / 64) as usize].load(Ordering::Acquire) & (1 << (page % 64)) != 0
    }

    fn set_written(&self, page: u64) {
        self.written[(page / 64) as usize].fetch_or(1 << (page % 64), Ordering::AcqRel);
    }
}

/// A hasher for page numbers: one multiply, high bits folded into the low ones (the map's
/// buckets are chosen by low bits, and a map's page numbers share their low four).
#[derive(Debug, Default)]
struct PageHasher(u64);

impl std::hash::Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b) ^ self.0.rotate_left(8));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PageMap = HashMap<u64, Arc<Page>, std::hash::BuildHasherDefault<PageHasher>>;

/// The pages of one map, and how many it has dropped.
#[derive(Debug, Default)]
struct Shard {
    pages: PageMap,
    /// Pages dropped so far: a page read from the member while this changed may predate
    /// a write-back, and is read again.
    dropped: u64,
}

/// A member's checksum table (see the module documentation).
#[derive(Debug)]
pub(crate) struct ChecksumTable {
    disk: Arc<dyn Disk>,
    /// Where the table starts on the member.
    offset: u64,
    /// Entries (data blocks).
    blocks: u64,
    fresh: Option<Fresh>,
    shards: Vec<Mutex<Shard>>,
    /// Pages cached, and the most there may be.
    cached: AtomicUsize,
    max_pages: usize,
    /// Pages changed since they were last written.
    dirty: AtomicUsize,
    /// Where the eviction hand is (a shard).
    hand: AtomicUsize,
    /// One eviction at a time.
    evicting: Mutex<()>,
    /// Held while a page is written back, and by a whole `write_dirty`: a flush never
    /// passes over a page whose write-back an eviction has begun and not finished.
    writing: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChecksumTable {
    fn with(
        disk: Arc<dyn Disk>,
        regions: &Regions,
        fresh: Option<Fill>,
        max_pages: usize,
    ) -> ChecksumTable {
        let blocks = regions.data_size / CSUM_BLOCK;
        let pages = blocks.div_ceil(PER_PAGE);
        ChecksumTable {
            disk,
            offset: regions.csum_offset,
            blocks,
            fresh: fresh.map(|fill| Fresh {
                fill,
                written: (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            }),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            cached: AtomicUsize::new(0),
            max_pages: max_pages.max(1),
            dirty: AtomicUsize::new(0),
            hand: AtomicUsize::new(0),
            evicting: Mutex::new(()),
            writing: Mutex::new(()),
        }
    }

    /// The table on `disk` (a member's): nothing is read until an entry is needed.
    pub fn open(disk: Arc<dyn Disk>, regions: &Regions, max_pages: usize) -> ChecksumTable {
        ChecksumTable::with(disk, regions, None, max_pages)
    }

    /// A table for `disk` whose table region holds nothing valid yet: every entry is
    /// `fill` until set. [`store_all`](Self::store_all) makes the whole region valid.
    pub fn fresh(
        disk: Arc<dyn Disk>,
        regions: &Regions,
        fill: Fill,
        max_pages: usize,
    ) -> ChecksumTable {
        ChecksumTable::with(disk, regions, Some(fill), max_pages)
    }

    /// The values of page `page` where they are not cached: on the member, or the fill.
    fn load(&self, page: u64) -> Result<Page, DiskError> {
        let first = page * PER_PAGE;
        let count = PER_PAGE.min(self.blocks - first);
        if let Some(fresh) = &self.fresh
            && !fresh.is_written(page)
        {
            return Ok(match fresh.fill {
                Fill::Zero => Page::new((0..count).map(|_| 0)),
            });
        }
        let mut buf = AlignedBuf::new(CSUM_BLOCK as usize);
        self.disk
            .read_at(&mut buf, self.offset + page * CSUM_BLOCK)?;
        Ok(Page::new(
            buf.chunks_exact(4)
                .take(count as usize)
                .map(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]])),
        ))
    }

    fn shard(&self, page: u64) -> &Mutex<Shard> {
        &self.shards[(page % SHARDS as u64) as usize]
    }

    /// Runs `f` on page `page` under its map's lock, reading the page into the cache
    /// first when it is not there (callers never hold a page outside the lock, so the
    /// hot path is one lock and one lookup).
    fn with_page<R>(&self, page: u64, f: impl FnOnce(&Page) -> R) -> Result<R, DiskError> {
        let mut f = Some(f);
        loop {
            let dropped = {
                let shard = lock(self.shard(page));
                if let Some(p) = shard.pages.get(&page) {
                    if !p.used.load(Ordering::Relaxed) {
                        p.used.store(true, Ordering::Relaxed);
                    }
                    return Ok((f.take().expect("once"))(p));
                }
                shard.dropped
            };
            let loaded = Arc::new(self.load(page)?);
            let (result, added) = {
                let mut shard = lock(self.shard(page));
                if let Some(p) = shard.pages.get(&page) {
                    // Another caller read it meanwhile (and may have changed it): theirs.
                    ((f.take().expect("once"))(p), false)
                } else if shard.dropped != dropped {
                    // A page of this map was written back and dropped while we read:
                    // what we read may be older than it. Read again.
                    continue;
                } else {
                    let result = (f.take().expect("once"))(&loaded);
                    shard.pages.insert(page, loaded);
                    (result, true)
                }
            };
            if added && self.cached.fetch_add(1, Ordering::AcqRel) + 1 > self.max_pages {
                self.evict();
            }
            return Ok(result);
        }
    }

    /// The entries of blocks `first..first + out.len()`, `None` for those whose page cannot
    /// be read.
    pub fn get_range(&self, first: u64, out: &mut [Option<u32>]) {
        let mut at = 0usize;
        while at < out.len() {
            let block = first + at as u64;
            let within = (block % PER_PAGE) as usize;
            let n = (PER_PAGE as usize - within).min(out.len() - at);
            let slots = &mut out[at..at + n];
            let read = self.with_page(block / PER_PAGE, |page| {
                for (slot, entry) in slots.iter_mut().zip(&page.entries[within..]) {
                    *slot = Some(entry.load(Ordering::Acquire));
                }
            });
            if read.is_err() {
                out[at..at + n].fill(None);
            }
            at += n;
        }
    }

    /// Sets the entries of blocks `first..first + values.len()` (their page changed). Fails
    /// only when a page holding them cannot be read from the member.
    pub fn set_range(&self, first: u64, values: &[u32]) -> Result<(), DiskError> {
        let mut at = 0usize;
        while at < values.len() {
            let block = first + at as u64;
            let within = (block % PER_PAGE) as usize;
            let n = (PER_PAGE as usize - within).min(values.len() - at);
            self.with_page(block / PER_PAGE, |page| {
                for (entry, value) in page.entries[within..within + n].iter().zip(&values[at..]) {
                    entry.store(*value, Ordering::Release);
                }
                // After the entries: a write-back that cleared the flag before them sees
                // it set again, and writes the page once more. Counted under the map's
                // lock, before anyone can clean it again.
                if !page.dirty.swap(true, Ordering::AcqRel) {
                    self.dirty.fetch_add(1, Ordering::AcqRel);
                }
            })?;
            at += n;
        }
        Ok(())
    }

    /// Whether any page changed since it was last written, or is being written back.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire) > 0
    }

    /// Writes `page` (number `page_no`) back if it changed; it stays changed if that fails.
    /// The page stays counted in `dirty` until its write returned, so a count of 0 (seen
    /// under `writing`) means no changed page and no write-back in flight.
    fn write_back(&self, page_no: u64, page: &Page, buf: &mut AlignedBuf) -> Result<(), DiskError> {
        if !page.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        buf.fill(0);
        page.encode(buf);
        let result = self
            .disk
            .write_at(buf, self.offset + page_no * CSUM_BLOCK)
            .inspect(|()| {
                if let Some(fresh) = &self.fresh {
                    fresh.set_written(page_no);
                }
            });
        // Failed, and not changed again meanwhile: it stays changed, on our count. Otherwise
        // our count goes (a setter that changed it again counted it once more).
        let kept = result.is_err() && !page.dirty.swap(true, Ordering::AcqRel);
        if !kept {
            self.dirty.fetch_sub(1, Ordering::AcqRel);
        }
        result
    }

    /// Drops pages until the cache is a little under its size: pages not used since the
    /// hand last passed, written back first when changed; pages in use stay.
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else {
            // Another caller is evicting; the cache may run over for a moment.
            return;
        };
        let target = self.max_pages - self.max_pages / 8;
        let mut buf = AlignedBuf::new(CSUM_BLOCK as usize);
        // Two turns of the hand: the first may only clear reference bits.
        for _ in 0..2 * SHARDS {
            if self.cached.load(Ordering::Acquire) <= target {
                return;
            }
            let at = self.hand.fetch_add(1, Ordering::Relaxed) % SHARDS;
            let victims: Vec<(u64, Arc<Page>)> = lock(&self.shards[at])
                .pages
                .iter()
                .filter(|(_, p)| !p.used.swap(false, Ordering::Relaxed))
                .map(|(n, p)| (*n, p.clone()))
                .collect();
            for (page_no, page) in victims {
                if self.cached.load(Ordering::Acquire) <= target {
                    return;
                }
                let written = {
                    let _writing = lock(&self.writing);
                    self.write_back(page_no, &page, &mut buf)
                };
                if let Err(e) = written {
                    log::warn!(
                        "{}: a checksum-table page could not be written back ({e}); it stays cached",
                        self.disk.name()
                    );
                    continue;
                }
                let mut shard = lock(&self.shards[at]);
                // Held by the map and by us only, and still clean: nobody can change it.
                if Arc::strong_count(&page) == 2 && !page.dirty.load(Ordering::Acquire) {
                    shard.pages.remove(&page_no);
                    shard.dropped += 1;
                    self.cached.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Writes every changed page, in order; a page that fails to write stays changed.
    pub fn write_dirty(&self) -> Result<(), DiskError> {
        // Under `writing`: an eviction's write-back in flight is finished first.
        let _writing = lock(&self.writing);
        if !self.is_dirty() {
            return Ok(());
        }
        let mut pages: Vec<(u64, Arc<Page>)> = Vec::new();
        for shard in &self.shards {
            pages.extend(
                lock(shard)
                    .pages
                    .iter()
                    .filter(|(_, p)| p.dirty.load(Ordering::Acquire))
                    .map(|(n, p)| (*n, p.clone())),
            );
        }
        pages.sort_unstable_by_key(|(n, _)| *n);
        let mut buf = AlignedBuf::new(CSUM_BLOCK as usize);
        let mut first_error = None;
        for (page_no, page) in &pages {
            if let Err(e) = self.write_back(*page_no, page, &mut buf) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes the whole table region: cached pages as they are, the others from the member
    /// or the fill (create: every page becomes valid on the member), a batch of pages per
    /// write so that memory stays bounded.
    pub fn store_all(&self) -> Result<(), DiskError> {
        let pages = self.blocks.div_ceil(PER_PAGE);
        let mut buf = AlignedBuf::new((STORE_BATCH * CSUM_BLOCK) as usize);
        let mut first = 0u64;
        while first < pages {
            let count = STORE_BATCH.min(pages - first);
            let bytes = (count * CSUM_BLOCK) as usize;
            buf[..bytes].fill(0);
            for page_no in first..first + count {
                let at = ((page_no - first) * CSUM_BLOCK) as usize;
                let out = &mut buf[at..at + CSUM_BLOCK as usize];
                let cached = lock(self.shard(page_no)).pages.get(&page_no).cloned();
                match cached {
                    Some(page) => {
                        if page.dirty.swap(false, Ordering::AcqRel) {
                            self.dirty.fetch_sub(1, Ordering::AcqRel);
                        }
                        page.encode(out);
                    }
                    None => self.load(page_no)?.encode(out),
                }
            }
            self.disk
                .write_at(&buf[..bytes], self.offset + first * CSUM_BLOCK)?;
            if let Some(fresh) = &self.fresh {
                for page_no in first..first + count {
                    fresh.set_written(page_no);
                }
            }
            first += count;
        }
        Ok(())
    }

    /// Pages cached now.
    #[cfg(test)]
    fn cached_pages(&self) -> usize {
        self.cached.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use proptest::prelude::*;

    /// A table region of `pages` pages at 8 KiB on a memory disk, nothing else.
    fn regions(pages: u64) -> Regions {
        Regions {
            bitmap_offset: 0,
            bitmap_size: 0,
            journal_offset: 0,
            journal_size: 0,
            csum_offset: 8192,
            csum_size: pages * CSUM_BLOCK,
            data_offset: 8192 + pages * CSUM_BLOCK,
            // The last page only partly used.
            data_size: (pages * PER_PAGE - 100) * CSUM_BLOCK,
        }
    }

    fn disk_for(r: &Regions) -> Arc<dyn Disk> {
        Arc::new(MemDisk::new("t", r.data_offset, 4096))
    }

    /// A memory disk whose reads, or writes, take a while, so that evictions race with
    /// them.
    #[derive(Debug)]
    struct Slow {
        inner: MemDisk,
        read: std::time::Duration,
        write: std::time::Duration,
    }

    impl Slow {
        fn new(r: &Regions, read_us: u64, write_us: u64) -> Slow {
            Slow {
                inner: MemDisk::new("t", r.data_offset, 4096),
                read: std::time::Duration::from_micros(read_us),
                write: std::time::Duration::from_micros(write_us),
            }
        }
    }

    impl Disk for Slow {
        fn info(&self) -> &crate::disk::DiskInfo {
            self.inner.info()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
            self.inner.read_at(buf, offset)?;
            std::thread::sleep(self.read);
            Ok(())
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
            std::thread::sleep(self.write);
            self.inner.write_at(buf, offset)
        }
        fn flush(&self) -> Result<(), DiskError> {
            Ok(())
        }
    }

    /// A flush that begins while an eviction is still writing the only changed page back
    /// returns only once that page is on the member.
    #[test]
    fn a_flush_waits_for_a_write_back_in_flight() {
        let r = regions(4);
        let slow = Arc::new(Slow::new(&r, 0, 100_000));
        let disk: Arc<dyn Disk> = slow.clone();
        let table = ChecksumTable::open(disk, &r, 1);
        table.set_range(3, &[0xDEAD_BEEF]).unwrap();
        std::thread::scope(|scope| {
            // Reading page 1 evicts page 0, which is written back slowly.
            scope.spawn(|| table.get_range(PER_PAGE, &mut [None]));
            std::thread::sleep(std::time::Duration::from_millis(30));
            table.write_dirty().unwrap();
            let mut page = vec![0u8; CSUM_BLOCK as usize];
            slow.inner.read_at(&mut page, r.csum_offset).unwrap();
            assert_eq!(&page[12..16], &0xDEAD_BEEFu32.to_le_bytes(), "flushed");
        });
        assert!(!table.is_dirty());
    }

    fn all(table: &ChecksumTable, blocks: u64) -> Vec<Option<u32>> {
        let mut out = vec![None; blocks as usize];
        table.get_range(0, &mut out);
        out
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set { at: u64, len: u64, value: u32 },
        Get { at: u64, len: u64 },
        WriteDirty,
    }

    fn op(blocks: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..blocks, 1..2500u64, any::<u32>()).prop_map(|(at, len, value)| Op::Set { at, len, value }),
            3 => (0..blocks, 1..2500u64).prop_map(|(at, len)| Op::Get { at, len }),
            1 => Just(Op::WriteDirty),
        ]
    }

    proptest! {
        /// Against a plain vector: every entry read is the last set, whatever the cache
        /// evicted meanwhile; the cache stays within its size; after `write_dirty` a new
        /// table on the same member reads exactly the model.
        #[test]
        fn a_small_cache_keeps_every_entry(
            max_pages in 1usize..4,
            ops in proptest::collection::vec(op(6 * PER_PAGE - 100), 1..60),
        ) {
            let r = regions(6);
            let blocks = r.data_size / CSUM_BLOCK;
            let disk = disk_for(&r);
            let table = ChecksumTable::open(disk.clone(), &r, max_pages);
            let mut model = vec![0u32; blocks as usize];
            for op in ops {
                match op {
                    Op::Set { at, len, value } => {
                        let len = len.min(blocks - at);
                        let values: Vec<u32> = (0..len as u32).map(|i| value ^ i.wrapping_mul(0x9E37_79B9)).collect();
                        table.set_range(at, &values).unwrap();
                        model[at as usize..(at + len) as usize].copy_from_slice(&values);
                    }
                    Op::Get { at, len } => {
                        let len = len.min(blocks - at);
                        let mut out = vec![None; len as usize];
                        table.get_range(at, &mut out);
                        let want: Vec<Option<u32>> = model[at as usize..(at + len) as usize].iter().map(|v| Some(*v)).collect();
                        prop_assert_eq!(out, want);
                    }
                    Op::WriteDirty => {
                        table.write_dirty().unwrap();
                        prop_assert!(!table.is_dirty());
                        let again = ChecksumTable::open(disk.clone(), &r, 1);
                        let want: Vec<Option<u32>> = model.iter().map(|v| Some(*v)).collect();
                        prop_assert_eq!(all(&again, blocks), want);
                    }
                }
                prop_assert!(table.cached_pages() <= max_pages, "{} cached", table.cached_pages());
            }
        }
    }

    /// A fresh table reads as its fill until written; `store_all` makes the whole region
    /// valid on the member (the fill where nothing was set), in bounded batches.
    #[test]
    fn a_fresh_table_stores_its_fill_and_changes() {
        let r = regions(STORE_BATCH + 3);
        let blocks = r.data_size / CSUM_BLOCK;
        let disk = disk_for(&r);
        // Garbage where the table goes: nothing of it may show through.
        disk.write_at(&vec![0xA5; r.csum_size as usize], r.csum_offset)
            .unwrap();
        let table = ChecksumTable::fresh(disk.clone(), &r, Fill::Zero, 2);
        let fill = |_: u64| 0u32;
        let set: Vec<u32> = (0..3000).collect();
        table.set_range(5 * PER_PAGE + 7, &set).unwrap();
        // Evictions wrote some pages back; the rest are still the fill.
        table.store_all().unwrap();
        let again = ChecksumTable::open(disk.clone(), &r, 4);
        let got = all(&again, blocks);
        for b in 0..blocks {
            let want = if (5 * PER_PAGE + 7..5 * PER_PAGE + 3007).contains(&b) {
                (b - 5 * PER_PAGE - 7) as u32
            } else {
                fill(b)
            };
            assert_eq!(got[b as usize], Some(want), "block {b}");
        }
    }

    /// Many threads setting and reading entries on many pages through a one-page cache:
    /// no change is lost to an eviction racing with it.
    #[test]
    fn concurrent_changes_survive_eviction() {
        let r = regions(8);
        let blocks = r.data_size / CSUM_BLOCK;
        // Races are rare: many short runs.
        for run in 0..60u32 {
            let disk: Arc<dyn Disk> = Arc::new(Slow::new(&r, 200, 0));
            let table = ChecksumTable::open(disk.clone(), &r, 1);
            std::thread::scope(|scope| {
                for t in 0..4u64 {
                    let table = &table;
                    scope.spawn(move || {
                        for round in 0..3u32 {
                            // Thread t owns blocks t, t + 388, ...: on every page.
                            for b in (t..blocks).step_by(4 * 97) {
                                let value = (b as u32) ^ (round << 24) ^ (run << 16);
                                table.set_range(b, &[value]).unwrap();
                                let mut out = [None];
                                table.get_range(b, &mut out);
                                assert_eq!(out[0], Some(value));
                            }
                        }
                    });
                }
            });
            table.write_dirty().unwrap();
            let again = ChecksumTable::open(disk, &r, 8);
            let got = all(&again, blocks);
            for b in 0..blocks {
                let want = if b % (4 * 97) < 4 {
                    (b as u32) ^ (2 << 24) ^ (run << 16)
                } else {
                    0
                };
                assert_eq!(got[b as usize], Some(want), "run {run}, block {b}");
            }
        }
    }
}
