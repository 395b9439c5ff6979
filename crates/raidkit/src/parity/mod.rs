//! Parity: GF(2^8) kernels for RAID-5, RAID-6 and k+m erasure coding.
//!
//! The field is GF(2^8) with polynomial 0x11D and generator g = 2, and the parity is
//! bit-compatible with Linux md and ISA-L: P = D_0 ⊕ … ⊕ D_{k−1} and Q = Σ_j g^j·D_j, j
//! being the data block's position in the stripe. The k+m family ([`Codec`]) uses P and Q
//! as its first two parity rows, so RAID-5 and RAID-6 are its m = 1 and m = 2 members; rows
//! 2 and 3 come from an extended Cauchy construction that keeps every loss of up to m
//! blocks recoverable (see [`matrix`]).
//!
//! Work is done by an [`Engine`]: scalar, AVX2, AVX-512BW or GFNI, picked once at start-up
//! ([`Engine::detect`]) and overridable with `RAIDKIT_ENGINE=scalar|avx2|avx512|gfni`.
//! Blocks may have any length; SIMD handles the body and scalar code the tail.
//!
//! ```
//! use raidkit::parity::{Codec, Engine};
//!
//! let engine = Engine::detect()?;
//! let data: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i * 17; 4096]).collect();
//! let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
//! let (mut p, mut q) = (vec![0; 4096], vec![0; 4096]);
//! engine.gen_pq(&refs, &mut p, &mut q)?;
//!
//! // Lose data blocks 1 and 3 and get them back from the rest.
//! let mut stripe: Vec<Vec<u8>> = data.clone();
//! stripe.push(p);
//! stripe.push(q);
//! stripe[1].fill(0);
//! stripe[3].fill(0);
//! let mut blocks: Vec<&mut [u8]> = stripe.iter_mut().map(|b| b.as_mut_slice()).collect();
//! engine.recover_raid6(&mut blocks, &[1, 3])?;
//! assert_eq!(stripe[1], data[1]);
//! assert_eq!(stripe[3], data[3]);
//!
//! // The same stripe is the m = 2 member of the k+m family.
//! let codec = Codec::new(4, 2)?;
//! assert_eq!(codec.coefficient(1, 3), 8); // g^3
//! # Ok::<(), raidkit::parity::ParityError>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod bench;
mod codec;
mod dispatch;
pub mod gf;
#[cfg(target_arch = "x86_64")]
mod gfni;
mod kernel;
pub mod matrix;
pub mod reference;
mod scalar;

pub use codec::Codec;
pub use dispatch::{ENGINE_ENV, Engine, EngineKind};
pub use matrix::{MAX_DATA, MAX_PARITY};

/// Errors from the parity engine. Each names the offending block or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParityError {
    /// A stripe needs at least one data block.
    #[error("a stripe needs at least one data block")]
    NoData,
    /// More data blocks than the codes support.
    #[error("{k} data blocks is more than the {max} supported")]
    TooManyData {
        /// Data blocks given.
        k: usize,
        /// The limit, [`MAX_DATA`].
        max: usize,
    },
    /// The parity count is outside 1 to [`MAX_PARITY`].
    #[error("{m} parity blocks is not supported (1 to {MAX_PARITY})")]
    ParityCount {
        /// Parity blocks asked for.
        m: usize,
    },
    /// The wrong number of blocks for the geometry.
    #[error("expected {expected} blocks, got {found}")]
    BlockCount {
        /// Blocks the geometry needs.
        expected: usize,
        /// Blocks given.
        found: usize,
    },
    /// A block whose length differs from the others.
    #[error("block {index} is {found} bytes long, expected {expected}")]
    LengthMismatch {
        /// Index of the block (data first, then parity).
        index: usize,
        /// The length of the first block.
        expected: usize,
        /// This block's length.
        found: usize,
    },
    /// A lost-block index beyond the stripe.
    #[error("lost block {index} is outside the stripe of {blocks} blocks")]
    LostOutOfRange {
        /// The index given.
        index: usize,
        /// Blocks in the stripe.
        blocks: usize,
    },
    /// The same block listed twice.
    #[error("block {index} is listed twice")]
    Duplicate {
        /// The repeated index or position.
        index: usize,
    },
    /// More lost blocks than the parity can restore.
    #[error("{lost} blocks lost but only {max} can be recovered")]
    TooManyLost {
        /// Blocks lost.
        lost: usize,
        /// Parity blocks, the most that can be lost.
        max: usize,
    },
    /// An updated block's position outside the stripe.
    #[error("data position {position} is outside the stripe of {k} data blocks")]
    PositionOutOfRange {
        /// The position given.
        position: usize,
        /// Data blocks in the stripe.
        k: usize,
    },
    /// `RAIDKIT_ENGINE` (or a caller) named an engine that does not exist.
    #[error("unknown parity engine {name:?} (expected scalar, avx2, avx512 or gfni)")]
    UnknownEngine {
        /// The name given.
        name: String,
    },
    /// The engine exists but this CPU cannot run it.
    #[error("parity engine {engine} needs {}, which this CPU lacks", engine.requires())]
    EngineUnsupported {
        /// The engine asked for.
        engine: EngineKind,
    },
}

