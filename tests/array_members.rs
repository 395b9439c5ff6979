//! Member management and self-healing, on simulated members: counters, repairs written
//! back, the error threshold, write and flush failures, fail/remove/add-spare, the dirty
//! flag across an unclean stop.

use std::sync::Arc;

use raidkit::array::{
    Array, ArrayError, ArrayOptions, ArrayState, Consistency, CreateOptions, MemberState,
};
use raidkit::disk::{Disk, MemDisk};
use raidkit::format;
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::{boxed, mem_disks, read_all};
use raidkit_testkit::sim::SimDisk;

const MEMBER: u64 = 4 << 20;
const CHUNK: u64 = 16 << 10;

struct Setup {
    array: Array,
    sims: Vec<Arc<SimDisk>>,
    data: Vec<u8>,
    data_offset: u64,
}

fn setup(level: Level, n: usize, options: ArrayOptions) -> Setup {
    let sims: Vec<Arc<SimDisk>> = (0..n)
        .map(|i| Arc::new(SimDisk::new(&format!("sim{i}"), MEMBER, i as u64)))
        .collect();
    let array = Array::create(
        sims.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect(),
        &CreateOptions::new(level)
            .chunk(CHUNK)
            .array_options(options),
    )
    .unwrap();
    let data = Rng::new(3).block(array.len() as usize);
    array.write_at(&data, 0).unwrap();
    array.flush().unwrap();
    let data_offset = array.regions().data_offset;
    Setup {
        array,
        sims,
        data,
        data_offset,
    }
}

