//! Runs the language-neutral test vectors in the repository's `spec/vectors/` (format: its
//! README.md).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use vexil_core::hash::{bucket, murmur3_x86_32};
use vexil_core::{Context, Ruleset, Snapshot};

const DEFAULT_NOW: &str = "2026-01-01T00:00:00Z";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    name: String,
    #[serde(default)]
    description: String,
    ruleset: Ruleset,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    flag: String,
    context: Context,
    #[serde(default)]
    now: Option<String>,
    expected: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashFile {
    #[serde(default)]
    description: String,
    rows: Vec<HashRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashRow {
    salt: String,
    value: String,
    hash: u32,
    bucket: u32,
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors")
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("spec/vectors exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| p.file_name().is_some_and(|n| n != "hash.json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_evaluation_vector_passes() {
    let mut total = 0;
    let mut failures = Vec::new();
    for path in case_files() {
        let text = std::fs::read_to_string(&path).expect("readable vector file");
        let file: VectorFile = vexil_core::from_json_with_path(&text)
            .unwrap_or_else(|e| panic!("{}: malformed vector file: {e}", path.display()));
        assert!(!file.description.is_empty() || !file.name.is_empty());
        let snapshot = Snapshot::compile(&file.ruleset)
            .unwrap_or_else(|e| panic!("{}: invalid ruleset:\n{e}", path.display()));
        for case in &file.cases {
            total += 1;
            let now = case.now.as_deref().unwrap_or(DEFAULT_NOW);
            let now = vexil_core::time::parse_rfc3339(now).expect("valid `now` in vector");
            let detail = snapshot.evaluate(&case.flag, &case.context, now);
            let got = serde_json::json!({
                "value": detail.value,
                "variation": detail.variation,
                "reason": detail.reason,
            });
            if got != case.expected {
                failures.push(format!(
                    "{} / {}: expected {}\n    got {}",
                    file.name, case.name, case.expected, got
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        total >= 250,
        "expected at least 250 vector cases, found {total}"
    );
}

#[test]
fn every_hash_vector_passes() {
    let text = std::fs::read_to_string(vector_dir().join("hash.json")).expect("hash.json");
    let file: HashFile = serde_json::from_str(&text).expect("well-formed hash.json");
    assert!(!file.description.is_empty());
    assert!(file.rows.len() >= 30, "expected at least 30 hash rows");
    for row in &file.rows {
        let input = format!("{}.{}", row.salt, row.value);
        assert_eq!(
            murmur3_x86_32(input.as_bytes(), 0),
            row.hash,
            "hash of {input:?}"
        );
        assert_eq!(
            bucket(&row.salt, &row.value),
            row.bucket,
            "bucket of {input:?}"
        );
    }
}
