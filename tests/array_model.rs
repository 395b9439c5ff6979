//! Model-based tests of the array: random sequences of writes, reads, flushes, member
//! failures and injected damage (bit flips, unreadable sectors) within the fault budget,
//! against a plain `Vec<u8>`, for every level, over the in-memory disk and the simulated
//! disk. Every read must return the model's bytes.
//!
//! The budget: in every row of every stripe, the members that failed plus the members with
//! a damaged block in that row stay at most m. Damage is never assumed healed, so the
//! budget is conservative.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use raidkit::array::{Array, ArrayError, ArrayOptions, CreateOptions};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::sim::SimDisk;

const MIB: u64 = 1 << 20;
/// Three checksum-table pages per member (a page covers 4 MiB), so that a one-page table
/// cache evicts all through the workload.
const MEMBER: u64 = 12 * MIB;

/// (level, members, chunk) of every geometry the model runs over.
const GEOMETRIES: [(Level, usize, u64); 9] = [
    (Level::Mirror, 2, 4096),
    (Level::Mirror, 3, 8192),
    (Level::Parity { m: 1 }, 3, 4096),
    (Level::Parity { m: 1 }, 5, 16384),
    (Level::Parity { m: 2 }, 4, 4096),
    (Level::Parity { m: 2 }, 6, 8192),
    (Level::Parity { m: 2 }, 8, 65536),
    (Level::Parity { m: 3 }, 6, 4096),
    (Level::Parity { m: 4 }, 7, 8192),
];

fn options() -> ArrayOptions {
    ArrayOptions {
        // The model injects up to the budget; do not fail members for it.
        error_threshold: u64::MAX,
        // One page per member's table: entries are written back and read again all the
        // time, and every assertion must still hold.
        table_cache: 4096,
        ..ArrayOptions::default().allow_degraded()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write { at: u64, len: u64, seed: u64 },
    Read { at: u64, len: u64 },
    Flush,
    Fail { member: usize },
    Flip { member: usize, block: u64, bit: u8 },
    Unreadable { member: usize, block: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(at, len, seed)| Op::Write { at, len, seed }),
        3 => (any::<u64>(), any::<u64>()).prop_map(|(at, len)| Op::Read { at, len }),
        1 => Just(Op::Flush),
        1 => any::<usize>().prop_map(|member| Op::Fail { member }),
        2 => (any::<usize>(), any::<u64>(), any::<u8>()).prop_map(|(member, block, bit)| Op::Flip { member, block, bit }),
        1 => (any::<usize>(), any::<u64>()).prop_map(|(member, block)| Op::Unreadable { member, block }),
    ]
}

/// The members as the test sees them: in memory (no damage possible) or simulated.
enum Members {
    Mem,
    Sim(Vec<Arc<SimDisk>>),
}

struct Harness {
    array: Array,
    members: Members,
    model: Vec<u8>,
    m: usize,
    n: usize,
    failed: HashSet<usize>,
    /// Per (data-region block index): members damaged there.
    damaged: HashMap<u64, HashSet<usize>>,
    data_offset: u64,
    data_blocks: u64,
}

impl Harness {
    fn new(level: Level, n: usize, chunk: u64, sim: bool, seed: u64) -> Harness {
        let (disks, members): (Vec<Box<dyn Disk>>, Members) = if sim {
            let sims: Vec<Arc<SimDisk>> = (0..n)
                .map(|i| Arc::new(SimDisk::new(&format!("sim{i}"), MEMBER, seed + i as u64)))
                .collect();
            (
                sims.iter()
                    .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                    .collect(),
                Members::Sim(sims),
            )
        } else {
            (
                (0..n)
                    .map(|i| {
                        Box::new(MemDisk::new(&format!("mem{i}"), MEMBER, 4096)) as Box<dyn Disk>
                    })
                    .collect(),
                Members::Mem,
            )
        };
        let create = CreateOptions::new(level)
            .chunk(chunk)
            .array_options(options());
        let array = Array::create(disks, &create).expect("create");
        let size = array.len() as usize;
        let regions = *array.regions();
        Harness {
            m: array.layout().m(),
            n,
            array,
            members,
            model: vec![0u8; size],
            failed: HashSet::new(),
            damaged: HashMap::new(),
            data_offset: regions.data_offset,
            data_blocks: regions.data_size / 4096,
        }
    }

