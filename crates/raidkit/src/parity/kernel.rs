//! The parity kernels, written once over a small vector trait and instantiated per ISA.
//!
//! Each ISA file implements [`Simd`] with `#[inline(always)]` methods and calls the generic
//! kernels below from its own `#[target_feature]` functions, so the whole loop is compiled
//! for that instruction set. The kernels work on raw pointers over a byte range
//! `[start, end)` and return where they stopped (a whole number of unrolled vectors); the
//! caller finishes the rest with a narrower engine (see `finish_*` in `dispatch.rs`).
//!
//! All functions here are `unsafe`: the caller guarantees that every pointer is valid for
//! `end` bytes, that outputs do not overlap inputs except where a job says so (in-place P/Q
//! update), and that the CPU supports the ISA of `S`.

// Loops over `0..U` (unrolled vectors) and `0..R` (outputs) index several arrays in step;
// that is the clearest way to write an unrolled kernel.
#![allow(clippy::needless_range_loop)]

use super::gf::{MULTIPLIERS, Multiplier};

/// One instruction set's vector operations. Every method must be `#[inline(always)]`.
pub(crate) trait Simd {
    /// A vector of `WIDTH` bytes.
    type V: Copy;
    /// A vector prepared for multiplication by constants (nibbles split, or as is).
    type Split: Copy;
    /// Bytes per vector.
    const WIDTH: usize;

    /// Loads `WIDTH` bytes from `p` (no alignment required).
    unsafe fn load(p: *const u8) -> Self::V;
    /// Stores `WIDTH` bytes to `p` (no alignment required).
    unsafe fn store(p: *mut u8, v: Self::V);
    /// The zero vector.
    unsafe fn zero() -> Self::V;
    /// `a ^ b`.
    unsafe fn xor(a: Self::V, b: Self::V) -> Self::V;
    /// `a ^ b ^ c`.
    #[inline(always)]
    unsafe fn xor3(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: same contract as `xor`.
        unsafe { Self::xor(Self::xor(a, b), c) }
    }
    /// `2·v` in GF(2^8), byte-wise.
    unsafe fn mul2(v: Self::V) -> Self::V;
    /// Prepares `v` for one or more constant multiplies.
    unsafe fn split(v: Self::V) -> Self::Split;
    /// `c·v`, with `m` the prepared multiplier of `c`.
    unsafe fn mul(s: Self::Split, m: &Multiplier) -> Self::V;
}

#[inline(always)]
fn multiplier(c: u8) -> &'static Multiplier {
    &MULTIPLIERS[c as usize]
}

/// `dst = ⊕ srcs` over `[start, end)`, in steps of `U` vectors. `srcs` is not empty.
#[inline(always)]
pub(crate) unsafe fn xor_gen<S: Simd, const U: usize>(
    srcs: &[*const u8],
    dst: *mut u8,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: the caller upholds this module's contract (valid pointers for `end`
    // bytes, no forbidden overlap, CPU support for `S`).
    unsafe {
        let step = S::WIDTH * U;
        let mut off = start;
        while off + step <= end {
            let mut acc = [S::zero(); U];
            for u in 0..U {
                acc[u] = S::load(srcs[0].add(off + u * S::WIDTH));
            }
            let mut rest = &srcs[1..];
            while rest.len() >= 2 {
                for u in 0..U {
                    let a = S::load(rest[0].add(off + u * S::WIDTH));
                    let b = S::load(rest[1].add(off + u * S::WIDTH));
                    acc[u] = S::xor3(acc[u], a, b);
                }
                rest = &rest[2..];
            }
            if let Some(last) = rest.first() {
                for u in 0..U {
                    acc[u] = S::xor(acc[u], S::load(last.add(off + u * S::WIDTH)));
                }
            }
            for u in 0..U {
                S::store(dst.add(off + u * S::WIDTH), acc[u]);
            }
            off += step;
        }
        off
    }
}

