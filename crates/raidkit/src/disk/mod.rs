//! Member disks: one small trait, one file per backend.
//!
//! A [`Disk`] is a fixed-size array of bytes with a logical block size: positional reads
//! and writes of whole blocks, a durable [`flush`](Disk::flush), and a batched
//! [`submit`](Disk::submit) so that the array can hand all member I/Os of a stripe over at
//! once. Every backend checks every request the same way: a range
//! beyond the end, an offset or length that is not a multiple of the block size, or (for
//! backends that need it) a buffer not aligned in memory is refused with a typed
//! [`DiskError`] that names the disk and the range, before any I/O ([`DiskInfo::check`]).
//!
//! Backends: [`FileDisk`] (regular files, buffered or `O_DIRECT`), [`BlockDisk`] (block
//! devices, `O_DIRECT | O_EXCL`), [`UringDisk`] (io_uring, one submission per batch),
//! [`MmapDisk`] (memory-mapped files), [`MemDisk`] (in memory), [`ReadOnlyDisk`] (a member
//! opened only to look at it), and the [`FailStop`] wrapper that latches the first write or
//! flush error. Member files are held exclusively (an advisory lock, `lock`); block devices
//! through `O_EXCL`.
//! [`open`] picks the backend for a path.
//!
//! ```
//! use raidkit::disk::{Disk, MemDisk};
//!
//! let disk = MemDisk::new("example", 1 << 20, 512);
//! disk.write_at(&[7u8; 4096], 8192)?;
//! let mut back = vec![0u8; 4096];
//! disk.read_at(&mut back, 8192)?;
//! assert_eq!(back, vec![7u8; 4096]);
//! assert!(disk.read_at(&mut back, 1 << 20).is_err()); // past the end
//! # Ok::<(), raidkit::disk::DiskError>(())
//! ```

mod aligned;
mod block;
mod failstop;
mod file;
mod lock;
mod memory;
mod mmap;
mod probe;
mod readonly;
mod uring;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use aligned::AlignedBuf;
pub use block::BlockDisk;
pub use failstop::FailStop;
pub use file::{FileDisk, FileMode};
pub use memory::MemDisk;
pub use mmap::MmapDisk;
pub use probe::foreign_signature;
pub use readonly::ReadOnlyDisk;
pub use uring::UringDisk;

/// What a request or error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// Making writes durable.
    Flush,
    /// Opening or creating.
    Open,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
            Op::Open => "open",
        })
    }
}

/// Errors from member disks. Each names the disk and, where there is one, the byte range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The range reaches past the end of the disk.
    #[error("{disk}: {op} of {len} bytes at offset {offset} is past the end ({size} bytes)")]
    OutOfRange {
        /// The disk's name (its path).
        disk: String,
        /// The operation.
        op: Op,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// The disk's size.
        size: u64,
    },
    /// The offset or length is not a multiple of the logical block size.
    #[error(
        "{disk}: {op} of {len} bytes at offset {offset} is not aligned to the {block_size}-byte block size"
    )]
    Misaligned {
        /// The disk's name.
        disk: String,
        /// The operation.
        op: Op,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// The logical block size.
        block_size: u32,
    },
    /// The buffer's address is not aligned as this backend needs (`O_DIRECT`).
    #[error(
        "{disk}: {op} buffer at offset {offset} is not aligned to {align} bytes in memory (use AlignedBuf)"
    )]
    BufferMisaligned {
        /// The disk's name.
        disk: String,
        /// The operation.
        op: Op,
        /// Start of the range.
        offset: u64,
        /// The memory alignment needed.
        align: usize,
    },
    /// The operating system reported an error.
    #[error("{}", io_message(disk, *op, *offset, *len, source))]
    Io {
        /// The disk's name.
        disk: String,
        /// The operation.
        op: Op,
        /// Start of the range (0 for flush and open).
        offset: u64,
        /// Length of the range (0 for flush and open).
        len: u64,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A fail-stop disk after its first write or flush error: nothing more is attempted.
    #[error("{disk}: failed earlier ({first}); refusing further I/O")]
    Failed {
        /// The disk's name.
        disk: String,
        /// The first error, as text.
        first: String,
    },
    /// Another array or process holds the disk: a member file's exclusive lock is taken, or
    /// a block device is open exclusively (another array, a mount, md, a partition).
    #[error("{disk}: in use{}", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_else(|| " by another array or process (mounted, or held open exclusively)".to_string()))]
    InUse {
        /// The disk's name (its path).
        disk: String,
        /// Who holds it, where the platform can tell ("pid 1234 (raidctl)").
        holder: Option<String>,
    },
    /// The path cannot be used as this kind of disk.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io_message(disk: &str, op: Op, offset: u64, len: u64, source: &io::Error) -> String {
    match op {
        Op::Open => format!("{disk}: cannot open: {source}"),
        Op::Flush => format!("{disk}: flush failed: {source}"),
        _ => format!("{disk}: {op} of {len} bytes at offset {offset} failed: {source}"),
    }
}

