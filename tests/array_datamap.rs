//! The data map: an array that starts as zeros knows which regions were written since
//! create; a rebuild onto a disk that reads as zeros, a scrub and a resync skip the rest,
//! and every byte still reads back with any m members lost.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use raidkit::array::{
    Array, ArrayOptions, CreateOptions, InitialSync, RebuildOptions, ScrubOptions,
};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{boxed, from_images, read_all};

const MEMBER: u64 = 16 << 20;
const CHUNK: u64 = 16 << 10;

fn quiet() -> ArrayOptions {
    ArrayOptions {
        error_threshold: u64::MAX,
        ..ArrayOptions::default().allow_degraded()
    }
}

fn disks(n: usize) -> Vec<Arc<MemDisk>> {
    (0..n)
        .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), MEMBER, 4096)))
        .collect()
}

/// Replaces member `old` with `new` (taken whatever it holds), to the end.
fn replace(array: &Array, old: &str, new: &Arc<MemDisk>) -> raidkit::array::RebuildReport {
    array
        .replace(
            old,
            Box::new(new.clone()),
            true,
            &RebuildOptions::default(),
            &AtomicBool::new(false),
            &|_| {},
        )
        .unwrap()
}

/// A few scattered writes into an array of `size` bytes, applied to `model`.
fn scatter(array: &Array, model: &mut [u8], seed: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..4 {
        let len = 1 + rng.below(20_000);
        let at = rng.below(model.len() - len);
        let bytes = rng.block(len);
        array.write_at(&bytes, at as u64).unwrap();
        model[at..at + len].copy_from_slice(&bytes);
    }
}

/// A new array of parity `m` over `members` (zeros): it keeps a data map.
fn zero_array(members: &[Arc<MemDisk>], m: usize) -> Array {
    Array::create(
        boxed(members),
        &CreateOptions::new(Level::Parity { m })
            .chunk(CHUNK)
            .array_options(quiet()),
    )
    .unwrap()
}

/// An array of parity `m` over `members` (zeros), with a few scattered writes (`seed`) in
/// it and in the returned model.
fn written_array(members: &[Arc<MemDisk>], m: usize, seed: u64) -> (Array, Vec<u8>) {
    let array = zero_array(members, m);
    let mut model = vec![0u8; array.len() as usize];
    scatter(&array, &mut model, seed);
    (array, model)
}

/// Reads everything back from fresh copies of `images` with every set of up to `m`
/// members left out.
fn reads_back_without_any(images: &[Vec<u8>], m: usize, model: &[u8]) {
    let n = images.len();
    let mut sets: Vec<Vec<usize>> = vec![vec![]];
    for a in 0..n {
        sets.push(vec![a]);
        if m >= 2 {
            for b in a + 1..n {
                sets.push(vec![a, b]);
            }
        }
    }
    for gone in sets {
        let present: Vec<Box<dyn Disk>> = from_images("d", images)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, d)| Box::new(d) as Box<dyn Disk>)
            .collect();
        let array = Array::assemble(present, &quiet()).unwrap();
        let back = read_all(&array).unwrap();
        assert!(back == model, "without {gone:?}: contents differ");
    }
}

/// RAID-6 over zero members: the map counts the written regions; a replace onto a new zero
/// disk copies only those (the rest is skipped, and reads as zeros with zero entries);
/// with any two members lost afterwards every byte reads back; a scrub skips the rest and
/// finds nothing wrong.
#[test]
fn a_rebuild_onto_a_zero_disk_copies_only_what_was_written() {
    let members = disks(6);
    let array = Array::create(
        boxed(&members),
        &CreateOptions::new(Level::Parity { m: 2 })
            .chunk(CHUNK)
            .array_options(quiet()),
    )
    .unwrap();
    let mut model = vec![0u8; array.len() as usize];
    let status = array.status();
    assert_eq!(status.data_bytes, Some(0), "nothing written yet");
    scatter(&array, &mut model, 7);
    let written = array.status().data_bytes.unwrap();
    assert!(written > 0 && written < array.len() / 4, "{written}");

    let new = Arc::new(MemDisk::new("new", MEMBER, 4096));
    let report = replace(&array, "d2", &new);
    assert!(report.skipped > 0, "nothing skipped");
    assert!(report.skipped < report.bytes);
    // Copied: the written regions' chunks of this role, no more.
    let copied = report.bytes - report.skipped;
    assert!(copied <= written, "{copied} copied for {written} written");
    assert!(read_all(&array).unwrap() == model);
    let scrub = array
        .scrub(ScrubOptions::default(), &AtomicBool::new(false), &|_| {})
        .unwrap();
    assert!(scrub.damaged.is_empty() && scrub.unrecoverable.is_empty());
    assert!(scrub.skipped > 0);
    array.close().unwrap();

    let mut images: Vec<Vec<u8>> = members.iter().map(|d| d.snapshot()).collect();
    images[2] = new.snapshot();
    // The new disk stayed zero where nothing was written.
    assert!(images[2].iter().filter(|b| **b != 0).count() < MEMBER as usize / 4);
    reads_back_without_any(&images, 2, &model);
}

