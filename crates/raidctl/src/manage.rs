//! `raidctl fail`, `add`, `remove`, `resync`, `rebuild`, `replace`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use raidkit::array::{self, Array, ReAddKind, RebuildOptions, RebuildReport};

use crate::Outcome;
use crate::members::{Members, check_paths};
use crate::progress::Progress;
use crate::size::parse_size;

#[derive(Args, Debug)]
pub struct FailArgs {
    /// The member to mark faulty (as named among the members).
    #[arg(long)]
    pub(crate) member: PathBuf,
    /// Do not start rebuilding onto a hot spare.
    #[arg(long)]
    pub(crate) no_rebuild: bool,
    #[command(flatten)]
    pub(crate) rate: RateArgs,
    #[command(flatten)]
    pub(crate) members: Members,
}

/// How fast a rebuild may go.
#[derive(Args, Debug)]
pub struct RateArgs {
    /// Rebuild at most this many bytes per second of each member (K, M, G suffixes): the
    /// same meaning as scrub's --rate.
    #[arg(long, value_parser = parse_size)]
    pub(crate) rate: Option<usize>,
}

impl RateArgs {
    /// The rate given, bytes per second of each member.
    pub(crate) fn rate(&self) -> Option<usize> {
        self.rate
    }

    fn options(&self) -> RebuildOptions {
        RebuildOptions {
            rate: self.rate.map(|r| r as u64),
            ..RebuildOptions::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub(crate) rate: RateArgs,
    #[command(flatten)]
    pub(crate) members: Members,
}

#[derive(Args, Debug)]
pub struct ReplaceArgs {
    /// The member to replace (active: hot replace; failed: rebuild onto the new disk).
    #[arg(long)]
    pub(crate) old: PathBuf,
    /// The new disk: a blank (all-zero) file or device, at least the member size (one
    /// that holds a raidkit superblock needs --force).
    #[arg(long)]
    pub(crate) new: PathBuf,
    #[command(flatten)]
    pub(crate) rate: RateArgs,
    #[command(flatten)]
    pub(crate) members: Members,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The hot spare to add (one that holds a raidkit superblock needs --force).
    #[arg(long)]
    pub(crate) spare: PathBuf,
    #[command(flatten)]
    pub(crate) members: Members,
}

#[derive(Args, Debug)]
pub struct ReAddArgs {
    /// The member to bring back (failed, stale or left out while the others were written).
    #[arg(long)]
    pub(crate) member: PathBuf,
    /// Print what was done as JSON on standard output (bytes_resynced among it).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) rate: RateArgs,
    #[command(flatten)]
    pub(crate) members: Members,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The faulty member or spare to remove.
    #[arg(long)]
    pub(crate) member: PathBuf,
    /// Then erase its superblocks and health record (like mdadm --zero-superblock), so no
    /// command takes it for a member again; its data is left.
    #[arg(long)]
    pub(crate) wipe: bool,
    #[command(flatten)]
    pub(crate) members: Members,
}

/// The name under which the array knows `member`: the member path given that is the same
/// file (so `./a.img` and `a.img` both work), else `member` as given.
fn member_name(member: &Path, members: &[PathBuf]) -> String {
    let same = |p: &PathBuf| match (std::fs::canonicalize(p), std::fs::canonicalize(member)) {
        (Ok(a), Ok(b)) => a == b,
        _ => p == member,
    };
    members
        .iter()
        .find(|p| same(p))
        .unwrap_or(&member.to_path_buf())
        .display()
        .to_string()
}

pub fn fail(args: FailArgs) -> Result<Outcome> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return Ok(outcome);
    }
    let array = args.members.open()?;
    let name = member_name(&args.member, &args.members.paths()?);
    if !args.members.force {
        array
            .check_fail(&name)
            .map_err(|e| anyhow::anyhow!("{e}; --force to fail it anyway"))?;
    }
    array.fail_member(&name)?;
    eprintln!(
        "raidctl: {} marked faulty; the array is {}",
        args.member.display(),
        array.status().state.name()
    );
    let outcome = if !args.no_rebuild && array.needs_rebuild() {
        eprintln!("raidctl: a hot spare is present: rebuilding onto it");
        run_rebuild(&array, &args.rate.options())?
    } else {
        Outcome::Ok
    };
    crate::members::close(array)?;
    Ok(outcome)
}

/// Runs every rebuild the array has work for, with a progress bar, and prints the reports.
fn run_rebuild(array: &Array, options: &RebuildOptions) -> Result<Outcome> {
    let progress = Progress::new("rebuild", array.regions().data_size);
    let reports = array.rebuild(options, crate::interrupted(), &|p| progress.update(p))?;
    progress.finish();
    Ok(print_reports(&reports))
}

