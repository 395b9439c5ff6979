//! raidkit's test kit (not published): what the workspace's integration tests (`tests/`),
//! benches (`benches/`) and users' own tests share.
//!
//! - [`LoopbackArray`]: a throw-away array over temporary loopback files, in one call.
//! - [`sim`]: the seeded, fault-injecting simulated disk and its shared power line.
//! - [`arrays`]: memory-disk arrays and the helpers every array test needs (whole reads,
//!   images, first-difference asserts).
//! - Engine selection with loud skips, seeded data ([`Rng`]), page-aligned stripe buffers
//!   ([`Arena`]), the disk conformance suite, loop devices, and bindings to ISA-L when it is
//!   installed (`cfg(have_isal)`).
//!
//! It must not hold behaviour the library relies on: only ways to build, break and check.

pub mod arrays;
mod loopback;
pub mod sim;

pub use loopback::LoopbackArray;

use std::path::{Path, PathBuf};
use std::process::Command;

use raidkit::parity::{Engine, EngineKind};

/// The engine `kind`, or `None` after printing why it is skipped. A skip is never silent.
pub fn engine_or_skip(kind: EngineKind, test: &str) -> Option<Engine> {
    match Engine::new(kind) {
        Ok(engine) => Some(engine),
        Err(err) => {
            eprintln!("SKIP {test} [{kind}]: {err}");
            None
        }
    }
}

/// A small deterministic generator (SplitMix64) for test data.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fills a buffer with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A random block of `len` bytes.
    pub fn block(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.fill(&mut out);
        out
    }
}

/// `count` blocks of `len` bytes in one page-aligned arena, each block starting `offset`
/// bytes after a multiple of `stride` (so `offset` makes them unaligned).
pub struct Arena {
    buf: Vec<u8>,
    base: usize,
    stride: usize,
    offset: usize,
    len: usize,
    count: usize,
}

impl Arena {
    /// A zeroed arena of `count` blocks.
    pub fn new(count: usize, len: usize, offset: usize) -> Arena {
        // At least one 64-byte slot per block, also for zero-length blocks.
        let stride = (len + offset).div_ceil(64).max(1) * 64;
        let buf = vec![0u8; count * stride + 4096];
        let base = buf.as_ptr().align_offset(4096);
        Arena {
            buf,
            base,
            stride,
            offset,
            len,
            count,
        }
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let start = self.base + i * self.stride + self.offset;
        start..start + self.len
    }

    /// Block `i`.
    pub fn block(&self, i: usize) -> &[u8] {
        &self.buf[self.range(i)]
    }

    /// Block `i`, mutable.
    pub fn block_mut(&mut self, i: usize) -> &mut [u8] {
        let range = self.range(i);
        &mut self.buf[range]
    }

    /// Blocks `0..split` shared and `split..` mutable.
    pub fn split(&mut self, split: usize) -> (Vec<&[u8]>, Vec<&mut [u8]>) {
        let (head, tail) = self.buf.split_at_mut(self.base + split * self.stride);
        let inputs = (0..split)
            .map(|i| {
                let start = self.base + i * self.stride + self.offset;
                &head[start..start + self.len]
            })
            .collect();
        let outputs = tail
            .chunks_mut(self.stride)
            .take(self.count - split)
            .map(|chunk| &mut chunk[self.offset..self.offset + self.len])
            .collect();
        (inputs, outputs)
    }

    /// Every block, mutable.
    pub fn all_mut(&mut self) -> Vec<&mut [u8]> {
        self.split(0).1
    }

    /// Raw pointers to every block (for C libraries).
    pub fn pointers(&mut self) -> Vec<*mut u8> {
        (0..self.count)
            .map(|i| {
                let start = self.range(i).start;
                self.buf[start..].as_mut_ptr()
            })
            .collect()
    }
}

mod disk_suite {
    use raidkit::disk::{AlignedBuf, Disk, DiskError, IoRequest, Op};

    use super::Rng;

    /// A buffer of `len` random bytes, aligned for any backend.
    pub fn pattern(rng: &mut Rng, len: usize) -> AlignedBuf {
        let mut buf = AlignedBuf::new(len);
        rng.fill(&mut buf);
        buf
    }

