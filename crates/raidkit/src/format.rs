//! On-disk format v1: the superblock and the region map. Every byte offset of the format
//! lives in this module, and `docs/format.md` describes the same bytes.
//!
//! Each member starts with two superblock copies ([`SB_SIZE`] bytes each, at
//! [`SB_OFFSETS`]). An update writes the copy `event mod 2`, so the other copy still holds
//! the previous state if the write is torn; [`read_superblock`] takes the valid copy with the
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

use std::fmt;

use crate::disk::{AlignedBuf, Disk, DiskError};
use crate::layout::{Layout, LayoutError, Level};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// The magic number at byte 0 of every superblock copy.
pub const MAGIC: [u8; 8] = *b"RAIDKIT\x01";
/// The format's major version: a reader refuses any other major.
pub const VERSION_MAJOR: u16 = 1;
/// The format's minor version: additions that older readers of the same major may ignore.
/// Minor 1 added the scrub checkpoint (header bytes 248..260) and the bad-block log; minor
/// 2 the write journal; minor 3 writing sessions (header bytes 272..296), members behind
/// (a faulty slot with a `since` event) and the session map ([`SessionMapBlock`]).
pub const VERSION_MINOR: u16 = 3;
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

// Header field offsets (bytes from the start of a copy). Pinned by tests and format.md.
const OFF_MAGIC: usize = 0;
const OFF_MAJOR: usize = 8;
const OFF_MINOR: usize = 10;
const OFF_SB_SIZE: usize = 12;
const OFF_ARRAY_UUID: usize = 16;
const OFF_MEMBER_UUID: usize = 32;
const OFF_ROLE: usize = 48;
const OFF_LEVEL: usize = 52;
const OFF_M: usize = 53;
const OFF_K: usize = 54;
const OFF_MEMBERS: usize = 56;
const OFF_SLOTS: usize = 58;
const OFF_FLAGS: usize = 60;
const OFF_CHUNK: usize = 64;
const OFF_LAYOUT: usize = 72;
const LAYOUT_LEN: usize = 32;
const OFF_EVENT: usize = 104;
const OFF_CTIME: usize = 112;
const OFF_UTIME: usize = 120;
const OFF_NAME: usize = 128;
const NAME_LEN: usize = 32;
const OFF_MEMBER_SIZE: usize = 160;
const OFF_DATA_OFFSET: usize = 168;
const OFF_DATA_SIZE: usize = 176;
const OFF_ARRAY_SIZE: usize = 184;
const OFF_BITMAP_OFFSET: usize = 192;
const OFF_BITMAP_SIZE: usize = 200;
const OFF_JOURNAL_OFFSET: usize = 208;
const OFF_JOURNAL_SIZE: usize = 216;
const OFF_CSUM_OFFSET: usize = 224;
const OFF_CSUM_SIZE: usize = 232;
const OFF_CSUM_BLOCK: usize = 240;
const OFF_CSUM_ALGO: usize = 244;
const OFF_SCRUB_POS: usize = 248;
const OFF_SCRUB_FLAGS: usize = 256;
const OFF_BITMAP_EPOCH: usize = 264;
const OFF_SESSION: usize = 272;
const OFF_SESSION_NONCE: usize = 280;
const OFF_MAP_SINCE: usize = 288;
const OFF_JOURNAL_CHECKPOINTS: usize = 296;
const OFF_CRC: usize = SB_SIZE - 4;

// Slot field offsets (bytes from the start of a slot).
const SLOT_UUID: usize = 0;
const SLOT_STATE: usize = 16;
const SLOT_CHECKPOINT: usize = 24;

/// Flag bit 0: the array was written since it was last closed cleanly.
pub const FLAG_DIRTY: u32 = 1;
/// Flag bit 1: the array keeps a write-intent bitmap (format minor 1, [`IntentBitmap`]).
pub const FLAG_BITMAP: u32 = 2;
/// Flag bit 2: the array keeps a write journal (format minor 2, [`JournalHeader`],
/// [`PartHeader`]). Set only together with a minor of at least 2 by the writer.
pub const FLAG_JOURNAL: u32 = 4;
/// Scrub flag bit 0: a scrub was running and `scrub_position` is where it got to.
const SCRUB_RUNNING: u32 = 1;
/// Scrub flag bit 1: that scrub repairs.
const SCRUB_REPAIR: u32 = 2;

/// Where an interrupted scrub got to (format minor 1): it continues from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubMark {
    /// Bytes of the data region (of every member) checked so far: a whole number of chunks.
    pub position: u64,
    /// Whether that scrub repairs.
    pub repair: bool,
}

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

/// A member's state in the member table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// An unused slot.
    Empty,
    /// In service: holds current data for its role.
    Active,
    /// Failed: its contents are not trusted.
    Faulty,
    /// Behind (minor 3): the member holds current data except what the writing sessions
    /// that started at event `since` or later wrote (the regions the session map shows);
    /// a resync of those regions brings it back. Stored as a faulty slot whose checkpoint
    /// field holds `since`, so an older build sees a faulty member.
    Behind {
        /// The first session start event whose writes it may lack (non-zero).
        since: u64,
    },
    /// A hot spare, not yet holding a role.
    Spare,
    /// Being rebuilt; data below `checkpoint` (bytes of the data region) is current.
    Rebuilding {
        /// Bytes of the data region rebuilt so far.
        checkpoint: u64,
    },
}

impl SlotState {
    fn code(self) -> u8 {
        match self {
            SlotState::Empty => 0,
            SlotState::Active => 1,
            SlotState::Faulty | SlotState::Behind { .. } => 2,
            SlotState::Spare => 3,
            SlotState::Rebuilding { .. } => 4,
        }
    }

    /// The state's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SlotState::Empty => "empty",
            SlotState::Active => "active",
            SlotState::Faulty => "faulty",
            SlotState::Behind { .. } => "behind",
            SlotState::Spare => "spare",
            SlotState::Rebuilding { .. } => "rebuilding",
        }
    }
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One member-table entry: which member holds the slot, and its state. Slots `0..n` are the
/// roles; slots from `n` on are spares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The member's UUID.
    pub uuid: [u8; 16],
    /// Its state.
    pub state: SlotState,
}

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

