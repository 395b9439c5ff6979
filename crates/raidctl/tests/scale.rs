//! Large arrays open in bounded memory: the checksum tables are paged, never loaded whole.
//! Each command's peak memory is measured by the test itself (`wait4`'s resource usage of
//! the child), over members whose tables together are far larger than the cache.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RAIDCTL: &str = env!("CARGO_BIN_EXE_raidctl");

/// What one command did: its output, peak resident memory and wall time.
struct Measured {
    out: std::process::Output,
    peak_mib: u64,
    took: Duration,
}

/// Runs raidctl with `args` (and `input` on stdin), measuring its peak memory.
// The child is reaped by wait4 (for its resource usage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn measured(args: &[&str], input: &[u8]) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(RAIDCTL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raidctl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut { stdout }, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut { stderr }, &mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only into `status` and `usage`, both live for the call; the
    // pid is our own child's, not yet waited for (the Child is never waited on after).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let took = started.elapsed();
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    Measured {
        out: std::process::Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(status),
            stdout,
            stderr,
        },
        // ru_maxrss is in KiB on Linux.
        peak_mib: usage.ru_maxrss as u64 / 1024,
        took,
    }
}

fn ok(m: &Measured, what: &str) {
    assert!(
        m.out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&m.out.stderr)
    );
    eprintln!("{what}: {:?}, peak {} MiB", m.took, m.peak_mib);
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// RAID-6 over six 8 TiB sparse members (issue 17's acceptance): 48 GiB of checksum
/// table in all, 768 times the default cache. `create` writes no table (the members read
/// as zeros), and `create`, `status`, `examine`, a 4 KiB write and read at the far end and
/// a read of unwritten space each take under 2 s with a peak under 128 MiB (a build that
/// loads the tables whole needs 48 GiB), and return what was written.
#[test]
fn a_large_array_opens_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<String> = (0..6)
        .map(|i| dir.path().join(format!("m{i}.img")).display().to_string())
        .collect();
    let with = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|s| s.to_string())
            .chain(members.iter().cloned())
            .collect()
    };
    let create = with(&["create", "--level", "6", "--size", "8T", "--assume-clean"]);
    let create = measured(&args(&create), b"");
    ok(&create, "create");

    let status = measured(&args(&with(&["status", "--json"])), b"");
    ok(&status, "status");
    let value: serde_json::Value = serde_json::from_slice(&status.out.stdout).unwrap();
    let size = value["size"].as_u64().unwrap();
    assert!(size > 31 << 40, "{size}");
    let examine = measured(&["examine", &members[5]], b"");
    ok(&examine, "examine");

    let block: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let far = (size - 4096).to_string();
    let write = measured(&args(&with(&["write", "--offset", &far])), &block);
    ok(&write, "write 4 KiB at the far end");
    let read = measured(
        &args(&with(&["read", "--offset", &far, "--length", "4096"])),
        b"",
    );
    ok(&read, "read 4 KiB at the far end");
    assert!(
        read.out.stdout == block,
        "the far block reads back as written"
    );
    let middle = (size / 2 / 4096 * 4096).to_string();
    let zeros = measured(
        &args(&with(&["read", "--offset", &middle, "--length", "4096"])),
        b"",
    );
    ok(&zeros, "read 4 KiB never written");
    assert!(zeros.out.stdout.iter().all(|b| *b == 0));

    // The same with a cache of 4 KiB: one page per table, still right.
    let small = measured(
        &args(&with(&[
            "read",
            "--table-cache",
            "4K",
            "--offset",
            &far,
            "--length",
            "4096",
        ])),
        b"",
    );
    ok(&small, "read with a 4 KiB table cache");
    assert!(small.out.stdout == block);

    for (what, m) in [
        ("create", &create),
        ("status", &status),
        ("examine", &examine),
        ("write", &write),
        ("read", &read),
        ("read of zeros", &zeros),
        ("read, small cache", &small),
    ] {
        assert!(
            m.peak_mib < 128,
            "{what}: {} MiB at its peak, for 48 GiB of tables",
            m.peak_mib
        );
        // They take milliseconds; loading the tables whole took seconds per TiB.
        assert!(m.took < Duration::from_secs(2), "{what}: {:?}", m.took);
    }
}

