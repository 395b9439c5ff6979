//! The crate-wide error: one variant per area, each with its own typed error.

use crate::array::ArrayError;
use crate::disk::DiskError;
use crate::layout::LayoutError;
use crate::parity::ParityError;

/// Any raidkit error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the parity engine.
    #[error(transparent)]
    Parity(#[from] ParityError),
    /// From a member disk.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// From array geometry.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// From the array.
    #[error(transparent)]
    Array(#[from] ArrayError),
}
