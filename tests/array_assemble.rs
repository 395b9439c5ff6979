//! Create and assemble on loopback files and loop devices: every refusal has its own clear
//! error naming the member and leaves every member byte for byte unchanged; members are
//! placed by role whatever their order; stale members are kept out and reported; read-only
//! use writes nothing.

use std::path::{Path, PathBuf};

use raidkit::array::{Array, ArrayError, ArrayOptions, ArrayState, CreateOptions, MemberState};
use raidkit::disk::{self, Disk, FileDisk, FileMode};
use raidkit::format::{SB_OFFSETS, SB_SIZE, Superblock};
use raidkit::layout::Level;
use raidkit_testkit::LoopbackArray;
use raidkit_testkit::arrays::read_all;
use raidkit_testkit::{Rng, loop_device};

const MIB: u64 = 1 << 20;

fn open(paths: &[PathBuf]) -> Vec<Box<dyn Disk>> {
    paths
        .iter()
        .map(|p| Box::new(disk::open(p).unwrap()) as Box<dyn Disk>)
        .collect()
}

fn images(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Assembling `paths` fails; nothing on any of them changed. Returns the error.
fn refused(paths: &[PathBuf]) -> ArrayError {
    let before = images(paths);
    let err = Array::assemble(open(paths), &ArrayOptions::default().allow_degraded())
        .expect_err("assemble must fail");
    assert!(
        before == images(paths),
        "a refused assemble changed a member"
    );
    err
}

fn raid6(seed: u64) -> (LoopbackArray, Vec<u8>) {
    let test = LoopbackArray::new(Level::Parity { m: 2 }, 5, 8 * MIB, 64 << 10).unwrap();
    let data = Rng::new(seed).block(test.len() as usize);
    test.write_at(&data, 0).unwrap();
    test.flush().unwrap();
    (test, data)
}

/// Rewrites both superblock copies of a member through `edit` (with valid CRCs).
fn edit_superblocks(path: &Path, edit: impl Fn(&mut Superblock)) {
    let disk = FileDisk::open(path, FileMode::Buffered).unwrap();
    let mut raw = vec![0u8; 2 * SB_SIZE];
    disk.read_at(&mut raw, 0).unwrap();
    for copy in 0..2 {
        let mut sb = Superblock::decode(&raw[copy * SB_SIZE..(copy + 1) * SB_SIZE]).unwrap();
        edit(&mut sb);
        disk.write_at(&sb.encode(), SB_OFFSETS[copy]).unwrap();
    }
}

fn set_bytes(path: &Path, offset: u64, bytes: &[u8]) {
    let disk = FileDisk::open(path, FileMode::Buffered).unwrap();
    let mut block = vec![0u8; 4096];
    let base = offset / 4096 * 4096;
    disk.read_at(&mut block, base).unwrap();
    let at = (offset - base) as usize;
    block[at..at + bytes.len()].copy_from_slice(bytes);
    disk.write_at(&block, base).unwrap();
}

#[test]
fn members_in_any_order_read_back() {
    let (mut test, data) = raid6(1);
    let mut paths = test.paths().to_vec();
    paths.reverse();
    paths.swap(0, 2);
    test.reassemble_from(&paths).unwrap();
    assert_eq!(test.status().state, ArrayState::Clean);
    assert!(read_all(&test).unwrap() == data);
    // Roles follow the superblocks, not the order given.
    let status = test.status();
    for (role, member) in status.members.iter().enumerate() {
        assert_eq!(member.role, Some(role));
        assert_eq!(member.name, test.paths()[role].display().to_string());
    }
}

#[test]
fn read_only_use_writes_nothing() {
    let (mut test, data) = raid6(2);
    test.reassemble().unwrap();
    test.stop().unwrap();
    let paths = test.paths().to_vec();
    let before = images(&paths);
    // Degraded, read-only: member 0 left out.
    let array =
        Array::assemble(open(&paths[1..]), &ArrayOptions::default().allow_degraded()).unwrap();
    assert_eq!(array.status().state, ArrayState::Degraded);
    assert!(read_all(&array).unwrap() == data);
    array.close().unwrap();
    assert!(
        before == images(&paths),
        "a read-only session wrote to a member"
    );
    // The member left out is not stale afterwards.
    let array = Array::assemble(open(&paths), &ArrayOptions::default().allow_degraded()).unwrap();
    assert_eq!(array.status().state, ArrayState::Clean);
    drop(array);
    assert!(before == images(&paths));
}

#[test]
fn foreign_member_is_refused() {
    let (mut a, _) = raid6(3);
    let (mut b, _) = raid6(4);
    a.stop().unwrap();
    b.stop().unwrap();
    let mut paths = a.paths()[..4].to_vec();
    paths.push(b.paths()[4].clone());
    let err = refused(&paths);
    let ArrayError::ForeignMember { member, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(member, &b.paths()[4].display().to_string());
    assert!(err.to_string().contains("belongs to array"), "{err}");
}

#[test]
fn duplicate_members_are_refused() {
    let (mut test, _) = raid6(5);
    test.stop().unwrap();
    let paths = test.paths().to_vec();
    // The same path twice: refused before anything is opened, the disk named once (not
    // twice over, issue 14 finding 4) ...
    let mut twice = paths.clone();
    twice.push(paths[1].clone());
    let err = raidkit::array::open_members(&twice).unwrap_err();
    assert!(
        matches!(&err, ArrayError::DuplicateName { member } if *member == paths[1].display().to_string()),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: given twice", paths[1].display())
    );
    // ... and opening it a second time while it is open is refused: one array, one owner.
    let first = disk::open(&paths[1]).unwrap();
    let err = disk::open(&paths[1]).unwrap_err();
    assert!(
        matches!(&err, disk::DiskError::InUse { disk, holder: Some(holder) }
            if *disk == paths[1].display().to_string()
                && holder.starts_with(&format!("pid {}", std::process::id()))),
        "{err}"
    );
    drop(first);
    // A copy of a member under another name: the same member UUID.
    let copy = test.dir().join("copy.img");
    std::fs::copy(&paths[2], &copy).unwrap();
    let mut with_copy = paths.clone();
    with_copy.push(copy.clone());
    let err = refused(&with_copy);
    let ArrayError::DuplicateMember { member, other } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (member.as_str(), other.as_str()),
        (copy.to_str().unwrap(), paths[2].to_str().unwrap())
    );
}

#[test]
fn geometry_mismatch_is_refused() {
    let (mut test, _) = raid6(6);
    test.stop().unwrap();
    let paths = test.paths().to_vec();
    edit_superblocks(&paths[3], |sb| sb.chunk = 128 << 10);
    let err = refused(&paths);
    let ArrayError::GeometryMismatch { member, field, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (member.as_str(), *field),
        (paths[3].to_str().unwrap(), "chunk")
    );
}

#[test]
fn unknown_major_version_is_refused() {
    let (mut test, _) = raid6(7);
    test.stop().unwrap();
    let paths = test.paths().to_vec();
    for offset in SB_OFFSETS {
        let disk = FileDisk::open(&paths[1], FileMode::Buffered).unwrap();
        let mut raw = vec![0u8; SB_SIZE];
        disk.read_at(&mut raw, offset).unwrap();
        raw[8] = 9; // major version 9
        let crc = crc32(&raw[..SB_SIZE - 4]);
        raw[SB_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        disk.write_at(&raw, offset).unwrap();
    }
    let err = refused(&paths);
    assert!(
        matches!(err, ArrayError::UnknownVersion { major: 9, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(paths[1].to_str().unwrap()),
        "{err}"
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    // CRC-32/IEEE, bitwise: independent of the library's implementation.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn superblock_damaged_in_every_copy_is_refused_and_one_copy_is_enough() {
    let (mut test, data) = raid6(8);
    test.stop().unwrap();
    let paths = test.paths().to_vec();
    // One copy damaged (the newest): the other copy is used.
    let newest = {
        let disk = disk::open(&paths[0]).unwrap();
        raidkit::meta::read_superblock(&disk).unwrap().copy
    };
    set_bytes(&paths[0], SB_OFFSETS[newest] + 200, &[0xAB]);
    test.reassemble().unwrap();
    assert_eq!(test.status().state, ArrayState::Clean);
    assert!(read_all(&test).unwrap() == data);
    test.stop().unwrap();
    // Both copies damaged.
    set_bytes(&paths[4], SB_OFFSETS[0] + 200, &[0xAB]);
    set_bytes(&paths[4], SB_OFFSETS[1] + 300, &[0xCD]);
    let err = refused(&paths);
    assert!(matches!(err, ArrayError::Superblock { .. }), "{err}");
    assert!(
        err.to_string().contains(paths[4].to_str().unwrap()),
        "{err}"
    );
    assert!(err.to_string().contains("checksum"), "{err}");
    // A file that never was a member.
    let stranger = test.dir().join("stranger.img");
    std::fs::write(&stranger, vec![0u8; 8 * MIB as usize]).unwrap();
    let mut with_stranger = paths[..4].to_vec();
    with_stranger.push(stranger.clone());
    let err = refused(&with_stranger);
    assert!(
        err.to_string().contains("stranger.img")
            && err.to_string().contains("not a raidkit member"),
        "{err}"
    );
}

#[test]
fn stale_member_is_kept_out_and_reported() {
    let (mut test, mut data) = raid6(9);
    let paths = test.paths().to_vec();
    // Run degraded without member 2, and write.
    let without: Vec<PathBuf> = paths
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, p)| p.clone())
        .collect();
    test.reassemble_from(&without).unwrap();
    let fresh = Rng::new(99).block(300_000);
    test.write_at(&fresh, 1000).unwrap();
    data[1000..301_000].copy_from_slice(&fresh);
    // Bring member 2 back: it is stale, not trusted, and the data is the new data.
    test.reassemble().unwrap();
    let status = test.status();
    assert_eq!(status.state, ArrayState::Degraded);
    assert_eq!(status.members[2].state, MemberState::Stale);
    assert_eq!(status.members[2].name, paths[2].display().to_string());
    assert!(read_all(&test).unwrap() == data);
}

#[test]
fn too_many_missing_lists_the_roles() {
    let (mut test, _) = raid6(10);
    test.stop().unwrap();
    let paths = test.paths().to_vec();
    let err = refused(&[paths[0].clone(), paths[2].clone()]);
    let ArrayError::TooManyMissing { missing, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(missing, &vec![1, 3, 4]);
}

#[test]
fn create_checks_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, size: u64| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        p
    };
    let small = [path("a", 8 * MIB), path("b", 9 * MIB), path("c", 12 * MIB)];
    // Too few members for RAID-6.
    let err = Array::create(open(&small), &CreateOptions::new(Level::Parity { m: 2 })).unwrap_err();
    assert!(err.to_string().contains("RAID-6 needs 4"), "{err}");
    // Sizes differ: the smallest is used.
    let array = Array::create(
        open(&small),
        &CreateOptions::new(Level::Parity { m: 1 }).chunk(64 << 10),
    )
    .unwrap();
    let status = array.status();
    assert_eq!(status.data_offset + status.data_size, 8 * MIB);
    array.close().unwrap();
    // Members of an array are refused without force, and nothing changes.
    let before = images(&small);
    let err = Array::create(open(&small), &CreateOptions::new(Level::Mirror)).unwrap_err();
    assert!(matches!(err, ArrayError::AlreadyMember { .. }), "{err}");
    assert!(before == images(&small));
    Array::create(open(&small), &CreateOptions::new(Level::Mirror).force(true)).unwrap();
    // Too small.
    let tiny = [path("t0", 2 * MIB), path("t1", 8 * MIB)];
    let err = Array::create(open(&tiny), &CreateOptions::new(Level::Mirror)).unwrap_err();
    let ArrayError::MemberTooSmall { member, .. } = &err else {
        panic!("{err}")
    };
    assert!(member.ends_with("t0"), "{err}");
}

/// Members with data on them (not known to be zero) get parity computed at create.
#[test]
fn create_over_used_members_syncs_parity() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("u{i}"))).collect();
    for (i, p) in paths.iter().enumerate() {
        std::fs::write(p, Rng::new(i as u64).block(6 * MIB as usize)).unwrap();
    }
    let array = Array::create(
        open(&paths),
        &CreateOptions::new(Level::Parity { m: 2 }).chunk(16 << 10),
    )
    .unwrap();
    let before = read_all(&array).unwrap();
    array.close().unwrap();
    // Every member can be lost and the data stays the same: parity agrees with it.
    for lost in 0..4 {
        let others: Vec<PathBuf> = paths
            .iter()
            .filter(|p| **p != paths[lost])
            .cloned()
            .collect();
        let degraded =
            Array::assemble(open(&others), &ArrayOptions::default().allow_degraded()).unwrap();
        assert!(read_all(&degraded).unwrap() == before, "lost {lost}");
    }
}