    fn budget_ok(&self, member: usize, block: Option<u64>) -> bool {
        let mut failed = self.failed.clone();
        failed.insert(member);
        match block {
            Some(b) => {
                let mut set = self.damaged.get(&b).cloned().unwrap_or_default();
                set.insert(member);
                set.union(&self.failed).count() <= self.m
            }
            None => {
                failed.len() <= self.m
                    && self
                        .damaged
                        .values()
                        .all(|set| set.union(&failed).count() <= self.m)
            }
        }
    }

    fn span(&self, at: u64, len: u64) -> (u64, usize) {
        let size = self.model.len() as u64;
        let at = at % size;
        let max = (size - at).min(3 * self.array.layout().stripe_data() + 5000);
        (at, (len % max + 1) as usize)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Write { at, len, seed } => {
                let (at, len) = self.span(at, len);
                let data = Rng::new(seed).block(len);
                self.array
                    .write_at(&data, at)
                    .map_err(|e| TestCaseError::fail(format!("write {at}+{len}: {e}")))?;
                self.model[at as usize..at as usize + len].copy_from_slice(&data);
            }
            Op::Read { at, len } => {
                let (at, len) = self.span(at, len);
                let mut back = vec![0u8; len];
                self.array
                    .read_at(&mut back, at)
                    .map_err(|e| TestCaseError::fail(format!("read {at}+{len}: {e}")))?;
                prop_assert!(
                    back == self.model[at as usize..at as usize + len],
                    "read {}+{} differs from the model",
                    at,
                    len
                );
            }
            Op::Flush => self
                .array
                .flush()
                .map_err(|e| TestCaseError::fail(format!("flush: {e}")))?,
            Op::Fail { member } => {
                let member = member % self.n;
                if !self.failed.contains(&member) && self.budget_ok(member, None) {
                    let name = self.array.status().members[member].name.clone();
                    self.array
                        .fail_member(&name)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    self.failed.insert(member);
                }
            }
            Op::Flip { member, block, bit } => self.damage(member, block, Some(bit)),
            Op::Unreadable { member, block } => self.damage(member, block, None),
        }
        Ok(())
    }

    fn damage(&mut self, member: usize, block: u64, bit: Option<u8>) {
        let Members::Sim(sims) = &self.members else {
            return;
        };
        let member = member % self.n;
        let block = block % self.data_blocks;
        if self.failed.contains(&member) || !self.budget_ok(member, Some(block)) {
            return;
        }
        let offset = self.data_offset + block * 4096;
        match bit {
            Some(bit) => sims[member].flip_bit(offset + u64::from(bit) * 13, bit),
            None => sims[member].add_bad_range(offset + u64::from(block as u8) % 8 * 512, 512),
        }
        self.damaged.entry(block).or_default().insert(member);
    }

    fn check_all(&self) -> Result<(), TestCaseError> {
        let mut back = vec![0u8; self.model.len()];
        self.array
            .read_at(&mut back, 0)
            .map_err(|e| TestCaseError::fail(format!("final read: {e}")))?;
        prop_assert!(back == self.model, "final contents differ from the model");
        Ok(())
    }
}

fn run(
    level: Level,
    n: usize,
    chunk: u64,
    sim: bool,
    seed: u64,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(level, n, chunk, sim, seed);
    for op in ops {
        harness.apply(op)?;
    }
    harness.check_all()
}

fn cases() -> u32 {
    if std::env::var_os("RAIDKIT_LONG_TESTS").is_some() {
        1000
    } else {
        24
    }
}

macro_rules! model_tests {
    ($($name:ident: $geometry:expr, $sim:expr;)*) => {$(
        proptest! {
            #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
            #[test]
            fn $name(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
                let (level, n, chunk) = GEOMETRIES[$geometry];
                run(level, n, chunk, $sim, seed, &ops)?;
            }
        }
    )*};
}