fn print_reports(reports: &[RebuildReport]) -> Outcome {
    let mut outcome = Outcome::Ok;
    for r in reports {
        let what = match &r.replaced {
            Some(old) => format!("replaced {old} with {}", r.member),
            None => format!("rebuilt role {} onto {}", r.role, r.member),
        };
        let resumed = if r.resumed_from > 0 {
            format!(" (continued from {} MiB)", r.resumed_from >> 20)
        } else {
            String::new()
        };
        if r.cancelled {
            eprintln!(
                "raidctl: interrupted: {what}: {} MiB done this run{resumed}; run raidctl rebuild to continue",
                r.bytes >> 20
            );
            outcome = Outcome::Interrupted;
            continue;
        }
        let skipped = if r.skipped > 0 {
            format!(
                " ({} MiB of it never written since create: nothing to copy)",
                r.skipped >> 20
            )
        } else {
            String::new()
        };
        eprintln!(
            "raidctl: {what}: {} MiB{resumed}{skipped}; {} damaged blocks of other members repaired",
            r.bytes >> 20,
            r.repaired
        );
        for lost in &r.lost {
            let array = lost
                .array_offset
                .map(|a| format!("array bytes {a}..{}", a + lost.len))
                .unwrap_or_else(|| "parity".to_string());
            eprintln!(
                "raidctl: lost (no redundancy left to rebuild it): {} member bytes {}..{} ({array}); listed in its bad-block log, reads of it fail",
                r.member,
                lost.member_offset,
                lost.member_offset + lost.len
            );
        }
        if !r.lost.is_empty() && !matches!(outcome, Outcome::Interrupted) {
            outcome = Outcome::Unrecoverable;
        }
    }
    outcome
}

pub fn rebuild(args: RebuildArgs) -> Result<Outcome> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return Ok(outcome);
    }
    let array = args.members.open()?;
    if !array.needs_rebuild() {
        let status = array.status();
        let open: Vec<String> = status
            .members
            .iter()
            .filter(|m| m.role.is_some() && m.state != array::MemberState::Active)
            .filter(|m| m.state != array::MemberState::Rebuilding)
            .map(|m| format!("role {} ({})", m.role.unwrap_or(0), m.name))
            .collect();
        crate::members::close(array)?;
        if open.is_empty() {
            eprintln!("raidctl: every role has an active member; nothing to rebuild");
            return Ok(Outcome::Ok);
        }
        bail!(
            "{} need(s) a rebuild but there is no hot spare (add one with raidctl add --spare PATH, or use raidctl replace --old PATH --new PATH)",
            open.join(", ")
        );
    }
    let outcome = run_rebuild(&array, &args.rate.options())?;
    crate::members::close(array)?;
    Ok(outcome)
}

pub fn replace(args: ReplaceArgs) -> Result<Outcome> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return Ok(outcome);
    }
    check_paths(std::slice::from_ref(&args.new))?;
    if !args.old.exists() {
        bail!(
            "{}: cannot open --old (to rebuild a member that is gone, add the new disk with raidctl add --spare and run raidctl rebuild)",
            args.old.display()
        );
    }
    // The old member is one of the array's; the new disk must not be.
    let mut members = args.members.paths()?;
    let old = member_name(&args.old, &members);
    if !members.iter().any(|p| p.display().to_string() == old) {
        members.push(args.old.clone());
    }
    let mut all = members.clone();
    all.push(args.new.clone());
    array::check_distinct(&all)?;
    let array = args.members.open_with(&members)?;
    let mut new =
        array::open_members(std::slice::from_ref(&args.new)).map_err(crate::members::in_use)?;
    let progress = Progress::new("replace", array.regions().data_size);
    let report = array.replace(
        &old,
        new.remove(0),
        args.members.force,
        &args.rate.options(),
        crate::interrupted(),
        &|p| progress.update(p),
    )?;
    progress.finish();
    let outcome = print_reports(std::slice::from_ref(&report));
    crate::members::close(array)?;
    Ok(outcome)
}

pub fn add(args: AddArgs) -> Result<()> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return crate::control::exit_with(outcome);
    }
    check_paths(std::slice::from_ref(&args.spare))?;
    // The spare must not be one of the members under another name.
    let mut all = args.members.paths()?;
    all.push(args.spare.clone());
    array::check_distinct(&all)?;
    let array = args.members.open()?;
    let mut spare =
        array::open_members(std::slice::from_ref(&args.spare)).map_err(crate::members::in_use)?;
    array.add_spare(spare.remove(0), args.members.force)?;
    eprintln!("raidctl: {} added as a spare", args.spare.display());
    crate::members::close(array)?;
    Ok(())
}

