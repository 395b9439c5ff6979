//! GF(2^8) arithmetic with polynomial x^8+x^4+x^3+x^2+1 (0x11D) and generator 2.
//!
//! This is the field of Linux md's RAID-6 and of ISA-L's `pq_gen`. Everything here is
//! built by `const fn` at compile time and is deliberately simple: it is the reference
//! that every SIMD engine is tested against.

/// The field polynomial, x^8 + x^4 + x^3 + x^2 + 1.
pub const POLY: u16 = 0x11D;

/// The generator, g = 2.
pub const GENERATOR: u8 = 2;

/// Multiplies two field elements bit by bit (carry-less multiply, then reduce).
///
/// The slowest and most obviously correct multiply; the tables are checked against it.
pub const fn mul_bitwise(a: u8, b: u8) -> u8 {
    let mut product: u16 = 0;
    let mut a = a as u16;
    let mut b = b;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        a <<= 1;
        if a & 0x100 != 0 {
            a ^= POLY;
        }
        b >>= 1;
    }
    product as u8
}

const fn build_exp() -> [u8; 512] {
    let mut table = [0u8; 512];
    let mut x: u8 = 1;
    let mut i = 0;
    while i < 512 {
        table[i] = x;
        x = mul_bitwise(x, GENERATOR);
        i += 1;
    }
    table
}

const fn build_log(exp: &[u8; 512]) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        table[exp[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// `EXP[i] = g^i`, for i in 0..512 (periodic with period 255), so that
/// `EXP[LOG[a] + LOG[b]]` needs no reduction.
pub static EXP: [u8; 512] = build_exp();

/// `LOG[a]` = the i in 0..255 with g^i = a, for a ≠ 0. `LOG[0]` is 0 and meaningless.
pub static LOG: [u8; 256] = build_log(&build_exp());

/// Multiplies two field elements.
#[inline]
pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// g^e for any exponent (reduced modulo 255).
#[inline]
pub fn exp(e: usize) -> u8 {
    EXP[e % 255]
}

/// The multiplicative inverse of `a`, or `None` for zero.
#[inline]
pub fn inv(a: u8) -> Option<u8> {
    if a == 0 {
        None
    } else {
        Some(EXP[(255 - LOG[a as usize] as usize) % 255])
    }
}

/// `a / b`, or `None` when `b` is zero.
#[inline]
pub fn div(a: u8, b: u8) -> Option<u8> {
    inv(b).map(|ib| mul(a, ib))
}

/// Split-nibble tables for multiplying by `c`: `lo[n] = c·n`, `hi[n] = c·(n << 4)`, so
/// `c·x = lo[x & 15] ^ hi[x >> 4]` (the `pshufb` method).
pub const fn nibble_tables(c: u8) -> ([u8; 16], [u8; 16]) {
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    let mut n = 0;
    while n < 16 {
        lo[n] = mul_bitwise(c, n as u8);
        hi[n] = mul_bitwise(c, (n as u8) << 4);
        n += 1;
    }
    (lo, hi)
}

/// The 8×8 bit matrix that makes `vgf2p8affineqb` multiply by `c` in this field.
///
/// Output bit i of `c·x` is the XOR over j of (bit i of `c·2^j`) AND (bit j of `x`);
/// the instruction takes the row for output bit i from byte `7 − i` of the operand.
pub const fn affine_matrix(c: u8) -> u64 {
    let mut matrix = 0u64;
    let mut i = 0;
    while i < 8 {
        let mut row = 0u64;
        let mut j = 0;
        while j < 8 {
            let column = mul_bitwise(c, 1 << j);
            if (column >> i) & 1 != 0 {
                row |= 1 << j;
            }
            j += 1;
        }
        matrix |= row << (8 * (7 - i));
        i += 1;
    }
    matrix
}

/// Applies an affine matrix the way `vgf2p8affineqb` does (with a zero constant): a model
/// of the instruction, used to test [`affine_matrix`] without the CPU feature.
pub const fn affine_apply(matrix: u64, x: u8) -> u8 {
    let mut out = 0u8;
    let mut i = 0;
    while i < 8 {
        let row = (matrix >> (8 * (7 - i))) as u8;
        if (row & x).count_ones() & 1 == 1 {
            out |= 1 << i;
        }
        i += 1;
    }
    out
}

/// Everything an engine needs to multiply by one constant, prepared at compile time.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Multiplier {
    /// Products with the low nibble, twice (for both 128-bit lanes of a `vpshufb`).
    pub(crate) lo: [u8; 32],
    /// Products with the high nibble, twice.
    pub(crate) hi: [u8; 32],
    /// The GFNI affine matrix.
    pub(crate) affine: u64,
}

const fn build_multipliers() -> [Multiplier; 256] {
    let mut out = [Multiplier {
        lo: [0; 32],
        hi: [0; 32],
        affine: 0,
    }; 256];
    let mut c = 0;
    while c < 256 {
        let (lo, hi) = nibble_tables(c as u8);
        let mut n = 0;
        while n < 16 {
            out[c].lo[n] = lo[n];
            out[c].lo[n + 16] = lo[n];
            out[c].hi[n] = hi[n];
            out[c].hi[n + 16] = hi[n];
            n += 1;
        }
        out[c].affine = affine_matrix(c as u8);
        c += 1;
    }
    out
}

/// One prepared [`Multiplier`] per field element.
pub(crate) static MULTIPLIERS: [Multiplier; 256] = build_multipliers();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_agree_with_bitwise_multiply_for_every_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), mul_bitwise(a, b), "{a} * {b}");
            }
        }
    }

    #[test]
    fn generator_has_order_255() {
        let mut seen = [false; 256];
        for i in 0..255 {
            let x = exp(i);
            assert!(!seen[x as usize], "g^{i} repeats");
            seen[x as usize] = true;
        }
        assert!(!seen[0]);
        assert_eq!(exp(255), 1);
    }

    #[test]
    fn inverse_and_division() {
        assert_eq!(inv(0), None);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a).unwrap()), 1);
            for b in 1..=255u8 {
                assert_eq!(mul(div(a, b).unwrap(), b), a);
            }
        }
    }

    #[test]
    fn affine_matrices_multiply_for_every_pair() {
        for c in 0..=255u8 {
            let m = affine_matrix(c);
            assert_eq!(MULTIPLIERS[c as usize].affine, m);
            for x in 0..=255u8 {
                assert_eq!(affine_apply(m, x), mul(c, x), "affine {c} * {x}");
            }
        }
    }

    #[test]
    fn nibble_tables_multiply_for_every_pair() {
        for c in 0..=255u8 {
            let t = &MULTIPLIERS[c as usize];
            for x in 0..=255u8 {
                let lo = t.lo[(x & 15) as usize];
                let hi = t.hi[(x >> 4) as usize + 16];
                assert_eq!(lo ^ hi, mul(c, x), "nibble {c} * {x}");
            }
        }
    }

    #[test]
    fn known_values() {
        // 0x80 * 2 wraps through the polynomial: 0x100 ^ 0x11D = 0x1D.
        assert_eq!(mul(0x80, 2), 0x1D);
        assert_eq!(exp(8), 0x1D);
        assert_eq!(LOG[2], 1);
    }
}
