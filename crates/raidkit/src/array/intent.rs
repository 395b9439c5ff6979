//! The write-intent bitmap: which regions of stripes may be being written, so that after an
//! unclean stop only those are resynchronised (format: [`crate::format::IntentBitmap`]).
//!
//! Before a write touches a region whose bit is clear on the members, the bit is set and the
//! bitmap block is written to every member and flushed; only then does the data go out.
//! Bits are cleared lazily by [`Array::flush`]: a region none of whose writes is in flight,
//! whose last write completed before the flush began (so it is durable after it), and that
//! has been idle for `ArrayOptions::bitmap_idle` — so a region in use is not cleared and
//! marked again at every flush, each time costing a bitmap write and flush on every member.
//! The clearing is skipped while a resync is pending, so regions found dirty at assemble stay
//! marked until the resync has made them consistent.
//!
//! Owns the write-intent bitmap's in-memory state and its writes; knows nothing of stripes'
//! contents.

use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::Array;
use super::member::MemberState;
use crate::format::IntentBitmap;

/// The running bitmap.
#[derive(Debug)]
pub(super) struct Intent {
    /// Stripes per bit.
    pub per_bit: u64,
    /// The epoch written with every block (and in the superblocks).
    pub epoch: u64,
    /// The bits as the members hold them; the lock also serialises writing them.
    on_disk: Mutex<Vec<bool>>,
    /// Writes in flight per region.
    in_flight: Vec<AtomicU32>,
    /// Per region, the flush generation at which its last write completed.
    done_at: Vec<AtomicU64>,
    /// Per region, when its last write completed (milliseconds since `started`).
    done_ms: Vec<AtomicU64>,
    started: std::time::Instant,
    /// Flush generation: advanced when a flush begins.
    generation: AtomicU64,
}

impl Intent {
    /// A bitmap for `stripes` stripes whose members hold `bits` (all clear when `None`).
    pub fn new(stripes: u64, epoch: u64, bits: Option<Vec<bool>>) -> Intent {
        let (per_bit, count) = IntentBitmap::geometry(stripes);
        let count = count as usize;
        Intent {
            per_bit,
            epoch,
            on_disk: Mutex::new(bits.unwrap_or_else(|| vec![false; count])),
            in_flight: (0..count).map(|_| AtomicU32::new(0)).collect(),
            done_at: (0..count).map(|_| AtomicU64::new(0)).collect(),
            done_ms: (0..count).map(|_| AtomicU64::new(0)).collect(),
            started: std::time::Instant::now(),
            generation: AtomicU64::new(1),
        }
    }

    fn bits(&self, stripes: RangeInclusive<u64>) -> std::ops::Range<usize> {
        (*stripes.start() / self.per_bit) as usize..(*stripes.end() / self.per_bit) as usize + 1
    }

    /// Whether stripe `stripe`'s region is marked.
    pub fn marked(&self, stripe: u64) -> bool {
        self.on_disk.lock().unwrap_or_else(|e| e.into_inner())[(stripe / self.per_bit) as usize]
    }

    /// Stripes in marked regions.
    pub fn marked_stripes(&self, stripes: u64) -> u64 {
        let on_disk = self.on_disk.lock().unwrap_or_else(|e| e.into_inner());
        (0..stripes)
            .filter(|s| on_disk[(s / self.per_bit) as usize])
            .count() as u64
    }
}

impl Array {
    /// Before writing `stripes`: their regions are marked on every member (durably).
    pub(super) fn intent_begin(&self, stripes: RangeInclusive<u64>) {
        let Some(intent) = self.guard.intent() else {
            return;
        };
        let bits = intent.bits(stripes);
        for b in bits.clone() {
            intent.in_flight[b].fetch_add(1, Ordering::SeqCst);
        }
        let mut on_disk = intent.on_disk.lock().unwrap_or_else(|e| e.into_inner());
        if bits.clone().all(|b| on_disk[b]) {
            return;
        }
        for b in bits {
            on_disk[b] = true;
        }
        self.store_intent(intent, &on_disk);
    }