    pub fn read(disk: &dyn Disk, offset: u64, len: usize) -> AlignedBuf {
        let mut buf = AlignedBuf::new(len);
        disk.read_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("read {offset}+{len}: {e}"));
        buf
    }

    /// The member-disk conformance suite, written once and run against every backend:
    /// read-back, boundaries, refused requests that change nothing, flush, batches, threads.
    pub fn conformance(disk: &dyn Disk) {
        let (size, bs) = (disk.len(), u64::from(disk.block_size()));
        let label = disk.name().to_string();
        assert!(
            size > 0 && bs.is_power_of_two() && size % bs == 0,
            "{label}: geometry"
        );
        let mut rng = Rng::new(size ^ bs);
        let block = bs as usize;

        // Read-back at the first block, the last block and a multi-block range in between.
        let places = [(0, block), (size - bs, block), (bs * 7, block * 5)];
        for &(offset, len) in &places {
            let data = pattern(&mut rng, len);
            disk.write_at(&data, offset).unwrap();
            assert_eq!(
                &*read(disk, offset, len),
                &*data,
                "{label}: read-back at {offset}"
            );
        }
        let last = read(disk, size - bs, block);

        // Refused requests name the problem and change nothing.
        let two = pattern(&mut rng, 2 * block);
        let err = disk.write_at(&two, size - bs).unwrap_err();
        assert!(
            matches!(err, DiskError::OutOfRange { op: Op::Write, .. }),
            "{label}: {err}"
        );
        assert!(
            err.to_string().contains(&label),
            "errors name the disk: {err}"
        );
        assert_eq!(
            &*read(disk, size - bs, block),
            &*last,
            "{label}: refused write changed data"
        );
        let mut buf = AlignedBuf::new(block);
        for offset in [size, u64::MAX - bs + 1, u64::MAX] {
            let err = disk.read_at(&mut buf, offset).unwrap_err();
            assert!(
                matches!(err, DiskError::OutOfRange { op: Op::Read, .. }),
                "{label}: {err}"
            );
        }
        if bs > 1 {
            let err = disk.write_at(&two[..block], bs / 2).unwrap_err();
            assert!(
                matches!(err, DiskError::Misaligned { .. }),
                "{label}: {err}"
            );
            let err = disk.write_at(&two[..block - 1], 0).unwrap_err();
            assert!(
                matches!(err, DiskError::Misaligned { .. }),
                "{label}: {err}"
            );
            let err = disk.read_at(&mut buf[..block / 2], bs).unwrap_err();
            assert!(
                matches!(err, DiskError::Misaligned { .. }),
                "{label}: {err}"
            );
        }
        if disk.buffer_align() > 1 {
            let mut wide = AlignedBuf::new(2 * block);
            let err = disk.read_at(&mut wide[1..1 + block], 0).unwrap_err();
            assert!(
                matches!(err, DiskError::BufferMisaligned { .. }),
                "{label}: {err}"
            );
            let err = disk.write_at(&wide[1..1 + block], 0).unwrap_err();
            assert!(
                matches!(err, DiskError::BufferMisaligned { .. }),
                "{label}: {err}"
            );
        }
        // Zero-length requests at the end are in range.
        disk.read_at(&mut buf[..0], size).unwrap();
        disk.flush().unwrap();

        // A batch: writes to disjoint ranges, then reads of them; one bad request fails alone.
        let count = 12;
        let datas: Vec<AlignedBuf> = (0..count).map(|_| pattern(&mut rng, 2 * block)).collect();
        let mut writes: Vec<IoRequest<'_>> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| IoRequest::Write {
                offset: (i as u64) * 3 * bs,
                buf: d,
            })
            .collect();
        writes.push(IoRequest::Write {
            offset: size,
            buf: &datas[0],
        });
        let results = disk.submit(&mut writes);
        assert_eq!(results.len(), count + 1);
        assert!(
            results[..count].iter().all(Result::is_ok),
            "{label}: batch writes"
        );
        assert!(matches!(results[count], Err(DiskError::OutOfRange { .. })));
        let mut outs: Vec<AlignedBuf> = (0..count).map(|_| AlignedBuf::new(2 * block)).collect();
        let mut reads: Vec<IoRequest<'_>> = outs
            .iter_mut()
            .enumerate()
            .map(|(i, o)| IoRequest::Read {
                offset: (i as u64) * 3 * bs,
                buf: o,
            })
            .collect();
        assert!(disk.submit(&mut reads).iter().all(Result::is_ok));
        drop(reads);
        for (i, (out, data)) in outs.iter().zip(&datas).enumerate() {
            assert_eq!(&**out, &**data, "{label}: batch read {i}");
        }

        // Several threads, each on its own region, writing and reading back.
        let region = size / 4 / bs * bs;
        let label = &label;
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                scope.spawn(move || {
                    let mut rng = Rng::new(t);
                    for round in 0..16u64 {
                        let offset = t * region + (round % 8) * 2 * bs;
                        let data = pattern(&mut rng, 2 * block);
                        disk.write_at(&data, offset).unwrap();
                        assert_eq!(
                            &*read(disk, offset, 2 * block),
                            &*data,
                            "{label}: thread {t}"
                        );
                    }
                });
            }
        });
        disk.flush().unwrap();
    }
}
pub use disk_suite::{conformance, pattern, read};

