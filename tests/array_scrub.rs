//! Scrub: corruption campaigns within the fault budget are found completely and repaired
//! completely; a block whose checksum entry was forged along with it is named by the parity
//! equations when there are two or more parity blocks, and reported (not guessed) with one;
//! damage beyond the budget is reported as unrecoverable; a row whose redundancy disagrees
//! with a checksum is never repaired from (scrub, read, hot replace). The same campaign on loopback
//! files. A cancelled scrub, and one cut by a crash, continue from their recorded position.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use raidkit::array::{Array, ArrayOptions, CreateOptions, ScrubOptions};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{
    boxed as boxed_disks, forge_block, from_images, mem_disks, snapshots,
};
use raidkit_testkit::sim::SimDisk;

const MEMBER: u64 = 4 << 20;
const CHUNK: u64 = 16 << 10;

fn options() -> ArrayOptions {
    ArrayOptions {
        error_threshold: u64::MAX,
        ..ArrayOptions::default().allow_degraded()
    }
}

fn scrub(array: &Array, repair: bool) -> raidkit::array::ScrubReport {
    array
        .scrub(
            ScrubOptions {
                repair,
                restart: true,
                ..ScrubOptions::default()
            },
            &AtomicBool::new(false),
            &|_| {},
        )
        .unwrap()
}

#[test]
fn campaigns_within_the_budget_are_found_and_repaired_completely() {
    for (level, n) in [
        (Level::Mirror, 3),
        (Level::Parity { m: 1 }, 4),
        (Level::Parity { m: 2 }, 6),
        (Level::Parity { m: 3 }, 6),
    ] {
        for seed in 0..3u64 {
            let sims: Vec<Arc<SimDisk>> = (0..n)
                .map(|i| {
                    Arc::new(SimDisk::new(
                        &format!("s{i}"),
                        MEMBER,
                        seed * 100 + i as u64,
                    ))
                })
                .collect();
            let array = Array::create(
                sims.iter()
                    .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                    .collect(),
                &CreateOptions::new(level)
                    .chunk(CHUNK)
                    .array_options(options()),
            )
            .unwrap();
            // Two generations: a lost write leaves a block with its first-generation bytes.
            let old = Rng::new(seed + 1000).block(array.len() as usize);
            array.write_at(&old, 0).unwrap();
            array.flush().unwrap();
            let old_images: Vec<Vec<u8>> = sims.iter().map(|s| s.live_image()).collect();
            let data = Rng::new(seed).block(array.len() as usize);
            array.write_at(&data, 0).unwrap();
            array.flush().unwrap();
            let m = array.layout().m();
            let regions = *array.regions();
            let blocks = regions.data_size / 4096;
            // Damage: bit flips, zeroed blocks, unreadable sectors, misdirected writes (another
            // block's bytes land here) and lost writes (the previous generation's bytes stay),
            // at most m members per row.
            let mut rng = Rng::new(seed + 7);
            let mut per_row: HashMap<u64, HashSet<usize>> = HashMap::new();
            let mut injected = HashSet::new();
            for _ in 0..200 {
                let member = rng.below(n);
                let block = rng.below(blocks as usize) as u64;
                let row = per_row.entry(block).or_default();
                if !row.contains(&member) && row.len() >= m {
                    continue;
                }
                row.insert(member);
                injected.insert((member, block));
                let at = regions.data_offset + block * 4096;
                match rng.below(5) {
                    0 => sims[member].flip_bit(at + rng.below(4096) as u64, rng.below(8) as u8),
                    1 => sims[member].add_bad_range(at + 512 * rng.below(8) as u64, 512),
                    2 => {
                        let other = (block + 1 + rng.below(blocks as usize - 1) as u64) % blocks;
                        let from = regions.data_offset + other * 4096;
                        let live = sims[member].live_image();
                        let bytes = live[from as usize..from as usize + 4096].to_vec();
                        sims[member].write_at(&bytes, at).unwrap();
                        sims[member].flush().unwrap();
                    }
                    3 => {
                        let bytes = old_images[member][at as usize..at as usize + 4096].to_vec();
                        sims[member].write_at(&bytes, at).unwrap();
                        sims[member].flush().unwrap();
                    }
                    _ => {
                        // Zero the block: flip every set bit.
                        let live = sims[member].live_image();
                        for byte in 0..4096u64 {
                            let value = live[(at + byte) as usize];
                            for bit in 0..8 {
                                if value & (1 << bit) != 0 {
                                    sims[member].flip_bit(at + byte, bit);
                                }
                            }
                        }
                    }
                }
            }
            let label = format!("{level:?} n={n} seed {seed}");
            let check = scrub(&array, false);
            let found: HashSet<(usize, u64)> = check
                .damaged
                .iter()
                .map(|d| (d.role, (d.member_offset - regions.data_offset) / 4096))
                .collect();
            // A zeroed block that was already zero is not damage.
            for missed in injected.difference(&found) {
                let live = sims[missed.0].live_image();
                let at = (regions.data_offset + missed.1 * 4096) as usize;
                assert!(
                    live[at..at + 4096].iter().all(|&b| b == 0),
                    "{label}: missed {missed:?}"
                );
            }
            assert!(
                check.unrecoverable.is_empty(),
                "{label}: {:?}",
                check.unrecoverable
            );
            assert!(
                check.damaged.iter().all(|d| !d.repaired),
                "{label}: check mode repaired"
            );
            let fixed = scrub(&array, true);
            assert_eq!(fixed.damaged.len(), found.len(), "{label}");
            assert_eq!(fixed.unrepaired(), 0, "{label}");
            let again = scrub(&array, false);
            assert!(
                again.damaged.is_empty() && again.unrecoverable.is_empty(),
                "{label}: {again:?}"
            );
            let mut back = vec![0u8; data.len()];
            array.read_at(&mut back, 0).unwrap();
            assert!(back == data, "{label}");
        }
    }
}

