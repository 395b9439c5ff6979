//! The journal's own on-disk records as untrusted input (issue 14, findings 1 and 2).
//!
//! - A journal header with a valid CRC but an absurd tail (`u64::MAX`) is damaged, not the
//!   newest: assemble, the journal's start and replay read headers through one reader with
//!   one bound, and the array keeps working.
//! - A record one of whose parts fails its data CRC is coded across the members like the
//!   stripe: replay rebuilds the damaged part from the others and writes the record in
//!   place, instead of skipping a record that was durable and partly written in place.

use std::sync::Arc;

use raidkit::array::{Array, ArrayError, ArrayOptions, Consistency, CreateOptions};
use raidkit::disk::{Disk, MemDisk};
use raidkit::format::{self, JournalHeader};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{boxed, from_images};

const MEMBER: u64 = 8 << 20;
const CHUNK: u64 = 16 << 10;

fn journal_array(level: Level, n: usize) -> (Vec<Arc<MemDisk>>, Array) {
    let disks: Vec<Arc<MemDisk>> = (0..n)
        .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), MEMBER, 4096)))
        .collect();
    let options = CreateOptions::new(level)
        .chunk(CHUNK)
        .consistency(Consistency::Journal);
    let array = Array::create(boxed(&disks), &options).expect("create");
    (disks, array)
}

fn read_range(array: &Array, offset: u64, len: usize) -> Result<Vec<u8>, ArrayError> {
    let mut back = vec![0u8; len];
    array.read_at(&mut back, offset).map(|()| back)
}

/// Finding 1: every member's journal header says `tail = u64::MAX` with a valid CRC. Before
/// the fix assemble took it as the newest checkpoint and the journal counted on from it (an
/// overflow: a panic with overflow checks, a hang without). Now it is a damaged header:
/// the array assembles, takes writes through the journal, and gives them back after a
/// clean close and after a crash (replay).
#[test]
fn a_journal_header_with_an_absurd_tail_is_damaged_not_newest() {
    for (level, n) in [(Level::Parity { m: 1 }, 4), (Level::Parity { m: 2 }, 5)] {
        let (disks, array) = journal_array(level, n);
        let mut rng = Rng::new(14);
        let mut want = rng.block(4 * CHUNK as usize);
        array.write_at(&want, 0).expect("write");
        array.close().expect("close");
        for tail in [u64::MAX, format::JOURNAL_SEQ_LIMIT] {
            for disk in &disks {
                let sb = raidkit::meta::read_superblock(disk.as_ref())
                    .expect("sb")
                    .superblock;
                let header = JournalHeader {
                    tail,
                    nonce: 7,
                    checkpoints: sb.journal_checkpoints,
                };
                let block = header.encode(&sb.array_uuid, &sb.member_uuid);
                disk.write_at(&block, sb.regions.journal_offset)
                    .expect("write header");
                let mut back = vec![0u8; block.len()];
                disk.read_at(&mut back, sb.regions.journal_offset)
                    .expect("read header");
                assert_eq!(
                    JournalHeader::decode(&back, &sb.array_uuid, &sb.member_uuid),
                    None,
                    "a tail of {tail} must not decode"
                );
            }
            let array = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded())
                .expect("assemble with damaged journal headers");
            assert_eq!(read_range(&array, 0, want.len()).expect("read"), want);
            let second = rng.block(2 * CHUNK as usize + 4096);
            array.write_at(&second, CHUNK).expect("write after");
            array.flush().expect("flush");
            // A crash: the images as they are, without a close; the replay must run.
            let images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
            array.close().expect("close");
            let crashed = from_images("d", &images);
            let again = Array::assemble(boxed(&crashed), &ArrayOptions::default().allow_degraded())
                .expect("assemble after a crash");
            want[CHUNK as usize..][..second.len()].copy_from_slice(&second);
            assert_eq!(read_range(&again, 0, want.len()).expect("read"), want);
            again.close().expect("close");
            let again = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded())
                .expect("assemble after a close");
            assert_eq!(read_range(&again, 0, want.len()).expect("read"), want);
            again.close().expect("close");
        }
    }
}

/// Finding 2: a durable record, partly written in place, one of whose parts fails its data
/// CRC. Every data member's chunk of the stripe is put back to its old contents (as if the
/// crash came before the in-place writes reached them) and one member's journal part is
/// damaged. Replay must rebuild the damaged part from the record's other parts and give
/// back the new bytes; skipping the record (the old behaviour) leaves more stale chunks
/// than the stripe can correct.
#[test]
fn a_damaged_journal_part_is_rebuilt_from_the_record() {
    for (m, n) in [(1, 4), (2, 5)] {
        let level = Level::Parity { m };
        let (disks, array) = journal_array(level, n);
        let k = n - m;
        let stripe = k * CHUNK as usize;
        let mut rng = Rng::new(1402);
        let old = rng.block(2 * stripe);
        array.write_at(&old, 0).expect("write old");
        array.flush().expect("flush");
        let before: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
        // A whole stripe, so that every member holds a part of the record.
        let new = rng.block(stripe);
        array.write_at(&new, stripe as u64).expect("write new");
        array.flush().expect("flush");
        let mut after: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
        array.close().expect("close");

        let regions = raidkit::meta::read_superblock(disks[0].as_ref())
            .expect("sb")
            .superblock
            .regions;
        let data = regions.data_offset as usize..(regions.data_offset + regions.data_size) as usize;
        let journal = regions.journal_offset as usize
            ..(regions.journal_offset + regions.journal_size) as usize;
        let mut damaged = None;
        for (member, image) in after.iter_mut().enumerate() {
            // The chunk this member got from the write, as it went in place.
            let changed = (data.start..data.end)
                .step_by(4096)
                .find(|&at| image[at..at + 4096] != before[member][at..at + 4096]);
            let Some(at) = changed else { continue };
            let chunk = image[at..at + CHUNK as usize].to_vec();
            // Data members' chunks go back to before the write.
            let is_data = new.chunks(CHUNK as usize).any(|c| c == chunk);
            if is_data {
                image[data.clone()].copy_from_slice(&before[member][data.clone()]);
            }
            // The first data member's journal part is damaged: one byte of its data.
            if is_data && damaged.is_none() {
                let part = image[journal.clone()]
                    .windows(4096)
                    .position(|w| w == &chunk[..4096])
                    .expect("the part is in the journal");
                image[journal.start + part + 100] ^= 0x5a;
                damaged = Some(member);
            }
        }
        assert!(damaged.is_some(), "no data member's part found");
        let crashed = from_images("d", &after);
        let again = Array::assemble(boxed(&crashed), &ArrayOptions::default().allow_degraded())
            .expect("assemble after a crash with a damaged part");
        let report = again.status().replay.expect("a replay ran");
        assert!(
            report.replayed >= 1,
            "the record was not replayed: {report:?}"
        );
        let mut want = old.clone();
        want[stripe..].copy_from_slice(&new);
        assert_eq!(
            read_range(&again, 0, want.len()).expect("read after replay"),
            want,
            "{level:?}: wrong bytes after replaying a record with a damaged part"
        );
        again.close().expect("close");
    }
}
