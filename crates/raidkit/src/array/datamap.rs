//! The data map: which regions of stripes were written since create (format
//! [`crate::format::DataMapBlock`], `docs/format.md` §20), so that a rebuild onto a disk
//! that reads as zeros, a scrub and a resync skip the regions that hold nothing.
//!
//! Kept only by arrays that started as zeros (created over members that read as zeros, or
//! with `--assume-clean`): there a region whose bit is clear holds zeros, with zero
//! checksum entries, on every member. Before a write touches a region whose bit is clear,
//! the bit is set and its block written to every member and flushed; only then does the
//! data go out, so a crash can never leave data where the map says there is none. Bits are
//! never cleared (a discarded region stays marked). A block no member holds a valid copy of
//! reads as every bit set.
//!
//! Owns the map's in-memory bits and their writes; knows nothing of stripes' contents.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::Mutex;

use super::Array;
use crate::disk::{AlignedBuf, Disk};
use crate::format::{DATA_MAP_BITS_PER_BLOCK, DATA_MAP_BLOCK, DATA_MAP_OFFSET, DataMapBlock};

/// The running data map.
#[derive(Debug)]
pub(super) struct DataMap {
    /// Stripes per bit.
    pub per_bit: u64,
    /// Stripes of the array.
    stripes: u64,
    /// The bits as the members hold them. Held only briefly, never across I/O: the walker's
    /// pool tasks ask it while a writer may be storing blocks through the same pool.
    bits: Mutex<Vec<bool>>,
    /// Serialises storing blocks (a bit is set in `bits` only once its block is durable).
    storing: Mutex<()>,
}

impl DataMap {
    /// A map of `stripes` stripes with every bit `value`.
    pub fn new(stripes: u64, value: bool) -> DataMap {
        let (per_bit, count, _) = DataMapBlock::geometry(stripes);
        DataMap {
            per_bit,
            stripes,
            bits: Mutex::new(vec![value; count as usize]),
            storing: Mutex::new(()),
        }
    }

    /// The map `disks` hold: per block the union of the valid copies, every bit set where
    /// none is valid.
    pub fn load(stripes: u64, array_uuid: &[u8; 16], disks: &[Arc<dyn Disk>]) -> DataMap {
        let map = DataMap::new(stripes, true);
        let (_, count, blocks) = DataMapBlock::geometry(stripes);
        let mut bits = vec![true; count as usize];
        let mut buf = AlignedBuf::new(DATA_MAP_BLOCK);
        for index in 0..blocks {
            let mut union: Option<Vec<bool>> = None;
            for disk in disks {
                let offset = DATA_MAP_OFFSET + (index * DATA_MAP_BLOCK) as u64;
                if disk.read_at(&mut buf, offset).is_err() {
                    continue;
                }
                let Some(block) = DataMapBlock::decode(&buf, array_uuid, stripes, index) else {
                    continue;
                };
                match &mut union {
                    None => union = Some(block.bits),
                    Some(u) => u.iter_mut().zip(block.bits).for_each(|(a, b)| *a |= b),
                }
            }
            if let Some(u) = union {
                let first = index * DATA_MAP_BITS_PER_BLOCK as usize;
                bits[first..first + u.len()].copy_from_slice(&u);
            }
        }
        *map.bits.lock().unwrap_or_else(|e| e.into_inner()) = bits;
        map
    }

    /// Whether `stripe`'s region may hold data.
    pub fn holds(&self, stripe: u64) -> bool {
        let bit = (stripe / self.per_bit) as usize;
        self.bits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(bit)
            .is_none_or(|b| *b)
    }

    /// The first stripe of `from..end` whose region may hold data (`end` when none).
    pub fn first_held(&self, from: u64, end: u64) -> u64 {
        let bits = self.bits.lock().unwrap_or_else(|e| e.into_inner());
        let mut bit = (from / self.per_bit) as usize;
        while bit < bits.len() && !bits[bit] {
            bit += 1;
            if bit as u64 * self.per_bit >= end {
                return end;
            }
        }
        if bit >= bits.len() {
            return end;
        }
        (bit as u64 * self.per_bit).max(from).min(end)
    }