impl DiskError {
    /// An I/O error for `disk`.
    pub fn io(disk: &str, op: Op, offset: u64, len: u64, source: io::Error) -> DiskError {
        DiskError::Io {
            disk: disk.to_string(),
            op,
            offset,
            len,
            source,
        }
    }

    /// Whether this is an I/O error reported by the device (as opposed to a refused
    /// request).
    pub fn is_io(&self) -> bool {
        matches!(self, DiskError::Io { .. })
    }
}

/// One request of a batch.
#[derive(Debug)]
pub enum IoRequest<'a> {
    /// Read `buf.len()` bytes at `offset` into `buf`.
    Read {
        /// Byte offset on the disk.
        offset: u64,
        /// Where the data goes.
        buf: &'a mut [u8],
    },
    /// Write `buf` at `offset`.
    Write {
        /// Byte offset on the disk.
        offset: u64,
        /// The data.
        buf: &'a [u8],
    },
}

impl IoRequest<'_> {
    /// The request's operation, offset and length.
    pub fn range(&self) -> (Op, u64, u64) {
        match self {
            IoRequest::Read { offset, buf } => (Op::Read, *offset, buf.len() as u64),
            IoRequest::Write { offset, buf } => (Op::Write, *offset, buf.len() as u64),
        }
    }
}

/// What every request is checked against: a disk's name, size, block size and the memory
/// alignment its buffers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// The disk's name in messages: its path, or a label.
    pub name: String,
    /// Size in bytes (a multiple of the block size).
    pub size: u64,
    /// Logical block size: request offsets and lengths are multiples of it.
    pub block_size: u32,
    /// Memory alignment of buffers (1 when any buffer will do).
    pub buffer_align: usize,
}

impl DiskInfo {
    /// Checks a request before any I/O: in range, aligned to the block size, buffer aligned
    /// in memory. Every backend calls this.
    pub fn check(&self, op: Op, offset: u64, buf: *const u8, len: usize) -> Result<(), DiskError> {
        let len64 = len as u64;
        if offset.checked_add(len64).is_none_or(|end| end > self.size) {
            return Err(DiskError::OutOfRange {
                disk: self.name.clone(),
                op,
                offset,
                len: len64,
                size: self.size,
            });
        }
        let bs = u64::from(self.block_size);
        if !offset.is_multiple_of(bs) || !len64.is_multiple_of(bs) {
            return Err(DiskError::Misaligned {
                disk: self.name.clone(),
                op,
                offset,
                len: len64,
                block_size: self.block_size,
            });
        }
        if self.buffer_align > 1 && !(buf as usize).is_multiple_of(self.buffer_align) {
            return Err(DiskError::BufferMisaligned {
                disk: self.name.clone(),
                op,
                offset,
                align: self.buffer_align,
            });
        }
        Ok(())
    }
}

/// A member disk.
///
/// Implementations are shared between threads (`Send + Sync`); reads and writes of
/// disjoint ranges may run concurrently. A write is durable only after a later
/// [`flush`](Disk::flush) returns `Ok`. Every request is checked with [`DiskInfo::check`]
/// before any I/O, so a refused request changes nothing.
pub trait Disk: Send + Sync + fmt::Debug {
    /// The disk's name, size, block size and buffer alignment.
    fn info(&self) -> &DiskInfo;

    /// The disk's name in messages: its path, or a label.
    fn name(&self) -> &str {
        &self.info().name
    }

    /// Size in bytes.
    fn len(&self) -> u64 {
        self.info().size
    }

    /// Whether the disk has no blocks at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The logical block size.
    fn block_size(&self) -> u32 {
        self.info().block_size
    }

    /// The memory alignment buffers need (1 when any buffer will do).
    fn buffer_align(&self) -> usize {
        self.info().buffer_align
    }

    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError>;

    /// Writes `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError>;

    /// Makes every write that returned before this call durable.
    fn flush(&self) -> Result<(), DiskError>;

    /// Whether the disk is known to hold only zeros (a new sparse file, a fresh memory
    /// disk). `false` when unknown: callers then assume nothing.
    fn is_known_zeroed(&self) -> bool {
        false
    }

