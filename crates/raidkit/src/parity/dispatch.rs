//! Engine selection: one kernel table per instruction set, chosen once by CPU detection,
//! overridable with `RAIDKIT_ENGINE`, and the safe bridges from slices to the kernels.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::ParityError;
use super::kernel::{DotJob, PqJob, PqOut};
use super::scalar;

/// The environment variable that overrides engine selection.
pub const ENGINE_ENV: &str = "RAIDKIT_ENGINE";

/// An instruction-set engine for the parity kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EngineKind {
    /// Portable Rust, eight bytes at a time. Runs everywhere.
    Scalar,
    /// AVX2 with split-nibble `vpshufb` tables (x86-64).
    Avx2,
    /// AVX-512BW with split-nibble tables and `vpternlogq` (x86-64).
    Avx512,
    /// GFNI `vgf2p8affineqb` on 512-bit vectors (x86-64 with AVX-512BW and GFNI).
    Gfni,
}

impl EngineKind {
    /// Every engine, slowest first.
    pub const ALL: [EngineKind; 4] = [
        EngineKind::Scalar,
        EngineKind::Avx2,
        EngineKind::Avx512,
        EngineKind::Gfni,
    ];

    /// The engine's name, as accepted by `RAIDKIT_ENGINE` and `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Scalar => "scalar",
            EngineKind::Avx2 => "avx2",
            EngineKind::Avx512 => "avx512",
            EngineKind::Gfni => "gfni",
        }
    }

    /// The CPU features the engine needs, for messages.
    pub fn requires(self) -> &'static str {
        match self {
            EngineKind::Scalar => "nothing",
            EngineKind::Avx2 => "x86-64 with AVX2",
            EngineKind::Avx512 => "x86-64 with AVX-512F and AVX-512BW",
            EngineKind::Gfni => "x86-64 with GFNI, AVX-512F and AVX-512BW",
        }
    }

    /// Whether this CPU can run the engine.
    pub fn is_supported(self) -> bool {
        kernels_for(self).is_some()
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = ParityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParityError::UnknownEngine {
                name: s.to_string(),
            })
    }
}

/// One instruction set's kernels. Each runs over `[start, end)` as far as it can in whole
/// vectors and returns where it stopped; the scalar `finish_*` functions do the rest.
///
/// A table is only ever obtained from its ISA module's `kernels()`, which checks the CPU,
/// so holding one proves the CPU can run it.
pub(crate) struct Kernels {
    pub(crate) xor_gen: unsafe fn(&[*const u8], *mut u8, usize, usize) -> usize,
    pub(crate) pq_gen: unsafe fn(&[*const u8], *mut u8, *mut u8, usize, usize) -> usize,
    pub(crate) pq: unsafe fn(&PqJob<'_>, usize, usize) -> usize,
    pub(crate) pq_delta: unsafe fn(&PqJob<'_>, usize, usize) -> usize,
    pub(crate) dot: unsafe fn(&DotJob<'_>, usize, usize) -> usize,
}

static SCALAR: Kernels = Kernels {
    xor_gen: scalar::xor_gen_body,
    pq_gen: scalar::pq_gen_body,
    pq: scalar::pq_body,
    pq_delta: scalar::pq_delta_body,
    dot: scalar::dot_body,
};

fn kernels_for(kind: EngineKind) -> Option<&'static Kernels> {
    match kind {
        EngineKind::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        EngineKind::Avx2 => super::avx2::kernels(),
        #[cfg(target_arch = "x86_64")]
        EngineKind::Avx512 => super::avx512::kernels(),
        #[cfg(target_arch = "x86_64")]
        EngineKind::Gfni => super::gfni::kernels(),
        #[cfg(not(target_arch = "x86_64"))]
        _ => None,
    }
}

/// A parity engine: the kernels of one instruction set that this CPU supports.
///
/// Obtain one with [`Engine::detect`] (the fastest supported, or the one named by
/// `RAIDKIT_ENGINE`), [`Engine::best`] or [`Engine::new`]. An engine for an instruction
/// set the CPU lacks cannot be constructed. Engines are small `Copy` values.
#[derive(Clone, Copy)]
pub struct Engine {
    kind: EngineKind,
    kernels: &'static Kernels,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Engine").field(&self.kind).finish()
    }
}

impl Engine {
    /// The engine `kind`, or an error naming what the CPU lacks.
    pub fn new(kind: EngineKind) -> Result<Engine, ParityError> {
        kernels_for(kind)
            .map(|kernels| Engine { kind, kernels })
            .ok_or(ParityError::EngineUnsupported { engine: kind })
    }