#[test]
fn corrupt_blocks_are_healed_counted_and_rewritten() {
    let s = setup(
        Level::Parity { m: 2 },
        6,
        ArrayOptions::default().allow_degraded(),
    );
    // Damage 5 blocks on member 1 and 3 on member 4 (different rows than member 1's).
    for b in 0..5u64 {
        s.sims[1].flip_bit(s.data_offset + b * 8 * 4096 + 17, 2);
    }
    for b in 0..3u64 {
        s.sims[4].flip_bit(s.data_offset + (b * 8 + 3) * 4096 + 99, 5);
    }
    // Unreadable sectors on member 2.
    s.sims[2].add_bad_range(s.data_offset + 10 * 4096, 512);
    assert!(read_all(&s.array).unwrap() == s.data);
    let status = s.array.status();
    let m = |i: usize| &status.members[i];
    // Parity blocks are only read when needed, so count what was found and repaired.
    assert!(
        m(1).checksum_errors >= 1 && m(1).repaired == m(1).checksum_errors,
        "{:?}",
        m(1)
    );
    assert_eq!(m(2).read_errors, 1, "{:?}", m(2));
    assert_eq!(m(2).repaired, 1);
    assert_eq!(status.state, ArrayState::Clean);
    // The repairs were written back: a second full read finds nothing new.
    let before: Vec<u64> = status
        .members
        .iter()
        .map(|m| m.checksum_errors + m.read_errors)
        .collect();
    assert!(read_all(&s.array).unwrap() == s.data);
    let after: Vec<u64> = s
        .array
        .status()
        .members
        .iter()
        .map(|m| m.checksum_errors + m.read_errors)
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_member_past_the_error_threshold_is_faulty() {
    let options = ArrayOptions {
        error_threshold: 3,
        ..ArrayOptions::default().allow_degraded()
    };
    let s = setup(Level::Parity { m: 1 }, 4, options);
    for b in 0..10u64 {
        s.sims[0].flip_bit(s.data_offset + b * 4096, 0);
    }
    assert!(read_all(&s.array).unwrap() == s.data);
    let status = s.array.status();
    assert_eq!(status.members[0].state, MemberState::Faulty);
    assert_eq!(status.state, ArrayState::Degraded);
    // Still correct, from parity.
    assert!(read_all(&s.array).unwrap() == s.data);
}

#[test]
fn write_and_flush_failures_fail_the_member_not_the_write() {
    let mut s = setup(
        Level::Parity { m: 2 },
        5,
        ArrayOptions::default().allow_degraded(),
    );
    s.sims[3].fail_writes_in(0, MEMBER);
    let fresh = Rng::new(11).block(200_000);
    s.array.write_at(&fresh, 5_000).unwrap();
    s.data[5_000..205_000].copy_from_slice(&fresh);
    assert_eq!(s.array.status().members[3].state, MemberState::Faulty);
    assert!(s.array.status().members[3].write_errors >= 1);
    assert!(read_all(&s.array).unwrap() == s.data);
    s.sims[1].fail_next_flush();
    s.array.write_at(&fresh[..1000], 0).unwrap();
    s.data[..1000].copy_from_slice(&fresh[..1000]);
    s.array.flush().unwrap();
    let status = s.array.status();
    assert_eq!(status.members[1].state, MemberState::Faulty);
    assert_eq!(status.state, ArrayState::Degraded);
    assert!(read_all(&s.array).unwrap() == s.data);
    // A third loss is past RAID-6's redundancy.
    s.sims[0].fail_writes_in(0, MEMBER);
    let err = s.array.write_at(&fresh, 0).unwrap_err();
    assert!(matches!(err, ArrayError::Failed { .. }), "{err}");
    assert_eq!(s.array.status().state, ArrayState::Failed);
}

#[test]
fn fail_remove_and_add_spare() {
    let s = setup(
        Level::Parity { m: 1 },
        3,
        ArrayOptions::default().allow_degraded(),
    );
    let name = |i: usize| format!("sim{i}");
    // An active member must be failed before it is removed.
    let err = s.array.remove_member(&name(1)).unwrap_err();
    assert!(err.to_string().contains("active"), "{err}");
    s.array.fail_member(&name(1)).unwrap();
    s.array.remove_member(&name(1)).unwrap();
    let status = s.array.status();
    assert_eq!(status.members[1].state, MemberState::Missing);
    assert_eq!(status.state, ArrayState::Degraded);
    assert!(matches!(
        s.array.fail_member("nope"),
        Err(ArrayError::NoSuchMember(_))
    ));
    assert!(read_all(&s.array).unwrap() == s.data);
    // A spare: refused when it holds a superblock, unless forced.
    let spare = Arc::new(MemDisk::new("spare", MEMBER, 4096));
    s.array.add_spare(Box::new(spare.clone()), false).unwrap();
    let status = s.array.status();
    assert_eq!(status.members.last().unwrap().state, MemberState::Spare);
    assert_eq!(status.members.last().unwrap().role, None);
    let used = s.sims[1].clone(); // the removed member still holds a superblock
    let err = s
        .array
        .add_spare(Box::new(used.clone()), false)
        .unwrap_err();
    assert!(matches!(err, ArrayError::AlreadyMember { .. }), "{err}");
    let small = MemDisk::new("small", 1 << 20, 4096);
    assert!(matches!(
        s.array.add_spare(Box::new(small), false),
        Err(ArrayError::MemberTooSmall { .. })
    ));
}

/// An array not closed cleanly starts dirty, and stays dirty across a clean close until a
/// resync (a later issue) has made parity trustworthy.
#[test]
fn an_unclean_stop_is_remembered() {
    let disks: Vec<Arc<MemDisk>> = (0..4)
        .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let boxed = |disks: &[Arc<MemDisk>]| {
        disks
            .iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect::<Vec<_>>()
    };
    let array = Array::create(
        boxed(&disks),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(CHUNK)
            .consistency(Consistency::Bitmap),
    )
    .unwrap();
    assert!(!array.status().dirty);
    array.write_at(&[1u8; 10_000], 3).unwrap();
    assert!(array.status().dirty);
    array.flush().unwrap();
    std::mem::forget(array); // a crash: no close
    let array = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
    let status = array.status();
    assert!(status.dirty && status.unclean_start);
    array.close().unwrap();
    let array = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
    assert!(
        array.status().unclean_start,
        "closing did not resync, so the flag stays"
    );
    let mut back = vec![0u8; 10_000];
    array.read_at(&mut back, 3).unwrap();
    assert!(back.iter().all(|&b| b == 1));
}

#[test]
fn out_of_range_requests_are_refused() {
    let s = setup(Level::Mirror, 2, ArrayOptions::default().allow_degraded());
    let size = s.array.len();
    let mut buf = [0u8; 10];
    assert!(matches!(
        s.array.read_at(&mut buf, size - 5),
        Err(ArrayError::OutOfRange { .. })
    ));
    assert!(matches!(
        s.array.write_at(&buf, u64::MAX - 3),
        Err(ArrayError::OutOfRange { .. })
    ));
    s.array.read_at(&mut buf, size - 10).unwrap();
    s.array.write_at(&[], size).unwrap();
}

/// A member missing when a dirty array is started (allowed explicitly) is recorded as
/// faulty before the first write, so it cannot come back as current later.
#[test]
fn a_member_missing_at_a_dirty_start_comes_back_stale() {
    let disks: Vec<Arc<MemDisk>> = (0..3)
        .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let boxed = |ds: &[Arc<MemDisk>]| {
        ds.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect::<Vec<_>>()
    };
    let array = Array::create(
        boxed(&disks),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(CHUNK)
            .consistency(Consistency::Bitmap),
    )
    .unwrap();
    array.write_at(&[1u8; 100_000], 0).unwrap();
    array.flush().unwrap();
    std::mem::forget(array); // crash: dirty
    let err = Array::assemble(
        boxed(&disks[..2]),
        &ArrayOptions::default().allow_degraded(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ArrayError::DirtyDegraded { ref missing } if missing == &[2]),
        "{err}"
    );
    let allow = ArrayOptions {
        allow_dirty_degraded: true,
        ..ArrayOptions::default().allow_degraded()
    };
    let array = Array::assemble(boxed(&disks[..2]), &allow).unwrap();
    let fresh = Rng::new(5).block(100_000);
    array.write_at(&fresh, 0).unwrap();
    array.close().unwrap();
    let array = Array::assemble(boxed(&disks), &allow).unwrap();
    assert_eq!(array.status().members[2].state, MemberState::Stale);
    let mut back = vec![0u8; 100_000];
    array.read_at(&mut back, 0).unwrap();
    assert!(back == fresh);
}

/// In journal mode (the default for parity levels) a dirty array missing a member starts
/// without any flag: the journal is replayed first. The missing member is recorded faulty
/// at that replay, so it comes back stale.
#[test]
fn a_dirty_degraded_journal_array_starts_without_force() {
    let disks: Vec<Arc<MemDisk>> = (0..3)
        .map(|i| Arc::new(MemDisk::new(&format!("m{i}"), MEMBER, 4096)))
        .collect();
    let boxed = |ds: &[Arc<MemDisk>]| {
        ds.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect::<Vec<_>>()
    };
    let array = Array::create(
        boxed(&disks),
        &CreateOptions::new(Level::Parity { m: 1 }).chunk(CHUNK),
    )
    .unwrap();
    assert_eq!(array.status().consistency, Consistency::Journal);
    let first = Rng::new(4).block(100_000);
    array.write_at(&first, 0).unwrap();
    array.flush().unwrap();
    std::mem::forget(array); // crash: dirty, records in the journal
    let array = Array::assemble(
        boxed(&disks[..2]),
        &ArrayOptions::default().allow_degraded(),
    )
    .unwrap();
    let status = array.status();
    let replay = status
        .replay
        .clone()
        .expect("a dirty journal array replays");
    assert!(replay.replayed > 0, "{replay:?}");
    assert!(!status.unclean_start);
    let mut back = vec![0u8; 100_000];
    array.read_at(&mut back, 0).unwrap();
    assert!(back == first);
    let fresh = Rng::new(5).block(100_000);
    array.write_at(&fresh, 0).unwrap();
    array.close().unwrap();
    let array = Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded()).unwrap();
    assert_eq!(array.status().members[2].state, MemberState::Stale);
    assert!(
        array.status().replay.is_none(),
        "closed cleanly: nothing to replay"
    );
    array.read_at(&mut back, 0).unwrap();
    assert!(back == fresh);
}

