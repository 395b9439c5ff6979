//! Compatibility images: small arrays written by format v1, frozen under `tests/data/`.
//! Every later version must still assemble them and read every byte (also degraded).
//!
//! An image file holds every member of one array, sparsely: a header (magic `RKIMAGE1`,
//! member count u32, member size u64, CRC-32 of the expected array contents u32), then
//! records (member u32, offset u64, 4096 bytes) for every non-zero 4 KiB block, ended by
//! member `u32::MAX`. The expected contents are rebuilt by [`writes`] and checked against
//! the stored CRC, so the test also notices if the generator changes.
//!
//! `RAIDKIT_WRITE_FROZEN_IMAGES=1 cargo test --test frozen_images` rewrites the images;
//! only do that when adding a new image, never to make an old one pass.

use std::path::PathBuf;
use std::sync::Arc;

use raidkit::array::{Array, ArrayOptions, ArrayState, CreateOptions};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{assemble_images, from_images};

const MEMBER: u64 = 4 << 20;
const BLOCK: usize = 4096;

/// (file name, level, members, chunk).
const IMAGES: [(&str, Level, usize, u64); 4] = [
    ("v1-raid1-2.rkimg", Level::Mirror, 2, 64 << 10),
    ("v1-raid5-3.rkimg", Level::Parity { m: 1 }, 3, 16 << 10),
    ("v1-raid6-4.rkimg", Level::Parity { m: 2 }, 4, 4 << 10),
    ("v1-k3-6.rkimg", Level::Parity { m: 3 }, 6, 8 << 10),
];

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The writes that made each image: a few ranges, some unaligned.
fn writes(size: u64, seed: u64) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let mut out = vec![(0, rng.block(20_000))];
    for _ in 0..6 {
        let at = rng.below(size as usize - 20_000) as u64;
        let len = 1 + rng.below(6_000);
        out.push((at, rng.block(len)));
    }
    out
}