/// A block rewritten together with its checksum entry: only the parity equations can tell.
#[test]
fn a_forged_block_is_named_by_syndrome_or_reported() {
    for (level, n, attributable) in [
        (Level::Parity { m: 2 }, 5, true),
        (Level::Parity { m: 3 }, 6, true),
        (Level::Parity { m: 1 }, 4, false),
    ] {
        let disks = mem_disks("m", n, MEMBER);
        let boxed = || boxed_disks(&disks);
        let array = Array::create(boxed(), &CreateOptions::new(level).chunk(CHUNK)).unwrap();
        let data = Rng::new(3).block(array.len() as usize);
        array.write_at(&data, 0).unwrap();
        let regions = *array.regions();
        array.close().unwrap();
        // Forge block 5 of member 1: new contents and a matching checksum entry.
        let (member, block) = (1usize, 5u64);
        let forged = vec![0xA5u8; 4096];
        forge_block(disks[member].as_ref(), &regions, member, block, &forged);
        let array = Array::assemble(boxed(), &ArrayOptions::default().allow_degraded()).unwrap();
        let report = scrub(&array, true);
        if attributable {
            assert_eq!(report.damaged.len(), 1, "{level:?}: {report:?}");
            let d = &report.damaged[0];
            assert_eq!(
                (d.role, d.found_by, d.repaired),
                (member, "syndrome", true),
                "{level:?}"
            );
            let mut back = vec![0u8; data.len()];
            array.read_at(&mut back, 0).unwrap();
            assert!(back == data, "{level:?}: repaired to the right contents");
        } else {
            assert!(report.damaged.is_empty(), "{level:?}: nothing is guessed");
            assert_eq!(report.unrecoverable.len(), 1, "{level:?}: {report:?}");
            let mut block_back = vec![0u8; 4096];
            disks[member]
                .read_at(&mut block_back, regions.data_offset + block * 4096)
                .unwrap();
            assert_eq!(block_back, forged, "nothing was rewritten");
        }
    }
}

