//! Criterion benches of the parity engine: every operation × engine × k ∈ {4, 8, 12} × block
//! ∈ {4 KiB, 64 KiB, 1 MiB}, throughput in bytes of data processed (k × block; the changed
//! block for `pq_update`), with `reed-solomon-erasure`, `reed-solomon-simd` and (when
//! `libisal-dev` is installed) ISA-L in the same run. `benches/versus.rs` interleaves the
//! implementations for fairer ratios on a noisy machine.
//!
//! `cargo bench --bench parity -- 'pq/'` runs one group; `RAIDKIT_BENCH_QUICK=1` measures
//! 64 KiB blocks only.

use std::time::Duration;

use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use raidkit::parity::{BlockUpdate, Codec, Engine};
use raidkit_testkit::{Arena, Rng};

const KS: [usize; 3] = [4, 8, 12];

fn blocks() -> Vec<usize> {
    if std::env::var_os("RAIDKIT_BENCH_QUICK").is_some() {
        vec![64 << 10]
    } else {
        vec![4 << 10, 64 << 10, 1 << 20]
    }
}

fn random_arena(count: usize, block: usize, seed: u64) -> Arena {
    let mut rng = Rng::new(seed);
    let mut arena = Arena::new(count, block, 0);
    for i in 0..count {
        rng.fill(arena.block_mut(i));
    }
    arena
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(400));
    g
}

fn id(engine: &str, k: usize, block: usize) -> BenchmarkId {
    BenchmarkId::new(engine, format!("k={k}/{}K", block >> 10))
}

fn raidkit_ops(c: &mut Criterion) {
    for (name, op) in [("p", 0), ("pq", 1), ("pq_update", 2), ("recover_2data", 3)] {
        let mut g = group(c, name);
        for block in blocks() {
            for k in KS {
                g.throughput(Throughput::Bytes(
                    if op == 2 { block } else { k * block } as u64
                ));
                for kind in Engine::supported() {
                    let engine = Engine::new(kind).expect("supported");
                    let mut arena = random_arena(k + 3, block, k as u64);
                    g.bench_function(id(kind.name(), k, block), |b| match op {
                        0 => {
                            let (data, mut out) = arena.split(k);
                            b.iter(|| engine.gen_p(&data, out[0]).unwrap());
                        }
                        1 => {
                            let (data, mut out) = arena.split(k);
                            let (p, q) = out.split_at_mut(1);
                            b.iter(|| engine.gen_pq(&data, p[0], q[0]).unwrap());
                        }
                        2 => {
                            let (data, mut out) = arena.split(k);
                            let (pq, new) = out.split_at_mut(2);
                            let (p, q) = pq.split_at_mut(1);
                            let update = [BlockUpdate {
                                position: 0,
                                old: data[0],
                                new: new[0],
                            }];
                            b.iter(|| engine.update_pq(k, &update, p[0], q[0]).unwrap());
                        }
                        _ => {
                            let mut all = arena.all_mut();
                            all.truncate(k + 2);
                            b.iter(|| engine.recover_raid6(&mut all, &[0, 1]).unwrap());
                        }
                    });
                }
            }
        }
        g.finish();
    }
}

fn kplusm(c: &mut Criterion) {
    for decode in [false, true] {
        let mut g = group(c, if decode { "decode" } else { "encode" });
        for block in blocks() {
            for k in KS {
                g.throughput(Throughput::Bytes((k * block) as u64));
                for m in [2, 3, 4] {
                    let label = |name: &str| {
                        BenchmarkId::new(format!("{name}/{k}+{m}"), format!("{}K", block >> 10))
                    };
                    for kind in Engine::supported() {
                        let codec = Codec::with_engine(k, m, Engine::new(kind).unwrap()).unwrap();
                        let mut arena = random_arena(k + m, block, (k * m) as u64);
                        g.bench_function(label(&format!("raidkit-{kind}")), |b| {
                            if decode {
                                let mut all = arena.all_mut();
                                let lost: Vec<usize> = (0..m).collect();
                                b.iter(|| codec.reconstruct(&mut all, &lost).unwrap());
                            } else {
                                let (data, mut parity) = arena.split(k);
                                b.iter(|| codec.encode(&data, &mut parity).unwrap());
                            }
                        });
                    }
                    rs_erasure(&mut g, label("reed-solomon-erasure"), k, m, block, decode);
                    if block % 2 == 0 {
                        rs_simd(&mut g, label("reed-solomon-simd"), k, m, block, decode);
                    }
                    #[cfg(have_isal)]
                    isal_case(&mut g, label("isa-l"), k, m, block, decode);
                }
            }
        }
        g.finish();
    }
}