/// Crash with unflushed writes, resync, and check: everything flushed is intact, every
/// sector written since holds bytes it held at some point since the flush, and parity
/// agrees with the data
/// (each member can then be lost and the bytes stay the same).
#[test]
fn resync_after_a_crash_makes_parity_agree() {
    for (level, n) in [
        (Level::Parity { m: 1 }, 4),
        (Level::Parity { m: 2 }, 5),
        (Level::Mirror, 2),
    ] {
        for seed in 0..4u64 {
            let sims: Vec<Arc<SimDisk>> = (0..n)
                .map(|i| {
                    Arc::new(SimDisk::new(
                        &format!("sim{i}"),
                        MEMBER,
                        seed * 10 + i as u64,
                    ))
                })
                .collect();
            let boxed = || {
                sims.iter()
                    .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
                    .collect::<Vec<_>>()
            };
            let array = Array::create(
                boxed(),
                &CreateOptions::new(level)
                    .chunk(CHUNK)
                    .consistency(Consistency::Bitmap),
            )
            .unwrap();
            let size = array.len() as usize;
            let mut rng = Rng::new(seed);
            let flushed = rng.block(size);
            array.write_at(&flushed, 0).unwrap();
            array.flush().unwrap();
            let mut latest = flushed.clone();
            // Every state the array passed through since the flush: a crash may leave each
            // sector as any of them (later unflushed writes may be lost).
            let mut states = vec![flushed.clone()];
            for _ in 0..20 {
                let at = rng.below(size - 1);
                let len = 1 + rng.below((size - at).min(40_000));
                let bytes = rng.block(len);
                array.write_at(&bytes, at as u64).unwrap();
                latest[at..at + len].copy_from_slice(&bytes);
                states.push(latest.clone());
            }
            std::mem::forget(array);
            for sim in &sims {
                sim.crash();
            }
            let array =
                Array::assemble(boxed(), &ArrayOptions::default().allow_degraded()).unwrap();
            assert!(array.status().unclean_start);
            let report = array.resync(&|_, _| {}).unwrap();
            assert!(report.stripes > 0);
            let mut after = vec![0u8; size];
            array.read_at(&mut after, 0).unwrap();
            for (i, sector) in after.chunks(512).enumerate() {
                let r = i * 512..i * 512 + sector.len();
                assert!(
                    states.iter().any(|state| sector == &state[r.clone()]),
                    "{level:?} seed {seed}: sector {i} holds bytes never written there"
                );
            }
            assert_eq!(array.status().state, ArrayState::Clean);
            array.close().unwrap();
            // Parity agrees: losing any one member gives the same bytes.
            for lost in 0..n {
                let disks: Vec<Box<dyn Disk>> = sims
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != lost)
                    .map(|(_, d)| Box::new(d.clone()) as Box<dyn Disk>)
                    .collect();
                let degraded =
                    Array::assemble(disks, &ArrayOptions::default().allow_degraded()).unwrap();
                assert!(
                    !degraded.status().unclean_start,
                    "closed clean after resync"
                );
                let mut back = vec![0u8; size];
                degraded.read_at(&mut back, 0).unwrap();
                assert!(
                    back == after,
                    "{level:?} seed {seed}: without member {lost}"
                );
                drop(degraded);
            }
        }
    }
}

