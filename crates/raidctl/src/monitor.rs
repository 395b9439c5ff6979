//! `raidctl monitor`: one JSON line per event of an array, as it is recorded on its
//! members (the role of `mdadm --monitor`).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use raidkit::events::{Event, Watch};
use serde_json::{Value, json};

use crate::members::{Members, check_paths};

#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Seconds between looks at the members (fractions allowed).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    interval: f64,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    #[command(flatten)]
    members: Members,
}

/// An event as one JSON object (without the time and array, which [`line`] adds).
pub fn event_json(event: &Event) -> Value {
    let fields = match event {
        Event::MemberFailed {
            role,
            member,
            reason,
        } => json!({"role": role, "member": member, "reason": reason}),
        Event::MemberBack { role, member } => json!({"role": role, "member": member}),
        Event::SpareAdded { spare } => json!({"spare": spare}),
        Event::SpareActivated { role, spare } => json!({"role": role, "spare": spare}),
        Event::RebuildStarted {
            role,
            member,
            total,
        } => json!({"role": role, "member": member, "total": total}),
        Event::RebuildProgress {
            role,
            member,
            done,
            total,
        } => json!({"role": role, "member": member, "done": done, "total": total}),
        Event::RebuildFinished {
            role,
            member,
            bytes,
            lost,
            cancelled,
        } => json!({
            "role": role, "member": member, "bytes": bytes, "lost_bytes": lost,
            "cancelled": cancelled,
        }),
        Event::ScrubFinished {
            found,
            repaired,
            unrecoverable,
            repair,
            cancelled,
        } => json!({
            "found": found, "repaired": repaired, "unrecoverable": unrecoverable,
            "repair": repair, "cancelled": cancelled,
        }),
        Event::BlocksHealed { member, blocks } => json!({"member": member, "blocks": blocks}),
        Event::RangeLost {
            member,
            offset,
            len,
        } => json!({"member": member, "offset": offset, "len": len}),
    };
    let mut object = json!({"event": event.kind()});
    if let (Some(o), Value::Object(f)) = (object.as_object_mut(), fields) {
        o.extend(f);
    }
    object
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One output line: the time, the array, then the event's fields.
fn line(watch: &Watch, event: Value) -> String {
    let mut object = json!({
        "time": crate::report::utc(now()),
        "array": watch.name(),
        "uuid": raidkit::format::uuid_string(&watch.uuid()),
    });
    if let (Some(o), Value::Object(f)) = (object.as_object_mut(), event) {
        o.extend(f);
    }
    object.to_string()
}

pub fn run(args: MonitorArgs) -> Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        bail!("--interval must be a positive number of seconds");
    }
    if args.duration.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
        bail!("--duration must be a number of seconds, 0 or more");
    }
    if let Some(outcome) = crate::control::forward(&args.members)? {
        return crate::control::exit_with(outcome);
    }
    let paths = args.members.paths()?;
    check_paths(&paths)?;
    let mut watch = Watch::new(&paths)?;
    let stop = crate::interrupted();
    let started = Instant::now();
    let end = args.duration.map(Duration::from_secs_f64);
    let interval = Duration::from_secs_f64(args.interval);
    let mut out = std::io::stdout().lock();
    let watching = json!({
        "event": "watching",
        "members": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    });
    writeln!(out, "{}", line(&watch, watching))?;
    out.flush()?;
    loop {
        let next = Instant::now() + interval;
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) || end.is_some_and(|e| started.elapsed() >= e) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        for event in watch.poll() {
            writeln!(out, "{}", line(&watch, event_json(&event)))?;
        }
        out.flush()?;
    }
}