fn rs_erasure(
    g: &mut Group<'_>,
    label: BenchmarkId,
    k: usize,
    m: usize,
    block: usize,
    decode: bool,
) {
    use reed_solomon_erasure::galois_8::ReedSolomon;
    let rs = ReedSolomon::new(k, m).unwrap();
    let mut arena = random_arena(k + m, block, 7);
    g.bench_function(label, |b| {
        if decode {
            let mut shards: Vec<(&mut [u8], bool)> =
                arena.all_mut().into_iter().map(|s| (s, true)).collect();
            b.iter(|| {
                for (i, shard) in shards.iter_mut().enumerate() {
                    shard.1 = i >= m;
                }
                rs.reconstruct_data(&mut shards).unwrap();
            });
        } else {
            let (data, mut parity) = arena.split(k);
            b.iter(|| rs.encode_sep(&data, &mut parity).unwrap());
        }
    });
}

fn rs_simd(g: &mut Group<'_>, label: BenchmarkId, k: usize, m: usize, block: usize, decode: bool) {
    use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
    let mut arena = random_arena(k + m, block, 8);
    g.bench_function(label, |b| {
        let (data, mut parity) = arena.split(k);
        let mut encoder = ReedSolomonEncoder::new(k, m, block).unwrap();
        let mut encode = |data: &[&[u8]], parity: &mut [&mut [u8]]| {
            for d in data {
                encoder.add_original_shard(d).unwrap();
            }
            let result = encoder.encode().unwrap();
            for (out, shard) in parity.iter_mut().zip(result.recovery_iter()) {
                out.copy_from_slice(shard);
            }
        };
        if decode {
            encode(&data, &mut parity);
            let mut decoder = ReedSolomonDecoder::new(k, m, block).unwrap();
            let mut restored = vec![vec![0u8; block]; m];
            b.iter(|| {
                for (i, d) in data.iter().enumerate().skip(m) {
                    decoder.add_original_shard(i, d).unwrap();
                }
                for (r, p) in parity.iter().enumerate() {
                    decoder.add_recovery_shard(r, &**p).unwrap();
                }
                let result = decoder.decode().unwrap();
                for (i, shard) in result.restored_original_iter() {
                    restored[i].copy_from_slice(shard);
                }
            });
        } else {
            b.iter(|| encode(&data, &mut parity));
        }
    });
}

#[cfg(have_isal)]
fn isal_case(
    g: &mut Group<'_>,
    label: BenchmarkId,
    k: usize,
    m: usize,
    block: usize,
    decode: bool,
) {
    use raidkit_testkit::isal;
    // Decoding m blocks from k survivors is the same ec_encode_data call with other
    // coefficients, so both use ISA-L's Cauchy rows; only the source set differs.
    let mut tables = isal::tables(k, m, &isal::cauchy_rows(k, m));
    let mut arena = random_arena(k + m, block, 9);
    let ptrs = arena.pointers();
    let (mut srcs, mut outs): (Vec<*mut u8>, Vec<*mut u8>) = if decode {
        (ptrs[m..k + m].to_vec(), ptrs[..m].to_vec())
    } else {
        (ptrs[..k].to_vec(), ptrs[k..].to_vec())
    };
    g.bench_function(label, |b| {
        // SAFETY: page-aligned arena blocks of `block` bytes; outputs overlap no source.
        b.iter(|| unsafe { isal::encode(block, &mut tables, &mut srcs, &mut outs) });
    });
}

fn isal_raid(c: &mut Criterion) {
    #[cfg(have_isal)]
    {
        use raidkit_testkit::isal;
        for (name, q) in [("p", false), ("pq", true)] {
            let mut g = group(c, name);
            for block in blocks() {
                for k in KS {
                    g.throughput(Throughput::Bytes((k * block) as u64));
                    let mut arena = random_arena(k + 2, block, 10);
                    let mut ptrs = arena.pointers();
                    ptrs.truncate(if q { k + 2 } else { k + 1 });
                    g.bench_function(id("isa-l", k, block), |b| {
                        // SAFETY: page-aligned arena blocks; outputs are the last blocks.
                        b.iter(|| unsafe {
                            if q {
                                isal::pq(&mut ptrs, block)
                            } else {
                                isal::xor(&mut ptrs, block)
                            }
                        });
                    });
                }
            }
            g.finish();
        }
    }
    #[cfg(not(have_isal))]
    {
        let _ = c;
        eprintln!("note: libisal-dev is not installed; ISA-L is left out of this run");
    }
}

criterion_group!(benches, raidkit_ops, isal_raid, kplusm);
criterion_main!(benches);
