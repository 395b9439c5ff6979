//! Where each region of a member lies (`docs/format.md` §2).

use super::*;

/// Where each region of a member lies, in bytes from the start of the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regions {
    /// Write-intent bitmap.
    pub bitmap_offset: u64,
    /// Its size.
    pub bitmap_size: u64,
    /// Journal.
    pub journal_offset: u64,
    /// Its size.
    pub journal_size: u64,
    /// Checksum table.
    pub csum_offset: u64,
    /// Its size.
    pub csum_size: u64,
    /// Data region (a multiple of 1 MiB).
    pub data_offset: u64,
    /// Its size: a whole number of chunks, the same on every member.
    pub data_size: u64,
}

fn align_up(value: u64, to: u64) -> Option<u64> {
    value.checked_add(to - 1).map(|v| v / to * to)
}

impl Regions {
    /// The journal size v1 reserves for a member of `member_size` bytes: 1/64 of it,
    /// rounded down to whole MiB, from 1 MiB to 64 MiB.
    pub fn journal_size_for(member_size: u64) -> u64 {
        (member_size / 64 / MIB * MIB).clamp(MIB, 64 * MIB)
    }

    /// Plans the regions of a member of `member_size` bytes with `chunk`-byte chunks.
    pub fn plan(member_size: u64, chunk: u64) -> Result<Regions, FormatError> {
        let journal_size = Regions::journal_size_for(member_size);
        let csum_offset = JOURNAL_OFFSET + journal_size;
        // The smallest member: one table page, the data region's alignment, one chunk.
        let too_small = || FormatError::TooSmall {
            size: member_size,
            needed: (csum_offset + CSUM_BLOCK).div_ceil(DATA_ALIGN) * DATA_ALIGN + chunk,
        };
        if chunk == 0 || !chunk.is_multiple_of(CSUM_BLOCK) {
            return Err(FormatError::Invalid {
                field: "chunk_size",
                reason: format!("{chunk} is not a multiple of {CSUM_BLOCK}"),
            });
        }
        let room = member_size.checked_sub(csum_offset).ok_or_else(too_small)?;
        // The table for `room` bytes is at least as large as the final one.
        let table_max =
            align_up(room.div_ceil(CSUM_BLOCK) * CSUM_ENTRY, CSUM_BLOCK).ok_or_else(too_small)?;
        let data_offset = align_up(csum_offset + table_max, DATA_ALIGN).ok_or_else(too_small)?;
        let data_size = member_size.saturating_sub(data_offset) / chunk * chunk;
        if data_size == 0 {
            return Err(too_small());
        }
        let csum_size =
            align_up(data_size / CSUM_BLOCK * CSUM_ENTRY, CSUM_BLOCK).ok_or_else(too_small)?;
        Ok(Regions {
            bitmap_offset: BITMAP_OFFSET,
            bitmap_size: BITMAP_SIZE,
            journal_offset: JOURNAL_OFFSET,
            journal_size,
            csum_offset,
            csum_size,
            data_offset,
            data_size,
        })
    }

    /// Checks that the regions are in order, aligned, do not overlap and fit in
    /// `member_size` bytes (untrusted input: every sum is checked).
    pub fn validate(&self, member_size: u64) -> Result<(), FormatError> {
        let invalid = |field: &'static str, reason: String| FormatError::Invalid { field, reason };
        let spans = [
            ("bitmap", self.bitmap_offset, self.bitmap_size),
            ("journal", self.journal_offset, self.journal_size),
            ("checksum table", self.csum_offset, self.csum_size),
            ("data", self.data_offset, self.data_size),
        ];
        let mut previous_end = BADLOG_OFFSET + BADLOG_SIZE as u64;
        for (name, offset, size) in spans {
            if !offset.is_multiple_of(CSUM_BLOCK) || !size.is_multiple_of(CSUM_BLOCK) {
                return Err(invalid(
                    name,
                    format!("{offset}+{size} is not 4 KiB aligned"),
                ));
            }
            if offset < previous_end {
                return Err(invalid(
                    name,
                    format!("starts at {offset}, before the previous region ends ({previous_end})"),
                ));
            }
            previous_end = offset
                .checked_add(size)
                .ok_or_else(|| invalid(name, "offset + size overflows".to_string()))?;
        }
        if previous_end > member_size {
            return Err(invalid(
                "data",
                format!("ends at {previous_end}, past the member's end ({member_size})"),
            ));
        }
        if !self.data_offset.is_multiple_of(DATA_ALIGN) {
            return Err(invalid("data", "offset is not 1 MiB aligned".to_string()));
        }
        let needed = (self.data_size / CSUM_BLOCK * CSUM_ENTRY).div_ceil(CSUM_BLOCK) * CSUM_BLOCK;
        if self.csum_size != needed {
            return Err(invalid(
                "checksum table",
                format!(
                    "{} bytes cannot cover {} data bytes",
                    self.csum_size, self.data_size
                ),
            ));
        }
        Ok(())
    }
}
