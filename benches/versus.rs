//! raidkit's parity engines side by side with ISA-L (when `libisal-dev` is installed) and
//! the `reed-solomon-erasure` and `reed-solomon-simd` crates, in one process.
//!
//! Every case is measured in interleaved rounds (one repetition of every case, then the
//! next round), so a slow spell of this shared machine hits all implementations alike, and
//! the table reports best and median GB/s and raidkit's ratio to ISA-L. GB/s = 10^9 bytes
//! of data per second: k × block per call (decode: the k surviving blocks; pq_update: the
//! one changed block). Buffers are page-aligned, one contiguous arena per stripe (block i at
//! base + i·block), cache-warm, single thread.
//!
//! ```text
//! cargo bench --bench versus -- [--filter TEXT] [--block 4096,65536] [--k 4,8,12]
//!                                [--reps N] [--min-ms N] [--raw]
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use raidkit::parity::{BlockUpdate, Codec, Engine};
use raidkit_testkit::{Arena, Rng};

/// A stripe arena that bench closures reach through raw pointers, so that no call
/// allocates and several closures can share one arena (they run one at a time).
#[derive(Clone)]
struct Stripe {
    ptrs: Vec<*mut u8>,
    len: usize,
}

impl Stripe {
    /// A leaked arena of `count` random blocks.
    fn new(count: usize, len: usize, rng: &mut Rng) -> Stripe {
        let arena = Box::leak(Box::new(Arena::new(count, len, 0)));
        for i in 0..count {
            rng.fill(arena.block_mut(i));
        }
        Stripe {
            ptrs: arena.pointers(),
            len,
        }
    }

    fn ro(&self, i: usize) -> &'static [u8] {
        // SAFETY: the arena is leaked (lives forever) and holds `len` bytes at each
        // pointer; bench closures run one at a time and never hold a shared and a mutable
        // view of the same block at once.
        unsafe { std::slice::from_raw_parts(self.ptrs[i], self.len) }
    }

    #[allow(clippy::mut_from_ref)]
    fn rw(&self, i: usize) -> &'static mut [u8] {
        // SAFETY: as for `ro`.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs[i], self.len) }
    }
}

/// Up to 32 block views on the stack.
fn views<T: Default>(n: usize, f: impl Fn(usize) -> T) -> ([T; 32], usize) {
    (
        std::array::from_fn(|i| if i < n { f(i) } else { T::default() }),
        n,
    )
}

struct Case {
    implementation: String,
    op: String,
    geometry: String,
    block: usize,
    bytes: f64,
    run: Box<dyn FnMut()>,
    iters: u64,
    gbps: Vec<f64>,
}

struct Options {
    filter: Vec<String>,
    blocks: Vec<usize>,
    ks: Vec<usize>,
    reps: usize,
    min_time: Duration,
    raw: bool,
}