/// A decoded superblock copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Minor version of the writer (the major is always [`VERSION_MAJOR`] once decoded).
    pub minor: u16,
    /// The array's UUID: the same on every member.
    pub array_uuid: [u8; 16],
    /// This member's UUID.
    pub member_uuid: [u8; 16],
    /// This member's slot in the member table: its role (position) when below `members`,
    /// a spare otherwise.
    pub slot: u32,
    /// The RAID level.
    pub level: Level,
    /// Data chunks per stripe.
    pub k: u16,
    /// Parity chunks per stripe (for a mirror, members − 1).
    pub m: u8,
    /// Member count (roles).
    pub members: u16,
    /// Chunk size in bytes.
    pub chunk: u64,
    /// Flags ([`FLAG_DIRTY`]).
    pub flags: u32,
    /// Event counter: grows with every superblock update.
    pub event: u64,
    /// Creation time, Unix seconds.
    pub ctime: u64,
    /// Time of this update, Unix seconds.
    pub utime: u64,
    /// The array's name (at most 32 bytes of UTF-8).
    pub name: String,
    /// The member size the regions were planned for: the smallest member's size at create
    /// (the same on every member and spare). A disk smaller than this is refused.
    pub member_size: u64,
    /// The array's size in bytes.
    pub array_size: u64,
    /// Region map.
    pub regions: Regions,
    /// Member table: slots `0..members` by role, then spares.
    pub slots: Vec<Slot>,
    /// An interrupted scrub's position (minor 1; `None` in minor 0 superblocks).
    pub scrub: Option<ScrubMark>,
    /// The write-intent bitmap's epoch (minor 1): the bitmap blocks are trusted only when
    /// they carry this value. 0: no trusted bitmap (a minor 0 writer zeroes it).
    pub bitmap_epoch: u64,
    /// The event of the update that started the latest writing session (minor 3; 0 when
    /// unknown: an older build wrote the array last). Every session that writes data starts
    /// with an update, before its first write.
    pub session: u64,
    /// A random number chosen when that session started (minor 3).
    pub session_nonce: u64,
    /// The session map ([`SessionMapBlock`]) records every region written by sessions that
    /// started at this event or later (minor 3; 0: no session map is kept).
    pub map_since: u64,
    /// The checkpoint count of the newest journal checkpoint whose header every active
    /// member holds (minor 3; journal arrays). A member whose journal header is older went
    /// back in time.
    pub journal_checkpoints: u64,
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

fn level_code(level: Level) -> u8 {
    match level {
        Level::Mirror => 1,
        Level::Parity { m: 1 } => 5,
        Level::Parity { m: 2 } => 6,
        Level::Parity { .. } => 7,
    }
}

fn text_field(bytes: &[u8], field: &'static str) -> Result<String, FormatError> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if bytes[end..].iter().any(|&b| b != 0) {
        return Err(FormatError::Invalid {
            field,
            reason: "bytes after the terminating NUL".to_string(),
        });
    }
    String::from_utf8(bytes[..end].to_vec()).map_err(|_| FormatError::Invalid {
        field,
        reason: "not UTF-8".to_string(),
    })
}

/// Truncates `name` to at most 32 bytes at a character boundary.
pub fn clip_name(name: &str) -> String {
    let mut end = name.len().min(NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].replace('\0', "")
}

impl Superblock {
    /// The array's geometry.
    pub fn layout(&self) -> Result<Layout, LayoutError> {
        Layout::new(self.level, usize::from(self.members), self.chunk)
    }

    /// Whether the dirty flag is set.
    pub fn is_dirty(&self) -> bool {
        self.flags & FLAG_DIRTY != 0
    }

