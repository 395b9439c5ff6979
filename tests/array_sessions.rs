//! A member that goes back in time (issue 13): a disk that lost its last writes, a VM disk
//! rolled back to a snapshot, a remote host that comes back with an old image. Its own
//! superblock and checksum table agree with its stale data, so only the sessions recorded
//! in the newest superblocks can tell. Whatever the mode and level, and wherever the copy
//! was taken (before a writing session, in the middle of one after its first superblock
//! update, after it), the array must give back the bytes last written or refuse with a
//! clear error — never the stale bytes — and a resync must bring the member back so that
//! it again carries its share of the redundancy.
//!
//! Also: an intact block whose checksum entry was damaged is served and its entry rewritten
//! (a damaged table page no longer fails reads or pushes a member past the error threshold).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use raidkit::array::{Array, ArrayError, ArrayOptions, Consistency, CreateOptions, ScrubOptions};
use raidkit::disk::MemDisk;
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{boxed, from_images, read_all, same};

const MEMBER: u64 = 8 << 20;
const CHUNK: u64 = 16 << 10;

const GEOMETRIES: [(Level, usize); 4] = [
    (Level::Mirror, 3),
    (Level::Parity { m: 1 }, 4),
    (Level::Parity { m: 2 }, 5),
    (Level::Parity { m: 3 }, 6),
];

/// What one case saw.
#[derive(Default)]
struct Seen {
    /// The member came back behind (so it was found out).
    behind: u64,
    /// The array refused to start (bitmap/none after a crash, with the member behind).
    refused: u64,
    cases: u64,
}

/// One case: sessions of writes on `n` memory disks; copies of one member taken before,
/// during and after them; at the end the member is replaced by one of its copies.
fn back_in_time(level: Level, n: usize, mode: Consistency, seed: u64, seen: &mut Seen) {
    let mut rng = Rng::new(seed);
    let disks: Vec<Arc<MemDisk>> = (0..n)
        .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), MEMBER, 4096)))
        .collect();
    let array = Array::create(
        boxed(&disks),
        &CreateOptions::new(level).chunk(CHUNK).consistency(mode),
    )
    .unwrap();
    let size = array.len() as usize;
    let stripe = array.layout().stripe_data() as usize;
    let mut model = rng.block(size);
    array.write_at(&model, 0).unwrap();
    array.close().unwrap();
    let victim = rng.below(n);
    let mut copies: Vec<(String, Vec<u8>)> =
        vec![("after create".into(), disks[victim].snapshot())];
    let sessions = 2 + rng.below(3);
    let mut crashed = false;
    for session in 0..sessions {
        let array =
            Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
        for w in 0..1 + rng.below(6) {
            if rng.below(2) == 0 {
                // A few whole stripes (a long write).
                let count = 1 + rng.below(4);
                let at = rng.below(size / stripe - count + 1) * stripe;
                let bytes = rng.block(count * stripe);
                array.write_at(&bytes, at as u64).unwrap();
                model[at..at + bytes.len()].copy_from_slice(&bytes);
            } else {
                let len = 1 + rng.below(20_000);
                let at = rng.below(size - len);
                let bytes = rng.block(len);
                array.write_at(&bytes, at as u64).unwrap();
                model[at..at + bytes.len()].copy_from_slice(&bytes);
            }
            if rng.below(2) == 0 {
                array.flush().unwrap();
            }
            if rng.below(3) == 0 {
                copies.push((
                    format!("in session {session} after write {w}"),
                    disks[victim].snapshot(),
                ));
            }
        }
        if session + 1 == sessions && rng.below(2) == 0 {
            array.flush().unwrap();
            std::mem::forget(array); // killed: nothing more reaches the disks
            crashed = true;
        } else {
            array.close().unwrap();
            copies.push((format!("after session {session}"), disks[victim].snapshot()));
        }
    }
    let (when, copy) = &copies[rng.below(copies.len())];
    let mut images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    let went_back = images[victim] != *copy;
    images[victim] = copy.clone();
    let label = format!(
        "{level:?} n={n} {} seed {seed}: d{victim} back to its copy {when}{}",
        mode.name(),
        if crashed { ", last session killed" } else { "" }
    );
    seen.cases += 1;
    let now = from_images("d", &images);
    let array = match Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()) {
        Ok(array) => array,
        Err(e @ ArrayError::DirtyDegraded { .. }) => {
            // The clear error: without a journal, a crash plus a member that may lack data
            // is the write hole; never for the journal.
            assert!(
                crashed && mode != Consistency::Journal && went_back,
                "{label}: {e}"
            );
            seen.refused += 1;
            return;
        }
        Err(e) => panic!("{label}: assemble failed: {e}"),
    };
    let status = array.status();
    let behind = status.members[victim].behind_stripes.is_some();
    seen.behind += u64::from(behind);
    // Never the stale bytes.
    same(
        &read_all(&array).unwrap_or_else(|e| panic!("{label}: {e}")),
        &model,
        &label,
    );
    // A resync brings it back; then it carries its share: without any one other member,
    // every byte still reads the same.
    let report = array.resync(&|_, _| {}).unwrap();
    assert!(
        array
            .status()
            .members
            .iter()
            .all(|m| m.behind_stripes.is_none()),
        "{label}: still behind after {report:?}"
    );
    same(
        &read_all(&array).unwrap(),
        &model,
        &format!("{label}: after resync"),
    );
    array.close().unwrap();
    for leave in (0..n).filter(|&i| i != victim) {
        let rest: Vec<Arc<MemDisk>> = now
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leave)
            .map(|(_, d)| d.clone())
            .collect();
        let array =
            Array::assemble(boxed(&rest), &ArrayOptions::default().allow_degraded()).unwrap();
        same(
            &read_all(&array).unwrap_or_else(|e| panic!("{label}, without d{leave}: {e}")),
            &model,
            &format!("{label}: without d{leave}"),
        );
        drop(array);
    }
}

