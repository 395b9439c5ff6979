//! Throw-away arrays over loopback files, for tests — yours and ours.
//!
//! [`LoopbackArray::new`] creates `members` sparse files in a fresh temporary directory,
//! builds an array of the given level over them and returns it open. Dropping it closes the
//! array and removes the directory. The files are real files, opened as raidkit opens any
//! member ([`raidkit::disk::open`]), so the array behaves as it would in production.
//!
//! ```
//! use raidkit::layout::Level;
//! use raidkit_testkit::LoopbackArray;
//!
//! // RAID-6 over six 8 MiB files with 64 KiB chunks.
//! let mut test = LoopbackArray::new(Level::Parity { m: 2 }, 6, 8 << 20, 64 << 10)?;
//! test.write_at(b"survives two failures", 12345)?;
//! test.fail_member(&test.paths()[0].display().to_string())?;
//! test.fail_member(&test.paths()[3].display().to_string())?;
//! let mut back = [0u8; 21];
//! test.read_at(&mut back, 12345)?;
//! assert_eq!(&back, b"survives two failures");
//! // Close and assemble again from the files, in any order.
//! test.reassemble()?;
//! # Ok::<(), raidkit::Error>(())
//! ```

use std::ops::Deref;
use std::path::{Path, PathBuf};

use raidkit::Error;
use raidkit::array::{Array, ArrayOptions, CreateOptions};
use raidkit::disk::{Disk, DiskError, Op};
use raidkit::layout::Level;

/// An array over temporary loopback files, removed on drop. Dereferences to [`Array`].
#[derive(Debug)]
pub struct LoopbackArray {
    // Field order matters: the array is closed before the directory is removed.
    array: Option<Array>,
    paths: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl LoopbackArray {
    /// Creates `members` sparse files of `member_size` bytes and an array of `level` with
    /// `chunk`-byte chunks over them.
    pub fn new(
        level: Level,
        members: usize,
        member_size: u64,
        chunk: u64,
    ) -> Result<LoopbackArray, Error> {
        LoopbackArray::with_options(
            members,
            member_size,
            &CreateOptions::new(level).chunk(chunk),
        )
    }

    /// Like [`new`](LoopbackArray::new), with every create option.
    pub fn with_options(
        members: usize,
        member_size: u64,
        options: &CreateOptions,
    ) -> Result<LoopbackArray, Error> {
        let dir = tempfile::Builder::new()
            .prefix("raidkit-loopback-")
            .tempdir()
            .map_err(|e| DiskError::io("temporary directory", Op::Open, 0, 0, e))?;
        let paths: Vec<PathBuf> = (0..members)
            .map(|i| dir.path().join(format!("member{i}.img")))
            .collect();
        for path in &paths {
            let file = std::fs::File::create_new(path)
                .and_then(|f| f.set_len(member_size).map(|()| f))
                .map_err(|e| DiskError::io(&path.display().to_string(), Op::Open, 0, 0, e))?;
            drop(file);
        }
        let disks = open_all(&paths)?;
        let array = Array::create(disks, options)?;
        Ok(LoopbackArray {
            array: Some(array),
            paths,
            dir,
        })
    }

    /// The member files, in role order as created.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The temporary directory holding them.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The array.
    ///
    /// Panics if a failed [`reassemble_from`](LoopbackArray::reassemble_from) left no array
    /// that assembles from the member files.
    pub fn array(&self) -> &Array {
        self.array
            .as_ref()
            .expect("no array: the last reassemble failed and the member files do not assemble")
    }

    /// Closes the array and keeps its files, so that a test can open them itself (an open
    /// array holds its members exclusively); [`reassemble`](LoopbackArray::reassemble)
    /// opens it again. Until then [`array`](LoopbackArray::array) panics.
    pub fn stop(&mut self) -> Result<(), Error> {
        match self.array.take() {
            Some(array) => Ok(array.close()?),
            None => Ok(()),
        }
    }

    /// Closes the array and assembles it again from every member file.
    pub fn reassemble(&mut self) -> Result<(), Error> {
        let paths = self.paths.clone();
        self.reassemble_from(&paths)
    }

    /// Closes the array and assembles it again from `paths` (a subset, or in another
    /// order).
    pub fn reassemble_from(&mut self, paths: &[PathBuf]) -> Result<(), Error> {
        if let Some(array) = self.array.take() {
            array.close()?;
        }
        match open_all(paths).and_then(|disks| {
            Ok(Array::assemble(
                disks,
                &ArrayOptions::default().allow_degraded(),
            )?)
        }) {
            Ok(array) => {
                self.array = Some(array);
                Ok(())
            }
            Err(e) => {
                // Keep an array to deref to: the one from every member file, if it assembles.
                self.array = open_all(&self.paths).ok().and_then(|disks| {
                    Array::assemble(disks, &ArrayOptions::default().allow_degraded()).ok()
                });
                Err(e)
            }
        }
    }
}

fn open_all(paths: &[PathBuf]) -> Result<Vec<Box<dyn Disk>>, Error> {
    Ok(raidkit::array::open_members(paths)?)
}

impl Deref for LoopbackArray {
    type Target = Array;
    fn deref(&self) -> &Array {
        self.array()
    }
}
