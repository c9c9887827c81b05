//! The TypeScript SDK's own test suite (`sdks/js`: `npm test`, which compiles with `tsc` and
//! runs `node --test`), with `VEXIL_BIN` pointing at this build of `vexil` so that its
//! real-server tests start `vexil serve` from it. Skips, saying so, when Node.js or npm is
//! missing, unless `VEXIL_REQUIRE_NODE=1` (as in CI), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

const BIN: &str = env!("CARGO_BIN_EXE_vexil");

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdks/js")
}

/// Whether `tool --version` runs.
fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `node_modules` is missing, or older than `package-lock.json`.
fn needs_install(dir: &Path) -> bool {
    let lock = modified(&dir.join("package-lock.json"));
    // npm writes node_modules/.package-lock.json last, once an install is complete.
    let installed = modified(&dir.join("node_modules/.package-lock.json"))
        .or_else(|| modified(&dir.join("node_modules")));
    match (installed, lock) {
        (None, _) => true,
        (Some(installed), Some(lock)) => installed < lock,
        (Some(_), None) => false,
    }
}

fn show(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env("VEXIL_BIN", BIN)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm {}: {e}", args.join(" ")))
}

#[test]
fn typescript_sdk_test_suite_passes() {
    let required = std::env::var("VEXIL_REQUIRE_NODE").is_ok_and(|v| v == "1");
    let missing: Vec<&str> = ["node", "npm"]
        .into_iter()
        .filter(|tool| !available(tool))
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "{} not found on PATH: the TypeScript SDK tests (sdks/js) did not run",
            missing.join(" and ")
        );
        assert!(!required, "VEXIL_REQUIRE_NODE=1, but {message}");
        eprintln!("skipped: {message}");
        return;
    }
    let dir = package_dir();
    if needs_install(&dir) {
        let install = run(&dir, &["ci", "--no-audit", "--no-fund"]);
        assert!(
            install.status.success(),
            "npm ci failed in {}\n{}",
            dir.display(),
            show(&install)
        );
    }
    let test = run(&dir, &["test"]);
    assert!(
        test.status.success(),
        "npm test failed in {} (VEXIL_BIN={BIN})\n{}",
        dir.display(),
        show(&test)
    );
    // The runner's closing summary, for `cargo test -- --nocapture`.
    let stdout = String::from_utf8_lossy(&test.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# ") && !l.starts_with("# Subtest"))
        .collect();
    eprintln!("sdks/js npm test:\n{}", summary.join("\n"));
}
