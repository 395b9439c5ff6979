//! Exclusive use of a member: an advisory lock (`flock`) on a member file for as long as
//! the disk is open, so that a second array over the same file, in another process or in
//! this one, is refused instead of interleaving with the first. Block devices get the same
//! guarantee from `O_EXCL`.
//!
//! Owns the lock and the lookup of who holds it; does no I/O on the member.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{DiskError, Op};

/// How long a lock that is taken is tried again before the disk counts as in use. A lock
/// outlives its holder's close while a child forked at that moment (and not yet `exec`ed)
/// still shares the open file, so a disk closed a moment ago may still be locked briefly.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// Takes the exclusive lock on `file` (opened from `path`), waiting at most [`SETTLE`].
/// The lock lasts as long as the open file: it goes with the last descriptor (or mapping)
/// of this open.
pub(super) fn lock_exclusive(file: &File, path: &Path) -> Result<(), DiskError> {
    lock(file, path, false)
}

/// Takes a shared lock on `file`: any number of lookers hold it together, and none while
/// an owner holds the exclusive lock (nor an owner while a looker holds it).
pub(super) fn lock_shared(file: &File, path: &Path) -> Result<(), DiskError> {
    lock(file, path, true)
}

fn lock(file: &File, path: &Path, shared: bool) -> Result<(), DiskError> {
    let attempt = || {
        if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        }
    };
    let started = std::time::Instant::now();
    let mut outcome = attempt();
    while matches!(outcome, Err(TryLockError::WouldBlock)) && started.elapsed() < SETTLE {
        std::thread::sleep(std::time::Duration::from_millis(5));
        outcome = attempt();
    }
    match outcome {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(DiskError::InUse {
            disk: path.display().to_string(),
            holder: file.metadata().ok().and_then(|m| holder(m.dev(), m.ino())),
        }),
        Err(TryLockError::Error(e)) => Err(DiskError::io(
            &path.display().to_string(),
            Op::Open,
            0,
            0,
            e,
        )),
    }
}

/// The process holding a `flock` on the file at `path` (for a block device another owner
/// opened with `O_EXCL`: the lock that owner took beside it), where Linux tells.
pub(super) fn holder_of(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    holder(meta.dev(), meta.ino())
}

/// The process holding a `flock` on the file (`dev`, `ino`), as "pid N (command)", from
/// `/proc/locks`; `None` where the platform does not say (or the holder is gone).
fn holder(dev: u64, ino: u64) -> Option<String> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, dev, ino)?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    Some(if command.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid} ({command})")
    })
}

/// The pid of the `FLOCK` line for (`dev`, `ino`) in the text of `/proc/locks`. Its lines
/// read `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`, the device as hex
/// `major:minor` (Linux's `MAJOR`/`MINOR` split of `st_dev`).
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A blocked waiter's line carries "->" before its type; only holders count.
        if fields.len() < 6 || fields[1] != "FLOCK" {
            return None;
        }
        let pid: u32 = fields[4].parse().ok()?;
        let mut id = fields[5].split(':');
        let maj = u32::from_str_radix(id.next()?, 16).ok()?;
        let min = u32::from_str_radix(id.next()?, 16).ok()?;
        let inode: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let dev = libc::makedev(0xfd, 0x01);
        let text = "1: POSIX  ADVISORY  WRITE 77 fd:01:5678 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 999 fd:01:5678 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 4321 fd:01:9999 0 EOF\n";
        assert_eq!(holder_in(text, dev, 5678), Some(1234));
        assert_eq!(holder_in(text, dev, 9999), Some(4321));
        assert_eq!(holder_in(text, libc::makedev(8, 1), 5678), None);
        assert_eq!(holder_in(text, dev, 1), None);
        assert_eq!(holder_in("garbage\n1: FLOCK\n", dev, 5678), None);
    }

    #[test]
    fn a_second_open_of_a_locked_file_is_refused_and_names_this_process() {
        let dir = std::env::temp_dir().join(format!("raidkit-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.img");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let first = File::options().read(true).write(true).open(&path).unwrap();
        lock_exclusive(&first, &path).unwrap();
        let second = File::options().read(true).write(true).open(&path).unwrap();
        match lock_exclusive(&second, &path) {
            Err(DiskError::InUse { disk, holder }) => {
                assert_eq!(disk, path.display().to_string());
                let holder = holder.expect("Linux names the holder");
                assert!(
                    holder.starts_with(&format!("pid {} ", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        lock_exclusive(&second, &path).unwrap();
        drop(second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
