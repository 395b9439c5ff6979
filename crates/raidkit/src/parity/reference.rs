//! The slow, obviously correct reference: one byte at a time, straight from the definitions.
//!
//! Every engine is tested against these functions. They allocate their results and
//! assume well-formed input (equal lengths); use [`Engine`](super::Engine) and
//! [`Codec`](super::Codec) for real work.

use super::gf;

/// P = D_0 ⊕ D_1 ⊕ … ⊕ D_{k−1}.
pub fn gen_p(data: &[&[u8]], len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    for block in data {
        for (i, byte) in block.iter().enumerate() {
            p[i] ^= byte;
        }
    }
    p
}

/// Q = Σ_j g^j · D_j, j being the block's position in `data`.
pub fn gen_q(data: &[&[u8]], len: usize) -> Vec<u8> {
    let mut q = vec![0u8; len];
    for (j, block) in data.iter().enumerate() {
        let coefficient = gf::exp(j);
        for (i, byte) in block.iter().enumerate() {
            q[i] ^= gf::mul(coefficient, *byte);
        }
    }
    q
}

/// Parity row `r` of `matrix` (m rows of k coefficients) times the data: Σ_j A[r][j]·D_j.
pub fn encode(matrix: &[Vec<u8>], data: &[&[u8]], len: usize) -> Vec<Vec<u8>> {
    matrix
        .iter()
        .map(|row| {
            let mut out = vec![0u8; len];
            for (coefficient, block) in row.iter().zip(data) {
                for (i, byte) in block.iter().enumerate() {
                    out[i] ^= gf::mul(*coefficient, *byte);
                }
            }
            out
        })
        .collect()
}

/// The outcome of checking one RAID-6 stripe by its syndromes.
pub use super::SyndromeCheck;

/// The raid6check rule, byte by byte: which single block of the stripe disagrees.
pub fn locate(data: &[&[u8]], p: &[u8], q: &[u8]) -> SyndromeCheck {
    let len = p.len();
    let p2 = gen_p(data, len);
    let q2 = gen_q(data, len);
    let dp: Vec<u8> = p.iter().zip(&p2).map(|(a, b)| a ^ b).collect();
    let dq: Vec<u8> = q.iter().zip(&q2).map(|(a, b)| a ^ b).collect();
    let p_bad = dp.iter().any(|&b| b != 0);
    let q_bad = dq.iter().any(|&b| b != 0);
    match (p_bad, q_bad) {
        (false, false) => SyndromeCheck::Consistent,
        (true, false) => SyndromeCheck::PBad,
        (false, true) => SyndromeCheck::QBad,
        (true, true) => {
            let mut culprit: Option<usize> = None;
            for i in 0..len {
                match (dp[i], dq[i]) {
                    (0, 0) => continue,
                    (0, _) | (_, 0) => return SyndromeCheck::Multiple,
                    (a, b) => {
                        let z = (gf::LOG[b as usize] as usize + 255 - gf::LOG[a as usize] as usize)
                            % 255;
                        if z >= data.len() || culprit.is_some_and(|c| c != z) {
                            return SyndromeCheck::Multiple;
                        }
                        culprit = Some(z);
                    }
                }
            }
            match culprit {
                Some(z) => SyndromeCheck::Data(z),
                None => SyndromeCheck::Multiple,
            }
        }
    }
}
