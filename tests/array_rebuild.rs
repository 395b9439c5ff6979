//! Rebuild, hot spares and hot replace: every RAID-6 pair failed and rebuilt (on memory
//! disks and on loop devices), rebuild under a concurrent writer, interrupted and crashed
//! rebuilds continuing from their checkpoints, latent sector errors on survivors during
//! RAID-5 and RAID-6 rebuilds, hot replace keeping redundancy, automatic rebuild onto a
//! spare, and refusals that change nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use raidkit::array::{
    Array, ArrayError, ArrayOptions, ArrayState, Consistency, CreateOptions, MemberState,
    RebuildOptions, RebuildReport,
};
use raidkit::disk::{Disk, MemDisk};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{boxed, mem_disks, read_all};
use raidkit_testkit::sim::SimDisk;
use sha2::{Digest, Sha256};

const MEMBER: u64 = 4 << 20;
const CHUNK: u64 = 16 << 10;

fn quiet() -> ArrayOptions {
    ArrayOptions {
        error_threshold: u64::MAX,
        ..ArrayOptions::default().allow_degraded()
    }
}

fn create(disks: Vec<Box<dyn Disk>>, level: Level) -> Array {
    create_in(disks, level, None)
}

/// `create` with a crash-consistency mode (`None`: the level's default).
fn create_in(disks: Vec<Box<dyn Disk>>, level: Level, mode: Option<Consistency>) -> Array {
    let options = CreateOptions::new(level);
    let options = match mode {
        Some(mode) => options.consistency(mode),
        None => options,
    };
    Array::create(
        disks,
        &options.chunk(CHUNK).force(true).array_options(quiet()),
    )
    .unwrap()
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn options(every: u64) -> RebuildOptions {
    RebuildOptions {
        checkpoint_every: every,
        ..RebuildOptions::default()
    }
}

/// A replace run to the end at full speed.
fn replace_now(array: &Array, old: &str, new: Box<dyn Disk>) -> Result<RebuildReport, ArrayError> {
    array.replace(
        old,
        new,
        false,
        &RebuildOptions::default(),
        &AtomicBool::new(false),
        &|_| {},
    )
}

fn rebuild(array: &Array) -> Vec<RebuildReport> {
    array
        .rebuild(&options(256 << 10), &AtomicBool::new(false), &|_| {})
        .unwrap()
}

/// Every role's contents are right: with any m other members failed, every byte still
/// reads back. (Checks parity blocks too, which plain reads never look at.)
fn assert_every_member_holds_its_role(disks: &[Box<dyn Fn() -> Box<dyn Disk>>], expect: &[u8; 32]) {
    let n = disks.len();
    for gone in 0..n {
        let present: Vec<Box<dyn Disk>> =
            (0..n).filter(|&i| i != gone).map(|i| disks[i]()).collect();
        let array = Array::assemble(present, &ArrayOptions::default().allow_degraded()).unwrap();
        assert_eq!(
            &hash(&read_all(&array).unwrap()),
            expect,
            "member {gone} missing"
        );
        drop(array);
    }
}

fn openers(disks: &[Arc<MemDisk>]) -> Vec<Box<dyn Fn() -> Box<dyn Disk>>> {
    disks
        .iter()
        .map(|d| {
            let d = d.clone();
            Box::new(move || Box::new(d.clone()) as Box<dyn Disk>) as Box<dyn Fn() -> Box<dyn Disk>>
        })
        .collect()
}

#[test]
fn every_raid6_pair_failed_and_rebuilt_reads_back_by_hash() {
    for n in [4usize, 5, 6] {
        for a in 0..n {
            for b in a + 1..n {
                let disks = mem_disks("m", n, MEMBER);
                let array = create(boxed(&disks), Level::Parity { m: 2 });
                let data = Rng::new((n * 100 + a * 10 + b) as u64).block(array.len() as usize);
                array.write_at(&data, 0).unwrap();
                let expect = hash(&data);
                array.fail_member(&format!("m{a}")).unwrap();
                array.fail_member(&format!("m{b}")).unwrap();
                assert!(!array.needs_rebuild(), "no spare yet");
                let spares = mem_disks("s", 2, MEMBER);
                for s in &spares {
                    array.add_spare(Box::new(s.clone()), false).unwrap();
                }
                assert!(array.needs_rebuild());
                let reports = rebuild(&array);
                assert_eq!(reports.len(), 2, "n={n} pair {a},{b}");
                let mut roles: Vec<usize> = reports.iter().map(|r| r.role).collect();
                roles.sort();
                assert_eq!(roles, vec![a, b]);
                assert!(reports.iter().all(|r| r.lost.is_empty() && !r.cancelled));
                let status = array.status();
                assert_eq!(status.state, ArrayState::Clean);
                assert!(status.rebuilds.is_empty());
                assert_eq!(&hash(&read_all(&array).unwrap()), &expect);
                array.close().unwrap();
                // The array is now the survivors plus the two spares.
                let mut now: Vec<Arc<MemDisk>> = (0..n)
                    .filter(|&i| i != a && i != b)
                    .map(|i| disks[i].clone())
                    .collect();
                now.extend(spares);
                assert_every_member_holds_its_role(&openers(&now), &expect);
            }
        }
    }
}

#[test]
fn every_raid6_pair_rebuilt_on_loop_devices() {
    let dir = tempfile::tempdir().unwrap();
    let n = 4;
    let mut loops = Vec::new();
    for i in 0..n + 2 {
        let path = dir.path().join(format!("d{i}.img"));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        match raidkit_testkit::loop_device(&path, "every_raid6_pair_rebuilt_on_loop_devices") {
            Some(device) => loops.push(device),
            None => return,
        }
    }
    let open =
        |i: usize| -> Box<dyn Disk> { Box::new(raidkit::disk::open(&loops[i].device).unwrap()) };
    for a in 0..n {
        for b in a + 1..n {
            let array = create((0..n).map(open).collect(), Level::Parity { m: 2 });
            let data = Rng::new((a * 10 + b) as u64).block(array.len() as usize);
            array.write_at(&data, 0).unwrap();
            let expect = hash(&data);
            array
                .fail_member(&loops[a].device.display().to_string())
                .unwrap();
            array
                .fail_member(&loops[b].device.display().to_string())
                .unwrap();
            array.add_spare(open(n), true).unwrap();
            array.add_spare(open(n + 1), true).unwrap();
            let reports = rebuild(&array);
            assert_eq!(reports.len(), 2);
            array.close().unwrap();
            // Reassemble from the devices that now hold the roles; lose any two of them.
            let now: Vec<usize> = (0..n + 2).filter(|&i| i != a && i != b).collect();
            for x in 0..now.len() {
                for y in x + 1..now.len() {
                    let present: Vec<Box<dyn Disk>> = now
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != x && *j != y)
                        .map(|(_, &i)| open(i))
                        .collect();
                    let array = Array::assemble(present, &ArrayOptions::default().allow_degraded())
                        .unwrap();
                    assert_eq!(&hash(&read_all(&array).unwrap()), &expect, "pair {a},{b}");
                }
            }
        }
    }
}

