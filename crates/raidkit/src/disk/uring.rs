//! io_uring: a whole batch of requests goes to the kernel in one submission.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use io_uring::{IoUring, opcode, types};

use super::file::FILE_BLOCK_SIZE;
use super::{Disk, DiskError, DiskInfo, IoRequest, Op};

/// A regular file or block device driven through io_uring with `O_DIRECT`.
///
/// [`submit`](Disk::submit) queues up to the queue depth of requests and submits them in one
/// system call, waiting for all of them; larger batches go in chunks of the queue depth.
/// Buffers must be aligned like for any `O_DIRECT` disk ([`AlignedBuf`]). When io_uring
/// is not available (old kernel, disabled by `kernel.io_uring_disabled` or a seccomp
/// policy), [`UringDisk::open`] fails with [`DiskError::Unsupported`] and the caller can
/// fall back to [`FileDisk`] or [`BlockDisk`].
///
/// [`AlignedBuf`]: super::AlignedBuf
/// [`FileDisk`]: super::FileDisk
/// [`BlockDisk`]: super::BlockDisk
#[derive(Debug)]
pub struct UringDisk {
    info: DiskInfo,
    file: File,
    ring: Mutex<RingDebug>,
    depth: u32,
}

/// `IoUring` without a `Debug` impl of its own.
struct RingDebug(IoUring);

impl std::fmt::Debug for RingDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoUring")
    }
}

impl UringDisk {
    /// Opens `path` (regular file or block device) with a ring of `depth` entries
    /// (1 to 4096).
    pub fn open(path: &Path, depth: u32) -> Result<UringDisk, DiskError> {
        let name = path.display().to_string();
        let depth = depth.clamp(1, 4096);
        let meta = std::fs::metadata(path).map_err(|e| DiskError::io(&name, Op::Open, 0, 0, e))?;
        let block_device = meta.file_type().is_block_device();
        if !block_device && !meta.is_file() {
            return Err(DiskError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a regular file or a block device".to_string(),
            });
        }
        let ring = IoUring::new(depth).map_err(|e| DiskError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("io_uring is not available here ({e}); use the file or block backend"),
        })?;
        let mut flags = libc::O_DIRECT;
        if block_device {
            flags |= libc::O_EXCL;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EINVAL) => DiskError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "the file system does not support O_DIRECT".to_string(),
                },
                Some(libc::EBUSY) => DiskError::Unsupported {
                    path: path.to_path_buf(),
                    reason:
                        "device is busy: in use by another array, mounted, or held open exclusively"
                            .to_string(),
                },
                _ => DiskError::io(&name, Op::Open, 0, 0, e),
            })?;
        let (size, block_size) = if block_device {
            super::block::device_geometry(path, &file)?
        } else {
            (meta.len(), FILE_BLOCK_SIZE)
        };
        Ok(UringDisk {
            info: DiskInfo {
                name,
                size: size - size % u64::from(block_size),
                block_size,
                buffer_align: block_size.max(512) as usize,
            },
            file,
            ring: Mutex::new(RingDebug(ring)),
            depth,
        })
    }

    /// Runs one chunk of at most `depth` checked requests; `done[i]` counts the bytes
    /// finished so far, so short transfers are resubmitted for the rest.
    fn run_chunk(
        &self,
        ring: &mut IoUring,
        chunk: &mut [IoRequest<'_>],
        results: &mut [Option<Result<(), DiskError>>],
    ) {
        let fd = types::Fd(self.file.as_raw_fd());
        let mut done = vec![0usize; chunk.len()];
        loop {
            let mut queued = 0;
            for (i, request) in chunk.iter_mut().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                let d = done[i];
                let entry = match request {
                    IoRequest::Read { offset, buf } => {
                        opcode::Read::new(fd, buf[d..].as_mut_ptr(), (buf.len() - d) as u32)
                            .offset(*offset + d as u64)
                            .build()
                    }
                    IoRequest::Write { offset, buf } => {
                        opcode::Write::new(fd, buf[d..].as_ptr(), (buf.len() - d) as u32)
                            .offset(*offset + d as u64)
                            .build()
                    }
                };
                // SAFETY: the buffer stays borrowed by `chunk` until this function returns,
                // and it returns only after every queued entry has completed (the wait
                // below collects one completion per queued entry), so the kernel never
                // touches memory that is gone. The ring has room: at most `depth`
                // entries are queued per round and the queue is drained each round.
                let pushed = unsafe { ring.submission().push(&entry.user_data(i as u64)) };
                if pushed.is_err() {
                    break;
                }
                queued += 1;
            }
            if queued == 0 {
                return;
            }
            // Reap exactly as many completions as entries were queued before anything
            // else happens: until then the kernel may still use the buffers.
            let mut completed = 0;
            while completed < queued {
                if let Some(cqe) = ring.completion().next() {
                    completed += 1;
                    let i = cqe.user_data() as usize;
                    let (op, offset, len) = chunk[i].range();
                    match cqe.result() {
                        n if n < 0 => {
                            let err = std::io::Error::from_raw_os_error(-n);
                            results[i] =
                                Some(Err(DiskError::io(&self.info.name, op, offset, len, err)));
                        }
                        0 => {
                            let err = std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the device made no progress",
                            );
                            results[i] =
                                Some(Err(DiskError::io(&self.info.name, op, offset, len, err)));
                        }
                        n => {
                            done[i] += n as usize;
                            if done[i] as u64 >= len {
                                results[i] = Some(Ok(()));
                            }
                        }
                    }
                    continue;
                }
                if let Err(e) = ring.submit_and_wait(queued - completed) {
                    match e.raw_os_error() {
                        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY) => std::thread::yield_now(),
                        _ => {
                            // Entries are in flight with buffers we only borrow: returning
                            // or unwinding could let the kernel write freed memory.
                            eprintln!("raidkit: io_uring_enter failed with entries in flight: {e}");
                            std::process::abort();
                        }
                    }
                }
            }
        }
    }
}

impl Disk for UringDisk {
    fn info(&self) -> &DiskInfo {
        &self.info
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        let mut batch = [IoRequest::Read { offset, buf }];
        self.submit(&mut batch)
            .pop()
            .expect("one result per request")
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        let mut batch = [IoRequest::Write { offset, buf }];
        self.submit(&mut batch)
            .pop()
            .expect("one result per request")
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.file
            .sync_all()
            .map_err(|e| DiskError::io(&self.info.name, Op::Flush, 0, 0, e))
    }

    fn submit(&self, batch: &mut [IoRequest<'_>]) -> Vec<Result<(), DiskError>> {
        // Every request is checked first; refused ones never reach the ring.
        let mut results: Vec<Option<Result<(), DiskError>>> = batch
            .iter()
            .map(|request| {
                let (op, offset, _) = request.range();
                let (ptr, len) = match request {
                    IoRequest::Read { buf, .. } => (buf.as_ptr(), buf.len()),
                    IoRequest::Write { buf, .. } => (buf.as_ptr(), buf.len()),
                };
                match self.info.check(op, offset, ptr, len) {
                    Err(e) => Some(Err(e)),
                    Ok(()) if len == 0 => Some(Ok(())),
                    Ok(()) => None,
                }
            })
            .collect();
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let depth = self.depth as usize;
        let mut start = 0;
        while start < batch.len() {
            let end = (start + depth).min(batch.len());
            self.run_chunk(
                &mut ring.0,
                &mut batch[start..end],
                &mut results[start..end],
            );
            start = end;
        }
        results
            .into_iter()
            .map(|r| r.expect("every request completes or fails"))
            .collect()
    }
}
