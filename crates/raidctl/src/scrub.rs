//! `raidctl scrub`: verify every block and every row's parity; `--repair` rewrites what is
//! wrong. Exit codes: 0 clean or everything repaired, 5 damage found (check mode), 6 damage
//! that cannot be recovered.

use anyhow::Result;
use clap::Args;
use raidkit::array::ScrubOptions;
use serde_json::json;

use crate::Outcome;
use crate::members::Members;
use crate::progress::Progress;
use crate::size::parse_size;

#[derive(Args, Debug)]
pub struct ScrubArgs {
    /// Rewrite damaged blocks (default: only report).
    #[arg(long)]
    pub(crate) repair: bool,
    /// Check at most this many bytes per second of each member (K, M, G suffixes): the same
    /// meaning as rebuild's --rate.
    #[arg(long, value_parser = parse_size)]
    pub(crate) rate: Option<usize>,
    /// Start from the beginning, even when an interrupted scrub left a position.
    #[arg(long)]
    pub(crate) restart: bool,
    /// Print the report as JSON (schema in docs/cli.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(crate) members: Members,
}

pub fn run(args: ScrubArgs) -> Result<Outcome> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return Ok(outcome);
    }
    // A check-only scrub only looks: it changes nothing about the array (no member marked
    // faulty or stale, no event); a repairing one is a writer.
    let array = if args.repair {
        args.members.open()?
    } else {
        args.members.open_read_only()?
    };
    let width = array.layout().members();
    let names: Vec<String> = array
        .status()
        .members
        .iter()
        .filter(|m| {
            m.role.is_some_and(|r| r < width) && m.state != raidkit::array::MemberState::Rebuilding
        })
        .map(|m| m.name.clone())
        .collect();
    let progress = Progress::new(
        if args.repair { "scrub+repair" } else { "scrub" },
        array.regions().data_size,
    );
    let options = ScrubOptions {
        repair: args.repair,
        rate: args.rate.map(|r| r as u64),
        restart: args.restart,
        ..ScrubOptions::default()
    };
    let report = array.scrub(options, crate::interrupted(), &|p| progress.update(p))?;
    progress.finish();
    if report.resumed_from > 0 {
        eprintln!(
            "continued an interrupted scrub from {} MiB of each member's data",
            report.resumed_from >> 20
        );
    }
    let per_member: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(role, path)| {
            let found = report.damaged.iter().filter(|d| d.role == role).count();
            let repaired = report
                .damaged
                .iter()
                .filter(|d| d.role == role && d.repaired)
                .count();
            (role, path, found, repaired)
        })
        .collect();
    if args.json {
        let value = json!({
            "repair": args.repair,
            "stripes": report.stripes,
            "resumed_from": report.resumed_from,
            "cancelled": report.cancelled,
            "bytes": report.bytes,
            "skipped_bytes": report.skipped,
            "members": per_member.iter().map(|(role, path, found, repaired)| json!({
                "role": role, "path": path, "damaged": found, "repaired": repaired,
            })).collect::<Vec<_>>(),
            "damaged": report.damaged.iter().map(|d| json!({
                "role": d.role,
                "path": names.get(d.role),
                "member_offset": d.member_offset,
                "array_offset": d.array_offset,
                "parity": d.parity,
                "found_by": d.found_by,
                "repaired": d.repaired,
            })).collect::<Vec<_>>(),
            "unrecoverable": report.unrecoverable.iter().map(|(offset, end, reason)| json!({
                "offset": offset, "end": end, "reason": reason,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "scrubbed {} stripes ({} MiB of member data){}",
            report.stripes,
            report.bytes >> 20,
            if report.skipped > 0 {
                format!(
                    "; skipped {} MiB never written since create",
                    report.skipped >> 20
                )
            } else {
                String::new()
            }
        );
        for (role, path, found, repaired) in &per_member {
            println!("  {role:>4}  damaged {found:>6}  repaired {repaired:>6}  {path}");
        }
        for d in &report.damaged {
            println!(
                "  damaged: {} member offset {} (array offset {}{}), found by {}{}",
                names.get(d.role).map_or("?", |s| s.as_str()),
                d.member_offset,
                d.array_offset,
                if d.parity { ", parity" } else { "" },
                d.found_by,
                if d.repaired { ", repaired" } else { "" }
            );
        }
        for (offset, end, reason) in &report.unrecoverable {
            println!("  unrecoverable: array bytes {offset}..{end}: {reason}");
        }
    }
    crate::members::close(array)?;
    if report.cancelled {
        eprintln!("raidctl: scrub interrupted; run it again to continue where it stopped");
        return Ok(Outcome::Interrupted);
    }
    Ok(if !report.unrecoverable.is_empty() {
        Outcome::Unrecoverable
    } else if report.unrepaired() > 0 {
        Outcome::DamageFound
    } else {
        Outcome::Ok
    })
}
