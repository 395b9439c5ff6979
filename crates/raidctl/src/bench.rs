//! `raidctl bench`: the parity engines' throughput on this machine.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use raidkit::parity::bench::{self, BenchConfig, BenchOp, BenchResult, CASES};
use raidkit::parity::{Engine, EngineKind};
use serde::Serialize;

use crate::size::parse_size;

#[derive(Args)]
pub struct BenchArgs {
    /// Engine to measure (scalar, avx2, avx512, gfni); default: every one this CPU supports.
    #[arg(long, value_parser = parse_engine)]
    engine: Vec<EngineKind>,
    /// Data blocks per stripe (repeatable); default 4, 8 and 12.
    #[arg(long = "k")]
    k: Vec<usize>,
    /// Block size (e.g. 4K, 64K, 1M; repeatable); default 64K.
    #[arg(long = "block", value_parser = parse_size)]
    block: Vec<usize>,
    /// Minimum time per repetition, in milliseconds (three repetitions per case).
    #[arg(long, default_value_t = 50)]
    min_ms: u64,
    /// Print JSON: a list of {engine, op, k, m, block_size, gbps}.
    #[arg(long)]
    json: bool,
}

fn parse_engine(text: &str) -> Result<EngineKind, String> {
    text.parse::<EngineKind>().map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct JsonResult {
    engine: String,
    op: &'static str,
    k: usize,
    m: usize,
    block_size: usize,
    gbps: f64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let mut config = BenchConfig::default();
    if !args.engine.is_empty() {
        for &kind in &args.engine {
            Engine::new(kind)?;
        }
        config.engines = args.engine;
    }
    if !args.k.is_empty() {
        if let Some(bad) = args
            .k
            .iter()
            .find(|&&k| k == 0 || k > raidkit::parity::MAX_DATA)
        {
            bail!(
                "--k {bad}: data blocks must be 1 to {}",
                raidkit::parity::MAX_DATA
            );
        }
        config.ks = args.k;
    }
    if !args.block.is_empty() {
        if args.block.contains(&0) {
            bail!("--block must be at least one byte");
        }
        config.block_sizes = args.block;
    }
    config.min_time = Duration::from_millis(args.min_ms.max(1));
    let best = Engine::detect().context("choosing the parity engine")?;
    eprintln!(
        "raidctl bench: engines {:?}; automatic choice here: {}",
        config.engines.iter().map(|e| e.name()).collect::<Vec<_>>(),
        best.kind()
    );
    let results = bench::run(&config, |r| {
        eprint!(
            "\r{} {} k={} m={} {}B ... {:.1} GB/s      ",
            r.engine, r.op, r.k, r.m, r.block_size, r.gbps
        );
    })?;
    eprintln!();
    if args.json {
        let json: Vec<JsonResult> = results
            .iter()
            .map(|r| JsonResult {
                engine: r.engine.name().to_string(),
                op: r.op.name(),
                k: r.k,
                m: r.m,
                block_size: r.block_size,
                gbps: (r.gbps * 100.0).round() / 100.0,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_table(&config, &results);
    }
    Ok(())
}

fn column(op: BenchOp, m: usize) -> String {
    match op {
        BenchOp::Encode | BenchOp::Decode => format!("{op}+{m}"),
        _ => op.to_string(),
    }
}

fn print_table(config: &BenchConfig, results: &[BenchResult]) {
    println!("GB/s of data processed, single thread (pq_update: of the changed block)");
    let mut header = format!("{:<8} {:>4} {:>8}", "engine", "k", "block");
    for (op, m) in CASES {
        header.push_str(&format!(" {:>14}", column(op, m)));
    }
    println!("{header}");
    for &engine in &config.engines {
        for &block in &config.block_sizes {
            for &k in &config.ks {
                let mut line = format!("{:<8} {:>4} {:>8}", engine.name(), k, block);
                for (op, m) in CASES {
                    let cell = results
                        .iter()
                        .find(|r| {
                            r.engine == engine
                                && r.op == op
                                && r.m == m
                                && r.k == k
                                && r.block_size == block
                        })
                        .map_or("-".to_string(), |r| format!("{:.1}", r.gbps));
                    line.push_str(&format!(" {cell:>14}"));
                }
                println!("{line}");
            }
        }
    }
}
