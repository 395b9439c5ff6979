//! Regular files as member disks, buffered or `O_DIRECT`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::{Disk, DiskError, DiskInfo, Op};

/// The block size of file disks: requests are whole 4 KiB blocks, which every file system
/// accepts for `O_DIRECT`.
pub const FILE_BLOCK_SIZE: u32 = 4096;

/// How a file disk does its I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Through the page cache; any buffer will do.
    Buffered,
    /// `O_DIRECT`: past the page cache; buffers aligned to 4096 bytes ([`AlignedBuf`]).
    /// Not every file system supports it (tmpfs does not): opening then fails with
    /// [`DiskError::Unsupported`].
    ///
    /// [`AlignedBuf`]: super::AlignedBuf
    Direct,
}

/// A regular file as a member disk. Flush is `fdatasync`.
#[derive(Debug)]
pub struct FileDisk {
    info: DiskInfo,
    file: File,
}

impl FileDisk {
    /// Creates a new sparse file of `size` bytes (rounded down to whole 4 KiB blocks);
    /// fails if the path exists.
    pub fn create(path: &Path, size: u64, mode: FileMode) -> Result<FileDisk, DiskError> {
        let name = path.display().to_string();
        let size = size - size % u64::from(FILE_BLOCK_SIZE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        file.set_len(size)
            .map_err(|e| DiskError::io(&name, Op::Open, 0, size, e))?;
        drop(file);
        FileDisk::open(path, mode)
    }

    /// Opens an existing file; its size is rounded down to whole 4 KiB blocks.
    pub fn open(path: &Path, mode: FileMode) -> Result<FileDisk, DiskError> {
        let name = path.display().to_string();
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if mode == FileMode::Direct {
            options.custom_flags(libc::O_DIRECT);
        }
        let file = options.open(path).map_err(|e| {
            if mode == FileMode::Direct && e.raw_os_error() == Some(libc::EINVAL) {
                DiskError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "the file system does not support O_DIRECT".to_string(),
                }
            } else {
                DiskError::io(&name, Op::Open, 0, 0, e)
            }
        })?;
        let meta = file
            .metadata()
            .map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        if !meta.is_file() {
            return Err(DiskError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a regular file".to_string(),
            });
        }
        super::lock::lock_exclusive(&file, path)?;
        let size = meta.len() - meta.len() % u64::from(FILE_BLOCK_SIZE);
        Ok(FileDisk {
            info: DiskInfo {
                name,
                size,
                block_size: FILE_BLOCK_SIZE,
                buffer_align: if mode == FileMode::Direct { 4096 } else { 1 },
            },
            file,
        })
    }
}

/// A checked positional read from a file or device (`pread`, retried on short reads).
pub(super) fn read_file(
    info: &DiskInfo,
    file: &File,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), DiskError> {
    info.check(Op::Read, offset, buf.as_ptr(), buf.len())?;
    file.read_exact_at(buf, offset)
        .map_err(|e| DiskError::io(&info.name, Op::Read, offset, buf.len() as u64, e))
}

/// A checked positional write to a file or device (`pwrite`, retried on short writes).
pub(super) fn write_file(
    info: &DiskInfo,
    file: &File,
    buf: &[u8],
    offset: u64,
) -> Result<(), DiskError> {
    info.check(Op::Write, offset, buf.as_ptr(), buf.len())?;
    file.write_all_at(buf, offset)
        .map_err(|e| DiskError::io(&info.name, Op::Write, offset, buf.len() as u64, e))
}

impl Disk for FileDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        read_file(&self.info, &self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        write_file(&self.info, &self.file, buf, offset)
    }

    /// A regular file with no allocated blocks reads as zeros.
    fn is_known_zeroed(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().is_ok_and(|m| m.blocks() == 0)
    }

    /// A regular file with no data at or after `offset` (`SEEK_DATA` finds none).
    fn reads_zero_from(&self, offset: u64) -> bool {
        use std::os::fd::AsRawFd;
        if !self.file.metadata().is_ok_and(|m| m.is_file()) {
            return false;
        }
        let Ok(at) = libc::off_t::try_from(offset) else {
            return false;
        };
        // SAFETY: lseek on a descriptor this disk owns, open for its lifetime; it touches
        // no memory. Reads and writes are positional, so moving the offset changes nothing.
        let found = unsafe { libc::lseek(self.file.as_raw_fd(), at, libc::SEEK_DATA) };
        found < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO)
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.file
            .sync_data()
            .map_err(|e| DiskError::io(&self.info.name, Op::Flush, 0, 0, e))
    }
}
