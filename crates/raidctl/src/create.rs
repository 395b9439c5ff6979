//! `raidctl create`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use raidkit::array::{self, Array, ArrayError, CreateOptions};
use raidkit::layout::{DEFAULT_CHUNK, LayoutError, Level};

use crate::members::check_paths;
use crate::progress::Progress;
use crate::size::parse_size;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// RAID level: 1 (mirror), 5 (one parity chunk per stripe) or 6 (two).
    #[arg(long, value_parser = ["1", "5", "6"])]
    level: Option<String>,
    /// Parity chunks per stripe: 3 or 4 make a k+m array (1 and 2 are RAID-5 and RAID-6).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    parity: Option<u8>,
    /// Chunk size: a power of two from 4K to 16M.
    #[arg(long, value_parser = parse_size, default_value = "512K")]
    chunk: usize,
    /// Create member files that do not exist, sparse, of this size.
    #[arg(long, value_parser = parse_size)]
    size: Option<usize>,
    /// The array's name (up to 32 bytes).
    #[arg(long, default_value = "")]
    name: String,
    /// Hot spares to add (repeatable).
    #[arg(long = "spare", value_name = "PATH")]
    spares: Vec<PathBuf>,
    /// Overwrite members that hold a raidkit superblock or a recognisable file system.
    #[arg(long)]
    force: bool,
    /// Crash consistency: `journal` (default for RAID 5/6/k+m: every write logged first,
    /// no write hole), `bitmap` (default for RAID 1: a write-intent bitmap narrows the
    /// resync after a crash) or `none` (after a crash the resync walks every stripe).
    #[arg(long, value_name = "MODE", conflicts_with = "no_bitmap")]
    consistency: Option<raidkit::array::Consistency>,
    /// Same as `--consistency none`.
    #[arg(long)]
    no_bitmap: bool,
    /// Skip the initial sync: the members are known to read as zeros (new sparse files,
    /// zeroed or discarded devices). Checksums and parity of zeros are then right; a
    /// member that holds anything else reads back as damaged there (an error, never its
    /// bytes).
    #[arg(long)]
    assume_clean: bool,
    /// Member files or block devices, in role order.
    #[arg(required = true, value_name = "MEMBER")]
    members: Vec<PathBuf>,
}

/// An error in the arguments that clap could not see (exit code 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn level(args: &CreateArgs) -> Result<Level> {
    let from_level = match args.level.as_deref() {
        Some("1") => Some(Level::Mirror),
        Some("5") => Some(Level::Parity { m: 1 }),
        Some("6") => Some(Level::Parity { m: 2 }),
        _ => None,
    };
    let from_parity = args.parity.map(|m| Level::Parity { m: usize::from(m) });
    match (from_level, from_parity) {
        (Some(a), Some(b)) if a != b => Err(Usage(format!(
            "--level {} and --parity {} disagree (RAID-5 has 1 parity chunk, RAID-6 2, a mirror none)",
            args.level.as_deref().unwrap_or("?"),
            args.parity.unwrap_or(0)
        ))
        .into()),
        (Some(level), _) | (None, Some(level)) => Ok(level),
        (None, None) => Err(Usage("give --level 1|5|6 or --parity 3|4".to_string()).into()),
    }
}

pub fn run(args: CreateArgs) -> Result<()> {
    let level = level(&args)?;
    let options = CreateOptions::new(level)
        .chunk(args.chunk as u64)
        .name(&args.name)
        .force(args.force);
    let options = if args.assume_clean {
        options.sync(raidkit::array::InitialSync::AssumeZero)
    } else {
        options
    };
    let options = match (args.consistency, args.no_bitmap) {
        (Some(mode), _) => options.consistency(mode),
        (None, true) => options.consistency(raidkit::array::Consistency::None),
        (None, false) => options,
    };
    // The library's checks of the options, before any member file is created.
    match options.check(args.members.len(), args.spares.len()) {
        Err(ArrayError::Layout(e @ LayoutError::Chunk { .. })) => {
            return Err(Usage(format!(
                "--chunk {}: {e} (default {}K)",
                args.chunk,
                DEFAULT_CHUNK >> 10
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    // Create missing member files (and remove them again if create fails).
    let mut created = Vec::new();
    let result = (|| {
        for path in args.members.iter().chain(&args.spares) {
            if !path.exists() {
                let Some(size) = args.size else {
                    bail!(
                        "{}: does not exist (hint: --size SIZE creates missing member files)",
                        path.display()
                    );
                };
                let file = std::fs::File::create_new(path)
                    .with_context(|| format!("{}: cannot create", path.display()))?;
                created.push(path.clone());
                file.set_len(size as u64)
                    .with_context(|| format!("{}: cannot set its size", path.display()))?;
            }
        }
        check_paths(&args.members)?;
        check_paths(&args.spares)?;
        let mut all = args.members.clone();
        all.extend(args.spares.iter().cloned());
        let mut disks = array::open_members(&all).map_err(crate::members::in_use)?;
        let spares = disks.split_off(args.members.len());
        let sizes: Vec<u64> = disks.iter().map(|d| d.len()).collect();
        let smallest = sizes.iter().copied().min().unwrap_or(0);
        if sizes.iter().any(|&s| s != smallest) {
            eprintln!(
                "raidctl: members differ in size; using {} bytes ({} MiB) of each, the smallest",
                smallest,
                smallest >> 20
            );
        }
        let progress: std::sync::Mutex<Option<Progress>> = std::sync::Mutex::new(None);
        // The library checks the spares with the members before anything is written.
        let stop = crate::interrupted();
        let array = Array::create_with_spares(disks, spares, &options, &|done, total| {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                // No superblock is written before the sync ends: stopping here leaves
                // members that no array claims, which create takes again as they are.
                for path in &created {
                    let _ = std::fs::remove_file(path);
                }
                eprintln!(
                    "\nraidctl: interrupted: the initial sync did not finish; no array was created (no member holds a superblock yet); run create again"
                );
                std::process::exit(130);
            }
            let mut slot = progress.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_none_or(|p| p.total() != total) {
                *slot = Some(Progress::new("initial sync", total));
            }
            if let Some(p) = slot.as_ref() {
                p.set(done);
            }
        })?;
        if let Some(p) = progress.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            p.finish();
        }
        let status = array.status();
        eprintln!(
            "raidctl: created {} array {} (members: {}, k = {}, m = {}, chunk {} KiB, {} MiB)",
            crate::report::level_name(status.level),
            status.uuid,
            args.members.len(),
            status.k,
            status.m,
            status.chunk >> 10,
            status.size >> 20
        );
        array.close()?;
        Ok(())
    })();
    if result.is_err() {
        for path in &created {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}
