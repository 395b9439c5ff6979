//! The journal's header block and record part headers (`docs/format.md` §17).

use super::*;

/// Size of the journal's header block (the first block of a member's journal region) and
/// of each part header in it.
pub const JOURNAL_BLOCK: usize = 4096;
/// Magic number of the journal header block.
pub const JOURNAL_MAGIC: [u8; 8] = *b"RKJOURNL";
/// Magic number of a journal part header.
pub const PART_MAGIC: [u8; 8] = *b"RKJPART1";
/// The widest stripe a part header can list (bits of its position set).
pub const PART_MAX_WIDTH: usize = 256;

/// Byte offsets of the fields of the journal header block.
pub mod header_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// The owning member's UUID, 16 bytes.
    pub const MEMBER_UUID: usize = 24;
    /// Records below this sequence number are applied and durable, LE u64.
    pub const TAIL: usize = 40;
    /// The checkpoint's nonce, LE u64.
    pub const NONCE: usize = 48;
    /// Checkpoints written before this one, LE u64.
    pub const CHECKPOINTS: usize = 56;
}

/// The block at the start of a member's journal region (format minor 2): records with a
/// sequence number below `tail` are applied in place and durable; parts are valid only
/// with this `nonce`.
///
/// Magic `RKJOURNL` (0..8), array UUID (8..24), member UUID (24..40), tail (40..48, LE
/// u64), nonce (48..56, LE u64), checkpoint count (56..64, LE u64; minor 3, zero before),
/// zeros, and the CRC-32 of bytes 0..4092 in the last four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    /// The first sequence number that may still need replay.
    pub tail: u64,
    /// A random number chosen at each checkpoint; parts written after it carry it.
    pub nonce: u64,
    /// Checkpoints written before this one (minor 3): of two headers with the same tail,
    /// the one with the higher count is the newer.
    pub checkpoints: u64,
}

/// Journal sequence numbers, tails and checkpoint counts from this on are refused as
/// damaged by the decoders: counting up from one, a journal never gets near them, and
/// refusing them keeps every `+ 1` on a decoded value from overflowing.
pub const JOURNAL_SEQ_LIMIT: u64 = 1 << 62;

impl JournalHeader {
    /// Encodes the block for member `member_uuid` of array `array_uuid`.
    pub fn encode(&self, array_uuid: &[u8; 16], member_uuid: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0u8; JOURNAL_BLOCK];
        put(&mut b, header_at::MAGIC, &JOURNAL_MAGIC);
        put(&mut b, header_at::ARRAY_UUID, array_uuid);
        put(&mut b, header_at::MEMBER_UUID, member_uuid);
        put(&mut b, header_at::TAIL, &self.tail.to_le_bytes());
        put(&mut b, header_at::NONCE, &self.nonce.to_le_bytes());
        put(
            &mut b,
            header_at::CHECKPOINTS,
            &self.checkpoints.to_le_bytes(),
        );
        let crc = crc32fast::hash(&b[..JOURNAL_BLOCK - 4]);
        put(&mut b, JOURNAL_BLOCK - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes the block: `None` unless it is a valid header of this member of this array,
    /// with a tail and a checkpoint count below [`JOURNAL_SEQ_LIMIT`] (a header beyond it
    /// is damaged, whatever its CRC says).
    pub fn decode(
        b: &[u8],
        array_uuid: &[u8; 16],
        member_uuid: &[u8; 16],
    ) -> Option<JournalHeader> {
        if b.len() < JOURNAL_BLOCK
            || get::<8>(b, header_at::MAGIC) != JOURNAL_MAGIC
            || get::<16>(b, header_at::ARRAY_UUID) != *array_uuid
            || get::<16>(b, header_at::MEMBER_UUID) != *member_uuid
            || get_u32(b, JOURNAL_BLOCK - 4) != crc32fast::hash(&b[..JOURNAL_BLOCK - 4])
        {
            return None;
        }
        let header = JournalHeader {
            tail: get_u64(b, header_at::TAIL),
            nonce: get_u64(b, header_at::NONCE),
            checkpoints: get_u64(b, header_at::CHECKPOINTS),
        };
        (header.tail < JOURNAL_SEQ_LIMIT && header.checkpoints < JOURNAL_SEQ_LIMIT)
            .then_some(header)
    }

    /// The order of headers: the higher (tail, checkpoint count) is the newer.
    pub fn age(&self) -> (u64, u64) {
        (self.tail, self.checkpoints)
    }
}

/// Byte offsets of the fields of a record part header.
pub mod part_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// The owning member's UUID, 16 bytes.
    pub const MEMBER_UUID: usize = 24;
    /// The checkpoint's nonce, LE u64.
    pub const NONCE: usize = 40;
    /// The record's sequence number, LE u64.
    pub const SEQ: usize = 48;
    /// The stripe, LE u64.
    pub const STRIPE: usize = 56;
    /// The first 4 KiB row within the chunk, LE u64.
    pub const FIRST_ROW: usize = 64;
    /// Rows in the record, LE u32.
    pub const ROWS: usize = 72;
    /// This part's position in the stripe, LE u16.
    pub const POSITION: usize = 76;
    /// The stripe's width, LE u16.
    pub const WIDTH: usize = 78;
    /// CRC-32 of the part's data, LE u32.
    pub const DATA_CRC: usize = 80;
    /// Bit set of the positions that received a part, 32 bytes.
    pub const POSITIONS: usize = 96;
}

