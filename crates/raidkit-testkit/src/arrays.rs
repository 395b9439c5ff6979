//! Memory-disk arrays and the helpers every array test needs: disks made fresh or from
//! images, the same disks handed to the array again, whole reads, and an assert that
//! names the first differing byte instead of printing megabytes.

use std::sync::Arc;

use raidkit::array::{Array, ArrayError, ArrayOptions};
use raidkit::disk::{Disk, MemDisk};

/// `n` zeroed memory disks of `size` bytes with 4 KiB blocks, named `{prefix}0`,
/// `{prefix}1`, …
pub fn mem_disks(prefix: &str, n: usize, size: u64) -> Vec<Arc<MemDisk>> {
    (0..n)
        .map(|i| Arc::new(MemDisk::new(&format!("{prefix}{i}"), size, 4096)))
        .collect()
}

/// Fresh memory disks holding `images`, named `{prefix}0`, `{prefix}1`, …
pub fn from_images(prefix: &str, images: &[Vec<u8>]) -> Vec<Arc<MemDisk>> {
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            Arc::new(MemDisk::from_image(
                &format!("{prefix}{i}"),
                image.clone(),
                4096,
            ))
        })
        .collect()
}

/// The disks as members to give an array, sharing them with the caller (who keeps a
/// handle to look at or break them behind the array's back).
pub fn boxed<D: Disk + 'static>(disks: &[Arc<D>]) -> Vec<Box<dyn Disk>> {
    disks
        .iter()
        .map(|d| Box::new(d.clone()) as Box<dyn Disk>)
        .collect()
}

/// Every disk's current image.
pub fn snapshots(disks: &[Arc<MemDisk>]) -> Vec<Vec<u8>> {
    disks.iter().map(|d| d.snapshot()).collect()
}

/// Assembles the array held in `images` (fresh disks named `m0`, `m1`, …), leaving out the
/// members whose indexes are in `without`.
pub fn assemble_images(images: &[Vec<u8>], without: &[usize]) -> Result<Array, ArrayError> {
    let disks: Vec<Arc<MemDisk>> = from_images("m", images)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !without.contains(i))
        .map(|(_, d)| d)
        .collect();
    Array::assemble(boxed(&disks), &ArrayOptions::default().allow_degraded())
}

/// The array's whole contents.
pub fn read_all(array: &Array) -> Result<Vec<u8>, ArrayError> {
    let len = usize::try_from(array.len()).expect("a test array fits in memory");
    let mut back = vec![0u8; len];
    array.read_at(&mut back, 0).map(|()| back)
}

/// Panics naming the first byte where `got` differs from `want` (never printing them).
#[track_caller]
pub fn same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: wrong data from byte {at} ({} bytes, {} expected)",
            got.len(),
            want.len()
        );
    }
}

/// Forges block `block` of the member with role `role` behind the array's back: writes
/// `bytes` (4 KiB) in its data region and the checksum entry that matches them in its
/// table, so that only the stripe's redundancy can tell. The array must be closed.
pub fn forge_block(
    disk: &dyn Disk,
    regions: &raidkit::format::Regions,
    role: usize,
    block: u64,
    bytes: &[u8],
) {
    assert_eq!(bytes.len(), 4096, "one block");
    disk.write_at(bytes, regions.data_offset + block * 4096)
        .expect("write the forged block");
    let entry = raidkit::format::checksum_entry(role, block, bytes);
    let page = block * 4 / 4096 * 4096;
    let mut table_page = vec![0u8; 4096];
    disk.read_at(&mut table_page, regions.csum_offset + page)
        .expect("read the table page");
    let at = (block * 4 - page) as usize;
    table_page[at..at + 4].copy_from_slice(&entry.to_le_bytes());
    disk.write_at(&table_page, regions.csum_offset + page)
        .expect("write the table page");
}