    /// Stripes in regions that may hold data.
    pub fn stripes_held(&self) -> u64 {
        let bits = self.bits.lock().unwrap_or_else(|e| e.into_inner());
        bits.iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| {
                let first = i as u64 * self.per_bit;
                (first + self.per_bit).min(self.stripes) - first
            })
            .sum()
    }

    /// The encoded blocks (every one when `only` is `None`).
    fn encoded(
        &self,
        bits: &[bool],
        uuid: &[u8; 16],
        only: Option<&[usize]>,
    ) -> Vec<(usize, Vec<u8>)> {
        let (_, _, blocks) = DataMapBlock::geometry(self.stripes);
        let per = DATA_MAP_BITS_PER_BLOCK as usize;
        let all: Vec<usize> = (0..blocks).collect();
        only.unwrap_or(&all)
            .iter()
            .map(|&index| {
                let first = index * per;
                let last = (first + per).min(bits.len());
                let block = DataMapBlock {
                    index,
                    bits: bits[first..last].to_vec(),
                };
                (index, block.encode(uuid, self.stripes))
            })
            .collect()
    }
}

impl Array {
    /// Whether `stripe` may hold data: always, unless the array keeps a data map whose bit
    /// for it is clear.
    pub(super) fn holds_data(&self, stripe: u64) -> bool {
        self.data_map.as_ref().is_none_or(|map| map.holds(stripe))
    }

    /// The first stripe of `from..end` that may hold data (`from` without a data map).
    pub(super) fn next_with_data(&self, from: u64, end: u64) -> u64 {
        self.data_map
            .as_ref()
            .map_or(from, |map| map.first_held(from, end))
    }

    /// Before `stripes` are written: their regions' bits are set, and the blocks holding
    /// them written to every member and flushed, before any data goes out.
    pub(super) fn mark_data(&self, stripes: RangeInclusive<u64>) {
        let Some(map) = &self.data_map else {
            return;
        };
        let first = (*stripes.start() / map.per_bit) as usize;
        let last = (*stripes.end() / map.per_bit) as usize;
        let all_set = |bits: &[bool], last: usize| bits[first..=last].iter().all(|b| *b);
        {
            let bits = map.bits.lock().unwrap_or_else(|e| e.into_inner());
            if all_set(&bits, last.min(bits.len().saturating_sub(1))) {
                return;
            }
        }
        // One writer of blocks at a time; the bits are set in memory only once their
        // blocks are durable, so nobody writes data into a region before that.
        let _storing = map.storing.lock().unwrap_or_else(|e| e.into_inner());
        let mut marked = map.bits.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let last = last.min(marked.len().saturating_sub(1));
        if all_set(&marked, last) {
            return;
        }
        marked[first..=last].fill(true);
        let per = DATA_MAP_BITS_PER_BLOCK as usize;
        let blocks: Vec<usize> = (first / per..=last / per).collect();
        let encoded = map.encoded(&marked, &self.uuid, Some(&blocks));
        self.store_data_map(&encoded);
        map.bits.lock().unwrap_or_else(|e| e.into_inner())[first..=last].fill(true);
    }

    /// Writes the whole map to every member (create).
    pub(super) fn store_whole_data_map(&self) {
        let Some(map) = &self.data_map else {
            return;
        };
        let _storing = map.storing.lock().unwrap_or_else(|e| e.into_inner());
        let bits = map.bits.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let encoded = map.encoded(&bits, &self.uuid, None);
        self.store_data_map(&encoded);
    }

    /// Writes `blocks` to every active member and disk being filled, then flushes them; a
    /// member that fails is failed.
    fn store_data_map(&self, blocks: &[(usize, Vec<u8>)]) {
        self.write_to_every_disk("data map", &|disk| {
            let mut buf = AlignedBuf::new(DATA_MAP_BLOCK);
            blocks.iter().try_for_each(|(index, bytes)| {
                buf.copy_from_slice(bytes);
                disk.write_at(&buf, DATA_MAP_OFFSET + (index * DATA_MAP_BLOCK) as u64)
            })
        });
    }
}
