//! The bitmap region: the write-intent bitmap (first 4 KiB), the flush stamp (next
//! 4 KiB) and the session map (`docs/format.md` §10, §16).

use super::*;

/// Size of the write-intent bitmap block (at `Regions::bitmap_offset` of every member).
pub const INTENT_SIZE: usize = 4096;
/// Magic number at byte 0 of the write-intent bitmap block.
pub const INTENT_MAGIC: [u8; 8] = *b"RKINTENT";
const INTENT_HEADER: usize = 64;
/// The most bits the write-intent bitmap block holds.
pub const INTENT_MAX_BITS: u64 = ((INTENT_SIZE - INTENT_HEADER - 4) * 8) as u64;

/// Byte offsets of the fields of the write-intent bitmap block.
pub mod intent_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// The bitmap's epoch (the superblock's `bitmap_epoch`), LE u64.
    pub const EPOCH: usize = 24;
    /// Stripes per bit, LE u64.
    pub const STRIPES_PER_BIT: usize = 32;
    /// Number of bits, LE u32.
    pub const BITS: usize = 40;
}

/// The write-intent bitmap (format minor 1): one bit per region of `stripes_per_bit`
/// stripes; a set bit says stripes of that region may be being written, so after an
/// unclean stop only those regions need a resync.
///
/// One [`INTENT_SIZE`]-byte block at the bitmap region's start, the same on every member:
/// magic `RKINTENT` (0..8), array UUID (8..24), epoch (24..32, LE u64; must equal the
/// superblock's `bitmap_epoch`), stripes per bit (32..40, LE u64), bit count (40..44, LE
/// u32), zeros to 64, the bits from 64 (bit i is bit `i % 8` of byte `64 + i / 8`), zeros,
/// and the CRC-32 of bytes 0..4092 in the last four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentBitmap {
    /// Its epoch.
    pub epoch: u64,
    /// Stripes covered by one bit.
    pub stripes_per_bit: u64,
    /// The bits, one per region.
    pub bits: Vec<bool>,
}

impl IntentBitmap {
    /// The geometry of the bitmap for `stripes` stripes: (stripes per bit, bit count).
    pub fn geometry(stripes: u64) -> (u64, u64) {
        let per_bit = stripes.div_ceil(INTENT_MAX_BITS).max(1);
        (per_bit, stripes.div_ceil(per_bit))
    }

    /// Encodes the block for the array `array_uuid`.
    pub fn encode(&self, array_uuid: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0u8; INTENT_SIZE];
        put(&mut b, intent_at::MAGIC, &INTENT_MAGIC);
        put(&mut b, intent_at::ARRAY_UUID, array_uuid);
        put(&mut b, intent_at::EPOCH, &self.epoch.to_le_bytes());
        put(
            &mut b,
            intent_at::STRIPES_PER_BIT,
            &self.stripes_per_bit.to_le_bytes(),
        );
        put(
            &mut b,
            intent_at::BITS,
            &(self.bits.len() as u32).to_le_bytes(),
        );
        for (i, _) in self.bits.iter().enumerate().filter(|(_, set)| **set) {
            b[INTENT_HEADER + i / 8] |= 1 << (i % 8);
        }
        let crc = crc32fast::hash(&b[..INTENT_SIZE - 4]);
        put(&mut b, INTENT_SIZE - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes the block of array `array_uuid` with `stripes` stripes: `None` when it is not
    /// a valid bitmap of this array and geometry (untrusted input: every field is checked).
    pub fn decode(b: &[u8], array_uuid: &[u8; 16], stripes: u64) -> Option<IntentBitmap> {
        if b.len() < INTENT_SIZE
            || get::<8>(b, intent_at::MAGIC) != INTENT_MAGIC
            || get::<16>(b, intent_at::ARRAY_UUID) != *array_uuid
        {
            return None;
        }
        if get_u32(b, INTENT_SIZE - 4) != crc32fast::hash(&b[..INTENT_SIZE - 4]) {
            return None;
        }
        let (per_bit, count) = IntentBitmap::geometry(stripes);
        if get_u64(b, intent_at::STRIPES_PER_BIT) != per_bit
            || u64::from(get_u32(b, intent_at::BITS)) != count
        {
            return None;
        }
        let bits = (0..count as usize)
            .map(|i| b[INTENT_HEADER + i / 8] & (1 << (i % 8)) != 0)
            .collect();
        Some(IntentBitmap {
            epoch: get_u64(b, intent_at::EPOCH),
            stripes_per_bit: per_bit,
            bits,
        })
    }
}

/// Offset of the flush stamp block within the bitmap region (format minor 3).
pub const FLUSH_STAMP_START: u64 = 4096;
/// Size of the flush stamp block.
pub const FLUSH_STAMP_SIZE: usize = 4096;
/// Offsets of the two stamp copies in the block, each within one 512-byte sector.
pub const FLUSH_STAMP_COPIES: [usize; 2] = [0, 2048];
const FLUSH_STAMP_COPY: usize = 512;
/// Magic number of a flush stamp copy.
pub const FLUSH_STAMP_MAGIC: [u8; 8] = *b"RKSTAMP1";

/// Byte offsets of the fields of a flush stamp copy.
pub mod stamp_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// The owning member's UUID, 16 bytes.
    pub const MEMBER_UUID: usize = 24;
    /// The session nonce it was written under, LE u64.
    pub const SESSION_NONCE: usize = 40;
    /// The superblock event it was written under, LE u64.
    pub const EVENT: usize = 48;
    /// The last flush begun, LE u64.
    pub const BEGUN: usize = 56;
    /// The last flush complete on every member, LE u64.
    pub const DONE: usize = 64;
}