fn cases() -> u64 {
    std::env::var("RAIDKIT_SESSION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

#[test]
fn a_member_back_in_time_is_never_trusted() {
    for mode in [Consistency::Journal, Consistency::Bitmap, Consistency::None] {
        let mut seen = Seen::default();
        for (level, n) in GEOMETRIES {
            for seed in 0..cases() {
                back_in_time(level, n, mode, 7_000 + seed, &mut seen);
            }
        }
        eprintln!(
            "{}: {} cases, the member was found behind in {}, the start refused in {}",
            mode.name(),
            seen.cases,
            seen.behind,
            seen.refused
        );
        // Not vacuous: copies that went back were found out.
        assert!(seen.behind > seen.cases / 4, "{}", mode.name());
    }
}

/// The legitimate near-miss stays cheap: a member that missed only the close of the last
/// session gets back the regions that session wrote, not the whole member.
#[test]
fn a_missed_close_costs_only_what_the_session_wrote() {
    for mode in [Consistency::Journal, Consistency::Bitmap, Consistency::None] {
        let disks: Vec<Arc<MemDisk>> = (0..4)
            .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), 32 << 20, 4096)))
            .collect();
        let array = Array::create(
            boxed(&disks),
            &CreateOptions::new(Level::Parity { m: 1 })
                .chunk(CHUNK)
                .consistency(mode),
        )
        .unwrap();
        let stripes = array.regions().data_size / CHUNK;
        let mut model = Rng::new(1).block(array.len() as usize);
        array.write_at(&model, 0).unwrap();
        array.close().unwrap();
        let array =
            Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
        let bytes = Rng::new(2).block(100_000);
        array.write_at(&bytes, 1 << 20).unwrap();
        model[1 << 20..(1 << 20) + bytes.len()].copy_from_slice(&bytes);
        array.flush().unwrap();
        // The crash hits during the final superblock update: d1 keeps the dirty one.
        let d1 = disks[1].snapshot();
        array.close().unwrap();
        let mut images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
        images[1] = d1;
        let now = from_images("d", &images);
        let array =
            Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
        let behind = array.status().members[1].behind_stripes.unwrap();
        eprintln!(
            "{}: d1 missed the close: behind in {behind} of {stripes} stripes",
            mode.name()
        );
        assert!(
            behind > 0 && behind < stripes / 10,
            "{}: {behind} of {stripes} stripes",
            mode.name()
        );
        same(&read_all(&array).unwrap(), &model, mode.name());
        let report = array.catch_up(&|_, _| {}).unwrap();
        assert_eq!(report.stripes, behind, "{}", mode.name());
        assert_eq!(report.members, 1);
        array.close().unwrap();
        // Recorded current: the next start finds nothing behind.
        let array =
            Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
        assert!(
            array
                .status()
                .members
                .iter()
                .all(|m| m.behind_stripes.is_none())
        );
        drop(array);
    }
}

