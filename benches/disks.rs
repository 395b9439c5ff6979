//! Member-disk backends next to fio, on the same file, with the same block size, engine and
//! queue depth, interleaved (every workload by fio, then by raidkit, then the next; the
//! whole set repeated), single job, `O_DIRECT`.
//!
//! ```text
//! cargo bench --bench disks -- [--dir DIR] [--size-mib 1024] [--runtime 5] [--reps 3]
//!                               [--only 'rand read Uring'] [--no-fio]
//! ```
//!
//! - `psync qd1`: fio `ioengine=psync`; raidkit `FileDisk` (`O_DIRECT`), one request at a
//!   time.
//! - `io_uring qdN`: fio `ioengine=io_uring iodepth=N`; raidkit `UringDisk` with a ring of
//!   N entries and batches of distinct requests (16·N for 4 KiB, 4·N for 1 MiB) per
//!   `submit`, which streams them with at most N in flight (refilling as completions
//!   arrive), as fio keeps N in flight; the queue drains only at the end of a batch.
//!
//! Without fio on the PATH only raidkit's figures are printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use raidkit::disk::{AlignedBuf, Disk, FileDisk, FileMode, IoRequest, UringDisk};
use raidkit_testkit::Rng;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    Psync,
    Uring(u32),
}

#[derive(Clone, Copy, Debug)]
struct Workload {
    name: &'static str,
    write: bool,
    random: bool,
    block: usize,
    engine: Engine,
}

const WORKLOADS: [Workload; 8] = [
    Workload {
        name: "seq read",
        write: false,
        random: false,
        block: 1 << 20,
        engine: Engine::Psync,
    },
    Workload {
        name: "seq read",
        write: false,
        random: false,
        block: 1 << 20,
        engine: Engine::Uring(16),
    },
    Workload {
        name: "seq write",
        write: true,
        random: false,
        block: 1 << 20,
        engine: Engine::Psync,
    },
    Workload {
        name: "seq write",
        write: true,
        random: false,
        block: 1 << 20,
        engine: Engine::Uring(16),
    },
    Workload {
        name: "rand read",
        write: false,
        random: true,
        block: 4096,
        engine: Engine::Psync,
    },
    Workload {
        name: "rand read",
        write: false,
        random: true,
        block: 4096,
        engine: Engine::Uring(32),
    },
    Workload {
        name: "rand write",
        write: true,
        random: true,
        block: 4096,
        engine: Engine::Psync,
    },
    Workload {
        name: "rand write",
        write: true,
        random: true,
        block: 4096,
        engine: Engine::Uring(32),
    },
];

struct Options {
    dir: PathBuf,
    size: u64,
    runtime: Duration,
    reps: usize,
    only: Option<String>,
    no_fio: bool,
}

fn options() -> Options {
    let mut o = Options {
        dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("disk-bench"),
        size: 1 << 30,
        runtime: Duration::from_secs(5),
        reps: 3,
        only: None,
        no_fio: false,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--dir" => o.dir = PathBuf::from(&pair[1]),
            "--size-mib" => o.size = pair[1].parse::<u64>().unwrap_or(1024) << 20,
            "--runtime" => o.runtime = Duration::from_secs(pair[1].parse().unwrap_or(5)),
            "--reps" => o.reps = pair[1].parse().unwrap_or(3),
            "--only" => o.only = Some(pair[1].clone()),
            _ => {}
        }
    }
    o.no_fio = args.iter().any(|a| a == "--no-fio");
    o
}

/// Writes the whole file once (no holes), like fio's layout pass.
fn prepare(path: &Path, size: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return;
    }
    let _ = std::fs::remove_file(path);
    let disk = FileDisk::create(path, size, FileMode::Direct).expect("create the bench file");
    let mut buf = AlignedBuf::new(1 << 20);
    Rng::new(1).fill(&mut buf);
    let mut offset = 0;
    while offset < size {
        disk.write_at(&buf, offset).expect("lay out the bench file");
        offset += 1 << 20;
    }
    disk.flush().expect("flush the bench file");
}

