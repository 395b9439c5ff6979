//! The k+m family: encode, read-modify-write update and decode of any ≤ m lost blocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{
    BlockUpdate, Engine, MAX_PARITY, ParityError, SyndromeCheck, check_data_count, check_lost,
    check_updates, common_len, gf, matrix,
};

/// Decode plans kept per codec before the cache is cleared.
const PLAN_CACHE_LIMIT: usize = 4096;

/// A systematic k+m erasure code over GF(2^8): k data blocks, m parity blocks (1 to 4).
///
/// Parity row 0 is P and row 1 is Q, bit for bit as md and ISA-L compute them, so an m = 2
/// codec is RAID-6 and an m = 1 codec is RAID-5. Any m lost blocks, data or parity, can be
/// recovered. Blocks are given as one slice of k + m blocks: data first, then parity.
#[derive(Debug)]
pub struct Codec {
    k: usize,
    m: usize,
    engine: Engine,
    /// Row-major m×k.
    matrix: Vec<u8>,
    plans: Mutex<HashMap<Vec<usize>, Arc<DecodePlan>>>,
}

/// How to rebuild one loss pattern: every lost block is a linear combination of k
/// surviving blocks, computed in one pass.
#[derive(Debug)]
struct DecodePlan {
    sources: Vec<usize>,
    outputs: Vec<usize>,
    /// Row-major, one row per output, one column per source.
    coefs: Vec<u8>,
}

impl Codec {
    /// A k+m codec on the engine chosen by [`Engine::detect`].
    pub fn new(k: usize, m: usize) -> Result<Codec, ParityError> {
        Codec::with_engine(k, m, Engine::detect()?)
    }

