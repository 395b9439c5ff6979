//! `raidctl demo`: the main job with no setup. A RAID-6 array over six loopback files:
//! write random data, damage one member behind the array's back and watch the reads heal
//! it, scrub and repair damaged parity, lose two members and read everything back, replace
//! one lost member with a new file and rebuild the other onto a hot spare, then lose two
//! original members and read everything back again, checking every byte against a SHA-256.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use raidkit::array::{self, Array, CreateOptions, RebuildOptions, ScrubOptions};
use raidkit::disk::AlignedBuf;
use raidkit::layout::Level;
use sha2::{Digest, Sha256};

use crate::progress::Progress;
use crate::report::print_status;
use crate::size::parse_size;

const MEMBERS: usize = 6;
const PIECE: usize = 8 << 20;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Put the member files here (created if needed) instead of a temporary folder.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the member files afterwards.
    #[arg(long)]
    keep: bool,
    /// How much random data to write.
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    size: usize,
}

/// Fast seeded random bytes (SplitMix64): the demo's data, not a security matter.
struct Random(u64);

impl Random {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let bytes = (z ^ (z >> 31)).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn mib_per_s(bytes: u64, started: Instant) -> f64 {
    bytes as f64 / started.elapsed().as_secs_f64().max(1e-9) / (1 << 20) as f64
}

/// Reads the whole array, hashing it; returns the digest and the rate in MiB/s.
fn read_all(array: &Array, len: u64, label: &str) -> Result<([u8; 32], f64)> {
    let progress = Progress::new(label, len);
    let mut buf = AlignedBuf::new(PIECE);
    let mut hash = Sha256::new();
    let started = Instant::now();
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(PIECE as u64) as usize;
        array.read_at(&mut buf[..n], done)?;
        hash.update(&buf[..n]);
        done += n as u64;
        progress.set(done);
    }
    progress.finish();
    Ok((hash.finalize().into(), mib_per_s(len, started)))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inverts the byte at each of `offsets` in the file at `path`, behind the array's back.
fn flip(path: &Path, offsets: impl Iterator<Item = u64>) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    for at in offsets {
        let mut old = [0u8; 1];
        file.read_exact_at(&mut old, at)?;
        file.write_all_at(&[!old[0]], at)?;
    }
    file.sync_all()?;
    Ok(())
}

fn open(paths: &[PathBuf]) -> Result<Array> {
    crate::members::open_paths(paths)
}

