//! A quick throughput measurement of the parity engines on this machine, for users
//! (`raidctl bench`). The Criterion benches in `benches/` are the rigorous version.
//!
//! Each case runs single-threaded on cache-warm, page-aligned buffers for a minimum time,
//! three times, and reports the best rate. Rates are GB/s (10^9 bytes per second) of data
//! processed: k × block for whole-stripe operations (for `decode`, the k surviving blocks
//! read), and the one changed block for `pq_update`.

use std::fmt;
use std::time::{Duration, Instant};

use super::{BlockUpdate, Codec, Engine, EngineKind, ParityError};

/// An operation to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BenchOp {
    /// RAID-5 P generation.
    P,
    /// RAID-6 P+Q generation.
    Pq,
    /// RAID-6 read-modify-write of one data block.
    PqUpdate,
    /// RAID-6 recovery of two lost data blocks.
    Recover2Data,
    /// k+m encode.
    Encode,
    /// k+m decode of m lost data blocks.
    Decode,
}

impl BenchOp {
    /// The operation's name in reports: `p`, `pq`, `pq_update`, `recover_2data`, `encode`,
    /// `decode`.
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::P => "p",
            BenchOp::Pq => "pq",
            BenchOp::PqUpdate => "pq_update",
            BenchOp::Recover2Data => "recover_2data",
            BenchOp::Encode => "encode",
            BenchOp::Decode => "decode",
        }
    }
}

impl fmt::Display for BenchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One measured case.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The engine measured.
    pub engine: EngineKind,
    /// The operation.
    pub op: BenchOp,
    /// Data blocks per stripe.
    pub k: usize,
    /// Parity blocks per stripe.
    pub m: usize,
    /// Bytes per block.
    pub block_size: usize,
    /// Best rate, 10^9 bytes of data per second.
    pub gbps: f64,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Engines (unsupported ones are an error).
    pub engines: Vec<EngineKind>,
    /// Data block counts.
    pub ks: Vec<usize>,
    /// Block sizes in bytes.
    pub block_sizes: Vec<usize>,
    /// Minimum time per repetition; three repetitions per case.
    pub min_time: Duration,
}

impl Default for BenchConfig {
    /// Every supported engine, k = 4, 8, 12, 64 KiB blocks, 50 ms per repetition.
    fn default() -> Self {
        BenchConfig {
            engines: Engine::supported(),
            ks: vec![4, 8, 12],
            block_sizes: vec![64 * 1024],
            min_time: Duration::from_millis(50),
        }
    }
}

/// The cases measured for each engine, k and block size: (op, m).
pub const CASES: [(BenchOp, usize); 8] = [
    (BenchOp::P, 1),
    (BenchOp::Pq, 2),
    (BenchOp::PqUpdate, 2),
    (BenchOp::Recover2Data, 2),
    (BenchOp::Encode, 3),
    (BenchOp::Encode, 4),
    (BenchOp::Decode, 3),
    (BenchOp::Decode, 4),
];

/// Runs every case of `config`, calling `progress` after each one.
pub fn run(
    config: &BenchConfig,
    mut progress: impl FnMut(&BenchResult),
) -> Result<Vec<BenchResult>, ParityError> {
    let mut results = Vec::new();
    for &kind in &config.engines {
        let engine = Engine::new(kind)?;
        for &block_size in &config.block_sizes {
            for &k in &config.ks {
                for (op, m) in CASES {
                    let gbps = measure(engine, op, k, m, block_size, config.min_time)?;
                    let result = BenchResult {
                        engine: kind,
                        op,
                        k,
                        m,
                        block_size,
                        gbps,
                    };
                    progress(&result);
                    results.push(result);
                }
            }
        }
    }
    Ok(results)
}

/// Page-aligned blocks, one after another, like a stripe buffer.
struct Blocks {
    buf: Vec<u8>,
    base: usize,
    len: usize,
}

impl Blocks {
    fn new(count: usize, len: usize) -> Blocks {
        let stride = len.div_ceil(4096) * 4096;
        let mut buf = vec![0u8; count * stride + 4096];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for byte in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
        let base = buf.as_ptr().align_offset(4096);
        Blocks { buf, base, len }
    }

    fn split(&mut self, inputs: usize) -> (Vec<&[u8]>, Vec<&mut [u8]>) {
        let stride = self.len.div_ceil(4096) * 4096;
        let (head, tail) = self.buf[self.base..].split_at_mut(inputs * stride);
        let ins = head.chunks(stride).map(|c| &c[..self.len]).collect();
        let outs = tail
            .chunks_mut(stride)
            .filter(|c| c.len() >= self.len)
            .map(|c| &mut c[..self.len])
            .collect();
        (ins, outs)
    }
}

fn time_best(min_time: Duration, mut call: impl FnMut()) -> Duration {
    for _ in 0..3 {
        call();
    }
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed() < min_time || calls == 0 {
            call();
            calls += 1;
        }
        best = best.min(start.elapsed() / calls);
    }
    best
}

fn measure(
    engine: Engine,
    op: BenchOp,
    k: usize,
    m: usize,
    block: usize,
    min_time: Duration,
) -> Result<f64, ParityError> {
    let mut blocks = Blocks::new(k + m + 1, block);
    let per_call = match op {
        BenchOp::P => {
            let (data, mut out) = blocks.split(k);
            let mut result = Ok(());
            let t = time_best(min_time, || result = engine.gen_p(&data, out[0]));
            result?;
            t
        }
        BenchOp::Pq => {
            let (data, mut out) = blocks.split(k);
            let (p, q) = out.split_at_mut(1);
            let mut result = Ok(());
            let t = time_best(min_time, || result = engine.gen_pq(&data, p[0], q[0]));
            result?;
            t
        }
        BenchOp::PqUpdate => {
            // Blocks k and k+1 are P and Q, block k+2 is the new contents of block 0.
            let (data, mut out) = blocks.split(k);
            let (pq, new) = out.split_at_mut(2);
            let (p, q) = pq.split_at_mut(1);
            let update = [BlockUpdate {
                position: 0,
                old: data[0],
                new: &*new[0],
            }];
            let mut result = Ok(());
            let t = time_best(min_time, || {
                result = engine.update_pq(k, &update, p[0], q[0]);
            });
            result?;
            t
        }
        BenchOp::Recover2Data => {
            let mut all = blocks.split(0).1;
            all.truncate(k + 2);
            let lost = [0, k.min(2) - 1];
            let lost = if lost[0] == lost[1] {
                &lost[..1]
            } else {
                &lost[..]
            };
            let mut result = Ok(());
            let t = time_best(min_time, || result = engine.recover_raid6(&mut all, lost));
            result?;
            t
        }
        BenchOp::Encode => {
            let codec = Codec::with_engine(k, m, engine)?;
            let (data, mut parity) = blocks.split(k);
            parity.truncate(m);
            let mut result = Ok(());
            let t = time_best(min_time, || result = codec.encode(&data, &mut parity));
            result?;
            t
        }
        BenchOp::Decode => {
            let codec = Codec::with_engine(k, m, engine)?;
            let mut all = blocks.split(0).1;
            all.truncate(k + m);
            let lost: Vec<usize> = (0..m.min(k)).collect();
            let mut result = Ok(());
            let t = time_best(min_time, || result = codec.reconstruct(&mut all, &lost));
            result?;
            t
        }
    };
    let bytes = match op {
        BenchOp::PqUpdate => block,
        _ => k * block,
    };
    Ok(bytes as f64 / per_call.as_secs_f64().max(1e-12) / 1e9)
}