pub fn re_add(args: ReAddArgs) -> Result<Outcome> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return Ok(outcome);
    }
    check_paths(std::slice::from_ref(&args.member))?;
    let mut members = args.members.paths()?;
    let name = member_name(&args.member, &members);
    if !members.iter().any(|p| p.display().to_string() == name) {
        members.push(args.member.clone());
    }
    array::check_distinct(&members)?;
    let array = args.members.open_with(&members)?;
    let progress = Progress::new("re-add", array.regions().data_size);
    let report = array.re_add(&name, &args.rate.options(), crate::interrupted(), &|p| {
        progress.update(p)
    })?;
    progress.finish();
    let since = match report.kind {
        ReAddKind::Partial { since } => Some(since),
        _ => None,
    };
    if args.json {
        let value = serde_json::json!({
            "member": report.member,
            "role": report.role,
            "resync": report.kind.name(),
            "since_event": since,
            "bytes_resynced": report.bytes,
            "member_bytes": report.member_bytes,
            "lost_bytes": report.lost_bytes,
            "cancelled": report.cancelled,
            "was_active": report.was_active,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    let of = |bytes: u64| {
        format!(
            "{} of {} MiB ({:.2}%)",
            mib(bytes),
            report.member_bytes >> 20,
            100.0 * bytes as f64 / report.member_bytes.max(1) as f64
        )
    };
    let what = match report.kind {
        ReAddKind::Current => "it missed no write; nothing to resync".to_string(),
        ReAddKind::Partial { since } => format!(
            "partial resync of {} (only the regions written since event {since})",
            of(report.bytes)
        ),
        ReAddKind::Full => format!(
            "full rebuild, {} (what it missed could not be known)",
            of(report.bytes)
        ),
    };
    let mut outcome = Outcome::Ok;
    if report.was_active && report.bytes == 0 {
        eprintln!(
            "raidctl: {} is already active in role {}; nothing to do",
            report.member, report.role
        );
    } else if report.cancelled {
        eprintln!(
            "raidctl: interrupted: {} re-added to role {} but not yet rebuilt: {what}; run raidctl rebuild to continue",
            report.member, report.role
        );
        outcome = Outcome::Interrupted;
    } else {
        eprintln!(
            "raidctl: {} re-added to role {}: {what}",
            report.member, report.role
        );
    }
    if report.lost_bytes > 0 {
        eprintln!(
            "raidctl: {} MiB could not be rebuilt onto it (more blocks lost than the redundancy); their reads fail, naming the range",
            mib(report.lost_bytes)
        );
        outcome = Outcome::Unrecoverable;
    }
    crate::members::close(array)?;
    Ok(outcome)
}

/// Bytes in MiB with two decimals.
fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1u64 << 20) as f64)
}

pub fn remove(args: RemoveArgs) -> Result<()> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return crate::control::exit_with(outcome);
    }
    let array = args.members.open()?;
    array.remove_member(&member_name(&args.member, &args.members.paths()?))?;
    eprintln!("raidctl: {} removed", args.member.display());
    crate::members::close(array)?;
    if args.wipe {
        // Out of the array and released: now it may be opened (and locked) on its own.
        let disk = raidkit::disk::open(&args.member)
            .map_err(|e| crate::members::in_use(raidkit::ArrayError::Disk(e)))?;
        raidkit::meta::wipe_member(&disk).map_err(|e| {
            anyhow::anyhow!(
                "{}: removed, but its superblocks could not be erased: {e}",
                args.member.display()
            )
        })?;
        eprintln!(
            "raidctl: {}: superblocks erased; it is no longer a raidkit member",
            args.member.display()
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ResyncArgs {
    #[command(flatten)]
    pub(crate) members: Members,
}

pub fn resync(args: ResyncArgs) -> Result<()> {
    let array = args.members.open()?;
    let status = array.status();
    let behind: u64 = status.members.iter().filter_map(|m| m.behind_stripes).sum();
    if !status.unclean_start {
        if behind == 0 {
            eprintln!("raidctl: the array was closed cleanly; nothing to resync");
            crate::members::close(array)?;
            return Ok(());
        }
        let progress = crate::progress::Progress::new("resync", behind * status.chunk);
        let report = array.catch_up(&|done, _| progress.set(done * status.chunk))?;
        progress.finish();
        print_catch_up(&report);
        crate::members::close(array)?;
        return check_caught_up(&report);
    }
    let progress = crate::progress::Progress::new("resync", array.regions().data_size);
    let report = array.resync(&|done, _| progress.set(done))?;
    progress.finish();
    eprintln!(
        "raidctl: resynced {} stripes: {} rows consistent, {} restored from redundancy, {} recomputed from the data, {} left lost (unreadable or in a bad-block log)",
        report.stripes,
        report.consistent_rows,
        report.restored_rows,
        report.recomputed_rows,
        report.lost_rows
    );
    print_catch_up(&report.caught_up);
    crate::members::close(array)?;
    check_caught_up(&report.caught_up)
}

fn print_catch_up(report: &raidkit::array::CatchUpReport) {
    if report.stripes + report.lost_stripes > 0 {
        eprintln!(
            "raidctl: {} member(s) that were behind brought back: {} stripes rebuilt onto them{}",
            report.members,
            report.stripes,
            if report.lost_stripes > 0 {
                format!(
                    ", {} could not be rebuilt (too many blocks lost)",
                    report.lost_stripes
                )
            } else {
                String::new()
            }
        );
    }
}

fn check_caught_up(report: &raidkit::array::CatchUpReport) -> Result<()> {
    if report.lost_stripes > 0 {
        anyhow::bail!(
            "{} stripe(s) could not be rebuilt onto a member that is behind (more blocks lost than the redundancy); their reads fail, naming the range",
            report.lost_stripes
        );
    }
    Ok(())
}