    /// The fastest engine this CPU supports (GFNI, then AVX-512, AVX2, scalar).
    pub fn best() -> Engine {
        static BEST: OnceLock<Engine> = OnceLock::new();
        *BEST.get_or_init(|| {
            let engine = EngineKind::ALL
                .into_iter()
                .rev()
                .find_map(|kind| Engine::new(kind).ok())
                .expect("the scalar engine is always supported");
            log::debug!(
                "raidkit parity: fastest supported engine is {}",
                engine.kind
            );
            engine
        })
    }

    /// The engine to use: the one named by `RAIDKIT_ENGINE` if set, else [`Engine::best`].
    ///
    /// Resolved once per process and logged at debug level. Fails if the variable names an
    /// unknown engine or one this CPU cannot run.
    pub fn detect() -> Result<Engine, ParityError> {
        static CHOSEN: OnceLock<Result<Engine, ParityError>> = OnceLock::new();
        CHOSEN
            .get_or_init(|| {
                let chosen = match std::env::var(ENGINE_ENV) {
                    Ok(name) if !name.trim().is_empty() => {
                        name.parse::<EngineKind>().and_then(Engine::new)
                    }
                    _ => Ok(Engine::best()),
                };
                match &chosen {
                    Ok(engine) => log::debug!("raidkit parity: using engine {}", engine.kind),
                    Err(err) => log::debug!("raidkit parity: {ENGINE_ENV}: {err}"),
                }
                chosen
            })
            .clone()
    }

