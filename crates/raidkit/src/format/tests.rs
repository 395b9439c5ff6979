//! Pinned encodings and decoder checks of every record.

use super::*;
use crate::layout::{Layout, Level};

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
fn one_crash_guard_per_array() {
    for (flags, ok) in [
        (0, true),
        (FLAG_BITMAP, true),
        (FLAG_JOURNAL, true),
        (FLAG_BITMAP | FLAG_JOURNAL, false),
    ] {
        let mut sb = sample();
        sb.flags = flags;
        let back = Superblock::decode(&sb.encode());
        assert_eq!(back.is_ok(), ok, "flags {flags:#x}");
        if !ok {
            assert!(matches!(
                back,
                Err(FormatError::Invalid { field: "flags", .. })
            ));
        }
    }
}

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

#[test]
fn health_record_is_pinned() {
    assert_eq!((HEALTH_OFFSET, HEALTH_SIZE), (128 << 10, 64 << 10));
    assert_eq!((HEALTH_MAX_ENTRIES, HEALTH_PATH_MAX), (253, 206));
    let array = [0xC3u8; 16];
    let record = HealthRecord {
        generation: 0x0102_0304_0506_0708,
        scrub: Some(ScrubRecord {
            ended: 11,
            found: 12,
            repaired: 13,
            unrecoverable: 14,
            repair: true,
            cancelled: true,
        }),
        rebuild: Some(RebuildRecord {
            ended: 21,
            role: 22,
            replace: true,
            cancelled: false,
            bytes: 23,
            lost: 24,
        }),
        members: vec![HealthEntry {
            uuid: [0xD4; 16],
            counts: ErrorCounts {
                read_errors: 31,
                write_errors: 32,
                checksum_errors: 33,
                repaired: 34,
            },
            path: "/dev/loop7".to_string(),
        }],
    };
    let b = record.encode(&array);
    assert_eq!(b.len(), 65536);
    assert_eq!(&b[..8], b"RKHEALTH");
    assert_eq!(&b[8..24], &array);
    assert_eq!(get_u64(&b, 24), 0x0102_0304_0506_0708);
    assert_eq!(get_u32(&b, 32), 1);
    let header: Vec<u64> = [40, 48, 56, 64, 80, 96, 104]
        .iter()
        .map(|&at| get_u64(&b, at))
        .collect();
    assert_eq!(header, [11, 12, 13, 14, 21, 23, 24]);
    assert_eq!(
        (get_u32(&b, 72), get_u32(&b, 88), get_u32(&b, 92)),
        (3, 22, 1)
    );
    assert_eq!(&b[512..528], &[0xD4; 16]);
    let counts: Vec<u64> = (0..4).map(|i| get_u64(&b, 528 + 8 * i)).collect();
    assert_eq!(counts, [31, 32, 33, 34]);
    assert_eq!(get_u16(&b, 560), 10);
    assert_eq!(&b[562..572], b"/dev/loop7");
    assert!(b[572..65532].iter().all(|&x| x == 0));
    assert_eq!(get_u32(&b, 65532), crc32fast::hash(&b[..65532]));
    assert_eq!(HealthRecord::decode(&b, &array).unwrap(), Some(record));
}

/// A data-map block decodes back to its bits, and only for its own array, geometry and
/// index, with its CRC intact.
#[test]
fn data_map_blocks_round_trip_and_refuse_anything_else() {
    let per = DATA_MAP_MIN_STRIPES_PER_BIT;
    let stripes = (3 * DATA_MAP_BITS_PER_BLOCK + 17) * per;
    let (per_bit, bits, blocks) = DataMapBlock::geometry(stripes);
    assert_eq!((per_bit, bits, blocks), (per, stripes / per, 4));
    let uuid = [9u8; 16];
    let block = DataMapBlock {
        index: 3,
        bits: (0..17).map(|i| i % 3 == 0).collect(),
    };
    let bytes = block.encode(&uuid, stripes);
    assert_eq!(DataMapBlock::decode(&bytes, &uuid, stripes, 3), Some(block));
    assert_eq!(DataMapBlock::decode(&bytes, &[8u8; 16], stripes, 3), None);
    assert_eq!(DataMapBlock::decode(&bytes, &uuid, stripes + 1, 3), None);
    assert_eq!(DataMapBlock::decode(&bytes, &uuid, stripes, 2), None);
    let mut torn = bytes.clone();
    torn[100] ^= 1;
    assert_eq!(DataMapBlock::decode(&torn, &uuid, stripes, 3), None);
    assert_eq!(
        DataMapBlock::decode(&vec![0u8; 4096], &uuid, stripes, 3),
        None
    );
    // A huge array: a bit covers several stripes, and the map still fits its 512 KiB.
    let (per_bit, bits, blocks) = DataMapBlock::geometry(1 << 40);
    assert!(per_bit > 1 && blocks <= DATA_MAP_BLOCKS);
    assert!(bits * per_bit >= 1 << 40);
    assert!(DATA_MAP_OFFSET + (DATA_MAP_BLOCKS * DATA_MAP_BLOCK) as u64 <= JOURNAL_OFFSET);
}