    /// The layout name stored in the superblock.
    pub fn layout_name(&self) -> &'static str {
        match self.level {
            Level::Mirror => LAYOUT_MIRROR,
            Level::Parity { .. } => LAYOUT_LEFT_SYMMETRIC,
        }
    }

    /// Encodes one copy: [`SB_SIZE`] bytes, CRC in the last four.
    ///
    /// Panics if the member table has more than [`MAX_SLOTS`] slots (the array code never
    /// builds one).
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.slots.len() <= MAX_SLOTS, "member table too large");
        let mut b = vec![0u8; SB_SIZE];
        put(&mut b, OFF_MAGIC, &MAGIC);
        put(&mut b, OFF_MAJOR, &VERSION_MAJOR.to_le_bytes());
        put(&mut b, OFF_MINOR, &self.minor.to_le_bytes());
        put(&mut b, OFF_SB_SIZE, &(SB_SIZE as u32).to_le_bytes());
        put(&mut b, OFF_ARRAY_UUID, &self.array_uuid);
        put(&mut b, OFF_MEMBER_UUID, &self.member_uuid);
        put(&mut b, OFF_ROLE, &self.slot.to_le_bytes());
        b[OFF_LEVEL] = level_code(self.level);
        b[OFF_M] = self.m;
        put(&mut b, OFF_K, &self.k.to_le_bytes());
        put(&mut b, OFF_MEMBERS, &self.members.to_le_bytes());
        put(&mut b, OFF_SLOTS, &(self.slots.len() as u16).to_le_bytes());
        put(&mut b, OFF_FLAGS, &self.flags.to_le_bytes());
        put(&mut b, OFF_CHUNK, &self.chunk.to_le_bytes());
        put(&mut b, OFF_LAYOUT, self.layout_name().as_bytes());
        put(&mut b, OFF_EVENT, &self.event.to_le_bytes());
        put(&mut b, OFF_CTIME, &self.ctime.to_le_bytes());
        put(&mut b, OFF_UTIME, &self.utime.to_le_bytes());
        put(&mut b, OFF_NAME, clip_name(&self.name).as_bytes());
        put(&mut b, OFF_MEMBER_SIZE, &self.member_size.to_le_bytes());
        put(
            &mut b,
            OFF_DATA_OFFSET,
            &self.regions.data_offset.to_le_bytes(),
        );
        put(&mut b, OFF_DATA_SIZE, &self.regions.data_size.to_le_bytes());
        put(&mut b, OFF_ARRAY_SIZE, &self.array_size.to_le_bytes());
        put(
            &mut b,
            OFF_BITMAP_OFFSET,
            &self.regions.bitmap_offset.to_le_bytes(),
        );
        put(
            &mut b,
            OFF_BITMAP_SIZE,
            &self.regions.bitmap_size.to_le_bytes(),
        );
        put(
            &mut b,
            OFF_JOURNAL_OFFSET,
            &self.regions.journal_offset.to_le_bytes(),
        );
        put(
            &mut b,
            OFF_JOURNAL_SIZE,
            &self.regions.journal_size.to_le_bytes(),
        );
        put(
            &mut b,
            OFF_CSUM_OFFSET,
            &self.regions.csum_offset.to_le_bytes(),
        );
        put(&mut b, OFF_CSUM_SIZE, &self.regions.csum_size.to_le_bytes());
        put(&mut b, OFF_CSUM_BLOCK, &(CSUM_BLOCK as u32).to_le_bytes());
        put(&mut b, OFF_CSUM_ALGO, &CSUM_CRC32_ADDR.to_le_bytes());
        if let Some(mark) = self.scrub {
            let flags = SCRUB_RUNNING | if mark.repair { SCRUB_REPAIR } else { 0 };
            put(&mut b, OFF_SCRUB_POS, &mark.position.to_le_bytes());
            put(&mut b, OFF_SCRUB_FLAGS, &flags.to_le_bytes());
        }
        put(&mut b, OFF_BITMAP_EPOCH, &self.bitmap_epoch.to_le_bytes());
        put(&mut b, OFF_SESSION, &self.session.to_le_bytes());
        put(&mut b, OFF_SESSION_NONCE, &self.session_nonce.to_le_bytes());
        put(&mut b, OFF_MAP_SINCE, &self.map_since.to_le_bytes());
        put(
            &mut b,
            OFF_JOURNAL_CHECKPOINTS,
            &self.journal_checkpoints.to_le_bytes(),
        );
        for (i, slot) in self.slots.iter().enumerate() {
            let at = HEADER_SIZE + i * SLOT_SIZE;
            put(&mut b, at + SLOT_UUID, &slot.uuid);
            b[at + SLOT_STATE] = slot.state.code();
            match slot.state {
                SlotState::Rebuilding { checkpoint } => {
                    put(&mut b, at + SLOT_CHECKPOINT, &checkpoint.to_le_bytes())
                }
                SlotState::Behind { since } => {
                    put(&mut b, at + SLOT_CHECKPOINT, &since.to_le_bytes())
                }
                _ => {}
            }
        }
        let crc = crc32fast::hash(&b[..OFF_CRC]);
        put(&mut b, OFF_CRC, &crc.to_le_bytes());
        b
    }

    /// Decodes one copy. Every field is checked: bytes on a disk are untrusted input.
    pub fn decode(b: &[u8]) -> Result<Superblock, FormatError> {
        let invalid = |field: &'static str, reason: String| FormatError::Invalid { field, reason };
        if b.len() < SB_SIZE {
            return Err(invalid(
                "length",
                format!("{} bytes, expected {SB_SIZE}", b.len()),
            ));
        }
        let b = &b[..SB_SIZE];
        if get::<8>(b, OFF_MAGIC) != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let stored = get_u32(b, OFF_CRC);
        let computed = crc32fast::hash(&b[..OFF_CRC]);
        if stored != computed {
            return Err(FormatError::BadChecksum { stored, computed });
        }
        let (major, minor) = (get_u16(b, OFF_MAJOR), get_u16(b, OFF_MINOR));
        if major != VERSION_MAJOR {
            return Err(FormatError::UnknownVersion { major, minor });
        }
        let sb_size = get_u32(b, OFF_SB_SIZE);
        if sb_size as usize != SB_SIZE {
            return Err(invalid("sb_size", format!("{sb_size}, expected {SB_SIZE}")));
        }
        let m = b[OFF_M];
        let k = get_u16(b, OFF_K);
        let members = get_u16(b, OFF_MEMBERS);
        let level = match (b[OFF_LEVEL], m) {
            (1, _) => Level::Mirror,
            (5, 1) | (6, 2) | (7, 3..=4) => Level::Parity { m: usize::from(m) },
            (code, m) => return Err(invalid("level", format!("level {code} with m = {m}"))),
        };
        let chunk = get_u64(b, OFF_CHUNK);
        let layout = Layout::new(level, usize::from(members), chunk)
            .map_err(|e| invalid("geometry", e.to_string()))?;
        if layout.k() != usize::from(k) || layout.m() != usize::from(m) {
            return Err(invalid(
                "k/m",
                format!("k = {k}, m = {m} do not match {members} members"),
            ));
        }
        let layout_name = text_field(&b[OFF_LAYOUT..OFF_LAYOUT + LAYOUT_LEN], "layout")?;
        let expected_layout = match level {
            Level::Mirror => LAYOUT_MIRROR,
            Level::Parity { .. } => LAYOUT_LEFT_SYMMETRIC,
        };
        if layout_name != expected_layout {
            return Err(invalid("layout", format!("unknown layout {layout_name:?}")));
        }
        let name = text_field(&b[OFF_NAME..OFF_NAME + NAME_LEN], "name")?;
        let csum_block = get_u32(b, OFF_CSUM_BLOCK);
        if u64::from(csum_block) != CSUM_BLOCK {
            return Err(invalid("checksum_block", format!("{csum_block}")));
        }
        let algo = get_u32(b, OFF_CSUM_ALGO);
        if algo != CSUM_CRC32_ADDR {
            return Err(invalid("checksum_algorithm", format!("{algo}")));
        }
        let member_size = get_u64(b, OFF_MEMBER_SIZE);
        let regions = Regions {
            bitmap_offset: get_u64(b, OFF_BITMAP_OFFSET),
            bitmap_size: get_u64(b, OFF_BITMAP_SIZE),
            journal_offset: get_u64(b, OFF_JOURNAL_OFFSET),
            journal_size: get_u64(b, OFF_JOURNAL_SIZE),
            csum_offset: get_u64(b, OFF_CSUM_OFFSET),
            csum_size: get_u64(b, OFF_CSUM_SIZE),
            data_offset: get_u64(b, OFF_DATA_OFFSET),
            data_size: get_u64(b, OFF_DATA_SIZE),
        };
        regions.validate(member_size)?;
        if !regions.data_size.is_multiple_of(chunk) {
            return Err(invalid(
                "data_size",
                "not a whole number of chunks".to_string(),
            ));
        }
        let array_size = get_u64(b, OFF_ARRAY_SIZE);
        if Some(array_size) != layout.checked_capacity(regions.data_size) {
            return Err(invalid(
                "array_size",
                format!(
                    "{array_size}, expected {} for the geometry",
                    layout.capacity(regions.data_size)
                ),
            ));
        }
        // Minor 0 wrote zeros here; later minors of version 1 keep these bytes' meaning.
        let scrub_flags = get_u32(b, OFF_SCRUB_FLAGS);
        let scrub_position = get_u64(b, OFF_SCRUB_POS);
        let scrub = if minor == 0 || scrub_flags & SCRUB_RUNNING == 0 {
            None
        } else if scrub_position > regions.data_size || !scrub_position.is_multiple_of(chunk) {
            return Err(invalid(
                "scrub_position",
                format!("{scrub_position} is not a chunk boundary within the data region"),
            ));
        } else {
            Some(ScrubMark {
                position: scrub_position,
                repair: scrub_flags & SCRUB_REPAIR != 0,
            })
        };
        let bitmap_epoch = if minor == 0 {
            0
        } else {
            get_u64(b, OFF_BITMAP_EPOCH)
        };
        // Before minor 3 these bytes were zero (or not ours to read).
        let (session, session_nonce, map_since, journal_checkpoints) = if minor < 3 {
            (0, 0, 0, 0)
        } else {
            (
                get_u64(b, OFF_SESSION),
                get_u64(b, OFF_SESSION_NONCE),
                get_u64(b, OFF_MAP_SINCE),
                get_u64(b, OFF_JOURNAL_CHECKPOINTS),
            )
        };
        let slot_count = usize::from(get_u16(b, OFF_SLOTS));
        if slot_count < usize::from(members) || slot_count > MAX_SLOTS {
            return Err(invalid(
                "slots",
                format!("{slot_count} slots for {members} members (at most {MAX_SLOTS})"),
            ));
        }
        let mut slots = Vec::with_capacity(slot_count);
        for i in 0..slot_count {
            let at = HEADER_SIZE + i * SLOT_SIZE;
            let checkpoint = get_u64(b, at + SLOT_CHECKPOINT);
            let state = match b[at + SLOT_STATE] {
                0 => SlotState::Empty,
                1 => SlotState::Active,
                2 if minor >= 3 && checkpoint != 0 => SlotState::Behind { since: checkpoint },
                2 => SlotState::Faulty,
                3 => SlotState::Spare,
                4 if checkpoint <= regions.data_size => SlotState::Rebuilding { checkpoint },
                code => return Err(invalid("member table", format!("slot {i}: state {code}"))),
            };
            slots.push(Slot {
                uuid: get(b, at + SLOT_UUID),
                state,
            });
        }
        let slot = get_u32(b, OFF_ROLE);
        if slot as usize >= slot_count {
            return Err(invalid("role", format!("{slot} with {slot_count} slots")));
        }
        let member_uuid = get::<16>(b, OFF_MEMBER_UUID);
        if slots[slot as usize].uuid != member_uuid {
            return Err(invalid(
                "member table",
                format!("slot {slot} does not name this member"),
            ));
        }
        Ok(Superblock {
            minor,
            array_uuid: get(b, OFF_ARRAY_UUID),
            member_uuid,
            slot,
            level,
            k,
            m,
            members,
            chunk,
            flags: get_u32(b, OFF_FLAGS),
            event: get_u64(b, OFF_EVENT),
            ctime: get_u64(b, OFF_CTIME),
            utime: get_u64(b, OFF_UTIME),
            name,
            member_size,
            array_size,
            regions,
            slots,
            scrub,
            bitmap_epoch,
            session,
            session_nonce,
            map_since,
            journal_checkpoints,
        })
    }
}

