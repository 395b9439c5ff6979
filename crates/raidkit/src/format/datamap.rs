//! The data map (format minor 4, `docs/format.md` §20): which regions of stripes were
//! written since create, so that rebuilds and scrubs skip the regions that hold nothing.

use super::*;

/// Offset of the data map on every member (in the area minor 3 left unused).
pub const DATA_MAP_OFFSET: u64 = 192 << 10;
/// Blocks of the data map at most.
pub const DATA_MAP_BLOCKS: usize = 128;
/// Bytes per data-map block.
pub const DATA_MAP_BLOCK: usize = 4096;
/// Magic number at byte 0 of every data-map block.
pub const DATA_MAP_MAGIC: [u8; 8] = *b"RKDATMAP";
const DATA_MAP_HEADER: usize = 64;
/// Bits per data-map block.
pub const DATA_MAP_BITS_PER_BLOCK: u64 = ((DATA_MAP_BLOCK - DATA_MAP_HEADER - 4) * 8) as u64;
/// Stripes per bit at least, so that a first pass of writes costs a map update (a flush
/// of every member) only every 16 stripes — 32 MiB of a 4 + 2 array with 512 KiB chunks.
pub const DATA_MAP_MIN_STRIPES_PER_BIT: u64 = 16;

/// Flag bit 3 (format minor 4): the array keeps a data map, and every region whose bit is
/// clear holds zeros with zero checksum entries on every member. Set at create only when
/// the array starts as zeros; trusted only in a superblock of minor 4 or later.
pub const FLAG_DATA_MAP: u32 = 8;

/// Byte offsets of the fields of a data-map block.
pub mod data_map_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// Stripes per bit, LE u64.
    pub const STRIPES_PER_BIT: usize = 24;
    /// Bits in the whole map, LE u64.
    pub const BITS: usize = 32;
    /// This block's index, LE u32.
    pub const INDEX: usize = 40;
}

/// One block of the data map: bits `index × DATA_MAP_BITS_PER_BLOCK` onwards; a set bit
/// says its region of `stripes_per_bit` stripes may hold data.
///
/// Magic `RKDATMAP` (0..8), array UUID (8..24), stripes per bit (24..32, LE u64), bits in
/// the whole map (32..40, LE u64), block index (40..44, LE u32), zeros to 64, the bits from
/// 64 (bit i of the block is bit `i % 8` of byte `64 + i / 8`), zeros, and the CRC-32 of
/// bytes 0..4092 in the last four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMapBlock {
    /// The block's index.
    pub index: usize,
    /// The bits it holds (at most [`DATA_MAP_BITS_PER_BLOCK`]).
    pub bits: Vec<bool>,
}

impl DataMapBlock {
    /// The geometry of the map for `stripes` stripes: (stripes per bit, bit count, blocks).
    pub fn geometry(stripes: u64) -> (u64, u64, usize) {
        let capacity = DATA_MAP_BLOCKS as u64 * DATA_MAP_BITS_PER_BLOCK;
        let per_bit = stripes.div_ceil(capacity).max(DATA_MAP_MIN_STRIPES_PER_BIT);
        let bits = stripes.div_ceil(per_bit);
        (
            per_bit,
            bits,
            bits.div_ceil(DATA_MAP_BITS_PER_BLOCK) as usize,
        )
    }

    /// Encodes the block for the array `array_uuid` of `stripes` stripes.
    pub fn encode(&self, array_uuid: &[u8; 16], stripes: u64) -> Vec<u8> {
        let (per_bit, bits, _) = DataMapBlock::geometry(stripes);
        let mut b = vec![0u8; DATA_MAP_BLOCK];
        put(&mut b, data_map_at::MAGIC, &DATA_MAP_MAGIC);
        put(&mut b, data_map_at::ARRAY_UUID, array_uuid);
        put(&mut b, data_map_at::STRIPES_PER_BIT, &per_bit.to_le_bytes());
        put(&mut b, data_map_at::BITS, &bits.to_le_bytes());
        put(
            &mut b,
            data_map_at::INDEX,
            &(self.index as u32).to_le_bytes(),
        );
        for (i, bit) in self.bits.iter().enumerate() {
            if *bit {
                b[DATA_MAP_HEADER + i / 8] |= 1 << (i % 8);
            }
        }
        let crc = crc32fast::hash(&b[..DATA_MAP_BLOCK - 4]);
        put(&mut b, DATA_MAP_BLOCK - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes block `index` of the map of the array `array_uuid` of `stripes` stripes;
    /// `None` unless magic, UUID, geometry, index and CRC all agree.
    pub fn decode(
        b: &[u8],
        array_uuid: &[u8; 16],
        stripes: u64,
        index: usize,
    ) -> Option<DataMapBlock> {
        if b.len() < DATA_MAP_BLOCK
            || get::<8>(b, data_map_at::MAGIC) != DATA_MAP_MAGIC
            || get::<16>(b, data_map_at::ARRAY_UUID) != *array_uuid
            || get_u32(b, DATA_MAP_BLOCK - 4) != crc32fast::hash(&b[..DATA_MAP_BLOCK - 4])
        {
            return None;
        }
        let (per_bit, bits, blocks) = DataMapBlock::geometry(stripes);
        if get_u64(b, data_map_at::STRIPES_PER_BIT) != per_bit
            || get_u64(b, data_map_at::BITS) != bits
            || get_u32(b, data_map_at::INDEX) as usize != index
            || index >= blocks
        {
            return None;
        }
        let first = index as u64 * DATA_MAP_BITS_PER_BLOCK;
        let count = (bits - first).min(DATA_MAP_BITS_PER_BLOCK) as usize;
        Some(DataMapBlock {
            index,
            bits: (0..count)
                .map(|i| b[DATA_MAP_HEADER + i / 8] & (1 << (i % 8)) != 0)
                .collect(),
        })
    }
}
