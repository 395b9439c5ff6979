//! An in-memory disk, for tests and examples.

use std::sync::RwLock;

use super::{Disk, DiskError, DiskInfo, Op};

/// A disk held in memory. Flush does nothing: there is nothing to make durable.
#[derive(Debug)]
pub struct MemDisk {
    info: DiskInfo,
    data: RwLock<Vec<u8>>,
}

impl MemDisk {
    /// A zeroed disk of `size` bytes (rounded down to whole blocks).
    pub fn new(name: &str, size: u64, block_size: u32) -> MemDisk {
        let size = size - size % u64::from(block_size.max(1));
        MemDisk {
            info: DiskInfo {
                name: name.to_string(),
                size,
                block_size: block_size.max(1),
                buffer_align: 1,
            },
            data: RwLock::new(vec![0u8; size as usize]),
        }
    }

    /// A disk holding `image` (truncated to whole blocks).
    pub fn from_image(name: &str, mut image: Vec<u8>, block_size: u32) -> MemDisk {
        let block_size = block_size.max(1);
        image.truncate(image.len() - image.len() % block_size as usize);
        MemDisk {
            info: DiskInfo {
                name: name.to_string(),
                size: image.len() as u64,
                block_size,
                buffer_align: 1,
            },
            data: RwLock::new(image),
        }
    }

    /// A copy of the whole disk.
    pub fn snapshot(&self) -> Vec<u8> {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A checked copy out of a byte image behind a lock (memory and mapped disks).
pub(super) fn read_image<T: AsRef<[u8]>>(
    info: &DiskInfo,
    image: &RwLock<T>,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), DiskError> {
    info.check(Op::Read, offset, buf.as_ptr(), buf.len())?;
    let image = image.read().unwrap_or_else(|e| e.into_inner());
    let start = offset as usize;
    buf.copy_from_slice(&image.as_ref()[start..start + buf.len()]);
    Ok(())
}

/// A checked copy into a byte image behind a lock (memory and mapped disks).
pub(super) fn write_image<T: AsMut<[u8]>>(
    info: &DiskInfo,
    image: &RwLock<T>,
    buf: &[u8],
    offset: u64,
) -> Result<(), DiskError> {
    info.check(Op::Write, offset, buf.as_ptr(), buf.len())?;
    let mut image = image.write().unwrap_or_else(|e| e.into_inner());
    let start = offset as usize;
    image.as_mut()[start..start + buf.len()].copy_from_slice(buf);
    Ok(())
}

impl Disk for MemDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        read_image(&self.info, &self.data, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        write_image(&self.info, &self.data, buf, offset)
    }

    fn reads_zero_from(&self, offset: u64) -> bool {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        data.get(offset as usize..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0))
    }

    fn is_known_zeroed(&self) -> bool {
        self.data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .all(|&b| b == 0)
    }

    fn flush(&self) -> Result<(), DiskError> {
        Ok(())
    }
}