/// One output of a [`PqJob`]: `out = a·ΔP ⊕ b·ΔQ`.
#[derive(Clone, Copy)]
pub(crate) struct PqOut {
    pub(crate) dst: *mut u8,
    pub(crate) a: u8,
    pub(crate) b: u8,
}

/// A fused RAID-6 pass: the syndromes of the present data blocks, combined with the stored
/// P and Q, written as up to two linear combinations. This one kernel is P+Q generation,
/// the read-modify-write update, and every RAID-6 recovery case.
///
/// With `P' = ⊕ D_j` and `Q' = Σ g^j·D_j` over the present blocks, `ΔP = P' ⊕ p_in` and
/// `ΔQ = Q' ⊕ q_in` (a null input counts as zero), each output is `a·ΔP ⊕ b·ΔQ`.
pub(crate) struct PqJob<'a> {
    /// Present data blocks, in strictly descending position order.
    pub(crate) srcs: &'a [*const u8],
    /// For an update: the old contents of each source (the source is then `new ⊕ old`).
    /// Empty otherwise.
    pub(crate) olds: &'a [*const u8],
    /// For Horner's rule: `steps[i] = g^(pos[i−1] − pos[i])` for i ≥ 1 (`steps[0]` unused),
    /// and `last = g^pos[n−1]`, the final multiply down to position 0.
    pub(crate) steps: &'a [u8],
    pub(crate) last: u8,
    /// The stored P and Q, or null.
    pub(crate) p_in: *const u8,
    pub(crate) q_in: *const u8,
    pub(crate) outs: &'a [PqOut],
}

#[inline(always)]
unsafe fn load_src<S: Simd, const DELTA: bool>(job: &PqJob<'_>, i: usize, off: usize) -> S::V {
    // SAFETY: the caller upholds this module's contract (valid pointers for `end`
    // bytes, no forbidden overlap, CPU support for `S`).
    unsafe {
        let v = S::load(job.srcs[i].add(off));
        if DELTA {
            S::xor(v, S::load(job.olds[i].add(off)))
        } else {
            v
        }
    }
}