#[test]
fn damage_beyond_the_budget_is_reported_unrecoverable() {
    let sims: Vec<Arc<SimDisk>> = (0..4)
        .map(|i| Arc::new(SimDisk::new(&format!("s{i}"), MEMBER, i)))
        .collect();
    let array = Array::create(
        sims.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect(),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(CHUNK)
            .array_options(options()),
    )
    .unwrap();
    array
        .write_at(&Rng::new(1).block(array.len() as usize), 0)
        .unwrap();
    array.flush().unwrap();
    let at = array.regions().data_offset + 3 * 4096;
    sims[0].flip_bit(at + 10, 1);
    sims[2].flip_bit(at + 20, 2);
    let report = scrub(&array, true);
    assert_eq!(report.unrecoverable.len(), 1, "{report:?}");
    assert_eq!(report.unrepaired(), 2);
    // The data block of that row that lives on a damaged member cannot be read.
    let layout = *array.layout();
    let (stripe, row) = (0u64, 3u64);
    let d = (0..layout.k())
        .find(|&d| [0, 2].contains(&layout.data_member(stripe, d)))
        .unwrap();
    let mut block = vec![0u8; 4096];
    let err = array
        .read_at(&mut block, layout.array_offset(stripe, d, row * 4096))
        .unwrap_err();
    assert!(err.to_string().contains("cannot be recovered"), "{err}");
}

/// The campaign on loopback files, damaged through the file system while the array is
/// stopped: flips, zeroed blocks, misdirected and lost writes.
#[test]
fn campaign_on_loopback_files_is_found_and_repaired_completely() {
    use std::os::unix::fs::FileExt;
    for (level, n) in [(Level::Parity { m: 1 }, 4), (Level::Parity { m: 2 }, 5)] {
        let mut lb = raidkit_testkit::LoopbackArray::new(level, n, 6 << 20, CHUNK).unwrap();
        let size = lb.array().len() as usize;
        let old = Rng::new(1).block(size);
        lb.array().write_at(&old, 0).unwrap();
        lb.array().flush().unwrap();
        let old_files: Vec<Vec<u8>> = lb
            .paths()
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let data = Rng::new(2).block(size);
        lb.array().write_at(&data, 0).unwrap();
        let regions = *lb.array().regions();
        let m = lb.array().layout().m();
        lb.reassemble().unwrap(); // closed cleanly, then damaged below the array
        let blocks = regions.data_size / 4096;
        let mut rng = Rng::new(3);
        let mut per_row: HashMap<u64, HashSet<usize>> = HashMap::new();
        let mut injected = HashSet::new();
        let files: Vec<std::fs::File> = lb
            .paths()
            .iter()
            .map(|p| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(p)
                    .unwrap()
            })
            .collect();
        while injected.len() < 60 {
            let member = rng.below(n);
            let block = rng.below(blocks as usize) as u64;
            let row = per_row.entry(block).or_default();
            if row.contains(&member) || row.len() >= m {
                continue;
            }
            row.insert(member);
            injected.insert((member, block));
            let at = regions.data_offset + block * 4096;
            let mut bytes = vec![0u8; 4096];
            match injected.len() % 4 {
                0 => {
                    files[member].read_exact_at(&mut bytes, at).unwrap();
                    bytes[rng.below(4096)] ^= 1 << rng.below(8);
                }
                1 => {} // zeroed
                2 => {
                    let other = (block + 1 + rng.below(blocks as usize - 1) as u64) % blocks;
                    files[member]
                        .read_exact_at(&mut bytes, regions.data_offset + other * 4096)
                        .unwrap();
                }
                _ => bytes.copy_from_slice(&old_files[member][at as usize..at as usize + 4096]),
            }
            files[member].write_all_at(&bytes, at).unwrap();
        }
        for file in &files {
            file.sync_all().unwrap();
        }
        lb.reassemble().unwrap();
        let label = format!("{level:?}");
        let check = scrub(lb.array(), false);
        let found: HashSet<(usize, u64)> = check
            .damaged
            .iter()
            .map(|d| (d.role, (d.member_offset - regions.data_offset) / 4096))
            .collect();
        assert_eq!(
            found, injected,
            "{label}: scrub names exactly the damaged blocks"
        );
        assert!(check.unrecoverable.is_empty(), "{label}");
        let fixed = scrub(lb.array(), true);
        assert_eq!(fixed.damaged.len(), injected.len(), "{label}");
        assert_eq!(fixed.unrepaired(), 0, "{label}");
        lb.reassemble().unwrap();
        let again = scrub(lb.array(), false);
        assert!(
            again.damaged.is_empty() && again.unrecoverable.is_empty(),
            "{label}"
        );
        let mut back = vec![0u8; size];
        lb.array().read_at(&mut back, 0).unwrap();
        assert!(back == data, "{label}");
    }
}