/// fio's rate for one workload: bytes per second and IOPS.
fn fio(path: &Path, size: u64, w: &Workload, runtime: Duration) -> Option<(f64, f64)> {
    let rw = match (w.random, w.write) {
        (false, false) => "read",
        (false, true) => "write",
        (true, false) => "randread",
        (true, true) => "randwrite",
    };
    let (engine, depth) = match w.engine {
        Engine::Psync => ("psync", 1),
        Engine::Uring(d) => ("io_uring", d),
    };
    let out = Command::new("fio")
        .arg("--name=bench")
        .arg(format!("--filename={}", path.display()))
        .arg(format!("--size={size}"))
        .arg(format!("--rw={rw}"))
        .arg(format!("--bs={}", w.block))
        .arg(format!("--ioengine={engine}"))
        .arg(format!("--iodepth={depth}"))
        .args([
            "--direct=1",
            "--time_based",
            "--ramp_time=1",
            "--randrepeat=0",
        ])
        .args(["--norandommap", "--invalidate=1", "--output-format=json"])
        .arg(format!("--runtime={}", runtime.as_secs()))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("fio failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let side = &json["jobs"][0][if w.write { "write" } else { "read" }];
    Some((side["bw_bytes"].as_f64()?, side["iops"].as_f64()?))
}

/// raidkit's rate for one workload, after a one-second ramp like fio's.
fn raidkit(path: &Path, size: u64, w: &Workload, runtime: Duration, seed: u64) -> (f64, f64) {
    let disk: Box<dyn Disk> = match w.engine {
        Engine::Psync => Box::new(FileDisk::open(path, FileMode::Direct).expect("open")),
        Engine::Uring(depth) => Box::new(UringDisk::open(path, depth).expect("io_uring")),
    };
    let depth = match w.engine {
        Engine::Psync => 1,
        Engine::Uring(d) if w.random => batch_mult(16) * d as usize,
        Engine::Uring(d) => batch_mult(4).min(4) * d as usize,
    };
    let mut bufs: Vec<AlignedBuf> = (0..depth).map(|_| AlignedBuf::new(w.block)).collect();
    let mut rng = Rng::new(seed);
    for buf in &mut bufs {
        rng.fill(buf);
    }
    let blocks = size / w.block as u64;
    let mut next_seq = 0u64;
    let mut run = |until: Instant| -> u64 {
        let mut ops = 0u64;
        while Instant::now() < until {
            // Distinct offsets: requests of one batch must not overlap.
            let mut offsets: Vec<u64> = Vec::with_capacity(depth);
            let mut taken = std::collections::HashSet::with_capacity(depth);
            while offsets.len() < depth {
                let block = if w.random {
                    rng.below(blocks as usize) as u64
                } else {
                    let b = next_seq;
                    next_seq = (next_seq + 1) % blocks;
                    b
                };
                let offset = block * w.block as u64;
                if taken.insert(offset) {
                    offsets.push(offset);
                }
            }
            let mut batch: Vec<IoRequest<'_>> = bufs
                .iter_mut()
                .zip(&offsets)
                .map(|(buf, &offset)| {
                    if w.write {
                        IoRequest::Write { offset, buf }
                    } else {
                        IoRequest::Read { offset, buf }
                    }
                })
                .collect();
            if depth == 1 {
                let result = match batch.pop().expect("one request") {
                    IoRequest::Read { offset, buf } => disk.read_at(buf, offset),
                    IoRequest::Write { offset, buf } => disk.write_at(buf, offset),
                };
                result.expect("bench I/O");
            } else {
                for result in disk.submit(&mut batch) {
                    result.expect("bench I/O");
                }
            }
            ops += depth as u64;
        }
        ops
    };
    run(Instant::now() + Duration::from_secs(1));
    let start = Instant::now();
    let ops = run(start + runtime);
    let secs = start.elapsed().as_secs_f64();
    (ops as f64 * w.block as f64 / secs, ops as f64 / secs)
}

/// Requests per `submit`, in multiples of the queue depth (`RAIDKIT_BENCH_BATCH`
/// overrides the default, for experiments).
fn batch_mult(default: usize) -> usize {
    std::env::var("RAIDKIT_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let o = options();
    std::fs::create_dir_all(&o.dir).expect("bench directory");
    let path = o.dir.join("bench.img");
    prepare(&path, o.size);
    let have_fio = !o.no_fio
        && Command::new("fio")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
    if !have_fio {
        eprintln!("note: fio is not installed (apt-get install fio); printing raidkit only");
    }
    let mut ours: Vec<Vec<(f64, f64)>> = vec![Vec::new(); WORKLOADS.len()];
    let mut theirs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); WORKLOADS.len()];
    for rep in 0..o.reps {
        for (i, w) in WORKLOADS.iter().enumerate() {
            if o.only
                .as_ref()
                .is_some_and(|only| !format!("{} {:?}", w.name, w.engine).contains(only.as_str()))
            {
                continue;
            }
            if have_fio && let Some(r) = fio(&path, o.size, w, o.runtime) {
                theirs[i].push(r);
            }
            ours[i].push(raidkit(&path, o.size, w, o.runtime, (rep * 10 + i) as u64));
        }
        eprintln!("rep {}/{} done", rep + 1, o.reps);
    }
    println!(
        "raidkit vs fio on {}, {} MiB file, O_DIRECT, {} s per run, median of {}",
        o.dir.display(),
        o.size >> 20,
        o.runtime.as_secs(),
        o.reps
    );
    println!(
        "{:<12} {:<12} {:>14} {:>14} {:>8}",
        "workload", "engine", "fio", "raidkit", "ratio"
    );
    for (i, w) in WORKLOADS.iter().enumerate() {
        let engine = match w.engine {
            Engine::Psync => "psync qd1".to_string(),
            Engine::Uring(d) => format!("io_uring qd{d}"),
        };
        // Sequential in MB/s, random in IOPS.
        let pick = |r: &(f64, f64)| if w.random { r.1 } else { r.0 / 1e6 };
        let unit = if w.random { "IOPS" } else { "MB/s" };
        let mut mine: Vec<f64> = ours[i].iter().map(pick).collect();
        if mine.is_empty() {
            continue;
        }
        let m = median(&mut mine);
        let mut fio_rates: Vec<f64> = theirs[i].iter().map(pick).collect();
        let (f, ratio) = if fio_rates.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            let f = median(&mut fio_rates);
            (format!("{f:.0} {unit}"), format!("{:.2}", m / f))
        };
        println!(
            "{:<12} {:<12} {:>14} {:>14} {:>8}",
            w.name,
            engine,
            f,
            format!("{m:.0} {unit}"),
            ratio
        );
    }
}
