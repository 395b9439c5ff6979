//! `raidctl scan`: the arrays on some files, folders and block devices, grouped by array.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use raidkit::format::uuid_string;
use raidkit::scan::{FoundArray, FoundDisk, FoundStanding, ScanReport};
use serde_json::{Value, json};

use crate::report::{level_json, level_name};

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files, folders (searched one level deep) and block devices to look at; none: every
    /// block device.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print the arrays found as JSON on standard output.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ScanArgs) -> Result<()> {
    for path in &args.paths {
        if !path.exists() {
            bail!("{}: cannot open", path.display());
        }
    }
    let report = raidkit::scan::scan(&args.paths);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&scan_json(&report))?);
    } else {
        print_text(&report);
    }
    for u in &report.unreadable {
        eprintln!(
            "raidctl: {}: not readable as a member: {}",
            u.path.display(),
            u.why
        );
    }
    if report.arrays.is_empty() {
        eprintln!(
            "raidctl: no raidkit array found ({} path{} looked at)",
            report.looked_at,
            if report.looked_at == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The slot word for a disk found: active, behind, faulty, rebuilding, spare, former.
fn slot_word(disk: &FoundDisk) -> &'static str {
    match disk.standing {
        FoundStanding::Role { state, .. } => state.name(),
        FoundStanding::Spare => "spare",
        FoundStanding::Former => "former",
    }
}

fn role_of(disk: &FoundDisk) -> Option<usize> {
    match disk.standing {
        FoundStanding::Role { role, .. } => Some(role),
        _ => None,
    }
}

fn print_text(report: &ScanReport) {
    for (i, a) in report.arrays.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let sb = &a.newest;
        let name = if a.name().is_empty() {
            "(no name)"
        } else {
            a.name()
        };
        println!("array {name} ({})", uuid_string(&a.uuid));
        println!(
            "  {} (k = {}, m = {}, chunk {} KiB), {} roles: {} found, {}, {}, event {}",
            level_name(a.level()),
            sb.k,
            sb.m,
            sb.chunk >> 10,
            a.members(),
            a.found_roles(),
            a.state(),
            if a.dirty() {
                "not closed cleanly"
            } else {
                "clean"
            },
            sb.event
        );
        let mut disks: Vec<&FoundDisk> = a.disks.iter().collect();
        disks.sort_by_key(|d| (role_of(d).unwrap_or(usize::MAX), d.path.clone()));
        for d in disks {
            let role = role_of(d).map_or(" ".repeat(7), |r| format!("role {r:<2}"));
            let event = if d.event == sb.event {
                String::new()
            } else {
                format!(" (event {})", d.event)
            };
            println!(
                "  {role}  {:<10}  {}{event}",
                slot_word(d),
                d.path.display()
            );
        }
        for &role in &a.missing {
            println!(
                "  role {role:<2}  {:<10}  member {} not found",
                "missing",
                uuid_string(&sb.slots[role].uuid)
            );
        }
    }
}

fn array_json(a: &FoundArray) -> Value {
    let sb = &a.newest;
    json!({
        "name": a.name(),
        "uuid": uuid_string(&a.uuid),
        "level": level_json(a.level()),
        "k": sb.k,
        "m": sb.m,
        "chunk": sb.chunk,
        "members": a.members(),
        "found": a.found_roles(),
        "state": a.state(),
        "dirty": a.dirty(),
        "event": sb.event,
        "disks": a.disks.iter().map(|d| json!({
            "path": d.path.display().to_string(),
            "member_uuid": uuid_string(&d.member_uuid),
            "role": role_of(d),
            "slot": slot_word(d),
            "event": d.event,
        })).collect::<Vec<_>>(),
        "missing": a.missing.iter().map(|&role| json!({
            "role": role,
            "member_uuid": uuid_string(&sb.slots[role].uuid),
        })).collect::<Vec<_>>(),
    })
}

fn scan_json(report: &ScanReport) -> Value {
    json!({
        "arrays": report.arrays.iter().map(array_json).collect::<Vec<_>>(),
        "unreadable": report.unreadable.iter().map(|u| json!({
            "path": u.path.display().to_string(),
            "error": u.why,
        })).collect::<Vec<_>>(),
        "looked_at": report.looked_at,
    })
}
