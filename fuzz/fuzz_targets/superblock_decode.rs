//! Superblock decoding on untrusted bytes.
//!
//! `Superblock::decode` reads bytes straight off a member disk, so it must answer `Ok` or
//! `Err` for every input and never panic. The first input byte picks a mode:
//!
//! - even: the remaining bytes go to `decode` as they are. Almost every such input stops
//!   at the magic number or the CRC, which checks those two gates on their own.
//! - odd: the remaining bytes are padded with zeros or cut to `SB_SIZE`, the magic number
//!   is written at byte 0 and a correct CRC-32 into the last four bytes, so that the input
//!   reaches the field validation behind the CRC (version, geometry, layout and name
//!   strings, region map, member table, role).
//!
//! Whenever `decode` returns `Ok`, the superblock is encoded again and decoded again, and
//! the second decode must equal the first: what the decoder accepts, the encoder can write.
//!
//! In both modes, when the remaining bytes hold at least nine little-endian `u64`s, the
//! first eight become a `Regions` (in field order) and the ninth a member size, and
//! `Regions::validate` must return without panicking (it sums untrusted offsets and
//! sizes).
//!
//! The same bytes are also decoded as a write-intent bitmap block, and as a bad-block log
//! (format minor 1): `BadLog::decode` must not
//! panic, both as they are (almost always "no log") and with the log's magic, a member
//! UUID and a correct CRC written in, so that its count and ranges are checked; whatever it
//! accepts must encode and decode to the same list.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raidkit::format::{
    BADLOG_MAGIC, BADLOG_SIZE, BadLog, IntentBitmap, MAGIC, Regions, SB_SIZE, Superblock,
};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    validate_regions(rest);
    bad_log(rest, mode);
    // And a write-intent bitmap block: never a panic, whatever the geometry.
    let _ = IntentBitmap::decode(rest, &[7u8; 16], 1 + u64::from(mode) * 997);
    if mode % 2 == 0 {
        round_trip(rest);
    } else {
        round_trip(&with_valid_crc(rest));
    }
});

/// `bytes` padded with zeros or cut to `SB_SIZE`, with the magic number at byte 0 and the
/// CRC-32 of bytes `0..SB_SIZE - 4` in the last four, little-endian.
fn with_valid_crc(bytes: &[u8]) -> Vec<u8> {
    let mut sb = bytes[..bytes.len().min(SB_SIZE)].to_vec();
    sb.resize(SB_SIZE, 0);
    sb[..MAGIC.len()].copy_from_slice(&MAGIC);
    let crc = crc32fast::hash(&sb[..SB_SIZE - 4]);
    sb[SB_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
    sb
}

/// Decodes `bytes`; when that succeeds, the encoding of the result must decode to the
/// same superblock.
fn round_trip(bytes: &[u8]) {
    let Ok(first) = Superblock::decode(bytes) else {
        return;
    };
    let encoded = first.encode();
    assert_eq!(encoded.len(), SB_SIZE, "encode must produce one copy");
    match Superblock::decode(&encoded) {
        Ok(second) => assert_eq!(second, first, "decode(encode(sb)) != sb"),
        Err(e) => panic!("re-encoded superblock does not decode: {e}\nfirst decode: {first:?}"),
    }
}

/// `Regions::validate` on nine arbitrary `u64`s; only must not panic.
fn validate_regions(bytes: &[u8]) {
    let Some(words) = bytes.get(..9 * 8) else {
        return;
    };
    let mut values = words
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8-byte chunk")));
    let mut next = || values.next().expect("nine words");
    let regions = Regions {
        bitmap_offset: next(),
        bitmap_size: next(),
        journal_offset: next(),
        journal_size: next(),
        csum_offset: next(),
        csum_size: next(),
        data_offset: next(),
        data_size: next(),
    };
    let member_size = next();
    let _ = regions.validate(member_size);
}

/// `BadLog::decode` on the bytes as they are, and (odd modes) with a valid header and CRC;
/// an accepted log must round-trip. The mode byte picks the data region's size in blocks.
fn bad_log(bytes: &[u8], mode: u8) {
    let uuid = [7u8; 16];
    let blocks = 1u64 << (mode % 64);
    let _ = BadLog::decode(bytes, &uuid, blocks);
    if mode % 2 == 0 {
        return;
    }
    let mut log = bytes[..bytes.len().min(BADLOG_SIZE)].to_vec();
    log.resize(BADLOG_SIZE, 0);
    log[..8].copy_from_slice(&BADLOG_MAGIC);
    log[8..24].copy_from_slice(&uuid);
    let crc = crc32fast::hash(&log[..BADLOG_SIZE - 4]);
    log[BADLOG_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
    if let Ok(first) = BadLog::decode(&log, &uuid, blocks) {
        let again = BadLog::decode(&first.encode(&uuid), &uuid, blocks);
        assert_eq!(again.as_ref(), Ok(&first), "a decoded log must round-trip");
    }
}