    /// Whether everything from byte `offset` to the end is known to read as zeros (a
    /// sparse file with no data allocated there). `false` when unknown.
    fn reads_zero_from(&self, offset: u64) -> bool {
        let _ = offset;
        false
    }

    /// Runs several requests and returns one result per request, in order. Requests of
    /// one batch must not overlap each other when any of them writes. The default runs
    /// them in parallel on scoped threads; backends with a native batch interface
    /// override it.
    fn submit(&self, batch: &mut [IoRequest<'_>]) -> Vec<Result<(), DiskError>> {
        run_parallel(self, batch)
    }
}

/// Runs a batch on up to eight scoped threads (one request each when the batch is small).
pub fn run_parallel<D: Disk + ?Sized>(
    disk: &D,
    batch: &mut [IoRequest<'_>],
) -> Vec<Result<(), DiskError>> {
    fn one<D: Disk + ?Sized>(disk: &D, request: &mut IoRequest<'_>) -> Result<(), DiskError> {
        match request {
            IoRequest::Read { offset, buf } => disk.read_at(buf, *offset),
            IoRequest::Write { offset, buf } => disk.write_at(buf, *offset),
        }
    }
    if batch.len() <= 1 {
        return batch.iter_mut().map(|r| one(disk, r)).collect();
    }
    let per_thread = batch.len().div_ceil(8);
    let mut results: Vec<Result<(), DiskError>> = Vec::with_capacity(batch.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks_mut(per_thread)
            .map(|chunk| {
                scope.spawn(move || chunk.iter_mut().map(|r| one(disk, r)).collect::<Vec<_>>())
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(chunk) => results.extend(chunk),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results
}

/// Opens an existing member: a block device becomes a [`BlockDisk`], a regular file a
/// [`FileDisk`] with `O_DIRECT` when the file system supports it (else buffered). The
/// result is wrapped in [`FailStop`].
pub fn open(path: &Path) -> Result<FailStop<Box<dyn Disk>>, DiskError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| DiskError::io(&path.display().to_string(), Op::Open, 0, 0, e))?;
    let disk: Box<dyn Disk> = if meta.file_type().is_block_device() {
        Box::new(BlockDisk::open(path)?)
    } else if meta.is_file() {
        match FileDisk::open(path, FileMode::Direct) {
            Ok(disk) => Box::new(disk),
            Err(DiskError::Unsupported { .. }) => {
                Box::new(FileDisk::open(path, FileMode::Buffered)?)
            }
            Err(e) => return Err(e),
        }
    } else {
        return Err(DiskError::Unsupported {
            path: path.to_path_buf(),
            reason: "not a regular file or a block device".to_string(),
        });
    };
    Ok(FailStop::new(disk))
}

/// Opens a member only to look at it: read-only, beside its owner (no lock, no `O_EXCL`).
/// Writes through it are refused. For `examine` and scans; an array is never assembled
/// from such disks.
pub fn open_read_only(path: &Path) -> Result<ReadOnlyDisk, DiskError> {
    ReadOnlyDisk::open(path)
}

/// Opens a member read-only for a report that must be true ([`Access::Inspect`]): with a
/// shared lock, so it is refused ([`DiskError::InUse`]) while an owner holds the member,
/// and runs beside other lookers.
///
/// [`Access::Inspect`]: crate::array::Access::Inspect
pub fn open_shared(path: &Path) -> Result<ReadOnlyDisk, DiskError> {
    ReadOnlyDisk::open_shared(path)
}

/// A disk behind a pointer is a disk: boxes for the array's members, `Arc`s so that tests
/// keep a handle to a simulated member while the array owns a clone.
macro_rules! forward_disk {
    ($($pointer:ident)::+) => {
        impl<D: Disk + ?Sized> Disk for $($pointer)::+<D> {
            fn info(&self) -> &DiskInfo {
                (**self).info()
            }
            fn is_known_zeroed(&self) -> bool {
                (**self).is_known_zeroed()
            }
            fn reads_zero_from(&self, offset: u64) -> bool {
                (**self).reads_zero_from(offset)
            }
            fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
                (**self).read_at(buf, offset)
            }
            fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
                (**self).write_at(buf, offset)
            }
            fn flush(&self) -> Result<(), DiskError> {
                (**self).flush()
            }
            fn submit(&self, batch: &mut [IoRequest<'_>]) -> Vec<Result<(), DiskError>> {
                (**self).submit(batch)
            }
        }
    };
}

forward_disk!(Box);
forward_disk!(std::sync::Arc);