/// The rebuild: 256 MiB written scattered over RAID-6 of six 8 TiB sparse files,
/// one member replaced by a new sparse file: the rebuild copies what was written and skips
/// the rest (the data map), in well under a minute; a scrub likewise; every written byte
/// reads back, also without two other members, and unwritten space reads as zeros.
#[test]
fn a_rebuild_of_a_large_array_takes_time_in_proportion_to_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let members: Vec<String> = (0..6).map(|i| path(&format!("m{i}.img"))).collect();
    let with = |first: &[&str], list: &[String]| -> Vec<String> {
        first
            .iter()
            .map(|s| s.to_string())
            .chain(list.iter().cloned())
            .collect()
    };
    ok(
        &measured(
            &args(&with(&["create", "--level", "6", "--size", "8T"], &members)),
            b"",
        ),
        "create",
    );
    let status = measured(&args(&with(&["status", "--json"], &members)), b"");
    let size = serde_json::from_slice::<serde_json::Value>(&status.out.stdout).unwrap()["size"]
        .as_u64()
        .unwrap();
    // 64 pieces of 4 MiB, spread evenly over the array (each in its own region); made
    // when needed, so that this process stays small: a child's peak memory as `wait4`
    // reports it starts from its parent's peak (the address space it had before exec).
    let piece = |i: u64| -> (u64, Vec<u8>) {
        let at = (size / 64 * i + i * 12_345) / 4096 * 4096;
        let bytes = (0..4u64 << 20)
            .map(|b| (b.wrapping_mul(i + 7) >> 3) as u8)
            .collect();
        (at, bytes)
    };
    let started = Instant::now();
    for i in 0..64 {
        let (at, bytes) = piece(i);
        let at = at.to_string();
        let w = measured(&args(&with(&["write", "--offset", &at], &members)), &bytes);
        assert!(
            w.out.status.success(),
            "{}",
            String::from_utf8_lossy(&w.out.stderr)
        );
    }
    eprintln!("256 MiB written in {:?}", started.elapsed());
    let status = measured(&args(&with(&["status", "--json"], &members)), b"");
    let value: serde_json::Value = serde_json::from_slice(&status.out.stdout).unwrap();
    let written = value["data_bytes"].as_u64().unwrap();
    assert!(
        (256 << 20..64 << 30).contains(&written),
        "{written} bytes in written regions"
    );

    let new = path("new.img");
    std::fs::File::create(&new)
        .unwrap()
        .set_len(8 << 40)
        .unwrap();
    let replace = measured(
        &args(&with(
            &["replace", "--old", &members[2], "--new", &new],
            &members,
        )),
        b"",
    );
    ok(&replace, "replace onto a new sparse file");
    assert!(replace.took < Duration::from_secs(60), "{:?}", replace.took);
    assert!(replace.peak_mib < 256, "{} MiB", replace.peak_mib);
    let stderr = String::from_utf8_lossy(&replace.out.stderr);
    assert!(stderr.contains("never written since create"), "{stderr}");
    let mut now = members.clone();
    now[2] = new.clone();
    let scrub = measured(&args(&with(&["scrub"], &now)), b"");
    ok(&scrub, "scrub");
    assert!(scrub.took < Duration::from_secs(60), "{:?}", scrub.took);
    let text = String::from_utf8_lossy(&scrub.out.stdout);
    assert!(text.contains("skipped"), "{text}");

    // Every piece, without two other members (the rebuilt one must carry its share).
    let fewer: Vec<String> = now
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0 && *i != 4)
        .map(|(_, p)| p.clone())
        .collect();
    for i in 0..64 {
        let (at, bytes) = piece(i);
        let at_s = at.to_string();
        let len = bytes.len().to_string();
        let read = measured(
            &args(&with(
                &["read", "--degraded", "--offset", &at_s, "--length", &len],
                &fewer,
            )),
            b"",
        );
        assert!(
            read.out.status.success(),
            "{}",
            String::from_utf8_lossy(&read.out.stderr)
        );
        assert!(read.out.stdout == bytes, "piece at {at} differs");
    }
    let gap = (piece(1).0 - 8192).to_string();
    let zeros = measured(
        &args(&with(
            &["read", "--degraded", "--offset", &gap, "--length", "4096"],
            &fewer,
        )),
        b"",
    );
    assert!(zeros.out.status.success());
    assert!(zeros.out.stdout.iter().all(|b| *b == 0));
}
