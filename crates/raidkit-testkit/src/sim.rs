//! A seeded, deterministic simulated disk for fault and crash tests.
//!
//! [`SimDisk`] keeps two images: the **live** one that reads see, and the **durable** one
//! as of the last successful flush, plus the list of writes since then. It injects, on
//! request or with a seeded probability:
//!
//! - read errors (`EIO`) on chosen ranges or at random; a sector that failed a read stays
//!   bad (a latent sector error) until it is rewritten;
//! - write errors on chosen ranges or at random, and a failing flush;
//! - silent corruption: bit flips in the stored data;
//! - lost writes (acknowledged, never stored), misdirected writes (stored at another
//!   offset) and torn writes (at a crash, sectors may hold a mix of old and new bytes);
//! - latency on every request;
//! - a crash: [`SimDisk::crash`] keeps everything flushed and, for each sector of each
//!   unflushed write, a seeded choice of old or new (or, for a torn write, a mix).
//!
//! Several disks can share a [`PowerLine`]: a countdown of writes and flushes over all of
//! them, after which the power is off — every later write and flush on any of them is
//! silently dropped, as if the machine had stopped at that instant. [`SimDisk::crash`] on
//! each disk then settles the writes that were in flight. This gives a crash at one
//! global instant even while the array issues I/O from many threads.
//!
//! Every fault is recorded ([`SimDisk::faults`]); [`SimDisk::report`] gives the seed and the
//! fault list, which is what a failing test should print to be replayed. With the same
//! seed and the same sequence of calls, a disk injects the same faults.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raidkit::disk::{Disk, DiskError, DiskInfo, Op};

/// The unit of atomicity and of latent errors.
pub const SECTOR: u64 = 512;