/// A member behind is never what a rebuild or replace computes from: with another member
/// failed, the blocks it may lack are lost (reads fail, naming the range), never rebuilt
/// from its stale data; with two parities they come from the others.
#[test]
fn rebuilds_never_compute_from_a_member_behind() {
    for (level, n) in [(Level::Parity { m: 1 }, 4), (Level::Parity { m: 2 }, 5)] {
        let disks: Vec<Arc<MemDisk>> = (0..n)
            .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), MEMBER, 4096)))
            .collect();
        let array = Array::create(boxed(&disks), &CreateOptions::new(level).chunk(CHUNK)).unwrap();
        let mut model = Rng::new(3).block(array.len() as usize);
        array.write_at(&model, 0).unwrap();
        array.close().unwrap();
        let old = disks[1].snapshot();
        let array =
            Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
        let bytes = Rng::new(4).block(model.len() / 3);
        array.write_at(&bytes, 0).unwrap();
        model[..bytes.len()].copy_from_slice(&bytes);
        array.close().unwrap();
        let mut images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
        images[1] = old;
        let now = from_images("d", &images);
        let array =
            Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
        array.fail_member("d2").unwrap();
        let new = Arc::new(MemDisk::new("new", MEMBER, 4096));
        let report = array
            .replace(
                "d2",
                Box::new(new.clone()),
                false,
                &raidkit::array::RebuildOptions::default(),
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap();
        let mut back = vec![0u8; model.len()];
        for at in (0..model.len()).step_by(4096) {
            let end = (at + 4096).min(model.len());
            match array.read_at(&mut back[at..end], at as u64) {
                Ok(()) => same(
                    &back[at..end],
                    &model[at..end],
                    &format!("{level:?}: at {at}"),
                ),
                Err(ArrayError::Unrecoverable { .. }) => {
                    assert_eq!(n, 4, "{level:?}: with two parities nothing is lost");
                    assert!(at < bytes.len(), "lost only where d1 may lack writes");
                }
                Err(e) => panic!("{e}"),
            }
        }
        if n == 4 {
            assert!(
                !report.lost.is_empty(),
                "RAID-5: the rows d1 lacks are lost"
            );
        } else {
            assert!(report.lost.is_empty());
        }
    }
}