#[test]
fn rebuild_while_a_writer_keeps_writing() {
    for (level, n) in [
        (Level::Parity { m: 1 }, 4),
        (Level::Parity { m: 2 }, 5),
        (Level::Mirror, 3),
    ] {
        let disks = mem_disks("m", n, MEMBER);
        let array = Arc::new(create(boxed(&disks), level));
        let model = Arc::new(Mutex::new(Rng::new(7).block(array.len() as usize)));
        array.write_at(&model.lock().unwrap(), 0).unwrap();
        array.fail_member("m1").unwrap();
        let spare = Arc::new(MemDisk::new("spare", MEMBER, 4096));
        array.add_spare(Box::new(spare.clone()), false).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let (array, model, stop, writes) =
                (array.clone(), model.clone(), stop.clone(), writes.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(11);
                while !stop.load(Ordering::Acquire) || writes.load(Ordering::Relaxed) < 50 {
                    let len = 1 + rng.below(40_000);
                    let at = rng.below(array.len() as usize - len);
                    let bytes = rng.block(len);
                    // The model and the array change together (one writer).
                    let mut model = model.lock().unwrap();
                    array.write_at(&bytes, at as u64).unwrap();
                    model[at..at + len].copy_from_slice(&bytes);
                    drop(model);
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let reports = array
            .rebuild(
                &RebuildOptions {
                    rate: Some(8 << 20),
                    ..options(64 << 10)
                },
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap();
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        assert_eq!(reports.len(), 1);
        assert!(writes.load(Ordering::Relaxed) >= 50);
        let expect = hash(&model.lock().unwrap());
        assert_eq!(&hash(&read_all(&array).unwrap()), &expect, "{level:?}");
        let array = Arc::into_inner(array).unwrap();
        array.close().unwrap();
        let mut now: Vec<Arc<MemDisk>> = disks.clone();
        now[1] = spare;
        assert_every_member_holds_its_role(&openers(&now), &expect);
    }
}

/// An unpaced rebuild and a repairing scrub keep two groups of stripes in flight, the
/// second locked before the first is done. Over small chunks they pass the end of the
/// stripe-lock table several times while a writer keeps writing and a reader keeps
/// comparing against the model: every read matches, the scrub finds nothing (a torn stripe
/// would look damaged), and every member holds its role at the end.
#[test]
fn full_speed_rebuild_and_scrub_beside_a_writer_and_a_reader() {
    const SMALL_CHUNK: u64 = 4 << 10;
    for (level, n) in [(Level::Parity { m: 1 }, 4), (Level::Parity { m: 2 }, 6)] {
        let disks = mem_disks("m", n, 12 << 20);
        let array = Arc::new(
            Array::create(
                boxed(&disks),
                &CreateOptions::new(level)
                    .chunk(SMALL_CHUNK)
                    .force(true)
                    .array_options(quiet()),
            )
            .unwrap(),
        );
        let stripes = array.len() / SMALL_CHUNK / (n as u64 - level_m(level));
        assert!(
            stripes > 2048,
            "{stripes} stripes: not past the lock table twice"
        );
        let model = Arc::new(Mutex::new(Rng::new(3).block(array.len() as usize)));
        array.write_at(&model.lock().unwrap(), 0).unwrap();
        array.fail_member("m2").unwrap();
        let spare = Arc::new(MemDisk::new("spare", 12 << 20, 4096));
        array.add_spare(Box::new(spare.clone()), false).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (array, model, stop) = (array.clone(), model.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(5);
                let mut writes = 0;
                while !stop.load(Ordering::Acquire) || writes < 50 {
                    let len = 1 + rng.below(20_000);
                    let at = rng.below(array.len() as usize - len);
                    let bytes = rng.block(len);
                    let mut model = model.lock().unwrap();
                    array.write_at(&bytes, at as u64).unwrap();
                    model[at..at + len].copy_from_slice(&bytes);
                    writes += 1;
                }
            })
        };
        let reader = {
            let (array, model, stop) = (array.clone(), model.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(9);
                let mut reads = 0;
                while !stop.load(Ordering::Acquire) || reads < 50 {
                    let len = 1 + rng.below(20_000);
                    let at = rng.below(array.len() as usize - len);
                    let mut got = vec![0; len];
                    let model = model.lock().unwrap();
                    array.read_at(&mut got, at as u64).unwrap();
                    assert!(got == model[at..at + len], "read {at}+{len} differs");
                    reads += 1;
                }
            })
        };
        let reports = array
            .rebuild(&options(1 << 20), &AtomicBool::new(false), &|_| {})
            .unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].lost, Vec::new());
        let scrub = array
            .scrub(
                raidkit::array::ScrubOptions {
                    repair: true,
                    checkpoint_every: 1 << 20,
                    ..Default::default()
                },
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap();
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(!scrub.cancelled);
        assert_eq!(scrub.damaged.len(), 0, "{level:?}: {:?}", scrub.damaged);
        assert!(scrub.unrecoverable.is_empty(), "{level:?}");
        let expect = hash(&model.lock().unwrap());
        assert_eq!(&hash(&read_all(&array).unwrap()), &expect, "{level:?}");
        let array = Arc::into_inner(array).unwrap();
        array.close().unwrap();
        let mut now: Vec<Arc<MemDisk>> = disks.clone();
        now[2] = spare;
        assert_every_member_holds_its_role(&openers(&now), &expect);
    }
}

