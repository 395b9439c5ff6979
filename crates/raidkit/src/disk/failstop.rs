//! The fail-stop wrapper: the first write or flush error is final.
//!
//! A failed `fsync` may have dropped the dirty pages it could not write, so a retry that
//! succeeds proves nothing; likewise a write error leaves the range in an unknown state.
//! After either, every later call fails with [`DiskError::Failed`] naming the first error,
//! so nothing is ever silently retried. Read errors do not latch: the array repairs those
//! ranges from redundancy and rewrites them.

use std::sync::Mutex;

use super::{Disk, DiskError, DiskInfo, IoRequest};

/// Wraps a disk so that its first write or flush error latches.
#[derive(Debug)]
pub struct FailStop<D: Disk> {
    inner: D,
    first_error: Mutex<Option<String>>,
}

impl<D: Disk> FailStop<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> FailStop<D> {
        FailStop {
            inner,
            first_error: Mutex::new(None),
        }
    }

    /// The first write or flush error, if the disk has failed.
    pub fn failure(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The wrapped disk.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn refuse_if_failed(&self) -> Result<(), DiskError> {
        match self.failure() {
            Some(first) => Err(DiskError::Failed {
                disk: self.inner.name().to_string(),
                first,
            }),
            None => Ok(()),
        }
    }

    /// Latches `result`'s error if it is a device error (a refused request, such as an
    /// out-of-range one, changed nothing and does not latch).
    fn latch(&self, result: Result<(), DiskError>) -> Result<(), DiskError> {
        if let Err(err) = &result
            && err.is_io()
        {
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| err.to_string());
        }
        result
    }
}

impl<D: Disk> Disk for FailStop<D> {
    fn info(&self) -> &DiskInfo {
        self.inner.info()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        self.refuse_if_failed()?;
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), DiskError> {
        self.refuse_if_failed()?;
        self.latch(self.inner.write_at(buf, offset))
    }

    fn is_known_zeroed(&self) -> bool {
        self.inner.is_known_zeroed()
    }

    fn reads_zero_from(&self, offset: u64) -> bool {
        self.inner.reads_zero_from(offset)
    }

    fn flush(&self) -> Result<(), DiskError> {
        self.refuse_if_failed()?;
        self.latch(self.inner.flush())
    }

    fn submit(&self, batch: &mut [IoRequest<'_>]) -> Vec<Result<(), DiskError>> {
        if self.failure().is_some() {
            return batch.iter().map(|_| self.refuse_if_failed()).collect();
        }
        let writes: Vec<bool> = batch
            .iter()
            .map(|r| matches!(r, IoRequest::Write { .. }))
            .collect();
        let results = self.inner.submit(batch);
        results
            .into_iter()
            .zip(writes)
            .map(|(result, is_write)| if is_write { self.latch(result) } else { result })
            .collect()
    }
}