/// The flush stamp (format minor 3; arrays without a journal): which flushes of the
/// current superblock update a member went through. Every `Array::flush` is two rounds:
/// first every member gets `begun = g` (with `done = g − 1`) and is flushed with its data,
/// then every member gets `done = g` and is flushed again, and only then does the flush
/// return. A member whose `begun` is below the highest `done` any member holds missed a
/// flush that completed on every member — it went back in time — while after any crash
/// every member holds at least the `begun` of the last flush that completed.
///
/// The block holds two copies, at bytes 0 and 2048; stamp writes alternate between them
/// and the other copy keeps the previous stamp, so a torn write leaves the one before it.
/// A copy: magic `RKSTAMP1` (0..8), array UUID (8..24), member UUID (24..40), session
/// nonce (40..48), event (48..56: the superblock event it was written under), begun
/// (56..64), done (64..72), zeros, and the CRC-32 of its bytes 0..508 at 508..512; LE
/// integers. The rest of the block is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushStamp {
    /// The session nonce of the superblocks it was written under.
    pub session_nonce: u64,
    /// The superblock event it was written under (counts restart with each update).
    pub event: u64,
    /// The last flush begun on this member.
    pub begun: u64,
    /// The last flush known complete on every member.
    pub done: u64,
}

impl FlushStamp {
    fn encode_copy(&self, b: &mut [u8], array_uuid: &[u8; 16], member_uuid: &[u8; 16]) {
        b.fill(0);
        put(b, stamp_at::MAGIC, &FLUSH_STAMP_MAGIC);
        put(b, stamp_at::ARRAY_UUID, array_uuid);
        put(b, stamp_at::MEMBER_UUID, member_uuid);
        put(
            b,
            stamp_at::SESSION_NONCE,
            &self.session_nonce.to_le_bytes(),
        );
        put(b, stamp_at::EVENT, &self.event.to_le_bytes());
        put(b, stamp_at::BEGUN, &self.begun.to_le_bytes());
        put(b, stamp_at::DONE, &self.done.to_le_bytes());
        let crc = crc32fast::hash(&b[..FLUSH_STAMP_COPY - 4]);
        put(b, FLUSH_STAMP_COPY - 4, &crc.to_le_bytes());
    }

