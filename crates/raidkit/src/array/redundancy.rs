//! The stripe code the array computes with: a mirror's copies or a parity code, behind one
//! interface, so that recovery, resync, scrub and the initial sync never ask which.
//!
//! Owns nothing but the codec; knows nothing of disks, rows or members.

use super::ArrayError;
use crate::layout::{Layout, Level};
use crate::parity::{Codec, Engine};

/// How a stripe's redundant blocks follow from its data.
#[derive(Debug)]
pub(super) enum Redundancy {
    /// Every position holds the same bytes (k = 1, m = copies − 1).
    Mirror,
    /// Data positions `0..k`, parity positions `k..k+m` (md/ISA-L convention for m ≤ 2,
    /// the Cauchy extension beyond).
    Parity(Codec),
}

impl Redundancy {
    /// The code of `layout`, computed with `engine`.
    pub fn new(layout: &Layout, engine: Engine) -> Result<Redundancy, ArrayError> {
        Ok(match layout.level() {
            Level::Mirror => Redundancy::Mirror,
            Level::Parity { m } => Redundancy::Parity(Codec::with_engine(layout.k(), m, engine)?),
        })
    }

    /// The parity code, for the write planners that update parity in place.
    pub fn parity(&self) -> Option<&Codec> {
        match self {
            Redundancy::Mirror => None,
            Redundancy::Parity(codec) => Some(codec),
        }
    }

    /// Computes the redundant blocks (`out`, positions `k..`) from the data blocks.
    pub fn encode(&self, data: &[&[u8]], out: &mut [&mut [u8]]) -> Result<(), ArrayError> {
        match self {
            Redundancy::Parity(codec) => Ok(codec.encode(data, out)?),
            Redundancy::Mirror => {
                for copy in out.iter_mut() {
                    copy.copy_from_slice(data[0]);
                }
                Ok(())
            }
        }
    }

    /// Rebuilds the `lost` positions of `blocks` (one row group, every position) from the
    /// others, in place.
    pub fn reconstruct(&self, blocks: &mut [&mut [u8]], lost: &[usize]) -> Result<(), ArrayError> {
        match self {
            Redundancy::Parity(codec) => Ok(codec.reconstruct(blocks, lost)?),
            Redundancy::Mirror => {
                let Some(source) = (0..blocks.len()).find(|p| !lost.contains(p)) else {
                    return Err(ArrayError::Parity(
                        crate::parity::ParityError::TooManyLost {
                            lost: lost.len(),
                            max: blocks.len().saturating_sub(1),
                        },
                    ));
                };
                let good = blocks[source].to_vec();
                for &p in lost {
                    blocks[p].copy_from_slice(&good);
                }
                Ok(())
            }
        }
    }

    /// The one position whose damage explains why a row's redundancy does not match it
    /// (`blocks`: every position, as stored), when exactly one does; `None` when the row is
    /// consistent or no single block explains it. Parity: the codec's syndrome rule
    /// ([`Codec::locate`]). Mirror: the one copy that differs from all the others while
    /// they agree (three copies or more; with two, either could be the damaged one).
    pub fn locate(&self, blocks: &[&[u8]]) -> Result<Option<usize>, ArrayError> {
        match self {
            Redundancy::Parity(codec) => Ok(codec.locate(blocks)?),
            Redundancy::Mirror => {
                if blocks.len() < 3 {
                    return Ok(None);
                }
                let odd: Vec<usize> = (0..blocks.len())
                    .filter(|&p| {
                        let others: Vec<usize> = (0..blocks.len()).filter(|&o| o != p).collect();
                        others.iter().all(|&o| blocks[o] == blocks[others[0]])
                            && blocks[p] != blocks[others[0]]
                    })
                    .collect();
                Ok(match odd[..] {
                    [only] => Some(only),
                    _ => None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_names_the_one_copy_that_disagrees_with_the_rest() {
        let (a, b) = (vec![1u8; 8], vec![2u8; 8]);
        let locate = |blocks: &[&[u8]]| Redundancy::Mirror.locate(blocks).unwrap();
        assert_eq!(locate(&[&a, &a, &a]), None);
        assert_eq!(locate(&[&a, &b, &a]), Some(1));
        assert_eq!(locate(&[&b, &a, &a, &a]), Some(0));
        // Two copies: either could be the damaged one. Two against two: no majority.
        assert_eq!(locate(&[&a, &b]), None);
        assert_eq!(locate(&[&a, &a, &b, &b]), None);
        let c = vec![3u8; 8];
        assert_eq!(locate(&[&a, &b, &c]), None);
    }
}
