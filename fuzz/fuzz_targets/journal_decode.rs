//! Journal, session-map and flush-stamp decoding on untrusted bytes (format minors 2, 3).
//!
//! A replay reads a member's journal header block and then a chain of part headers straight
//! off the disk, and assemble reads the session map and the flush stamp, so
//! `JournalHeader::decode`, `PartHeader::decode`, `SessionMapBlock::decode` and
//! `FlushStamp::decode` must answer `Some` or `None` for every input and never panic. The first input byte picks a mode:
//!
//! - even: the remaining bytes are decoded as they are (almost always stopped by the magic,
//!   the UUIDs or the CRC);
//! - odd: the bytes are padded or cut to one 4 KiB block, and the magic, the array and
//!   member UUIDs and a correct CRC are written in, so that the field checks behind them
//!   (width, position, rows, the position list; the map's geometry and index; each stamp
//!   copy) are reached.
//!
//! Whatever a decoder accepts must encode to bytes that decode to the same value, and a part
//! header's data length must not overflow.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raidkit::format::{
    FLUSH_STAMP_COPIES, FLUSH_STAMP_MAGIC, FlushStamp, JOURNAL_BLOCK, JOURNAL_MAGIC, JournalHeader,
    PART_MAGIC, PartHeader, SESSION_MAP_BLOCKS, SESSION_MAP_MAGIC, SessionMapBlock,
};

/// Stripes of the map the fuzzer decodes against (two blocks of regions).
const STRIPES: u64 = 700;

const ARRAY: [u8; 16] = [3; 16];
const MEMBER: [u8; 16] = [9; 16];

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check(rest);
    } else {
        check(&with_valid_crc(rest, &JOURNAL_MAGIC));
        check(&with_valid_crc(rest, &PART_MAGIC));
        check(&with_valid_crc(rest, &SESSION_MAP_MAGIC));
        check(&with_valid_stamps(rest));
    }
});

fn check(bytes: &[u8]) {
    if let Some(header) = JournalHeader::decode(bytes, &ARRAY, &MEMBER) {
        let again = JournalHeader::decode(&header.encode(&ARRAY, &MEMBER), &ARRAY, &MEMBER);
        assert_eq!(again, Some(header));
    }
    if let Some(part) = PartHeader::decode(bytes, &ARRAY, &MEMBER) {
        let _ = part.data_len();
        let again = PartHeader::decode(&part.encode(&ARRAY, &MEMBER), &ARRAY, &MEMBER);
        assert_eq!(again.as_ref(), Some(&part));
    }
    for index in 0..SESSION_MAP_BLOCKS {
        if let Some(block) = SessionMapBlock::decode(bytes, &ARRAY, STRIPES, index) {
            assert!(block.entries.len() <= raidkit::format::SESSION_MAP_PER_BLOCK);
            let again = SessionMapBlock::decode(&block.encode(&ARRAY), &ARRAY, STRIPES, index);
            assert_eq!(again.as_ref(), Some(&block));
        }
    }
    if let Some(stamp) = FlushStamp::decode(bytes, &ARRAY, &MEMBER) {
        let again = FlushStamp::decode(&stamp.encode(None, 0, &ARRAY, &MEMBER), &ARRAY, &MEMBER);
        assert_eq!(again, Some(stamp));
    }
    // Another array's or member's block is never accepted.
    assert!(JournalHeader::decode(bytes, &[4; 16], &MEMBER).is_none() || ARRAY == [4; 16]);
    assert!(PartHeader::decode(bytes, &ARRAY, &[8; 16]).is_none());
}

/// `bytes` padded or cut to one block, with `magic`, the UUIDs and a valid CRC written in.
fn with_valid_crc(bytes: &[u8], magic: &[u8; 8]) -> Vec<u8> {
    let mut b = bytes[..bytes.len().min(JOURNAL_BLOCK)].to_vec();
    b.resize(JOURNAL_BLOCK, 0);
    b[..8].copy_from_slice(magic);
    b[8..24].copy_from_slice(&ARRAY);
    b[24..40].copy_from_slice(&MEMBER);
    let crc = crc32fast::hash(&b[..JOURNAL_BLOCK - 4]);
    b[JOURNAL_BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `bytes` padded or cut to one block, with both flush-stamp copies given the magic, the
/// UUIDs and a valid CRC.
fn with_valid_stamps(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes[..bytes.len().min(JOURNAL_BLOCK)].to_vec();
    b.resize(JOURNAL_BLOCK, 0);
    for at in FLUSH_STAMP_COPIES {
        b[at..at + 8].copy_from_slice(&FLUSH_STAMP_MAGIC);
        b[at + 8..at + 24].copy_from_slice(&ARRAY);
        b[at + 24..at + 40].copy_from_slice(&MEMBER);
        let crc = crc32fast::hash(&b[at..at + 508]);
        b[at + 508..at + 512].copy_from_slice(&crc.to_le_bytes());
    }
    b
}