fn damage(sim: &SimDisk, at: u64) {
    sim.flip_bit(at + 100, 3);
}

/// A scrub stopped by its cancel flag records where it was; the next one (also after a
/// reassemble) continues there and checks only the rest; `restart` starts over; a finished
/// scrub clears the position.
#[test]
fn a_cancelled_scrub_continues_where_it_stopped() {
    let sims: Vec<Arc<SimDisk>> = (0..4)
        .map(|i| {
            Arc::new(SimDisk::with_block_size(
                &format!("s{i}"),
                MEMBER,
                4096,
                i as u64,
            ))
        })
        .collect();
    let boxed = || -> Vec<Box<dyn Disk>> {
        sims.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect()
    };
    let array = Array::create(
        boxed(),
        &CreateOptions::new(Level::Parity { m: 1 }).chunk(CHUNK),
    )
    .unwrap();
    let data = Rng::new(4).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.close().unwrap();
    let array = Array::assemble(boxed(), &options()).unwrap();
    let regions = *array.regions();
    let total = regions.data_size;
    // One damaged block in the first quarter, one in the last.
    damage(&sims[1], regions.data_offset + 4096);
    damage(&sims[2], regions.data_offset + total - 4096);
    let cancel = AtomicBool::new(false);
    let first = array
        .scrub(
            ScrubOptions {
                checkpoint_every: 64 << 10,
                ..ScrubOptions::default()
            },
            &cancel,
            &|p| {
                if p.done >= total / 2 {
                    cancel.store(true, Ordering::Release);
                }
            },
        )
        .unwrap();
    assert!(first.cancelled);
    assert_eq!(first.damaged.len(), 1, "only the first quarter was checked");
    let stopped = first.stripes * CHUNK;
    assert_eq!(array.status().scrub.map(|s| s.position), Some(stopped));
    array.close().unwrap();
    let array = Array::assemble(boxed(), &options()).unwrap();
    assert_eq!(array.status().scrub.map(|s| s.position), Some(stopped));
    let rest = scrub_from_mark(&array);
    assert_eq!(rest.resumed_from, stopped);
    assert_eq!(rest.stripes, (total - stopped) / CHUNK);
    assert_eq!(rest.damaged.len(), 1);
    assert_eq!(rest.damaged[0].role, 2);
    assert_eq!(array.status().scrub, None, "finished: no position left");
    let all = scrub(&array, false);
    assert_eq!(all.resumed_from, 0);
    assert_eq!(all.damaged.len(), 2);
}

fn scrub_from_mark(array: &Array) -> raidkit::array::ScrubReport {
    array
        .scrub(ScrubOptions::default(), &AtomicBool::new(false), &|_| {})
        .unwrap()
}