fn level_m(level: Level) -> u64 {
    match level {
        Level::Parity { m } => m as u64,
        _ => 0,
    }
}

/// Stops a rebuild part way by Ctrl-C (the cancel flag): the position is recorded, the
/// status says so, and after a reassemble the rebuild continues from it.
#[test]
fn an_interrupted_rebuild_continues_from_its_checkpoint() {
    let disks = mem_disks("m", 5, MEMBER);
    let array = create(boxed(&disks), Level::Parity { m: 2 });
    let data = Rng::new(5).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.fail_member("m3").unwrap();
    let spare = Arc::new(MemDisk::new("spare", MEMBER, 4096));
    array.add_spare(Box::new(spare.clone()), false).unwrap();
    let cancel = AtomicBool::new(false);
    let total = array.regions().data_size;
    let reports = array
        .rebuild(&options(128 << 10), &cancel, &|p| {
            if p.done >= total / 3 {
                cancel.store(true, Ordering::Release);
            }
        })
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].cancelled);
    let done = reports[0].bytes;
    assert!(done >= total / 3 && done < total);
    let status = array.status();
    assert_eq!(status.state, ArrayState::Degraded);
    assert_eq!(status.rebuilds.len(), 1);
    assert_eq!(status.rebuilds[0].done, done);
    assert!(!status.rebuilds[0].running);
    // Reads are right meanwhile, from the rebuilt part of the spare and the rest.
    assert_eq!(read_all(&array).unwrap(), data);
    array.close().unwrap();

    let mut now: Vec<Arc<MemDisk>> = disks.clone();
    now[3] = spare.clone();
    let array = Array::assemble(boxed(&now), &ArrayOptions::default().allow_degraded()).unwrap();
    let status = array.status();
    assert_eq!(status.rebuilds.len(), 1);
    assert_eq!(status.rebuilds[0].done, done, "the checkpoint is recorded");
    assert_eq!(
        status
            .members
            .iter()
            .find(|m| m.name == "spare")
            .map(|m| m.state),
        Some(MemberState::Rebuilding)
    );
    assert_eq!(read_all(&array).unwrap(), data);
    let reports = rebuild(&array);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].resumed_from, done);
    assert_eq!(reports[0].bytes, total - done);
    assert_eq!(array.status().state, ArrayState::Clean);
    array.close().unwrap();
    assert_every_member_holds_its_role(&openers(&now), &hash(&data));
}

