//! Memory-mapped files as member disks.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::RwLock;

use memmap2::MmapMut;

use super::file::FILE_BLOCK_SIZE;
use super::{Disk, DiskError, DiskInfo, Op};

/// A regular file mapped into memory. Reads and writes are memory copies (writes take a
/// lock, reads share it); flush is `msync`.
#[derive(Debug)]
pub struct MmapDisk {
    info: DiskInfo,
    map: RwLock<MmapMut>,
    /// The open file, kept for its exclusive lock (the mapping alone would keep it too,
    /// but not visibly).
    _locked: std::fs::File,
}

impl MmapDisk {
    /// Maps an existing file; its size is rounded down to whole 4 KiB blocks.
    pub fn open(path: &Path) -> Result<MmapDisk, DiskError> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        super::lock::lock_exclusive(&file, path)?;
        let len = file
            .metadata()
            .map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?
            .len();
        if len == 0 {
            return Err(DiskError::Unsupported {
                path: path.to_path_buf(),
                reason: "an empty file cannot be mapped".to_string(),
            });
        }
        // SAFETY: memmap2 requires that no one else truncates or writes the file behind
        // the mapping's back; raidkit holds members for its own exclusive use, and a
        // member modified underneath an array is outside its contract.
        let map = unsafe { MmapMut::map_mut(&file) }
            .map_err(|e| DiskError::io(&name, Op::Open, 0, len, e))?;
        Ok(MmapDisk {
            info: DiskInfo {
                name,
                size: len - len % u64::from(FILE_BLOCK_SIZE),
                block_size: FILE_BLOCK_SIZE,
                buffer_align: 1,
            },
            map: RwLock::new(map),
            _locked: file,
        })
    }
}

impl Disk for MmapDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        super::memory::read_image(&self.info, &self.map, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        super::memory::write_image(&self.info, &self.map, buf, offset)
    }

    fn flush(&self) -> Result<(), DiskError> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.flush()
            .map_err(|e| DiskError::io(&self.info.name, Op::Flush, 0, 0, e))
    }
}
