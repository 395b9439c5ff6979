//! The array against the raw aggregate of its member files, in one run.
//!
//! ```text
//! cargo bench --bench array -- [--dir /dev/shm] [--member-mib 256] [--secs 2] [--reps 3]
//!                              [--chunk-kib 512] [--only 'RAID-6 seq write']
//!                              [--threads N] [--request-stripes 1] [--no-bitmap]
//!                              [--table-cache-kib 65536]
//! ```
//!
//! Six member files in `--dir` (tmpfs by default, as in `shared/anchors/io`). Raw: six
//! threads, one per file, `pwrite`/`pread` of 1 MiB sequentially or 4 KiB at random (the
//! fio `tmpfs6` workloads), each file opened exactly as the array opens its members
//! (`disk::open`: `O_DIRECT` where the file system supports it, tmpfs included on recent
//! kernels). Array: RAID-5 and RAID-6 over the same six files, one caller
//! thread issuing full-stripe sequential requests (`--request-stripes`, default 1; the array spreads member I/O over its
//! pool), and 4 KiB random requests from 1 and from 4 caller threads. Sequential reads run
//! with and without checksum verification. A scrub, and a rebuild of one failed member onto
//! a seventh (spare, written through with zeros first) file, are compared with the raw sequential read rate: the scrub's
//! member bytes read per second against the raw aggregate, the rebuild's bytes of the
//! rebuilt member per second against the raw rate of one file (aggregate / 6). Every
//! figure is the median of `--reps` repetitions; workloads are interleaved across
//! repetitions.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use raidkit::array::{
    Array, ArrayOptions, Consistency, CreateOptions, RebuildOptions, ScrubOptions,
};
use raidkit::disk::{self, AlignedBuf, Disk, FileDisk, FileMode};
use raidkit::layout::Level;
use raidkit_testkit::Rng;

const MEMBERS: usize = 6;

struct Args {
    dir: PathBuf,
    member: u64,
    secs: f64,
    reps: usize,
    chunk: u64,
    only: Option<String>,
    threads: Option<usize>,
    stripes: u64,
    consistency: Consistency,
    table_cache: u64,
}