/// Where the map would be wrong — a disk that does not read as zeros, or an array that did
/// not start as zeros — nothing is skipped.
#[test]
fn nothing_is_skipped_without_zeros_to_stand_on() {
    // A replacement disk holding old bytes everywhere.
    let members = disks(4);
    let (array, model) = written_array(&members, 1, 11);
    let dirty = Arc::new(MemDisk::from_image(
        "old",
        vec![0x5a; MEMBER as usize],
        4096,
    ));
    let report = replace(&array, "d1", &dirty);
    assert_eq!(report.skipped, 0);
    array.close().unwrap();
    let mut images: Vec<Vec<u8>> = members.iter().map(|d| d.snapshot()).collect();
    images[1] = dirty.snapshot();
    reads_back_without_any(&images, 1, &model);

    // An array whose members held data at create (a full initial sync): no map.
    let members: Vec<Arc<MemDisk>> = (0..4)
        .map(|i| {
            Arc::new(MemDisk::from_image(
                &format!("d{i}"),
                vec![7; MEMBER as usize],
                4096,
            ))
        })
        .collect();
    let array = Array::create(
        boxed(&members),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(CHUNK)
            .force(true)
            .sync(InitialSync::Full)
            .array_options(quiet()),
    )
    .unwrap();
    assert_eq!(array.status().data_bytes, None);
    let scrub = array
        .scrub(ScrubOptions::default(), &AtomicBool::new(false), &|_| {})
        .unwrap();
    assert_eq!(scrub.skipped, 0);
}

/// The map survives a restart, and a scrub after it still skips only what was never
/// written.
#[test]
fn the_map_is_on_the_members() {
    let members = disks(5);
    let (array, model) = written_array(&members, 2, 3);
    let written = array.status().data_bytes;
    array.close().unwrap();
    let array = Array::assemble(boxed(&members), &quiet()).unwrap();
    assert_eq!(array.status().data_bytes, written);
    assert!(read_all(&array).unwrap() == model);
    // Without one member the map is still known (every member holds it).
    drop(array);
    let array = Array::assemble(boxed(&members[1..]), &quiet()).unwrap();
    assert_eq!(array.status().data_bytes, written);
}

/// Writing zeros (NBD `WRITE_ZEROES`, `TRIM`) over regions never written costs nothing and
/// marks nothing: the map, and so what a rebuild copies, stays as it was. Over written
/// regions the zeros are written as before.
#[test]
fn zeros_over_unwritten_regions_mark_nothing() {
    let members = disks(5);
    let array = zero_array(&members, 2);
    let size = array.len();
    let mut model = vec![0u8; size as usize];
    let data = Rng::new(4).block(10_000);
    array.write_at(&data, 0).unwrap();
    model[..data.len()].copy_from_slice(&data);
    let before = array.status().data_bytes.unwrap();
    assert!(
        before < size / 4,
        "{before} of {size}: the map is coarse enough here"
    );
    let half = (size / 2).next_multiple_of(4096);
    array.write_zeroes(half, size - half).unwrap();
    array.discard(half, size - half).unwrap();
    array.write_zeroes(before, 4096).unwrap();
    assert_eq!(
        array.status().data_bytes.unwrap(),
        before,
        "zeros over never-written regions mark nothing"
    );
    // Over written data the zeros are real.
    array.write_zeroes(100, 5000).unwrap();
    model[100..5100].fill(0);
    assert!(read_all(&array).unwrap() == model);
    array.close().unwrap();
    let images: Vec<Vec<u8>> = members.iter().map(|d| d.snapshot()).collect();
    reads_back_without_any(&images, 2, &model);
}