fn parse_list(text: &str) -> Vec<usize> {
    text.split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

fn options() -> Options {
    let mut o = Options {
        filter: Vec::new(),
        blocks: vec![4096, 65536, 1 << 20],
        ks: vec![4, 8, 12],
        reps: 7,
        min_time: Duration::from_millis(40),
        raw: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--filter" => o.filter.push(value),
            "--block" => o.blocks = parse_list(&value),
            "--k" => o.ks = parse_list(&value),
            "--reps" => o.reps = value.parse().unwrap_or(o.reps),
            "--min-ms" => o.min_time = Duration::from_millis(value.parse().unwrap_or(40)),
            "--raw" => {
                o.raw = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

struct Cases {
    list: Vec<Case>,
    filter: Vec<String>,
}

impl Cases {
    fn add(
        &mut self,
        implementation: &str,
        op: &str,
        geometry: String,
        block: usize,
        bytes: usize,
        run: impl FnMut() + 'static,
    ) {
        let label = format!("{implementation} {op} {geometry} {block}");
        if self.filter.iter().any(|f| !label.contains(f.as_str())) {
            return;
        }
        self.list.push(Case {
            implementation: implementation.to_string(),
            op: op.to_string(),
            geometry,
            block,
            bytes: bytes as f64,
            run: Box::new(run),
            iters: 1,
            gbps: Vec::new(),
        });
    }
}

fn add_raidkit(cases: &mut Cases, k: usize, block: usize, rng: &mut Rng) {
    for kind in Engine::supported() {
        let engine = Engine::new(kind).expect("supported");
        let name = format!("raidkit {kind}");
        // Blocks: k data, 4 parity, 1 spare (new contents for pq_update).
        let s = Stripe::new(k + 5, block, rng);
        let st = s.clone();
        cases.add(&name, "p", format!("k={k}"), block, k * block, move || {
            let (data, n) = views(k, |i| st.ro(i));
            engine.gen_p(&data[..n], st.rw(k)).unwrap();
        });
        let st = s.clone();
        cases.add(&name, "pq", format!("k={k}"), block, k * block, move || {
            let (data, n) = views(k, |i| st.ro(i));
            engine.gen_pq(&data[..n], st.rw(k), st.rw(k + 1)).unwrap();
        });
        let st = s.clone();
        cases.add(
            &name,
            "pq_update",
            format!("k={k}"),
            block,
            block,
            move || {
                let update = [BlockUpdate {
                    position: 0,
                    old: st.ro(0),
                    new: st.ro(k + 4),
                }];
                engine
                    .update_pq(k, &update, st.rw(k), st.rw(k + 1))
                    .unwrap();
            },
        );
        if k >= 2 {
            let st = s.clone();
            cases.add(
                &name,
                "recover_2data",
                format!("k={k}"),
                block,
                k * block,
                move || {
                    let (mut blocks, n) = views(k + 2, |i| st.rw(i));
                    engine.recover_raid6(&mut blocks[..n], &[0, 1]).unwrap();
                },
            );
        }
        for m in [2, 3, 4] {
            let codec = Codec::with_engine(k, m, engine).unwrap();
            let st = s.clone();
            cases.add(
                &name,
                "encode",
                format!("{k}+{m}"),
                block,
                k * block,
                move || {
                    let (data, n) = views(k, |i| st.ro(i));
                    let (mut parity, pn) = views(m, |r| st.rw(k + r));
                    codec.encode(&data[..n], &mut parity[..pn]).unwrap();
                },
            );
            let codec = Codec::with_engine(k, m, engine).unwrap();
            let st = s.clone();
            let lost: Vec<usize> = (0..m.min(k)).collect();
            cases.add(
                &name,
                "decode",
                format!("{k}+{m}"),
                block,
                k * block,
                move || {
                    let (mut blocks, n) = views(k + m, |i| st.rw(i));
                    codec.reconstruct(&mut blocks[..n], &lost).unwrap();
                },
            );
        }
    }
}

#[cfg(have_isal)]
fn add_isal(cases: &mut Cases, k: usize, block: usize, rng: &mut Rng) {
    use raidkit_testkit::isal;

    let s = Stripe::new(k + 4, block, rng);
    // Cross-check once: ISA-L's P and Q equal ours on this data.
    {
        let (data, n) = views(k, |i| s.ro(i));
        let (mut p, mut q) = (vec![0u8; block], vec![0u8; block]);
        Engine::best().gen_pq(&data[..n], &mut p, &mut q).unwrap();
        let mut ptrs = s.ptrs[..k + 2].to_vec();
        // SAFETY: page-aligned blocks of `block` bytes; P and Q overlap no data block.
        assert_eq!(unsafe { isal::pq(&mut ptrs, block) }, 0);
        assert!(
            s.ro(k) == &p[..] && s.ro(k + 1) == &q[..],
            "ISA-L P/Q differ from raidkit"
        );
    }
    for variant in [isal::Variant::Dispatched, isal::Variant::Avx2] {
        add_isal_variant(cases, variant, &s, k, block);
    }
}

/// ISA-L's xor_gen, pq_gen and ec_encode_data (encode with its Cauchy rows; decode of the
/// first m data blocks from the k survivors with cached tables) in one variant.
#[cfg(have_isal)]
fn add_isal_variant(
    cases: &mut Cases,
    variant: raidkit_testkit::isal::Variant,
    s: &Stripe,
    k: usize,
    block: usize,
) {
    use raidkit::parity::matrix;
    use raidkit_testkit::isal;

    let name = variant.label();
    let st = s.clone();
    cases.add(name, "p", format!("k={k}"), block, k * block, move || {
        let mut ptrs = [std::ptr::null_mut(); 32];
        ptrs[..k + 1].copy_from_slice(&st.ptrs[..k + 1]);
        // SAFETY: page-aligned blocks of `block` bytes; the output overlaps no source.
        black_box(unsafe { isal::xor_variant(variant, &mut ptrs[..k + 1], block) });
    });
    let st = s.clone();
    cases.add(name, "pq", format!("k={k}"), block, k * block, move || {
        let mut ptrs = [std::ptr::null_mut(); 32];
        ptrs[..k + 2].copy_from_slice(&st.ptrs[..k + 2]);
        // SAFETY: as above.
        black_box(unsafe { isal::pq_variant(variant, &mut ptrs[..k + 2], block) });
    });
    for m in [2, 3, 4] {
        let mut tables = isal::tables(k, m, &isal::cauchy_rows(k, m));
        let st = s.clone();
        cases.add(
            name,
            "encode",
            format!("{k}+{m}"),
            block,
            k * block,
            move || {
                let mut data = [std::ptr::null_mut(); 32];
                let mut coding = [std::ptr::null_mut(); 4];
                data[..k].copy_from_slice(&st.ptrs[..k]);
                coding[..m].copy_from_slice(&st.ptrs[k..k + m]);
                // SAFETY: as above; coding blocks follow the data blocks.
                unsafe {
                    isal::encode_variant(
                        variant,
                        block,
                        &mut tables,
                        &mut data[..k],
                        &mut coding[..m],
                    )
                };
            },
        );
        if m > k {
            continue;
        }
        let rows = isal::cauchy_rows(k, m);
        let a = |r: usize, c: usize| rows[r * k + c];
        let square: Vec<Vec<u8>> = (0..m).map(|r| (0..m).map(|c| a(r, c)).collect()).collect();
        let inverse = matrix::invert(&square).expect("Cauchy submatrix is invertible");
        // D_lost = inv · (P_rows ⊕ A[rows][surviving]·D_surviving)
        let mut decode = Vec::with_capacity(m * k);
        for inv_row in &inverse {
            for j in m..k {
                let mut c = 0;
                for (t, &x) in inv_row.iter().enumerate() {
                    c ^= raidkit::parity::gf::mul(x, a(t, j));
                }
                decode.push(c);
            }
            decode.extend_from_slice(inv_row);
        }
        let mut tables = isal::tables(k, m, &decode);
        let st = s.clone();
        cases.add(
            name,
            "decode",
            format!("{k}+{m}"),
            block,
            k * block,
            move || {
                let mut srcs = [std::ptr::null_mut(); 32];
                let mut outs = [std::ptr::null_mut(); 4];
                srcs[..k - m].copy_from_slice(&st.ptrs[m..k]);
                srcs[k - m..k].copy_from_slice(&st.ptrs[k..k + m]);
                outs[..m].copy_from_slice(&st.ptrs[..m]);
                // SAFETY: as above; outputs (data 0..m) overlap no source.
                unsafe {
                    isal::encode_variant(
                        variant,
                        block,
                        &mut tables,
                        &mut srcs[..k],
                        &mut outs[..m],
                    )
                };
            },
        );
    }
}

#[cfg(not(have_isal))]
fn add_isal(_: &mut Cases, _: usize, _: usize, _: &mut Rng) {}

fn add_crates(cases: &mut Cases, k: usize, block: usize, rng: &mut Rng) {
    use reed_solomon_erasure::galois_8::ReedSolomon;
    use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

    for m in [2, 3, 4] {
        let s = Stripe::new(k + m, block, rng);
        let rs = ReedSolomon::new(k, m).unwrap();
        let st = s.clone();
        cases.add(
            "reed-solomon-erasure",
            "encode",
            format!("{k}+{m}"),
            block,
            k * block,
            move || {
                let (data, n) = views(k, |i| st.ro(i));
                let (mut parity, pn) = views(m, |r| st.rw(k + r));
                rs.encode_sep(&data[..n], &mut parity[..pn]).unwrap();
            },
        );
        if m <= k {
            let rs = ReedSolomon::new(k, m).unwrap();
            let st = s.clone();
            cases.add(
                "reed-solomon-erasure",
                "decode",
                format!("{k}+{m}"),
                block,
                k * block,
                move || {
                    let mut shards: Vec<(&mut [u8], bool)> =
                        (0..k + m).map(|i| (st.rw(i), i >= m)).collect();
                    rs.reconstruct_data(&mut shards).unwrap();
                    black_box(&shards);
                },
            );
        }
        // reed-solomon-simd copies shards into its own work buffers; the parity is copied
        // out to caller buffers, as ISA-L and raidkit write them there.
        if block.is_multiple_of(2) {
            let st = s.clone();
            let mut encoder = ReedSolomonEncoder::new(k, m, block).unwrap();
            cases.add(
                "reed-solomon-simd",
                "encode",
                format!("{k}+{m}"),
                block,
                k * block,
                move || {
                    for i in 0..k {
                        encoder.add_original_shard(st.ro(i)).unwrap();
                    }
                    let result = encoder.encode().unwrap();
                    for (r, shard) in result.recovery_iter().enumerate() {
                        st.rw(k + r).copy_from_slice(shard);
                    }
                },
            );
            if m <= k {
                let st = s.clone();
                let mut decoder = ReedSolomonDecoder::new(k, m, block).unwrap();
                cases.add(
                    "reed-solomon-simd",
                    "decode",
                    format!("{k}+{m}"),
                    block,
                    k * block,
                    move || {
                        for i in m..k {
                            decoder.add_original_shard(i, st.ro(i)).unwrap();
                        }
                        for r in 0..m {
                            decoder.add_recovery_shard(r, st.ro(k + r)).unwrap();
                        }
                        let result = decoder.decode().unwrap();
                        for (i, shard) in result.restored_original_iter() {
                            st.rw(i).copy_from_slice(shard);
                        }
                    },
                );
            }
        }
    }
}

fn calibrate(case: &mut Case, min_time: Duration) {
    for _ in 0..3 {
        (case.run)();
    }
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            (case.run)();
        }
        let elapsed = start.elapsed();
        if elapsed >= min_time / 4 {
            let per = elapsed.as_secs_f64() / iters as f64;
            case.iters = ((min_time.as_secs_f64() / per).ceil() as u64).max(1);
            return;
        }
        iters *= 2;
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let o = options();
    let mut cases = Cases {
        list: Vec::new(),
        filter: o.filter.clone(),
    };
    let mut rng = Rng::new(2026);
    for &block in &o.blocks {
        for &k in &o.ks {
            add_raidkit(&mut cases, k, block, &mut rng);
            add_isal(&mut cases, k, block, &mut rng);
            add_crates(&mut cases, k, block, &mut rng);
        }
    }
    if !cfg!(have_isal) {
        eprintln!("note: libisal-dev is not installed; ISA-L is left out of this run");
    }
    let mut list = cases.list;
    eprintln!("calibrating {} cases ...", list.len());
    for case in &mut list {
        calibrate(case, o.min_time);
    }
    for round in 0..o.reps {
        for case in &mut list {
            for _ in 0..3 {
                (case.run)();
            }
            let start = Instant::now();
            for _ in 0..case.iters {
                (case.run)();
            }
            let per = start.elapsed().as_secs_f64() / case.iters as f64;
            case.gbps.push(case.bytes / per / 1e9);
        }
        eprintln!("round {}/{} done", round + 1, o.reps);
    }
    report(&list, o.raw);
}

fn report(list: &[Case], raw: bool) {
    println!("GB/s of data (best / median of interleaved reps), single thread");
    println!(
        "{:<26} {:<14} {:>7} {:>8} {:>9} {:>9}",
        "implementation", "op", "geom", "block", "best", "median"
    );
    let mut isal: BTreeMap<(String, String, String, usize), f64> = BTreeMap::new();
    for c in list
        .iter()
        .filter(|c| c.implementation.starts_with("ISA-L"))
    {
        let key = (
            c.implementation.clone(),
            c.op.clone(),
            c.geometry.clone(),
            c.block,
        );
        isal.insert(key, median(&c.gbps));
    }
    for c in list {
        let best = c.gbps.iter().cloned().fold(0.0, f64::max);
        let med = median(&c.gbps);
        // raidkit's AVX2 engine is compared with ISA-L's AVX2 code, the rest with ISA-L's
        // own dispatch (AVX-512 where the CPU has it).
        let against = if c.implementation == "raidkit avx2" {
            "ISA-L avx2"
        } else {
            "ISA-L"
        };
        let key = (
            against.to_string(),
            c.op.clone(),
            c.geometry.clone(),
            c.block,
        );
        let ratio = isal
            .get(&key)
            .filter(|_| !c.implementation.starts_with("ISA-L"))
            .map(|i| format!("  {:.2}x {against} (median)", med / i))
            .unwrap_or_default();
        println!(
            "{:<26} {:<14} {:>7} {:>8} {:>9.2} {:>9.2}{ratio}",
            c.implementation, c.op, c.geometry, c.block, best, med
        );
        if raw {
            println!(
                "RAW\t{}\t{}\t{}\t{}\t{:?}",
                c.implementation, c.op, c.geometry, c.block, c.gbps
            );
        }
    }
}