/// What reading a member's superblock copies found.
#[derive(Debug)]
pub struct SuperblockRead {
    /// The newest valid copy.
    pub superblock: Superblock,
    /// Which copy it was (0 or 1).
    pub copy: usize,
    /// Why the other copy was not used, when it was not valid.
    pub other: Option<FormatError>,
}

/// Why a member's superblock could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A disk error.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The member is too small to hold superblocks.
    #[error("{size} bytes is too small to hold a superblock")]
    TooSmall {
        /// The member's size.
        size: u64,
    },
    /// Neither copy is valid; the errors of both copies.
    #[error("{}", no_valid_copy(.0, .1))]
    NoValidCopy(FormatError, FormatError),
    /// The bad-block log (not the superblock) is damaged.
    #[error("damaged bad-block log: {0}")]
    BadLog(FormatError),
}

fn no_valid_copy(first: &FormatError, second: &FormatError) -> String {
    match (first, second) {
        (FormatError::BadMagic, FormatError::BadMagic) => {
            "no raidkit superblock (not a raidkit member)".to_string()
        }
        (a, b) if a == b => format!("no valid superblock: both copies: {a}"),
        (a, b) => format!("no valid superblock: copy 0: {a}; copy 1: {b}"),
    }
}

/// Reads both copies from `disk` and returns the valid one with the higher event counter.
pub fn read_superblock(disk: &dyn Disk) -> Result<SuperblockRead, ReadError> {
    let needed = SB_OFFSETS[1] + SB_SIZE as u64;
    if disk.len() < needed {
        return Err(ReadError::TooSmall { size: disk.len() });
    }
    let mut buf = AlignedBuf::new(2 * SB_SIZE);
    disk.read_at(&mut buf, 0)?;
    let copies = [
        Superblock::decode(&buf[..SB_SIZE]),
        Superblock::decode(&buf[SB_SIZE..]),
    ];
    let [first, second] = copies;
    // A copy written by a newer major version means the member was upgraded: the other
    // (older) copy must not be used by this build.
    for copy in [&first, &second] {
        if let Err(e @ FormatError::UnknownVersion { .. }) = copy {
            return Err(ReadError::NoValidCopy(e.clone(), e.clone()));
        }
    }
    let fits = |sb: &Superblock| sb.member_size <= disk.len();
    let shrunk = |sb: &Superblock| FormatError::Invalid {
        field: "member_size",
        reason: format!(
            "{} bytes recorded, but the member has {}",
            sb.member_size,
            disk.len()
        ),
    };
    // A copy recording a larger member than this disk is not valid for it.
    let first = first.and_then(|sb| if fits(&sb) { Ok(sb) } else { Err(shrunk(&sb)) });
    let second = second.and_then(|sb| if fits(&sb) { Ok(sb) } else { Err(shrunk(&sb)) });
    let pick = match (first, second) {
        (Ok(a), Ok(b)) if b.event > a.event => (b, 1, None),
        (Ok(a), Ok(_)) => (a, 0, None),
        (Ok(a), Err(e)) => (a, 0, Some(e)),
        (Err(e), Ok(b)) => (b, 1, Some(e)),
        (Err(a), Err(b)) => return Err(ReadError::NoValidCopy(a, b)),
    };
    let (superblock, copy, other) = pick;
    Ok(SuperblockRead {
        superblock,
        copy,
        other,
    })
}

/// Writes `sb` into the copy `sb.event mod 2` (the one not holding the previous update).
/// Does not flush.
pub fn write_superblock(disk: &dyn Disk, sb: &Superblock) -> Result<(), DiskError> {
    let mut buf = AlignedBuf::new(SB_SIZE);
    buf.copy_from_slice(&sb.encode());
    disk.write_at(&buf, SB_OFFSETS[(sb.event % 2) as usize])
}

/// What a disk already holds, when it is recognisable: a file system, swap, an encrypted
/// volume or a partition table (checked by their magic numbers). `create` refuses such a
/// member unless forced.
pub fn foreign_signature(disk: &dyn Disk) -> Result<Option<&'static str>, DiskError> {
    const PROBE: usize = 128 << 10;
    if disk.len() < PROBE as u64 {
        return Ok(None);
    }
    let mut head = AlignedBuf::new(PROBE);
    disk.read_at(&mut head, 0)?;
    let at = |offset: usize, magic: &[u8]| head[offset..offset + magic.len()] == *magic;
    let found = if at(1080, &[0x53, 0xEF]) && head[1024..1028] != [0; 4] {
        Some("an ext2/ext3/ext4 file system")
    } else if at(0, b"XFSB") {
        Some("an XFS file system")
    } else if at(65600, b"_BHRfS_M") {
        Some("a btrfs file system")
    } else if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        Some("a swap area")
    } else if at(0, b"LUKS\xba\xbe") {
        Some("a LUKS encrypted volume")
    } else if at(512, b"EFI PART") {
        Some("a GPT partition table")
    } else if at(3, b"NTFS    ") {
        Some("an NTFS file system")
    } else if at(54, b"FAT12   ") || at(54, b"FAT16   ") || at(82, b"FAT32   ") {
        Some("a FAT file system")
    } else if at(0x8001, b"CD001") {
        Some("an ISO 9660 image")
    } else {
        None
    };
    Ok(found)
}

/// A new random non-zero 64-bit number (a journal checkpoint's nonce).
pub fn new_nonce() -> u64 {
    let uuid = new_uuid();
    u64::from_le_bytes(uuid[..8].try_into().expect("8 bytes")).max(1)
}

