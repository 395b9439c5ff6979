//! Scrub: corruption campaigns within the fault budget are found completely and repaired
//! completely; a block whose checksum entry was forged along with it is named by the parity
//! equations when there are two or more parity blocks, and reported (not guessed) with one;
//! damage beyond the budget is reported as unrecoverable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use raidkit::array::{Array, ArrayOptions, CreateOptions, ScrubOptions};
use raidkit::disk::sim::SimDisk;
use raidkit::disk::{Disk, MemDisk};
use raidkit::format;
use raidkit::layout::Level;
use raidkit_workspace_tests::Rng;

const MEMBER: u64 = 4 << 20;
const CHUNK: u64 = 16 << 10;

fn options() -> ArrayOptions {
    ArrayOptions {
        error_threshold: u64::MAX,
        ..ArrayOptions::default()
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
            let data = Rng::new(seed).block(array.len() as usize);
            array.write_at(&data, 0).unwrap();
            array.flush().unwrap();
            let m = array.layout().m();
            let regions = *array.regions();
            let blocks = regions.data_size / 4096;
            // Damage: bit flips, zeroed blocks and unreadable sectors, at most m members per row.
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
                match rng.below(3) {
                    0 => sims[member].flip_bit(at + rng.below(4096) as u64, rng.below(8) as u8),
                    1 => sims[member].add_bad_range(at + 512 * rng.below(8) as u64, 512),
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
        let disks: Vec<Arc<MemDisk>> = (0..n)
            .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
            .collect();
        let boxed = || {
            disks
                .iter()
                .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                .collect::<Vec<_>>()
        };
        let array = Array::create(boxed(), &CreateOptions::new(level).chunk(CHUNK)).unwrap();
        let data = Rng::new(3).block(array.len() as usize);
        array.write_at(&data, 0).unwrap();
        let regions = *array.regions();
        array.close().unwrap();
        // Forge block 5 of member 1: new contents and a matching checksum entry.
        let (member, block) = (1usize, 5u64);
        let forged = vec![0xA5u8; 4096];
        disks[member]
            .write_at(&forged, regions.data_offset + block * 4096)
            .unwrap();
        let entry = format::checksum_entry(member, block, &forged);
        let page = block * 4 / 4096 * 4096;
        let mut table_page = vec![0u8; 4096];
        disks[member]
            .read_at(&mut table_page, regions.csum_offset + page)
            .unwrap();
        let at = (block * 4 - page) as usize;
        table_page[at..at + 4].copy_from_slice(&entry.to_le_bytes());
        disks[member]
            .write_at(&table_page, regions.csum_offset + page)
            .unwrap();
        let array = Array::assemble(boxed(), &ArrayOptions::default()).unwrap();
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