#[test]
fn arrays_on_loop_devices() {
    let dir = tempfile::tempdir().unwrap();
    let backing: Vec<PathBuf> = (0..4)
        .map(|i| dir.path().join(format!("lo{i}.img")))
        .collect();
    for p in &backing {
        std::fs::File::create(p).unwrap().set_len(16 * MIB).unwrap();
    }
    let mut devices = Vec::new();
    for p in &backing {
        match loop_device(p, "arrays_on_loop_devices") {
            Some(d) => devices.push(d),
            None => return,
        }
    }
    let paths: Vec<PathBuf> = devices.iter().map(|d| d.device.clone()).collect();
    for level in [
        Level::Mirror,
        Level::Parity { m: 1 },
        Level::Parity { m: 2 },
    ] {
        let array = Array::create(
            open(&paths),
            &CreateOptions::new(level).chunk(64 << 10).force(true),
        )
        .unwrap();
        let data = Rng::new(5).block(array.len() as usize);
        array.write_at(&data[1..], 1).unwrap();
        array.write_at(&data[..1], 0).unwrap();
        array.close().unwrap();
        let mut order = paths.clone();
        order.rotate_left(1);
        let array =
            Array::assemble(open(&order[..3]), &ArrayOptions::default().allow_degraded()).unwrap();
        assert_eq!(array.status().state, ArrayState::Degraded, "{level:?}");
        assert!(read_all(&array).unwrap() == data, "{level:?}");
        let uuid = array.uuid();
        array.close().unwrap();
        // A scan of every block device finds the array on these four, complete (the one
        // left out of the degraded start is behind or faulty, but found).
        let found = raidkit::scan::scan(&[]);
        let ours = found
            .arrays
            .iter()
            .find(|a| a.uuid == uuid)
            .unwrap_or_else(|| panic!("{level:?}: not found by a scan of every block device"));
        let mut on: Vec<PathBuf> = ours.disks.iter().map(|d| d.path.clone()).collect();
        on.sort();
        let mut want = paths.clone();
        want.sort();
        assert_eq!(on, want, "{level:?}");
        assert_eq!(ours.found_roles(), 4, "{level:?}");
    }
}