/// A crash in the middle of a repairing scrub: assembled from the durable images, the scrub
/// continues from the recorded position, and afterwards nothing is left damaged (repairs
/// before the position were durable before it was recorded).
#[test]
fn a_crash_mid_scrub_resumes_and_leaves_nothing_damaged() {
    for seed in 0..3u64 {
        let sims: Vec<Arc<SimDisk>> = (0..5)
            .map(|i| {
                Arc::new(SimDisk::with_block_size(
                    &format!("s{i}"),
                    MEMBER,
                    4096,
                    seed * 10 + i as u64,
                ))
            })
            .collect();
        let array = Array::create(
            sims.iter()
                .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                .collect(),
            &CreateOptions::new(Level::Parity { m: 2 }).chunk(CHUNK),
        )
        .unwrap();
        let data = Rng::new(seed).block(array.len() as usize);
        array.write_at(&data, 0).unwrap();
        array.close().unwrap();
        let array = Array::assemble(
            sims.iter()
                .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                .collect(),
            &options(),
        )
        .unwrap();
        let regions = *array.regions();
        let total = regions.data_size;
        let mut rng = Rng::new(seed + 50);
        for _ in 0..40 {
            let block = rng.below((total / 4096) as usize) as u64;
            damage(&sims[rng.below(5)], regions.data_offset + block * 4096);
        }
        let images: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);
        let cancel = AtomicBool::new(false);
        let cut = total / 4 + rng.below((total / 2) as usize) as u64;
        array
            .scrub(
                ScrubOptions {
                    repair: true,
                    checkpoint_every: 48 << 10,
                    ..ScrubOptions::default()
                },
                &cancel,
                &|p| {
                    if p.done >= cut && images.lock().unwrap().is_none() {
                        let snap = sims.iter().map(|s| {
                            s.crash();
                            s.live_image()
                        });
                        *images.lock().unwrap() = Some(snap.collect());
                        cancel.store(true, Ordering::Release);
                    }
                },
            )
            .unwrap();
        std::mem::forget(array);
        let disks: Vec<Box<dyn Disk>> = images
            .into_inner()
            .unwrap()
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, image)| {
                Box::new(MemDisk::from_image(&format!("s{i}"), image, 4096)) as Box<dyn Disk>
            })
            .collect();
        let array = Array::assemble(
            disks,
            &ArrayOptions {
                allow_dirty_degraded: true,
                ..options()
            },
        )
        .unwrap();
        let mark = array.status().scrub.expect("a position was recorded");
        assert!(
            mark.repair && mark.position > 0 && mark.position <= cut,
            "{mark:?}"
        );
        let rest = array
            .scrub(
                ScrubOptions {
                    repair: true,
                    ..ScrubOptions::default()
                },
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap();
        assert_eq!(rest.resumed_from, mark.position);
        assert_eq!(rest.unrepaired(), 0);
        let check = scrub(&array, false);
        assert!(
            check.damaged.is_empty() && check.unrecoverable.is_empty(),
            "seed {seed}: {:?}",
            check.damaged
        );
        let mut back = vec![0u8; data.len()];
        array.read_at(&mut back, 0).unwrap();
        assert!(back == data);
    }
}

/// A row whose redundancy disagrees with a checksum is never repaired from it. Member A's
/// block is forged together with its checksum entry (it reads as good), and member B's
/// block in the same row is damaged (it fails its checksum). Rebuilding B from the row
/// gives bytes B's checksum rejects: the recovery must judge the row untrusted. A repairing
/// scrub reports B unrepaired and the row unrecoverable and writes nothing; a read of B's
/// range is an error naming it; a hot replace of B lists the row lost instead of copying
/// rebuilt bytes onto the new disk.
#[test]
fn a_row_whose_redundancy_disagrees_is_never_repaired_from_it() {
    let n = 4;
    let disks = mem_disks("m", n, MEMBER);
    let boxed = || boxed_disks(&disks);
    let level = Level::Parity { m: 1 };
    let array = Array::create(boxed(), &CreateOptions::new(level).chunk(CHUNK)).unwrap();
    let data = Rng::new(9).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    let regions = *array.regions();
    let layout = *array.layout();
    array.close().unwrap();
    let row = 2u64; // of 4 in a 16 KiB chunk
    let (a, b) = (layout.data_member(0, 0), layout.data_member(0, 1));
    let at = regions.data_offset + row * 4096;
    // A: forged, with a matching entry.
    let forged = vec![0x5Au8; 4096];
    forge_block(disks[a].as_ref(), &regions, a, row, &forged);
    // B: damaged, its entry as it was.
    let mut damaged = vec![0u8; 4096];
    disks[b].read_at(&mut damaged, at).unwrap();
    damaged[7] ^= 0x80;
    disks[b].write_at(&damaged, at).unwrap();

    let array = Array::assemble(boxed(), &options()).unwrap();
    let report = scrub(&array, true);
    let found: Vec<_> = report
        .damaged
        .iter()
        .map(|d| (d.role, d.found_by, d.repaired))
        .collect();
    assert_eq!(found, vec![(b, "checksum", false)], "{report:?}");
    assert_eq!(report.unrecoverable.len(), 1, "{report:?}");
    let mut back = vec![0u8; 4096];
    disks[b].read_at(&mut back, at).unwrap();
    assert_eq!(
        back, damaged,
        "the scrub rewrote B from a row that disagrees"
    );

    // A read of B's block: an error naming its range, never the rebuilt bytes.
    let b_offset = layout.array_offset(0, 1, row * 4096);
    let mut out = vec![0u8; 4096];
    let err = array.read_at(&mut out, b_offset).unwrap_err();
    assert!(
        matches!(err, raidkit::ArrayError::Unrecoverable { offset, .. } if offset == b_offset),
        "{err}"
    );

    // A hot replace of B: the row is lost on the new disk, not filled from the others.
    let new = Arc::new(MemDisk::new("new", MEMBER, 4096));
    let rebuilt = array
        .replace(
            &format!("m{b}"),
            Box::new(new.clone()),
            false,
            &raidkit::array::RebuildOptions::default(),
            &AtomicBool::new(false),
            &|_| {},
        )
        .unwrap();
    let lost: Vec<(u64, u64)> = rebuilt
        .lost
        .iter()
        .map(|l| (l.member_offset, l.len))
        .collect();
    assert_eq!(lost, vec![(at, 4096)], "{rebuilt:?}");
    let mut on_new = vec![0u8; 4096];
    new.read_at(&mut on_new, at).unwrap();
    assert_eq!(
        on_new,
        vec![0u8; 4096],
        "the lost row is zeros on the new disk"
    );
    array.close().unwrap();
}