    fn decode_copy(b: &[u8], array_uuid: &[u8; 16], member_uuid: &[u8; 16]) -> Option<FlushStamp> {
        if get::<8>(b, stamp_at::MAGIC) != FLUSH_STAMP_MAGIC
            || get::<16>(b, stamp_at::ARRAY_UUID) != *array_uuid
            || get::<16>(b, stamp_at::MEMBER_UUID) != *member_uuid
            || get_u32(b, FLUSH_STAMP_COPY - 4) != crc32fast::hash(&b[..FLUSH_STAMP_COPY - 4])
        {
            return None;
        }
        Some(FlushStamp {
            session_nonce: get_u64(b, stamp_at::SESSION_NONCE),
            event: get_u64(b, stamp_at::EVENT),
            begun: get_u64(b, stamp_at::BEGUN),
            done: get_u64(b, stamp_at::DONE),
        })
    }

    /// Encodes the block for member `member_uuid` of array `array_uuid`: `self` in copy
    /// `copy`, `previous` (if any) in the other.
    pub fn encode(
        &self,
        previous: Option<&FlushStamp>,
        copy: usize,
        array_uuid: &[u8; 16],
        member_uuid: &[u8; 16],
    ) -> Vec<u8> {
        let mut b = vec![0u8; FLUSH_STAMP_SIZE];
        let at = FLUSH_STAMP_COPIES[copy % 2];
        self.encode_copy(&mut b[at..at + FLUSH_STAMP_COPY], array_uuid, member_uuid);
        if let Some(previous) = previous {
            let at = FLUSH_STAMP_COPIES[(copy + 1) % 2];
            previous.encode_copy(&mut b[at..at + FLUSH_STAMP_COPY], array_uuid, member_uuid);
        }
        b
    }

    /// Decodes the block: the newer valid copy of this member of this array, if any.
    pub fn decode(b: &[u8], array_uuid: &[u8; 16], member_uuid: &[u8; 16]) -> Option<FlushStamp> {
        if b.len() < FLUSH_STAMP_SIZE {
            return None;
        }
        FLUSH_STAMP_COPIES
            .iter()
            .filter_map(|&at| {
                FlushStamp::decode_copy(&b[at..at + FLUSH_STAMP_COPY], array_uuid, member_uuid)
            })
            .max_by_key(|s| (s.event, s.begun, s.done))
    }
}

/// Offset of the session map within the bitmap region (format minor 3).
pub const SESSION_MAP_START: u64 = 8192;
/// Blocks of the session map.
pub const SESSION_MAP_BLOCKS: usize = 14;
/// Size of one session-map block.
pub const SESSION_MAP_BLOCK: usize = 4096;
/// Magic number at byte 0 of every session-map block.
pub const SESSION_MAP_MAGIC: [u8; 8] = *b"RKSESMAP";
const SESSION_MAP_HEADER: usize = 64;
/// Regions per session-map block.
pub const SESSION_MAP_PER_BLOCK: usize = (SESSION_MAP_BLOCK - SESSION_MAP_HEADER - 8) / 8;
/// The most regions the session map holds.
pub const SESSION_MAP_MAX_REGIONS: u64 = (SESSION_MAP_BLOCKS * SESSION_MAP_PER_BLOCK) as u64;

/// Byte offsets of the fields of a session map block.
pub mod map_at {
    /// Magic number, 8 bytes.
    pub const MAGIC: usize = 0;
    /// The array's UUID, 16 bytes.
    pub const ARRAY_UUID: usize = 8;
    /// Stripes per region, LE u64.
    pub const STRIPES_PER_REGION: usize = 24;
    /// Regions in the whole map, LE u32.
    pub const REGIONS: usize = 32;
    /// The block's index in the map, LE u32.
    pub const INDEX: usize = 36;
}

