//! Crash simulator (issue 7, first piece): a seeded workload of partial- and full-stripe
//! writes and flushes over simulated members sharing one power line; the power fails after
//! a seeded number of member writes and flushes (one global instant), each write in flight
//! is kept, dropped or torn per sector by the disk's seed, and the array is assembled from
//! what survived, possibly without members lost at the crash. Every sector is then checked:
//! it holds what it held at the last flush that completed, or one of the contents written to
//! it since — never anything else.
//!
//! The array has no journal yet (mode "none": a dirty start is resynchronised), so the
//! unit is the disk's: a 512-byte sector (a 4 KiB block being written at the crash may come
//! back part old, part new; whole-block atomicity is the journal's job). With every member
//! present after the crash, resync keeps that promise; with a member lost at the crash,
//! stripes being written at that instant can give the lost member's blocks back wrong — the
//! RAID-5/6 write hole — which the test demonstrates exists. The journal will close it.
//!
//! Each case runs with `ArrayOptions::serial_io`, so a seed replays exactly; a failure
//! prints it. `RAIDKIT_CRASH_CASES=N` sets the number of cases per geometry (default 60).

use std::collections::HashSet;
use std::sync::Arc;

use raidkit::array::{Array, ArrayOptions, CreateOptions};
use raidkit::disk::sim::{PowerLine, SimDisk};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_workspace_tests::Rng;

const MEMBER: u64 = 4 << 20;
const CHUNK: u64 = 16 << 10;
const BLOCK: usize = 4096;
/// The unit checked: a sector.
const UNIT: usize = 512;

