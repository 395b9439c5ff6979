//! `raidctl status` and `raidctl examine`: reports as text or JSON (schemas in
//! `docs/cli.md`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use raidkit::array::{ArrayState, Status};
use raidkit::format::{self, SlotState};
use raidkit::layout::Level;
use serde_json::{Value, json};

use crate::Outcome;
use crate::members::{Members, check_paths};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) members: Members,
}

#[derive(Args, Debug)]
pub struct ExamineArgs {
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    json: bool,
    /// One member file or block device.
    member: PathBuf,
}

/// A level's name in text: RAID-1, RAID-5, RAID-6, k+3, k+4.
pub fn level_name(level: Level) -> String {
    match level {
        Level::Mirror => "RAID-1".to_string(),
        Level::Parity { m: 1 } => "RAID-5".to_string(),
        Level::Parity { m: 2 } => "RAID-6".to_string(),
        Level::Parity { m } => format!("k+{m}"),
    }
}

/// A level's name in JSON: raid1, raid5, raid6, k+3, k+4.
pub fn level_json(level: Level) -> String {
    match level {
        Level::Mirror => "raid1".to_string(),
        Level::Parity { m: 1 } => "raid5".to_string(),
        Level::Parity { m: 2 } => "raid6".to_string(),
        Level::Parity { m } => format!("k+{m}"),
    }
}