/// Every subset of `items` with `size` members.
fn subsets(items: &[usize], size: usize) -> Vec<Vec<usize>> {
    if size == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, &first) in items.iter().enumerate() {
        for mut rest in subsets(&items[i + 1..], size - 1) {
            rest.insert(0, first);
            out.push(rest);
        }
    }
    out
}

/// A forged block (new contents and a matching checksum entry) on an array with members
/// absent, for every level, every count of absent members below m and every choice of
/// them: with two or more redundancy equations left the scrub names it by syndrome,
/// repairs it and reads give the data back; with one left it reports the row and rewrites
/// nothing; it never says "clean" (issue: degraded rows skipped the parity check).
#[test]
fn a_forged_block_on_a_degraded_array_is_named_or_reported() {
    const SMALL: u64 = 4 << 20;
    let levels = [
        (Level::Parity { m: 1 }, 4, 1),
        (Level::Parity { m: 2 }, 5, 2),
        (Level::Parity { m: 3 }, 6, 3),
        (Level::Parity { m: 4 }, 7, 4),
        (Level::Mirror, 3, 2),
        (Level::Mirror, 4, 3),
    ];
    let mut cases = 0;
    for (level, n, m) in levels {
        let disks = mem_disks("m", n, SMALL);
        let array = Array::create(
            boxed_disks(&disks),
            &CreateOptions::new(level).chunk(CHUNK).force(true),
        )
        .unwrap();
        let data = Rng::new(11).block(array.len() as usize);
        array.write_at(&data, 0).unwrap();
        let regions = *array.regions();
        array.close().unwrap();
        let pristine = snapshots(&disks);
        let forged_role = 1usize;
        let forged = vec![0xC3u8; 4096];
        let others: Vec<usize> = (0..n).filter(|&r| r != forged_role).collect();
        for absent_count in 0..m {
            for absent in subsets(&others, absent_count) {
                cases += 1;
                let case = format!("{level:?} n={n}, absent {absent:?}");
                let assemble = || {
                    let disks = from_images("m", &pristine);
                    // Block 5 of role 1 (data in some stripes, parity in others).
                    forge_block(
                        disks[forged_role].as_ref(),
                        &regions,
                        forged_role,
                        5,
                        &forged,
                    );
                    let present: Vec<Box<dyn Disk>> = (0..n)
                        .filter(|r| !absent.contains(r))
                        .map(|r| Box::new(disks[r].clone()) as Box<dyn Disk>)
                        .collect();
                    (Array::assemble(present, &options()).unwrap(), disks)
                };
                let spare = m - absent_count;
                // Reads never return a block rebuilt from the forged one: block by block,
                // the data, the forged block itself (its checksum vouches for it), or an
                // error when one equation is left and cannot say which block is wrong.
                let (array, _) = assemble();
                let mut rebuilt_garbage = 0;
                for (i, want) in data.chunks(4096).enumerate() {
                    let mut got = vec![0u8; want.len()];
                    match array.read_at(&mut got, (i * 4096) as u64) {
                        Ok(()) if got == want || got == forged[..got.len()] => {}
                        Ok(()) => rebuilt_garbage += 1,
                        Err(e) => assert!(spare == 1, "{case}: block {i}: {e}"),
                    }
                }
                assert_eq!(rebuilt_garbage, 0, "{case}: wrong bytes read");
                drop(array);
                // The scrub, first thing after assembly.
                let (array, disks) = assemble();
                let report = scrub(&array, true);
                if spare >= 2 {
                    assert_eq!(report.damaged.len(), 1, "{case}: {report:?}");
                    let d = &report.damaged[0];
                    assert_eq!(
                        (d.role, d.found_by, d.repaired),
                        (forged_role, "syndrome", true),
                        "{case}"
                    );
                    assert!(report.unrecoverable.is_empty(), "{case}: {report:?}");
                    let mut back = vec![0u8; data.len()];
                    array.read_at(&mut back, 0).unwrap();
                    assert!(back == data, "{case}: repaired to the right contents");
                    let again = scrub(&array, false);
                    assert!(
                        again.damaged.is_empty() && again.unrecoverable.is_empty(),
                        "{case}: clean after the repair: {again:?}"
                    );
                } else {
                    assert!(report.damaged.is_empty(), "{case}: nothing is guessed");
                    assert_eq!(report.unrecoverable.len(), 1, "{case}: {report:?}");
                    let mut block_back = vec![0u8; 4096];
                    disks[forged_role]
                        .read_at(&mut block_back, regions.data_offset + 5 * 4096)
                        .unwrap();
                    assert_eq!(block_back, forged, "{case}: nothing was rewritten");
                }
                drop(array);
            }
        }
    }
    assert_eq!(
        cases,
        1 + (1 + 4) + (1 + 5 + 10) + (1 + 6 + 15 + 20) + (1 + 2) + (1 + 3 + 3)
    );
}

