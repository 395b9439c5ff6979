//! On-disk format v1: the superblock and the region map. Every byte offset of the format
//! lives in this module, and `docs/format.md` describes the same bytes.
//!
//! Each member starts with two superblock copies ([`SB_SIZE`] bytes each, at
//! [`SB_OFFSETS`]). An update writes the copy `event mod 2`, so the other copy still holds
//! the previous state if the write is torn; [`crate::meta::read_superblock`] takes the valid copy with the
//! highest event counter. Every copy carries a CRC-32 of its other bytes.
//!
//! The regions of a member, in order: superblocks, a reserved area, the write-intent
//! bitmap, the journal, the checksum table (one little-endian `u32` per 4 KiB block of the
//! data region), then the data region, aligned to 1 MiB. Their offsets are computed once,
//! at create, by [`Regions::plan`] and stored in the superblock; later versions read them
//! from there, so changing the planning rule never moves an existing array's data.
//!
//! ```
//! use raidkit::format::{Regions, MIB};
//!
//! let regions = Regions::plan(64 * MIB, 512 << 10)?;
//! assert_eq!(regions.data_offset % MIB, 0);
//! assert!(regions.data_offset + regions.data_size <= 64 * MIB);
//! # Ok::<(), raidkit::format::FormatError>(())
//! ```
//!
//! The module is a folder of **pure codecs**: every record of the format with its named
//! byte offsets, its encoder and its checked decoder, and nothing else — no disk I/O, no
//! random numbers, no probing (those live in [`crate::meta`], [`crate::disk`] and the
//! array). On-disk bytes are untrusted input: every decoder checks its lengths, bounds and
//! CRC and returns a typed error or `None`, never panics.
//!
//! - [`regions`]: where each region of a member lies ([`Regions`]).
//! - [`superblock`]: the superblock and its member table ([`Superblock`], [`Slot`]).
//! - [`checksum`]: checksum entries of 4 KiB data blocks.
//! - [`badlog`]: the bad-block log ([`BadLog`]).
//! - [`bitmap`]: the bitmap region: write-intent bitmap, flush stamp, session map.
//! - [`journal`]: the journal header and the record part header.
//! - [`health`]: the health record (error counts, paths, last scrub and rebuild).

use crate::layout::LayoutError;

pub mod badlog;
pub mod bitmap;
pub mod checksum;
pub mod datamap;
pub mod health;
pub mod journal;
pub mod regions;
pub mod superblock;
#[cfg(test)]
mod tests;

pub use badlog::*;
pub use bitmap::*;
pub use checksum::*;
pub use datamap::*;
pub use health::*;
pub use journal::*;
pub use regions::*;
pub use superblock::*;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// The magic number at byte 0 of every superblock copy.
pub const MAGIC: [u8; 8] = *b"RAIDKIT\x01";
/// The format's major version: a reader refuses any other major.
pub const VERSION_MAJOR: u16 = 1;
/// The format's minor version: additions that older readers of the same major may ignore.
/// Minor 1 added the scrub checkpoint (header bytes 248..260) and the bad-block log; minor
/// 2 the write journal; minor 3 writing sessions (header bytes 272..296), members behind
/// (a faulty slot with a `since` event) and the session map ([`SessionMapBlock`]); minor 4
/// checksum entries of 0 that vouch for blocks of zeros ([`entry_verifies`]), so a member
/// that reads as zeros needs no table written at create.
pub const VERSION_MINOR: u16 = 4;
/// Bytes in one superblock copy.
pub const SB_SIZE: usize = 16 << 10;
/// Member offsets of the two superblock copies.
pub const SB_OFFSETS: [u64; 2] = [0, SB_SIZE as u64];
/// Bytes of the fixed header, before the member table.
pub const HEADER_SIZE: usize = 512;
/// Bytes per member-table slot.
pub const SLOT_SIZE: usize = 32;
/// The most member-table slots (members plus spares) a superblock holds.
pub const MAX_SLOTS: usize = (SB_SIZE - HEADER_SIZE - 4) / SLOT_SIZE;
/// Offset of a member's bad-block log (format minor 1): blocks of this member whose
/// contents are known lost (see [`BadLog`]).
pub const BADLOG_OFFSET: u64 = 32 << 10;
/// Size of the bad-block log.
pub const BADLOG_SIZE: usize = 16 << 10;
/// The most ranges the bad-block log holds.
pub const BADLOG_MAX: usize = (BADLOG_SIZE - BADLOG_HEADER - 4) / 16;
/// Magic number at byte 0 of the bad-block log.
pub const BADLOG_MAGIC: [u8; 8] = *b"RKBADLOG";
const BADLOG_HEADER: usize = 32;
/// Offset of the write-intent bitmap region.
pub const BITMAP_OFFSET: u64 = 64 << 10;
/// Size of the write-intent bitmap region.
pub const BITMAP_SIZE: u64 = 64 << 10;
/// Offset of the journal region.
pub const JOURNAL_OFFSET: u64 = MIB;
/// Bytes of data covered by one checksum entry (and the unit of verification).
pub const CSUM_BLOCK: u64 = 4096;
/// Bytes per checksum entry.
pub const CSUM_ENTRY: u64 = 4;
/// The data region is aligned to this.
pub const DATA_ALIGN: u64 = MIB;
/// The layout name stored for parity levels.
pub const LAYOUT_LEFT_SYMMETRIC: &str = "left-symmetric";
/// The layout name stored for mirrors.
pub const LAYOUT_MIRROR: &str = "mirror";
/// Checksum algorithm 1: CRC-32 (IEEE) of the block, XOR a 32-bit mix of role and block.
pub const CSUM_CRC32_ADDR: u32 = 1;

/// Errors decoding or planning the format. Decoding errors describe one superblock copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// No raidkit magic number.
    #[error("no raidkit superblock (bad magic)")]
    BadMagic,
    /// The CRC-32 does not match.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum {
        /// The CRC stored in the copy.
        stored: u32,
        /// The CRC of the copy's bytes.
        computed: u32,
    },
    /// A major version this build does not know.
    #[error(
        "superblock format version {major}.{minor} is not supported (this build reads {VERSION_MAJOR}.x)"
    )]
    UnknownVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// A field holds a value that no valid superblock has.
    #[error("superblock field {field} is invalid: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The member is too small for the format's regions and one chunk of data.
    #[error("member of {size} bytes is too small: at least {needed} bytes are needed")]
    TooSmall {
        /// The member's size.
        size: u64,
        /// The smallest size that works.
        needed: u64,
    },
}

fn get<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[offset..offset + N]);
    out
}
fn get_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(get(bytes, offset))
}
fn get_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(get(bytes, offset))
}
fn get_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(get(bytes, offset))
}
fn put(bytes: &mut [u8], offset: usize, value: &[u8]) {
    bytes[offset..offset + value.len()].copy_from_slice(value);
}

/// A UUID in the usual 8-4-4-4-12 hexadecimal form.
pub fn uuid_string(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
