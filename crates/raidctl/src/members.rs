//! Opening the members named on the command line.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use raidkit::array::{self, Access, Array, ArrayOptions};

/// The members of an array, in any order, or where to find them.
#[derive(Args, Debug)]
pub struct Members {
    /// Member files or block devices, in any order.
    #[arg(value_name = "MEMBER", required_unless_present_any = ["scan", "socket"])]
    pub members: Vec<PathBuf>,
    /// Use every member of the array found on these files, folders (one level deep) and
    /// block devices (none given: every block device) instead of a list, so no member is
    /// left out by mistake; former members found there are left out.
    #[arg(long, value_name = "PATH", num_args = 0.., conflicts_with = "members")]
    pub scan: Option<Vec<PathBuf>>,
    /// With --scan, the array to use when several are found: its name or UUID (or a UUID
    /// prefix of at least 4 hex digits).
    #[arg(long, value_name = "NAME|UUID", requires = "scan")]
    pub array: Option<String>,
    /// Act on the array that a `raidctl serve` serves, through its control socket (found
    /// from the members when not given).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["members", "scan"])]
    pub socket: Option<PathBuf>,
    /// Start an array in bitmap or none mode that was not closed cleanly although members
    /// are missing, accepting the write-hole risk: stripes being written at the crash may
    /// give the missing members' data back wrong. Journal arrays never need it.
    #[arg(long)]
    pub allow_dirty_degraded: bool,
    /// Start the array although some of its active members are not given: they fall
    /// behind at the first write (re-add or rebuild them later). Without it, a command
    /// that may write refuses and names every member missing.
    #[arg(long)]
    pub degraded: bool,
    /// Start the array although its members disagree: when more roles lack an active
    /// member than the redundancy covers, take back the freshest members marked failed
    /// whose superblocks show what they missed, and say which (like mdadm --assemble
    /// --force). Also: fail a member although the array loses its last redundancy; add or
    /// replace with a disk that holds a raidkit superblock.
    #[arg(long)]
    pub force: bool,
    /// Memory for checksum-table pages, all members together (K, M, G suffixes): pages are
    /// read from the members as needed and the least recently used are dropped, so memory
    /// does not grow with the array's size [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = crate::size::parse_size)]
    pub table_cache: Option<usize>,
    /// The paths resolved (the scan runs once).
    #[arg(skip)]
    resolved: std::sync::OnceLock<Vec<PathBuf>>,
}

/// Checks the paths (exist, not directories) with one clear error each.
pub fn check_paths(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("{}: cannot open", path.display()))?;
        if meta.is_dir() {
            bail!(
                "{}: is a directory, not a member file or block device",
                path.display()
            );
        }
    }
    Ok(())
}

impl Members {
    /// The options every open shares: the table cache.
    fn base(&self) -> ArrayOptions {
        ArrayOptions {
            table_cache: self
                .table_cache
                .map_or(raidkit::array::DEFAULT_TABLE_CACHE, |b| b as u64),
            ..ArrayOptions::default()
        }
    }

    /// Opens the array these members make, for a command that may write (journal arrays
    /// replay their journal first). The one way every command opens an array.
    pub fn open(&self) -> Result<Array> {
        self.open_with(&self.paths()?)
    }

    /// The member paths: as given, or what `--scan` found.
    pub fn paths(&self) -> Result<Vec<PathBuf>> {
        if let Some(paths) = self.resolved.get() {
            return Ok(paths.clone());
        }
        if let Some(socket) = &self.socket {
            bail!(
                "--socket {} names a served array's control socket: this command needs the members themselves (stop the server, then give them)",
                socket.display()
            );
        }
        let paths = match &self.scan {
            None if self.array.is_some() => {
                bail!("--array chooses among the arrays --scan finds: give --scan PATH... too")
            }
            None => self.members.clone(),
            Some(places) => scan_paths(places, self.array.as_deref())?,
        };
        Ok(self.resolved.get_or_init(|| paths).clone())
    }

    /// [`Members::open`] over `paths` instead of the members given (a command that adds
    /// one of its own arguments, such as `replace --old`).
    pub fn open_with(&self, paths: &[PathBuf]) -> Result<Array> {
        let options = ArrayOptions {
            allow_dirty_degraded: self.allow_dirty_degraded,
            degraded: self.degraded,
            force: self.force,
            ..self.base()
        };
        assemble_with(paths, &options)
    }

    /// Opens the array for a command that only reads (`read`, a check-only scrub): as its
    /// owner, but nothing about the array changes (no superblock update, no replay);
    /// damaged blocks are still rewritten from redundancy.
    pub fn open_read_only(&self) -> Result<Array> {
        let options = ArrayOptions {
            access: Access::ReadOnly,
            ..self.base()
        };
        assemble_with(&self.paths()?, &options)
    }

    /// Opens the array for a report: beside other reports, never beside an owner, writing
    /// nothing; also when it is dirty and degraded, or failed.
    pub fn open_for_report(&self) -> Result<Array> {
        let options = ArrayOptions {
            allow_dirty_degraded: true,
            allow_failed: true,
            access: Access::Inspect,
            ..self.base()
        };
        assemble_with(&self.paths()?, &options)
    }
}

