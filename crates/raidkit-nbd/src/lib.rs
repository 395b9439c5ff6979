//! raidkit over NBD: the protocol layer ([`proto`], small and fuzzed, shared with a future
//! NBD client), a threaded server ([`server`]), and [`ArrayExport`], which serves a
//! [`raidkit::Array`].
//!
//! An array served this way is a disk for anything that speaks NBD: the kernel's nbd
//! client, QEMU, libnbd's tools (`nbdinfo`, `nbdcopy`, `nbdfuse`) and fio.

#![warn(missing_docs)]

pub mod proto;
pub mod server;
pub mod testing;

use std::sync::Arc;

use raidkit::{Array, ArrayError};

pub use server::{Export, ExportError, Listener, Server, ServerOptions};

/// An array as an NBD export (shared: the server's owner manages the same array).
pub struct ArrayExport {
    array: Arc<Array>,
}

impl ArrayExport {
    /// Serves `array`.
    pub fn new(array: Arc<Array>) -> ArrayExport {
        ArrayExport { array }
    }

    /// The array.
    pub fn array(&self) -> &Arc<Array> {
        &self.array
    }
}

/// The wire error for an array error: a range past the end is invalid, a read-only array
/// refuses, everything else is an I/O error (with the array's message, which names the
/// range).
fn export_error(e: ArrayError) -> ExportError {
    let errno = match &e {
        ArrayError::OutOfRange { .. } => proto::errno::EINVAL,
        ArrayError::ReadOnly { .. } => proto::errno::EPERM,
        _ => proto::errno::EIO,
    };
    ExportError {
        errno,
        message: e.to_string(),
    }
}

impl Export for ArrayExport {
    fn size(&self) -> u64 {
        self.array.len()
    }

    fn read_only(&self) -> bool {
        self.array.access() != raidkit::array::Access::ReadWrite
    }

    fn preferred_block(&self) -> u32 {
        let stripe = self.array.layout().stripe_data();
        u32::try_from(stripe.next_power_of_two()).unwrap_or(u32::MAX)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ExportError> {
        self.array.read_at(buf, offset).map_err(export_error)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ExportError> {
        self.array.write_at(buf, offset).map_err(export_error)
    }

    fn flush(&self) -> Result<(), ExportError> {
        self.array.flush().map_err(export_error)
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), ExportError> {
        self.array.write_zeroes(offset, len).map_err(export_error)
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), ExportError> {
        self.array.discard(offset, len).map_err(export_error)
    }
}