/// Bindings to Debian's ISA-L 2.30 (`libisal-dev`), linked when `build.rs` finds it.
#[cfg(have_isal)]
pub mod isal {
    use std::os::raw::{c_int, c_uchar, c_void};

    unsafe extern "C" {
        fn xor_gen(vects: c_int, len: c_int, array: *mut *mut c_void) -> c_int;
        fn pq_gen(vects: c_int, len: c_int, array: *mut *mut c_void) -> c_int;
        fn ec_init_tables(k: c_int, rows: c_int, a: *mut c_uchar, gftbls: *mut c_uchar);
        fn ec_encode_data(
            len: c_int,
            k: c_int,
            rows: c_int,
            gftbls: *mut c_uchar,
            data: *mut *mut c_uchar,
            coding: *mut *mut c_uchar,
        );
        fn gf_gen_cauchy1_matrix(a: *mut c_uchar, m: c_int, k: c_int);
        fn xor_gen_avx(vects: c_int, len: c_int, array: *mut *mut c_void) -> c_int;
        fn pq_gen_avx2(vects: c_int, len: c_int, array: *mut *mut c_void) -> c_int;
        fn ec_encode_data_avx2(
            len: c_int,
            k: c_int,
            rows: c_int,
            gftbls: *mut c_uchar,
            data: *mut *mut c_uchar,
            coding: *mut *mut c_uchar,
        );
    }