/// A new random UUID (version 4), from the operating system's random source.
pub fn new_uuid() -> [u8; 16] {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: fall back to time, pid and a counter (unique, not secret).
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mixed = now ^ (u64::from(std::process::id()) << 32);
        bytes[..8].copy_from_slice(&mixed.to_le_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
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

/// CRC-32 of a 4 KiB block of zeros.
pub fn zero_block_crc() -> u32 {
    static ZERO: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *ZERO.get_or_init(|| crc32fast::hash(&[0u8; CSUM_BLOCK as usize]))
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
        put(&mut b, 0, &BADLOG_MAGIC);
        put(&mut b, 8, uuid);
        put(&mut b, 24, &(self.ranges.len() as u32).to_le_bytes());
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
        if get::<8>(b, 0) != BADLOG_MAGIC || get::<16>(b, 8) != *uuid {
            return Ok(BadLog::default());
        }
        let stored = get_u32(b, BADLOG_SIZE - 4);
        let computed = crc32fast::hash(&b[..BADLOG_SIZE - 4]);
        if stored != computed {
            return Err(FormatError::BadChecksum { stored, computed });
        }
        let count = get_u32(b, 24) as usize;
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

/// Size of the write-intent bitmap block (at `Regions::bitmap_offset` of every member).
pub const INTENT_SIZE: usize = 4096;
/// Magic number at byte 0 of the write-intent bitmap block.
pub const INTENT_MAGIC: [u8; 8] = *b"RKINTENT";
const INTENT_HEADER: usize = 64;
/// The most bits the write-intent bitmap block holds.
pub const INTENT_MAX_BITS: u64 = ((INTENT_SIZE - INTENT_HEADER - 4) * 8) as u64;

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
        put(&mut b, 0, &INTENT_MAGIC);
        put(&mut b, 8, array_uuid);
        put(&mut b, 24, &self.epoch.to_le_bytes());
        put(&mut b, 32, &self.stripes_per_bit.to_le_bytes());
        put(&mut b, 40, &(self.bits.len() as u32).to_le_bytes());
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
        if b.len() < INTENT_SIZE || get::<8>(b, 0) != INTENT_MAGIC || get::<16>(b, 8) != *array_uuid
        {
            return None;
        }
        if get_u32(b, INTENT_SIZE - 4) != crc32fast::hash(&b[..INTENT_SIZE - 4]) {
            return None;
        }
        let (per_bit, count) = IntentBitmap::geometry(stripes);
        if get_u64(b, 32) != per_bit || u64::from(get_u32(b, 40)) != count {
            return None;
        }
        let bits = (0..count as usize)
            .map(|i| b[INTENT_HEADER + i / 8] & (1 << (i % 8)) != 0)
            .collect();
        Some(IntentBitmap {
            epoch: get_u64(b, 24),
            stripes_per_bit: per_bit,
            bits,
        })
    }
}

/// Size of the journal's header block (the first block of a member's journal region) and
/// of each part header in it.
pub const JOURNAL_BLOCK: usize = 4096;
/// Magic number of the journal header block.
pub const JOURNAL_MAGIC: [u8; 8] = *b"RKJOURNL";
/// Magic number of a journal part header.
pub const PART_MAGIC: [u8; 8] = *b"RKJPART1";
/// The widest stripe a part header can list (bits of its position set).
pub const PART_MAX_WIDTH: usize = 256;

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
        put(&mut b, 0, &JOURNAL_MAGIC);
        put(&mut b, 8, array_uuid);
        put(&mut b, 24, member_uuid);
        put(&mut b, 40, &self.tail.to_le_bytes());
        put(&mut b, 48, &self.nonce.to_le_bytes());
        put(&mut b, 56, &self.checkpoints.to_le_bytes());
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
            || get::<8>(b, 0) != JOURNAL_MAGIC
            || get::<16>(b, 8) != *array_uuid
            || get::<16>(b, 24) != *member_uuid
            || get_u32(b, JOURNAL_BLOCK - 4) != crc32fast::hash(&b[..JOURNAL_BLOCK - 4])
        {
            return None;
        }
        let header = JournalHeader {
            tail: get_u64(b, 40),
            nonce: get_u64(b, 48),
            checkpoints: get_u64(b, 56),
        };
        (header.tail < JOURNAL_SEQ_LIMIT && header.checkpoints < JOURNAL_SEQ_LIMIT)
            .then_some(header)
    }

    /// The order of headers: the higher (tail, checkpoint count) is the newer.
    pub fn age(&self) -> (u64, u64) {
        (self.tail, self.checkpoints)
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
        put(b, 0, &FLUSH_STAMP_MAGIC);
        put(b, 8, array_uuid);
        put(b, 24, member_uuid);
        put(b, 40, &self.session_nonce.to_le_bytes());
        put(b, 48, &self.event.to_le_bytes());
        put(b, 56, &self.begun.to_le_bytes());
        put(b, 64, &self.done.to_le_bytes());
        let crc = crc32fast::hash(&b[..FLUSH_STAMP_COPY - 4]);
        put(b, FLUSH_STAMP_COPY - 4, &crc.to_le_bytes());
    }

    fn decode_copy(b: &[u8], array_uuid: &[u8; 16], member_uuid: &[u8; 16]) -> Option<FlushStamp> {
        if get::<8>(b, 0) != FLUSH_STAMP_MAGIC
            || get::<16>(b, 8) != *array_uuid
            || get::<16>(b, 24) != *member_uuid
            || get_u32(b, FLUSH_STAMP_COPY - 4) != crc32fast::hash(&b[..FLUSH_STAMP_COPY - 4])
        {
            return None;
        }
        Some(FlushStamp {
            session_nonce: get_u64(b, 40),
            event: get_u64(b, 48),
            begun: get_u64(b, 56),
            done: get_u64(b, 64),
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
        put(&mut b, 0, &SESSION_MAP_MAGIC);
        put(&mut b, 8, array_uuid);
        put(&mut b, 24, &self.stripes_per_region.to_le_bytes());
        put(&mut b, 32, &(self.regions as u32).to_le_bytes());
        put(&mut b, 36, &(self.index as u32).to_le_bytes());
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
            || get::<8>(b, 0) != SESSION_MAP_MAGIC
            || get::<16>(b, 8) != *array_uuid
            || get_u32(b, SESSION_MAP_BLOCK - 4) != crc32fast::hash(&b[..SESSION_MAP_BLOCK - 4])
        {
            return None;
        }
        let (per_region, regions) = SessionMapBlock::geometry(stripes);
        if get_u64(b, 24) != per_region
            || u64::from(get_u32(b, 32)) != regions
            || get_u32(b, 36) as usize != index
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
        put(&mut b, 0, &PART_MAGIC);
        put(&mut b, 8, array_uuid);
        put(&mut b, 24, member_uuid);
        put(&mut b, 40, &self.nonce.to_le_bytes());
        put(&mut b, 48, &self.seq.to_le_bytes());
        put(&mut b, 56, &self.stripe.to_le_bytes());
        put(&mut b, 64, &self.first_row.to_le_bytes());
        put(&mut b, 72, &self.rows.to_le_bytes());
        put(&mut b, 76, &self.position.to_le_bytes());
        put(&mut b, 78, &self.width.to_le_bytes());
        put(&mut b, 80, &self.data_crc.to_le_bytes());
        for (p, _) in self.positions.iter().enumerate().filter(|(_, set)| **set) {
            b[96 + p / 8] |= 1 << (p % 8);
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
            || get::<8>(b, 0) != PART_MAGIC
            || get::<16>(b, 8) != *array_uuid
            || get::<16>(b, 24) != *member_uuid
            || get_u32(b, JOURNAL_BLOCK - 4) != crc32fast::hash(&b[..JOURNAL_BLOCK - 4])
        {
            return None;
        }
        let width = get_u16(b, 78);
        let position = get_u16(b, 76);
        let rows = get_u32(b, 72);
        if width == 0
            || usize::from(width) > PART_MAX_WIDTH
            || position >= width
            || rows == 0
            || get_u64(b, 48) >= JOURNAL_SEQ_LIMIT
        {
            return None;
        }
        let positions: Vec<bool> = (0..usize::from(width))
            .map(|p| b[96 + p / 8] & (1 << (p % 8)) != 0)
            .collect();
        if !positions[usize::from(position)] {
            return None;
        }
        Some(PartHeader {
            nonce: get_u64(b, 40),
            seq: get_u64(b, 48),
            stripe: get_u64(b, 56),
            first_row: get_u64(b, 64),
            rows,
            position,
            width,
            data_crc: get_u32(b, 80),
            positions,
        })
    }

    /// Bytes of data that follow the header.
    pub fn data_len(&self) -> u64 {
        u64::from(self.rows) * CSUM_BLOCK
    }
}

/// Reads the bad-block log of member `uuid` (see [`BadLog::decode`]).
pub fn read_bad_log(
    disk: &dyn Disk,
    uuid: &[u8; 16],
    regions: &Regions,
) -> Result<BadLog, ReadError> {
    let mut buf = AlignedBuf::new(BADLOG_SIZE);
    disk.read_at(&mut buf, BADLOG_OFFSET)?;
    BadLog::decode(&buf, uuid, regions.data_size / CSUM_BLOCK).map_err(ReadError::BadLog)
}

/// Writes the bad-block log of member `uuid`. Does not flush.
pub fn write_bad_log(disk: &dyn Disk, uuid: &[u8; 16], log: &BadLog) -> Result<(), DiskError> {
    let mut buf = AlignedBuf::new(BADLOG_SIZE);
    buf.copy_from_slice(&log.encode(uuid));
    disk.write_at(&buf, BADLOG_OFFSET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        let regions = Regions::plan(64 * MIB, 64 << 10).unwrap();
        let layout = Layout::new(Level::Parity { m: 2 }, 6, 64 << 10).unwrap();
        Superblock {
            minor: VERSION_MINOR,
            array_uuid: [1; 16],
            member_uuid: [7; 16],
            slot: 2,
            level: Level::Parity { m: 2 },
            k: 4,
            m: 2,
            members: 6,
            chunk: 64 << 10,
            flags: 0,
            event: 9,
            ctime: 1,
            utime: 2,
            name: "test".to_string(),
            member_size: 64 * MIB,
            array_size: layout.capacity(regions.data_size),
            regions,
            slots: (0..7u8)
                .map(|i| Slot {
                    uuid: if i == 2 { [7; 16] } else { [i + 10; 16] },
                    state: match i {
                        6 => SlotState::Spare,
                        5 => SlotState::Rebuilding { checkpoint: 4096 },
                        3 => SlotState::Behind { since: 0x55 },
                        _ => SlotState::Active,
                    },
                })
                .collect(),
            scrub: Some(ScrubMark {
                position: 3 * (64 << 10),
                repair: true,
            }),
            bitmap_epoch: 0x1122_3344_5566_7788,
            session: 0x2122_2324_2526_2728,
            session_nonce: 0x3132_3334_3536_3738,
            map_since: 0x4142_4344_4546_4748,
            journal_checkpoints: 0x5152_5354_5556_5758,
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        let bytes = sb.encode();
        assert_eq!(bytes.len(), SB_SIZE);
        assert_eq!(Superblock::decode(&bytes).unwrap(), sb);
    }

    /// The header offsets are format: pin them.
    #[test]
    fn journal_blocks_are_pinned() {
        let (array, member) = ([0xA1u8; 16], [0xB2u8; 16]);
        let header = JournalHeader {
            tail: 0x0102_0304_0506_0708,
            nonce: 0x1112_1314_1516_1718,
            checkpoints: 0x2122_2324_2526_2728,
        };
        let b = header.encode(&array, &member);
        assert_eq!(b.len(), JOURNAL_BLOCK);
        assert_eq!(&b[0..8], b"RKJOURNL");
        assert_eq!(&b[8..24], &array);
        assert_eq!(&b[24..40], &member);
        assert_eq!(get_u64(&b, 40), header.tail);
        assert_eq!(get_u64(&b, 48), header.nonce);
        assert_eq!(get_u64(&b, 56), header.checkpoints);
        assert!(b[64..4092].iter().all(|&x| x == 0));
        assert_eq!(get_u32(&b, 4092), crc32fast::hash(&b[..4092]));
        assert_eq!(JournalHeader::decode(&b, &array, &member), Some(header));
        assert_eq!(JournalHeader::decode(&b, &member, &member), None);
        assert_eq!(JournalHeader::decode(&b, &array, &array), None);
        let mut torn = b.clone();
        torn[100] ^= 1;
        assert_eq!(JournalHeader::decode(&torn, &array, &member), None);

        let mut positions = vec![false; 11];
        positions[0] = true;
        positions[3] = true;
        positions[10] = true;
        let part = PartHeader {
            nonce: 7,
            seq: 99,
            stripe: 1234,
            first_row: 5,
            rows: 3,
            position: 3,
            width: 11,
            data_crc: 0xDEAD_BEEF,
            positions: positions.clone(),
        };
        let b = part.encode(&array, &member);
        assert_eq!(&b[0..8], b"RKJPART1");
        assert_eq!(&b[8..24], &array);
        assert_eq!(&b[24..40], &member);
        assert_eq!(get_u64(&b, 40), 7);
        assert_eq!(get_u64(&b, 48), 99);
        assert_eq!(get_u64(&b, 56), 1234);
        assert_eq!(get_u64(&b, 64), 5);
        assert_eq!(get_u32(&b, 72), 3);
        assert_eq!(get_u16(&b, 76), 3);
        assert_eq!(get_u16(&b, 78), 11);
        assert_eq!(get_u32(&b, 80), 0xDEAD_BEEF);
        assert_eq!(&b[96..98], &[0b0000_1001, 0b0000_0100]);
        assert_eq!(get_u32(&b, 4092), crc32fast::hash(&b[..4092]));
        assert_eq!(part.data_len(), 3 * 4096);
        assert_eq!(PartHeader::decode(&b, &array, &member), Some(part.clone()));
        assert_eq!(PartHeader::decode(&b, &array, &array), None);
        // Self-inconsistent fields are refused even behind a valid CRC.
        for (field, bad) in [
            (
                "position outside the width",
                PartHeader {
                    position: 11,
                    ..part.clone()
                },
            ),
            (
                "position not listed",
                PartHeader {
                    position: 1,
                    ..part.clone()
                },
            ),
            (
                "no rows",
                PartHeader {
                    rows: 0,
                    ..part.clone()
                },
            ),
            (
                "no width",
                PartHeader {
                    width: 0,
                    position: 0,
                    ..part.clone()
                },
            ),
        ] {
            let b = bad.encode(&array, &member);
            assert_eq!(PartHeader::decode(&b, &array, &member), None, "{field}");
        }
    }

    #[test]
    fn field_offsets_are_pinned() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..8], b"RAIDKIT\x01");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
        assert_eq!(bytes[16], 1); // array uuid
        assert_eq!(bytes[32], 7); // member uuid
        assert_eq!(bytes[48], 2); // role
        assert_eq!((bytes[52], bytes[53], bytes[54], bytes[56]), (6, 2, 4, 6));
        assert_eq!(&bytes[72..86], b"left-symmetric");
        assert_eq!(bytes[104], 9); // event
        assert_eq!(&bytes[128..132], b"test");
        assert_eq!(get_u64(&bytes, 168), sample().regions.data_offset);
        assert_eq!(&bytes[512..528], &[10u8; 16]); // slot 0 uuid
        assert_eq!(bytes[512 + 16], 1); // slot 0 active
        assert_eq!(bytes[512 + 5 * 32 + 16], 4); // slot 5 rebuilding
        assert_eq!(get_u64(&bytes, 512 + 5 * 32 + 24), 4096);
        assert_eq!(bytes[512 + 3 * 32 + 16], 2); // slot 3 behind: faulty, with `since`
        assert_eq!(get_u64(&bytes, 512 + 3 * 32 + 24), 0x55);
        assert_eq!(bytes[512 + 6 * 32 + 16], 3); // slot 6 spare
        assert_eq!(get_u64(&bytes, 248), 3 * (64 << 10)); // scrub position
        assert_eq!(get_u32(&bytes, 256), 3); // scrub running, repairing
        assert_eq!(get_u64(&bytes, 264), 0x1122_3344_5566_7788); // bitmap epoch
        assert_eq!(get_u64(&bytes, 272), 0x2122_2324_2526_2728); // session
        assert_eq!(get_u64(&bytes, 280), 0x3132_3334_3536_3738); // session nonce
        assert_eq!(get_u64(&bytes, 288), 0x4142_4344_4546_4748); // map since
        assert_eq!(get_u64(&bytes, 296), 0x5152_5354_5556_5758); // journal checkpoints
        assert!(bytes[304..512].iter().all(|&x| x == 0));
        assert_eq!(
            u32::from_le_bytes(get(&bytes, SB_SIZE - 4)),
            crc32fast::hash(&bytes[..SB_SIZE - 4])
        );
    }

    /// Minor 3's fields read as absent in older minors: a faulty slot with a non-zero
    /// checkpoint is plainly faulty there, and the session fields are zero.
    #[test]
    fn minor_3_fields_are_absent_before_minor_3() {
        let sb = sample();
        let back = Superblock::decode(&sb.encode()).unwrap();
        assert_eq!(back.slots[3].state, SlotState::Behind { since: 0x55 });
        assert_eq!(back.session, sb.session);
        let mut old = sample();
        old.minor = 2;
        let back = Superblock::decode(&old.encode()).unwrap();
        assert_eq!(back.slots[3].state, SlotState::Faulty);
        assert_eq!(
            (
                back.session,
                back.session_nonce,
                back.map_since,
                back.journal_checkpoints
            ),
            (0, 0, 0, 0)
        );
        // A faulty slot without `since` stays faulty in minor 3.
        let mut sb = sample();
        sb.slots[3].state = SlotState::Faulty;
        let back = Superblock::decode(&sb.encode()).unwrap();
        assert_eq!(back.slots[3].state, SlotState::Faulty);
    }

    #[test]
    fn flush_stamps_are_pinned() {
        let (array, member) = ([0xA1u8; 16], [0xB2u8; 16]);
        let old = FlushStamp {
            session_nonce: 0x0102_0304_0506_0708,
            event: 0x1112_1314_1516_1718,
            begun: 5,
            done: 4,
        };
        let new = FlushStamp { done: 5, ..old };
        let b = new.encode(Some(&old), 1, &array, &member);
        assert_eq!(b.len(), 4096);
        for (at, stamp) in [(0, old), (2048, new)] {
            assert_eq!(&b[at..at + 8], b"RKSTAMP1");
            assert_eq!(&b[at + 8..at + 24], &array);
            assert_eq!(&b[at + 24..at + 40], &member);
            assert_eq!(get_u64(&b, at + 40), stamp.session_nonce);
            assert_eq!(get_u64(&b, at + 48), stamp.event);
            assert_eq!(get_u64(&b, at + 56), stamp.begun);
            assert_eq!(get_u64(&b, at + 64), stamp.done);
            assert!(b[at + 72..at + 508].iter().all(|&x| x == 0));
            assert_eq!(get_u32(&b, at + 508), crc32fast::hash(&b[at..at + 508]));
        }
        assert!(b[512..2048].iter().all(|&x| x == 0) && b[2560..].iter().all(|&x| x == 0));
        assert_eq!(FlushStamp::decode(&b, &array, &member), Some(new));
        assert_eq!(FlushStamp::decode(&b, &member, &member), None);
        assert_eq!(FlushStamp::decode(&b, &array, &array), None);
        // A torn write of the newer copy leaves the older one.
        let mut torn = b.clone();
        torn[2048 + 60] ^= 1;
        assert_eq!(FlushStamp::decode(&torn, &array, &member), Some(old));
    }

    #[test]
    fn session_map_blocks_are_pinned() {
        let array = [0xC3u8; 16];
        assert_eq!(SESSION_MAP_PER_BLOCK, 503);
        assert_eq!(SESSION_MAP_MAX_REGIONS, 7042);
        assert_eq!(SessionMapBlock::geometry(100), (1, 100));
        assert_eq!(SessionMapBlock::geometry(7042), (1, 7042));
        assert_eq!(SessionMapBlock::geometry(7043), (2, 3522));
        assert!(SessionMapBlock::fits(
            &Regions::plan(64 * MIB, 64 << 10).unwrap()
        ));
        let stripes = 1000;
        let block = SessionMapBlock {
            index: 1,
            stripes_per_region: 1,
            regions: 1000,
            entries: (0..497).map(|i| 1000 + i).collect(),
        };
        let b = block.encode(&array);
        assert_eq!(b.len(), 4096);
        assert_eq!(&b[0..8], b"RKSESMAP");
        assert_eq!(&b[8..24], &array);
        assert_eq!(get_u64(&b, 24), 1);
        assert_eq!(get_u32(&b, 32), 1000);
        assert_eq!(get_u32(&b, 36), 1);
        assert!(b[40..64].iter().all(|&x| x == 0));
        assert_eq!(get_u64(&b, 64), 1000);
        assert_eq!(get_u64(&b, 64 + 8 * 496), 1496);
        assert!(b[64 + 8 * 497..4092].iter().all(|&x| x == 0));
        assert_eq!(get_u32(&b, 4092), crc32fast::hash(&b[..4092]));
        assert_eq!(
            SessionMapBlock::decode(&b, &array, stripes, 1),
            Some(block.clone())
        );
        // Another array, index, geometry, or a torn block: not ours.
        assert_eq!(SessionMapBlock::decode(&b, &[0; 16], stripes, 1), None);
        assert_eq!(SessionMapBlock::decode(&b, &array, stripes, 0), None);
        assert_eq!(SessionMapBlock::decode(&b, &array, stripes + 1, 1), None);
        assert_eq!(SessionMapBlock::decode(&b, &array, 400, 1), None);
        let mut torn = b.clone();
        torn[70] ^= 1;
        assert_eq!(SessionMapBlock::decode(&torn, &array, stripes, 1), None);
    }

    /// A minor 0 superblock has no scrub mark whatever those bytes hold; a minor 1 mark
    /// off a chunk boundary or past the data region is refused.
    #[test]
    fn scrub_mark_rules() {
        let mut sb = sample();
        sb.minor = 0;
        assert_eq!(Superblock::decode(&sb.encode()).unwrap().scrub, None);
        let mut sb = sample();
        sb.scrub = None;
        assert_eq!(Superblock::decode(&sb.encode()).unwrap().scrub, None);
        for bad in [4096, sb.regions.data_size + (64 << 10)] {
            let mut sb = sample();
            sb.scrub = Some(ScrubMark {
                position: bad,
                repair: false,
            });
            assert!(matches!(
                Superblock::decode(&sb.encode()),
                Err(FormatError::Invalid {
                    field: "scrub_position",
                    ..
                })
            ));
        }
    }

    #[test]
    fn bad_log_merges_splits_and_round_trips() {
        let mut log = BadLog::default();
        assert!(log.add(10, 5));
        assert!(log.add(20, 1));
        assert!(log.add(15, 5)); // joins both neighbours
        assert_eq!(log.ranges, vec![(10, 11)]);
        assert!(log.remove(12, 2));
        assert_eq!(log.ranges, vec![(10, 2), (14, 7)]);
        assert!(!log.remove(12, 2));
        assert!(log.overlaps(11, 1) && !log.overlaps(12, 2) && log.overlaps(0, 100));
        assert_eq!(log.blocks(), 9);
        let uuid = [5u8; 16];
        let bytes = log.encode(&uuid);
        assert_eq!(&bytes[..8], b"RKBADLOG");
        assert_eq!(get_u32(&bytes, 24), 2);
        assert_eq!((get_u64(&bytes, 32), get_u64(&bytes, 40)), (10, 2));
        assert_eq!(BadLog::decode(&bytes, &uuid, 100).unwrap(), log);
        // Another member's log, or none: empty.
        assert_eq!(
            BadLog::decode(&bytes, &[6u8; 16], 100).unwrap(),
            BadLog::default()
        );
        assert_eq!(
            BadLog::decode(&vec![0u8; BADLOG_SIZE], &uuid, 100).unwrap(),
            BadLog::default()
        );
        // Ours but damaged, or out of range: refused.
        let mut torn = bytes.clone();
        torn[40] ^= 1;
        assert!(BadLog::decode(&torn, &uuid, 100).is_err());
        assert!(BadLog::decode(&bytes, &uuid, 20).is_err());
        let mut full = BadLog::default();
        for i in 0..BADLOG_MAX as u64 {
            assert!(full.add(i * 2, 1));
        }
        assert!(!full.add(u64::MAX - 1, 1));
        assert_eq!(full.ranges.len(), BADLOG_MAX);
        assert_eq!(
            BadLog::decode(&full.encode(&uuid), &uuid, u64::MAX).unwrap(),
            full
        );
    }

    #[test]
    fn intent_bitmap_round_trips_and_refuses_what_is_not_its_own() {
        let uuid = [3u8; 16];
        let stripes = 100_000;
        let (per_bit, count) = IntentBitmap::geometry(stripes);
        assert!(count <= INTENT_MAX_BITS && per_bit * count >= stripes);
        assert_eq!(IntentBitmap::geometry(10), (1, 10));
        let mut bits = vec![false; count as usize];
        bits[0] = true;
        bits[count as usize - 1] = true;
        let map = IntentBitmap {
            epoch: 9,
            stripes_per_bit: per_bit,
            bits,
        };
        let bytes = map.encode(&uuid);
        assert_eq!(&bytes[..8], b"RKINTENT");
        assert_eq!(get_u64(&bytes, 24), 9);
        assert_eq!(bytes[64] & 1, 1);
        assert_eq!(IntentBitmap::decode(&bytes, &uuid, stripes), Some(map));
        assert_eq!(IntentBitmap::decode(&bytes, &[4u8; 16], stripes), None);
        assert_eq!(IntentBitmap::decode(&bytes, &uuid, stripes * 2), None);
        let mut torn = bytes.clone();
        torn[70] ^= 1;
        assert_eq!(IntentBitmap::decode(&torn, &uuid, stripes), None);
        assert_eq!(IntentBitmap::decode(&bytes[..100], &uuid, stripes), None);
    }

    /// The region plan is format too: pin it for a few sizes.
    #[test]
    fn region_plan_is_pinned() {
        let r = Regions::plan(8 * MIB, 64 << 10).unwrap();
        assert_eq!(
            (r.journal_offset, r.journal_size, r.csum_offset, r.csum_size),
            (MIB, MIB, 2 * MIB, 8192)
        );
        assert_eq!((r.data_offset, r.data_size), (3 * MIB, 5 * MIB));
        let r = Regions::plan(1 << 30, 512 << 10).unwrap();
        assert_eq!(r.journal_size, 16 * MIB);
        assert_eq!(r.csum_offset, 17 * MIB);
        assert_eq!(r.data_offset, 18 * MIB);
        assert_eq!(r.data_size, (1 << 30) - 18 * MIB);
        assert_eq!(r.csum_size, (r.data_size / 1024).div_ceil(4096) * 4096);
        let r = Regions::plan(1 << 40, 512 << 10).unwrap();
        assert_eq!(r.journal_size, 64 * MIB);
        assert_eq!(r.data_offset, 65 * MIB + 1024 * MIB);
        for size in [4 * MIB, 5 * MIB + 4096, 100 * MIB + 12345, 3 << 30] {
            let r = Regions::plan(size, 4096).unwrap();
            r.validate(size).unwrap();
        }
        assert!(matches!(
            Regions::plan(2 * MIB, 4096),
            Err(FormatError::TooSmall { .. })
        ));
    }

    #[test]
    fn every_corruption_is_refused() {
        let bytes = sample().encode();
        for at in (0..SB_SIZE).step_by(97).chain([SB_SIZE - 1]) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(Superblock::decode(&bad).is_err(), "byte {at}");
        }
    }

    #[test]
    fn unknown_major_is_refused_and_minor_accepted() {
        let mut bytes = sample().encode();
        bytes[OFF_MAJOR] = 2;
        let crc = crc32fast::hash(&bytes[..OFF_CRC]);
        put(&mut bytes, OFF_CRC, &crc.to_le_bytes());
        assert!(matches!(
            Superblock::decode(&bytes),
            Err(FormatError::UnknownVersion { major: 2, .. })
        ));
        let mut sb = sample();
        sb.minor = 7;
        assert_eq!(Superblock::decode(&sb.encode()).unwrap().minor, 7);
    }

    /// Crafted sizes near 2^64 are refused, not overflowed (untrusted input).
    #[test]
    fn huge_sizes_are_refused_without_overflow() {
        let mut sb = sample();
        sb.member_size = u64::MAX;
        sb.regions.data_size = (1 << 63) / sb.chunk * sb.chunk;
        sb.regions.csum_size = (sb.regions.data_size / 1024).div_ceil(4096) * 4096;
        sb.array_size = 0;
        assert!(Superblock::decode(&sb.encode()).is_err());
        sb.regions.csum_size = u64::MAX - 4095;
        assert!(Superblock::decode(&sb.encode()).is_err());
        sb.event = u64::MAX;
        sb.regions = Regions::plan(64 * MIB, 64 << 10).unwrap();
        sb.member_size = 64 * MIB;
        sb.array_size = Layout::new(Level::Parity { m: 2 }, 6, 64 << 10)
            .unwrap()
            .capacity(sb.regions.data_size);
        assert_eq!(Superblock::decode(&sb.encode()).unwrap().event, u64::MAX);
    }

    #[test]
    fn checksum_entries_depend_on_address() {
        let block = [0u8; 4096];
        let a = checksum_entry(0, 0, &block);
        assert_ne!(a, checksum_entry(0, 1, &block));
        assert_ne!(a, checksum_entry(1, 0, &block));
        assert_eq!(a, zero_block_crc() ^ address_mix(0, 0));
    }
}