    /// After writing `stripes` (whether it worked or not).
    pub(super) fn intent_end(&self, stripes: RangeInclusive<u64>) {
        let Some(intent) = self.guard.intent() else {
            return;
        };
        let generation = intent.generation.load(Ordering::SeqCst);
        let ms = intent.started.elapsed().as_millis() as u64;
        for b in intent.bits(stripes) {
            intent.done_ms[b].store(ms, Ordering::SeqCst);
            intent.done_at[b].store(generation, Ordering::SeqCst);
            intent.in_flight[b].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A flush begins: returns its generation.
    pub(super) fn intent_flush_begins(&self) -> u64 {
        self.guard
            .intent()
            .map_or(0, |i| i.generation.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// A flush that began at `generation` made the members durable: clear the regions whose
    /// writes all completed before it began (not while a resync is pending).
    pub(super) fn intent_settle(&self, generation: u64) {
        let Some(intent) = self.guard.intent() else {
            return;
        };
        if self.unclean_start.load(Ordering::Acquire) {
            return;
        }
        let idle = self.options.bitmap_idle.as_millis() as u64;
        let now = intent.started.elapsed().as_millis() as u64;
        let mut on_disk = intent.on_disk.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (b, bit) in on_disk.iter_mut().enumerate() {
            if *bit
                && intent.in_flight[b].load(Ordering::SeqCst) == 0
                && intent.done_at[b].load(Ordering::SeqCst) < generation
                && now.saturating_sub(intent.done_ms[b].load(Ordering::SeqCst)) >= idle
            {
                *bit = false;
                changed = true;
            }
        }
        if changed {
            self.store_intent(intent, &on_disk);
        }
    }

    /// Writes the bitmap block to every active member and disk being filled, and flushes
    /// them. A member that fails is marked faulty (its bitmap no longer counts).
    fn store_intent(&self, intent: &Intent, bits: &[bool]) {
        let block = IntentBitmap {
            epoch: intent.epoch,
            stripes_per_bit: intent.per_bit,
            bits: bits.to_vec(),
        }
        .encode(&self.uuid);
        let mut buf = crate::disk::AlignedBuf::new(block.len());
        buf.copy_from_slice(&block);
        let offset = self.regions.bitmap_offset;
        self.write_to_every_disk("bitmap", &|disk| disk.write_at(&buf, offset));
    }

    /// Runs `write` on every active member and every disk being filled, in parallel, then
    /// flushes each (metadata every copy of which must be durable before going on); a
    /// member that fails is failed, a disk being filled abandoned.
    pub(super) fn write_to_every_disk(
        &self,
        what: &str,
        write: &(dyn Fn(&dyn crate::disk::Disk) -> Result<(), crate::disk::DiskError> + Sync),
    ) {
        let targets: Vec<(usize, std::sync::Arc<dyn crate::disk::Disk>)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.state() == MemberState::Active)
            .filter_map(|(role, m)| Some((role, m.disk()?)))
            .chain(
                self.members
                    .iter()
                    .enumerate()
                    .filter_map(|(role, m)| Some((role, m.incoming()?.disk.clone()))),
            )
            .collect();
        let failed = self.io.parallel(targets, |(role, disk)| {
            write(disk.as_ref())
                .and_then(|()| disk.flush())
                .err()
                .map(|e| (role, disk, e))
        });
        for (role, disk, e) in failed.into_iter().flatten() {
            let member = &self.members[role];
            match member.incoming() {
                Some(incoming) if std::sync::Arc::ptr_eq(&incoming.disk, &disk) => {
                    self.abandon(role, &incoming, &format!("{what} write failed: {e}"));
                }
                _ => {
                    member.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    self.fail_role(role, &format!("{what} write failed: {e}"));
                }
            }
        }
    }
}