    /// ISA-L's code paths for one instruction set: the dispatched functions (AVX-512 on
    /// a CPU that has it) or the AVX2 ones called directly (what an AVX2-only CPU runs;
    /// ISA-L 2.30 has no AVX2 `xor_gen`, so that uses `xor_gen_avx`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Variant {
        /// `xor_gen`, `pq_gen`, `ec_encode_data`: ISA-L's own choice.
        Dispatched,
        /// `xor_gen_avx`, `pq_gen_avx2`, `ec_encode_data_avx2`.
        Avx2,
    }

    impl Variant {
        /// A label for reports.
        pub fn label(self) -> &'static str {
            match self {
                Variant::Dispatched => "ISA-L",
                Variant::Avx2 => "ISA-L avx2",
            }
        }
    }

    /// [`xor`] with a chosen variant.
    ///
    /// # Safety
    /// As for [`xor`].
    pub unsafe fn xor_variant(variant: Variant, ptrs: &mut [*mut u8], len: usize) -> i32 {
        let f = match variant {
            Variant::Dispatched => xor_gen,
            Variant::Avx2 => xor_gen_avx,
        };
        // SAFETY: forwarded to the caller.
        unsafe { f(ptrs.len() as c_int, len as c_int, ptrs.as_mut_ptr().cast()) }
    }

    /// [`pq`] with a chosen variant.
    ///
    /// # Safety
    /// As for [`xor`].
    pub unsafe fn pq_variant(variant: Variant, ptrs: &mut [*mut u8], len: usize) -> i32 {
        let f = match variant {
            Variant::Dispatched => pq_gen,
            Variant::Avx2 => pq_gen_avx2,
        };
        // SAFETY: forwarded to the caller.
        unsafe { f(ptrs.len() as c_int, len as c_int, ptrs.as_mut_ptr().cast()) }
    }

    /// [`encode`] with a chosen variant.
    ///
    /// # Safety
    /// As for [`encode`].
    pub unsafe fn encode_variant(
        variant: Variant,
        len: usize,
        tables: &mut [u8],
        data: &mut [*mut u8],
        coding: &mut [*mut u8],
    ) {
        let f = match variant {
            Variant::Dispatched => ec_encode_data,
            Variant::Avx2 => ec_encode_data_avx2,
        };
        // SAFETY: forwarded to the caller.
        unsafe {
            f(
                len as c_int,
                data.len() as c_int,
                coding.len() as c_int,
                tables.as_mut_ptr(),
                data.as_mut_ptr(),
                coding.as_mut_ptr(),
            )
        }
    }

    /// ISA-L `xor_gen` over `ptrs` (k sources then the destination). Pointers must be
    /// 32-byte aligned, valid for `len` bytes, and `len` a multiple of 32.
    ///
    /// # Safety
    /// As above; the destination must not overlap a source.
    pub unsafe fn xor(ptrs: &mut [*mut u8], len: usize) -> i32 {
        // SAFETY: forwarded to the caller.
        unsafe { xor_variant(Variant::Dispatched, ptrs, len) }
    }

    /// ISA-L `pq_gen` over `ptrs` (k sources, then P, then Q).
    ///
    /// # Safety
    /// As for [`xor`].
    pub unsafe fn pq(ptrs: &mut [*mut u8], len: usize) -> i32 {
        // SAFETY: forwarded to the caller.
        unsafe { pq_variant(Variant::Dispatched, ptrs, len) }
    }

    /// Expanded ISA-L tables for `rows` coefficient rows of `k` columns (row-major).
    pub fn tables(k: usize, rows: usize, coefs: &[u8]) -> Vec<u8> {
        assert_eq!(coefs.len(), k * rows);
        let mut a = coefs.to_vec();
        let mut tables = vec![0u8; 32 * k * rows];
        // SAFETY: `a` holds k·rows coefficients and `tables` the 32·k·rows bytes ISA-L
        // writes.
        unsafe {
            ec_init_tables(
                k as c_int,
                rows as c_int,
                a.as_mut_ptr(),
                tables.as_mut_ptr(),
            )
        };
        tables
    }

    /// ISA-L's own Cauchy parity rows for k+m (the rows after its identity part).
    pub fn cauchy_rows(k: usize, m: usize) -> Vec<u8> {
        let mut a = vec![0u8; (k + m) * k];
        // SAFETY: `a` has room for the (k+m)×k matrix.
        unsafe { gf_gen_cauchy1_matrix(a.as_mut_ptr(), (k + m) as c_int, k as c_int) };
        a[k * k..].to_vec()
    }

    /// ISA-L `ec_encode_data`: `coding[r] = Σ_j coefs[r][j]·data[j]` with tables from
    /// [`tables`].
    ///
    /// # Safety
    /// Every pointer valid for `len` bytes; outputs overlap no input.
    pub unsafe fn encode(
        len: usize,
        tables: &mut [u8],
        data: &mut [*mut u8],
        coding: &mut [*mut u8],
    ) {
        // SAFETY: forwarded to the caller.
        unsafe { encode_variant(Variant::Dispatched, len, tables, data, coding) }
    }
}

/// A loop device attached to a backing file, detached on drop (also when a test fails).
pub struct LoopDevice {
    /// The device node, such as `/dev/loop3`.
    pub device: PathBuf,
}

impl LoopDevice {
    /// Attaches `backing` to a free loop device.
    pub fn attach(backing: &Path) -> Result<LoopDevice, String> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing)
            .output()
            .map_err(|e| format!("cannot run losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(LoopDevice { device })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let status = Command::new("losetup").arg("-d").arg(&self.device).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("warning: could not detach {}", self.device.display());
        }
    }
}

/// Loop devices need root. In CI (which runs as root) a failure to attach fails the test;
/// elsewhere it is skipped with the reason.
pub fn loop_device(backing: &Path, test: &str) -> Option<LoopDevice> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let in_ci = std::env::var_os("CI").is_some();
    match LoopDevice::attach(backing) {
        Ok(device) => Some(device),
        Err(reason) if in_ci => panic!("{test}: loop devices are required in CI: {reason}"),
        Err(reason) => {
            let why = if root {
                reason
            } else {
                format!("not root ({reason})")
            };
            eprintln!("SKIP {test}: {why}");
            None
        }
    }
}

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
