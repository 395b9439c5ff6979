//! raidkit: software RAID 1/5/6 and wider k+m parity over files and block devices.
//!
//! The layers, top down:
//!
//! - [`array`]: the array — create and assemble, reads and writes through `&self` from many
//!   threads, degraded mode, self-healing checksummed reads, member management, status,
//!   resync after an unclean stop.
//! - [`format`]: on-disk format v1 — superblocks, region map, checksum entries.
//! - [`layout`]: array geometry — RAID-1, and md's left-symmetric rotation for RAID-5, RAID-6
//!   and k+m.
//! - [`parity`]: GF(2^8) kernels bit-compatible with Linux md and ISA-L (P = XOR,
//!   Q = Σ g^j·D_j over polynomial 0x11D), with scalar, AVX2, AVX-512BW and GFNI engines
//!   chosen at run time, RAID-6 recovery of every loss case, raid6check-style location of a
//!   single corrupt block, and a k+m erasure code for up to four parity blocks.
//! - [`disk`]: the member-disk trait and its backends (files, block devices, io_uring,
//!   memory maps, memory) and a fail-stop wrapper.
//!
//! Throw-away arrays over temporary loopback files, the seeded fault-injecting simulated
//! disk and the helpers the tests share live in the workspace's unpublished
//! `raidkit-testkit` crate, so that none of it is in the library's dependencies.
//!
//! ```
//! use raidkit::parity::Engine;
//!
//! let engine = Engine::detect()?;
//! let data = [vec![1u8; 512], vec![2u8; 512], vec![3u8; 512]];
//! let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
//! let mut p = vec![0u8; 512];
//! engine.gen_p(&refs, &mut p)?;
//! assert!(p.iter().all(|&b| b == 1 ^ 2 ^ 3));
//! # Ok::<(), raidkit::Error>(())
//! ```

#![warn(missing_docs)]

pub mod array;
pub mod disk;
mod error;
pub mod events;
pub mod format;
mod ids;
pub mod layout;
pub mod meta;
pub mod parity;
pub mod scan;

pub use array::{Array, ArrayError};

pub use error::Error;
