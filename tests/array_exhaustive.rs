//! Exhaustive failure sets: for every level and geometry up to 8 members, every set of at
//! most m missing members assembles degraded and reads back every byte; every set of m + 1
//! is refused with an error that lists the missing roles; and losing one more member at run
//! time makes reads fail, never return wrong data. Also: writes in every degraded state.

use raidkit::array::{Array, ArrayError, ArrayState, CreateOptions};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::assemble_images;

const MEMBER: u64 = 4 << 20;
const CHUNK: u64 = 4096;

fn geometries() -> Vec<(Level, usize)> {
    let mut out = Vec::new();
    for n in 2..=4 {
        out.push((Level::Mirror, n));
    }
    for m in 1..=4 {
        let min = if m == 1 { 3 } else { m + 2 };
        for n in min..=8 {
            out.push((Level::Parity { m }, n));
        }
    }
    out
}

fn subsets(n: usize, max: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() as usize <= max)
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}

/// Member images of an array holding `data`, closed cleanly.
fn build(level: Level, n: usize, seed: u64) -> (Vec<Vec<u8>>, Vec<u8>) {
    let disks: Vec<std::sync::Arc<MemDisk>> = (0..n)
        .map(|i| std::sync::Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let array = Array::create(
        disks
            .iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect(),
        &CreateOptions::new(level).chunk(CHUNK),
    )
    .unwrap();
    let data = Rng::new(seed).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.close().unwrap();
    (disks.iter().map(|d| d.snapshot()).collect(), data)
}

#[test]
fn every_failure_set_reads_back_or_is_refused() {
    for (level, n) in geometries() {
        let (images, data) = build(level, n, n as u64);
        let m = match level {
            Level::Mirror => n - 1,
            Level::Parity { m } => m,
        };
        for missing in subsets(n, m + 1) {
            let label = format!("{level:?} n={n} missing={missing:?}");
            match assemble_images(&images, &missing) {
                Ok(array) => {
                    assert!(
                        missing.len() <= m,
                        "{label}: assembled with too many missing"
                    );
                    let expected = if missing.is_empty() {
                        ArrayState::Clean
                    } else {
                        ArrayState::Degraded
                    };
                    assert_eq!(array.status().state, expected, "{label}");
                    let mut back = vec![0u8; data.len()];
                    array
                        .read_at(&mut back, 0)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    assert!(back == data, "{label}: wrong data");
                }
                Err(ArrayError::TooManyMissing { missing: roles, .. }) => {
                    assert_eq!(missing.len(), m + 1, "{label}");
                    assert_eq!(roles, missing, "{label}: the error lists the missing roles");
                }
                Err(ArrayError::NoMembers) => assert_eq!(missing.len(), n, "{label}"),
                Err(e) => panic!("{label}: unexpected error {e}"),
            }
        }
    }
}

/// With m members missing, failing one more at run time: reads of data that lived on it
/// fail with an error, and whatever does read is right.
#[test]
fn one_failure_past_the_redundancy_is_an_error() {
    for (level, n) in geometries() {
        let (images, data) = build(level, n, 100 + n as u64);
        let m = match level {
            Level::Mirror => n - 1,
            Level::Parity { m } => m,
        };
        let missing: Vec<usize> = (0..m).collect();
        let array = assemble_images(&images, &missing).unwrap();
        array.fail_member(&format!("m{m}")).unwrap();
        assert_eq!(array.status().state, ArrayState::Failed);
        let mut failures = 0;
        for at in (0..data.len()).step_by(CHUNK as usize) {
            let mut block = vec![0u8; CHUNK as usize];
            match array.read_at(&mut block, at as u64) {
                Ok(()) => assert!(
                    block == data[at..at + CHUNK as usize],
                    "{level:?} n={n}: wrong data at {at}"
                ),
                Err(ArrayError::Unrecoverable { .. }) => failures += 1,
                Err(e) => panic!("{level:?} n={n}: unexpected {e}"),
            }
        }
        assert!(failures > 0, "{level:?} n={n}: nothing failed");
        assert!(matches!(
            array.write_at(&[1], 0),
            Err(ArrayError::Failed { .. })
        ));
    }
}

/// Writes in every degraded state keep the data readable, also after the missing members'
/// data must be rebuilt from parity computed by those writes.
#[test]
fn writes_in_every_degraded_state() {
    for (level, n) in geometries() {
        let (images, mut data) = build(level, n, 200 + n as u64);
        let m = match level {
            Level::Mirror => n - 1,
            Level::Parity { m } => m,
        };
        for missing in subsets(n, m)
            .into_iter()
            .filter(|s| !s.is_empty())
            .step_by(3)
        {
            let label = format!("{level:?} n={n} missing={missing:?}");
            let array = assemble_images(&images, &missing).unwrap();
            let mut rng = Rng::new(missing.len() as u64 * 77 + n as u64);
            let mut model = data.clone();
            for _ in 0..6 {
                let at = rng.below(model.len() - 1);
                let len = 1 + rng.below((model.len() - at).min(3 * 4096 * n));
                let bytes = rng.block(len);
                array
                    .write_at(&bytes, at as u64)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                model[at..at + len].copy_from_slice(&bytes);
            }
            let mut back = vec![0u8; model.len()];
            array.read_at(&mut back, 0).unwrap();
            assert!(back == model, "{label}: wrong data after degraded writes");
        }
        data.clear();
    }
}