/// An intact block whose checksum entry was damaged (a whole table page here) is served
/// and the entry rewritten — by reads and by a repairing scrub — without counting errors
/// against the member; a check-only scrub reports the entries and writes nothing.
#[test]
fn a_damaged_checksum_entry_does_not_make_intact_data_unreadable() {
    for (level, n) in [
        (Level::Mirror, 2),
        (Level::Parity { m: 1 }, 4),
        (Level::Parity { m: 2 }, 5),
    ] {
        let disks: Vec<Arc<MemDisk>> = (0..n)
            .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), MEMBER, 4096)))
            .collect();
        let array = Array::create(boxed(&disks), &CreateOptions::new(level).chunk(CHUNK)).unwrap();
        let model = Rng::new(5).block(array.len() as usize);
        array.write_at(&model, 0).unwrap();
        let regions = *array.regions();
        array.close().unwrap();
        let mut image = disks[1].snapshot();
        for byte in &mut image[regions.csum_offset as usize..][..4096] {
            *byte ^= 0x5a;
        }
        let damaged = image;
        for how in ["read", "scrub"] {
            let mut images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
            images[1] = damaged.clone();
            let now = from_images("d", &images);
            let array =
                Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
            if how == "read" {
                same(&read_all(&array).unwrap(), &model, &format!("{level:?}"));
            } else {
                let scrub = |repair| {
                    array
                        .scrub(
                            ScrubOptions {
                                repair,
                                ..ScrubOptions::default()
                            },
                            &AtomicBool::new(false),
                            &|_| {},
                        )
                        .unwrap()
                };
                let before = now[1].snapshot();
                let check = scrub(false);
                assert!(check.unrecoverable.is_empty(), "{level:?}: {check:?}");
                assert!(!check.damaged.is_empty());
                assert!(
                    check
                        .damaged
                        .iter()
                        .all(|d| d.found_by == "checksum entry" && !d.repaired)
                );
                assert_eq!(
                    now[1].snapshot(),
                    before,
                    "a check-only scrub writes nothing"
                );
                let fixed = scrub(true);
                assert_eq!(fixed.damaged.len(), check.damaged.len());
                assert!(fixed.damaged.iter().all(|d| d.repaired));
            }
            let status = array.status();
            let m1 = &status.members[1];
            assert_eq!(
                m1.state,
                raidkit::array::MemberState::Active,
                "{level:?} {how}"
            );
            assert_eq!(m1.checksum_errors, 0, "{level:?} {how}");
            // (A mirror's read takes the other copy and leaves this one to the scrub.)
            assert!(
                m1.repaired > 0 || (how == "read" && level == Level::Mirror),
                "{level:?} {how}: entries rewritten"
            );
            if how == "read" {
                // Reads see only the blocks they read (not parity, one mirror copy).
                continue;
            }
            assert!(m1.repaired > 256, "{level:?}: a whole page rewritten");
            array.close().unwrap();
            // The entries were written back: a check finds nothing.
            let array =
                Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
            let check = array
                .scrub(ScrubOptions::default(), &AtomicBool::new(false), &|_| {})
                .unwrap();
            assert!(check.damaged.is_empty(), "{level:?}: {check:?}");
            same(&read_all(&array).unwrap(), &model, "after the scrub");
        }
    }
}

/// A catch-up that the members given cannot do (too many left out) is refused before
/// anything is written: the members left out are not recorded faulty for nothing.
#[test]
fn a_catch_up_without_enough_members_writes_nothing() {
    let disks: Vec<Arc<MemDisk>> = (0..5)
        .map(|i| Arc::new(MemDisk::new(&format!("d{i}"), MEMBER, 4096)))
        .collect();
    let array = Array::create(
        boxed(&disks),
        &CreateOptions::new(Level::Parity { m: 2 }).chunk(CHUNK),
    )
    .unwrap();
    array.write_at(&Rng::new(6).block(100_000), 0).unwrap();
    array.close().unwrap();
    let old = disks[1].snapshot();
    let array = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
    array.write_at(&Rng::new(7).block(100_000), 0).unwrap();
    array.close().unwrap();
    let mut images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    images[1] = old;
    let now = from_images("d", &images);
    let given: Vec<Arc<MemDisk>> = now[..3].to_vec(); // d3 and d4 left out
    let array = Array::assemble(boxed(&given), &ArrayOptions::default().allow_degraded()).unwrap();
    assert!(array.status().members[1].behind_stripes.is_some());
    let before: Vec<Vec<u8>> = given.iter().map(|d| d.snapshot()).collect();
    let err = array.catch_up(&|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("give every member"), "{err}");
    array.close().unwrap();
    let after: Vec<Vec<u8>> = given.iter().map(|d| d.snapshot()).collect();
    assert!(before == after, "nothing written");
    // With every member given it works.
    let array = Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
    assert_eq!(array.catch_up(&|_, _| {}).unwrap().members, 1);
}
