//! One conformance suite for every member-disk backend: read-back, boundaries, refused
//! requests (out of range, misaligned, unaligned buffers) that change nothing, flush,
//! batched submission, and concurrent use. Block devices run on real loop devices.

use std::sync::atomic::{AtomicBool, Ordering};

use raidkit::disk::{
    self, BlockDisk, Disk, DiskError, DiskInfo, FailStop, FileDisk, FileMode, IoRequest, MemDisk,
    MmapDisk, Op, UringDisk,
};
use raidkit_testkit::{Rng, conformance, loop_device, pattern, read};

const SIZE: u64 = 4 << 20;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("disk-conformance-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch directory")
}

#[test]
fn memory_disk() {
    conformance(&MemDisk::new("mem", SIZE, 512));
    conformance(&MemDisk::new("mem4k", SIZE, 4096));
}

#[test]
fn file_disk_buffered() {
    let dir = scratch();
    let path = dir.path().join("buffered.img");
    conformance(&FileDisk::create(&path, SIZE, FileMode::Buffered).unwrap());
    // Written data survives reopening.
    let disk = FileDisk::open(&path, FileMode::Buffered).unwrap();
    assert_eq!(disk.len(), SIZE);
    let err = FileDisk::create(&path, SIZE, FileMode::Buffered).unwrap_err();
    assert!(err.to_string().contains("buffered.img"), "{err}");
}

#[test]
fn file_disk_direct() {
    let dir = scratch();
    let path = dir.path().join("direct.img");
    match FileDisk::create(&path, SIZE, FileMode::Direct) {
        Ok(disk) => {
            assert_eq!(disk.buffer_align(), 4096);
            conformance(&disk);
        }
        Err(DiskError::Unsupported { reason, .. }) => {
            eprintln!("SKIP file_disk_direct: {} ({reason})", dir.path().display());
        }
        Err(e) => panic!("{e}"),
    }
}

