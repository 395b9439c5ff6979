//! The portable engine: eight bytes at a time in a `u64` (SWAR), and one byte at a time
//! for tails. It runs everywhere and finishes the tail of every SIMD engine.

use super::gf::Multiplier;
use super::kernel::{self, DotJob, PqJob, Simd};

/// Eight bytes in a `u64`.
#[derive(Clone, Copy)]
pub(crate) struct Swar;

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const LSB: u64 = 0x0101_0101_0101_0101;

impl Simd for Swar {
    type V = u64;
    type Split = u64;
    const WIDTH: usize = 8;

    #[inline(always)]
    unsafe fn load(p: *const u8) -> u64 {
        // SAFETY: the kernel contract makes `p` valid for WIDTH bytes.
        unsafe { core::ptr::read_unaligned(p.cast::<u64>()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut u8, v: u64) {
        // SAFETY: the kernel contract makes `p` valid for WIDTH bytes.
        unsafe { core::ptr::write_unaligned(p.cast::<u64>(), v) }
    }
    #[inline(always)]
    unsafe fn zero() -> u64 {
        0
    }
    #[inline(always)]
    unsafe fn xor(a: u64, b: u64) -> u64 {
        a ^ b
    }
    #[inline(always)]
    unsafe fn mul2(v: u64) -> u64 {
        // Shift each byte left, then reduce the bytes whose top bit fell out.
        ((v & LOW7) << 1) ^ (((v >> 7) & LSB) * 0x1d)
    }
    #[inline(always)]
    unsafe fn split(v: u64) -> u64 {
        v
    }
    #[inline(always)]
    unsafe fn mul(v: u64, m: &Multiplier) -> u64 {
        let mut out = 0u64;
        for i in 0..8 {
            let b = (v >> (8 * i)) as u8;
            let product = m.lo[(b & 15) as usize] ^ m.hi[(b >> 4) as usize];
            out |= (product as u64) << (8 * i);
        }
        out
    }
}

/// One byte at a time: the tail of every engine.
#[derive(Clone, Copy)]
pub(crate) struct Byte;

impl Simd for Byte {
    type V = u8;
    type Split = u8;
    const WIDTH: usize = 1;

    #[inline(always)]
    unsafe fn load(p: *const u8) -> u8 {
        // SAFETY: the kernel contract makes `p` valid for one byte.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut u8, v: u8) {
        // SAFETY: the kernel contract makes `p` valid for one byte.
        unsafe { *p = v }
    }
    #[inline(always)]
    unsafe fn zero() -> u8 {
        0
    }
    #[inline(always)]
    unsafe fn xor(a: u8, b: u8) -> u8 {
        a ^ b
    }
    #[inline(always)]
    unsafe fn mul2(v: u8) -> u8 {
        (v << 1) ^ ((v >> 7) * 0x1d)
    }
    #[inline(always)]
    unsafe fn split(v: u8) -> u8 {
        v
    }
    #[inline(always)]
    unsafe fn mul(v: u8, m: &Multiplier) -> u8 {
        m.lo[(v & 15) as usize] ^ m.hi[(v >> 4) as usize]
    }
}

// The portable entry points, with the same shape as the ISA ones: they run as far as they
// can in whole vectors and return where they stopped. `finish_*` completes any range.

pub(crate) unsafe fn xor_gen_body(
    srcs: &[*const u8],
    dst: *mut u8,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: forwarded kernel contract; Swar needs no CPU feature.
    unsafe {
        let off = kernel::xor_gen::<Swar, 4>(srcs, dst, start, end);
        kernel::xor_gen::<Swar, 1>(srcs, dst, off, end)
    }
}

pub(crate) unsafe fn pq_gen_body(
    srcs: &[*const u8],
    p: *mut u8,
    q: *mut u8,
    start: usize,
    end: usize,
) -> usize {
    // SAFETY: forwarded kernel contract; Swar needs no CPU feature.
    unsafe {
        let off = kernel::pq_gen::<Swar, 2>(srcs, p, q, start, end);
        kernel::pq_gen::<Swar, 1>(srcs, p, q, off, end)
    }
}

pub(crate) unsafe fn pq_body(job: &PqJob<'_>, start: usize, end: usize) -> usize {
    // SAFETY: forwarded kernel contract; Swar needs no CPU feature.
    unsafe {
        let off = kernel::pq::<Swar, 2, false>(job, start, end);
        kernel::pq::<Swar, 1, false>(job, off, end)
    }
}

pub(crate) unsafe fn pq_delta_body(job: &PqJob<'_>, start: usize, end: usize) -> usize {
    // SAFETY: forwarded kernel contract; Swar needs no CPU feature.
    unsafe {
        let off = kernel::pq::<Swar, 2, true>(job, start, end);
        kernel::pq::<Swar, 1, true>(job, off, end)
    }
}

pub(crate) unsafe fn dot_body(job: &DotJob<'_>, start: usize, end: usize) -> usize {
    // SAFETY: forwarded kernel contract; Swar needs no CPU feature.
    unsafe { kernel::dot_any::<Swar, 1, 1>(job, start, end) }
}

/// Completes `[start, end)` of an XOR job: whole `u64`s, then bytes.
pub(crate) unsafe fn finish_xor_gen(srcs: &[*const u8], dst: *mut u8, start: usize, end: usize) {
    // SAFETY: forwarded kernel contract.
    unsafe {
        let off = xor_gen_body(srcs, dst, start, end);
        kernel::xor_gen::<Byte, 1>(srcs, dst, off, end);
    }
}

/// Completes `[start, end)` of plain P+Q generation.
pub(crate) unsafe fn finish_pq_gen(
    srcs: &[*const u8],
    p: *mut u8,
    q: *mut u8,
    start: usize,
    end: usize,
) {
    // SAFETY: forwarded kernel contract.
    unsafe {
        let off = pq_gen_body(srcs, p, q, start, end);
        kernel::pq_gen::<Byte, 1>(srcs, p, q, off, end);
    }
}

/// Completes `[start, end)` of a P/Q job.
pub(crate) unsafe fn finish_pq(job: &PqJob<'_>, delta: bool, start: usize, end: usize) {
    // SAFETY: forwarded kernel contract.
    unsafe {
        if delta {
            let off = pq_delta_body(job, start, end);
            kernel::pq::<Byte, 1, true>(job, off, end);
        } else {
            let off = pq_body(job, start, end);
            kernel::pq::<Byte, 1, false>(job, off, end);
        }
    }
}

/// Completes `[start, end)` of a dot-product job.
pub(crate) unsafe fn finish_dot(job: &DotJob<'_>, start: usize, end: usize) {
    // SAFETY: forwarded kernel contract.
    unsafe {
        let off = dot_body(job, start, end);
        kernel::dot_any::<Byte, 1, 1>(job, off, end);
    }
}