/// One block of the session map (format minor 3): for each region of `stripes_per_region`
/// whole stripes, the start event of the latest writing session that wrote it (0: none
/// since the superblock's `map_since`). A member that may have missed the writes of the
/// sessions that started at event `since` or later is brought back by resynchronising the
/// regions whose entry is at least `since`.
///
/// The map is [`SESSION_MAP_BLOCKS`] blocks of 4096 bytes from `bitmap_offset +`
/// [`SESSION_MAP_START`], the same on every member. Block i: magic `RKSESMAP` (0..8), array
/// UUID (8..24), stripes per region (24..32, LE u64), region count (32..36, LE u32), block
/// index i (36..40, LE u32), zeros to 64, then the entries of regions
/// `i × 503 .. i × 503 + 503` (LE u64 each, from 64; past the region count zero), zeros,
/// and the CRC-32 of bytes 0..4092 in the last four.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMapBlock {
    /// The block's index (0 .. [`SESSION_MAP_BLOCKS`]).
    pub index: usize,
    /// Stripes per region.
    pub stripes_per_region: u64,
    /// Regions in the whole map.
    pub regions: u64,
    /// This block's entries: regions `index × 503 ..`, at most 503.
    pub entries: Vec<u64>,
}

impl SessionMapBlock {
    /// The geometry of the map for `stripes` stripes: (stripes per region, region count).
    pub fn geometry(stripes: u64) -> (u64, u64) {
        let per_region = stripes.div_ceil(SESSION_MAP_MAX_REGIONS).max(1);
        (per_region, stripes.div_ceil(per_region))
    }

    /// Blocks used by a map of `regions` regions.
    pub fn blocks(regions: u64) -> usize {
        (regions as usize).div_ceil(SESSION_MAP_PER_BLOCK)
    }

    /// Whether a member with these regions has room for the session map (every v1 plan has).
    pub fn fits(regions: &Regions) -> bool {
        regions.bitmap_size >= SESSION_MAP_START + (SESSION_MAP_BLOCKS * SESSION_MAP_BLOCK) as u64
    }

    /// Encodes the block for array `array_uuid`.
    pub fn encode(&self, array_uuid: &[u8; 16]) -> Vec<u8> {
        let mut b = vec![0u8; SESSION_MAP_BLOCK];
        put(&mut b, map_at::MAGIC, &SESSION_MAP_MAGIC);
        put(&mut b, map_at::ARRAY_UUID, array_uuid);
        put(
            &mut b,
            map_at::STRIPES_PER_REGION,
            &self.stripes_per_region.to_le_bytes(),
        );
        put(
            &mut b,
            map_at::REGIONS,
            &(self.regions as u32).to_le_bytes(),
        );
        put(&mut b, map_at::INDEX, &(self.index as u32).to_le_bytes());
        for (i, entry) in self.entries.iter().take(SESSION_MAP_PER_BLOCK).enumerate() {
            put(&mut b, SESSION_MAP_HEADER + 8 * i, &entry.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..SESSION_MAP_BLOCK - 4]);
        put(&mut b, SESSION_MAP_BLOCK - 4, &crc.to_le_bytes());
        b
    }

    /// Decodes block `index` of the map of array `array_uuid` with `stripes` stripes: `None`
    /// unless it is a valid block of this array, geometry and index (untrusted input).
    pub fn decode(
        b: &[u8],
        array_uuid: &[u8; 16],
        stripes: u64,
        index: usize,
    ) -> Option<SessionMapBlock> {
        if b.len() < SESSION_MAP_BLOCK
            || get::<8>(b, map_at::MAGIC) != SESSION_MAP_MAGIC
            || get::<16>(b, map_at::ARRAY_UUID) != *array_uuid
            || get_u32(b, SESSION_MAP_BLOCK - 4) != crc32fast::hash(&b[..SESSION_MAP_BLOCK - 4])
        {
            return None;
        }
        let (per_region, regions) = SessionMapBlock::geometry(stripes);
        if get_u64(b, map_at::STRIPES_PER_REGION) != per_region
            || u64::from(get_u32(b, map_at::REGIONS)) != regions
            || get_u32(b, map_at::INDEX) as usize != index
            || index >= SessionMapBlock::blocks(regions)
        {
            return None;
        }
        let first = index * SESSION_MAP_PER_BLOCK;
        let count = (regions as usize - first).min(SESSION_MAP_PER_BLOCK);
        Some(SessionMapBlock {
            index,
            stripes_per_region: per_region,
            regions,
            entries: (0..count)
                .map(|i| get_u64(b, SESSION_MAP_HEADER + 8 * i))
                .collect(),
        })
    }
}