/// io_uring on a file, with a queue depth of 1 (every batch split into chunks) and 32.
/// In CI io_uring must work; elsewhere an unavailable io_uring is a printed skip.
#[test]
fn uring_disk_on_a_file() {
    let dir = scratch();
    for depth in [1, 32] {
        let path = dir.path().join(format!("uring-{depth}.img"));
        FileDisk::create(&path, SIZE, FileMode::Buffered).unwrap();
        match UringDisk::open(&path, depth) {
            Ok(disk) => conformance(&disk),
            Err(DiskError::Unsupported { reason, .. }) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIP uring_disk_on_a_file: {reason}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn file_disk_is_sparse() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch();
    let path = dir.path().join("sparse.img");
    FileDisk::create(&path, 1 << 30, FileMode::Buffered).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "a new member file allocates nothing"
    );
}

#[test]
fn mmap_disk() {
    let dir = scratch();
    let path = dir.path().join("mmap.img");
    FileDisk::create(&path, SIZE, FileMode::Buffered).unwrap();
    conformance(&MmapDisk::open(&path).unwrap());
    let data = {
        let disk = MmapDisk::open(&path).unwrap();
        let mut rng = Rng::new(9);
        let data = pattern(&mut rng, 8192);
        disk.write_at(&data, 4096).unwrap();
        disk.flush().unwrap();
        data
    };
    let file = FileDisk::open(&path, FileMode::Buffered).unwrap();
    assert_eq!(
        &*read(&file, 4096, 8192),
        &*data,
        "msync'd data is in the file"
    );
}

/// A disk whose writes or flushes fail on demand, to exercise the fail-stop wrapper.
#[derive(Debug)]
struct Flaky {
    inner: MemDisk,
    fail_writes: AtomicBool,
    fail_flush: AtomicBool,
}

impl Disk for Flaky {
    fn info(&self) -> &DiskInfo {
        self.inner.info()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            let eio = std::io::Error::from_raw_os_error(5);
            return Err(DiskError::io(
                self.name(),
                Op::Write,
                offset,
                buf.len() as u64,
                eio,
            ));
        }
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> Result<(), DiskError> {
        if self.fail_flush.load(Ordering::SeqCst) {
            let eio = std::io::Error::from_raw_os_error(5);
            return Err(DiskError::io(self.name(), Op::Flush, 0, 0, eio));
        }
        Ok(())
    }
}

fn flaky() -> FailStop<Flaky> {
    FailStop::new(Flaky {
        inner: MemDisk::new("flaky", SIZE, 512),
        fail_writes: AtomicBool::new(false),
        fail_flush: AtomicBool::new(false),
    })
}

#[test]
fn fail_stop_passes_the_suite_while_healthy() {
    conformance(&flaky());
}

#[test]
fn fail_stop_latches_the_first_write_error() {
    let disk = flaky();
    let data = vec![1u8; 512];
    // A refused request is not a device error and does not latch.
    assert!(disk.write_at(&data, SIZE).is_err());
    assert!(disk.failure().is_none());
    disk.inner().fail_writes.store(true, Ordering::SeqCst);
    assert!(disk.write_at(&data, 0).unwrap_err().is_io());
    disk.inner().fail_writes.store(false, Ordering::SeqCst); // the device "recovers"
    let mut buf = vec![0u8; 512];
    for err in [
        disk.write_at(&data, 0).unwrap_err(),
        disk.read_at(&mut buf, 0).unwrap_err(),
        disk.flush().unwrap_err(),
    ] {
        assert!(matches!(err, DiskError::Failed { .. }), "{err}");
        assert!(
            err.to_string().contains("Input/output error"),
            "names the first error: {err}"
        );
    }
    let mut batch = [IoRequest::Read {
        offset: 0,
        buf: &mut buf,
    }];
    assert!(matches!(
        disk.submit(&mut batch)[0],
        Err(DiskError::Failed { .. })
    ));
}

#[test]
fn fail_stop_latches_a_failed_flush() {
    let disk = flaky();
    disk.inner().fail_flush.store(true, Ordering::SeqCst);
    assert!(disk.flush().unwrap_err().is_io());
    disk.inner().fail_flush.store(false, Ordering::SeqCst);
    assert!(
        matches!(disk.flush(), Err(DiskError::Failed { .. })),
        "no silent retry"
    );
    assert!(matches!(
        disk.write_at(&[0; 512], 0),
        Err(DiskError::Failed { .. })
    ));
}

/// A member file is held exclusively for as long as any backend has it open: every
/// second open, through any backend, is refused with `InUse` naming this process; once the
/// holder is closed the file opens again.
#[test]
fn a_member_file_is_held_exclusively_by_every_backend() {
    let dir = scratch();
    let path = dir.path().join("held.img");
    FileDisk::create(&path, SIZE, FileMode::Buffered).unwrap();
    type Opener = fn(&std::path::Path) -> Result<Box<dyn Disk>, DiskError>;
    let mut openers: Vec<(&str, Opener)> = vec![
        ("buffered", |p| {
            Ok(Box::new(FileDisk::open(p, FileMode::Buffered)?))
        }),
        ("open", |p| Ok(Box::new(disk::open(p)?))),
        ("mmap", |p| Ok(Box::new(MmapDisk::open(p)?))),
    ];
    if UringDisk::open(&path, 4).is_ok() {
        openers.push(("uring", |p| Ok(Box::new(UringDisk::open(p, 4)?))));
    }
    let me = format!("pid {}", std::process::id());
    for (holder_kind, hold) in &openers {
        let held = hold(&path).unwrap();
        for (kind, open) in &openers {
            match open(&path) {
                Err(DiskError::InUse { disk, holder }) => {
                    assert_eq!(disk, path.display().to_string());
                    assert!(
                        holder.as_ref().is_some_and(|h| h.starts_with(&me)),
                        "{holder_kind} then {kind}: {holder:?}"
                    );
                }
                other => panic!("{holder_kind} then {kind}: {other:?}"),
            }
        }
        drop(held);
        drop(hold(&path).unwrap());
    }
}

#[test]
fn open_picks_the_backend_and_refuses_other_files() {
    let dir = scratch();
    let path = dir.path().join("member.img");
    FileDisk::create(&path, SIZE, FileMode::Buffered).unwrap();
    let disk = disk::open(&path).unwrap();
    assert_eq!(disk.len(), SIZE);
    conformance(&disk);
    let err = disk::open(dir.path()).unwrap_err();
    assert!(matches!(err, DiskError::Unsupported { .. }), "{err}");
    let err = disk::open(&dir.path().join("missing.img")).unwrap_err();
    assert!(err.to_string().contains("missing.img"), "{err}");
}

#[test]
fn block_disk_on_loop_devices() {
    let dir = scratch();
    let backing = dir.path().join("loop-backing.img");
    FileDisk::create(&backing, SIZE, FileMode::Buffered).unwrap();
    let Some(device) = loop_device(&backing, "block_disk_on_loop_devices") else {
        return;
    };
    let disk = BlockDisk::open(&device.device).unwrap();
    assert_eq!(disk.len(), SIZE);
    assert!(disk.block_size() >= 512 && disk.buffer_align() == disk.block_size() as usize);
    conformance(&disk);

    // O_EXCL: a second exclusive open of the same device is refused, clearly.
    let err = BlockDisk::open(&device.device).unwrap_err();
    assert!(
        matches!(&err, DiskError::InUse { disk, .. } if *disk == device.device.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    drop(disk);
    // Once released, it opens again, and `open` picks the block backend for it.
    let disk = disk::open(&device.device).unwrap();
    assert_eq!(disk.inner().block_size(), disk.block_size());
    conformance(&disk);
    drop(disk);

    // The same device through io_uring, exclusively too.
    let uring = UringDisk::open(&device.device, 16).unwrap();
    assert_eq!(uring.len(), SIZE);
    conformance(&uring);
    assert!(matches!(
        BlockDisk::open(&device.device).unwrap_err(),
        DiskError::InUse { .. }
    ));
    drop(uring);

    // A regular file is not a block device.
    let err = BlockDisk::open(&backing).unwrap_err();
    assert!(matches!(err, DiskError::Unsupported { .. }), "{err}");
}
