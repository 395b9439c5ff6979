//! Checksum entries: one per 4 KiB block of the data region (`docs/format.md` §4, §7).

use super::*;

/// The checksum entry of one 4 KiB block: CRC-32 (IEEE, as `crc32fast`) of its bytes,
/// XOR a 32-bit mix of the member's role and the block's index in the data region, so a
/// block written to the wrong place or the wrong member does not verify.
pub fn checksum_entry(role: usize, block: u64, data: &[u8]) -> u32 {
    crc32fast::hash(data) ^ address_mix(role, block)
}

/// The address part of a checksum entry: SplitMix64's step on `role << 48 | block` (add
/// the golden-ratio increment, then the finaliser), low 32 bits.
pub fn address_mix(role: usize, block: u64) -> u32 {
    let mut z = ((role as u64) << 48 | block).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// Whether `data` (block `block` of the member with role `role`) matches the stored entry
/// `stored`: its checksum entry, or (format minor 4) 0 for a block of zeros. A table page
/// never written — a sparse or zeroed table region — therefore vouches for zeros and for
/// nothing else, so an array created over members that read as zeros needs no table
/// written.
pub fn entry_verifies(stored: u32, role: usize, block: u64, data: &[u8]) -> bool {
    stored == checksum_entry(role, block, data) || (stored == 0 && data.iter().all(|b| *b == 0))
}

/// CRC-32 of a 4 KiB block of zeros.
pub fn zero_block_crc() -> u32 {
    static ZERO: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ZERO.get_or_init(|| crc32fast::hash(&[0u8; CSUM_BLOCK as usize]))
}