/// One injected fault, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// A read failed because the range holds a bad sector.
    ReadError {
        /// Start of the read.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A sector became unreadable (random read errors) until rewritten.
    LatentSector {
        /// The sector number (offset / 512).
        sector: u64,
    },
    /// A write failed; nothing was stored.
    WriteError {
        /// Start of the write.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A flush failed; nothing more became durable.
    FlushError,
    /// A bit of stored data flipped.
    BitFlip {
        /// Byte offset.
        offset: u64,
        /// Bit within the byte (0 to 7).
        bit: u8,
    },
    /// A write was acknowledged but never stored.
    LostWrite {
        /// Start of the write.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A write was stored at another offset.
    MisdirectedWrite {
        /// Where it should have gone.
        intended: u64,
        /// Where it went.
        actual: u64,
        /// Its length.
        len: u64,
    },
    /// A write that, if a crash comes before the next flush, may be torn inside sectors.
    TornWrite {
        /// Start of the write.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A crash: what became of the unflushed writes, sector by sector.
    Crash {
        /// Unflushed writes at the crash.
        unflushed_writes: usize,
        /// Sectors that kept their new contents.
        new_sectors: u64,
        /// Sectors that kept their old contents.
        old_sectors: u64,
        /// Sectors left with a mix of old and new bytes.
        torn_sectors: u64,
    },
}

/// A write since the last flush, as stored.
#[derive(Debug)]
struct Pending {
    offset: u64,
    data: Vec<u8>,
    torn: bool,
}

/// Fault probabilities, each from 0 (never) to 1 (always).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// Each sector read turns into a latent bad sector.
    pub read_error: f64,
    /// A write fails.
    pub write_error: f64,
    /// A write is lost.
    pub lost_write: f64,
    /// A write goes to another offset.
    pub misdirected_write: f64,
    /// A write may tear at a crash.
    pub torn_write: f64,
}

#[derive(Debug)]
struct State {
    rng: u64,
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    bad_sectors: BTreeSet<u64>,
    failing_writes: Vec<Range<u64>>,
    fail_next_flush: bool,
    rates: FaultRates,
    faults: Vec<Fault>,
}

impl State {
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`; draws nothing when `p` is 0.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn sectors(offset: u64, len: u64) -> Range<u64> {
    offset / SECTOR..(offset + len).div_ceil(SECTOR)
}

/// The simulated disk. See the [module docs](self).
#[derive(Debug)]
pub struct SimDisk {
    info: DiskInfo,
    seed: u64,
    latency: Mutex<Duration>,
    state: Mutex<State>,
    power: Mutex<Option<Arc<PowerLine>>>,
}

/// A power supply shared by several [`SimDisk`]s: it fails after a given number of writes
/// and flushes (over all of them), and from then on every write and flush is dropped.
#[derive(Debug)]
pub struct PowerLine {
    left: AtomicI64,
}

impl PowerLine {
    /// Power that fails after `ops` more writes and flushes (`u64::MAX`: never).
    pub fn new(ops: u64) -> Arc<PowerLine> {
        Arc::new(PowerLine {
            left: AtomicI64::new(i64::try_from(ops).unwrap_or(i64::MAX)),
        })
    }

    /// Takes one operation's worth: false once the power has failed.
    fn draw(&self) -> bool {
        self.left.fetch_sub(1, Ordering::AcqRel) > 0
    }

    /// Whether the power has failed.
    pub fn is_off(&self) -> bool {
        self.left.load(Ordering::Acquire) <= 0
    }

    /// Operations still to go before the power fails (0 once it has).
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Acquire).max(0) as u64
    }
}

impl SimDisk {
    /// A zeroed disk of `size` bytes (rounded down to sectors) with 512-byte blocks.
    pub fn new(name: &str, size: u64, seed: u64) -> SimDisk {
        SimDisk::with_block_size(name, size, 512, seed)
    }

    /// A zeroed disk with the given logical block size (a multiple of 512).
    ///
    /// Panics if `block_size` is not a non-zero multiple of 512.
    pub fn with_block_size(name: &str, size: u64, block_size: u32, seed: u64) -> SimDisk {
        assert!(
            block_size > 0 && u64::from(block_size) % SECTOR == 0,
            "block size {block_size}"
        );
        let size = size - size % u64::from(block_size);
        SimDisk {
            info: DiskInfo {
                name: name.to_string(),
                size,
                block_size,
                buffer_align: 1,
            },
            seed,
            latency: Mutex::new(Duration::ZERO),
            power: Mutex::new(None),
            state: Mutex::new(State {
                rng: seed,
                live: vec![0; size as usize],
                durable: vec![0; size as usize],
                pending: Vec::new(),
                bad_sectors: BTreeSet::new(),
                failing_writes: Vec::new(),
                fail_next_flush: false,
                rates: FaultRates::default(),
                faults: Vec::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The seed the disk was made with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Sets the fault probabilities.
    pub fn set_rates(&self, rates: FaultRates) {
        self.state().rates = rates;
    }

    /// Connects the disk to `power`: once it has failed, writes and flushes are dropped
    /// (they return success: the process is as good as dead and never learns otherwise).
    pub fn set_power(&self, power: Arc<PowerLine>) {
        *self.power.lock().unwrap_or_else(|e| e.into_inner()) = Some(power);
    }

    /// Whether the disk's power (if any) lets one more write or flush through.
    fn powered(&self) -> bool {
        self.power
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|p| p.draw())
    }

    /// Makes every request sleep this long first.
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = latency;
    }

    /// Marks the sectors of a range bad: reads touching them fail until they are rewritten.
    pub fn add_bad_range(&self, offset: u64, len: u64) {
        let mut state = self.state();
        for sector in sectors(offset, len) {
            state.bad_sectors.insert(sector);
        }
    }

    /// Makes every write touching this range fail, until [`SimDisk::clear_write_failures`].
    pub fn fail_writes_in(&self, offset: u64, len: u64) {
        self.state()
            .failing_writes
            .push(offset..offset.saturating_add(len));
    }

    /// Lets writes succeed again everywhere.
    pub fn clear_write_failures(&self) {
        self.state().failing_writes.clear();
    }

    /// Makes the next flush fail (and nothing become durable).
    pub fn fail_next_flush(&self) {
        self.state().fail_next_flush = true;
    }

    /// Flips one bit of stored data, in the live and the durable image (bit rot on the
    /// medium). Offsets past the end are ignored.
    pub fn flip_bit(&self, offset: u64, bit: u8) {
        let mut state = self.state();
        let bit = bit % 8;
        if let Some(byte) = state.live.get_mut(offset as usize) {
            *byte ^= 1 << bit;
            state.durable[offset as usize] ^= 1 << bit;
            state.faults.push(Fault::BitFlip { offset, bit });
        }
    }

    /// Flips `count` seeded-random bits within `range` (clamped to the disk).
    pub fn flip_random_bits(&self, range: Range<u64>, count: usize) {
        let end = range.end.min(self.info.size);
        if range.start >= end {
            return;
        }
        for _ in 0..count {
            let (offset, bit) = {
                let mut state = self.state();
                let offset = range.start + state.below(end - range.start);
                (offset, state.below(8) as u8)
            };
            self.flip_bit(offset, bit);
        }
    }

    /// Crashes the disk: the durable image keeps every flushed write and, for each sector
    /// of each unflushed write in order, a seeded choice of its new or old contents (a torn
    /// write may leave a sector with new bytes up to a seeded point and old bytes after).
    /// The live image becomes that result.
    pub fn crash(&self) {
        let mut state = self.state();
        let pending = std::mem::take(&mut state.pending);
        let (mut new_sectors, mut old_sectors, mut torn_sectors) = (0, 0, 0);
        for write in &pending {
            for (i, chunk) in write.data.chunks(SECTOR as usize).enumerate() {
                let at = (write.offset + i as u64 * SECTOR) as usize;
                let choices = if write.torn { 3 } else { 2 };
                match state.below(choices) {
                    0 => old_sectors += 1,
                    1 => {
                        state.durable[at..at + chunk.len()].copy_from_slice(chunk);
                        new_sectors += 1;
                    }
                    _ => {
                        let cut = 1 + state.below(chunk.len() as u64 - 1) as usize;
                        state.durable[at..at + cut].copy_from_slice(&chunk[..cut]);
                        torn_sectors += 1;
                    }
                }
            }
        }
        state.live = state.durable.clone();
        state.faults.push(Fault::Crash {
            unflushed_writes: pending.len(),
            new_sectors,
            old_sectors,
            torn_sectors,
        });
    }

    /// Every fault injected so far, in order.
    pub fn faults(&self) -> Vec<Fault> {
        self.state().faults.clone()
    }

    /// The seed and the fault list, for a failing test to print.
    pub fn report(&self) -> String {
        format!(
            "{}: seed {:#x}, faults {:?}",
            self.info.name,
            self.seed,
            self.faults()
        )
    }

    /// A copy of what reads currently return.
    pub fn live_image(&self) -> Vec<u8> {
        self.state().live.clone()
    }

    /// A copy of what would survive a crash with no unflushed write kept.
    pub fn durable_image(&self) -> Vec<u8> {
        self.state().durable.clone()
    }

    fn sleep(&self) {
        let latency = *self.latency.lock().unwrap_or_else(|e| e.into_inner());
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
    }

    fn eio(&self, op: Op, offset: u64, len: u64) -> DiskError {
        DiskError::io(
            &self.info.name,
            op,
            offset,
            len,
            std::io::Error::from_raw_os_error(libc::EIO),
        )
    }
}

impl Disk for SimDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        self.info.check(Op::Read, offset, buf.as_ptr(), buf.len())?;
        self.sleep();
        let len = buf.len() as u64;
        let mut state = self.state();
        let rate = state.rates.read_error;
        for sector in sectors(offset, len) {
            if !state.bad_sectors.contains(&sector) && state.chance(rate) {
                state.bad_sectors.insert(sector);
                state.faults.push(Fault::LatentSector { sector });
            }
        }
        if state
            .bad_sectors
            .range(sectors(offset, len))
            .next()
            .is_some()
        {
            state.faults.push(Fault::ReadError { offset, len });
            return Err(self.eio(Op::Read, offset, len));
        }
        let start = offset as usize;
        buf.copy_from_slice(&state.live[start..start + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        self.info
            .check(Op::Write, offset, buf.as_ptr(), buf.len())?;
        self.sleep();
        let len = buf.len() as u64;
        if len == 0 {
            return Ok(());
        }
        let mut state = self.state();
        if !self.powered() {
            return Ok(());
        }
        let rates = state.rates;
        let blocked = state
            .failing_writes
            .iter()
            .any(|r| r.start < offset + len && offset < r.end);
        if blocked || state.chance(rates.write_error) {
            state.faults.push(Fault::WriteError { offset, len });
            return Err(self.eio(Op::Write, offset, len));
        }
        if state.chance(rates.lost_write) {
            state.faults.push(Fault::LostWrite { offset, len });
            return Ok(());
        }
        let mut actual = offset;
        if state.chance(rates.misdirected_write) {
            let bs = u64::from(self.info.block_size);
            let slots = (self.info.size - len) / bs + 1;
            if slots > 1 {
                // Any other block-aligned place the write fits.
                let pick = state.below(slots - 1) * bs;
                actual = if pick >= offset { pick + bs } else { pick };
                state.faults.push(Fault::MisdirectedWrite {
                    intended: offset,
                    actual,
                    len,
                });
            }
        }
        let torn = state.chance(rates.torn_write);
        if torn {
            state.faults.push(Fault::TornWrite {
                offset: actual,
                len,
            });
        }
        let start = actual as usize;
        state.live[start..start + buf.len()].copy_from_slice(buf);
        for sector in sectors(actual, len) {
            state.bad_sectors.remove(&sector);
        }
        state.pending.push(Pending {
            offset: actual,
            data: buf.to_vec(),
            torn,
        });
        Ok(())
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.sleep();
        let mut state = self.state();
        if !self.powered() {
            return Ok(());
        }
        if std::mem::take(&mut state.fail_next_flush) {
            state.faults.push(Fault::FlushError);
            return Err(self.eio(Op::Flush, 0, 0));
        }
        let pending = std::mem::take(&mut state.pending);
        for write in pending {
            let at = write.offset as usize;
            state.durable[at..at + write.data.len()].copy_from_slice(&write.data);
        }
        Ok(())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
