//! Recognising what a disk already holds before it is overwritten.

use super::{AlignedBuf, Disk, DiskError};

/// What a disk already holds, when it is recognisable: a file system, swap, an encrypted
/// volume or a partition table (checked by their magic numbers). `create` refuses such a
/// member unless forced.
pub fn foreign_signature(disk: &dyn Disk) -> Result<Option<&'static str>, DiskError> {
    const PROBE: usize = 128 << 10;
    if disk.len() < PROBE as u64 {
        return Ok(None);
    }
    let mut head = AlignedBuf::new(PROBE);
    disk.read_at(&mut head, 0)?;
    let at = |offset: usize, magic: &[u8]| head[offset..offset + magic.len()] == *magic;
    let found = if at(1080, &[0x53, 0xEF]) && head[1024..1028] != [0; 4] {
        Some("an ext2/ext3/ext4 file system")
    } else if at(0, b"XFSB") {
        Some("an XFS file system")
    } else if at(65600, b"_BHRfS_M") {
        Some("a btrfs file system")
    } else if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        Some("a swap area")
    } else if at(0, b"LUKS\xba\xbe") {
        Some("a LUKS encrypted volume")
    } else if at(512, b"EFI PART") {
        Some("a GPT partition table")
    } else if at(3, b"NTFS    ") {
        Some("an NTFS file system")
    } else if at(54, b"FAT12   ") || at(54, b"FAT16   ") || at(82, b"FAT32   ") {
        Some("a FAT file system")
    } else if at(0x8001, b"CD001") {
        Some("an ISO 9660 image")
    } else {
        None
    };
    Ok(found)
}