/// Runs a [`PqJob`] over `[start, end)` in steps of `U` vectors.
#[inline(always)]
pub(crate) unsafe fn pq<S: Simd, const U: usize, const DELTA: bool>(
    job: &PqJob<'_>,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: the caller upholds this module's contract (valid pointers for `end`
    // bytes, no forbidden overlap, CPU support for `S`).
    unsafe {
        let step = S::WIDTH * U;
        let n = job.srcs.len();
        let mut off = start;
        while off + step <= end {
            let mut p = [S::zero(); U];
            let mut q = [S::zero(); U];
            if n > 0 {
                for u in 0..U {
                    let d = load_src::<S, DELTA>(job, 0, off + u * S::WIDTH);
                    p[u] = d;
                    q[u] = d;
                }
                for i in 1..n {
                    let step_coef = job.steps[i];
                    if step_coef == 2 {
                        for u in 0..U {
                            let d = load_src::<S, DELTA>(job, i, off + u * S::WIDTH);
                            p[u] = S::xor(p[u], d);
                            q[u] = S::xor(S::mul2(q[u]), d);
                        }
                    } else {
                        let m = multiplier(step_coef);
                        for u in 0..U {
                            let d = load_src::<S, DELTA>(job, i, off + u * S::WIDTH);
                            p[u] = S::xor(p[u], d);
                            q[u] = S::xor(S::mul(S::split(q[u]), m), d);
                        }
                    }
                }
                if job.last != 1 {
                    let m = multiplier(job.last);
                    for u in 0..U {
                        q[u] = S::mul(S::split(q[u]), m);
                    }
                }
            }
            if !job.p_in.is_null() {
                for u in 0..U {
                    p[u] = S::xor(p[u], S::load(job.p_in.add(off + u * S::WIDTH)));
                }
            }
            if !job.q_in.is_null() {
                for u in 0..U {
                    q[u] = S::xor(q[u], S::load(job.q_in.add(off + u * S::WIDTH)));
                }
            }
            for out in job.outs {
                // One branch per output, outside the vector loop.
                match (out.a, out.b) {
                    (1, 0) => {
                        for u in 0..U {
                            S::store(out.dst.add(off + u * S::WIDTH), p[u]);
                        }
                    }
                    (0, 1) => {
                        for u in 0..U {
                            S::store(out.dst.add(off + u * S::WIDTH), q[u]);
                        }
                    }
                    (a, b) => {
                        let (ma, mb) = (multiplier(a), multiplier(b));
                        for u in 0..U {
                            let v = S::xor(S::mul(S::split(p[u]), ma), S::mul(S::split(q[u]), mb));
                            S::store(out.dst.add(off + u * S::WIDTH), v);
                        }
                    }
                }
            }
            off += step;
        }
        off
    }
}

/// Plain P+Q generation, the hot case of [`PqJob`] without its generality: `srcs` are the
/// data blocks in descending position order k−1 … 0, and P and Q are written to `p`, `q`.
#[inline(always)]
pub(crate) unsafe fn pq_gen<S: Simd, const U: usize>(
    srcs: &[*const u8],
    p: *mut u8,
    q: *mut u8,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: the caller upholds this module's contract (valid pointers for `end`
    // bytes, outputs overlap no source, CPU support for `S`); `srcs` is not empty.
    unsafe {
        let step = S::WIDTH * U;
        let mut off = start;
        while off + step <= end {
            let mut pv = [S::zero(); U];
            let mut qv = [S::zero(); U];
            for u in 0..U {
                pv[u] = S::load(srcs[0].add(off + u * S::WIDTH));
                qv[u] = pv[u];
            }
            for src in &srcs[1..] {
                for u in 0..U {
                    let d = S::load(src.add(off + u * S::WIDTH));
                    pv[u] = S::xor(pv[u], d);
                    qv[u] = S::xor(S::mul2(qv[u]), d);
                }
            }
            for u in 0..U {
                S::store(p.add(off + u * S::WIDTH), pv[u]);
                S::store(q.add(off + u * S::WIDTH), qv[u]);
            }
            off += step;
        }
        off
    }
}

/// A matrix–vector pass: `dsts[r] (⊕)= Σ_j coefs[r·n + j] · srcs[j]`, `R` outputs.
pub(crate) struct DotJob<'a> {
    pub(crate) srcs: &'a [*const u8],
    /// Row-major, `R` rows of `srcs.len()` coefficients.
    pub(crate) coefs: &'a [u8],
    pub(crate) dsts: &'a [*mut u8],
    /// Add into the outputs instead of overwriting them.
    pub(crate) accumulate: bool,
}