fn cases() -> u64 {
    std::env::var("RAIDKIT_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn block_id(bytes: &[u8]) -> u64 {
    let a = crc32fast::hash(bytes);
    let mut h = crc32fast::Hasher::new_with_initial(0x9e37_79b9);
    h.update(bytes);
    (u64::from(a) << 32) | u64::from(h.finalize())
}

/// What each block may hold after a crash: its contents at the last completed flush and
/// everything written to it since.
struct Model {
    latest: Vec<u8>,
    allowed: Vec<HashSet<u64>>,
}

impl Model {
    fn new(data: &[u8]) -> Model {
        Model {
            latest: data.to_vec(),
            allowed: data
                .chunks(UNIT)
                .map(|b| HashSet::from([block_id(b)]))
                .collect(),
        }
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        self.latest[at..at + bytes.len()].copy_from_slice(bytes);
        for u in at / UNIT..(at + bytes.len()).div_ceil(UNIT) {
            let id = block_id(&self.latest[u * UNIT..(u + 1) * UNIT]);
            self.allowed[u].insert(id);
        }
    }

    fn flushed(&mut self) {
        for (u, set) in self.allowed.iter_mut().enumerate() {
            set.clear();
            set.insert(block_id(&self.latest[u * UNIT..(u + 1) * UNIT]));
        }
    }
}

fn serial() -> ArrayOptions {
    ArrayOptions {
        serial_io: true,
        allow_dirty_degraded: true,
        error_threshold: u64::MAX,
        ..ArrayOptions::default()
    }
}

/// One case: the number of sectors that broke the promise, and a label to replay it.
fn run_case(level: Level, n: usize, seed: u64, lose: usize) -> (usize, String) {
    let mut rng = Rng::new(seed);
    let sims: Vec<Arc<SimDisk>> = (0..n)
        .map(|i| {
            Arc::new(SimDisk::with_block_size(
                &format!("d{i}"),
                MEMBER,
                4096,
                seed.wrapping_mul(31).wrapping_add(i as u64),
            ))
        })
        .collect();
    let boxed = |sims: &[Arc<SimDisk>]| -> Vec<Box<dyn Disk>> {
        sims.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect()
    };
    let array = Array::create(
        boxed(&sims),
        &CreateOptions::new(level)
            .chunk(CHUNK)
            .array_options(serial()),
    )
    .unwrap();
    let size = array.len() as usize;
    let initial = rng.block(size);
    array.write_at(&initial, 0).unwrap();
    array.close().unwrap();
    let mut model = Model::new(&initial);

    // The power fails somewhere in the workload (or, now and then, not at all).
    let power = PowerLine::new(1 + rng.below(600) as u64);
    for sim in &sims {
        sim.set_power(power.clone());
    }
    let array = Array::assemble(boxed(&sims), &serial()).unwrap();
    let stripe = array.layout().stripe_data() as usize;
    for _ in 0..40 {
        if power.is_off() {
            break;
        }
        match rng.below(10) {
            0 | 1 => {
                array.flush().unwrap();
                if !power.is_off() {
                    model.flushed();
                }
            }
            2 => {
                // Whole stripes.
                let count = 1 + rng.below(3);
                let at = rng.below(size / stripe - count + 1) * stripe;
                let bytes = rng.block(count * stripe);
                array.write_at(&bytes, at as u64).unwrap();
                model.write(at, &bytes);
            }
            _ => {
                let len = 1 + rng.below(3 * BLOCK);
                let at = rng.below(size - len);
                let bytes = rng.block(len);
                array.write_at(&bytes, at as u64).unwrap();
                model.write(at, &bytes);
            }
        }
    }
    std::mem::forget(array); // the machine stopped: nothing more reaches the disks
    let images: Vec<Vec<u8>> = sims
        .iter()
        .map(|s| {
            s.crash();
            s.live_image()
        })
        .collect();
    // Members lost at the crash.
    let mut gone = Vec::new();
    while gone.len() < lose {
        let role = rng.below(n);
        if !gone.contains(&role) {
            gone.push(role);
        }
    }
    let disks: Vec<Box<dyn Disk>> = images
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(i, image)| {
            Box::new(MemDisk::from_image(&format!("d{i}"), image, 4096)) as Box<dyn Disk>
        })
        .collect();
    let array = Array::assemble(disks, &serial()).unwrap();
    if array.status().unclean_start && gone.is_empty() {
        array.resync(&|_, _| {}).unwrap();
    }
    let mut wrong = 0;
    let mut buf = vec![0u8; BLOCK];
    for (b, allowed) in model.allowed.chunks(BLOCK / UNIT).enumerate() {
        match array.read_at(&mut buf, (b * BLOCK) as u64) {
            Err(_) => wrong += allowed.len(),
            Ok(()) => {
                wrong += buf
                    .chunks(UNIT)
                    .zip(allowed)
                    .filter(|(sector, set)| !set.contains(&block_id(sector)))
                    .count()
            }
        }
    }
    let label = format!(
        "{level:?} n={n} seed {seed} lose {gone:?} power left {}",
        power.left()
    );
    (wrong, label)
}

#[test]
fn crashes_with_every_member_present_keep_the_promise() {
    for (level, n) in [
        (Level::Parity { m: 1 }, 4),
        (Level::Parity { m: 2 }, 5),
        (Level::Parity { m: 3 }, 6),
    ] {
        for seed in 0..cases() {
            let (wrong, label) = run_case(level, n, seed, 0);
            assert_eq!(wrong, 0, "{label}: {wrong} sectors broke the promise");
        }
    }
}

/// Without a journal, losing a member at the crash exposes the write hole: a stripe whose
/// write was in flight has parity that does not match its data, and the lost member's
/// blocks are rebuilt from it wrong. The simulator must find such cases: it is the
/// baseline the journal has to beat.
#[test]
fn without_a_journal_a_member_lost_at_the_crash_shows_the_write_hole() {
    let mut holes = 0;
    let mut total = 0;
    for (level, n, lose) in [
        (Level::Parity { m: 1 }, 4, 1),
        (Level::Parity { m: 2 }, 5, 2),
    ] {
        for seed in 0..cases() {
            let (wrong, _) = run_case(level, n, 10_000 + seed, lose);
            total += 1;
            if wrong > 0 {
                holes += 1;
            }
        }
    }
    eprintln!("write hole: {holes} of {total} degraded crashes gave sectors back wrong");
    assert!(
        holes > 0,
        "the simulator should show the write hole without a journal"
    );
}
