//! The bad-block log (`docs/format.md` §11).

use super::*;

/// Byte offsets of the fields of the bad-block log.
pub mod badlog_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The owning member's UUID, 16 bytes.
    pub const MEMBER_UUID: usize = 8;
    /// Number of ranges, LE u32.
    pub const COUNT: usize = 24;
}

/// A member's bad-block log (format minor 1): ranges of its data-region blocks whose
/// contents are known lost — written by a rebuild that found a row it could not recover.
/// Reads of them fail; a write that replaces a whole listed block takes it off the list.
///
/// [`BADLOG_SIZE`] bytes at [`BADLOG_OFFSET`]: magic `RKBADLOG` (0..8), the owner's member
/// UUID (8..24), the range count (24..28, LE u32), zeros (28..32), then per range the
/// first block and the block count (two LE u64), and the CRC-32 of every other byte in the
/// last four. A log whose magic or member UUID does not match is no log (an empty list): a
/// disk keeps old bytes from an earlier life, and they must not count for a new member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BadLog {
    /// Sorted, disjoint, non-adjacent ranges: (first block, block count), blocks of
    /// [`CSUM_BLOCK`] bytes counted from the data region's start.
    pub ranges: Vec<(u64, u64)>,
}

impl BadLog {
    /// Adds `count` blocks from `first`, merging with neighbours. False when the log has no
    /// room for another range (it is unchanged then).
    pub fn add(&mut self, first: u64, count: u64) -> bool {
        if count == 0 {
            return true;
        }
        let end = first.saturating_add(count);
        let mut merged = (first, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, n) in &self.ranges {
            let e = a + n;
            if e < merged.0 || a > merged.1 {
                kept.push((a, n));
            } else {
                merged = (merged.0.min(a), merged.1.max(e));
            }
        }
        kept.push((merged.0, merged.1 - merged.0));
        kept.sort_unstable();
        if kept.len() > BADLOG_MAX {
            return false;
        }
        self.ranges = kept;
        true
    }

    /// Takes blocks `first..first + count` off the list; true when anything changed.
    pub fn remove(&mut self, first: u64, count: u64) -> bool {
        let end = first.saturating_add(count);
        let mut changed = false;
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, n) in &self.ranges {
            let e = a + n;
            if e <= first || a >= end {
                kept.push((a, n));
                continue;
            }
            changed = true;
            if a < first {
                kept.push((a, first - a));
            }
            if e > end {
                kept.push((end, e - end));
            }
        }
        self.ranges = kept;
        changed
    }

    /// Whether any block of `first..first + count` is listed.
    pub fn overlaps(&self, first: u64, count: u64) -> bool {
        let end = first.saturating_add(count);
        self.ranges.iter().any(|&(a, n)| a < end && first < a + n)
    }

    /// Blocks listed.
    pub fn blocks(&self) -> u64 {
        self.ranges.iter().map(|r| r.1).sum()
    }

    /// Encodes the log of member `uuid`: [`BADLOG_SIZE`] bytes.
    pub fn encode(&self, uuid: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0u8; BADLOG_SIZE];
        put(&mut b, badlog_at::MAGIC, &BADLOG_MAGIC);
        put(&mut b, badlog_at::MEMBER_UUID, uuid);
        put(
            &mut b,
            badlog_at::COUNT,
            &(self.ranges.len() as u32).to_le_bytes(),
        );
        for (i, &(first, count)) in self.ranges.iter().take(BADLOG_MAX).enumerate() {
            let at = BADLOG_HEADER + i * 16;
            put(&mut b, at, &first.to_le_bytes());
            put(&mut b, at + 8, &count.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..BADLOG_SIZE - 4]);
        put(&mut b, BADLOG_SIZE - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes the log of member `uuid` whose data region has `blocks` blocks. No magic or
    /// another member's UUID: an empty log. A log that is ours but damaged or out of range
    /// is an error (untrusted input: every field is checked).
    pub fn decode(b: &[u8], uuid: &[u8; 16], blocks: u64) -> Result<BadLog, FormatError> {
        let invalid = |reason: String| FormatError::Invalid {
            field: "bad-block log",
            reason,
        };
        if b.len() < BADLOG_SIZE {
            return Err(invalid(format!(
                "{} bytes, expected {BADLOG_SIZE}",
                b.len()
            )));
        }
        let b = &b[..BADLOG_SIZE];
        if get::<8>(b, badlog_at::MAGIC) != BADLOG_MAGIC
            || get::<16>(b, badlog_at::MEMBER_UUID) != *uuid
        {
            return Ok(BadLog::default());
        }
        let stored = get_u32(b, BADLOG_SIZE - 4);
        let computed = crc32fast::hash(&b[..BADLOG_SIZE - 4]);
        if stored != computed {
            return Err(FormatError::BadChecksum { stored, computed });
        }
        let count = get_u32(b, badlog_at::COUNT) as usize;
        if count > BADLOG_MAX {
            return Err(invalid(format!("{count} ranges (at most {BADLOG_MAX})")));
        }
        let mut ranges = Vec::with_capacity(count);
        let mut previous_end = None;
        for i in 0..count {
            let at = BADLOG_HEADER + i * 16;
            let (first, n) = (get_u64(b, at), get_u64(b, at + 8));
            let end = first
                .checked_add(n)
                .filter(|&e| n > 0 && e <= blocks)
                .ok_or_else(|| {
                    invalid(format!("range {i}: {first}+{n} outside {blocks} blocks"))
                })?;
            if previous_end.is_some_and(|p| first <= p) {
                return Err(invalid(format!("range {i} is out of order")));
            }
            previous_end = Some(end);
            ranges.push((first, n));
        }
        Ok(BadLog { ranges })
    }
}
