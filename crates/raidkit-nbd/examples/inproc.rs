//! The in-process side of the served-vs-in-process comparison: the same access patterns
//! fio's `nbd` engine runs against `raidctl serve`, issued by `depth` threads straight to
//! the library, for `seconds` each. Prints MB/s and IOPS per case.
//!
//! `cargo run --release -p raidkit-nbd --example inproc -- SECONDS DEPTH MEMBER...`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raidkit::Array;
use raidkit::array::ArrayOptions;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4.0);
    let depth: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let paths: Vec<std::path::PathBuf> = args[3..].iter().map(Into::into).collect();
    let disks = raidkit::array::open_members(&paths).expect("open the members");
    let array = Arc::new(Array::assemble(disks, &ArrayOptions::default()).expect("assemble"));
    let size = array.len();
    for (name, write, block, random) in [
        ("write 1M", true, 1u64 << 20, false),
        ("read 1M", false, 1 << 20, false),
        ("randwrite 4k", true, 4096, true),
        ("randread 4k", false, 4096, true),
    ] {
        for threads in [1, depth] {
            let stop = Arc::new(AtomicBool::new(false));
            let bytes = Arc::new(AtomicU64::new(0));
            let ops = Arc::new(AtomicU64::new(0));
            // Sequential: one shared cursor, as one fio job at a queue depth walks.
            let cursor = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (array, stop, bytes, ops, cursor) = (
                        array.clone(),
                        stop.clone(),
                        bytes.clone(),
                        ops.clone(),
                        cursor.clone(),
                    );
                    std::thread::spawn(move || {
                        let mut buf = vec![0x5au8; block as usize];
                        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                        let blocks = size / block;
                        while !stop.load(Ordering::Relaxed) {
                            let index = if random {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                x % blocks
                            } else {
                                cursor.fetch_add(1, Ordering::Relaxed) % blocks
                            };
                            let offset = index * block;
                            if write {
                                array.write_at(&buf, offset).expect("write");
                            } else {
                                array.read_at(&mut buf, offset).expect("read");
                            }
                            bytes.fetch_add(block, Ordering::Relaxed);
                            ops.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs_f64(seconds));
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                w.join().expect("worker");
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "inproc {name} qd{threads}: {:.0} MB/s {:.0} IOPS",
                bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
                ops.load(Ordering::Relaxed) as f64 / secs
            );
        }
    }
    array.flush().expect("flush");
}
