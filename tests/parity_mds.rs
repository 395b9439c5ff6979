//! The k+m matrix is MDS: every square submatrix of the m×k parity matrix is invertible,
//! which is exactly the condition for every set of at most m lost blocks (data or parity)
//! to be recoverable. For k = 64 this checks every submatrix of every size (1×1 to 4×4);
//! the matrix for a smaller k is made of its first columns, so this covers every k ≤ 64.
//! `RAIDKIT_LONG_TESTS=1` extends the check to k = MAX_DATA.

use raidkit::parity::{gf, matrix};

/// Calls `f` with every `size`-element subset of `0..n`, in lexicographic order.
fn subsets(n: usize, size: usize, f: &mut dyn FnMut(&[usize])) {
    fn go(
        start: usize,
        n: usize,
        size: usize,
        current: &mut Vec<usize>,
        f: &mut dyn FnMut(&[usize]),
    ) {
        if current.len() == size {
            f(current);
            return;
        }
        for i in start..n {
            if n - i < size - current.len() {
                break;
            }
            current.push(i);
            go(i + 1, n, size, current, f);
            current.pop();
        }
    }
    go(0, n, size, &mut Vec::with_capacity(size), f);
}

/// The first singular square submatrix found, as (rows, columns).
fn first_singular(parity: &[Vec<u8>], k: usize) -> Option<(Vec<usize>, Vec<usize>)> {
    let m = parity.len();
    let mut found = None;
    for size in 1..=m.min(k) {
        subsets(m, size, &mut |rows| {
            if found.is_some() {
                return;
            }
            subsets(k, size, &mut |cols| {
                if found.is_some() {
                    return;
                }
                let square: Vec<Vec<u8>> = rows
                    .iter()
                    .map(|&r| cols.iter().map(|&c| parity[r][c]).collect())
                    .collect();
                if matrix::determinant(&square) == 0 {
                    found = Some((rows.to_vec(), cols.to_vec()));
                }
            });
        });
    }
    found
}

#[test]
fn every_square_submatrix_is_invertible_k64() {
    let parity = matrix::parity_matrix(4, 64);
    assert_eq!(first_singular(&parity, 64), None);
}

#[test]
fn every_square_submatrix_is_invertible_up_to_max_data() {
    if std::env::var_os("RAIDKIT_LONG_TESTS").is_none() {
        eprintln!(
            "SKIP MDS check at k = {} (set RAIDKIT_LONG_TESTS=1; k = 64 runs always)",
            matrix::MAX_DATA
        );
        return;
    }
    let parity = matrix::parity_matrix(4, matrix::MAX_DATA);
    assert_eq!(first_singular(&parity, matrix::MAX_DATA), None);
}

/// The check above can fail: the naive 1, 2^j, 4^j, 8^j rows are not MDS, and it says so.
#[test]
fn the_naive_vandermonde_extension_is_caught() {
    let k = 32;
    let naive: Vec<Vec<u8>> = (0..4)
        .map(|r| (0..k).map(|j| gf::exp(r * j)).collect())
        .collect();
    let (rows, cols) =
        first_singular(&naive, k).expect("the naive matrix has a singular submatrix");
    assert!(rows.len() >= 2, "found at rows {rows:?} cols {cols:?}");
}

/// Rows 2 and 3 are part of the on-disk format (docs/format.md): an accidental change to
/// the construction must fail here instead of silently corrupting existing arrays.
#[test]
fn parity_rows_are_pinned() {
    let row2 = [1u8, 151, 127, 156, 124, 24, 189, 162];
    let row3 = [1u8, 187, 166, 215, 199, 7, 206, 130];
    for j in 0..8 {
        assert_eq!(matrix::coefficient(0, j), 1);
        assert_eq!(matrix::coefficient(1, j), gf::exp(j));
        assert_eq!(matrix::coefficient(2, j), row2[j], "row 2, column {j}");
        assert_eq!(matrix::coefficient(3, j), row3[j], "row 3, column {j}");
    }
    // A digest of the whole 4 × MAX_DATA matrix, so that no entry can drift unnoticed.
    let digest = (0..4)
        .flat_map(|r| (0..matrix::MAX_DATA).map(move |j| (r, j)))
        .fold(0u64, |h, (r, j)| {
            (h ^ u64::from(matrix::coefficient(r, j))).wrapping_mul(0x0000_0100_0000_01b3)
        });
    assert_eq!(digest, 0x625e_9ab3_5b12_637d, "digest {digest:#x}");
}
