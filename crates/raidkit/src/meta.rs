//! Metadata I/O: reading and writing the format's records on a member disk — the one
//! place outside the array where metadata meets a disk. The records themselves, their
//! bytes and their checks, are [`crate::format`]'s pure codecs.

use crate::disk::{AlignedBuf, Disk, DiskError};
use crate::format::*;

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
    /// The health record is damaged.
    #[error("damaged health record: {0}")]
    Health(FormatError),
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

/// Reads a member's health record of array `array_uuid` (`Ok(None)`: it holds none).
pub fn read_health(
    disk: &dyn Disk,
    array_uuid: &[u8; 16],
) -> Result<Option<HealthRecord>, ReadError> {
    let mut buf = AlignedBuf::new(HEALTH_SIZE);
    disk.read_at(&mut buf, HEALTH_OFFSET)
        .map_err(ReadError::Disk)?;
    HealthRecord::decode(&buf, array_uuid).map_err(ReadError::Health)
}

/// Writes a member's health record (not flushed).
pub fn write_health(
    disk: &dyn Disk,
    array_uuid: &[u8; 16],
    record: &HealthRecord,
) -> Result<(), DiskError> {
    let mut buf = AlignedBuf::new(HEALTH_SIZE);
    buf.copy_from_slice(&record.encode(array_uuid));
    disk.write_at(&buf, HEALTH_OFFSET)
}

/// Reads a member's journal header: the one reader of it (assemble's election, the
/// journal's start, replay), so one bound applies everywhere — the decoder's
/// ([`JOURNAL_SEQ_LIMIT`]). `None` when it cannot be read or is not a valid header of this
/// member of this array.
pub fn read_journal_header(
    disk: &dyn Disk,
    regions: &Regions,
    array_uuid: &[u8; 16],
    member_uuid: &[u8; 16],
) -> Option<JournalHeader> {
    let mut buf = AlignedBuf::new(JOURNAL_BLOCK);
    disk.read_at(&mut buf, regions.journal_offset).ok()?;
    JournalHeader::decode(&buf, array_uuid, member_uuid)
}

/// Erases what makes `disk` a member (like `mdadm --zero-superblock`): both superblock
/// copies and the health record are zeroed and flushed, so no array recognises it again.
/// The data and the other metadata regions are left as they are.
pub fn wipe_member(disk: &dyn Disk) -> Result<(), DiskError> {
    let blank = AlignedBuf::new(2 * crate::format::SB_SIZE);
    disk.write_at(&blank, crate::format::SB_OFFSETS[0])?;
    if disk.len() >= HEALTH_OFFSET + HEALTH_SIZE as u64 {
        let blank = AlignedBuf::new(HEALTH_SIZE);
        disk.write_at(&blank, HEALTH_OFFSET)?;
    }
    disk.flush()
}
