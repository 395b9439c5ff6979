//! Buffers aligned in memory, for `O_DIRECT` disks.

use std::ops::{Deref, DerefMut};

/// A zeroed byte buffer whose start is aligned to a power of two (4096 by default), as
/// `O_DIRECT` needs. It over-allocates a `Vec` and uses the aligned window inside it, so
/// it needs no unsafe code; moving the buffer does not move its bytes.
#[derive(Clone)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes aligned to 4096.
    pub fn new(len: usize) -> AlignedBuf {
        AlignedBuf::with_align(len, 4096)
    }

    /// `len` zero bytes aligned to `align` (a power of two).
    ///
    /// Panics if `align` is not a power of two.
    pub fn with_align(len: usize, align: usize) -> AlignedBuf {
        assert!(
            align.is_power_of_two(),
            "alignment {align} is not a power of two"
        );
        let storage = vec![0u8; len + align];
        let start = storage.as_ptr().align_offset(align);
        AlignedBuf {
            storage,
            start,
            len,
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    #[test]
    fn aligned_and_zeroed_after_moves() {
        for align in [1, 64, 512, 4096] {
            let buf = AlignedBuf::with_align(10_000, align);
            let moved = [buf];
            let buf = &moved[0];
            assert_eq!(buf.as_ptr() as usize % align, 0);
            assert_eq!(buf.len(), 10_000);
            assert!(buf.iter().all(|&b| b == 0));
        }
    }
}