/// What a RAID-6 syndrome check found in one stripe (the raid6check rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyndromeCheck {
    /// P and Q agree with the data.
    Consistent,
    /// Only P disagrees: P is wrong.
    PBad,
    /// Only Q disagrees: Q is wrong.
    QBad,
    /// Exactly one data block, at this position, explains both disagreements.
    Data(usize),
    /// The disagreement is not explained by any single block: more than one is wrong.
    Multiple,
}

/// A changed data block for a read-modify-write parity update.
#[derive(Debug, Clone, Copy)]
pub struct BlockUpdate<'a> {
    /// The block's position (0-based) among the stripe's data blocks.
    pub position: usize,
    /// Its contents before the write.
    pub old: &'a [u8],
    /// Its contents after the write.
    pub new: &'a [u8],
}

/// Checks that every block has the length of the first; returns it.
fn common_len<'a>(blocks: impl IntoIterator<Item = &'a [u8]>) -> Result<usize, ParityError> {
    let mut expected = None;
    for (index, block) in blocks.into_iter().enumerate() {
        match expected {
            None => expected = Some(block.len()),
            Some(expected) if block.len() != expected => {
                return Err(ParityError::LengthMismatch {
                    index,
                    expected,
                    found: block.len(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(expected.unwrap_or(0))
}

fn check_data_count(k: usize) -> Result<(), ParityError> {
    match k {
        0 => Err(ParityError::NoData),
        k if k > MAX_DATA => Err(ParityError::TooManyData { k, max: MAX_DATA }),
        _ => Ok(()),
    }
}

/// Validates a lost-block list against a stripe of `blocks` blocks with `m` parity;
/// returns it sorted.
fn check_lost(lost: &[usize], blocks: usize, m: usize) -> Result<Vec<usize>, ParityError> {
    let mut sorted = lost.to_vec();
    sorted.sort_unstable();
    if let Some(&index) = sorted.iter().find(|&&i| i >= blocks) {
        return Err(ParityError::LostOutOfRange { index, blocks });
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(ParityError::Duplicate { index: w[0] });
    }
    if sorted.len() > m {
        return Err(ParityError::TooManyLost {
            lost: sorted.len(),
            max: m,
        });
    }
    Ok(sorted)
}

/// A validated update: `(position, new, old)`.
type Change<'a> = (usize, &'a [u8], &'a [u8]);

/// Validates updates against `k` data blocks of length `len`; returns
/// `(position, new, old)` in descending position order.
fn check_updates<'a>(
    changes: &[BlockUpdate<'a>],
    k: usize,
    len: usize,
) -> Result<Vec<Change<'a>>, ParityError> {
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        if change.position >= k {
            return Err(ParityError::PositionOutOfRange {
                position: change.position,
                k,
            });
        }
        for block in [change.old, change.new] {
            if block.len() != len {
                return Err(ParityError::LengthMismatch {
                    index: change.position,
                    expected: len,
                    found: block.len(),
                });
            }
        }
        out.push((change.position, change.new, change.old));
    }
    out.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ParityError::Duplicate { index: w[0].0 });
    }
    Ok(out)
}

impl Engine {
    /// RAID-5 parity: `p = data[0] ⊕ … ⊕ data[k−1]`.
    pub fn gen_p(&self, data: &[&[u8]], p: &mut [u8]) -> Result<(), ParityError> {
        check_data_count(data.len())?;
        common_len(data.iter().copied().chain([&*p]))?;
        self.xor_into(data, p);
        Ok(())
    }

    /// RAID-6 parity: P = ⊕ D_j and Q = Σ g^j·D_j, as md and ISA-L's `pq_gen` compute it.
    pub fn gen_pq(&self, data: &[&[u8]], p: &mut [u8], q: &mut [u8]) -> Result<(), ParityError> {
        check_data_count(data.len())?;
        common_len(data.iter().copied().chain([&*p, &*q]))?;
        self.pq_into(data, p, q);
        Ok(())
    }

    /// Read-modify-write of RAID-5 parity: applies the changed blocks to `p` in place,
    /// without reading the unchanged ones. `k` is the stripe's data block count.
    pub fn update_p(
        &self,
        k: usize,
        changes: &[BlockUpdate<'_>],
        p: &mut [u8],
    ) -> Result<(), ParityError> {
        check_data_count(k)?;
        let changes = check_updates(changes, k, p.len())?;
        if changes.is_empty() {
            return Ok(());
        }
        let srcs: Vec<&[u8]> = changes.iter().flat_map(|c| [c.1, c.2]).collect();
        let coefs = vec![1u8; srcs.len()];
        self.dot(&srcs, &coefs, &mut [p], true);
        Ok(())
    }

    /// Read-modify-write of RAID-6 parity (md's `xor_syndrome`): applies the changed data
    /// blocks to P and Q in place, without reading the unchanged ones. `k` is the
    /// stripe's data block count.
    pub fn update_pq(
        &self,
        k: usize,
        changes: &[BlockUpdate<'_>],
        p: &mut [u8],
        q: &mut [u8],
    ) -> Result<(), ParityError> {
        check_data_count(k)?;
        common_len([&*p, &*q])?;
        let changes = check_updates(changes, k, p.len())?;
        if !changes.is_empty() {
            self.syndrome_update(&changes, p, q);
        }
        Ok(())
    }

    /// Restores one lost block of a RAID-5 stripe (`blocks` = k data blocks, then P).
    pub fn recover_raid5(&self, blocks: &mut [&mut [u8]], lost: usize) -> Result<(), ParityError> {
        if blocks.len() < 2 {
            return Err(ParityError::NoData);
        }
        check_data_count(blocks.len() - 1)?;
        common_len(blocks.iter().map(|b| &**b))?;
        check_lost(&[lost], blocks.len(), 1)?;
        let mut target: Option<&mut [u8]> = None;
        let mut srcs: Vec<&[u8]> = Vec::with_capacity(blocks.len() - 1);
        for (index, block) in blocks.iter_mut().enumerate() {
            if index == lost {
                target = Some(&mut **block);
            } else {
                srcs.push(&**block);
            }
        }
        let target = target.expect("lost index was checked to be in range");
        self.xor_into(&srcs, target);
        Ok(())
    }

    /// Restores up to two lost blocks of a RAID-6 stripe (`blocks` = k data blocks, then
    /// P, then Q; `lost` = their indices). Covers every case: one data block (from P), a
    /// data block and P (from Q), a data block and Q, two data blocks (from P and Q), and
    /// P and/or Q (recomputed).
    pub fn recover_raid6(
        &self,
        blocks: &mut [&mut [u8]],
        lost: &[usize],
    ) -> Result<(), ParityError> {
        if blocks.len() < 3 {
            return Err(ParityError::NoData);
        }
        let k = blocks.len() - 2;
        check_data_count(k)?;
        common_len(blocks.iter().map(|b| &**b))?;
        let lost = check_lost(lost, blocks.len(), 2)?;
        if lost.is_empty() {
            return Ok(());
        }
        let (p_index, q_index) = (k, k + 1);
        let mut srcs: Vec<(usize, &[u8])> = Vec::with_capacity(k);
        let mut p_in = None;
        let mut q_in = None;
        let mut outs: Vec<(usize, &mut [u8])> = Vec::with_capacity(2);
        for (index, block) in blocks.iter_mut().enumerate() {
            if lost.contains(&index) {
                outs.push((index, &mut **block));
            } else if index == p_index {
                p_in = Some(&**block);
            } else if index == q_index {
                q_in = Some(&**block);
            } else {
                srcs.push((index, &**block));
            }
        }
        srcs.reverse();
        // Each output is a·ΔP ⊕ b·ΔQ, where ΔP and ΔQ are the stored P and Q (zero when
        // lost) plus the syndromes of the surviving data (see FIELD-NOTES / docs/design).
        let coefficients: Vec<(u8, u8)> = match lost.as_slice() {
            [x] if *x < k => vec![(1, 0)],
            [x] if *x == p_index => vec![(1, 0)],
            [_] => vec![(0, 1)],
            [x, y] if *y < k => {
                let gyx = gf::exp(y - x);
                let denominator = gyx ^ 1;
                let a = gf::div(gyx, denominator).expect("g^(y-x) != 1 for 0 < y-x < 255");
                let b = gf::div(gf::exp(255 - x), denominator).expect("as above");
                vec![(a, b), (a ^ 1, b)]
            }
            [x, y] if *x < k && *y == p_index => {
                let g_minus_x = gf::exp(255 - x);
                vec![(0, g_minus_x), (1, g_minus_x)]
            }
            [x, _] if *x < k => vec![(1, 0), (gf::exp(*x), 1)],
            _ => vec![(1, 0), (0, 1)],
        };
        // ΔP and ΔQ must not include a lost P or Q: only survivors were taken as inputs.
        let mut outputs: Vec<(&mut [u8], u8, u8)> = outs
            .into_iter()
            .zip(coefficients)
            .map(|((_, block), (a, b))| (block, a, b))
            .collect();
        self.syndrome(srcs.iter().copied(), p_in, q_in, &mut outputs);
        Ok(())
    }

    /// Checks a RAID-6 stripe and names the single wrong block if there is one: the
    /// raid6check rule. Only ΔP non-zero means P is wrong, only ΔQ means Q; if both are,
    /// data block z is wrong when `ΔQ = g^z·ΔP` at every byte for one z < k.
    pub fn check_raid6(
        &self,
        data: &[&[u8]],
        p: &[u8],
        q: &[u8],
    ) -> Result<SyndromeCheck, ParityError> {
        check_data_count(data.len())?;
        let len = common_len(data.iter().copied().chain([p, q]))?;
        let srcs = data.iter().copied().enumerate().rev();
        let (mut dp, mut dq) = (vec![0u8; len], vec![0u8; len]);
        self.syndrome(
            srcs,
            Some(p),
            Some(q),
            &mut [(&mut dp[..], 1, 0), (&mut dq[..], 0, 1)],
        );
        let p_bad = dp.iter().any(|&b| b != 0);
        let q_bad = dq.iter().any(|&b| b != 0);
        Ok(match (p_bad, q_bad) {
            (false, false) => SyndromeCheck::Consistent,
            (true, false) => SyndromeCheck::PBad,
            (false, true) => SyndromeCheck::QBad,
            (true, true) => locate_single(&dp, &dq, data.len()),
        })
    }
}

/// The z with `dq = g^z·dp` at every byte, if one z < k explains every byte.
fn locate_single(dp: &[u8], dq: &[u8], k: usize) -> SyndromeCheck {
    let mut culprit = None;
    for (&a, &b) in dp.iter().zip(dq) {
        match (a, b) {
            (0, 0) => {}
            (0, _) | (_, 0) => return SyndromeCheck::Multiple,
            (a, b) => {
                let z = (gf::LOG[b as usize] as usize + 255 - gf::LOG[a as usize] as usize) % 255;
                if z >= k || culprit.is_some_and(|c| c != z) {
                    return SyndromeCheck::Multiple;
                }
                culprit = Some(z);
            }
        }
    }
    culprit.map_or(SyndromeCheck::Multiple, SyndromeCheck::Data)
}
