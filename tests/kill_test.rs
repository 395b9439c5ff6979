//! Real-process crashes (issue 7): a child process writes through the library and reports
//! each flush that returned; it is killed with SIGKILL at a random moment; the array is
//! assembled again (in journal mode that replays the journal; in bitmap mode a resync
//! follows) and checked. Everything written before the last reported flush must be there;
//! each unit written after it holds one of the contents written to it (or the flushed
//! one) — the unit is the 4 KiB block in journal mode and the 512-byte sector in bitmap
//! mode; and the parity agrees with the data (every member can then be left out and every
//! byte reads the same). 50 kills in journal mode and 15 in bitmap mode per run;
//! `RAIDKIT_KILLS=N` sets the journal count (a third of it for bitmap).
//!
//! The child is this test binary itself, run with `RAIDKIT_KILL_CHILD_DIR` set: the
//! `child_writer` test then writes until it is killed (without that variable it returns at
//! once).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use raidkit::array::{self, Array, ArrayOptions, Consistency, CreateOptions};
use raidkit::layout::Level;
use raidkit_testkit::Rng;
use raidkit_testkit::arrays::read_all;

const MEMBERS: usize = 4;
const MEMBER: u64 = 8 << 20;
/// Writes between two flushes in the child.
const PER_FLUSH: u64 = 6;

fn paths(dir: &Path) -> Vec<PathBuf> {
    (0..MEMBERS)
        .map(|i| dir.join(format!("m{i}.img")))
        .collect()
}

/// Write `i` of the child with seed `seed`: (offset, bytes), deterministic.
fn nth_write(seed: u64, i: u64, size: usize) -> (usize, Vec<u8>) {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i));
    let len = 1 + rng.below(3 * 4096);
    let at = rng.below(size - len);
    (at, rng.block(len))
}

#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("RAIDKIT_KILL_CHILD_DIR") else {
        return; // only a child when the parent test runs it
    };
    let seed: u64 = std::env::var("RAIDKIT_KILL_SEED").unwrap().parse().unwrap();
    let array = Array::assemble(
        array::open_members(&paths(Path::new(&dir))).unwrap(),
        &ArrayOptions::default().allow_degraded(),
    )
    .unwrap();
    let size = array.len() as usize;
    let mut out = std::io::stdout();
    for i in 0.. {
        let (at, bytes) = nth_write(seed, i, size);
        array.write_at(&bytes, at as u64).unwrap();
        if (i + 1) % PER_FLUSH == 0 {
            array.flush().unwrap();
            writeln!(out, "flushed {i}").unwrap();
            out.flush().unwrap();
        }
    }
}

fn kills() -> u64 {
    std::env::var("RAIDKIT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_flushed() {
    kill_campaign(Consistency::Journal, kills(), 4096);
}

#[test]
fn sigkill_in_bitmap_mode_keeps_flushed_data_after_a_resync() {
    kill_campaign(Consistency::Bitmap, kills().div_ceil(3), 512);
}

fn kill_campaign(mode: Consistency, kills: u64, unit: usize) {
    // Memory-backed when the machine has /dev/shm: the kills are what is tested, not the
    // disk's flush latency.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let members = paths(dir.path());
    for path in &members {
        std::fs::File::create(path)
            .unwrap()
            .set_len(MEMBER)
            .unwrap();
    }
    let array = Array::create(
        array::open_members(&members).unwrap(),
        &CreateOptions::new(Level::Parity { m: 1 })
            .chunk(64 << 10)
            .consistency(mode),
    )
    .unwrap();
    let size = array.len() as usize;
    let mut base = read_all(&array).unwrap();
    array.close().unwrap();
    let me = std::env::current_exe().unwrap();
    let mut rng = Rng::new(77);
    let mut resynced = 0;
    for kill in 0..kills {
        let mut child = Command::new(&me)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env("RAIDKIT_KILL_CHILD_DIR", dir.path())
            .env("RAIDKIT_KILL_SEED", kill.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it flush at least once, then kill it a random while later.
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut last_flushed: Option<u64> = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.strip_prefix("flushed ") {
                last_flushed = Some(i.trim().parse().unwrap());
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(rng.below(30_000) as u64));
        // SAFETY: kill has no memory-safety preconditions; the pid is our live child's.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(i) = line.strip_prefix("flushed ") {
                last_flushed = Some(i.trim().parse().unwrap());
            }
        }
        let _ = child.wait();
        let last = last_flushed.expect("the child flushed at least once");

        // The model: every write up to the last reported flush; after it, each sector may
        // hold what it had then or anything a later write put there.
        let mut flushed = base.clone();
        for i in 0..=last {
            let (at, bytes) = nth_write(kill, i, size);
            flushed[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        let mut later: Vec<(usize, Vec<u8>)> = Vec::new();
        for i in last + 1..last + 1 + 2 * PER_FLUSH {
            later.push(nth_write(kill, i, size));
        }

        let array = Array::assemble(
            array::open_members(&members).unwrap(),
            &ArrayOptions::default().allow_degraded(),
        )
        .unwrap();
        let status = array.status();
        if mode == Consistency::Journal {
            assert!(
                !status.unclean_start,
                "kill {kill}: a replay needs no resync"
            );
            if status.replay.is_some() {
                resynced += 1;
            }
        } else if status.unclean_start {
            array.resync(&|_, _| {}).unwrap();
            resynced += 1;
        }
        let after = read_all(&array).unwrap();
        for (s, sector) in after.chunks(unit).enumerate() {
            let r = s * unit..s * unit + sector.len();
            // The sector after the flushed state and each prefix of the later writes.
            let mut state = flushed[r.clone()].to_vec();
            let mut ok = sector == &state[..];
            for (at, bytes) in &later {
                if ok {
                    break;
                }
                if r.start < at + bytes.len() && *at < r.end {
                    for (j, byte) in state.iter_mut().enumerate() {
                        let p = r.start + j;
                        if p >= *at && p < at + bytes.len() {
                            *byte = bytes[p - at];
                        }
                    }
                    ok = sector == &state[..];
                }
            }
            assert!(
                ok,
                "{mode:?} kill {kill} (last flush {last}): unit {s} of {unit} bytes holds bytes never written there"
            );
        }
        array.close().unwrap();
        // Parity agrees with the data: without any one member, the same bytes.
        for leave in 0..MEMBERS {
            let rest: Vec<PathBuf> = members
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != leave)
                .map(|(_, p)| p.clone())
                .collect();
            let degraded = Array::assemble(
                array::open_members(&rest).unwrap(),
                &ArrayOptions::default().allow_degraded(),
            )
            .unwrap();
            assert!(
                read_all(&degraded).unwrap() == after,
                "kill {kill}: parity disagrees with the data without member {leave}"
            );
        }
        base = after;
    }
    eprintln!("{mode:?}: {kills} kills, {resynced} unclean starts recovered");
    assert!(
        resynced > kills / 2,
        "most kills should leave the array dirty"
    );
}