/// The header of one part of a journal record (format minor 2): the new contents of rows
/// `first_row .. first_row + rows` of one position of one stripe, which follow it in the
/// journal (`rows` × 4 KiB).
///
/// Magic `RKJPART1` (0..8), array UUID (8..24), member UUID (24..40), nonce (40..48), sequence
/// number (48..56), stripe (56..64), first row (64..72), rows (72..76, LE u32), position
/// (76..78, LE u16), width (78..80, LE u16), CRC-32 of the data (80..84), zeros to 96, the
/// positions of the record that have a part (96..128: bit p is bit `p % 8` of byte
/// `96 + p / 8`), zeros, and the CRC-32 of bytes 0..4092 in the last four. All integers are
/// little-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    /// The checkpoint nonce it was written under.
    pub nonce: u64,
    /// The record's sequence number.
    pub seq: u64,
    /// The stripe.
    pub stripe: u64,
    /// The first 4 KiB row within the chunk.
    pub first_row: u64,
    /// How many rows.
    pub rows: u32,
    /// This part's position in the stripe.
    pub position: u16,
    /// The stripe's width (members).
    pub width: u16,
    /// CRC-32 of the part's data.
    pub data_crc: u32,
    /// Positions of the record that were given a part (each on its own member).
    pub positions: Vec<bool>,
}

impl PartHeader {
    /// Encodes the header for member `member_uuid` of array `array_uuid`.
    pub fn encode(&self, array_uuid: &[u8; 16], member_uuid: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0u8; JOURNAL_BLOCK];
        put(&mut b, part_at::MAGIC, &PART_MAGIC);
        put(&mut b, part_at::ARRAY_UUID, array_uuid);
        put(&mut b, part_at::MEMBER_UUID, member_uuid);
        put(&mut b, part_at::NONCE, &self.nonce.to_le_bytes());
        put(&mut b, part_at::SEQ, &self.seq.to_le_bytes());
        put(&mut b, part_at::STRIPE, &self.stripe.to_le_bytes());
        put(&mut b, part_at::FIRST_ROW, &self.first_row.to_le_bytes());
        put(&mut b, part_at::ROWS, &self.rows.to_le_bytes());
        put(&mut b, part_at::POSITION, &self.position.to_le_bytes());
        put(&mut b, part_at::WIDTH, &self.width.to_le_bytes());
        put(&mut b, part_at::DATA_CRC, &self.data_crc.to_le_bytes());
        for (p, _) in self.positions.iter().enumerate().filter(|(_, set)| **set) {
            b[part_at::POSITIONS + p / 8] |= 1 << (p % 8);
        }
        let crc = crc32fast::hash(&b[..JOURNAL_BLOCK - 4]);
        put(&mut b, JOURNAL_BLOCK - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes a part header of member `member_uuid` of array `array_uuid`: `None` unless
    /// the magic, UUIDs and CRC match and the fields are self-consistent (width at most
    /// [`PART_MAX_WIDTH`], position inside it and listed, at least one row). Whether the
    /// stripe and rows fit the array is the reader's check.
    pub fn decode(b: &[u8], array_uuid: &[u8; 16], member_uuid: &[u8; 16]) -> Option<PartHeader> {
        if b.len() < JOURNAL_BLOCK
            || get::<8>(b, part_at::MAGIC) != PART_MAGIC
            || get::<16>(b, part_at::ARRAY_UUID) != *array_uuid
            || get::<16>(b, part_at::MEMBER_UUID) != *member_uuid
            || get_u32(b, JOURNAL_BLOCK - 4) != crc32fast::hash(&b[..JOURNAL_BLOCK - 4])
        {
            return None;
        }
        let width = get_u16(b, part_at::WIDTH);
        let position = get_u16(b, part_at::POSITION);
        let rows = get_u32(b, part_at::ROWS);
        if width == 0
            || usize::from(width) > PART_MAX_WIDTH
            || position >= width
            || rows == 0
            || get_u64(b, part_at::SEQ) >= JOURNAL_SEQ_LIMIT
        {
            return None;
        }
        let positions: Vec<bool> = (0..usize::from(width))
            .map(|p| b[part_at::POSITIONS + p / 8] & (1 << (p % 8)) != 0)
            .collect();
        if !positions[usize::from(position)] {
            return None;
        }
        Some(PartHeader {
            nonce: get_u64(b, part_at::NONCE),
            seq: get_u64(b, part_at::SEQ),
            stripe: get_u64(b, part_at::STRIPE),
            first_row: get_u64(b, part_at::FIRST_ROW),
            rows,
            position,
            width,
            data_crc: get_u32(b, part_at::DATA_CRC),
            positions,
        })
    }

    /// Bytes of data that follow the header.
    pub fn data_len(&self) -> u64 {
        u64::from(self.rows) * CSUM_BLOCK
    }
}