model_tests! {
    mem_raid1_2: 0, false;
    mem_raid1_3: 1, false;
    mem_raid5_3: 2, false;
    mem_raid5_5: 3, false;
    mem_raid6_4: 4, false;
    mem_raid6_6: 5, false;
    mem_raid6_8: 6, false;
    mem_k3_6: 7, false;
    mem_k4_7: 8, false;
    sim_raid1_2: 0, true;
    sim_raid1_3: 1, true;
    sim_raid5_3: 2, true;
    sim_raid5_5: 3, true;
    sim_raid6_4: 4, true;
    sim_raid6_6: 5, true;
    sim_raid6_8: 6, true;
    sim_k3_6: 7, true;
    sim_k4_7: 8, true;
}

/// Damage beyond the budget gives an error naming the range, never wrong data.
#[test]
fn damage_beyond_the_budget_is_an_error_not_wrong_data() {
    for (level, n, chunk) in GEOMETRIES {
        let mut h = Harness::new(level, n, chunk, true, 7);
        let data = Rng::new(1).block(h.model.len());
        h.array.write_at(&data, 0).unwrap();
        let Members::Sim(sims) = &h.members else {
            unreachable!()
        };
        // Damage block 0 of the data region on m + 1 members: row 0 of stripe 0.
        for sim in sims.iter().take(h.m + 1) {
            sim.flip_bit(h.data_offset + 100, 3);
        }
        let mut back = vec![0u8; 4096 * n];
        let err = h.array.read_at(&mut back, 0);
        assert!(
            matches!(err, Err(ArrayError::Unrecoverable { .. })),
            "{level:?} {n}: {err:?}"
        );
        // Whatever the first read said, no read returns wrong bytes.
        for at in (0..h.model.len()).step_by(4096 * 7) {
            let mut block = vec![0u8; 4096];
            if h.array.read_at(&mut block, at as u64).is_ok() {
                assert_eq!(block, data[at..at + 4096], "{level:?} {n} at {at}");
            }
        }
        h.model.copy_from_slice(&data);
    }
}

/// Many threads through `&Array`: each owns a region and checks it reads back its own
/// writes, while others hammer one shared stripe with uniform blocks that must never read
/// back torn (writes to a stripe are serialised against its readers).
#[test]
fn concurrent_writers_and_readers() {
    for (level, n, chunk) in [GEOMETRIES[1], GEOMETRIES[3], GEOMETRIES[5], GEOMETRIES[8]] {
        let h = Harness::new(level, n, chunk, false, 1);
        let array = &h.array;
        let stripe = array.layout().stripe_data() as usize;
        let region = (array.len() as usize / 8) / stripe * stripe;
        std::thread::scope(|scope| {
            for t in 0..4 {
                scope.spawn(move || {
                    let mut rng = Rng::new(t);
                    let base = (t as usize + 1) * region;
                    let mut model = vec![0u8; region];
                    for _ in 0..60 {
                        let at = rng.below(region - 1);
                        let len = 1 + rng.below((region - at).min(2 * stripe));
                        let bytes = rng.block(len);
                        array.write_at(&bytes, (base + at) as u64).unwrap();
                        model[at..at + len].copy_from_slice(&bytes);
                        let mut back = vec![0u8; len];
                        array.read_at(&mut back, (base + at) as u64).unwrap();
                        assert!(back == bytes, "thread {t}");
                    }
                    let mut back = vec![0u8; region];
                    array.read_at(&mut back, base as u64).unwrap();
                    assert!(back == model, "thread {t}: region differs");
                });
            }
            for t in 0..2u8 {
                scope.spawn(move || {
                    for i in 0..200u32 {
                        let value = (i as u8).wrapping_mul(2).wrapping_add(t);
                        array.write_at(&vec![value; stripe], 0).unwrap();
                    }
                });
                scope.spawn(move || {
                    let mut back = vec![0u8; stripe];
                    for _ in 0..200 {
                        array.read_at(&mut back, 0).unwrap();
                        assert!(back.iter().all(|&b| b == back[0]), "torn read of a stripe");
                    }
                });
            }
        });
    }
}