    /// Every engine this CPU supports, slowest first.
    pub fn supported() -> Vec<EngineKind> {
        EngineKind::ALL
            .into_iter()
            .filter(|kind| kind.is_supported())
            .collect()
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    // The bridges below are the only places the kernels are called. Each checks every
    // length it relies on, so a bad call panics instead of touching memory out of bounds;
    // the public API validates first and returns typed errors, so these checks never fire.

    /// `dst = ⊕ srcs`. `srcs` must not be empty.
    pub(crate) fn xor_into(&self, srcs: &[&[u8]], dst: &mut [u8]) {
        let len = dst.len();
        assert!(!srcs.is_empty() && srcs.iter().all(|s| s.len() == len));
        let ptrs = Ptrs::collect(srcs.iter().map(|s| s.as_ptr()));
        // SAFETY: every source and the destination are valid for `len` bytes (checked),
        // the destination is a unique borrow and so overlaps no source, and the kernel
        // table was obtained for this CPU.
        unsafe {
            let off = (self.kernels.xor_gen)(ptrs.as_slice(), dst.as_mut_ptr(), 0, len);
            if off < len {
                scalar::finish_xor_gen(ptrs.as_slice(), dst.as_mut_ptr(), off, len);
            }
        }
    }

    /// P and Q of `data` (positions 0..k), as `gen_pq` computes them. `data` must not be
    /// empty and every block must have the length of `p` and `q`.
    pub(crate) fn pq_into(&self, data: &[&[u8]], p: &mut [u8], q: &mut [u8]) {
        let len = p.len();
        assert!(!data.is_empty() && data.len() <= super::MAX_DATA);
        assert!(q.len() == len && data.iter().all(|d| d.len() == len));
        let ptrs = Ptrs::collect(data.iter().rev().map(|d| d.as_ptr()));
        // SAFETY: every block is valid for `len` bytes (checked); P and Q are unique
        // borrows, so they overlap no source and each other; the table was obtained for
        // this CPU.
        unsafe {
            let off =
                (self.kernels.pq_gen)(ptrs.as_slice(), p.as_mut_ptr(), q.as_mut_ptr(), 0, len);
            if off < len {
                scalar::finish_pq_gen(ptrs.as_slice(), p.as_mut_ptr(), q.as_mut_ptr(), off, len);
            }
        }
    }

    /// The fused RAID-6 pass (see `PqJob`): over the present data `(position, block)` in
    /// strictly descending position order, with optional stored P and Q, writes each
    /// output as `a·ΔP ⊕ b·ΔQ`.
    pub(crate) fn syndrome<'a>(
        &self,
        srcs: impl Iterator<Item = (usize, &'a [u8])>,
        p_in: Option<&[u8]>,
        q_in: Option<&[u8]>,
        outs: &mut [(&mut [u8], u8, u8)],
    ) {
        let len = outs.first().map_or(0, |o| o.0.len());
        assert!(outs.len() <= 2 && outs.iter().all(|o| o.0.len() == len));
        assert!(p_in.is_none_or(|p| p.len() == len) && q_in.is_none_or(|q| q.len() == len));
        // One pass checks each block and takes its pointer, so what is checked is what the
        // kernel reads.
        let mut previous = super::MAX_DATA;
        let mut positions = [0u8; super::MAX_DATA]; // positions < MAX_DATA = 252 fit a byte
        let mut count = 0;
        let ptrs = Ptrs::collect(srcs.map(|(position, block)| {
            assert!(position < previous && block.len() == len);
            previous = position;
            positions[count] = position as u8;
            count += 1;
            block.as_ptr()
        }));
        let plan = HornerPlan::new(positions[..count].iter().map(|&p| usize::from(p)));
        let mut out_buf = [PqOut {
            dst: std::ptr::null_mut(),
            a: 0,
            b: 0,
        }; 2];
        for (slot, out) in out_buf.iter_mut().zip(outs.iter_mut()) {
            *slot = PqOut {
                dst: out.0.as_mut_ptr(),
                a: out.1,
                b: out.2,
            };
        }
        let job = PqJob {
            srcs: ptrs.as_slice(),
            olds: &[],
            steps: plan.steps(),
            last: plan.last,
            p_in: p_in.map_or(std::ptr::null(), <[u8]>::as_ptr),
            q_in: q_in.map_or(std::ptr::null(), <[u8]>::as_ptr),
            outs: &out_buf[..outs.len()],
        };
        // SAFETY: all blocks are valid for `len` bytes (checked); outputs are unique
        // borrows, so they overlap no input; the table was obtained for this CPU.
        unsafe {
            let off = (self.kernels.pq)(&job, 0, len);
            if off < len {
                scalar::finish_pq(&job, false, off, len);
            }
        }
    }

    /// Read-modify-write of P and Q in place: `changes` are `(position, new, old)` in
    /// strictly descending position order.
    pub(crate) fn syndrome_update(
        &self,
        changes: &[(usize, &[u8], &[u8])],
        p: &mut [u8],
        q: &mut [u8],
    ) {
        let len = p.len();
        assert!(q.len() == len && changes.iter().all(|c| c.1.len() == len && c.2.len() == len));
        assert!(changes.windows(2).all(|w| w[0].0 > w[1].0));
        assert!(changes.first().is_none_or(|c| c.0 < super::MAX_DATA));
        let plan = HornerPlan::new(changes.iter().map(|c| c.0));
        let news = Ptrs::collect(changes.iter().map(|c| c.1.as_ptr()));
        let olds = Ptrs::collect(changes.iter().map(|c| c.2.as_ptr()));
        let outs = [
            PqOut {
                dst: p.as_mut_ptr(),
                a: 1,
                b: 0,
            },
            PqOut {
                dst: q.as_mut_ptr(),
                a: 0,
                b: 1,
            },
        ];
        let job = PqJob {
            srcs: news.as_slice(),
            olds: olds.as_slice(),
            steps: plan.steps(),
            last: plan.last,
            p_in: p.as_ptr(),
            q_in: q.as_ptr(),
            outs: &outs,
        };
        // SAFETY: all blocks are valid for `len` bytes (checked). P and Q are read and
        // written in place: the kernel loads each vector of P and Q before it stores the
        // same vector, and touches no other block through these pointers. The table was
        // obtained for this CPU.
        unsafe {
            let off = (self.kernels.pq_delta)(&job, 0, len);
            if off < len {
                scalar::finish_pq(&job, true, off, len);
            }
        }
    }

    /// `dsts[r] (⊕)= Σ_j coefs[r·n + j]·srcs[j]` for up to four outputs.
    pub(crate) fn dot(
        &self,
        srcs: &[&[u8]],
        coefs: &[u8],
        dsts: &mut [&mut [u8]],
        accumulate: bool,
    ) {
        let len = dsts.first().map_or(0, |d| d.len());
        assert!((1..=4).contains(&dsts.len()) && dsts.iter().all(|d| d.len() == len));
        assert!(srcs.iter().all(|s| s.len() == len) && coefs.len() == srcs.len() * dsts.len());
        let src_ptrs = Ptrs::collect(srcs.iter().map(|s| s.as_ptr()));
        let mut dst_ptrs = [std::ptr::null_mut(); 4];
        for (slot, dst) in dst_ptrs.iter_mut().zip(dsts.iter_mut()) {
            *slot = dst.as_mut_ptr();
        }
        let job = DotJob {
            srcs: src_ptrs.as_slice(),
            coefs,
            dsts: &dst_ptrs[..dsts.len()],
            accumulate,
        };
        // SAFETY: all blocks are valid for `len` bytes (checked); outputs are unique
        // borrows, so they overlap no source; the table was obtained for this CPU.
        unsafe {
            let off = (self.kernels.dot)(&job, 0, len);
            if off < len {
                scalar::finish_dot(&job, off, len);
            }
        }
    }
}

/// Block pointers for one kernel call: on the stack for typical stripes, on the heap for
/// wide ones, so that no call zeroes or allocates more than it needs.
#[allow(clippy::large_enum_variant)] // the inline array is the point: it lives on the stack
enum Ptrs {
    Inline([*const u8; 32], usize),
    Heap(Vec<*const u8>),
}

impl Ptrs {
    fn collect(mut iter: impl Iterator<Item = *const u8>) -> Ptrs {
        let mut inline = [std::ptr::null(); 32];
        for (len, slot) in inline.iter_mut().enumerate() {
            match iter.next() {
                Some(p) => *slot = p,
                None => return Ptrs::Inline(inline, len),
            }
        }
        match iter.next() {
            None => Ptrs::Inline(inline, 32),
            Some(p) => {
                let mut heap = inline.to_vec();
                heap.push(p);
                heap.extend(iter);
                Ptrs::Heap(heap)
            }
        }
    }

    fn as_slice(&self) -> &[*const u8] {
        match self {
            Ptrs::Inline(ptrs, len) => &ptrs[..*len],
            Ptrs::Heap(ptrs) => ptrs,
        }
    }
}

/// The constants of Horner's rule for Q over descending positions: the steps
/// `g^(pos[i−1] − pos[i])` and the final `g^pos[n−1]`.
struct HornerPlan {
    steps: [u8; 256],
    len: usize,
    last: u8,
}

impl HornerPlan {
    fn new(positions: impl Iterator<Item = usize>) -> HornerPlan {
        let mut plan = HornerPlan {
            steps: [0; 256],
            len: 0,
            last: 1,
        };
        let mut previous = None;
        for pos in positions {
            plan.steps[plan.len] = previous.map_or(1, |prev: usize| super::gf::exp(prev - pos));
            plan.last = super::gf::exp(pos);
            previous = Some(pos);
            plan.len += 1;
        }
        plan
    }

    fn steps(&self) -> &[u8] {
        &self.steps[..self.len]
    }
}