/// A member whose journal cannot be read at replay is failed, not trusted: its parts are not
/// required, the records are replayed on the others, and its blocks come from them.
#[test]
fn an_unreadable_journal_fails_its_member_at_replay() {
    let sims: Vec<Arc<SimDisk>> = (0..4)
        .map(|i| Arc::new(SimDisk::new(&format!("s{i}"), MEMBER, 40 + i as u64)))
        .collect();
    let boxed = || {
        sims.iter()
            .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
            .collect::<Vec<_>>()
    };
    let array = Array::create(
        boxed(),
        &CreateOptions::new(Level::Parity { m: 1 }).chunk(CHUNK),
    )
    .unwrap();
    let size = array.len() as usize;
    let mut model = Rng::new(41).block(size);
    array.write_at(&model, 0).unwrap();
    array.close().unwrap();
    let array = Array::assemble(boxed(), &ArrayOptions::default().allow_degraded()).unwrap();
    let journal = array.regions().journal_offset;
    let mut rng = Rng::new(42);
    for _ in 0..10 {
        let at = rng.below(size - 9000);
        let len = 1 + rng.below(9000);
        let bytes = rng.block(len);
        array.write_at(&bytes, at as u64).unwrap();
        model[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    std::mem::forget(array);
    for sim in &sims {
        sim.crash();
    }
    sims[1].add_bad_range(journal + 4096, 4096);
    let array = Array::assemble(boxed(), &ArrayOptions::default().allow_degraded()).unwrap();
    let status = array.status();
    assert_eq!(status.members[1].state, MemberState::Faulty);
    assert!(status.replay.is_some_and(|r| r.replayed > 0));
    let mut back = vec![0u8; size];
    array.read_at(&mut back, 0).unwrap();
    assert!(back == model, "every write that returned is there");
}

/// Issue 14, finding 3: create checks the spares with the members, before anything is
/// written. A spare holding a damaged raidkit superblock, a spare too small, or a spare
/// named like a member is refused, and no disk given (members or spares) changes.
#[test]
fn create_refuses_a_bad_spare_before_writing_anything() {
    let options = CreateOptions::new(Level::Parity { m: 1 }).chunk(CHUNK);
    // A spare that once was a member of another array, its superblocks since damaged.
    let old = mem_disks("old", 3, MEMBER);
    Array::create(boxed(&old), &options)
        .unwrap()
        .close()
        .unwrap();
    let mut image = old[0].snapshot();
    for at in [format::SB_OFFSETS[0], format::SB_OFFSETS[1]] {
        image[at as usize + 200] ^= 0xff;
    }
    let damaged = Arc::new(MemDisk::from_image("damaged", image, 4096));
    assert!(matches!(
        raidkit::meta::read_superblock(damaged.as_ref()),
        Err(raidkit::meta::ReadError::NoValidCopy(..))
    ));
    let small = Arc::new(MemDisk::new("small", MEMBER / 2, 4096));
    let twin = Arc::new(MemDisk::new("d1", MEMBER, 4096));
    for (spare, what) in [
        (damaged, "damaged superblock"),
        (small, "too small"),
        (twin, "named like a member"),
    ] {
        let members = mem_disks("d", 4, MEMBER);
        let before: Vec<Vec<u8>> = members.iter().map(|d| d.snapshot()).collect();
        let spare_before = spare.snapshot();
        let err = Array::create_with_spares(
            boxed(&members),
            boxed(std::slice::from_ref(&spare)),
            &options,
            &|_, _| {},
        )
        .map(|_| ())
        .expect_err(what);
        match (&err, what) {
            (ArrayError::AlreadyMember { member, .. }, "damaged superblock") => {
                assert_eq!(member, "damaged")
            }
            (ArrayError::MemberTooSmall { member, .. }, "too small") => assert_eq!(member, "small"),
            (ArrayError::DuplicateName { member }, "named like a member") => {
                assert_eq!(member, "d1")
            }
            _ => panic!("{what}: unexpected error {err}"),
        }
        for (disk, image) in members.iter().zip(&before) {
            assert!(
                &disk.snapshot() == image,
                "{what}: {} was written",
                disk.name()
            );
        }
        assert!(
            spare.snapshot() == spare_before,
            "{what}: the spare was written"
        );
    }
    // With good spares the first superblocks already record them.
    let members = mem_disks("d", 4, MEMBER);
    let spares = mem_disks("s", 2, MEMBER);
    let array =
        Array::create_with_spares(boxed(&members), boxed(&spares), &options, &|_, _| {}).unwrap();
    array.close().unwrap();
    let mut all = boxed(&members);
    all.extend(boxed(&spares));
    let array = Array::assemble(all, &ArrayOptions::default().allow_degraded()).unwrap();
    let status = array.status();
    assert_eq!(
        status
            .members
            .iter()
            .filter(|m| m.state == MemberState::Spare)
            .count(),
        2,
        "{status:?}"
    );
}

/// Issue 14, finding 4: errors say what is wrong. A disk named like one the array holds
/// names what holds it (not itself twice); a damaged bad-block log is not "no valid
/// superblock".
#[test]
fn errors_name_what_is_wrong() {
    let members = mem_disks("d", 4, MEMBER);
    let options = CreateOptions::new(Level::Parity { m: 1 }).chunk(CHUNK);
    let array = Array::create(boxed(&members), &options).unwrap();
    let err = array
        .add_spare(Box::new(MemDisk::new("d2", MEMBER, 4096)), false)
        .unwrap_err();
    assert_eq!(err.to_string(), "d2: already in this array (role 2)");
    array
        .add_spare(Box::new(MemDisk::new("s0", MEMBER, 4096)), false)
        .unwrap();
    let err = array
        .add_spare(Box::new(MemDisk::new("s0", MEMBER, 4096)), false)
        .unwrap_err();
    assert_eq!(err.to_string(), "s0: already in this array (a spare)");
    let twice = Array::create(
        boxed(&[members[0].clone(), members[0].clone()]),
        &CreateOptions::new(Level::Mirror).chunk(CHUNK).force(true),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(twice.to_string(), "d0: given twice");
    array.close().unwrap();

    let sb = raidkit::meta::read_superblock(members[1].as_ref())
        .unwrap()
        .superblock;
    let log = format::BadLog {
        ranges: vec![(3, 2)],
    };
    raidkit::meta::write_bad_log(members[1].as_ref(), &sb.member_uuid, &log).unwrap();
    assert_eq!(
        raidkit::meta::read_bad_log(members[1].as_ref(), &sb.member_uuid, &sb.regions).unwrap(),
        log
    );
    let mut image = members[1].snapshot();
    image[format::BADLOG_OFFSET as usize + 40] ^= 0xff;
    let damaged = MemDisk::from_image("d1", image, 4096);
    let err = raidkit::meta::read_bad_log(&damaged, &sb.member_uuid, &sb.regions).unwrap_err();
    assert!(
        matches!(err, raidkit::meta::ReadError::BadLog(_)),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("damaged bad-block log") && !message.contains("superblock"),
        "{message}"
    );
}

/// A memory disk that records the offset of every write, in order.
#[derive(Debug)]
struct Recording {
    inner: MemDisk,
    writes: std::sync::Mutex<Vec<u64>>,
}

impl Disk for Recording {
    fn info(&self) -> &raidkit::disk::DiskInfo {
        self.inner.info()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), raidkit::disk::DiskError> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), raidkit::disk::DiskError> {
        self.writes.lock().unwrap().push(offset);
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> Result<(), raidkit::disk::DiskError> {
        self.inner.flush()
    }
}

#[test]
fn a_member_failing_during_create_commits_no_superblock_before_the_tables() {
    // RAID-5 over four members; the last one fails every data write, so the initial sync
    // marks it faulty. No superblock may reach the others before their checksum tables do:
    // a superblock over an unwritten table would make every block a checksum mismatch.
    let options = CreateOptions::new(Level::Parity { m: 1 }).chunk(CHUNK);
    let regions = format::Regions::plan(MEMBER, CHUNK).unwrap();
    let recorders: Vec<Arc<Recording>> = (0..3)
        .map(|i| {
            Arc::new(Recording {
                inner: MemDisk::new(&format!("r{i}"), MEMBER, 4096),
                writes: std::sync::Mutex::new(Vec::new()),
            })
        })
        .collect();
    let failing = Arc::new(SimDisk::new("bad", MEMBER, 7));
    failing.fail_writes_in(regions.data_offset, regions.data_size);
    let mut disks: Vec<Box<dyn Disk>> = recorders
        .iter()
        .map(|r| Box::new(Arc::clone(r)) as Box<dyn Disk>)
        .collect();
    disks.push(Box::new(Arc::clone(&failing)));
    let array = Array::create(disks, &options).unwrap();
    assert_eq!(array.status().members[3].state, MemberState::Faulty);
    let sb_end = 2 * format::SB_SIZE as u64;
    let table = regions.csum_offset..regions.csum_offset + regions.csum_size;
    for r in &recorders {
        let writes = r.writes.lock().unwrap();
        let first_sb = writes
            .iter()
            .position(|&at| at < sb_end)
            .expect("a superblock");
        let first_table = writes
            .iter()
            .position(|at| table.contains(at))
            .expect("a table write");
        assert!(
            first_table < first_sb,
            "{}: superblock written (write {first_sb}) before the table (write {first_table})",
            r.inner.name()
        );
    }
    array.close().unwrap();
}

#[test]
fn the_array_says_where_every_data_and_parity_byte_lives() {
    for (level, n) in [
        (Level::Parity { m: 1 }, 4),
        (Level::Parity { m: 2 }, 5),
        (Level::Parity { m: 3 }, 6),
        (Level::Mirror, 3),
    ] {
        let options = CreateOptions::new(level).chunk(CHUNK);
        let disks = mem_disks("d", n, MEMBER);
        let array = Array::create(boxed(&disks), &options).unwrap();
        let mut data = vec![0u8; array.len() as usize];
        Rng::new(n as u64).fill(&mut data);
        array.write_at(&data, 0).unwrap();
        array.flush().unwrap();
        let images: Vec<Vec<u8>> = disks.iter().map(|d| d.snapshot()).collect();
        let byte_at = |role: usize, at: u64| images[role][at as usize];
        let mut rng = Rng::new(99);
        for _ in 0..200 {
            let offset = rng.below(data.len()) as u64;
            let place = array.locate(offset).unwrap();
            assert_eq!(place.member, disks[place.role].name());
            assert_eq!(
                byte_at(place.role, place.disk_offset),
                data[offset as usize]
            );
            // P is the XOR of the row's data bytes; a mirror's other copies are the same.
            let p = array.locate_parity(offset, 0).unwrap();
            assert_eq!(
                p.disk_offset, place.disk_offset,
                "same row, same member offset"
            );
            let stripe_data = array.layout().stripe_data();
            let in_chunk = offset % CHUNK;
            let stripe_start = offset / stripe_data * stripe_data;
            let expected = if level == Level::Mirror {
                data[offset as usize]
            } else {
                (0..stripe_data / CHUNK)
                    .map(|d| data[(stripe_start + d * CHUNK + in_chunk) as usize])
                    .fold(0, |a, b| a ^ b)
            };
            assert_eq!(byte_at(p.role, p.disk_offset), expected, "{level:?}");
            assert_ne!(p.role, place.role);
        }
        assert!(array.locate_parity(0, array.layout().m()).is_err());
        assert!(array.locate(array.len()).is_err());
        array.close().unwrap();
    }
}

#[test]
fn member_size_for_is_the_smallest_whole_mib_that_holds_the_capacity() {
    for (level, n) in [
        (Level::Parity { m: 2 }, 6),
        (Level::Mirror, 2),
        (Level::Parity { m: 1 }, 3),
    ] {
        let options = CreateOptions::new(level).chunk(CHUNK);
        for capacity in [1u64, 5 << 20, 100 << 20, 3 << 30] {
            let size = options.member_size_for(n, capacity).unwrap();
            assert_eq!(size % (1 << 20), 0);
            let fits = |member: u64| {
                let regions = format::Regions::plan(member, CHUNK).ok();
                let layout = raidkit::layout::Layout::new(level, n, CHUNK).unwrap();
                regions.is_some_and(|r| layout.capacity(r.data_size) >= capacity)
            };
            assert!(fits(size), "{level:?} {capacity}: {size} does not hold it");
            assert!(
                !fits(size - (1 << 20)),
                "{level:?} {capacity}: {size} is not the smallest"
            );
        }
    }
}

#[test]
fn create_options_check_refuses_what_create_refuses_without_touching_a_disk() {
    // (level, members, spares, chunk) and whether create accepts them.
    let cases = [
        (Level::Parity { m: 1 }, 4, 0, CHUNK, true),
        (Level::Parity { m: 1 }, 4, 0, 48 << 10, false),
        (Level::Parity { m: 1 }, 4, 0, 32 << 20, false),
        (Level::Parity { m: 2 }, 3, 0, CHUNK, false),
        (Level::Mirror, 1, 0, CHUNK, true),
        (Level::Mirror, 2, format::MAX_SLOTS - 1, CHUNK, false),
        (Level::Parity { m: 1 }, 4, 2, CHUNK, true),
    ];
    for (level, n, s, chunk, accepted) in cases {
        let options = CreateOptions::new(level).chunk(chunk);
        let checked = options.check(n, s);
        assert_eq!(checked.is_ok(), accepted, "{level:?} {n}+{s} chunk {chunk}");
        // Many spares only test the table's room: small disks keep the test small.
        let size = if s > 4 { 64 << 10 } else { MEMBER };
        let members = mem_disks("d", n, size);
        let spares = mem_disks("s", s, size);
        let before: Vec<Vec<u8>> = members
            .iter()
            .chain(&spares)
            .map(|d| d.snapshot())
            .collect();
        let created =
            Array::create_with_spares(boxed(&members), boxed(&spares), &options, &|_, _| {});
        match (checked, created) {
            (Ok(layout), Ok(array)) => assert_eq!(array.layout(), &layout),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string());
                let after: Vec<Vec<u8>> = members
                    .iter()
                    .chain(&spares)
                    .map(|d| d.snapshot())
                    .collect();
                assert!(before == after, "a refused create wrote to a disk");
            }
            (a, b) => panic!("check {a:?} but create {:?}", b.map(|_| ())),
        }
    }
}

/// The library's events: a receiver from `Array::events` gets a member failed, a spare
/// added and taken, the rebuild's start, checkpoints and end, a scrub's end, blocks healed
/// (by a read and by the scrub), in the order they happened.
#[test]
fn events_reach_every_receiver_as_they_happen() {
    use raidkit::events::Event;
    let s = setup(
        Level::Parity { m: 2 },
        5,
        ArrayOptions::default().allow_degraded(),
    );
    let events = s.array.events();
    let dropped = s.array.events();
    drop(dropped);
    let spare = Arc::new(MemDisk::new("spare", MEMBER, 4096));
    s.array.add_spare(Box::new(spare), false).unwrap();
    s.array.fail_member("sim2").unwrap();
    let options = raidkit::array::RebuildOptions {
        checkpoint_every: 256 << 10,
        ..Default::default()
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    let reports = s.array.rebuild(&options, &never, &|_| {}).unwrap();
    assert_eq!(reports.len(), 1);
    s.sims[0].flip_bit(s.data_offset + 17, 1);
    assert!(read_all(&s.array).unwrap() == s.data);
    s.sims[1].flip_bit(s.data_offset + 4096 * 3 + 5, 0);
    let scrub = s
        .array
        .scrub(
            raidkit::array::ScrubOptions {
                repair: true,
                ..Default::default()
            },
            &never,
            &|_| {},
        )
        .unwrap();
    let got: Vec<Event> = events.try_iter().collect();
    let kinds: Vec<&str> = got.iter().map(|e| e.kind()).collect();
    let at = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    assert!(at("spare_added") < at("member_failed"));
    assert!(at("member_failed") < at("spare_activated"));
    assert!(at("spare_activated") < at("rebuild_started"));
    assert!(at("rebuild_started") < at("rebuild_progress"));
    assert!(at("rebuild_progress") < at("rebuild_finished"));
    assert!(at("rebuild_finished") < at("blocks_healed"));
    assert_eq!(kinds.last(), Some(&"scrub_finished"), "{kinds:?}");
    assert!(got.contains(&Event::MemberFailed {
        role: 2,
        member: "sim2".to_string(),
        reason: "failed by request".to_string(),
    }));
    let healed: Vec<(String, u64)> = got
        .iter()
        .filter_map(|e| match e {
            Event::BlocksHealed { member, blocks } => Some((member.clone(), *blocks)),
            _ => None,
        })
        .collect();
    assert!(healed.iter().any(|(m, _)| m == "sim0"), "{healed:?}");
    assert!(healed.iter().any(|(m, _)| m == "sim1"), "{healed:?}");
    match got.last() {
        Some(Event::ScrubFinished {
            repaired, repair, ..
        }) => {
            assert!(*repair);
            assert_eq!(
                *repaired,
                scrub.damaged.iter().filter(|d| d.repaired).count() as u64
            );
            assert!(*repaired >= 1);
        }
        other => panic!("{other:?}"),
    }
    match &got[at("rebuild_finished")] {
        Event::RebuildFinished {
            role,
            member,
            bytes,
            lost,
            cancelled,
        } => {
            assert_eq!((*role, member.as_str()), (2, "spare"));
            assert_eq!(*bytes, reports[0].bytes);
            assert_eq!((*lost, *cancelled), (0, false));
        }
        other => panic!("{other:?}"),
    }
}