/// A crash in the middle of a rebuild (the members' durable images at one instant):
/// assembled again, the rebuild continues from the last recorded checkpoint and every byte
/// is right. When the array had been written in the session that crashed (dirty), the
/// start is refused by default in bitmap mode like any dirty degraded start; allowed, the
/// rebuild continues and a resync follows. In journal mode the journal is replayed at
/// assemble and the start needs neither force nor resync.
#[test]
fn a_crash_mid_rebuild_resumes_and_verifies() {
    let bitmap = Some(Consistency::Bitmap);
    for (seed, level, n, dirty, mode) in [
        (1u64, Level::Parity { m: 1 }, 4, false, None),
        (2, Level::Parity { m: 2 }, 6, false, None),
        (3, Level::Mirror, 2, false, None),
        (4, Level::Parity { m: 1 }, 5, true, bitmap),
        (5, Level::Parity { m: 2 }, 5, true, bitmap),
        (6, Level::Parity { m: 1 }, 5, true, None),
        (7, Level::Parity { m: 2 }, 5, true, None),
    ] {
        let journal = mode.is_none() && level != Level::Mirror;
        let sims: Vec<Arc<SimDisk>> = (0..n + 1)
            .map(|i| {
                Arc::new(SimDisk::with_block_size(
                    &format!("d{i}"),
                    MEMBER,
                    4096,
                    seed * 10 + i as u64,
                ))
            })
            .collect();
        let mut array = create_in(boxed(&sims[..n]), level, mode);
        let data = Rng::new(seed).block(array.len() as usize);
        array.write_at(&data, 0).unwrap();
        array.flush().unwrap();
        if !dirty {
            array.close().unwrap();
            array = Array::assemble(boxed(&sims[..n]), &quiet()).unwrap();
        }
        array.fail_member("d0").unwrap();
        array.add_spare(Box::new(sims[n].clone()), false).unwrap();
        let total = array.regions().data_size;
        let images: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);
        let cancel = AtomicBool::new(false);
        array
            .rebuild(&options(96 << 10), &cancel, &|p| {
                if p.done >= total / 2 && images.lock().unwrap().is_none() {
                    let snap = sims
                        .iter()
                        .map(|s| {
                            s.crash();
                            s.live_image()
                        })
                        .collect();
                    *images.lock().unwrap() = Some(snap);
                    cancel.store(true, Ordering::Release);
                }
            })
            .unwrap();
        std::mem::forget(array); // the process died: nothing more reaches the disks
        let images = images.into_inner().unwrap().expect("crashed part way");
        let disks: Vec<Arc<MemDisk>> = images
            .into_iter()
            .enumerate()
            .map(|(i, image)| Arc::new(MemDisk::from_image(&format!("d{i}"), image, 4096)))
            .collect();
        // d0 (failed) is left out; d1.. and the spare dn.
        let present: Vec<Arc<MemDisk>> = disks[1..].to_vec();
        let allow = ArrayOptions {
            allow_dirty_degraded: dirty && !journal,
            ..ArrayOptions::default().allow_degraded()
        };
        if dirty && !journal {
            let refused =
                Array::assemble(boxed(&present), &ArrayOptions::default().allow_degraded());
            assert!(matches!(refused, Err(ArrayError::DirtyDegraded { .. })));
        }
        let array = Array::assemble(boxed(&present), &allow).unwrap();
        let status = array.status();
        assert_eq!(status.rebuilds.len(), 1, "{level:?}");
        assert_eq!(
            status.unclean_start,
            dirty && !journal,
            "{level:?} {mode:?}"
        );
        assert_eq!(
            status.replay.is_some(),
            dirty && journal,
            "{level:?} {mode:?}"
        );
        let resumed = status.rebuilds[0].done;
        assert!(resumed > 0 && resumed <= total / 2 + CHUNK * 8, "{resumed}");
        assert_eq!(read_all(&array).unwrap(), data);
        let reports = rebuild(&array);
        assert_eq!(reports[0].resumed_from, resumed);
        assert_eq!(read_all(&array).unwrap(), data);
        if dirty && !journal {
            array.resync(&|_, _| {}).unwrap();
        }
        array.close().unwrap();
        let mut now = present.clone();
        now.rotate_right(1); // any order assembles
        assert_every_member_holds_its_role(&openers(&now), &hash(&data));
    }
}

/// Sets up an array over simulated disks with member 0 failed and a spare, and a latent
/// sector error on member `bad` at the block of stripe `stripe`, row `row`.
struct Lse {
    array: Array,
    sims: Vec<Arc<SimDisk>>,
    data: Vec<u8>,
}

fn lse_setup(level: Level, n: usize, bad: &[(usize, u64)]) -> Lse {
    lse_setup_in(level, n, bad, None)
}

fn lse_setup_in(level: Level, n: usize, bad: &[(usize, u64)], mode: Option<Consistency>) -> Lse {
    let sims: Vec<Arc<SimDisk>> = (0..n + 1)
        .map(|i| {
            Arc::new(SimDisk::with_block_size(
                &format!("d{i}"),
                MEMBER,
                4096,
                i as u64,
            ))
        })
        .collect();
    let array = create_in(boxed(&sims[..n]), level, mode);
    let data = Rng::new(9).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.flush().unwrap();
    let data_offset = array.regions().data_offset;
    for &(member, block) in bad {
        sims[member].add_bad_range(data_offset + block * 4096, 4096);
    }
    array.fail_member("d0").unwrap();
    array.add_spare(Box::new(sims[n].clone()), false).unwrap();
    Lse { array, sims, data }
}