    /// A k+m codec on a given engine.
    pub fn with_engine(k: usize, m: usize, engine: Engine) -> Result<Codec, ParityError> {
        check_data_count(k)?;
        if !(1..=MAX_PARITY).contains(&m) {
            return Err(ParityError::ParityCount { m });
        }
        let matrix = matrix::parity_matrix(m, k).concat();
        Ok(Codec {
            k,
            m,
            engine,
            matrix,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// Data blocks per stripe.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Parity blocks per stripe.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The engine doing the work.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The coefficient of data block `col` in parity row `row` (row 0 is 1, row 1 is g^col).
    ///
    /// Panics if `row >= m` or `col >= k`.
    pub fn coefficient(&self, row: usize, col: usize) -> u8 {
        assert!(
            row < self.m && col < self.k,
            "coefficient({row}, {col}) out of range"
        );
        self.matrix[row * self.k + col]
    }

    fn row(&self, row: usize) -> &[u8] {
        &self.matrix[row * self.k..(row + 1) * self.k]
    }

    /// Computes the m parity blocks of k data blocks.
    pub fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), ParityError> {
        if data.len() != self.k {
            return Err(ParityError::BlockCount {
                expected: self.k + self.m,
                found: data.len() + parity.len(),
            });
        }
        if parity.len() != self.m {
            return Err(ParityError::BlockCount {
                expected: self.k + self.m,
                found: data.len() + parity.len(),
            });
        }
        common_len(data.iter().copied().chain(parity.iter().map(|p| &**p)))?;
        match parity {
            [p] => self.engine.xor_into(data, p),
            [p, q] => self.engine.pq_into(data, p, q),
            _ => self.engine.dot(data, &self.matrix, parity, false),
        }
        Ok(())
    }

    /// Read-modify-write: applies changed data blocks to the m parity blocks in place,
    /// without reading the unchanged data.
    pub fn update(
        &self,
        changes: &[BlockUpdate<'_>],
        parity: &mut [&mut [u8]],
    ) -> Result<(), ParityError> {
        if parity.len() != self.m {
            return Err(ParityError::BlockCount {
                expected: self.m,
                found: parity.len(),
            });
        }
        let len = common_len(parity.iter().map(|p| &**p))?;
        match parity {
            [p] => self.engine.update_p(self.k, changes, p),
            [p, q] => self.engine.update_pq(self.k, changes, p, q),
            _ => {
                let changes = check_updates(changes, self.k, len)?;
                if changes.is_empty() {
                    return Ok(());
                }
                let srcs: Vec<&[u8]> = changes.iter().flat_map(|c| [c.1, c.2]).collect();
                let coefs: Vec<u8> = (0..self.m)
                    .flat_map(|row| {
                        changes.iter().flat_map(move |c| {
                            let coefficient = self.coefficient(row, c.0);
                            [coefficient, coefficient]
                        })
                    })
                    .collect();
                self.engine.dot(&srcs, &coefs, parity, true);
                Ok(())
            }
        }
    }

    /// Restores the blocks at the indices in `lost` (data 0..k, then parity k..k+m) from
    /// the others. At most m blocks may be lost.
    pub fn reconstruct(&self, blocks: &mut [&mut [u8]], lost: &[usize]) -> Result<(), ParityError> {
        let total = self.k + self.m;
        if blocks.len() != total {
            return Err(ParityError::BlockCount {
                expected: total,
                found: blocks.len(),
            });
        }
        common_len(blocks.iter().map(|b| &**b))?;
        let lost = check_lost(lost, total, self.m)?;
        if lost.is_empty() {
            return Ok(());
        }
        match self.m {
            1 => return self.engine.recover_raid5(blocks, lost[0]),
            2 => return self.engine.recover_raid6(blocks, &lost),
            _ => {}
        }
        let plan = self.plan(&lost);
        let mut srcs: Vec<(usize, &[u8])> = Vec::with_capacity(plan.sources.len());
        let mut outs: Vec<(usize, &mut [u8])> = Vec::with_capacity(plan.outputs.len());
        for (index, block) in blocks.iter_mut().enumerate() {
            if plan.outputs.contains(&index) {
                outs.push((index, &mut **block));
            } else if plan.sources.contains(&index) {
                srcs.push((index, &**block));
            }
        }
        // Both lists come out in ascending index order, as the plan lists them.
        let srcs: Vec<&[u8]> = srcs.into_iter().map(|s| s.1).collect();
        let mut outs: Vec<&mut [u8]> = outs.into_iter().map(|o| o.1).collect();
        self.engine.dot(&srcs, &plan.coefs, &mut outs, false);
        Ok(())
    }

    /// The one block whose damage explains why a codeword's parity does not match its
    /// data, when exactly one block does.
    ///
    /// `blocks` is the codeword as stored: data `0..k`, then parity `k..k+m`. Returns the
    /// position of the damaged block, or `None` when the parity matches (nothing to
    /// locate), when m < 2 (one equation cannot name a block), or when no single block
    /// explains the mismatch at every byte (more than one block is damaged). For m = 2 this
    /// is the engine's RAID-6 syndrome check ([`Engine::check_raid6`]); beyond, the same
    /// rule over every parity row: a damaged data block z with error e shows as
    /// `A[r][z]·e` in every row r (no coefficient is zero), a damaged parity block in its
    /// own row only.
    pub fn locate(&self, blocks: &[&[u8]]) -> Result<Option<usize>, ParityError> {
        let total = self.k + self.m;
        if blocks.len() != total {
            return Err(ParityError::BlockCount {
                expected: total,
                found: blocks.len(),
            });
        }
        let len = common_len(blocks.iter().copied())?;
        let (data, parity) = blocks.split_at(self.k);
        match self.m {
            1 => return Ok(None),
            2 => {
                return Ok(match self.engine.check_raid6(data, parity[0], parity[1])? {
                    SyndromeCheck::Consistent | SyndromeCheck::Multiple => None,
                    SyndromeCheck::PBad => Some(self.k),
                    SyndromeCheck::QBad => Some(self.k + 1),
                    SyndromeCheck::Data(z) => Some(z),
                });
            }
            _ => {}
        }
        // Syndromes: the parity the data implies, XOR the parity stored.
        let mut syndromes: Vec<Vec<u8>> = (0..self.m).map(|_| vec![0u8; len]).collect();
        {
            let mut refs: Vec<&mut [u8]> = syndromes.iter_mut().map(|s| &mut s[..]).collect();
            self.encode(data, &mut refs)?;
        }
        for (syndrome, stored) in syndromes.iter_mut().zip(parity) {
            for (s, &b) in syndrome.iter_mut().zip(stored.iter()) {
                *s ^= b;
            }
        }
        let showing: Vec<usize> = (0..self.m)
            .filter(|&r| syndromes[r].iter().any(|&b| b != 0))
            .collect();
        match showing[..] {
            [] => return Ok(None),
            [r] => return Ok(Some(self.k + r)),
            _ if showing.len() < self.m => return Ok(None),
            _ => {}
        }
        // Row 0 is all ones, so e = syndromes[0]; row 1 (g^z) names z at any byte where e
        // is non-zero, and every row must then agree at every byte.
        let Some(at) = syndromes[0].iter().position(|&b| b != 0) else {
            return Ok(None);
        };
        let (e, s1) = (syndromes[0][at], syndromes[1][at]);
        let Some(z) = (0..self.k).find(|&z| gf::mul(self.coefficient(1, z), e) == s1) else {
            return Ok(None);
        };
        let coefficients: Vec<u8> = (0..self.m).map(|r| self.coefficient(r, z)).collect();
        let explained = (0..len).all(|i| {
            let e = syndromes[0][i];
            (1..self.m).all(|r| syndromes[r][i] == gf::mul(coefficients[r], e))
        });
        Ok(explained.then_some(z))
    }

    fn plan(&self, lost: &[usize]) -> Arc<DecodePlan> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = plans.get(lost) {
            return Arc::clone(plan);
        }
        let plan = Arc::new(self.build_plan(lost));
        if plans.len() >= PLAN_CACHE_LIMIT {
            plans.clear();
        }
        plans.insert(lost.to_vec(), Arc::clone(&plan));
        plan
    }

    /// Lost data x_i are solved from the first |lost data| surviving parity rows S:
    /// `A[S][lost]·D_lost = P_S ⊕ A[S][surviving]·D_surviving`. Lost parity rows are then
    /// re-encoded, with the lost data replaced by those same combinations.
    fn build_plan(&self, lost: &[usize]) -> DecodePlan {
        let k = self.k;
        let lost_data: Vec<usize> = lost.iter().copied().filter(|&i| i < k).collect();
        let surviving_data: Vec<usize> = (0..k).filter(|i| !lost_data.contains(i)).collect();
        let rows: Vec<usize> = (0..self.m)
            .filter(|r| !lost.contains(&(k + r)))
            .take(lost_data.len())
            .collect();
        let a = lost_data.len();
        let sources: Vec<usize> = surviving_data
            .iter()
            .copied()
            .chain(rows.iter().map(|r| k + r))
            .collect();
        // data_rows[i] = coefficients of lost data x_i over `sources`.
        let mut data_rows: Vec<Vec<u8>> = Vec::with_capacity(a);
        if a > 0 {
            let square: Vec<Vec<u8>> = rows
                .iter()
                .map(|&r| lost_data.iter().map(|&x| self.coefficient(r, x)).collect())
                .collect();
            let inverse = matrix::invert(&square)
                .expect("every square submatrix of the parity matrix is invertible");
            for inv_row in &inverse {
                let mut coefs = Vec::with_capacity(sources.len());
                for &j in &surviving_data {
                    let mut c = 0;
                    for (t, &r) in rows.iter().enumerate() {
                        c ^= gf::mul(inv_row[t], self.coefficient(r, j));
                    }
                    coefs.push(c);
                }
                coefs.extend_from_slice(inv_row);
                data_rows.push(coefs);
            }
        }
        let mut coefs = Vec::with_capacity(lost.len() * sources.len());
        for &index in lost {
            if index < k {
                let i = lost_data
                    .iter()
                    .position(|&x| x == index)
                    .expect("lost data");
                coefs.extend_from_slice(&data_rows[i]);
            } else {
                let row = self.row(index - k);
                let mut out: Vec<u8> = surviving_data.iter().map(|&j| row[j]).collect();
                out.resize(sources.len(), 0);
                for (i, &x) in lost_data.iter().enumerate() {
                    for (c, d) in out.iter_mut().zip(&data_rows[i]) {
                        *c ^= gf::mul(row[x], *d);
                    }
                }
                coefs.extend_from_slice(&out);
            }
        }
        DecodePlan {
            sources,
            outputs: lost.to_vec(),
            coefs,
        }
    }
}
