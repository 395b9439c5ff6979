//! A member opened only to look at it (`raidctl examine`, a scan): read-only, without the
//! exclusive lock or `O_EXCL`, so it can run beside the array's owner. Writes are refused
//! before any I/O; nothing can change the member through it.
//!
//! [`ReadOnlyDisk::open_shared`] also takes a shared lock: for reports that must not run
//! while an owner writes (their answer would not be true), beside other lookers.
//!
//! Owns the read-only handle and its shared lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use super::file::{FILE_BLOCK_SIZE, read_file};
use super::{Disk, DiskError, DiskInfo, Op};

/// A file or block device opened read-only. Reads go through the page cache (an owner's
/// `O_DIRECT` writes invalidate the ranges they write).
#[derive(Debug)]
pub struct ReadOnlyDisk {
    info: DiskInfo,
    file: File,
}

impl ReadOnlyDisk {
    /// Opens `path` (a regular file or a block device) read-only, without a lock.
    pub fn open(path: &Path) -> Result<ReadOnlyDisk, DiskError> {
        Self::open_with(path, false)
    }

    /// Opens `path` read-only with a shared lock, held while the disk is open: refused
    /// ([`DiskError::InUse`]) while an owner holds the member, and no owner can take it
    /// meanwhile.
    pub fn open_shared(path: &Path) -> Result<ReadOnlyDisk, DiskError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, shared: bool) -> Result<ReadOnlyDisk, DiskError> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        let meta = file
            .metadata()
            .map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        if shared {
            super::lock::lock_shared(&file, path)?;
        }
        let (size, block_size) = if meta.file_type().is_block_device() {
            super::block::device_geometry(path, &file)?
        } else if meta.is_file() {
            (meta.len(), FILE_BLOCK_SIZE)
        } else {
            return Err(DiskError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a regular file or a block device".to_string(),
            });
        };
        Ok(ReadOnlyDisk {
            info: DiskInfo {
                name,
                size: size - size % u64::from(block_size),
                block_size,
                buffer_align: 1,
            },
            file,
        })
    }

    fn refused(&self, op: Op, offset: u64, len: u64) -> DiskError {
        DiskError::io(
            &self.info.name,
            op,
            offset,
            len,
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "opened read-only, to look",
            ),
        )
    }
}

impl Disk for ReadOnlyDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        read_file(&self.info, &self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        self.info
            .check(Op::Write, offset, buf.as_ptr(), buf.len())?;
        Err(self.refused(Op::Write, offset, buf.len() as u64))
    }

    fn flush(&self) -> Result<(), DiskError> {
        Err(self.refused(Op::Flush, 0, 0))
    }
}