#[test]
fn raid5_rebuild_with_a_latent_sector_error_records_the_range_and_rebuilds_the_rest() {
    let n = 4;
    // Stripe 3, row 2 on member 2; stripe 10, rows 0 and 1 on member 1.
    let rows = CHUNK / 4096;
    let bad = [(2usize, 3 * rows + 2), (1, 10 * rows), (1, 10 * rows + 1)];
    let s = lse_setup(Level::Parity { m: 1 }, n, &bad);
    let reports = rebuild(&s.array);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert!(!report.cancelled);
    let data_offset = s.array.regions().data_offset;
    let lost: Vec<(u64, u64)> = report
        .lost
        .iter()
        .map(|l| (l.member_offset, l.len))
        .collect();
    assert_eq!(
        lost,
        vec![
            (data_offset + (3 * rows + 2) * 4096, 4096),
            (data_offset + 10 * rows * 4096, 8192),
        ]
    );
    let status = s.array.status();
    assert_eq!(status.state, ArrayState::Clean);
    let spare = status.members.iter().find(|m| m.name == "d4").unwrap();
    assert_eq!(spare.bad_blocks, lost, "the bad-block log lists them");
    // Every byte outside the lost rows reads back; reads touching them fail clearly.
    let layout = *s.array.layout();
    let lost_rows = [(3u64, 2u64), (10, 0), (10, 1)];
    let stripe_data = layout.stripe_data();
    for stripe in 0..s.array.len() / stripe_data {
        for d in 0..layout.k() {
            for row in 0..rows {
                let at = layout.array_offset(stripe, d, row * 4096);
                let mut back = vec![0u8; 4096];
                let result = s.array.read_at(&mut back, at);
                let member = layout.data_member(stripe, d);
                // The row is lost for the rebuilt member (d0's role) and for the member
                // with the unreadable sector.
                let in_lost_row = lost_rows.contains(&(stripe, row));
                let unreadable = bad
                    .iter()
                    .any(|&(m, b)| m == member && b == stripe * rows + row);
                if in_lost_row && (member == 0 || unreadable) {
                    let err = result.unwrap_err();
                    assert!(matches!(err, ArrayError::Unrecoverable { .. }), "{err}");
                    if member == 0 {
                        assert!(err.to_string().contains("bad-block log"), "{err}");
                    }
                } else {
                    result.unwrap_or_else(|e| panic!("stripe {stripe} d {d} row {row}: {e}"));
                    assert_eq!(back, s.data[at as usize..at as usize + 4096]);
                }
            }
        }
    }
    // The list survives a reassemble.
    s.array.close().unwrap();
    let present: Vec<Box<dyn Disk>> = boxed(&s.sims[1..]);
    let array = Array::assemble(present, &quiet()).unwrap();
    let spare = array
        .status()
        .members
        .into_iter()
        .find(|m| m.name == "d4")
        .unwrap();
    assert_eq!(spare.bad_blocks, lost);
    // Rewriting a lost stripe whole takes its rows off the list (the survivor's sectors
    // are rewritten too, which clears a latent sector error).
    let fresh = Rng::new(99).block(stripe_data as usize);
    array.write_at(&fresh, 10 * stripe_data).unwrap();
    let spare = array
        .status()
        .members
        .into_iter()
        .find(|m| m.name == "d4")
        .unwrap();
    assert_eq!(spare.bad_blocks, vec![lost[0]]);
    let mut back = vec![0u8; stripe_data as usize];
    array.read_at(&mut back, 10 * stripe_data).unwrap();
    assert_eq!(back, fresh);
}

#[test]
fn raid6_rebuild_with_a_latent_sector_error_repairs_it_fully() {
    let rows = CHUNK / 4096;
    let bad = [(2usize, 3 * rows + 2), (4, 7 * rows), (1, 20 * rows + 3)];
    let s = lse_setup(Level::Parity { m: 2 }, 6, &bad);
    let reports = rebuild(&s.array);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].lost.is_empty());
    assert_eq!(
        reports[0].repaired, 3,
        "the survivors' unreadable blocks are rewritten"
    );
    assert_eq!(read_all(&s.array).unwrap(), s.data);
    let status = s.array.status();
    assert!(status.members.iter().all(|m| m.bad_blocks.is_empty()));
    s.array.close().unwrap();
    // Survivors' sectors were rewritten: every member holds its role.
    let present: Vec<Arc<SimDisk>> = s.sims[1..].to_vec();
    for gone in 0..present.len() {
        for gone2 in gone + 1..present.len() {
            let disks: Vec<Box<dyn Disk>> = present
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != gone && *i != gone2)
                .map(|(_, d)| Box::new(d.clone()) as Box<dyn Disk>)
                .collect();
            let array = Array::assemble(disks, &ArrayOptions::default().allow_degraded()).unwrap();
            assert_eq!(read_all(&array).unwrap(), s.data, "{gone},{gone2} gone");
        }
    }
}

/// Hot replace: the old member stays in service, so losing another member mid-replace
/// loses nothing; damaged blocks of the old member are rebuilt on the new one; at the end
/// the old member is released.
#[test]
fn hot_replace_keeps_redundancy_and_releases_the_old_member() {
    let disks = mem_disks("m", 4, MEMBER);
    let array = create(boxed(&disks), Level::Parity { m: 1 });
    let data = Rng::new(21).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.flush().unwrap();
    // Corrupt a few blocks of the member being replaced, behind the array's back (once it
    // is closed: an image taken while the session was open would be behind).
    let data_offset = array.regions().data_offset;
    drop(array);
    let mut image = disks[2].snapshot();
    for b in [1u64, 17, 40] {
        image[(data_offset + b * 4096 + 5) as usize] ^= 0xff;
    }
    let corrupted = Arc::new(MemDisk::from_image("m2", image, 4096));
    let mut now = disks.clone();
    now[2] = corrupted;
    let array = Array::assemble(boxed(&now), &quiet()).unwrap();
    let new = Arc::new(MemDisk::new("new", MEMBER, 4096));
    let total = array.regions().data_size;
    let failed_other = AtomicBool::new(false);
    let report = array
        .replace(
            "m2",
            Box::new(new.clone()),
            false,
            &options(64 << 10),
            &AtomicBool::new(false),
            &|p| {
                if p.done >= total / 2 && !failed_other.swap(true, Ordering::AcqRel) {
                    // Another member fails mid-replace: m2 still serves its role.
                    array.fail_member("m0").unwrap();
                    assert_eq!(read_all(&array).unwrap(), data);
                }
            },
        )
        .unwrap();
    assert_eq!(report.replaced.as_deref(), Some("m2"));
    assert!(report.lost.is_empty());
    let status = array.status();
    assert!(status.members.iter().all(|m| m.name != "m2"), "released");
    assert_eq!(status.members[2].name, "new");
    assert_eq!(status.members[2].state, MemberState::Active);
    assert_eq!(status.state, ArrayState::Degraded); // m0 failed
    assert_eq!(read_all(&array).unwrap(), data);
    array.close().unwrap();
    // The new member alone (with m1, m3) holds the data.
    let present: Vec<Box<dyn Disk>> = vec![
        Box::new(now[1].clone()),
        Box::new(new.clone()),
        Box::new(now[3].clone()),
    ];
    let array = Array::assemble(present, &ArrayOptions::default().allow_degraded()).unwrap();
    assert_eq!(read_all(&array).unwrap(), data);
}

