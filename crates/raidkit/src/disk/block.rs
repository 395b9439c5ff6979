//! Block devices as member disks: `O_DIRECT | O_EXCL`, size and block size from the kernel.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::{Disk, DiskError, DiskInfo, Op};

/// `BLKGETSIZE64`: the device size in bytes (`_IOR(0x12, 114, size_t)`).
const BLKGETSIZE64: u64 = 0x8008_1272;
/// `BLKSSZGET`: the logical block size (`_IO(0x12, 104)`).
const BLKSSZGET: u64 = 0x1268;

/// A block device (`/dev/loopN`, `/dev/sdX`, `/dev/nvmeXnY`) as a member disk.
///
/// Opened with `O_DIRECT` (buffers aligned to the logical block size, at least 512) and
/// `O_EXCL`, so the kernel refuses a second exclusive opener: two arrays can never hold
/// the same device, and a mounted device is refused. Flush is `fsync`, which also flushes
/// the device's volatile write cache.
#[derive(Debug)]
pub struct BlockDisk {
    info: DiskInfo,
    file: File,
}

impl BlockDisk {
    /// Opens a block device exclusively.
    pub fn open(path: &Path) -> Result<BlockDisk, DiskError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        if !meta.file_type().is_block_device() {
            return Err(DiskError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a block device".to_string(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_EXCL)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    DiskError::InUse {
                        disk: name.clone(),
                        holder: super::lock::holder_of(path),
                    }
                } else {
                    DiskError::io(&name, Op::Open, 0, 0, e)
                }
            })?;
        // O_EXCL keeps other exclusive openers out (mounts, md, another array); the lock
        // keeps out lookers that must not read while this owner writes.
        super::lock::lock_exclusive(&file, path)?;
        let (size, block_size) = device_geometry(path, &file)?;
        Ok(BlockDisk {
            info: DiskInfo {
                name,
                size: size - size % u64::from(block_size),
                block_size,
                buffer_align: block_size as usize,
            },
            file,
        })
    }
}

/// A block device's size in bytes and logical block size, from the kernel.
pub(super) fn device_geometry(path: &Path, file: &File) -> Result<(u64, u32), DiskError> {
    let name = path.display().to_string();
    let mut size: u64 = 0;
    let mut block_size: libc::c_int = 0;
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is an open block device; BLKGETSIZE64 writes one u64 and BLKSSZGET one
    // int through the pointers, which point at live locals of those types.
    let (r1, r2) = unsafe {
        (
            libc::ioctl(fd, BLKGETSIZE64 as _, &mut size as *mut u64),
            libc::ioctl(fd, BLKSSZGET as _, &mut block_size as *mut libc::c_int),
        )
    };
    if r1 != 0 || r2 != 0 {
        return Err(DiskError::io(
            &name,
            Op::Open,
            0,
            0,
            std::io::Error::last_os_error(),
        ));
    }
    let block_size = u32::try_from(block_size)
        .ok()
        .filter(|b| b.is_power_of_two() && *b >= 512)
        .ok_or_else(|| DiskError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("unexpected logical block size {block_size}"),
        })?;
    Ok((size, block_size))
}

impl Disk for BlockDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        super::file::read_file(&self.info, &self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        super::file::write_file(&self.info, &self.file, buf, offset)
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.file
            .sync_all()
            .map_err(|e| DiskError::io(&self.info.name, Op::Flush, 0, 0, e))
    }
}
