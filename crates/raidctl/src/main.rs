//! `raidctl`: the command-line tool for raidkit. It parses arguments, calls the library,
//! prints, and chooses the exit code; no RAID logic lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod size;

/// raidkit's command-line tool.
#[derive(Parser)]
#[command(
    name = "raidctl",
    version,
    about = "Software RAID 1/5/6 and k+m arrays over files and block devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the parity engines on this machine.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("raidctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