fn args() -> Args {
    let mut out = Args {
        dir: PathBuf::from("/dev/shm"),
        member: 256 << 20,
        secs: 2.0,
        reps: 3,
        chunk: 512 << 10,
        only: None,
        threads: None,
        stripes: 1,
        consistency: Consistency::Journal,
        table_cache: raidkit::array::DEFAULT_TABLE_CACHE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--dir" => out.dir = PathBuf::from(value()),
            "--member-mib" => out.member = value().parse::<u64>().unwrap() << 20,
            "--secs" => out.secs = value().parse().unwrap(),
            "--reps" => out.reps = value().parse().unwrap(),
            "--chunk-kib" => out.chunk = value().parse::<u64>().unwrap() << 10,
            "--only" => out.only = Some(value()),
            "--threads" => out.threads = Some(value().parse().unwrap()),
            "--request-stripes" => out.stripes = value().parse().unwrap(),
            "--no-bitmap" => out.consistency = Consistency::None,
            "--table-cache-kib" => out.table_cache = value().parse::<u64>().unwrap() << 10,
            "--consistency" => out.consistency = value().parse().unwrap(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    out
}

fn files(dir: &Path, tag: &str, size: u64) -> Vec<PathBuf> {
    (0..MEMBERS)
        .map(|i| {
            let path = dir.join(format!("raidkit-bench-{tag}-{i}.img"));
            let _ = std::fs::remove_file(&path);
            std::fs::File::create(&path).unwrap().set_len(size).unwrap();
            path
        })
        .collect()
}

fn open(paths: &[PathBuf]) -> Vec<Box<dyn Disk>> {
    paths
        .iter()
        .map(|p| Box::new(disk::open(p).unwrap()) as Box<dyn Disk>)
        .collect()
}

/// Raw: one thread per file. Returns MB/s (sequential) or IOPS (random).
fn raw(paths: &[PathBuf], write: bool, random: bool, secs: f64) -> f64 {
    let block = if random { 4096 } else { 1 << 20 };
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let done: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(i, path)| {
                scope.spawn(move || {
                    // Opened as the array opens its members (O_DIRECT where supported).
                    let disk = disk::open(path).unwrap();
                    let mut buf = AlignedBuf::new(block);
                    Rng::new(i as u64).fill(&mut buf);
                    let blocks = disk.len() / block as u64;
                    let mut rng = Rng::new(100 + i as u64);
                    let mut n = 0u64;
                    while start.elapsed() < deadline {
                        let at = if random {
                            rng.below(blocks as usize) as u64
                        } else {
                            n % blocks
                        } * block as u64;
                        if write {
                            disk.write_at(&buf, at).unwrap();
                        } else {
                            disk.read_at(&mut buf, at).unwrap();
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if random {
        done as f64 / elapsed
    } else {
        (done * block as u64) as f64 / elapsed / 1e6
    }
}

fn seq(array: &Array, write: bool, stripes: u64, secs: f64) -> f64 {
    let request = (stripes * array.layout().stripe_data()) as usize;
    // Page-aligned, as a program doing large I/O would use: members opened with O_DIRECT
    // (tmpfs supports it on recent kernels) then need no bounce copies.
    let mut buf = AlignedBuf::new(request);
    Rng::new(1).fill(&mut buf);
    let requests = array.len() as usize / request;
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < secs {
        let at = ((n % requests) * request) as u64;
        if write {
            array.write_at(&buf, at).unwrap();
        } else {
            array.read_at(&mut buf, at).unwrap();
        }
        n += 1;
    }
    (n * request) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn random(array: &Array, write: bool, threads: usize, secs: f64) -> f64 {
    let blocks = array.len() as usize / 4096;
    let start = Instant::now();
    let done: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut rng = Rng::new(t as u64 + 7);
                    let mut buf = AlignedBuf::new(4096);
                    rng.fill(&mut buf);
                    let mut n = 0;
                    while start.elapsed().as_secs_f64() < secs {
                        let at = (rng.below(blocks) * 4096) as u64;
                        if write {
                            array.write_at(&buf, at).unwrap();
                        } else {
                            array.read_at(&mut buf, at).unwrap();
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    done as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = args();
    let raw_paths = files(&args.dir, "raw", args.member);
    // Fill the raw files once so reads do not hit holes.
    raw(&raw_paths, true, false, 0.5);
    for p in &raw_paths {
        let disk = FileDisk::open(p, FileMode::Buffered).unwrap();
        let buf = vec![1u8; 1 << 20];
        for i in 0..disk.len() >> 20 {
            disk.write_at(&buf, i << 20).unwrap();
        }
    }
    let names = [
        "raw seq write MB/s",
        "raw seq read MB/s",
        "raw rand write IOPS",
        "raw rand read IOPS",
    ];
    let mut raw_results: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let levels = [("RAID-5", 1usize), ("RAID-6", 2usize)];
    let array_names = [
        "seq write MB/s",
        "seq read MB/s",
        "seq read, no verify MB/s",
        "rand write 4K IOPS, 1 thread",
        "rand read 4K IOPS, 1 thread",
        "rand write 4K IOPS, 4 threads",
        "rand read 4K IOPS, 4 threads",
        "scrub MB/s of member data",
        "rebuild MB/s of the member",
    ];
    let mut array_results: Vec<Vec<Vec<f64>>> =
        vec![vec![Vec::new(); array_names.len()]; levels.len()];
    for rep in 0..args.reps {
        eprintln!("repetition {} of {}", rep + 1, args.reps);
        let wanted = |name: &str| args.only.as_ref().is_none_or(|o| name.contains(o.as_str()));
        let measure = |list: &mut Vec<f64>, name: &str, f: &mut dyn FnMut() -> f64| {
            list.push(if wanted(name) { f() } else { f64::NAN });
        };
        for (i, (write, random)) in [(true, false), (false, false), (true, true), (false, true)]
            .into_iter()
            .enumerate()
        {
            measure(&mut raw_results[i], names[i], &mut || {
                raw(&raw_paths, write, random, args.secs)
            });
        }
        for (l, (name, m)) in levels.iter().enumerate() {
            let paths = files(&args.dir, name, args.member);
            let array_options = ArrayOptions {
                threads: args.threads,
                table_cache: args.table_cache,
                ..ArrayOptions::default()
            };
            let options = CreateOptions::new(Level::Parity { m: *m })
                .consistency(args.consistency)
                .chunk(args.chunk)
                .array_options(array_options.clone());
            let array = Array::create(open(&paths), &options).unwrap();
            // One untimed pass, so that tmpfs pages exist (as for the raw files).
            let stripe = array.layout().stripe_data() as usize;
            let fill = vec![3u8; 4 * stripe];
            for at in (0..array.len() as usize).step_by(fill.len()) {
                let len = fill.len().min(array.len() as usize - at);
                array.write_at(&fill[..len], at as u64).unwrap();
            }
            let r = &mut array_results[l];
            let label = |i: usize| format!("{name} {}", array_names[i]);
            measure(&mut r[0], &label(0), &mut || {
                seq(&array, true, args.stripes, args.secs)
            });
            array.flush().unwrap();
            measure(&mut r[1], &label(1), &mut || {
                seq(&array, false, args.stripes, args.secs)
            });
            measure(&mut r[3], &label(3), &mut || {
                random(&array, true, 1, args.secs)
            });
            measure(&mut r[4], &label(4), &mut || {
                random(&array, false, 1, args.secs)
            });
            measure(&mut r[5], &label(5), &mut || {
                random(&array, true, 4, args.secs)
            });
            measure(&mut r[6], &label(6), &mut || {
                random(&array, false, 4, args.secs)
            });
            measure(&mut r[7], &label(7), &mut || {
                let started = Instant::now();
                let report = array
                    .scrub(ScrubOptions::default(), &AtomicBool::new(false), &|_| {})
                    .unwrap();
                report.bytes as f64 / started.elapsed().as_secs_f64() / 1e6
            });
            array.close().unwrap();
            let unverified = ArrayOptions {
                verify_reads: false,
                ..array_options
            };
            let array = Array::assemble(open(&paths), &unverified).unwrap();
            measure(&mut r[2], &label(2), &mut || {
                seq(&array, false, args.stripes, args.secs)
            });
            drop(array);
            let array = Array::assemble(open(&paths), &array_options).unwrap();
            let spare = args.dir.join(format!("raidkit-bench-{name}-spare.img"));
            let _ = std::fs::remove_file(&spare);
            // Written through once (zeros), like the raw files: a fresh sparse tmpfs file
            // would time page allocation, which a disk does not have.
            {
                let file = std::fs::File::create(&spare).unwrap();
                let zeros = vec![0u8; 1 << 20];
                for i in 0..args.member >> 20 {
                    std::os::unix::fs::FileExt::write_all_at(&file, &zeros, i << 20).unwrap();
                }
                file.sync_all().unwrap();
            }
            measure(&mut r[8], &label(8), &mut || {
                array.fail_member(&paths[1].display().to_string()).unwrap();
                array
                    .add_spare(Box::new(disk::open(&spare).unwrap()), false)
                    .unwrap();
                let started = Instant::now();
                let reports = array
                    .rebuild(&RebuildOptions::default(), &AtomicBool::new(false), &|_| {})
                    .unwrap();
                reports[0].bytes as f64 / started.elapsed().as_secs_f64() / 1e6
            });
            drop(array);
            for p in paths.iter().chain([&spare]) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    for p in &raw_paths {
        let _ = std::fs::remove_file(p);
    }
    let raw_m: Vec<f64> = raw_results.into_iter().map(median).collect();
    println!(
        "\nraw aggregate of {MEMBERS} files in {} ({} MiB each), median of {}:",
        args.dir.display(),
        args.member >> 20,
        args.reps
    );
    for (name, value) in names.iter().zip(&raw_m) {
        println!("  {name:<28} {value:>12.0}");
    }
    for (l, (name, m)) in levels.iter().enumerate() {
        let k = MEMBERS - m;
        let scale = k as f64 / MEMBERS as f64;
        let r: Vec<f64> = array_results[l].iter().cloned().map(median).collect();
        println!(
            "\n{name} over {MEMBERS} members (k = {k}), chunk {} KiB:",
            args.chunk >> 10
        );
        for (n, value) in array_names.iter().zip(&r) {
            println!("  {n:<32} {value:>12.0}");
        }
        println!(
            "  seq write vs raw x k/n: {:.2} (target >= 0.70)",
            r[0] / (raw_m[0] * scale)
        );
        println!(
            "  seq read vs raw x k/n:  {:.2} (target >= 0.80)",
            r[1] / (raw_m[1] * scale)
        );
        println!(
            "  checksum verification cost on seq reads: {:.1}% (target < 10%)",
            (1.0 - r[1] / r[2]) * 100.0
        );
        println!(
            "  scrub vs raw seq read: {:.2} (target >= 0.90)",
            r[7] / raw_m[1]
        );
        println!(
            "  rebuild vs raw seq read of one file: {:.2} (target >= 0.90)",
            r[8] / (raw_m[1] / MEMBERS as f64)
        );
    }
}