/// Runs a [`DotJob`] with `R` outputs over `[start, end)` in steps of `U` vectors.
#[inline(always)]
pub(crate) unsafe fn dot<S: Simd, const R: usize, const U: usize>(
    job: &DotJob<'_>,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: the caller upholds this module's contract (valid pointers for `end`
    // bytes, no forbidden overlap, CPU support for `S`).
    unsafe {
        let step = S::WIDTH * U;
        let n = job.srcs.len();
        let mut off = start;
        while off + step <= end {
            let mut acc = [[S::zero(); U]; R];
            if job.accumulate {
                for r in 0..R {
                    for u in 0..U {
                        acc[r][u] = S::load(job.dsts[r].add(off + u * S::WIDTH));
                    }
                }
            }
            for j in 0..n {
                let mut v = [S::zero(); U];
                let mut s = [S::split(S::zero()); U];
                for u in 0..U {
                    v[u] = S::load(job.srcs[j].add(off + u * S::WIDTH));
                    s[u] = S::split(v[u]);
                }
                for r in 0..R {
                    let c = job.coefs[r * n + j];
                    match c {
                        0 => {}
                        1 => {
                            for u in 0..U {
                                acc[r][u] = S::xor(acc[r][u], v[u]);
                            }
                        }
                        _ => {
                            let m = multiplier(c);
                            for u in 0..U {
                                acc[r][u] = S::xor(acc[r][u], S::mul(s[u], m));
                            }
                        }
                    }
                }
            }
            for r in 0..R {
                for u in 0..U {
                    S::store(job.dsts[r].add(off + u * S::WIDTH), acc[r][u]);
                }
            }
            off += step;
        }
        off
    }
}

/// Dispatches a [`DotJob`] on its number of outputs (1 to 4).
#[inline(always)]
pub(crate) unsafe fn dot_any<S: Simd, const U12: usize, const U34: usize>(
    job: &DotJob<'_>,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: the caller upholds this module's contract (valid pointers for `end`
    // bytes, no forbidden overlap, CPU support for `S`).
    unsafe {
        match job.dsts.len() {
            1 => dot::<S, 1, U12>(job, start, end),
            2 => dot::<S, 2, U12>(job, start, end),
            3 => dot::<S, 3, U34>(job, start, end),
            4 => dot::<S, 4, U34>(job, start, end),
            _ => unreachable!("dot jobs have 1 to 4 outputs"),
        }
    }
}

/// Generates the `#[target_feature]` entry points of one ISA: `xor_gen` (always unrolled
/// eight vectors: it needs one register per vector), `pq_gen`, `pq`, `pq_delta` and `dot`, each running the generic kernel for `$simd` with unroll `$u` (`$dot_u12`/`$dot_u34` for dot products with 1–2/3–4
/// outputs) and returning
/// where it stopped.
macro_rules! isa_entry_points {
    ($features:literal, $simd:ty, $u:literal, $dot_u12:literal, $dot_u34:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn xor_gen_body(
            srcs: &[*const u8],
            dst: *mut u8,
            start: usize,
            end: usize,
        ) -> usize {
            // SAFETY: forwarded kernel contract; this function's features are `$simd`'s.
            unsafe {
                let off = $crate::parity::kernel::xor_gen::<$simd, 8>(srcs, dst, start, end);
                $crate::parity::kernel::xor_gen::<$simd, 1>(srcs, dst, off, end)
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn pq_body(
            job: &$crate::parity::kernel::PqJob<'_>,
            start: usize,
            end: usize,
        ) -> usize {
            // SAFETY: forwarded kernel contract; this function's features are `$simd`'s.
            unsafe {
                let off = $crate::parity::kernel::pq::<$simd, $u, false>(job, start, end);
                $crate::parity::kernel::pq::<$simd, 1, false>(job, off, end)
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn pq_gen_body(
            srcs: &[*const u8],
            p: *mut u8,
            q: *mut u8,
            start: usize,
            end: usize,
        ) -> usize {
            // SAFETY: forwarded kernel contract; this function's features are `$simd`'s.
            unsafe {
                let off = $crate::parity::kernel::pq_gen::<$simd, $u>(srcs, p, q, start, end);
                $crate::parity::kernel::pq_gen::<$simd, 1>(srcs, p, q, off, end)
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn pq_delta_body(
            job: &$crate::parity::kernel::PqJob<'_>,
            start: usize,
            end: usize,
        ) -> usize {
            // SAFETY: forwarded kernel contract; this function's features are `$simd`'s.
            unsafe {
                let off = $crate::parity::kernel::pq::<$simd, $u, true>(job, start, end);
                $crate::parity::kernel::pq::<$simd, 1, true>(job, off, end)
            }
        }

        #[target_feature(enable = $features)]
        unsafe fn dot_body(
            job: &$crate::parity::kernel::DotJob<'_>,
            start: usize,
            end: usize,
        ) -> usize {
            // SAFETY: forwarded kernel contract; this function's features are `$simd`'s.
            unsafe {
                let off =
                    $crate::parity::kernel::dot_any::<$simd, $dot_u12, $dot_u34>(job, start, end);
                $crate::parity::kernel::dot_any::<$simd, 1, 1>(job, off, end)
            }
        }
    };
}
pub(crate) use isa_entry_points;
