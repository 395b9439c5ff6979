//! `raidctl`: the command-line tool for raidkit. It parses arguments, calls the library,
//! prints, and chooses the exit code; no RAID logic lives here.
//!
//! Exit codes: 0 success; 1 the operation failed; 2 usage error (bad arguments);
//! `status` only: 3 the array is degraded, 4 the array has failed; `scrub`, `rebuild`,
//! `replace`: 5 damage found (scrub check mode), 6 damage that cannot be recovered; 130
//! interrupted by Ctrl-C (the position is recorded; running the command again continues).

use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

mod bench;
mod control;
mod create;
mod data;
mod demo;
mod manage;
mod members;
mod monitor;
mod progress;
mod report;
mod scan;
mod scrub;
mod serve;
mod size;

/// raidkit's command-line tool.
#[derive(Parser)]
#[command(
    name = "raidctl",
    version,
    about = "Software RAID 1/5/6 and k+m arrays over files and block devices",
    after_help = "An array is named by its member paths, in any order. Sizes take K, M, G, T suffixes (powers of 1024).\nExit codes: 0 ok, 1 operation failed, 2 usage error; status: 3 degraded, 4 failed; scrub/rebuild/replace: 5 damage found, 6 unrecoverable, 130 interrupted."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create an array over member files or block devices.
    Create(create::CreateArgs),
    /// Show an array's state and every member's (like mdadm --detail).
    Status(report::StatusArgs),
    /// Show one member's superblock, field by field.
    Examine(report::ExamineArgs),
    /// Write data into the array (standard input by default); flushes before exiting.
    Write(data::WriteArgs),
    /// Read data from the array (to standard output by default).
    Read(data::ReadArgs),
    /// Mark a member faulty.
    Fail(manage::FailArgs),
    /// Add a hot spare.
    Add(manage::AddArgs),
    /// Remove a faulty member or a spare.
    Remove(manage::RemoveArgs),
    /// Bring back a member that missed writes while failed or absent, resyncing only what
    /// changed meanwhile where that can be known.
    ReAdd(manage::ReAddArgs),
    /// List the arrays on files, folders and block devices, grouped by array.
    Scan(scan::ScanArgs),
    /// Serve the array over NBD (a disk for file systems, QEMU, nbdfuse, fio) until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Stop the server that serves the array (raidctl serve), as Ctrl-C would.
    Stop(control::StopArgs),
    /// Print one JSON line per event of an array (member failed, spare activated, rebuild
    /// and scrub progress, blocks healed, ranges lost) as its members record them.
    Monitor(monitor::MonitorArgs),
    /// Make parity and checksums agree with the data after an unclean stop.
    Resync(manage::ResyncArgs),
    /// Verify every block and every stripe's parity; --repair rewrites what is wrong.
    Scrub(scrub::ScrubArgs),
    /// Rebuild roles without an active member onto hot spares (or continue an
    /// interrupted rebuild).
    Rebuild(manage::RebuildArgs),
    /// Replace a member with a new disk: a hot replace when it still works, else a rebuild.
    Replace(manage::ReplaceArgs),
    /// Measure the parity engines on this machine.
    Bench(bench::BenchArgs),
    /// Build a RAID-6 array over six loopback files, damage it, and watch it heal.
    Demo(demo::DemoArgs),
}

/// How a command ended, beyond success.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// `status`: the array is degraded (exit 3).
    Degraded,
    /// `status`: the array has failed (exit 4).
    Failed,
    /// `scrub`: damage found and not repaired (check mode) (exit 5).
    DamageFound,
    /// `scrub`, `rebuild`, `replace`: damage that cannot be recovered (exit 6).
    Unrecoverable,
    /// Stopped by Ctrl-C with its position recorded (exit 130).
    Interrupted,
    /// The exit code a served array's server answered with.
    Exit(u8),
}

/// Set by Ctrl-C (SIGINT or SIGTERM) once a long operation has installed the handler: the
/// operation stops at its next step and records where it was.
pub fn interrupted() -> &'static AtomicBool {
    static FLAG: OnceLock<&'static AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| {
        static STOP: AtomicBool = AtomicBool::new(false);
        if let Err(e) = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::AcqRel) {
                // A second Ctrl-C: stop now.
                std::process::exit(130);
            }
            eprintln!("\nraidctl: stopping at the next step (Ctrl-C again to quit at once)");
        }) {
            log::warn!("cannot catch Ctrl-C ({e}); it will stop raidctl at once");
        }
        &STOP
    })
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            eprintln!(
                "raidctl: error: {} (see raidctl --help)",
                one_line(&err.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Create(args) => create::run(args).map(|()| Outcome::Ok),
        Command::Status(args) => report::status(args),
        Command::Examine(args) => report::examine(args).map(|()| Outcome::Ok),
        Command::Write(args) => data::write(args).map(|()| Outcome::Ok),
        Command::Read(args) => data::read(args).map(|()| Outcome::Ok),
        Command::Fail(args) => manage::fail(args),
        Command::Add(args) => manage::add(args).map(|()| Outcome::Ok),
        Command::Remove(args) => manage::remove(args).map(|()| Outcome::Ok),
        Command::ReAdd(args) => manage::re_add(args),
        Command::Scan(args) => scan::run(args).map(|()| Outcome::Ok),
        Command::Monitor(args) => monitor::run(args).map(|()| Outcome::Ok),
        Command::Serve(args) => serve::run(args).map(|()| Outcome::Ok),
        Command::Stop(args) => control::stop(args),
        Command::Resync(args) => manage::resync(args).map(|()| Outcome::Ok),
        Command::Scrub(args) => scrub::run(args),
        Command::Rebuild(args) => manage::rebuild(args),
        Command::Replace(args) => manage::replace(args),
        Command::Bench(args) => bench::run(args).map(|()| Outcome::Ok),
        Command::Demo(args) => demo::run(args).map(|()| Outcome::Ok),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Degraded) => ExitCode::from(3),
        Ok(Outcome::Failed) => ExitCode::from(4),
        Ok(Outcome::DamageFound) => ExitCode::from(5),
        Ok(Outcome::Unrecoverable) => ExitCode::from(6),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(err) => {
            // One line: the error and those of its causes it does not already say.
            let mut text = String::new();
            for cause in err.chain() {
                let cause = cause.to_string().replace('\n', " ");
                if !text.contains(&cause) {
                    if !text.is_empty() {
                        text.push_str(": ");
                    }
                    text.push_str(&cause);
                }
            }
            eprintln!("raidctl: error: {text}");
            if err.downcast_ref::<create::Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// clap's message on one line, without its own "error: " prefix: its first paragraph (the
/// error and, for missing arguments, their names below it) and any tip, without the usage.
pub(crate) fn one_line(text: &str) -> String {
    let mut paragraphs = text.split("\n\n").map(|p| {
        p.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    });
    let mut parts = paragraphs.next().unwrap_or_default();
    if let Some(first) = parts.first_mut() {
        *first = first.strip_prefix("error: ").unwrap_or(first);
    }
    let mut line = parts.join(" ");
    for tip in paragraphs.flatten().filter(|l| l.starts_with("tip:")) {
        line.push_str("; ");
        line.push_str(tip);
    }
    line
}
