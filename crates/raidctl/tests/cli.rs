//! Runs the real `raidctl` binary.

use std::process::Command;

fn raidctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raidctl"))
        .args(args)
        .env_remove("RAIDKIT_ENGINE")
        .output()
        .expect("run raidctl")
}

#[test]
fn bench_json_lists_every_case_with_the_documented_schema() {
    let out = raidctl(&[
        "bench", "--json", "--engine", "scalar", "--k", "3", "--block", "4K", "--min-ms", "1",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON only");
    let rows = json.as_array().expect("a list");
    let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    for op in ["p", "pq", "pq_update", "recover_2data", "encode", "decode"] {
        assert!(ops.contains(&op), "missing op {op}");
    }
    for row in rows {
        assert_eq!(row["engine"], "scalar");
        assert_eq!(row["k"], 3);
        assert_eq!(row["block_size"], 4096);
        assert!(row["m"].as_u64().is_some_and(|m| (1..=4).contains(&m)));
        assert!(row["gbps"].as_f64().is_some_and(|g| g > 0.0), "{row}");
        assert_eq!(
            row.as_object().unwrap().len(),
            6,
            "exactly the documented fields: {row}"
        );
    }
}

#[test]
fn bench_table_goes_to_stdout_and_progress_to_stderr() {
    let out = raidctl(&[
        "bench", "--engine", "scalar", "--k", "2", "--block", "512", "--min-ms", "1",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("engine") && stdout.contains("scalar"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("automatic choice"),
        "messages belong on stderr"
    );
}

#[test]
fn bad_arguments_give_one_clear_line_and_fail() {
    for (args, expect) in [
        (vec!["bench", "--engine", "sse9"], "unknown parity engine"),
        (vec!["bench", "--k", "0"], "data blocks must be 1 to 252"),
        (vec!["bench", "--block", "12Q"], "is not a size"),
    ] {
        let out = raidctl(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn an_engine_the_cpu_lacks_is_a_clear_error() {
    let missing = raidkit::parity::EngineKind::ALL
        .into_iter()
        .find(|k| !k.is_supported());
    let Some(kind) = missing else {
        eprintln!("SKIP an_engine_the_cpu_lacks_is_a_clear_error: this CPU runs every engine");
        return;
    };
    let out = raidctl(&["bench", "--engine", kind.name(), "--min-ms", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("which this CPU lacks"));
}

#[test]
fn raidkit_engine_variable_selects_and_rejects() {
    let out = Command::new(env!("CARGO_BIN_EXE_raidctl"))
        .args([
            "bench", "--engine", "scalar", "--k", "2", "--block", "256", "--min-ms", "1",
        ])
        .env("RAIDKIT_ENGINE", "scalar")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("automatic choice here: scalar"));
    let out = Command::new(env!("CARGO_BIN_EXE_raidctl"))
        .args(["bench", "--min-ms", "1"])
        .env("RAIDKIT_ENGINE", "turbo")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown parity engine \"turbo\""));
}