pub fn run(args: DemoArgs) -> Result<()> {
    let mut temp = None;
    let dir: PathBuf = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            dir.clone()
        }
        None => {
            let made = tempfile::Builder::new().prefix("raidctl-demo-").tempdir()?;
            let path = made.path().to_path_buf();
            temp = Some(made);
            path
        }
    };
    // The members, then the replacement and the hot spare.
    let paths: Vec<PathBuf> = (0..MEMBERS + 2)
        .map(|i| dir.join(format!("member{i}.img")))
        .collect();
    for path in &paths {
        if path.exists() {
            bail!("{}: already exists; give an empty --dir", path.display());
        }
    }
    let result = demo(&args, &paths);
    if args.keep {
        if let Some(dir) = temp.take() {
            // Keep the temporary folder itself too.
            let _ = dir.keep();
        }
        eprintln!("raidctl: kept the member files in {}", dir.display());
    } else {
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

fn demo(args: &DemoArgs, all: &[PathBuf]) -> Result<()> {
    let (paths, extra) = all.split_at(MEMBERS);
    let data_len = args.size.max(1 << 20) as u64;
    // The smallest members (whole MiB) whose array holds the data.
    let options = CreateOptions::new(Level::Parity { m: 2 }).name("demo");
    let member = options.member_size_for(MEMBERS, data_len)?;
    println!(
        "== raidkit demo: RAID-6 over {MEMBERS} loopback files of {} MiB in {}",
        member >> 20,
        paths[0].parent().unwrap_or(Path::new(".")).display()
    );
    for path in all {
        std::fs::File::create_new(path)?.set_len(member)?;
    }
    let array = Array::create(array::open_members(paths)?, &options)?;
    let len = data_len.min(array.len());

    // 1. Write random data, hashing it.
    println!("\n== 1. writing {} MiB of random data", len >> 20);
    let progress = Progress::new("write", len);
    let mut buf = AlignedBuf::new(PIECE);
    let mut random = Random(0x5eed);
    let mut hash = Sha256::new();
    let started = Instant::now();
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(PIECE as u64) as usize;
        random.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        array.write_at(&buf[..n], done)?;
        done += n as u64;
        progress.set(done);
    }
    array.flush()?;
    progress.finish();
    let write_rate = mib_per_s(len, started);
    let expected: [u8; 32] = hash.finalize().into();
    println!(
        "wrote {} MiB at {write_rate:.0} MiB/s; SHA-256 {}",
        len >> 20,
        hex(&expected)
    );
    print_status(&array.status());
    // 2. Silent corruption on one member, behind the array's back: bytes in blocks that
    // hold data on the victim (reads check and heal what they read), at places the array
    // itself names.
    let victim = 2;
    let mut rng = Random(7);
    let mut data_targets = std::collections::BTreeSet::new();
    let mut byte = [0u8; 8];
    for _ in 0..100_000 {
        if data_targets.len() == 64 {
            break;
        }
        rng.fill(&mut byte);
        let place = array.locate(u64::from_le_bytes(byte) % len)?;
        if place.role == victim {
            data_targets.insert(place.disk_offset / 4096 * 4096 + 100);
        }
    }
    // 2b. Parity blocks are not read by reads: up to eight rows of each of the victim's
    // parity chunks, until sixteen.
    let parity_blocks = 16usize;
    let mut parity_targets = Vec::new();
    let stripe_data = array.layout().stripe_data();
    let chunk = array.layout().chunk();
    'stripes: for stripe_start in (0..len).step_by(stripe_data as usize) {
        for parity in 0..array.layout().m() {
            for row in (0..chunk / 4096).step_by(7).take(8) {
                let place = array.locate_parity(stripe_start + row * 4096, parity)?;
                if place.role != victim {
                    break;
                }
                parity_targets.push(place.disk_offset + 200);
                if parity_targets.len() == parity_blocks {
                    break 'stripes;
                }
            }
        }
    }
    array.close()?;

    let blocks = data_targets.len();
    println!(
        "\n== 2. flipping bytes in {blocks} blocks of {} (silent corruption)",
        paths[victim].display()
    );
    flip(&paths[victim], data_targets.iter().copied())?;
    let array = open(paths)?;
    let (digest, read_rate) = read_all(&array, len, "verify")?;
    let status = array.status();
    let healed = &status.members[victim];
    println!(
        "read everything back at {read_rate:.0} MiB/s: {} checksum errors found on {}, {} blocks repaired; SHA-256 {}",
        healed.checksum_errors,
        healed.name,
        healed.repaired,
        if digest == expected {
            "matches"
        } else {
            "DIFFERS"
        }
    );
    if digest != expected {
        bail!("the data read back differs from what was written");
    }
    let healed_blocks = healed.repaired;
    print_status(&status);

    // 2b. Parity blocks are not read by reads: a scrub finds and repairs them.
    println!(
        "\n== 2b. flipping bytes in {} parity blocks of {}, then scrubbing",
        parity_targets.len(),
        paths[victim].display()
    );
    array.close()?;
    flip(&paths[victim], parity_targets.iter().copied())?;
    let array = open(paths)?;
    let progress = Progress::new("scrub", array.regions().data_size);
    let started = Instant::now();
    let report = array.scrub(
        ScrubOptions {
            repair: true,
            restart: true,
            ..ScrubOptions::default()
        },
        &std::sync::atomic::AtomicBool::new(false),
        &|p| progress.update(p),
    )?;
    progress.finish();
    let scrub_rate = mib_per_s(report.bytes, started);
    let scrub_repaired = report.damaged.iter().filter(|d| d.repaired).count();
    println!(
        "scrubbed {} MiB of member data at {scrub_rate:.0} MiB/s: {} damaged blocks found, {scrub_repaired} repaired, {} unrecoverable",
        report.bytes >> 20,
        report.damaged.len(),
        report.unrecoverable.len()
    );
    if report.unrepaired() > 0 || !report.unrecoverable.is_empty() {
        bail!("the scrub could not repair everything");
    }

    // 3. Lose two members.
    println!(
        "\n== 3. failing two members: {} and {}",
        paths[0].display(),
        paths[4].display()
    );
    array.fail_member(&paths[0].display().to_string())?;
    array.fail_member(&paths[4].display().to_string())?;
    let (digest, degraded_rate) = read_all(&array, len, "degraded")?;
    println!(
        "read everything back degraded at {degraded_rate:.0} MiB/s; SHA-256 {}",
        if digest == expected {
            "matches"
        } else {
            "DIFFERS"
        }
    );
    if digest != expected {
        bail!("the data read back degraded differs from what was written");
    }

    // 4. Replace one lost member with a new file; rebuild the other onto a hot spare.
    println!(
        "\n== 4. replacing {} with the blank file {}, and rebuilding {} onto the hot spare {}",
        paths[0].display(),
        extra[0].display(),
        paths[4].display(),
        extra[1].display()
    );
    let never = std::sync::atomic::AtomicBool::new(false);
    let total = array.regions().data_size;
    let started = Instant::now();
    let progress = Progress::new("replace", total);
    let replaced = array.replace(
        &paths[0].display().to_string(),
        Box::new(raidkit::disk::open(&extra[0])?),
        false,
        &RebuildOptions::default(),
        &never,
        &|p| progress.update(p),
    )?;
    progress.finish();
    array.add_spare(Box::new(raidkit::disk::open(&extra[1])?), false)?;
    let progress = Progress::new("rebuild", total);
    let rebuilt = array.rebuild(&RebuildOptions::default(), &never, &|p| progress.update(p))?;
    progress.finish();
    let rebuild_rate = mib_per_s(
        replaced.bytes + rebuilt.iter().map(|r| r.bytes).sum::<u64>(),
        started,
    );
    let lost: usize = rebuilt
        .iter()
        .chain([&replaced])
        .map(|r| r.lost.len())
        .sum();
    println!(
        "rebuilt two members' {} MiB each at {rebuild_rate:.0} MiB/s per member; {lost} ranges lost",
        total >> 20
    );
    print_status(&array.status());
    array.remove_member(&paths[0].display().to_string())?;
    array.remove_member(&paths[4].display().to_string())?;
    array.close()?;
    if lost > 0 {
        bail!("the rebuild lost data");
    }

    // 5. Without two of the original members: everything rests on the rebuilt ones.
    println!(
        "\n== 5. reading back with {} and {} left out: the rebuilt members carry their roles",
        paths[1].display(),
        paths[2].display()
    );
    let present: Vec<PathBuf> = [&extra[0], &paths[3], &extra[1], &paths[5]]
        .into_iter()
        .cloned()
        .collect();
    let array = crate::members::open_paths_read_only(&present)?;
    let (digest, rebuilt_rate) = read_all(&array, len, "verify")?;
    println!(
        "read everything back at {rebuilt_rate:.0} MiB/s; SHA-256 {}",
        if digest == expected {
            "matches"
        } else {
            "DIFFERS"
        }
    );
    array.close()?;
    if digest != expected {
        bail!("the data read back after the rebuild differs from what was written");
    }

    println!("\n== summary");
    println!("  wrote {} MiB at {write_rate:.0} MiB/s", len >> 20);
    println!(
        "  found and healed {healed_blocks} of {blocks} corrupted blocks while reading at {read_rate:.0} MiB/s"
    );
    println!(
        "  scrubbed at {scrub_rate:.0} MiB/s and repaired {scrub_repaired} damaged parity blocks"
    );
    println!("  read with two of six members failed at {degraded_rate:.0} MiB/s");
    println!(
        "  replaced one failed member and rebuilt the other onto a hot spare at {rebuild_rate:.0} MiB/s, then read back without two original members"
    );
    println!("  every byte verified against SHA-256 {}", hex(&expected));
    std::io::stdout().flush()?;
    Ok(())
}
