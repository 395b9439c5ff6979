//! The superblock: two copies at the start of every member, each with the array's
//! geometry, the member table, the event counter and the region map (`docs/format.md` §3).

use std::fmt;

use crate::layout::{Layout, Level};

use super::*;

// Header field offsets (bytes from the start of a copy). Pinned by tests and format.md.
pub(super) const OFF_MAGIC: usize = 0;
pub(super) const OFF_MAJOR: usize = 8;
pub(super) const OFF_MINOR: usize = 10;
pub(super) const OFF_SB_SIZE: usize = 12;
pub(super) const OFF_ARRAY_UUID: usize = 16;
pub(super) const OFF_MEMBER_UUID: usize = 32;
pub(super) const OFF_ROLE: usize = 48;
pub(super) const OFF_LEVEL: usize = 52;
pub(super) const OFF_M: usize = 53;
pub(super) const OFF_K: usize = 54;
pub(super) const OFF_MEMBERS: usize = 56;
pub(super) const OFF_SLOTS: usize = 58;
pub(super) const OFF_FLAGS: usize = 60;
pub(super) const OFF_CHUNK: usize = 64;
pub(super) const OFF_LAYOUT: usize = 72;
pub(super) const LAYOUT_LEN: usize = 32;
pub(super) const OFF_EVENT: usize = 104;
pub(super) const OFF_CTIME: usize = 112;
pub(super) const OFF_UTIME: usize = 120;
pub(super) const OFF_NAME: usize = 128;
pub(super) const NAME_LEN: usize = 32;
pub(super) const OFF_MEMBER_SIZE: usize = 160;
pub(super) const OFF_DATA_OFFSET: usize = 168;
pub(super) const OFF_DATA_SIZE: usize = 176;
pub(super) const OFF_ARRAY_SIZE: usize = 184;
pub(super) const OFF_BITMAP_OFFSET: usize = 192;
pub(super) const OFF_BITMAP_SIZE: usize = 200;
pub(super) const OFF_JOURNAL_OFFSET: usize = 208;
pub(super) const OFF_JOURNAL_SIZE: usize = 216;
pub(super) const OFF_CSUM_OFFSET: usize = 224;
pub(super) const OFF_CSUM_SIZE: usize = 232;
pub(super) const OFF_CSUM_BLOCK: usize = 240;
pub(super) const OFF_CSUM_ALGO: usize = 244;
pub(super) const OFF_SCRUB_POS: usize = 248;
pub(super) const OFF_SCRUB_FLAGS: usize = 256;
pub(super) const OFF_BITMAP_EPOCH: usize = 264;
pub(super) const OFF_SESSION: usize = 272;
pub(super) const OFF_SESSION_NONCE: usize = 280;
pub(super) const OFF_MAP_SINCE: usize = 288;
pub(super) const OFF_JOURNAL_CHECKPOINTS: usize = 296;
pub(super) const OFF_CRC: usize = SB_SIZE - 4;

// Slot field offsets (bytes from the start of a slot).
pub(super) const SLOT_UUID: usize = 0;
pub(super) const SLOT_STATE: usize = 16;
pub(super) const SLOT_CHECKPOINT: usize = 24;

/// Flag bit 0: the array was written since it was last closed cleanly.
pub const FLAG_DIRTY: u32 = 1;
/// Flag bit 1: the array keeps a write-intent bitmap (format minor 1, [`IntentBitmap`]).
pub const FLAG_BITMAP: u32 = 2;
/// Flag bit 2: the array keeps a write journal (format minor 2, [`JournalHeader`],
/// [`PartHeader`]). Set only together with a minor of at least 2 by the writer.
pub const FLAG_JOURNAL: u32 = 4;
/// Scrub flag bit 0: a scrub was running and `scrub_position` is where it got to.
pub(super) const SCRUB_RUNNING: u32 = 1;
/// Scrub flag bit 1: that scrub repairs.
pub(super) const SCRUB_REPAIR: u32 = 2;

/// Where an interrupted scrub got to (format minor 1): it continues from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubMark {
    /// Bytes of the data region (of every member) checked so far: a whole number of chunks.
    pub position: u64,
    /// Whether that scrub repairs.
    pub repair: bool,
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
        let flags = get_u32(b, OFF_FLAGS);
        if flags & FLAG_BITMAP != 0 && flags & FLAG_JOURNAL != 0 {
            return Err(invalid(
                "flags",
                "both a write-intent bitmap and a journal; an array keeps one".to_string(),
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
            flags,
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