pub fn status_json(status: &Status) -> Value {
    json!({
        "uuid": status.uuid,
        "name": status.name,
        "level": level_json(status.level),
        "k": status.k,
        "m": status.m,
        "chunk_size": status.chunk,
        "layout": status.layout,
        "data_offset": status.data_offset,
        "data_size": status.data_size,
        "size": status.size,
        "state": status.state.name(),
        "dirty": status.dirty,
        "unclean_start": status.unclean_start,
        "event": status.event,
        "consistency": status.consistency.name(),
        "bitmap": status.bitmap,
        "replay": status.replay.as_ref().map(|r| json!({
            "replayed": r.replayed,
            "incomplete": r.incomplete,
            "parts": r.parts,
        })),
        "resync_stripes": status.resync_stripes,
        "members": status.members.iter().map(|m| json!({
            "path": m.name,
            "role": m.role,
            "state": member_state(m),
            "behind_stripes": m.behind_stripes,
            "uuid": m.uuid,
            "read_errors": m.read_errors,
            "write_errors": m.write_errors,
            "checksum_errors": m.checksum_errors,
            "repaired": m.repaired,
            "this_open": json!({
                "read_errors": m.this_open.read_errors,
                "write_errors": m.this_open.write_errors,
                "checksum_errors": m.this_open.checksum_errors,
                "repaired": m.this_open.repaired,
            }),
            "bad_blocks": m.bad_blocks.iter().map(|(offset, len)| json!({
                "member_offset": offset, "len": len,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "rebuilds": status.rebuilds.iter().map(|r| json!({
            "role": r.role,
            "path": r.member,
            "done": r.done,
            "total": r.total,
            "replace": r.replacing,
            "running": r.running,
        })).collect::<Vec<_>>(),
        "scrub": status.scrub.map(|s| json!({
            "position": s.position,
            "repair": s.repair,
        })),
        "replay_pending": status.replay_pending,
        "data_bytes": status.data_bytes,
        "last_scrub": status.last_scrub.map(|s| json!({
            "ended": s.ended,
            "repair": s.repair,
            "cancelled": s.cancelled,
            "found": s.found,
            "repaired": s.repaired,
            "unrecoverable": s.unrecoverable,
        })),
        "last_rebuild": status.last_rebuild.map(|r| json!({
            "ended": r.ended,
            "role": r.role,
            "replace": r.replace,
            "cancelled": r.cancelled,
            "bytes": r.bytes,
            "lost": r.lost,
        })),
    })
}

/// A member's state in reports: its state, or `behind` for an active member that may lack
/// recent writes (until a resync brings them back).
fn member_state(m: &raidkit::array::MemberStatus) -> &'static str {
    if m.behind_stripes.is_some() {
        "behind"
    } else {
        m.state.name()
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Gregorian, proleptic).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Prints a status report as text to standard output.
/// The status report's text (what `raidctl status` prints).
pub fn status_text(status: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "        name : {}",
        if status.name.is_empty() {
            "-"
        } else {
            &status.name
        }
    );
    let _ = writeln!(out, "        uuid : {}", status.uuid);
    let _ = writeln!(
        out,
        "       level : {} (k = {}, m = {}, {})",
        level_name(status.level),
        status.k,
        status.m,
        status.layout
    );
    let _ = writeln!(out, "       chunk : {} KiB", status.chunk >> 10);
    let _ = writeln!(
        out,
        "        size : {} bytes ({} MiB)",
        status.size,
        status.size >> 20
    );
    let _ = writeln!(out, " data offset : {} bytes", status.data_offset);
    if let Some(data) = status.data_bytes {
        let _ = writeln!(
            out,
            "     written : {} MiB ({:.1}%) of the array since create; rebuilds onto new disks and scrubs skip the rest",
            data >> 20,
            data as f64 * 100.0 / status.size.max(1) as f64
        );
    }
    let mut state = status.state.name().to_string();
    if status.unclean_start {
        state.push_str(&format!(
            ", not closed cleanly (needs resync of {} stripes)",
            status.resync_stripes
        ));
    }
    let _ = writeln!(out, "       state : {state}");
    let _ = writeln!(out, "       event : {}", status.event);
    let _ = writeln!(
        out,
        " consistency : {}",
        match status.consistency {
            raidkit::array::Consistency::Journal => "journal (every write logged first)",
            raidkit::array::Consistency::Bitmap => "bitmap (write-intent)",
            raidkit::array::Consistency::None => "none (a crash resyncs every stripe)",
        }
    );
    if let Some(r) = &status.replay {
        let _ = writeln!(
            out,
            "      replay : {} records written again from the journal, {} incomplete skipped",
            r.replayed, r.incomplete
        );
    }
    for r in &status.rebuilds {
        let _ = writeln!(
            out,
            "     rebuild : role {} onto {}: {} of {} MiB ({:.1}%){}{}",
            r.role,
            r.member,
            r.done >> 20,
            r.total >> 20,
            r.done as f64 * 100.0 / r.total.max(1) as f64,
            if r.replacing { ", hot replace" } else { "" },
            if r.running {
                ", running"
            } else {
                ", last checkpoint (not running in this process; raidctl rebuild continues it)"
            }
        );
    }
    if status.replay_pending {
        let _ = writeln!(
            out,
            "      replay : pending (not closed cleanly; a command that may write replays the journal first)"
        );
    }
    if let Some(s) = status.last_scrub {
        let _ = writeln!(
            out,
            "  last scrub : {}, {}{}: {} damaged, {} repaired, {} unrecoverable",
            utc(s.ended),
            if s.repair { "repairing" } else { "check only" },
            if s.cancelled { ", interrupted" } else { "" },
            s.found,
            s.repaired,
            s.unrecoverable
        );
    }
    if let Some(r) = status.last_rebuild {
        let _ = writeln!(
            out,
            "last rebuild : {}, role {}{}{}: {} MiB copied, {} bytes lost",
            utc(r.ended),
            r.role,
            if r.replace { ", hot replace" } else { "" },
            if r.cancelled { ", interrupted" } else { "" },
            r.bytes >> 20,
            r.lost
        );
    }
    if let Some(scrub) = status.scrub {
        let _ = writeln!(
            out,
            "       scrub : interrupted at {} MiB of {} MiB{} (raidctl scrub continues it)",
            scrub.position >> 20,
            status.data_size >> 20,
            if scrub.repair { ", repairing" } else { "" }
        );
    }
    let _ = writeln!(out);
    // The state column is as wide as its longest word (`rebuilding`, `replacing`), so the
    // counts stay under their headings.
    let width = status
        .members
        .iter()
        .map(|m| member_state(m).len())
        .max()
        .unwrap_or(0)
        .max(7);
    let _ = writeln!(
        out,
        "  role  {:<width$}  read  write  csum  repaired  path",
        "state"
    );
    for m in &status.members {
        let role = m.role.map_or("-".to_string(), |r| r.to_string());
        let _ = writeln!(
            out,
            "  {role:>4}  {:<width$} {:>5} {:>6} {:>5} {:>9}  {}",
            member_state(m),
            m.read_errors,
            m.write_errors,
            m.checksum_errors,
            m.repaired,
            m.name
        );
        if let Some(stripes) = m.behind_stripes {
            let _ = writeln!(
                out,
                "        behind: may lack writes in {stripes} stripe(s), which are read from the other members (raidctl resync brings them back)"
            );
        }
        for (offset, len) in &m.bad_blocks {
            let _ = writeln!(
                out,
                "        lost: member bytes {offset}..{} (bad-block log)",
                offset + len
            );
        }
    }
    out
}

/// Prints [`status_text`].
pub fn print_status(status: &Status) {
    print!("{}", status_text(status));
}

pub fn status(args: StatusArgs) -> Result<Outcome> {
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return Ok(outcome);
    }
    let array = args.members.open_for_report()?;
    let status = array.status();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
    } else {
        print_status(&status);
    }
    array.close()?;
    Ok(match status.state {
        ArrayState::Clean => Outcome::Ok,
        ArrayState::Degraded => Outcome::Degraded,
        ArrayState::Failed => Outcome::Failed,
    })
}

pub fn examine(args: ExamineArgs) -> Result<()> {
    check_paths(std::slice::from_ref(&args.member))?;
    let disk = raidkit::disk::open_read_only(&args.member)?;
    let name = args.member.display().to_string();
    let read = raidkit::meta::read_superblock(&disk)
        .with_context(|| format!("{name}: not a raidkit member"))?;
    let sb = &read.superblock;
    let n = usize::from(sb.members);
    let role = (sb.slot as usize) < n;
    let own_state = sb.slots[sb.slot as usize].state;
    let active = sb.slots[..n]
        .iter()
        .filter(|s| s.state == SlotState::Active)
        .count();
    let m = usize::from(sb.m);
    let state = if active == n {
        "clean"
    } else if n - active <= m {
        "degraded"
    } else {
        "failed"
    };
    let value = json!({
        "path": name,
        "version": format!("{}.{}", format::VERSION_MAJOR, sb.minor),
        "superblock_copy": read.copy,
        "uuid": format::uuid_string(&sb.array_uuid),
        "member_uuid": format::uuid_string(&sb.member_uuid),
        "role": role.then_some(sb.slot),
        "member_state": own_state.name(),
        "name": sb.name,
        "level": level_json(sb.level),
        "k": sb.k,
        "m": sb.m,
        "member_count": sb.members,
        "chunk_size": sb.chunk,
        "layout": sb.layout_name(),
        "member_size": sb.member_size,
        "data_offset": sb.regions.data_offset,
        "data_size": sb.regions.data_size,
        "size": sb.array_size,
        "state": state,
        "dirty": sb.is_dirty(),
        "event": sb.event,
        "session": (sb.session != 0).then_some(sb.session),
        "ctime": sb.ctime,
        "utime": sb.utime,
        "regions": {
            "bitmap_offset": sb.regions.bitmap_offset,
            "bitmap_size": sb.regions.bitmap_size,
            "journal_offset": sb.regions.journal_offset,
            "journal_size": sb.regions.journal_size,
            "checksum_offset": sb.regions.csum_offset,
            "checksum_size": sb.regions.csum_size,
            "data_offset": sb.regions.data_offset,
            "data_size": sb.regions.data_size,
        },
        "members": sb.slots.iter().enumerate().map(|(i, slot)| json!({
            "role": (i < n).then_some(i),
            "uuid": format::uuid_string(&slot.uuid),
            "state": slot.state.name(),
            "behind_since": match slot.state {
                SlotState::Behind { since } => Some(since),
                _ => None,
            },
            "path": (i == sb.slot as usize).then(|| name.clone()),
            // Error counters live in the running array, not in the superblock.
            "read_errors": Value::Null,
            "write_errors": Value::Null,
            "checksum_errors": Value::Null,
        })).collect::<Vec<_>>(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if let Some(other) = &read.other {
        eprintln!("raidctl: {name}: the other superblock copy is invalid: {other}");
    }
    println!("        path : {name}");
    println!(
        "     version : {}.{} (copy {})",
        format::VERSION_MAJOR,
        sb.minor,
        read.copy
    );
    println!("  array uuid : {}", format::uuid_string(&sb.array_uuid));
    println!(" member uuid : {}", format::uuid_string(&sb.member_uuid));
    println!(
        "        role : {} ({})",
        if role {
            sb.slot.to_string()
        } else {
            "spare".to_string()
        },
        own_state.name()
    );
    println!(
        "        name : {}",
        if sb.name.is_empty() { "-" } else { &sb.name }
    );
    println!(
        "       level : {} (k = {}, m = {}, {})",
        level_name(sb.level),
        sb.k,
        sb.m,
        sb.layout_name()
    );
    println!("     members : {n}");
    println!("       chunk : {} KiB", sb.chunk >> 10);
    println!("        size : {} bytes", sb.array_size);
    println!(" member size : {} bytes", sb.member_size);
    println!(
        "      events : {}{}",
        sb.event,
        if sb.is_dirty() { " (dirty)" } else { "" }
    );
    if sb.session != 0 {
        println!("     session : started at event {}", sb.session);
    }
    let r = &sb.regions;
    println!(
        "     regions : bitmap {}+{}, journal {}+{}, checksums {}+{}, data {}+{}",
        r.bitmap_offset,
        r.bitmap_size,
        r.journal_offset,
        r.journal_size,
        r.csum_offset,
        r.csum_size,
        r.data_offset,
        r.data_size
    );
    println!("  member table ({state}):");
    for (i, slot) in sb.slots.iter().enumerate() {
        let role = if i < n {
            i.to_string()
        } else {
            "spare".to_string()
        };
        let since = match slot.state {
            SlotState::Behind { since } => format!(" (may lack writes since event {since})"),
            _ => String::new(),
        };
        println!(
            "    {role:>5}  {:<10} {}{since}",
            slot.state.name(),
            format::uuid_string(&slot.uuid)
        );
    }
    Ok(())
}