/// After an unclean stop in bitmap mode, a repairing scrub over every stripe that leaves
/// nothing wrong does a resync's work: the array is clean afterwards and after a restart.
/// One that finds a row it cannot attribute (RAID-5 parity that disagrees) leaves the
/// resync pending, and so does a check-only scrub.
#[test]
fn a_complete_repairing_scrub_ends_an_unclean_start() {
    use raidkit::array::Consistency;
    for (level, n, forge_parity) in [
        (Level::Mirror, 3, false),
        (Level::Parity { m: 2 }, 5, false),
        (Level::Parity { m: 1 }, 4, true),
    ] {
        let disks = mem_disks("m", n, MEMBER);
        let array = Array::create(
            boxed_disks(&disks),
            &CreateOptions::new(level)
                .chunk(CHUNK)
                .consistency(Consistency::Bitmap),
        )
        .unwrap();
        let data = Rng::new(5).block(300_000);
        array.write_at(&data, 0).unwrap();
        array.flush().unwrap();
        let regions = *array.regions();
        std::mem::forget(array); // a crash: no close
        if forge_parity {
            // Stripe 0's parity is on the last member: rewrite one of its blocks with a
            // matching entry, as a torn write could leave it.
            forge_block(disks[n - 1].as_ref(), &regions, n - 1, 1, &[0x77u8; 4096]);
        }
        let array = Array::assemble(boxed_disks(&disks), &options()).unwrap();
        assert!(array.status().unclean_start, "{level:?}");
        scrub(&array, false);
        assert!(
            array.status().unclean_start,
            "{level:?}: a check changes nothing"
        );
        let report = scrub(&array, true);
        assert_eq!(
            array.status().unclean_start,
            forge_parity,
            "{level:?}: {report:?}"
        );
        array.close().unwrap();
        let array = Array::assemble(boxed_disks(&disks), &options()).unwrap();
        let status = array.status();
        assert_eq!(
            status.unclean_start, forge_parity,
            "{level:?} after a restart"
        );
        let mut back = vec![0u8; data.len()];
        array.read_at(&mut back, 0).unwrap();
        assert!(back == data, "{level:?}");
        array.close().unwrap();
    }
}
