//! The k+m parity matrix and small GF(2^8) linear algebra.
//!
//! Row 0 is all ones (P) and row 1 is g^j (Q), exactly md's RAID-6. Rows 2 and 3 extend
//! them so that every square submatrix of the whole m×k matrix is invertible, which is
//! what makes any m losses recoverable (the code is MDS).
//!
//! Construction: a Cauchy matrix `C[i][j] = 1/(x_i ⊕ y_j)` (all x_i, y_j distinct) has
//! every square submatrix invertible, and scaling rows and columns by non-zero constants
//! keeps that property. Take `x_0 = 1`, `x_1 = 0`, `y_j = 1/(1 ⊕ g^(j+1))`, scale column j
//! by `(1 ⊕ y_j)` and row i by `r_i`. Row 0 becomes `(1 ⊕ y_j)/(1 ⊕ y_j) = 1`; row 1 becomes
//! `r_1·(1 ⊕ y_j)/y_j = r_1·g^(j+1)`, which is g^j with `r_1 = g^−1`. The y_j for
//! j < 252 are distinct and avoid 0 and 1, and the two field elements they leave out,
//! `1/(1 ⊕ g^253)` and `1/(1 ⊕ g^254)`, are x_2 and x_3. Rows 2 and 3 are scaled to start
//! with 1. So the matrix is MDS for every k ≤ 252 by construction; the tests also check
//! every square submatrix exhaustively.

use super::gf;

/// The most data blocks in one stripe.
pub const MAX_DATA: usize = 252;

/// The most parity blocks in one stripe.
pub const MAX_PARITY: usize = 4;

fn y(j: usize) -> u8 {
    gf::inv(1 ^ gf::exp(j + 1)).expect("1 + g^(j+1) is non-zero for j < 254")
}

fn x(row: usize) -> u8 {
    match row {
        0 => 1,
        1 => 0,
        _ => gf::inv(1 ^ gf::exp(251 + row)).expect("1 + g^253 and 1 + g^254 are non-zero"),
    }
}

fn cauchy_scaled(row: usize, col: usize) -> u8 {
    let yj = y(col);
    gf::div(1 ^ yj, x(row) ^ yj).expect("x_i and y_j are distinct")
}

/// The coefficient of data block `col` in parity row `row`.
///
/// Panics if `row >= MAX_PARITY` or `col >= MAX_DATA`.
pub fn coefficient(row: usize, col: usize) -> u8 {
    assert!(
        row < MAX_PARITY && col < MAX_DATA,
        "coefficient({row}, {col}) out of range"
    );
    match row {
        0 => 1,
        1 => gf::exp(col),
        _ => {
            let scale = gf::div(1, cauchy_scaled(row, 0)).expect("Cauchy entries are non-zero");
            gf::mul(scale, cauchy_scaled(row, col))
        }
    }
}

/// The m×k parity matrix, row by row.
///
/// Panics if `m > MAX_PARITY` or `k > MAX_DATA`.
pub fn parity_matrix(m: usize, k: usize) -> Vec<Vec<u8>> {
    (0..m)
        .map(|row| (0..k).map(|col| coefficient(row, col)).collect())
        .collect()
}

/// Inverts a square matrix over GF(2^8) (Gauss–Jordan), or `None` if it is singular.
pub fn invert(matrix: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    let n = matrix.len();
    let mut a: Vec<Vec<u8>> = matrix.to_vec();
    let mut inv: Vec<Vec<u8>> = (0..n)
        .map(|i| (0..n).map(|j| u8::from(i == j)).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).find(|&r| a[r][col] != 0)?;
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = gf::inv(a[col][col])?;
        for j in 0..n {
            a[col][j] = gf::mul(a[col][j], scale);
            inv[col][j] = gf::mul(inv[col][j], scale);
        }
        for r in 0..n {
            let factor = a[r][col];
            if r != col && factor != 0 {
                for j in 0..n {
                    a[r][j] ^= gf::mul(factor, a[col][j]);
                    inv[r][j] ^= gf::mul(factor, inv[col][j]);
                }
            }
        }
    }
    Some(inv)
}

/// The determinant of a square matrix over GF(2^8) (zero iff singular).
pub fn determinant(matrix: &[Vec<u8>]) -> u8 {
    let n = matrix.len();
    let mut a: Vec<Vec<u8>> = matrix.to_vec();
    let mut det = 1u8;
    for col in 0..n {
        let Some(pivot) = (col..n).find(|&r| a[r][col] != 0) else {
            return 0;
        };
        a.swap(col, pivot); // a row swap negates, and −1 = 1 in characteristic 2
        det = gf::mul(det, a[col][col]);
        let scale = gf::inv(a[col][col]).expect("pivot is non-zero");
        for r in col + 1..n {
            let factor = gf::mul(a[r][col], scale);
            if factor != 0 {
                let pivot_row = a[col].clone();
                for (x, p) in a[r].iter_mut().zip(pivot_row).skip(col) {
                    *x ^= gf::mul(factor, p);
                }
            }
        }
    }
    det
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // matrix products read best with indices
mod tests {
    use super::*;

    #[test]
    fn rows_zero_and_one_are_p_and_q() {
        for j in 0..MAX_DATA {
            assert_eq!(coefficient(0, j), 1);
            assert_eq!(coefficient(1, j), gf::exp(j));
        }
    }

    #[test]
    fn cauchy_points_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for row in 0..MAX_PARITY {
            assert!(seen.insert(x(row)), "x_{row} repeats");
        }
        for j in 0..MAX_DATA {
            assert!(seen.insert(y(j)), "y_{j} collides");
        }
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let m = parity_matrix(4, 4);
        let inv = invert(&m).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let mut sum = 0;
                for t in 0..4 {
                    sum ^= gf::mul(m[i][t], inv[t][j]);
                }
                assert_eq!(sum, u8::from(i == j));
            }
        }
        assert_ne!(determinant(&m), 0);
        assert_eq!(invert(&[vec![1, 1], vec![1, 1]]), None);
        assert_eq!(determinant(&[vec![1, 1], vec![1, 1]]), 0);
    }
}