fn expected(size: u64, seed: u64) -> Vec<u8> {
    let mut model = vec![0u8; size as usize];
    for (at, bytes) in writes(size, seed) {
        model[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
    }
    model
}

fn encode(images: &[Vec<u8>], crc: u32) -> Vec<u8> {
    let mut out = b"RKIMAGE1".to_vec();
    out.extend((images.len() as u32).to_le_bytes());
    out.extend(MEMBER.to_le_bytes());
    out.extend(crc.to_le_bytes());
    for (member, image) in images.iter().enumerate() {
        for (i, block) in image.chunks(BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                out.extend((member as u32).to_le_bytes());
                out.extend(((i * BLOCK) as u64).to_le_bytes());
                out.extend(block);
            }
        }
    }
    out.extend(u32::MAX.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> (Vec<Vec<u8>>, u32) {
    assert_eq!(&bytes[..8], b"RKIMAGE1");
    let n = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let size = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    let mut images = vec![vec![0u8; size]; n];
    let mut at = 24;
    loop {
        let member = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if member == u32::MAX {
            break;
        }
        let offset = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap()) as usize;
        images[member as usize][offset..offset + BLOCK]
            .copy_from_slice(&bytes[at + 12..at + 12 + BLOCK]);
        at += 12 + BLOCK;
    }
    (images, crc)
}

fn generate(name: &str, level: Level, n: usize, chunk: u64, seed: u64) {
    let disks: Vec<Arc<MemDisk>> = (0..n)
        .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let array = Array::create(
        disks
            .iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect(),
        &CreateOptions::new(level).chunk(chunk).name(name),
    )
    .unwrap();
    for (at, bytes) in writes(array.len(), seed) {
        array.write_at(&bytes, at).unwrap();
    }
    let crc = crc32fast::hash(&expected(array.len(), seed));
    array.close().unwrap();
    let images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    std::fs::create_dir_all(path("")).unwrap();
    std::fs::write(path(name), encode(&images, crc)).unwrap();
}

#[test]
fn frozen_v1_images_assemble_and_read() {
    for (seed, (name, level, n, chunk)) in IMAGES.into_iter().enumerate() {
        if std::env::var_os("RAIDKIT_WRITE_FROZEN_IMAGES").is_some() {
            generate(name, level, n, chunk, seed as u64);
        }
        let bytes = std::fs::read(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (images, crc) = decode(&bytes);
        assert_eq!(images.len(), n, "{name}");
        for skip in [None, Some(0), Some(n - 1)] {
            let array = assemble_images(&images, skip.as_slice()).unwrap();
            let status = array.status();
            assert_eq!(
                (status.level, status.members.len(), status.chunk),
                (level, n, chunk),
                "{name}"
            );
            assert_eq!(status.name, name);
            assert_eq!(status.data_offset, 3 << 20, "{name}");
            assert!(!status.dirty, "{name}: closed cleanly");
            let expected_state = if skip.is_some() {
                ArrayState::Degraded
            } else {
                ArrayState::Clean
            };
            assert_eq!(status.state, expected_state, "{name}");
            let model = expected(array.len(), seed as u64);
            assert_eq!(
                crc32fast::hash(&model),
                crc,
                "{name}: the generator changed"
            );
            let mut back = vec![0u8; array.len() as usize];
            array.read_at(&mut back, 0).unwrap();
            assert!(back == model, "{name} (without {skip:?}): contents differ");
            // Still writable.
            array.write_at(b"still writable", 12345).unwrap();
            let mut check = [0u8; 14];
            array.read_at(&mut check, 12345).unwrap();
            assert_eq!(&check, b"still writable");
        }
    }
}

/// A format 1.1 image: RAID-5 over four members, written, scrubbed half way (scrub position
/// recorded), then member 0 failed and rebuilt onto a spare, stopped part way (rebuilding
/// slot with a checkpoint) after a latent sector error on member 2 made one row of the
/// spare lost (bad-block log). Holds members 1, 2, 3 and the spare. Generated with
/// `RAIDKIT_WRITE_FROZEN_V1_1=1`; never regenerated to make the test pass.
const V1_1: &str = "v1.1-raid5-rebuilding.rkimg";
/// Block of member 2 (index in the data region) that could not be read during the rebuild.
const V1_1_LOST_BLOCK: u64 = 9;

fn generate_v1_1(seed: u64) {
    use raidkit::array::{RebuildOptions, ScrubOptions};
    use raidkit_testkit::sim::SimDisk;
    use std::sync::atomic::{AtomicBool, Ordering};
    let sims: Vec<Arc<SimDisk>> = (0..5)
        .map(|i| Arc::new(SimDisk::with_block_size(&format!("d{i}"), MEMBER, 4096, i)))
        .collect();
    let boxed = |range: std::ops::Range<usize>| -> Vec<Box<dyn Disk>> {
        sims[range]
            .iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect()
    };
    let array = Array::create(
        boxed(0..4),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(16 << 10)
            .name(V1_1),
    )
    .unwrap();
    for (at, bytes) in writes(array.len(), seed) {
        array.write_at(&bytes, at).unwrap();
    }
    array.close().unwrap();
    let array = Array::assemble(boxed(0..4), &ArrayOptions::default().allow_degraded()).unwrap();
    let total = array.regions().data_size;
    let cancel = AtomicBool::new(false);
    let scrub = ScrubOptions {
        checkpoint_every: 64 << 10,
        ..ScrubOptions::default()
    };
    array
        .scrub(scrub, &cancel, &|p| {
            if p.done >= total / 2 {
                cancel.store(true, Ordering::Release)
            }
        })
        .unwrap();
    let data_offset = array.regions().data_offset;
    sims[2].add_bad_range(data_offset + V1_1_LOST_BLOCK * 4096, 4096);
    array.fail_member("d0").unwrap();
    array.add_spare(Box::new(sims[4].clone()), false).unwrap();
    let cancel = AtomicBool::new(false);
    let rebuild = RebuildOptions {
        checkpoint_every: 64 << 10,
        ..RebuildOptions::default()
    };
    array
        .rebuild(&rebuild, &cancel, &|p| {
            if p.done >= total * 3 / 5 {
                cancel.store(true, Ordering::Release)
            }
        })
        .unwrap();
    array.close().unwrap();
    let images: Vec<Vec<u8>> = sims[1..].iter().map(|d| d.live_image()).collect();
    let size = assemble_images(&images, &[]).unwrap().len();
    let crc = crc32fast::hash(&expected(size, seed));
    std::fs::write(path(V1_1), encode(&images, crc)).unwrap();
}

#[test]
fn frozen_v1_1_image_continues_its_rebuild_and_scrub() {
    use raidkit::array::{MemberState, RebuildOptions, ScrubOptions};
    use std::sync::atomic::AtomicBool;
    let seed = 11;
    if std::env::var_os("RAIDKIT_WRITE_FROZEN_V1_1").is_some() {
        generate_v1_1(seed);
    }
    let bytes = std::fs::read(path(V1_1)).unwrap_or_else(|e| panic!("{V1_1}: {e}"));
    let (images, crc) = decode(&bytes);
    assert_eq!(images.len(), 4);
    let array = assemble_images(&images, &[]).unwrap();
    let status = array.status();
    assert_eq!(status.name, V1_1);
    assert_eq!(status.state, ArrayState::Degraded);
    let data_size = status.data_size;
    // The rebuild stopped part way, at a recorded checkpoint.
    assert_eq!(status.rebuilds.len(), 1);
    let rebuild = &status.rebuilds[0];
    assert_eq!((rebuild.role, rebuild.member.as_str()), (0, "m3"));
    assert!(
        rebuild.done >= data_size / 2 && rebuild.done < data_size,
        "{rebuild:?}"
    );
    assert!(!rebuild.running && !rebuild.replacing);
    let spare = status.members.iter().find(|m| m.name == "m3").unwrap();
    assert_eq!(spare.state, MemberState::Rebuilding);
    assert_eq!(
        spare.bad_blocks,
        vec![(status.data_offset + V1_1_LOST_BLOCK * 4096, 4096)],
        "the lost row is in the spare's bad-block log"
    );
    // The scrub stopped half way.
    let mark = status.scrub.expect("a scrub position");
    assert!(mark.position >= data_size / 2 && mark.position < data_size && !mark.repair);
    // Every byte reads back: the sector error was in the simulator only, so the lost row
    // rebuilds from the other members now (and leaves the log).
    let model = expected(array.len(), seed);
    assert_eq!(crc32fast::hash(&model), crc, "the generator changed");
    let mut back = vec![0u8; array.len() as usize];
    array.read_at(&mut back, 0).unwrap();
    assert!(back == model, "contents differ");
    let spare = array
        .status()
        .members
        .into_iter()
        .find(|m| m.name == "m3")
        .unwrap();
    assert!(spare.bad_blocks.is_empty(), "rebuilt on read: off the list");
    // Both continue from where they stopped.
    let reports = array
        .rebuild(&RebuildOptions::default(), &AtomicBool::new(false), &|_| {})
        .unwrap();
    assert_eq!(reports[0].resumed_from, rebuild.done);
    let scrub = array
        .scrub(ScrubOptions::default(), &AtomicBool::new(false), &|_| {})
        .unwrap();
    assert_eq!(scrub.resumed_from, mark.position);
    assert!(scrub.damaged.is_empty() && scrub.unrecoverable.is_empty());
    assert_eq!(array.status().state, ArrayState::Clean);
    array.read_at(&mut back, 0).unwrap();
    assert!(back == model);
}

/// A format 1.2 image of a crashed journal array: RAID-6 over five members, written and
/// flushed, then one 4 KiB write whose journal record reached the members (every part
/// written and flushed) while its in-place writes were lost (the power failed right after
/// the journal flush), and a second write that reached nothing. Holds members 1 … 4:
/// member 0 is lost, so the start is dirty and degraded. Generated with
/// `RAIDKIT_WRITE_FROZEN_V1_2=1`; never regenerated to make the test pass.
const V1_2: &str = "v1.2-raid6-journal-crashed.rkimg";
/// The write whose record is in the journal, and the one that never started.
const V1_2_LOGGED: (u64, u8) = (8192, 0x5a);
const V1_2_LOST: (u64, u8) = (200_704, 0xa5);

fn generate_v1_2(seed: u64) {
    use raidkit_testkit::sim::{PowerLine, SimDisk};
    let sims: Vec<Arc<SimDisk>> = (0..5)
        .map(|i| Arc::new(SimDisk::with_block_size(&format!("d{i}"), MEMBER, 4096, i)))
        .collect();
    let boxed = || -> Vec<Box<dyn Disk>> {
        sims.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect()
    };
    let serial = ArrayOptions {
        serial_io: true,
        ..ArrayOptions::default().allow_degraded()
    };
    let array = Array::create(
        boxed(),
        &CreateOptions::new(Level::Parity { m: 2 })
            .chunk(16 << 10)
            .name(V1_2)
            .array_options(serial.clone()),
    )
    .unwrap();
    for (at, bytes) in writes(array.len(), seed) {
        array.write_at(&bytes, at).unwrap();
    }
    array.flush().unwrap();
    // The record of one 4 KiB write: three parts (one data block, P, Q), each written and
    // flushed on its member — six operations, then the power is gone.
    let power = PowerLine::new(6);
    for sim in &sims {
        sim.set_power(power.clone());
    }
    array
        .write_at(&[V1_2_LOGGED.1; 4096], V1_2_LOGGED.0)
        .unwrap();
    assert!(power.is_off());
    array.write_at(&[V1_2_LOST.1; 4096], V1_2_LOST.0).unwrap();
    std::mem::forget(array);
    let images: Vec<Vec<u8>> = sims[1..]
        .iter()
        .map(|d| {
            d.crash();
            d.live_image()
        })
        .collect();
    let size = assemble_images(&images, &[]).unwrap().len();
    let crc = crc32fast::hash(&expected_v1_2(size, seed));
    std::fs::write(path(V1_2), encode(&images, crc)).unwrap();
}

/// The contents after the replay: the flushed writes and the logged one.
fn expected_v1_2(size: u64, seed: u64) -> Vec<u8> {
    let mut model = expected(size, seed);
    let (at, byte) = V1_2_LOGGED;
    model[at as usize..at as usize + 4096].fill(byte);
    model
}

#[test]
fn frozen_v1_2_journal_image_replays_degraded() {
    let seed = 12;
    if std::env::var_os("RAIDKIT_WRITE_FROZEN_V1_2").is_some() {
        generate_v1_2(seed);
    }
    let bytes = std::fs::read(path(V1_2)).unwrap_or_else(|e| panic!("{V1_2}: {e}"));
    let (images, crc) = decode(&bytes);
    assert_eq!(images.len(), 4);
    // Dirty and degraded: a journal array starts without any flag, after its replay.
    let disks = from_images("m", &images);
    let open = |skip: Option<usize>| without(&disks, skip);
    let array = Array::assemble(open(None), &ArrayOptions::default().allow_degraded()).unwrap();
    let status = array.status();
    assert_eq!(status.name, V1_2);
    assert_eq!(status.consistency, raidkit::array::Consistency::Journal);
    assert_eq!(status.state, ArrayState::Degraded);
    assert!(!status.unclean_start);
    let replay = status.replay.expect("replayed at assemble");
    // Every record since the checkpoint at create (the journal is not emptied by a flush),
    // the logged write's last; the write that never reached the journal is not there.
    assert!(replay.replayed >= 2 && replay.incomplete == 0, "{replay:?}");
    let model = expected_v1_2(array.len(), seed);
    assert_eq!(crc32fast::hash(&model), crc, "the generator changed");
    let mut back = vec![0u8; array.len() as usize];
    array.read_at(&mut back, 0).unwrap();
    assert!(back == model, "contents differ");
    let (lost_at, lost_byte) = V1_2_LOST;
    assert!(back[lost_at as usize..lost_at as usize + 4096] != [lost_byte; 4096][..]);
    array.close().unwrap();
    // The replay left parity agreeing with the data: without any one more member, the same
    // bytes; and a clean close left nothing to replay.
    for skip in 0..disks.len() {
        let array =
            Array::assemble(open(Some(skip)), &ArrayOptions::default().allow_degraded()).unwrap();
        assert!(array.status().replay.is_none());
        array.read_at(&mut back, 0).unwrap();
        assert!(back == model, "without m{skip}: contents differ");
    }
}

const V1_3: &str = "v1.3-raid5-member-behind.rkimg";
/// The write made while member 2 was away (it came back with its older image).
const V1_3_MISSED: (u64, usize, u8) = (100_000, 60_000, 0x3c);

/// Format 1.3: a RAID-5 array (bitmap mode) whose member 2 went back to an image taken
/// before a writing session, and a later session recorded it behind in the member table.
fn generate_v1_3(seed: u64) {
    let disks: Vec<Arc<MemDisk>> = (0..4)
        .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let boxed = |disks: &[Arc<MemDisk>]| -> Vec<Box<dyn Disk>> {
        disks
            .iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect()
    };
    let array = Array::create(
        boxed(&disks),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(16 << 10)
            .name(V1_3)
            .consistency(raidkit::array::Consistency::Bitmap),
    )
    .unwrap();
    for (at, bytes) in writes(array.len(), seed) {
        array.write_at(&bytes, at).unwrap();
    }
    array.close().unwrap();
    let old = disks[2].snapshot();
    let array = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
    let (at, len, byte) = V1_3_MISSED;
    array.write_at(&vec![byte; len], at).unwrap();
    array.close().unwrap();
    let mut images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    images[2] = old;
    // A later session (it writes nothing new) records the member behind.
    let now = from_images("m", &images);
    let array = Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
    let model = expected_v1_3(array.len(), seed);
    array.write_at(&model[..4096], 0).unwrap();
    array.close().unwrap();
    let images: Vec<Vec<u8>> = now.iter().map(|d| d.snapshot()).collect();
    std::fs::write(path(V1_3), encode(&images, crc32fast::hash(&model))).unwrap();
}

fn expected_v1_3(size: u64, seed: u64) -> Vec<u8> {
    let mut model = expected(size, seed);
    let (at, len, byte) = V1_3_MISSED;
    model[at as usize..at as usize + len].fill(byte);
    model
}

#[test]
fn frozen_v1_3_image_keeps_its_member_behind_until_a_resync() {
    let seed = 13;
    if std::env::var_os("RAIDKIT_WRITE_FROZEN_V1_3").is_some() {
        generate_v1_3(seed);
    }
    let bytes = std::fs::read(path(V1_3)).unwrap_or_else(|e| panic!("{V1_3}: {e}"));
    let (images, crc) = decode(&bytes);
    assert_eq!(images.len(), 4);
    // The member table records member 2 behind (a faulty slot with `since`).
    let sb = raidkit::meta::read_superblock(&MemDisk::from_image("m0", images[0].clone(), 4096))
        .unwrap()
        .superblock;
    assert_eq!(sb.minor, 3);
    assert!(matches!(
        sb.slots[2].state,
        raidkit::format::SlotState::Behind { .. }
    ));
    let disks = from_images("m", &images);
    let open = |skip: Option<usize>| without(&disks, skip);
    let array = Array::assemble(open(None), &ArrayOptions::default().allow_degraded()).unwrap();
    let status = array.status();
    assert_eq!(status.state, ArrayState::Degraded);
    assert!(status.members[2].behind_stripes.is_some_and(|s| s > 0));
    let model = expected_v1_3(array.len(), seed);
    assert_eq!(crc32fast::hash(&model), crc, "the generator changed");
    let mut back = vec![0u8; array.len() as usize];
    array.read_at(&mut back, 0).unwrap();
    assert!(back == model, "contents differ");
    array.resync(&|_, _| {}).unwrap();
    assert_eq!(array.status().state, ArrayState::Clean);
    array.close().unwrap();
    for skip in 0..disks.len() {
        let array =
            Array::assemble(open(Some(skip)), &ArrayOptions::default().allow_degraded()).unwrap();
        array.read_at(&mut back, 0).unwrap();
        assert!(back == model, "without m{skip}: contents differ");
    }
}

/// `disks` as members to assemble, all but `skip`.
fn without(disks: &[Arc<MemDisk>], skip: Option<usize>) -> Vec<Box<dyn Disk>> {
    disks
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(_, d)| Box::new(d.clone()) as Box<dyn Disk>)
        .collect()
}

/// A format 1.4 image: RAID-6 over five members that read as zeros at create, so no
/// checksum table was written (its zero entries vouch for zero blocks) and a data map is
/// kept, then a few writes.
/// Generated with `RAIDKIT_WRITE_FROZEN_V1_4=1`; never regenerated to make the test pass.
const V1_4: &str = "v1.4-raid6-zero-tables.rkimg";

fn generate_v1_4(seed: u64) {
    let disks: Vec<Arc<MemDisk>> = (0..5)
        .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let array = Array::create(
        without(&disks, None),
        &CreateOptions::new(Level::Parity { m: 2 })
            .chunk(16 << 10)
            .name(V1_4),
    )
    .unwrap();
    for (at, bytes) in writes(array.len(), seed) {
        array.write_at(&bytes, at).unwrap();
    }
    let crc = crc32fast::hash(&expected(array.len(), seed));
    array.close().unwrap();
    let images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    std::fs::write(path(V1_4), encode(&images, crc)).unwrap();
}

#[test]
fn frozen_v1_4_image_reads_zeros_through_zero_entries() {
    let seed = 14;
    if std::env::var_os("RAIDKIT_WRITE_FROZEN_V1_4").is_some() {
        generate_v1_4(seed);
    }
    let bytes = std::fs::read(path(V1_4)).unwrap_or_else(|e| panic!("{V1_4}: {e}"));
    let (images, crc) = decode(&bytes);
    assert_eq!(images.len(), 5);
    let sb = raidkit::meta::read_superblock(&MemDisk::from_image("m0", images[0].clone(), 4096))
        .unwrap()
        .superblock;
    assert_eq!(sb.minor, 4);
    assert_ne!(
        sb.flags & raidkit::format::FLAG_DATA_MAP,
        0,
        "keeps a data map"
    );
    // The last block's entry was never written: 0, vouching for zeros.
    let r = sb.regions;
    let last = (r.csum_offset + (r.data_size / 4096 - 1) * 4) as usize;
    assert_eq!(&images[0][last..last + 4], &[0u8; 4]);
    let disks = from_images("m", &images);
    let model = expected(
        Array::assemble(without(&disks, None), &ArrayOptions::default())
            .unwrap()
            .len(),
        seed,
    );
    assert_eq!(crc32fast::hash(&model), crc, "the generator changed");
    let mut back = vec![0u8; model.len()];
    for a in 0..disks.len() {
        for b in a..disks.len() {
            let gone: Vec<usize> = if a == b { vec![a] } else { vec![a, b] };
            // Fresh copies each time: a degraded start records the others missing.
            let fresh = from_images("m", &images);
            let rest: Vec<Box<dyn Disk>> = fresh
                .iter()
                .enumerate()
                .filter(|(i, _)| !gone.contains(i))
                .map(|(_, d)| Box::new(d.clone()) as Box<dyn Disk>)
                .collect();
            let array = Array::assemble(rest, &ArrayOptions::default().allow_degraded()).unwrap();
            array.read_at(&mut back, 0).unwrap();
            assert!(back == model, "without {gone:?}: contents differ");
        }
    }
    // A check-only scrub finds nothing wrong, zero blocks included.
    let array = Array::assemble(without(&disks, None), &ArrayOptions::default()).unwrap();
    let report = array
        .scrub(
            raidkit::array::ScrubOptions::default(),
            &std::sync::atomic::AtomicBool::new(false),
            &|_| {},
        )
        .unwrap();
    assert!(report.damaged.is_empty() && report.unrecoverable.is_empty());
    assert!(report.bytes > 0);
    // The map is read back (at this size the writes touch each of its 16-stripe regions).
    let written = array.status().data_bytes.expect("a data map");
    assert!(written > 0 && written <= array.len(), "{written}");
}