/// Replacing a failed member with a new disk is a rebuild onto it.
#[test]
fn replacing_a_failed_member_rebuilds_onto_the_new_disk() {
    let disks = mem_disks("m", 3, MEMBER);
    let array = create(boxed(&disks), Level::Mirror);
    let data = Rng::new(4).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.fail_member("m1").unwrap();
    let new = Arc::new(MemDisk::new("new", MEMBER, 4096));
    let report = replace_now(&array, "m1", Box::new(new.clone())).unwrap();
    assert_eq!(report.replaced, None);
    let status = array.status();
    assert_eq!(status.state, ArrayState::Clean);
    // The failed member stays listed until removed.
    assert!(
        status
            .members
            .iter()
            .any(|m| m.name == "m1" && m.role.is_none() && m.state == MemberState::Faulty)
    );
    array.remove_member("m1").unwrap();
    array.close().unwrap();
    let array = Array::assemble(
        vec![Box::new(new.clone()) as Box<dyn Disk>],
        &ArrayOptions::default().allow_degraded(),
    )
    .unwrap();
    assert_eq!(read_all(&array).unwrap(), data);
}

#[test]
fn a_failure_starts_an_automatic_rebuild_onto_a_spare() {
    let disks = mem_disks("m", 5, MEMBER);
    let array = Arc::new(create(boxed(&disks), Level::Parity { m: 2 }));
    let data = Rng::new(8).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    let spare = Arc::new(MemDisk::new("spare", MEMBER, 4096));
    array.add_spare(Box::new(spare.clone()), false).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let auto = {
        let seen = seen.clone();
        array.start_auto_rebuild(
            RebuildOptions::default(),
            Arc::new(move |p| {
                seen.store(p.done, Ordering::Relaxed);
            }),
        )
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(seen.load(Ordering::Relaxed), 0, "nothing to do while clean");
    array.fail_member("m4").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while array.status().state != ArrayState::Clean {
        assert!(std::time::Instant::now() < deadline, "no rebuild started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let reports = auto.stop();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].role, 4);
    assert_eq!(seen.load(Ordering::Relaxed), array.regions().data_size);
    assert_eq!(read_all(&array).unwrap(), data);
}

#[test]
fn nothing_to_rebuild_and_bad_replacements_change_nothing() {
    let disks = mem_disks("m", 4, MEMBER);
    let array = create(boxed(&disks), Level::Parity { m: 1 });
    let data = Rng::new(2).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.flush().unwrap();
    assert!(rebuild(&array).is_empty());
    let event = array.status().event;
    let before: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    let replace = |old: &str, new: Box<dyn Disk>| {
        array.replace(
            old,
            new,
            false,
            &RebuildOptions::default(),
            &AtomicBool::new(false),
            &|_| {},
        )
    };
    let small = MemDisk::new("small", MEMBER / 2, 4096);
    assert!(matches!(
        replace("m1", Box::new(small)).unwrap_err(),
        ArrayError::MemberTooSmall { .. }
    ));
    assert!(matches!(
        replace("nope", Box::new(MemDisk::new("x", MEMBER, 4096))).unwrap_err(),
        ArrayError::NoSuchMember(_)
    ));
    assert!(matches!(
        replace("m1", Box::new(disks[2].clone())).unwrap_err(),
        ArrayError::AlreadyMember { .. }
    ));
    let used = MemDisk::from_image("used", disks[0].snapshot(), 4096);
    assert!(matches!(
        replace("m1", Box::new(used)).unwrap_err(),
        ArrayError::AlreadyMember { .. }
    ));
    let status = array.status();
    assert_eq!(status.event, event);
    assert_eq!(status.state, ArrayState::Clean);
    assert!(status.rebuilds.is_empty());
    let after: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
    assert!(before == after, "refusals wrote nothing");
}

/// A disk that fails while it is being filled is abandoned: the error says so, the role
/// goes back to what it was (hot replace: the old member, still active; rebuild: faulty),
/// nothing is lost, and a later replace with a good disk succeeds.
#[test]
fn a_failing_new_disk_is_abandoned_and_nothing_is_lost() {
    for hot in [true, false] {
        let disks = mem_disks("m", 4, MEMBER);
        let array = create(boxed(&disks), Level::Parity { m: 1 });
        let data = Rng::new(12).block(array.len() as usize);
        array.write_at(&data, 0).unwrap();
        if !hot {
            array.fail_member("m2").unwrap();
        }
        let bad = Arc::new(SimDisk::with_block_size("bad", MEMBER, 4096, 1));
        let data_offset = array.regions().data_offset;
        bad.fail_writes_in(data_offset + array.regions().data_size / 2, 4096);
        let err = array
            .replace(
                "m2",
                Box::new(bad.clone()),
                false,
                &options(64 << 10),
                &AtomicBool::new(false),
                &|_| {},
            )
            .unwrap_err();
        assert!(
            matches!(err, ArrayError::RebuildAbandoned { ref member, .. } if member == "bad"),
            "{err}"
        );
        let status = array.status();
        assert!(status.rebuilds.is_empty());
        assert!(status.members.iter().all(|m| m.name != "bad"));
        assert_eq!(status.members[2].name, "m2");
        let expect = if hot {
            MemberState::Active
        } else {
            MemberState::Faulty
        };
        assert_eq!(status.members[2].state, expect);
        assert_eq!(read_all(&array).unwrap(), data);
        // The superblocks agree: reassembled, nobody is rebuilding.
        array.close().unwrap();
        let array = Array::assemble(boxed(&disks), &quiet()).unwrap();
        assert!(array.status().rebuilds.is_empty());
        let good = Arc::new(MemDisk::new("good", MEMBER, 4096));
        replace_now(&array, "m2", Box::new(good.clone())).unwrap();
        assert_eq!(array.status().state, ArrayState::Clean);
        assert_eq!(read_all(&array).unwrap(), data);
    }
}

/// After a rebuild lost a row (RAID-5 with a latent sector error), an unclean stop and a
/// resync (bitmap mode) or a journal replay must not turn the row into data: it stays
/// listed and reads of it keep failing.
#[test]
fn resync_leaves_a_lost_row_lost() {
    for mode in [Consistency::Bitmap, Consistency::Journal] {
        a_lost_row_stays_lost(mode);
    }
}

fn a_lost_row_stays_lost(mode: Consistency) {
    let rows = CHUNK / 4096;
    let s = lse_setup_in(Level::Parity { m: 1 }, 4, &[(2, 5 * rows + 1)], Some(mode));
    let reports = rebuild(&s.array);
    assert_eq!(reports[0].lost.len(), 1);
    let lost = reports[0].lost[0].clone();
    let at = lost.array_offset.expect("a data block");
    // Written (in the lost row's stripe, so the write-intent bitmap marks it for the
    // resync) and not closed: dirty.
    let stripe_data = s.array.layout().stripe_data();
    s.array.write_at(&[7u8; 4096], 5 * stripe_data).unwrap();
    let Lse { array, sims, .. } = s;
    std::mem::forget(array);
    let array = Array::assemble(boxed(&sims[1..]), &quiet()).unwrap();
    if mode == Consistency::Journal {
        let replay = array.status().replay.expect("replayed");
        assert!(replay.replayed >= 1, "{replay:?}");
        assert!(!array.status().unclean_start);
    } else {
        assert!(array.status().unclean_start);
        let report = array.resync(&|_, _| {}).unwrap();
        assert!(report.lost_rows >= 1, "{report:?}");
    }
    let mut back = vec![0u8; 4096];
    assert!(matches!(
        array.read_at(&mut back, at),
        Err(ArrayError::Unrecoverable { .. })
    ));
    let spare = array
        .status()
        .members
        .into_iter()
        .find(|m| m.name == "d4")
        .unwrap();
    assert_eq!(spare.bad_blocks, vec![(lost.member_offset, 4096)]);
}

/// A disk being filled that returns errors is not held against the member it replaces.
#[test]
fn the_new_disks_errors_do_not_fail_the_old_member() {
    let disks = mem_disks("m", 4, MEMBER);
    create(boxed(&disks), Level::Parity { m: 1 })
        .close()
        .unwrap();
    let strict = ArrayOptions {
        error_threshold: 2,
        ..ArrayOptions::default().allow_degraded()
    };
    let array = Array::assemble(boxed(&disks), &strict).unwrap();
    let data = Rng::new(13).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    let new = Arc::new(SimDisk::with_block_size("new", MEMBER, 4096, 3));
    let data_offset = array.regions().data_offset;
    let total = array.regions().data_size;
    let checked = AtomicBool::new(false);
    array
        .replace(
            "m1",
            Box::new(new.clone()),
            false,
            &options(64 << 10),
            &AtomicBool::new(false),
            &|p| {
                if p.done >= total / 2 && !checked.swap(true, Ordering::AcqRel) {
                    // Sectors of the new disk go bad where it is already filled: reads
                    // there fail and are rebuilt from the others.
                    new.add_bad_range(data_offset, 16 * 4096);
                    assert_eq!(read_all(&array).unwrap(), data);
                    let old = &array.status().members[1];
                    assert_eq!((old.state, old.read_errors), (MemberState::Active, 0));
                }
            },
        )
        .unwrap();
    assert_eq!(array.status().state, ArrayState::Clean);
    assert_eq!(read_all(&array).unwrap(), data);
}

/// A hot replace stopped part way leaves the old member in its role and the new disk as a
/// spare, which the same replace (without force) takes again, starting over.
#[test]
fn a_cancelled_hot_replace_can_be_run_again() {
    let disks = mem_disks("m", 4, MEMBER);
    let array = create(boxed(&disks), Level::Parity { m: 2 });
    let data = Rng::new(14).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    let new = Arc::new(MemDisk::new("new", MEMBER, 4096));
    let cancel = AtomicBool::new(false);
    let total = array.regions().data_size;
    let report = array
        .replace(
            "m0",
            Box::new(new.clone()),
            false,
            &options(64 << 10),
            &cancel,
            &|p| {
                if p.done >= total / 3 {
                    cancel.store(true, Ordering::Release)
                }
            },
        )
        .unwrap();
    assert!(report.cancelled);
    let status = array.status();
    assert!(status.rebuilds.is_empty());
    assert_eq!(status.members[0].name, "m0");
    assert!(
        status
            .members
            .iter()
            .any(|m| m.name == "new" && m.state == MemberState::Spare)
    );
    // Writes go on without it; then the same replace runs to the end.
    let fresh = Rng::new(15).block(100_000);
    array.write_at(&fresh, 4096).unwrap();
    let mut expect = data.clone();
    expect[4096..4096 + fresh.len()].copy_from_slice(&fresh);
    array.close().unwrap();
    let array = Array::assemble(boxed(&disks), &quiet()).unwrap();
    let report = replace_now(&array, "m0", Box::new(new.clone())).unwrap();
    assert_eq!(report.resumed_from, 0);
    let status = array.status();
    assert_eq!(status.members[0].name, "new");
    assert!(
        status
            .members
            .iter()
            .all(|m| m.name != "new" || m.role == Some(0))
    );
    assert_eq!(read_all(&array).unwrap(), expect);
}

/// A check-only scrub of an array assembled without one member does not record its
/// position (that update would mark the absent member faulty for good).
#[test]
fn a_check_scrub_does_not_demote_an_absent_member() {
    let disks = mem_disks("m", 5, MEMBER);
    let array = create(boxed(&disks), Level::Parity { m: 2 });
    array.write_at(&[9u8; 50_000], 0).unwrap();
    array.close().unwrap();
    let array = Array::assemble(boxed(&disks[..4]), &quiet()).unwrap();
    let cancel = AtomicBool::new(false);
    let report = array
        .scrub(
            raidkit::array::ScrubOptions {
                checkpoint_every: 16 << 10,
                ..Default::default()
            },
            &cancel,
            &|_| cancel.store(true, Ordering::Release),
        )
        .unwrap();
    assert!(report.cancelled);
    assert_eq!(array.status().scrub, None);
    array.close().unwrap();
    let array = Array::assemble(boxed(&disks), &quiet()).unwrap();
    assert_eq!(
        array.status().state,
        ArrayState::Clean,
        "m4 is still current"
    );
}

/// Journal mode, a crash in the middle of a rebuild with writes to stripes the new disk
/// already held: those writes have no journal part for the role being rebuilt (it has no
/// active member), so the replay sends the rebuild back before the first replayed stripe
/// rather than let the new disk serve what it missed. Every member's in-place writes since
/// the last flush are lost at the crash (only what was flushed survives).
#[test]
fn a_journal_replay_sends_a_rebuild_back_over_stripes_written_since_its_checkpoint() {
    let sims: Vec<Arc<SimDisk>> = (0..5)
        .map(|i| {
            Arc::new(SimDisk::with_block_size(
                &format!("d{i}"),
                MEMBER,
                4096,
                70 + i,
            ))
        })
        .collect();
    let array = create_in(boxed(&sims[..4]), Level::Parity { m: 1 }, None);
    let mut data = Rng::new(70).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.close().unwrap();
    let array = Array::assemble(boxed(&sims[..4]), &quiet()).unwrap();
    array.fail_member("d0").unwrap();
    array.add_spare(Box::new(sims[4].clone()), false).unwrap();
    let total = array.regions().data_size;
    let cancel = AtomicBool::new(false);
    array
        .rebuild(&options(96 << 10), &cancel, &|p| {
            if p.done >= total / 2 {
                cancel.store(true, Ordering::Release);
            }
        })
        .unwrap();
    let held = array.status().rebuilds[0].done;
    assert!(held >= CHUNK * 4, "{held}");
    // Written after the checkpoint, into stripes the new disk holds; not flushed.
    let fresh = Rng::new(71).block(3 * CHUNK as usize);
    array.write_at(&fresh, CHUNK).unwrap();
    data[CHUNK as usize..4 * CHUNK as usize].copy_from_slice(&fresh);
    std::mem::forget(array);
    let disks: Vec<Arc<MemDisk>> = sims[1..]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Arc::new(MemDisk::from_image(
                &format!("d{}", i + 1),
                s.durable_image(),
                4096,
            ))
        })
        .collect();
    let array = Array::assemble(boxed(&disks), &quiet()).unwrap();
    let status = array.status();
    assert!(status.replay.is_some_and(|r| r.replayed > 0));
    // Reads first: without the step back they would return the new disk's old blocks.
    assert_eq!(read_all(&array).unwrap(), data);
    assert!(status.rebuilds[0].done < held, "{:?}", status.rebuilds);
    rebuild(&array);
    assert_eq!(read_all(&array).unwrap(), data);
    array.close().unwrap();
    assert_every_member_holds_its_role(&openers(&disks), &hash(&data));
}
