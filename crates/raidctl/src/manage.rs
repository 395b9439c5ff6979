//! `raidctl fail`, `raidctl add`, `raidctl remove`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use raidkit::array;

use crate::members::{Members, assemble, check_paths};

#[derive(Args, Debug)]
pub struct FailArgs {
    /// The member to mark faulty (as named among the members).
    #[arg(long)]
    member: PathBuf,
    #[command(flatten)]
    members: Members,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The hot spare to add.
    #[arg(long)]
    spare: PathBuf,
    /// Overwrite a spare that holds a raidkit superblock.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    members: Members,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The faulty member or spare to remove.
    #[arg(long)]
    member: PathBuf,
    #[command(flatten)]
    members: Members,
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

pub fn fail(args: FailArgs) -> Result<()> {
    let array = assemble(&args.members.members)?;
    array.fail_member(&member_name(&args.member, &args.members.members))?;
    eprintln!(
        "raidctl: {} marked faulty; the array is {}",
        args.member.display(),
        array.status().state.name()
    );
    array.close()?;
    Ok(())
}

pub fn add(args: AddArgs) -> Result<()> {
    check_paths(std::slice::from_ref(&args.spare))?;
    // The spare must not be one of the members under another name.
    let mut all = args.members.members.clone();
    all.push(args.spare.clone());
    array::check_distinct(&all)?;
    let array = assemble(&args.members.members)?;
    let mut spare = array::open_members(std::slice::from_ref(&args.spare))?;
    array.add_spare(spare.remove(0), args.force)?;
    eprintln!("raidctl: {} added as a spare", args.spare.display());
    array.close()?;
    Ok(())
}

pub fn remove(args: RemoveArgs) -> Result<()> {
    let array = assemble(&args.members.members)?;
    array.remove_member(&member_name(&args.member, &args.members.members))?;
    eprintln!("raidctl: {} removed", args.member.display());
    array.close()?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct ResyncArgs {
    #[command(flatten)]
    members: Members,
}

pub fn resync(args: ResyncArgs) -> Result<()> {
    let array = assemble(&args.members.members)?;
    if !array.status().unclean_start {
        eprintln!("raidctl: the array was closed cleanly; nothing to resync");
        array.close()?;
        return Ok(());
    }
    let progress = crate::progress::Progress::new("resync", array.regions().data_size);
    let report = array.resync(&|done, _| progress.set(done))?;
    progress.finish();
    eprintln!(
        "raidctl: resynced {} stripes: {} rows consistent, {} restored from redundancy, {} recomputed from the data",
        report.stripes, report.consistent_rows, report.restored_rows, report.recomputed_rows
    );
    array.close()?;
    Ok(())
}