/// The disks of the one array found on `places` (or the one `which` names): its members
/// and spares, not its former members (named on stderr as they are left out).
fn scan_paths(places: &[PathBuf], which: Option<&str>) -> Result<Vec<PathBuf>> {
    for place in places {
        if !place.exists() {
            bail!("{}: cannot open (given to --scan)", place.display());
        }
    }
    let report = raidkit::scan::scan(places);
    let where_ = if places.is_empty() {
        "the block devices".to_string()
    } else {
        places
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let named = |a: &raidkit::scan::FoundArray| {
        format!("{} ({})", a.name(), raidkit::format::uuid_string(&a.uuid))
    };
    let all: Vec<String> = report.arrays.iter().map(named).collect();
    let chosen: Vec<&raidkit::scan::FoundArray> = report
        .arrays
        .iter()
        .filter(|a| which.is_none_or(|w| a.matches(w)))
        .collect();
    let array = match (chosen.as_slice(), which) {
        ([one], _) => *one,
        ([], None) => bail!("--scan found no raidkit array on {where_}"),
        ([], Some(w)) if all.is_empty() => {
            bail!("--scan found no raidkit array on {where_} (looking for {w})")
        }
        ([], Some(w)) => bail!(
            "--scan found no array named {w} on {where_}; found: {}",
            all.join(", ")
        ),
        (many, _) => bail!(
            "--scan found {} arrays on {where_}: {}; choose one with --array NAME|UUID",
            many.len(),
            many.iter().map(|a| named(a)).collect::<Vec<_>>().join(", ")
        ),
    };
    for disk in array.disks.iter().filter(|d| !d.belongs()) {
        eprintln!(
            "raidctl: --scan: leaving out {} (a former member of {}, event {})",
            disk.path.display(),
            array.name(),
            disk.event
        );
    }
    Ok(array.paths())
}

/// Opens the array that `paths` make, with the default options (the demo).
pub fn open_paths(paths: &[PathBuf]) -> Result<Array> {
    assemble_with(paths, &ArrayOptions::default())
}

/// Opens the array that `paths` make only to read it (the demo's last check).
pub fn open_paths_read_only(paths: &[PathBuf]) -> Result<Array> {
    let options = ArrayOptions {
        access: Access::ReadOnly,
        ..ArrayOptions::default()
    };
    assemble_with(paths, &options)
}

fn assemble_with(paths: &[PathBuf], options: &ArrayOptions) -> Result<Array> {
    check_paths(paths)?;
    let disks = if options.access == Access::Inspect {
        array::open_members_shared(paths)
    } else {
        array::open_members(paths)
    }
    .map_err(in_use)?;
    Array::assemble(disks, options).map_err(|e| {
        let hint = match &e {
            raidkit::ArrayError::NotGiven { .. } => {
                " (hint: give every member path, or --degraded to start without them on purpose)"
            }
            raidkit::ArrayError::TooManyMissing { .. } => {
                " (hint: give every member path; `raidctl examine MEMBER` shows each member's array, role and state; stale members need a rebuild, or --force if they are intact and were failed by mistake)"
            }
            raidkit::ArrayError::Superblock { .. } => " (hint: is this file a raidkit member?)",
            raidkit::ArrayError::DirtyDegraded { .. } => {
                " (hint: give the missing members back, or --allow-dirty-degraded)"
            }
            _ => "",
        };
        anyhow::anyhow!("{e}{hint}")
    })
}

/// A member held by another owner: the one line names the array (read from the member
/// without disturbing its owner), the member and, where Linux tells, the holding process.
pub fn in_use(e: raidkit::ArrayError) -> anyhow::Error {
    let raidkit::ArrayError::Disk(raidkit::disk::DiskError::InUse { disk, holder }) = &e else {
        return e.into();
    };
    let array = raidkit::disk::open_read_only(std::path::Path::new(disk))
        .ok()
        .and_then(|d| raidkit::meta::read_superblock(&d).ok())
        .map(|read| {
            let sb = read.superblock;
            format!(
                "array {} ({})",
                sb.name,
                raidkit::format::uuid_string(&sb.array_uuid)
            )
        });
    let by = holder
        .as_ref()
        .map(|h| format!("held by {h}"))
        .unwrap_or_else(|| {
            "held by another array or process (mounted, or open exclusively)".to_string()
        });
    match array {
        Some(array) => anyhow::anyhow!(
            "{array} is in use: {disk} is {by}; an array has one owner at a time (wait for it to finish or stop it)"
        ),
        None => anyhow::anyhow!("{disk} is in use: {by}"),
    }
}

/// One line on standard error per member this open healed or found damage on ("healed 20
/// blocks on disks/e2.img"): healing is never silent.
pub fn report_healing(array: &Array) {
    for m in array.status().members {
        let c = m.this_open;
        let found = c.checksum_errors + c.read_errors;
        if c.repaired > 0 {
            eprintln!(
                "raidctl: healed {} block{} on {}",
                c.repaired,
                plural(c.repaired),
                m.name
            );
        }
        if found > c.repaired {
            eprintln!(
                "raidctl: found {} damaged or unreadable block{} on {} ({} not repaired)",
                found,
                plural(found),
                m.name,
                found - c.repaired
            );
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Says what this command healed or found ([`report_healing`]), then closes the array.
pub fn close(array: Array) -> Result<()> {
    report_healing(&array);
    array.close()?;
    Ok(())
}
